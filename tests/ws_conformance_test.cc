// tests/ws_conformance_test.cc — RFC 6455 conformance of /echo over real sockets, with cases
// built from the Autobahn TestSuite list (groups 1-5, 7, 9, 10; group 6 is in
// ws_utf8_conformance_test.cc, 12 and 13 in ws_deflate_conformance_test.cc), keepalive pings
// and idle closes, and the opening-handshake failures of section 4.
//
// Cases (tests/ws_case_runner.h) run with the bytes in one write, octet by octet, and some split
// at every offset; the answer must match exactly and end with the server's FIN.
#include <gtest/gtest.h>

#include "tests/ws_case_runner.h"

namespace weir::harness {
namespace {

// ---------------------------------------------------------------- groups 1 and 10: framing

TEST(WsConformance, EchoesTextAndBinaryAtEveryLengthEncodingBoundary) {
  std::vector<Case> cases;
  for (size_t n : {0, 1, 125, 126, 127, 128, 65535, 65536}) {
    std::string t = rep(n, '*'), b = rep(n, '\xfe');
    cases.push_back({"1.1 text " + std::to_string(n), text(t), {echo_text(t)}});
    cases.push_back({"1.2 binary " + std::to_string(n), binary(b), {echo_binary(b)}});
  }
  std::string big = rep(65536, 'x');  // 10.1.1: auto-fragmentation, 1300-byte fragments
  std::string fragmented;
  for (size_t off = 0; off < big.size(); off += 1300)
    fragmented +=
        frame(off == 0 ? kOpText : kOpCont, big.substr(off, 1300), off + 1300 >= big.size());
  cases.push_back({"10.1.1 fragmented 64 KiB", fragmented, {echo_text(big)}});
  run_all(cases);
}

TEST(WsConformance, RejectsMalformedHeadersWith1002) {
  std::string p5 = "Hello";
  FrameSpec unmasked;
  unmasked.mask = false;
  FrameSpec long16;  // 16-bit length for a 5-byte payload
  long16.length_form = 2;
  FrameSpec long64;  // 64-bit length for a 200-byte payload
  long64.length_form = 8;
  FrameSpec msb;  // 64-bit length with the most significant bit set; no payload follows
  msb.opcode = kOpBinary;
  msb.announced = 0x8000000000000000ull;
  FrameSpec control16;  // a ping announcing 126 bytes in the 16-bit form
  control16.opcode = kOpPing;
  control16.announced = 126;
  FrameSpec unmasked_close;
  unmasked_close.opcode = kOpClose;
  unmasked_close.mask = false;
  run_all({
      {"unmasked text", make_frame(unmasked, p5), {closes(1002)}},
      {"unmasked close", make_frame(unmasked_close, close_body(1000)), {closes(1002)}},
      {"non-minimal 16-bit length", make_frame(long16, p5), {closes(1002)}},
      {"non-minimal 64-bit length", make_frame(long64, rep(200, 'a')), {closes(1002)}},
      {"64-bit length with MSB set", make_frame(msb, ""), {closes(1002)}},
      {"ping with 16-bit length", make_frame(control16, ""), {closes(1002)}},
      {"good frame then unmasked",
       text(p5) + make_frame(unmasked, p5),
       {echo_text(p5), closes(1002)}},
  });
}

// ---------------------------------------------------------------- group 2: pings and pongs

TEST(WsConformance, AnswersPingsWithPongsAndIgnoresUnsolicitedPongs) {
  const std::string bin("\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 8);
  std::string ten_pings;
  std::vector<Expect> ten_pongs;
  for (int i = 0; i < 10; ++i) {
    std::string p = "payload-" + std::to_string(i);
    ten_pings += ping(p);
    ten_pongs.push_back(pong_of(p));
  }
  run_all({
      {"2.1 empty ping", ping(""), {pong_of("")}},
      {"2.2 text ping", ping("Hello, world!"), {pong_of("Hello, world!")}},
      {"2.3 binary ping", ping(bin), {pong_of(bin)}},
      {"2.4 125-byte ping", ping(rep(125, '\xfe')), {pong_of(rep(125, '\xfe'))}},
      {"2.5 126-byte ping", ping(rep(126, '\xfe')), {closes(1002)}},
      {"2.7 unsolicited empty pong", pong(""), {}},
      {"2.8 unsolicited pong", pong("unsolicited pong payload"), {}},
      {"2.9 pong then ping", pong("unsolicited") + ping("ping payload"), {pong_of("ping payload")}},
      {"2.10 ten pings", ten_pings, ten_pongs},
  });
}

TEST(WsConformance, SplitAtEveryOffsetGivesTheSameAnswer) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  std::string t126 = rep(126, 'z');
  std::string utf8 = "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!";
  std::vector<Case> cases = {
      {"2.6 125-byte ping", ping(rep(125, 'p')), {pong_of(rep(125, 'p'))}},
      {"1.1.3 16-bit length text", text(t126), {echo_text(t126)}},
      {"1.2.7 64-bit length binary", binary(rep(65536, 'b')), {echo_binary(rep(65536, 'b'))}},
      {"5.6 fragment, ping, fragment",
       text("fragment1", false) + ping("pong me") + cont("fragment2"),
       {pong_of("pong me"), echo_text("fragment1fragment2")}},
      {"6.2 UTF-8 text", text(utf8), {echo_text(utf8)}},
      {"6.3 invalid UTF-8 text",
       text("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
            "edited"),
       {closes(1007)}},
      {"7.3.4 close with reason", close_frame(1000, "Hello World!"), {closes(1000)}},
      {"7.5.1 close with invalid UTF-8 reason",
       close_frame(1000, "\xce\xba\xe1\xbd\xb9\xed\xa0\x80"),
       {closes(1007)}},
      {"3.2 text then RSV2 frame",
       text("Hello") + raw(kOpText, "Hello", true, 2) + ping("x"),
       {echo_text("Hello"), closes(1002)}},
  };
  for (const Case& c : cases) run_split_everywhere(server.port(), c);
}

// ---------------------------------------------------------------- groups 3 and 4

TEST(WsConformance, RejectsReservedBitsAndReservedOpcodesWith1002) {
  std::vector<Case> cases = {
      {"3.1 RSV3 on text", raw(kOpText, "Hello", true, 1), {closes(1002)}},
      {"3.2 RSV2 after a good frame",
       text("Hello") + raw(kOpText, "Hello", true, 2) + ping("Hello"),
       {echo_text("Hello"), closes(1002)}},
      {"3.3 RSV2+3",
       text("Hello") + raw(kOpText, "Hello", true, 3) + ping("Hello"),
       {echo_text("Hello"), closes(1002)}},
      {"3.4 RSV1 without deflate",
       text("Hello") + raw(kOpText, "Hello", true, 4) + ping("Hello"),
       {echo_text("Hello"), closes(1002)}},
      {"3.5 RSV1+3 on binary",
       raw(kOpBinary, std::string("\x00\xff\xfe", 3), true, 5),
       {closes(1002)}},
      {"3.6 RSV1+2 on ping", raw(kOpPing, "Hello", true, 6), {closes(1002)}},
      {"3.7 all RSV on close", raw(kOpClose, close_body(1000), true, 7), {closes(1002)}},
  };
  for (uint8_t op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
    std::string n = "4 opcode " + std::to_string(op);
    cases.push_back({n + " alone", raw(op, ""), {closes(1002)}});
    cases.push_back({n + " with payload", raw(op, "reserved opcode"), {closes(1002)}});
    cases.push_back({n + " after text",
                     text("Hello") + raw(op, "") + ping("Hello"),
                     {echo_text("Hello"), closes(1002)}});
  }
  run_all(cases);
}

// ---------------------------------------------------------------- group 5: fragmentation

TEST(WsConformance, ReassemblesFragmentsAndRejectsBrokenSequences) {
  std::string f1 = "fragment1", f2 = "fragment2", f3 = "fragment3", f4 = "fragment4",
              f5 = "fragment5";
  run_all({
      {"5.1 fragmented ping", raw(kOpPing, f1, false) + cont(f2), {closes(1002)}},
      {"5.2 fragmented pong", raw(kOpPong, f1, false) + cont(f2), {closes(1002)}},
      {"5.3 two text fragments", text(f1, false) + cont(f2), {echo_text(f1 + f2)}},
      {"5.x three binary fragments",
       binary(f1, false) + cont(f2, false) + cont(f3),
       {echo_binary(f1 + f2 + f3)}},
      {"5.x empty fragments",
       binary("", false) + cont("", false) + cont(f1, false) + cont(""),
       {echo_binary(f1)}},
      {"5.6 ping between fragments",
       text(f1, false) + ping("ping payload") + cont(f2),
       {pong_of("ping payload"), echo_text(f1 + f2)}},
      {"5.x pong between fragments", text(f1, false) + pong("x") + cont(f2), {echo_text(f1 + f2)}},
      {"5.9 continuation with FIN, nothing to continue", cont(f1) + text(f2), {closes(1002)}},
      {"5.12 continuation without FIN, nothing to continue",
       cont(f1, false) + text(f2),
       {closes(1002)}},
      {"5.15 message, then a continuation of nothing",
       text(f1, false) + cont(f2) + cont(f3, false) + text(f4),
       {echo_text(f1 + f2), closes(1002)}},
      {"5.16 continuation, text, continuation",
       cont(f1, false) + text(f2, false) + cont(f3),
       {closes(1002)}},
      {"5.17 continuation FIN, text, continuation",
       cont(f1) + text(f2, false) + cont(f3),
       {closes(1002)}},
      {"5.18 text fragment followed by text", text(f1, false) + text(f2), {closes(1002)}},
      {"5.x binary fragment followed by binary", binary(f1, false) + binary(f2), {closes(1002)}},
      {"5.19 five fragments with two pings",
       text(f1, false) + cont(f2, false) + ping("pongme 1!") + cont(f3, false) + cont(f4, false) +
           ping("pongme 2!") + cont(f5),
       {pong_of("pongme 1!"), pong_of("pongme 2!"), echo_text(f1 + f2 + f3 + f4 + f5)}},
  });
}

// ---------------------------------------------------------------- group 7: closing

TEST(WsConformance, CloseHandshakeEchoesTheCodeAndIgnoresWhatFollows) {
  std::string big = rep(256 << 10, '\x42');
  run_all({
      {"7.1.1 message then close",
       text("Hello World!") + close_frame(1000),
       {echo_text("Hello World!"), closes(1000)}},
      {"7.1.2 two closes", close_frame(1000) + close_frame(1000), {closes(1000)}},
      {"7.1.3 ping after close", close_frame(1000) + ping("Hello"), {closes(1000)}},
      {"7.1.4 text after close", close_frame(1000) + text("Hello"), {closes(1000)}},
      {"7.1.5 close inside a fragmented message",
       text("fragment1", false) + close_frame(1000) + cont("fragment2"),
       {closes(1000)}},
      {"7.1.6 big message, ping, close",
       binary(big) + ping("Hello") + close_frame(1000),
       {echo_binary(big), pong_of("Hello"), closes(1000)}},
      {"7.3.1 empty close", frame(kOpClose, ""), {closes(1005)}},
      {"7.3.2 one-byte close", frame(kOpClose, "\x03"), {closes(1002)}},
      {"7.3.3 close 1000", close_frame(1000), {closes(1000)}},
      {"7.3.4 close with reason", close_frame(1000, "Hello World!"), {closes(1000)}},
      {"7.3.5 close with 123-byte reason", close_frame(1000, rep(123, 'r')), {closes(1000)}},
      {"7.3.6 close with 124-byte reason", close_frame(1000, rep(124, 'r')), {closes(1002)}},
      {"7.5.1 invalid UTF-8 reason",
       close_frame(
           1000,
           "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"),
       {closes(1007)}},
      {"7.x reason cut inside a character", close_frame(1000, "abc\xe2\x82"), {closes(1007)}},
  });
}

TEST(WsConformance, EveryValidCloseCodeIsEchoedAndEveryInvalidOneIs1002) {
  std::vector<Case> cases;
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                        3000, 3999, 4000, 4999}) {
    cases.push_back(
        {"7.7 code " + std::to_string(code), close_frame(code, "reason"), {closes(code)}});
  }
  for (uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    cases.push_back({"7.9 code " + std::to_string(code), close_frame(code), {closes(1002)}});
  }
  run_all(cases);
}

