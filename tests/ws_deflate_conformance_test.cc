// tests/ws_deflate_conformance_test.cc — permessage-deflate (RFC 7692) on /echo over real
// sockets: Autobahn groups 12 (compressed echo of many payloads and sizes) and 13 (parameter
// negotiation), with --deflate dedicated and shared, context takeover on and off, window bits
// honoured, and the failure codes for broken compressed messages.
//
// The client side compresses and inflates with zlib directly, not with ws/deflate_codec, so the
// server is checked against an independent implementation.
#include <gtest/gtest.h>
#include <zlib.h>

#include "tests/server_harness.h"
#include "ws/deflate_negotiation.h"

namespace weir::harness {
namespace {

// ---------------------------------------------------------------- the client's zlib

// Raw DEFLATE ending in a sync flush whose 00 00 ff ff tail is cut (RFC 7692 7.2.1).
class ClientDeflater {
 public:
  ClientDeflater(int window_bits, bool takeover) : takeover_(takeover) {
    deflateInit2(&z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY);
  }
  ~ClientDeflater() { deflateEnd(&z_); }
  std::string compress(std::string_view message) {
    std::string out;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(message.data()));
    z_.avail_in = static_cast<uInt>(message.size());
    do {
      size_t have = out.size();
      out.resize(have + 65536);
      z_.next_out = reinterpret_cast<Bytef*>(out.data() + have);
      z_.avail_out = 65536;
      deflate(&z_, Z_SYNC_FLUSH);
      out.resize(out.size() - z_.avail_out);
    } while (z_.avail_out == 0);
    // zlib emits nothing for an empty input right after a flush: send the empty stored block
    // RFC 7692 7.2.3.6 shows, a single 00 byte once the tail is cut.
    if (out.empty()) return std::string(1, '\0');
    EXPECT_EQ(out.substr(out.size() - 4), std::string("\x00\x00\xff\xff", 4));
    out.resize(out.size() - 4);
    if (!takeover_) deflateReset(&z_);
    return out;
  }

 private:
  z_stream z_{};
  bool takeover_;
};

class ClientInflater {
 public:
  ClientInflater(int window_bits, bool takeover) : takeover_(takeover) {
    inflateInit2(&z_, -window_bits);
  }
  ~ClientInflater() { inflateEnd(&z_); }
  // False when the payload is not DEFLATE this inflater's window can decode.
  bool inflate_message(std::string payload, std::string* out) {
    payload.append("\x00\x00\xff\xff", 4);
    out->clear();
    z_.next_in = reinterpret_cast<Bytef*>(payload.data());
    z_.avail_in = static_cast<uInt>(payload.size());
    int rc = Z_OK;
    while (z_.avail_in > 0 && rc == Z_OK) {
      size_t have = out->size();
      out->resize(have + 65536);
      z_.next_out = reinterpret_cast<Bytef*>(out->data() + have);
      z_.avail_out = 65536;
      rc = ::inflate(&z_, Z_SYNC_FLUSH);
      out->resize(out->size() - z_.avail_out);
      if (rc == Z_BUF_ERROR && z_.avail_in == 0) rc = Z_OK;
    }
    if (!takeover_) inflateReset(&z_);
    return rc == Z_OK && z_.avail_in == 0;
  }

