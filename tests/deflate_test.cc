// permessage-deflate: negotiation (server and client), the RFC 7692 7.2.3 examples, round trips
// with and without context takeover, bounded inflation, and the zlib memory a connection holds.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ws/deflate_codec.h"
#include "ws/deflate_negotiation.h"
#include "ws/deflate_workspace.h"

namespace weir::ws {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::span<const char> span_of(std::string_view s) {
  return {s.data(), s.size()};
}

// Chat-like JSON: compressible, but not trivially.
std::string json_text(size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out;
  while (out.size() < size) {
    out += "{\"type\":\"chat\",\"room\":\"lobby-" + std::to_string(rng() % 16) + "\",\"user\":\"u" +
           std::to_string(rng() % 5000) + "\",\"seq\":" + std::to_string(rng()) +
           ",\"text\":\"hello there number " + std::to_string(rng() % 100) + "\"},";
  }
  out.resize(size);
  return out;
}

std::string random_bytes(size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

std::string compress_or_die(MessageCompressor& c, std::string_view message) {
  std::string out;
  EXPECT_TRUE(c.compress(message, &out).ok());
  return out;
}

std::string inflate_or_die(MessageDecompressor& d, std::string_view payload) {
  std::string out;
  const ParseResult r = d.feed(span_of(payload), true, &out);
  EXPECT_TRUE(r.ok()) << r.reason;
  return out;
}

// ---- server negotiation ----

struct OfferCase {
  const char* offers;
  DeflateMode mode;
  const char* response;  // nullptr: declined
};

TEST(DeflateNegotiation, ServerPicksFirstAcceptableOfferAndAnswersExactly) {
  const DeflateMode kD = DeflateMode::kDedicated, kS = DeflateMode::kShared;
  const OfferCase cases[] = {
      {"permessage-deflate", kD, "permessage-deflate"},
      {"permessage-deflate; client_max_window_bits", kD,
       "permessage-deflate; client_max_window_bits=15"},
      {"permessage-deflate; server_no_context_takeover", kD,
       "permessage-deflate; server_no_context_takeover"},
      {"permessage-deflate; client_no_context_takeover", kD,
       "permessage-deflate; client_no_context_takeover"},
      {"permessage-deflate; server_max_window_bits=10", kD,
       "permessage-deflate; server_max_window_bits=10"},
      {"permessage-deflate; client_max_window_bits=12", kD,
       "permessage-deflate; client_max_window_bits=12"},
      {"permessage-deflate; client_max_window_bits=8", kD,
       "permessage-deflate; client_max_window_bits=8"},
      // zlib cannot deflate with 8 bits: decline, fall through to the next offer.
      {"permessage-deflate; server_max_window_bits=8", kD, nullptr},
      {"permessage-deflate; server_max_window_bits=8, permessage-deflate", kD,
       "permessage-deflate"},
      // Quoted values, escapes, whitespace, tabs, case.
      {"permessage-deflate; server_max_window_bits=\"10\"", kD,
       "permessage-deflate; server_max_window_bits=10"},
      {"permessage-deflate; client_max_window_bits=\"1\\2\"", kD,
       "permessage-deflate; client_max_window_bits=12"},
      {"  permessage-deflate ;client_max_window_bits ;\t server_no_context_takeover  ", kD,
       "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"},
      {"permessage-deflate; server_max_window_bits = 11", kD,
       "permessage-deflate; server_max_window_bits=11"},
      {"PerMessage-Deflate; Server_No_Context_Takeover", kD,
       "permessage-deflate; server_no_context_takeover"},
      // Other extensions are skipped, even with commas inside quoted values.
      {"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", kD,
       "permessage-deflate; client_max_window_bits=15"},
      {"foo; bar=\"a,b\", permessage-deflate", kD, "permessage-deflate"},
      // Duplicates and invalid parameters decline that offer only.
      {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", kD, nullptr},
      {"permessage-deflate; client_max_window_bits; client_max_window_bits=10, "
       "permessage-deflate; client_no_context_takeover",
       kD, "permessage-deflate; client_no_context_takeover"},
      {"permessage-deflate; foo", kD, nullptr},
      {"permessage-deflate; server_no_context_takeover=1", kD, nullptr},
      {"permessage-deflate; client_no_context_takeover=\"\"", kD, nullptr},
      {"permessage-deflate; server_max_window_bits", kD, nullptr},
      {"permessage-deflate; server_max_window_bits=7", kD, nullptr},
      {"permessage-deflate; server_max_window_bits=16", kD, nullptr},
      {"permessage-deflate; server_max_window_bits=09", kD, nullptr},
      {"permessage-deflate; server_max_window_bits=+9", kD, nullptr},
      {"permessage-deflate; client_max_window_bits=\"\"", kD, nullptr},
      {"permessage-deflate; client_max_window_bits=abc", kD, nullptr},
      {"permessage-deflate; client_max_window_bits=100", kD, nullptr},
      {"permessage-deflate; server_max_window_bits=\"10", kD, nullptr},  // unterminated
      {"permessage-deflate;", kD, nullptr},
      {"permessage-deflate x", kD, nullptr},
      {"permessage-deflate; =9", kD, nullptr},
      {"", kD, nullptr},
      {" , ,", kD, nullptr},
      {"permessage-deflate; a; b; c; d; e; f; g; h; i", kD, nullptr},
      // Shared mode forces no context takeover both ways.
      {"permessage-deflate", kS,
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
      {"permessage-deflate; client_max_window_bits", kS,
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
       "client_max_window_bits=15"},
      {"permessage-deflate; server_max_window_bits=8", kS, nullptr},
      {"permessage-deflate", DeflateMode::kOff, nullptr},
  };
  for (const OfferCase& c : cases) {
    DeflateServerPolicy policy;
    policy.mode = c.mode;
    const DeflateAgreement a = negotiate_deflate(c.offers, policy);
    SCOPED_TRACE(c.offers);
    EXPECT_EQ(a.accepted, c.response != nullptr);
    EXPECT_EQ(a.response, c.response ? c.response : "");
  }
}

TEST(DeflateNegotiation, ServerReportsAgreedParameters) {
  DeflateServerPolicy policy;
  policy.mode = DeflateMode::kDedicated;
  const DeflateAgreement a = negotiate_deflate(
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=11; "
      "client_max_window_bits=13",
      policy);
  ASSERT_TRUE(a.accepted);
  EXPECT_EQ(a.params, (DeflateParams{false, true, 11, 13}));

  policy.mode = DeflateMode::kShared;
  EXPECT_EQ(negotiate_deflate("permessage-deflate", policy).params,
            (DeflateParams{true, true, 15, 15}));
}

TEST(DeflateNegotiation, ServerPolicyCapsWindowsItMayAnnounce) {
  DeflateServerPolicy policy{DeflateMode::kDedicated, 12, 11};
  // Our window is announced even unasked; the client's only when it offered the parameter.
  EXPECT_EQ(negotiate_deflate("permessage-deflate", policy).response,
            "permessage-deflate; server_max_window_bits=12");
  EXPECT_EQ(negotiate_deflate("permessage-deflate", policy).params.client_max_window_bits, 15);
  EXPECT_EQ(negotiate_deflate("permessage-deflate; server_max_window_bits=10; "
                              "client_max_window_bits",
                              policy)
                .response,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11");
  EXPECT_EQ(negotiate_deflate("permessage-deflate; client_max_window_bits=9", policy).response,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9");
}

TEST(DeflateNegotiation, ParsesModeFlag) {
  DeflateMode mode = DeflateMode::kOff;
  EXPECT_TRUE(parse_deflate_mode("shared", &mode));
  EXPECT_EQ(mode, DeflateMode::kShared);
  EXPECT_TRUE(parse_deflate_mode("dedicated", &mode));
  EXPECT_EQ(mode, DeflateMode::kDedicated);
  EXPECT_TRUE(parse_deflate_mode("off", &mode));
  EXPECT_EQ(mode, DeflateMode::kOff);
  EXPECT_FALSE(parse_deflate_mode("on", &mode));
  EXPECT_EQ(to_string(DeflateMode::kShared), "shared");
}

// ---- client negotiation ----

TEST(DeflateNegotiation, ClientOfferListsRequestedParameters) {
  EXPECT_EQ(make_deflate_offer({}), "permessage-deflate; client_max_window_bits");
  EXPECT_EQ(make_deflate_offer({true, true, 10, true, 12}),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12");
  EXPECT_EQ(make_deflate_offer({false, false, 0, false, 0}), "permessage-deflate");
}

struct ResponseCase {
  DeflateClientOffer offer;
  const char* response;
  DeflateResponseOutcome outcome;
};

TEST(DeflateNegotiation, ClientValidatesServerResponse) {
  using O = DeflateResponseOutcome;
  const DeflateClientOffer plain{};  // client_max_window_bits, no value
  const DeflateClientOffer bare{false, false, 0, false, 0};
  const DeflateClientOffer strict{true, false, 10, true, 12};
  const ResponseCase cases[] = {
      {plain, "", O::kNotNegotiated},
      {plain, " ", O::kNotNegotiated},
      {plain, "permessage-deflate", O::kAccepted},
      {plain, "permessage-deflate; client_max_window_bits=10", O::kAccepted},
      {plain, "permessage-deflate; client_no_context_takeover", O::kAccepted},
      {plain, "permessage-deflate; server_no_context_takeover", O::kAccepted},
      {plain, "permessage-deflate; server_max_window_bits=9", O::kAccepted},
      {plain, "permessage-deflate; client_max_window_bits", O::kInvalid},
      {plain, "permessage-deflate; client_max_window_bits=8", O::kInvalid},
      {bare, "permessage-deflate; client_max_window_bits=15", O::kInvalid},
      {plain, "permessage-deflate, permessage-deflate", O::kInvalid},
      {plain, "x-webkit-deflate-frame", O::kInvalid},
      {plain, "permessage-deflate; mystery", O::kInvalid},
      {plain, "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
       O::kInvalid},
      {plain, "permessage-deflate; server_max_window_bits=16", O::kInvalid},
      {plain, "permessage-deflate;", O::kInvalid},
      {strict,
       "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
       "client_max_window_bits=12",
       O::kAccepted},
      {strict, "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
       O::kAccepted},
      {strict, "permessage-deflate; server_max_window_bits=10", O::kInvalid},
      {strict, "permessage-deflate; server_no_context_takeover", O::kInvalid},
      {strict, "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
       O::kInvalid},
      {strict,
       "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
       "client_max_window_bits=13",
       O::kInvalid},
  };
  for (const ResponseCase& c : cases) {
    SCOPED_TRACE(c.response);
    const DeflateClientResult r = accept_deflate_response(c.response, c.offer);
    EXPECT_EQ(r.outcome, c.outcome) << r.error;
  }
}

TEST(DeflateNegotiation, ClientParamsMirrorWhatTheServerAgreed) {
  const DeflateClientOffer offers[] = {
      {}, {true, true, 10, true, 12}, {false, true, 0, true, 9}, {false, false, 11, false, 0}};
  for (DeflateMode mode : {DeflateMode::kShared, DeflateMode::kDedicated}) {
    for (const DeflateClientOffer& offer : offers) {
      const std::string text = make_deflate_offer(offer);
      SCOPED_TRACE(text);
      const DeflateAgreement server = negotiate_deflate(text, {mode, 13, 14});
      ASSERT_TRUE(server.accepted);
      const DeflateClientResult client = accept_deflate_response(server.response, offer);
      ASSERT_EQ(client.outcome, DeflateResponseOutcome::kAccepted) << client.error;
      EXPECT_EQ(client.params, server.params);
    }
  }
}

// ---- RFC 7692 7.2.3 examples ----

TEST(DeflateCodec, CompressesHelloLikeRfc7692Section7231) {
  DeflateWorkspace ws;
  MessageCompressor c(&ws, {15, false});
  EXPECT_EQ(compress_or_die(c, "Hello"), bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
}

TEST(DeflateCodec, SharedWindowShrinksSecondHelloLikeSection7232) {
  DeflateWorkspace ws;
  MessageCompressor takeover(&ws, {15, true});
  MessageCompressor no_takeover(&ws, {15, false});
  const std::string first = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  EXPECT_EQ(compress_or_die(takeover, "Hello"), first);
  EXPECT_EQ(compress_or_die(takeover, "Hello"), bytes({0xf2, 0x00, 0x11, 0x00, 0x00}));
  EXPECT_EQ(compress_or_die(no_takeover, "Hello"), first);
  EXPECT_EQ(compress_or_die(no_takeover, "Hello"), first);
}

TEST(DeflateCodec, InflatesEveryRfc7692Example) {
  DeflateWorkspace ws;
  MessageDecompressor d(&ws, {15, false});
  // 7.2.3.1, whole and in the two fragments shown there.
  EXPECT_EQ(inflate_or_die(d, bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
  std::string out;
  ASSERT_TRUE(d.feed(span_of(bytes({0xf2, 0x48, 0xcd})), false, &out).ok());
  ASSERT_TRUE(d.feed(span_of(bytes({0xc9, 0xc9, 0x07, 0x00})), true, &out).ok());
  EXPECT_EQ(out, "Hello");
  // 7.2.3.3 stored block, 7.2.3.4 BFINAL block, 7.2.3.5 two blocks, 7.2.3.6 empty.
  EXPECT_EQ(
      inflate_or_die(d, bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00})),
      "Hello");
  EXPECT_EQ(inflate_or_die(d, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})), "Hello");
  EXPECT_EQ(inflate_or_die(d, bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9,
                                     0xc9, 0x07, 0x00})),
            "Hello");
  EXPECT_EQ(inflate_or_die(d, bytes({0x00})), "");
  EXPECT_EQ(inflate_or_die(d, ""), "");
  // A BFINAL block without the RFC's extra 0x00 still ends the message cleanly.
  EXPECT_EQ(inflate_or_die(d, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})), "Hello");
}

TEST(DeflateCodec, InflatesSharedWindowExampleOnlyWithContextTakeover) {
  DeflateWorkspace ws;
  const std::string first = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  const std::string second = bytes({0xf2, 0x00, 0x11, 0x00, 0x00});
  MessageDecompressor takeover(&ws, {15, true});
  EXPECT_EQ(inflate_or_die(takeover, first), "Hello");
  EXPECT_EQ(inflate_or_die(takeover, second), "Hello");

  MessageDecompressor no_takeover(&ws, {15, false});
  EXPECT_EQ(inflate_or_die(no_takeover, first), "Hello");
  std::string out;
  EXPECT_EQ(no_takeover.feed(span_of(second), true, &out).close_code, kCloseInvalidPayload);
}

TEST(DeflateCodec, KeepsWindowAcrossBfinalBlockWithContextTakeover) {
  DeflateWorkspace ws;
  MessageDecompressor d(&ws, {15, true});
  EXPECT_EQ(inflate_or_die(d, bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00})), "Hello");
  EXPECT_EQ(inflate_or_die(d, bytes({0xf2, 0x00, 0x11, 0x00, 0x00})), "Hello");
}