// ---------------------------------------------------------------- group 9: limits and size

TEST(WsConformance, EchoesMessagesUpTo16MiBWholeFragmentedAndChopped) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  auto client = open_websocket(server.port());
  ASSERT_TRUE(client);
  for (size_t n : {64u << 10, 256u << 10, 1u << 20, 4u << 20, 16u << 20}) {  // 9.1, 9.2
    std::string t = pattern(n, true), b = pattern(n, false);
    client->send(text(t));
    expect_echo(*client, kOpText, t);
    client->send(binary(b));
    expect_echo(*client, kOpBinary, b);
  }
  std::string four = pattern(4 << 20, true);  // 9.3, 9.4: 4 MiB in fragments
  for (size_t frag : {64u, 4u << 10, 256u << 10, 4u << 20}) {
    for (uint8_t op : {kOpText, kOpBinary}) {
      std::string bytes;
      for (size_t off = 0; off < four.size(); off += frag)
        bytes += frame(off == 0 ? op : kOpCont, std::string_view(four).substr(off, frag),
                       off + frag >= four.size());
      client->send(bytes);
      expect_echo(*client, op, four);
    }
  }
  std::string one = pattern(1 << 20, true);  // 9.5, 9.6: 1 MiB written in small chops
  for (size_t chop : {64u, 512u, 4096u}) {
    client->send_chopped(text(one), chop, 0);
    expect_echo(*client, kOpText, one);
  }
  client->send(close_frame(1000));
  expect_close(*client, 1000);
}

