// tests/ws_utf8_conformance_test.cc — RFC 6455 8.1 over real sockets: text messages must be
// UTF-8 (RFC 3629), checked incrementally and fail-fast. Autobahn group 6: Markus Kuhn's decoder
// stress vectors whole, in per-byte fragments and octet by octet; 1007 exactly when the first
// byte that cannot continue valid UTF-8 arrives, even inside a frame whose payload is not all
// sent or a message whose last fragment is not.
#include <gtest/gtest.h>

#include "tests/ws_case_runner.h"

namespace weir::harness {
namespace {

// ---------------------------------------------------------------- group 6: UTF-8

// RFC 3629 section 4 written out on its own (not ws/utf8.cc): where `s` stops being a prefix
// of valid UTF-8 (npos if never) and whether it ends on a character boundary.
struct Utf8Verdict {
  size_t bad_at = std::string_view::npos;
  bool complete = true;
};
Utf8Verdict reference_utf8(std::string_view s) {
  Utf8Verdict v;
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<uint8_t>(s[i]);
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80)
      need = 0;
    else if (b >= 0xC2 && b <= 0xDF)
      need = 1;
    else if (b == 0xE0)
      need = 2, lo = 0xA0;
    else if (b == 0xED)
      need = 2, hi = 0x9F;
    else if (b >= 0xE1 && b <= 0xEF)
      need = 2;
    else if (b == 0xF0)
      need = 3, lo = 0x90;
    else if (b == 0xF4)
      need = 3, hi = 0x8F;
    else if (b >= 0xF1 && b <= 0xF3)
      need = 3;
    else
      return {i, false};
    ++i;
    for (size_t k = 0; k < need; ++k, ++i) {
      if (i == s.size()) return {std::string_view::npos, false};
      auto c = static_cast<uint8_t>(s[i]);
      if (c < (k == 0 ? lo : 0x80) || c > (k == 0 ? hi : 0xBF)) return {i, false};
    }
  }
  return v;
}

struct Utf8Vector {
  const char* name;
  std::string bytes;
  bool valid;
};