// ---- round trips ----

TEST(DeflateCodec, EmptyMessageIsOneZeroByteInEveryMode) {
  DeflateWorkspace ws;
  for (bool takeover : {false, true}) {
    MessageCompressor c(&ws, {15, takeover});
    MessageDecompressor d(&ws, {15, takeover});
    for (std::string_view m : {"", "abc", "", "", "abc"}) {
      const std::string payload = compress_or_die(c, m);
      if (m.empty()) {
        EXPECT_EQ(payload, bytes({0x00}));
      }
      EXPECT_EQ(inflate_or_die(d, payload), m);
    }
  }
}

TEST(DeflateCodec, RoundTripsMessagesWithAndWithoutContextTakeover) {
  DeflateWorkspace ws;
  const std::string messages[] = {json_text(32, 1),         json_text(4096, 2),
                                  random_bytes(3000, 3),    json_text(200000, 4),
                                  std::string(100000, 'x'), json_text(1, 5)};
  for (bool takeover : {false, true}) {
    MessageCompressor c(&ws, {15, takeover});
    MessageDecompressor d(&ws, {15, takeover});
    for (int round = 0; round < 2; ++round) {
      for (const std::string& m : messages) EXPECT_EQ(inflate_or_die(d, compress_or_die(c, m)), m);
    }
  }
}