TEST(WsConformance, ManySmallRoundTripsInSequence) {  // 9.7, 9.8
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  auto client = open_websocket(server.port());
  ASSERT_TRUE(client);
  for (size_t n : {0u, 16u, 64u, 256u, 1024u, 4096u}) {
    std::string t = pattern(n, true), b = pattern(n, false);
    for (int i = 0; i < 200; ++i) {
      client->send(i % 2 ? binary(b) : text(t));
      Frame f;
      ASSERT_EQ(read_frame(*client, &f), ReadStatus::kOk);
      ASSERT_EQ(f.opcode, i % 2 ? kOpBinary : kOpText);
      ASSERT_TRUE(f.payload == (i % 2 ? b : t));
    }
  }
  client->send(close_frame(1000));
  expect_close(*client, 1000);
}

TEST(WsConformance, MaxMessageSizeClosesWith1009AsSoonAsAHeaderExceedsIt) {
  ServerConfig config;
  config.http.websocket.max_message_size = 1024;
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  std::string k1 = rep(1024, 'a');
  std::vector<Case> cases = {
      {"exactly the limit", text(k1), {echo_text(k1)}},
      {"exactly the limit in fragments",
       binary(k1.substr(0, 600), false) + cont(k1.substr(600)),
       {echo_binary(k1)}},
      {"control frames do not count",
       binary(k1.substr(0, 1000), false) + ping(rep(125, 'p')) + cont(rep(24, 'a')),
       {pong_of(rep(125, 'p')), echo_binary(k1)}},
  };
  for (const Case& c : cases) EXPECT_TRUE(run_case(server.port(), c, Delivery::kWhole));
  // Only the header of the offending frame is sent: the verdict must not wait for the payload.
  FrameSpec over;
  over.announced = 1025;
  auto client = open_websocket(server.port());
  ASSERT_TRUE(client);
  std::string h = make_frame(over, "");
  client->send(h);
  expect_close(*client, 1009);
  client = open_websocket(server.port());
  ASSERT_TRUE(client);
  client->send(binary(rep(600, 'b'), false));
  FrameSpec tail;
  tail.opcode = kOpCont;
  tail.announced = 425;
  client->send(make_frame(tail, ""));
  expect_close(*client, 1009);
  // The 16 MiB default: one byte over, announced in a 64-bit header.
  TestServer defaults;
  client = open_websocket(defaults.port());
  ASSERT_TRUE(client);
  over.announced = (16u << 20) + 1;
  over.opcode = kOpBinary;
  client->send(make_frame(over, ""));
  expect_close(*client, 1009);
}