// Markus Kuhn's UTF-8 decoder stress test, as Autobahn 6.5-6.23 uses it.
std::vector<Utf8Vector> utf8_vectors() {
  std::vector<Utf8Vector> v = {
      {"6.5 kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true},
      {"6.6 kosme prefix 1", "\xce", false},
      {"6.6 kosme prefix 2", "\xce\xba", true},
      {"6.6 kosme prefix 3", "\xce\xba\xe1", false},
      {"6.6 kosme prefix 4", "\xce\xba\xe1\xbd", false},
      {"6.6 kosme prefix 5", "\xce\xba\xe1\xbd\xb9", true},
      {"6.7 U+0000", std::string("\x00", 1), true},
      {"6.7 U+0080", "\xc2\x80", true},
      {"6.7 U+0800", "\xe0\xa0\x80", true},
      {"6.7 U+10000", "\xf0\x90\x80\x80", true},
      {"6.8 first 5-byte", "\xf8\x88\x80\x80\x80", false},
      {"6.8 first 6-byte", "\xfc\x84\x80\x80\x80\x80", false},
      {"6.9 U+007F", "\x7f", true},
      {"6.9 U+07FF", "\xdf\xbf", true},
      {"6.9 U+FFFF", "\xef\xbf\xbf", true},
      {"6.9 U+10FFFF", "\xf4\x8f\xbf\xbf", true},
      {"6.10 last 4-byte form", "\xf7\xbf\xbf\xbf", false},
      {"6.10 last 5-byte", "\xfb\xbf\xbf\xbf\xbf", false},
      {"6.10 last 6-byte", "\xfd\xbf\xbf\xbf\xbf\xbf", false},
      {"6.11 U+D7FF", "\xed\x9f\xbf", true},
      {"6.11 U+E000", "\xee\x80\x80", true},
      {"6.11 U+FFFD", "\xef\xbf\xbd", true},
      {"6.11 U+110000", "\xf4\x90\x80\x80", false},
      {"6.12 lone 0x80", "\x80", false},
      {"6.12 lone 0xbf", "\xbf", false},
      {"6.12 two continuations", "\x80\xbf", false},
      {"6.12 three continuations", "\x80\xbf\x80", false},
      {"6.12 seven continuations", "\x80\xbf\x80\xbf\x80\xbf\x80", false},
      {"6.14 2-byte missing last", "\xc0", false},
      {"6.14 3-byte missing last", "\xe0\x80", false},
      {"6.14 4-byte missing last", "\xf0\x80\x80", false},
      {"6.14 U+07FF missing last", "\xdf", false},
      {"6.14 U+FFFF missing last", "\xef\xbf", false},
      {"6.14 U+10FFFF missing last", "\xf4\x8f\xbf", false},
      {"6.15 concatenated incomplete", "\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf7\xbf\xbf", false},
      {"6.16 0xfe", "\xfe", false},
      {"6.16 0xff", "\xff", false},
      {"6.16 fefeffff", "\xfe\xfe\xff\xff", false},
      {"6.17 overlong / 2", "\xc0\xaf", false},
      {"6.17 overlong / 3", "\xe0\x80\xaf", false},
      {"6.17 overlong / 4", "\xf0\x80\x80\xaf", false},
      {"6.17 overlong / 5", "\xf8\x80\x80\x80\xaf", false},
      {"6.18 max overlong 2", "\xc1\xbf", false},
      {"6.18 max overlong 3", "\xe0\x9f\xbf", false},
      {"6.18 max overlong 4", "\xf0\x8f\xbf\xbf", false},
      {"6.19 overlong NUL 2", "\xc0\x80", false},
      {"6.19 overlong NUL 3", "\xe0\x80\x80", false},
      {"6.19 overlong NUL 4", "\xf0\x80\x80\x80", false},
      {"6.20 U+D800", "\xed\xa0\x80", false},
      {"6.20 U+DB7F", "\xed\xad\xbf", false},
      {"6.20 U+DB80", "\xed\xae\x80", false},
      {"6.20 U+DBFF", "\xed\xaf\xbf", false},
      {"6.20 U+DC00", "\xed\xb0\x80", false},
      {"6.20 U+DF80", "\xed\xbe\x80", false},
      {"6.20 U+DFFF", "\xed\xbf\xbf", false},
      {"6.21 U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80", false},
      {"6.21 U+DBFF U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf", false},
      {"6.22 U+FFFE", "\xef\xbf\xbe", true},
      {"6.22 U+1FFFE", "\xf0\x9f\xbf\xbe", true},
      {"6.22 U+10FFFE", "\xf4\x8f\xbf\xbe", true},
      {"6.22 U+FDD0", "\xef\xb7\x90", true},
      {"6.22 U+FDEF", "\xef\xb7\xaf", true},
      {"6.23 U+FFFD x3", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", true},
      {"6.x U+1F600 in text", "smile \xf0\x9f\x98\x80!", true},
  };
  std::string continuations;  // 6.12.9: every continuation byte
  for (int c = 0x80; c <= 0xbf; ++c) continuations.push_back(static_cast<char>(c));
  v.push_back({"6.12 all 64 continuation bytes", continuations, false});
  for (int lead = 0xc0; lead <= 0xfd; ++lead) {  // 6.13: lonely start characters, then a space
    v.push_back({"6.13 lonely start", std::string(1, static_cast<char>(lead)) + " ", false});
  }
  return v;
}

TEST(WsUtf8Conformance, Utf8VectorsAreEchoedOrRejectedWith1007) {
  std::vector<Case> cases;
  for (const Utf8Vector& u : utf8_vectors()) {
    Utf8Verdict ref = reference_utf8(u.bytes);
    ASSERT_EQ(ref.complete, u.valid) << u.name << ": the reference validator disagrees";
    Expect want = u.valid ? echo_text(u.bytes) : closes(1007);
    cases.push_back({u.name, text(u.bytes), {want}});
    cases.push_back({std::string(u.name) + " per-byte fragments",
                     per_byte_fragments(kOpText, u.bytes),
                     {want}});
  }
  // Binary messages are not UTF-8 checked.
  cases.push_back(
      {"binary with invalid UTF-8", binary("\xed\xa0\x80\xff"), {echo_binary("\xed\xa0\x80\xff")}});
  cases.push_back({"6.1.1 empty text", text(""), {echo_text("")}});
  cases.push_back(
      {"6.1.2 empty fragments", text("", false) + cont("", false) + cont(""), {echo_text("")}});
  cases.push_back({"6.1.3 empty, payload, empty",
                   text("", false) + cont("middle frame payload", false) + cont(""),
                   {echo_text("middle frame payload")}});
  run_all(cases, /*octets=*/false);
}

// 6.4: the close comes as soon as the first byte that cannot continue valid UTF-8 arrives, in
// the middle of a frame whose payload is not all sent, or of a message whose end is not.
TEST(WsUtf8Conformance, InvalidUtf8FailsFastAtTheFirstImpossibleByte) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  for (const Utf8Vector& u : utf8_vectors()) {
    if (u.valid) continue;
    SCOPED_TRACE(u.name);
    std::string payload = "ok " + u.bytes + " and more text that never arrives";
    Utf8Verdict ref = reference_utf8(payload);
    auto client = open_websocket(server.port());
    ASSERT_TRUE(client);
    if (ref.bad_at == std::string_view::npos) {
      // Only the end of the message shows the last character is cut short.
      client->send(text("ok " + u.bytes, false));
      EXPECT_TRUE(client->quiet_for(5)) << "closed before the message ended";
      client->send(cont(""));
    } else {
      std::string whole = text(payload);
      size_t header = whole.size() - payload.size();
      client->send(std::string_view(whole).substr(0, header + ref.bad_at));
      EXPECT_TRUE(client->quiet_for(5)) << "closed before the bad byte at " << ref.bad_at;
      client->send(std::string_view(whole).substr(header + ref.bad_at, 1));
    }
    ReadStatus end;
    std::vector<std::string> got = read_until_closed(*client, &end, 1000);
    EXPECT_EQ(got, std::vector<std::string>{"close:1007"});
    EXPECT_EQ(end, ReadStatus::kEof);
  }
  // 6.4.1/6.4.2: across fragments, the first fragment valid, the second carrying the bad byte.
  auto client = open_websocket(server.port());
  ASSERT_TRUE(client);
  client->send(text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", false));
  EXPECT_TRUE(client->quiet_for(5));
  client->send(cont("\xf4\x90\x80\x80", false));
  ReadStatus end;
  EXPECT_EQ(read_until_closed(*client, &end, 1000), std::vector<std::string>{"close:1007"});
  EXPECT_EQ(end, ReadStatus::kEof);
}

TEST(WsUtf8Conformance, Utf8SplitAcrossReadsIsStillValidated) {
  std::string good = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!";
  std::string bad =
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
      "edited";
  run_all({
      {"6.2.3 valid, octet-wise", text(good), {echo_text(good)}},
      {"6.2.4 valid kosme, octet-wise",
       text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
       {echo_text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")}},
      {"6.3.2 invalid, octet-wise", text(bad), {closes(1007)}},
      {"6.x valid split inside a character across fragments",
       text("\xf0\x9f", false) + cont("\x98", false) + cont("\x80"),
       {echo_text("\xf0\x9f\x98\x80")}},
  });
}

}  // namespace
}  // namespace weir::harness