TEST(DeflateCodec, ContextTakeoverMakesRepeatedMessageSmaller) {
  DeflateWorkspace ws;
  const std::string m = json_text(300, 7);
  MessageCompressor takeover(&ws, {15, true});
  MessageCompressor no_takeover(&ws, {15, false});
  const size_t first = compress_or_die(takeover, m).size();
  const size_t second = compress_or_die(takeover, m).size();
  EXPECT_LT(second * 4, first);
  EXPECT_EQ(compress_or_die(no_takeover, m).size(), first);
  EXPECT_EQ(compress_or_die(no_takeover, m).size(), first);
  // Which is also why tiny messages are only worth compressing with takeover.
  EXPECT_TRUE(takeover.worth_compressing(32));
  EXPECT_FALSE(no_takeover.worth_compressing(32));
  EXPECT_TRUE(no_takeover.worth_compressing(300));
}

TEST(DeflateCodec, CompressingPartsEqualsCompressingTheirConcatenation) {
  DeflateWorkspace ws;
  const std::string m = json_text(5000, 8);
  MessageCompressor c(&ws, {15, false});
  const std::string whole = compress_or_die(c, m);
  const std::string_view parts[] = {std::string_view(m).substr(0, 10), "",
                                    std::string_view(m).substr(10, 2000),
                                    std::string_view(m).substr(2010), ""};
  std::string pieced = "prefix";  // appends, never overwrites
  ASSERT_TRUE(c.compress(parts, &pieced).ok());
  EXPECT_EQ(pieced, "prefix" + whole);
}