// ---------------------------------------------------------------- keepalive and timeouts

TEST(WsConformance, PingsSilentClientsThenClosesThemWith1001) {
  ServerConfig config;
  config.http.websocket.ping_interval_ms = 100;
  config.http.websocket.idle_timeout_ms = 350;
  config.http.websocket.close_timeout_ms = 150;
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();

  auto silent = open_websocket(server.port());
  ASSERT_TRUE(silent);
  int64_t start = core::monotonic_ms();
  Frame f;
  ASSERT_EQ(read_frame(*silent, &f, 1000), ReadStatus::kOk);
  EXPECT_EQ(f.opcode, kOpPing);
  EXPECT_FALSE(f.masked);
  EXPECT_GE(core::monotonic_ms() - start, 80);
  // Nothing back: more pings, then a 1001 close; unanswered, TCP goes after close_timeout.
  std::vector<std::string> got;
  ReadStatus end;
  for (const std::string& d : read_until_closed(*silent, &end, 2000))
    if (d != "ping[0]:") got.push_back(d);
  EXPECT_EQ(got, std::vector<std::string>{"close:1001"});
  EXPECT_NE(end, ReadStatus::kTimeout);
  int64_t elapsed = core::monotonic_ms() - start;
  EXPECT_GE(elapsed, 450);  // idle timeout plus close timeout
  EXPECT_LE(elapsed, 1500);

  // A client that talks is never idle.
  auto chatty = open_websocket(server.port());
  ASSERT_TRUE(chatty);
  for (int i = 0; i < 10; ++i) {
    chatty->send(text("still here"));
    do {  // a ping may come between if this thread is slow to run; it is no close
      ASSERT_EQ(read_frame(*chatty, &f, 1000), ReadStatus::kOk);
    } while (f.opcode == kOpPing);
    EXPECT_EQ(describe(f.opcode, f.payload), "text[10]:still here");
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  chatty->send(close_frame(1000));
  ASSERT_EQ(read_frame(*chatty, &f, 1000), ReadStatus::kOk);
  while (f.opcode == kOpPing) ASSERT_EQ(read_frame(*chatty, &f, 1000), ReadStatus::kOk);
  EXPECT_EQ(describe(f.opcode, f.payload), "close:1000");
  EXPECT_EQ(chatty->wait_closed(1000), ReadStatus::kEof);
}

TEST(WsConformance, ClosesTcpPromptlyAfterAnsweringTheClientsClose) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  auto client = open_websocket(server.port());
  ASSERT_TRUE(client);
  client->send(close_frame(1000));
  int64_t start = core::monotonic_ms();
  expect_close(*client, 1000);
  EXPECT_LT(core::monotonic_ms() - start, 500);
  client->close();  // our FIN ends the server's linger
  EXPECT_TRUE(server.wait_open_connections_at_most(0, 2000));
}