 private:
  z_stream z_{};
  bool takeover_;
};

std::string deflate_once(std::string_view message) {
  ClientDeflater d(15, false);
  return d.compress(message);
}

// ---------------------------------------------------------------- sessions

std::string compressed_frame(uint8_t opcode, std::string_view payload, bool fin = true) {
  FrameSpec spec;
  spec.opcode = opcode;
  spec.rsv = 4;  // RSV1
  spec.fin = fin;
  return make_frame(spec, payload);
}

std::string raw_frame_with_rsv(uint8_t opcode, std::string_view payload, uint8_t rsv) {
  FrameSpec spec;
  spec.opcode = opcode;
  spec.rsv = rsv;
  return make_frame(spec, payload);
}

struct DeflateSession {
  std::unique_ptr<RawClient> client;
  ws::DeflateParams params;
  std::string response;  // Sec-WebSocket-Extensions, empty when declined
};

// Opens /echo offering `offer` and reads the agreement back with weir's client-side checker.
DeflateSession open_deflate(uint16_t port, std::string_view offer) {
  DeflateSession s;
  Response r;
  s.client = open_websocket(port, "Sec-WebSocket-Extensions: " + std::string(offer) + "\r\n", &r);
  s.response = r.header("Sec-WebSocket-Extensions");
  ws::DeflateClientOffer any;  // the checker's least demanding offer
  any.client_max_window_bits = 15;
  ws::DeflateClientResult result = ws::accept_deflate_response(s.response, any);
  s.params = result.params;
  return s;
}

// Reads one message: inflated when RSV1 is set, as is otherwise. "" opcode 0 on any fault.
struct Message {
  uint8_t opcode = 0;
  std::string payload;
  bool compressed = false;
  size_t wire_size = 0;
  std::string fault;
};

Message read_message(RawClient& client, ClientInflater& inflater) {
  Message m;
  Frame f;
  if (ReadStatus s = read_frame(client, &f, 5000); s != ReadStatus::kOk) {
    m.fault = std::string("read: ") + to_string(s);
    return m;
  }
  if (f.masked || (f.rsv & 3) != 0 || !f.fin) m.fault = "bad frame flags";
  m.opcode = f.opcode;
  m.wire_size = f.wire_size;
  m.compressed = f.rsv & 4;
  if (m.compressed && f.opcode >= 8) m.fault = "RSV1 on a control frame";
  if (!m.compressed) {
    m.payload = std::move(f.payload);
  } else if (!inflater.inflate_message(f.payload, &m.payload)) {
    m.fault = "server payload does not inflate";
  }
  return m;
}

std::string sample(size_t n, int kind, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  static constexpr std::string_view kWords[] = {"weir ",
                                                "websocket ",
                                                "deflate ",
                                                "frame ",
                                                "{\"id\":",
                                                "42,",
                                                "\"text\":\"hello\"} ",
                                                "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 "};
  size_t i = 0;
  while (i < n) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    if (kind == 0) {  // text: words, so it compresses like JSON or prose does
      std::string_view w = kWords[x % 8];
      if (i + w.size() > n) w = "x";
      std::copy(w.begin(), w.end(), s.begin() + i);
      i += w.size();
    } else {  // random binary: incompressible
      s[i++] = static_cast<char>(x);
    }
  }
  return s;
}

// ---------------------------------------------------------------- group 13: negotiation

struct OfferCase {
  ws::DeflateMode mode;
  std::string offer;
  std::string response;  // "" when the server must decline
};