TEST(DeflateCodec, AnySplitOfThePayloadInflatesTheSame) {
  DeflateWorkspace ws;
  const std::string m = json_text(700, 9) + random_bytes(100, 9);
  for (bool takeover : {false, true}) {
    MessageCompressor c(&ws, {15, takeover});
    MessageDecompressor d(&ws, {15, takeover});
    for (int message = 0; message < 2; ++message) {
      const std::string payload = compress_or_die(c, m);
      for (size_t cut = 0; cut <= payload.size(); ++cut) {
        std::string out;
        const std::string_view p(payload);
        ASSERT_TRUE(d.feed(span_of(p.substr(0, cut)), false, &out).ok());
        ASSERT_TRUE(d.feed(span_of(p.substr(cut)), true, &out).ok());
        ASSERT_EQ(out, m) << "cut at " << cut;
        if (takeover) break;  // the window moved on; one split per message
      }
      std::string out;  // byte by byte, then an empty final piece
      MessageCompressor c2(&ws, {15, false});
      MessageDecompressor d2(&ws, {15, false});
      const std::string p2 = compress_or_die(c2, m);
      for (char b : p2) ASSERT_TRUE(d2.feed({&b, 1}, false, &out).ok());
      ASSERT_TRUE(d2.feed({}, true, &out).ok());
      EXPECT_EQ(out, m);
    }
  }
}