// ---------------------------------------------------------------- the opening handshake

struct HandshakeCase {
  const char* name;
  std::string request;
  int status;
  std::string body;         // the one-line reason, "" to skip
  std::string header_name;  // a header the response must carry
  std::string header_value;
};

std::string handshake(std::string_view path, std::string_view lines,
                      std::string_view method = "GET", std::string_view version = "HTTP/1.1") {
  std::string r(method);
  r.append(" ").append(path).append(" ").append(version).append("\r\n").append(lines).append(
      "\r\n");
  return r;
}

TEST(WsConformance, MalformedHandshakesGetTheirStatusAndClose) {
  ServerConfig config;
  config.http.handshake.allowed_origins = {"https://good.example"};
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  const std::string host = "Host: 127.0.0.1\r\n";
  const std::string up = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
  const std::string key = std::string("Sec-WebSocket-Key: ") + kClientKey + "\r\n";
  const std::string v13 = "Sec-WebSocket-Version: 13\r\n";
  std::vector<HandshakeCase> cases = {
      {"POST", handshake("/echo", host + up + key + v13, "POST"), 405,
       "WebSocket handshake must be GET\n", "Allow", "GET"},
      {"HTTP/1.0", handshake("/echo", host + up + key + v13, "GET", "HTTP/1.0"), 400,
       "WebSocket handshake requires HTTP/1.1\n", "", ""},
      {"no Host", handshake("/echo", up + key + v13), 400, "missing Host header\n", "", ""},
      {"two Hosts", handshake("/echo", host + host + up + key + v13), 400,
       "multiple Host headers\n", "", ""},
      {"Upgrade: h2c",
       handshake("/echo", host + "Upgrade: h2c\r\nConnection: Upgrade\r\n" + key + v13), 400,
       "Upgrade header must include websocket\n", "", ""},
      {"Connection without upgrade",
       handshake("/echo", host + "Upgrade: websocket\r\nConnection: keep-alive\r\n" + key + v13),
       400, "Connection header must include upgrade\n", "", ""},
      {"no version", handshake("/echo", host + up + key), 426, "Sec-WebSocket-Version must be 13\n",
       "Sec-WebSocket-Version", "13"},
      {"version 8", handshake("/echo", host + up + key + "Sec-WebSocket-Version: 8\r\n"), 426,
       "Sec-WebSocket-Version must be 13\n", "Sec-WebSocket-Version", "13"},
      {"two versions", handshake("/echo", host + up + key + v13 + v13), 426,
       "Sec-WebSocket-Version must be 13\n", "Sec-WebSocket-Version", "13"},
      {"no key", handshake("/echo", host + up + v13), 400,
       "WebSocket handshake requires one Sec-WebSocket-Key\n", "", ""},
      {"two keys", handshake("/echo", host + up + key + key + v13), 400,
       "WebSocket handshake requires one Sec-WebSocket-Key\n", "", ""},
      {"short key", handshake("/echo", host + up + "Sec-WebSocket-Key: c2hvcnQ=\r\n" + v13), 400,
       "Sec-WebSocket-Key must be base64 of 16 bytes\n", "", ""},
      {"key not base64",
       handshake("/echo", host + up + "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n" + v13), 400,
       "Sec-WebSocket-Key must be base64 of 16 bytes\n", "", ""},
      {"foreign origin",
       handshake("/echo", host + up + key + v13 + "Origin: https://evil.example\r\n"), 403,
       "origin not allowed\n", "", ""},
      {"unknown path", handshake("/nope", host + up + key + v13), 404,
       "no WebSocket endpoint at this path\n", "", ""},
  };
  for (const HandshakeCase& c : cases) {
    SCOPED_TRACE(c.name);
    RawClient client(server.port());
    ASSERT_TRUE(client.connected());
    // Frames right behind the request must not be taken for WebSocket traffic.
    client.send(c.request + text("must not be echoed"));
    Response r = read_response(client);
    EXPECT_EQ(r.status, c.status) << r.status_line;
    if (!c.body.empty()) {
      EXPECT_EQ(r.body, c.body);
    }
    if (!c.header_name.empty()) {
      EXPECT_EQ(r.header(c.header_name), c.header_value);
    }
    EXPECT_NE(r.header("Connection").find("close"), std::string::npos) << r.head_bytes;
    EXPECT_EQ(client.wait_closed(1000), ReadStatus::kEof);
    EXPECT_EQ(client.buffered(), "");
  }
}