TEST(WsDeflateConformance, NegotiatesEachOfferAsRfc7692Requires) {
  using M = ws::DeflateMode;
  std::vector<OfferCase> cases = {
      {M::kDedicated, "permessage-deflate", "permessage-deflate"},
      {M::kDedicated, "permessage-deflate; client_max_window_bits",
       "permessage-deflate; client_max_window_bits=15"},
      {M::kDedicated, "permessage-deflate; server_no_context_takeover",
       "permessage-deflate; server_no_context_takeover"},
      {M::kDedicated, "permessage-deflate; client_no_context_takeover",
       "permessage-deflate; client_no_context_takeover"},
      {M::kDedicated, "permessage-deflate; server_max_window_bits=9",
       "permessage-deflate; server_max_window_bits=9"},
      {M::kDedicated, "permessage-deflate; server_max_window_bits=15",
       "permessage-deflate; server_max_window_bits=15"},
      {M::kDedicated, "permessage-deflate; client_max_window_bits=9",
       "permessage-deflate; client_max_window_bits=9"},
      {M::kDedicated, "permessage-deflate; server_max_window_bits=\"10\"",
       "permessage-deflate; server_max_window_bits=10"},
      // 13.3/13.5: a window of 8 for our compressor cannot be honoured with zlib: declined.
      {M::kDedicated, "permessage-deflate; server_max_window_bits=8", ""},
      // 13.7: several offers; the first acceptable one wins.
      {M::kDedicated,
       "permessage-deflate; server_no_context_takeover; server_max_window_bits=8, "
       "permessage-deflate; server_no_context_takeover",
       "permessage-deflate; server_no_context_takeover"},
      {M::kDedicated, "x-webkit-deflate-frame, permessage-deflate", "permessage-deflate"},
      {M::kDedicated, "permessage-deflate; unknown_param", ""},
      {M::kDedicated, "permessage-deflate; server_max_window_bits=16", ""},
      {M::kDedicated, "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
       ""},
      {M::kDedicated, "permessage-deflate; client_no_context_takeover=1", ""},
      {M::kShared, "permessage-deflate",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
      {M::kShared, "permessage-deflate; client_max_window_bits",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
       "client_max_window_bits=15"},
      {M::kOff, "permessage-deflate", ""},
  };
  for (M mode : {M::kOff, M::kShared, M::kDedicated}) {
    ServerConfig config;
    config.http.deflate.mode = mode;
    TestServer server(config);
    ASSERT_TRUE(server.started()) << server.error();
    for (const OfferCase& c : cases) {
      if (c.mode != mode) continue;
      SCOPED_TRACE(c.offer);
      DeflateSession s = open_deflate(server.port(), c.offer);
      ASSERT_TRUE(s.client);
      EXPECT_EQ(s.response, c.response);
      s.client->send(close_frame(1000));
      ReadStatus end;
      Frame f;
      EXPECT_EQ(read_frame(*s.client, &f), ReadStatus::kOk);
      EXPECT_EQ(f.close_code(), 1000);
      EXPECT_EQ(end = s.client->wait_closed(), ReadStatus::kEof);
    }
  }
  // Offers split over two header lines are one list (RFC 9110 5.3).
  ServerConfig config;
  config.http.deflate.mode = M::kDedicated;
  TestServer server(config);
  Response r;
  auto client =
      open_websocket(server.port(),
                     "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n"
                     "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n",
                     &r);
  ASSERT_TRUE(client);
  EXPECT_EQ(r.header("Sec-WebSocket-Extensions"), "permessage-deflate; client_no_context_takeover");
}

// ---------------------------------------------------------------- group 12: compressed echo

// Echoes messages of many sizes under one agreement; the client compresses every message (even
// tiny ones), alternates text and binary, and sends some uncompressed and some fragmented.
void exercise_agreement(uint16_t port, std::string_view offer) {
  SCOPED_TRACE(offer);
  DeflateSession s = open_deflate(port, offer);
  ASSERT_TRUE(s.client);
  ASSERT_FALSE(s.response.empty()) << "deflate declined";
  const ws::DeflateParams& p = s.params;
  ClientDeflater deflater(std::max<int>(p.client_max_window_bits, 9),
                          !p.client_no_context_takeover);
  // The inflater gets exactly the window the server promised: a larger distance fails it.
  ClientInflater inflater(p.server_max_window_bits, !p.server_no_context_takeover);
  RawClient& c = *s.client;
  uint32_t seed = 1;
  for (size_t n : {0u, 1u, 16u, 63u, 64u, 125u, 126u, 1000u, 4096u, 32768u, 65536u, 262144u}) {
    for (int i = 0; i < 4; ++i, ++seed) {
      const int kind = i % 2;
      const uint8_t op = kind == 0 ? kOpText : kOpBinary;
      std::string msg = sample(n, kind, seed);
      // An uncompressed message stays out of the compressor's history.
      std::string z = i == 3 ? std::string() : deflater.compress(msg);
      if (i == 2 && z.size() > 3) {  // fragmented: RSV1 on the first frame only
        size_t a = z.size() / 3, b = 2 * z.size() / 3;
        c.send(compressed_frame(op, z.substr(0, a), false) +
               frame(kOpCont, z.substr(a, b - a), false) + frame(kOpCont, z.substr(b)));
      } else if (i == 3) {  // uncompressed: allowed message by message
        c.send(frame(op, msg));
      } else {
        c.send(compressed_frame(op, z));
      }
      Message m = read_message(c, inflater);
      ASSERT_EQ(m.fault, "") << "size " << n << " #" << i;
      ASSERT_EQ(m.opcode, op) << (m.opcode == kOpClose ? m.payload : "");
      EXPECT_EQ(m.payload.size(), msg.size());
      ASSERT_TRUE(m.payload == msg) << "size " << n << " #" << i;
      // Below 64 bytes compressing does not pay; the server sends such messages as they are.
      EXPECT_EQ(m.compressed, n >= 64) << "size " << n;
    }
  }
  c.send(close_frame(1000));
  Frame f;
  ASSERT_EQ(read_frame(c, &f), ReadStatus::kOk);
  EXPECT_EQ(f.opcode, kOpClose);
  EXPECT_EQ(f.close_code(), 1000);
  EXPECT_EQ(c.wait_closed(), ReadStatus::kEof);
}

TEST(WsDeflateConformance, EchoesCompressedMessagesUnderEveryAgreementDedicated) {
  ServerConfig config;
  config.http.deflate.mode = ws::DeflateMode::kDedicated;
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  for (const char* offer :
       {"permessage-deflate", "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
        "permessage-deflate; client_max_window_bits=9; server_no_context_takeover"}) {
    exercise_agreement(server.port(), offer);
  }
}

TEST(WsDeflateConformance, EchoesCompressedMessagesUnderEveryAgreementShared) {
  ServerConfig config;
  config.http.deflate.mode = ws::DeflateMode::kShared;
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  for (const char* offer :
       {"permessage-deflate", "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"}) {
    exercise_agreement(server.port(), offer);
  }
}

// With context takeover a repeated message refers back to the previous one and shrinks; without
// it each message stands alone (and inflates on a fresh stream).
TEST(WsDeflateConformance, ContextTakeoverIsUsedExactlyWhenAgreed) {
  std::string msg = sample(3000, 1, 7);  // incompressible on its own: only history helps
  for (auto mode : {ws::DeflateMode::kDedicated, ws::DeflateMode::kShared}) {
    ServerConfig config;
    config.http.deflate.mode = mode;
    TestServer server(config);
    ASSERT_TRUE(server.started()) << server.error();
    DeflateSession s = open_deflate(server.port(), "permessage-deflate");
    ASSERT_TRUE(s.client);
    bool takeover = mode == ws::DeflateMode::kDedicated;
    EXPECT_EQ(s.params.server_no_context_takeover, !takeover);
    ClientDeflater deflater(15, takeover);
    ClientInflater inflater(15, takeover);
    std::string z1 = deflater.compress(msg), z2 = deflater.compress(msg);
    if (takeover) {
      EXPECT_LT(z2.size(), z1.size() / 10) << "the client's own history";
    }
    s.client->send(compressed_frame(kOpBinary, z1) + compressed_frame(kOpBinary, z2));
    Message m1 = read_message(*s.client, inflater), m2 = read_message(*s.client, inflater);
    ASSERT_EQ(m1.fault, "");
    ASSERT_EQ(m2.fault, "");
    EXPECT_TRUE(m1.payload == msg && m2.payload == msg);
    if (takeover) {
      EXPECT_LT(m2.wire_size, m1.wire_size / 10) << "server did not use its window";
    } else {
      EXPECT_EQ(m2.wire_size, m1.wire_size) << "server kept context it agreed to drop";
    }
  }
}

// 13.x window sizes: data that repeats at a distance of 600 bytes can only use those matches
// with a window over 512 bytes; an inflater limited to 9 bits fails if the server used them.
TEST(WsDeflateConformance, ServerCompressesWithinTheAgreedWindow) {
  ServerConfig config;
  config.http.deflate.mode = ws::DeflateMode::kDedicated;
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  std::string block = sample(600, 1, 99), msg;
  for (int i = 0; i < 8; ++i) msg += block;
  DeflateSession s = open_deflate(server.port(), "permessage-deflate; server_max_window_bits=9");
  ASSERT_TRUE(s.client);
  ASSERT_EQ(s.params.server_max_window_bits, 9);
  ClientInflater narrow(9, true);
  s.client->send(compressed_frame(kOpBinary, deflate_once(msg)));
  Message m = read_message(*s.client, narrow);
  EXPECT_EQ(m.fault, "");
  EXPECT_TRUE(m.payload == msg);
  // Sanity: with a 15-bit window the same data does use those matches.
  DeflateSession wide = open_deflate(server.port(), "permessage-deflate");
  ClientInflater inflater(15, true);
  wide.client->send(compressed_frame(kOpBinary, deflate_once(msg)));
  Message w = read_message(*wide.client, inflater);
  EXPECT_LT(w.wire_size, m.wire_size / 2);
}

// ---------------------------------------------------------------- broken compressed messages

void expect_close_code(RawClient& client, uint16_t code) {
  Frame f;
  ASSERT_EQ(read_frame(client, &f), ReadStatus::kOk);
  EXPECT_EQ(f.opcode, kOpClose);
  EXPECT_EQ(f.close_code(), code);
  EXPECT_EQ(f.rsv, 0);
  EXPECT_EQ(client.wait_closed(), ReadStatus::kEof);
}

TEST(WsDeflateConformance, BrokenCompressedMessagesCloseWithTheirCode) {
  ServerConfig config;
  config.http.deflate.mode = ws::DeflateMode::kDedicated;
  config.http.websocket.max_message_size = 64 << 10;
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  std::string z = deflate_once("Hello, compressed world! Hello, compressed world!");
  std::string bad_utf8 = deflate_once("valid text, then \xed\xa0\x80 a surrogate");
  std::string bomb = deflate_once(std::string((64 << 10) + 1, '\0'));
  std::string exact = deflate_once(std::string(64 << 10, '\0'));
  struct BrokenCase {
    const char* name;
    std::string bytes;
    uint16_t code;
  };
  std::vector<BrokenCase> cases = {
      {"RSV1 on a continuation",
       compressed_frame(kOpText, z.substr(0, 5), false) + compressed_frame(kOpCont, z.substr(5)),
       1002},
      {"RSV1 on a ping", compressed_frame(kOpPing, "x"), 1002},
      {"RSV2 with deflate", raw_frame_with_rsv(kOpText, z, 2), 1002},
      {"not DEFLATE", compressed_frame(kOpBinary, "\xff\xff\xff\xff garbage"), 1007},
      {"text inflating to invalid UTF-8", compressed_frame(kOpText, bad_utf8), 1007},
      {"decompression bomb over the limit", compressed_frame(kOpBinary, bomb), 1009},
  };
  for (const BrokenCase& c : cases) {
    SCOPED_TRACE(c.name);
    DeflateSession s = open_deflate(server.port(), "permessage-deflate");
    ASSERT_TRUE(s.client);
    s.client->send(c.bytes);
    expect_close_code(*s.client, c.code);
  }
  // Exactly at the limit after inflating is fine.
  DeflateSession s = open_deflate(server.port(), "permessage-deflate");
  ClientInflater inflater(15, true);
  s.client->send(compressed_frame(kOpBinary, exact));
  Message m = read_message(*s.client, inflater);
  EXPECT_EQ(m.fault, "");
  EXPECT_EQ(m.payload.size(), 64u << 10);
  // Without deflate agreed, RSV1 is a protocol error (Autobahn 3.4).
  DeflateSession plain = open_deflate(server.port(), "x-unknown-extension");
  ASSERT_TRUE(plain.client);
  EXPECT_EQ(plain.response, "");
  plain.client->send(compressed_frame(kOpText, z));
  expect_close_code(*plain.client, 1002);
}

}  // namespace
}  // namespace weir::harness