TEST(DeflateCodec, SmallNegotiatedWindowIsHonouredByTheCompressor) {
  DeflateWorkspace ws;
  // The second message repeats the first at distance 600: within a 15-bit window, beyond a
  // 9-bit (512 byte) one. An inflater that kept only 9 bits of history cannot resolve it.
  const std::string m = random_bytes(600, 10);
  MessageCompressor narrow_c(&ws, {9, true});
  MessageDecompressor narrow_d(&ws, {9, true});
  const std::string first = compress_or_die(narrow_c, m);
  const std::string second = compress_or_die(narrow_c, m);
  EXPECT_EQ(inflate_or_die(narrow_d, first), m);
  EXPECT_EQ(inflate_or_die(narrow_d, second), m);
  EXPECT_GT(second.size(), 600u);  // no back reference was possible: stored as is

  MessageCompressor wide_c(&ws, {15, true});
  MessageDecompressor wide_into_narrow(&ws, {9, true});
  EXPECT_EQ(inflate_or_die(wide_into_narrow, compress_or_die(wide_c, m)), m);
  std::string out;
  EXPECT_EQ(wide_into_narrow.feed(span_of(compress_or_die(wide_c, m)), true, &out).close_code,
            kCloseInvalidPayload);
}

// ---- limits and bad input ----

TEST(DeflateCodec, DecompressionBombStopsAtLimitWith1009AndBoundedMemory) {
  DeflateWorkspace ws;
  MessageCompressor c(&ws, {15, false});
  const std::string bomb = compress_or_die(c, std::string(10 << 20, '\0'));
  ASSERT_LT(bomb.size(), 64u << 10);
  constexpr size_t kLimit = 1 << 20;
  MessageDecompressor d(&ws, {15, false, kLimit});
  const size_t zlib_before = ws.memory().live_bytes();
  std::string out;
  ParseResult r;
  size_t fed = 0;
  while (r.ok() && fed < bomb.size()) {  // 1 KiB frames; fails long before the last one
    const size_t n = std::min<size_t>(1024, bomb.size() - fed);
    r = d.feed(span_of(std::string_view(bomb).substr(fed, n)), fed + n == bomb.size(), &out);
    fed += n;
  }
  EXPECT_EQ(r.close_code, kCloseMessageTooBig);
  EXPECT_LT(fed, bomb.size() / 4);
  EXPECT_LE(out.size(), kLimit);
  EXPECT_LE(out.capacity(), 2 * (kLimit + DeflateWorkspace::kScratchBytes));
  EXPECT_LE(ws.memory().peak_bytes() - zlib_before, 64u << 10);  // one pooled inflater
  EXPECT_FALSE(d.in_message());
  EXPECT_FALSE(d.holds_zlib_state());
}