TEST(WsConformance, ValidHandshakeSwitchesProtocolsAndKeepsFramesSentBehindIt) {
  ServerConfig config;
  config.http.handshake.allowed_origins = {"https://good.example"};
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  for (std::string extra : {std::string(""), std::string("Origin: https://GOOD.example\r\n"),
                            std::string("Sec-WebSocket-Protocol: chat, superchat\r\n")}) {
    SCOPED_TRACE(extra);
    RawClient client(server.port());
    // Token lists, odd case: still a handshake.
    std::string req =
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
        "Sec-WebSocket-Key: " +
        std::string(kClientKey) + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n";
    client.send(req + text("right behind the request"));
    Response r = read_response(client);
    ASSERT_EQ(r.status, 101) << r.head_bytes;
    EXPECT_TRUE(iequals(r.header("Upgrade"), "websocket"));
    EXPECT_TRUE(iequals(r.header("Connection"), "upgrade"));
    EXPECT_EQ(r.header("Sec-WebSocket-Accept"), kClientAccept);
    EXPECT_FALSE(r.has("Sec-WebSocket-Protocol")) << "no subprotocol is configured";
    EXPECT_FALSE(r.has("Sec-WebSocket-Extensions")) << "deflate is off by default";
    expect_echo(client, kOpText, "right behind the request");
    client.send(close_frame(1000));
    expect_close(client, 1000);
  }
  // A plain GET of a WebSocket path is told to upgrade.
  RawClient plain(server.port());
  plain.send(get_request("/echo"));
  Response r = read_response(plain);
  EXPECT_EQ(r.status, 426);
  EXPECT_TRUE(iequals(r.header("Upgrade"), "websocket"));
}

}  // namespace
}  // namespace weir::harness