TEST(DeflateCodec, MessageOfExactlyTheLimitPassesOneByteMoreFails) {
  DeflateWorkspace ws;
  MessageCompressor c(&ws, {15, false});
  for (size_t limit : {size_t{0}, size_t{1}, size_t{1000}, size_t{40000}}) {
    SCOPED_TRACE(limit);
    MessageDecompressor d(&ws, {15, false, limit});
    const std::string fits = json_text(limit, 11);
    EXPECT_EQ(inflate_or_die(d, compress_or_die(c, fits)), fits);
    std::string out;
    EXPECT_EQ(d.feed(span_of(compress_or_die(c, fits + "!")), true, &out).close_code,
              kCloseMessageTooBig);
    EXPECT_EQ(inflate_or_die(d, compress_or_die(c, fits)), fits);  // next message unaffected
  }
}

TEST(DeflateCodec, CorruptOrTruncatedDataFailsWith1007) {
  DeflateWorkspace ws;
  for (bool takeover : {false, true}) {
    MessageDecompressor d(&ws, {15, takeover});
    std::string out;
    const ParseResult bad = d.feed(span_of(bytes({0xff, 0xff, 0xff, 0xff})), true, &out);
    EXPECT_EQ(bad.close_code, kCloseInvalidPayload);
    EXPECT_FALSE(bad.reason.empty());

    MessageCompressor c(&ws, {15, false});
    const std::string payload = compress_or_die(c, json_text(2000, 12));
    out.clear();
    const ParseResult cut =
        d.feed(span_of(std::string_view(payload).substr(0, payload.size() / 2)), true, &out);
    EXPECT_EQ(cut.close_code, kCloseInvalidPayload);
  }
}

// ---- zlib state ownership and memory ----

TEST(DeflateCodec, SharedModeLendsStreamsOnlyWhileAMessageIsInFlight) {
  DeflateWorkspace ws;
  MessageCompressor c(&ws, {15, false});
  const std::string a = json_text(3000, 13), b = json_text(3000, 14);
  const std::string pa = compress_or_die(c, a), pb = compress_or_die(c, b);
  MessageDecompressor da(&ws, {15, false}), db(&ws, {15, false});
  std::string out_a, out_b;
  // Two connections interleave half messages; each keeps its own borrowed inflater.
  ASSERT_TRUE(da.feed(span_of(std::string_view(pa).substr(0, 100)), false, &out_a).ok());
  ASSERT_TRUE(db.feed(span_of(std::string_view(pb).substr(0, 100)), false, &out_b).ok());
  EXPECT_TRUE(da.holds_zlib_state() && db.holds_zlib_state());
  ASSERT_TRUE(da.feed(span_of(std::string_view(pa).substr(100)), true, &out_a).ok());
  ASSERT_TRUE(db.feed(span_of(std::string_view(pb).substr(100)), true, &out_b).ok());
  EXPECT_EQ(out_a, a);
  EXPECT_EQ(out_b, b);
  EXPECT_FALSE(da.holds_zlib_state() || db.holds_zlib_state() || c.holds_zlib_state());
  EXPECT_EQ(ws.idle_inflaters(), 2u);

  ASSERT_TRUE(da.feed(span_of(std::string_view(pa).substr(0, 10)), false, &out_a).ok());
  da.abandon_message();
  EXPECT_FALSE(da.holds_zlib_state());
  EXPECT_EQ(ws.idle_inflaters(), 2u);
}

// zlib bytes one connection holds after exchanging one message each way.
size_t zlib_bytes_per_connection(DeflateMode mode, const DeflateServerPolicy& base) {
  DeflateWorkspace ws;
  DeflateServerPolicy policy = base;
  policy.mode = mode;
  const DeflateAgreement agreed =
      negotiate_deflate("permessage-deflate; client_max_window_bits", policy);
  MessageCompressor client(&ws, {15, !agreed.params.client_no_context_takeover});
  const std::string m = json_text(4096, 15);
  const std::string from_client = compress_or_die(client, m);
  // Warm the per-thread pool so only per-connection bytes remain in the difference.
  PerMessageDeflate warm(&ws, agreed.params, Role::kServer, 1 << 20);
  inflate_or_die(warm.decompressor(), from_client);
  compress_or_die(warm.compressor(), m);

  constexpr int kConnections = 32;
  std::vector<std::unique_ptr<PerMessageDeflate>> conns;
  const size_t before = ws.memory().live_bytes();
  for (int i = 0; i < kConnections; ++i) {
    conns.push_back(
        std::make_unique<PerMessageDeflate>(&ws, agreed.params, Role::kServer, 1 << 20));
    EXPECT_EQ(inflate_or_die(conns.back()->decompressor(), from_client), m);
    compress_or_die(conns.back()->compressor(), m);
  }
  return (ws.memory().live_bytes() - before) / kConnections;
}

TEST(DeflateCodec, IdleSharedConnectionHoldsNoZlibMemoryDedicatedHoldsItsWindows) {
  const size_t shared = zlib_bytes_per_connection(DeflateMode::kShared, {});
  const size_t dedicated = zlib_bytes_per_connection(DeflateMode::kDedicated, {});
  const size_t dedicated_12 =
      zlib_bytes_per_connection(DeflateMode::kDedicated, {DeflateMode::kDedicated, 12, 15});
  const size_t dedicated_12_12 =
      zlib_bytes_per_connection(DeflateMode::kDedicated, {DeflateMode::kDedicated, 12, 12});
  std::printf(
      "zlib bytes per idle connection: shared %zu, dedicated 15/15 %zu, "
      "dedicated server 12 %zu, dedicated 12/12 %zu\n",
      shared, dedicated, dedicated_12, dedicated_12_12);
  EXPECT_EQ(shared, 0u);
  // 15-bit deflater at memLevel 4 (2^17 + 2^13 + state) plus a 15-bit inflater (2^15 + state).
  EXPECT_GT(dedicated, (128u + 8 + 32) << 10);
  EXPECT_LT(dedicated, 200u << 10);
  EXPECT_LT(dedicated_12, dedicated - (100u << 10));
  EXPECT_LT(dedicated_12_12, dedicated_12 - (25u << 10));
}

TEST(DeflateCodec, DedicatedStreamsAreCreatedOnFirstMessageNotAtConnect) {
  DeflateWorkspace ws;
  const size_t before = ws.memory().live_bytes();
  PerMessageDeflate conn(&ws, DeflateParams{}, Role::kServer, 1 << 20);
  EXPECT_EQ(ws.memory().live_bytes(), before);
  compress_or_die(conn.compressor(), "hi");
  EXPECT_TRUE(conn.compressor().holds_zlib_state());
  EXPECT_GT(ws.memory().live_bytes(), before);
}

TEST(DeflateCodec, ClientAndServerRolesTalkToEachOther) {
  DeflateWorkspace ws;
  const DeflateClientOffer offer{false, true, 12, true, 0};
  const DeflateAgreement server =
      negotiate_deflate(make_deflate_offer(offer), {DeflateMode::kDedicated, 15, 11});
  const DeflateClientResult client = accept_deflate_response(server.response, offer);
  ASSERT_EQ(client.outcome, DeflateResponseOutcome::kAccepted);
  PerMessageDeflate s(&ws, server.params, Role::kServer, 1 << 20);
  PerMessageDeflate c(&ws, client.params, Role::kClient, 1 << 20);
  for (int i = 0; i < 3; ++i) {
    const std::string m = json_text(5000, 20 + i);
    EXPECT_EQ(inflate_or_die(s.decompressor(), compress_or_die(c.compressor(), m)), m);
    EXPECT_EQ(inflate_or_die(c.decompressor(), compress_or_die(s.compressor(), m)), m);
  }
  EXPECT_FALSE(c.compressor().context_takeover());  // it offered client_no_context_takeover
  EXPECT_TRUE(s.compressor().context_takeover());
}

}  // namespace
}  // namespace weir::ws
