// tests/ws_case_runner.h — Autobahn-style conformance cases for /echo: the bytes a client
// sends and the frames the server must answer with, run over a fresh connection with the bytes
// in one write, octet by octet, or split at one offset. The runner compares the answer exactly
// (close frames by code), checks every server frame is unmasked and well formed (no RSV bits,
// close codes allowed on the wire, UTF-8 reasons), and that the server ends with a FIN.
//
// Thread-safety: test-thread only.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "tests/server_harness.h"
#include "ws/utf8.h"

namespace weir::harness {

// ---------------------------------------------------------------- what a case sends

inline std::string raw(uint8_t opcode, std::string_view payload, bool fin = true, uint8_t rsv = 0) {
  FrameSpec spec;
  spec.opcode = opcode;
  spec.fin = fin;
  spec.rsv = rsv;
  return make_frame(spec, payload);
}
inline std::string text(std::string_view p, bool fin = true) {
  return frame(kOpText, p, fin);
}
inline std::string binary(std::string_view p, bool fin = true) {
  return frame(kOpBinary, p, fin);
}
inline std::string cont(std::string_view p, bool fin = true) {
  return frame(kOpCont, p, fin);
}
inline std::string ping(std::string_view p) {
  return frame(kOpPing, p);
}
inline std::string pong(std::string_view p) {
  return frame(kOpPong, p);
}
inline std::string rep(size_t n, char c) {
  return std::string(n, c);
}

// Each byte of `p` as its own fragment of one message.
inline std::string per_byte_fragments(uint8_t opcode, std::string_view p) {
  if (p.empty()) return frame(opcode, "");
  std::string out;
  for (size_t i = 0; i < p.size(); ++i)
    out += frame(i == 0 ? opcode : kOpCont, p.substr(i, 1), i + 1 == p.size());
  return out;
}

// ---------------------------------------------------------------- what a case expects

struct Expect {
  uint8_t opcode;
  std::string payload;  // for a close: the 2-byte code, or empty for an empty close
};
inline Expect echo_text(std::string p) {
  return {kOpText, std::move(p)};
}
inline Expect echo_binary(std::string p) {
  return {kOpBinary, std::move(p)};
}
inline Expect pong_of(std::string p) {
  return {kOpPong, std::move(p)};
}
inline Expect closes(uint16_t code) {
  return {kOpClose, code == 1005 ? "" : close_body(code)};
}

inline std::string describe(uint8_t opcode, std::string_view payload) {
  static const char* kNames[16] = {"cont", "text", "binary", "op3",  "op4",  "op5",
                                   "op6",  "op7",  "close",  "ping", "pong", "op11",
                                   "op12", "op13", "op14",   "op15"};
  std::string d = kNames[opcode & 15];
  if (opcode == kOpClose) {
    if (payload.empty()) return d + ":empty";
    if (payload.size() < 2) return d + ":1-byte";
    auto code = (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
    return d + ":" + std::to_string(code);
  }
  d += "[" + std::to_string(payload.size()) + "]";
  if (payload.size() <= 40) return d + ":" + std::string(payload);
  uint64_t h = 1469598103934665603ull;  // FNV-1a: big payloads compare by hash
  for (char c : payload) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  char hex[20];
  std::snprintf(hex, sizeof hex, "#%016llx", static_cast<unsigned long long>(h));
  return d + hex;
}

// Reads server frames until the stream ends; messages are reassembled from fragments and each
// is described. A protocol fault in the server's output is described as "BAD: ...".
inline std::vector<std::string> read_until_closed(RawClient& client, ReadStatus* end,
                                                  int timeout_ms = 3000) {
  std::vector<std::string> got;
  std::string message;
  int message_opcode = -1;
  for (;;) {
    Frame f;
    *end = read_frame(client, &f, timeout_ms);
    if (*end != ReadStatus::kOk) return got;
    if (f.masked) got.push_back("BAD: masked server frame");
    if (f.rsv != 0) got.push_back("BAD: RSV bits without an extension");
    if (f.opcode >= 8) {
      if (!f.fin || f.payload.size() > 125) got.push_back("BAD: malformed control frame");
      if (f.opcode == kOpClose && f.payload.size() >= 2) {
        uint16_t code = f.close_code();
        bool wire_ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                       (code >= 3000 && code <= 4999);
        if (!wire_ok) got.push_back("BAD: close code not allowed on the wire");
        if (!ws::is_valid_utf8(std::string_view(f.payload).substr(2)))
          got.push_back("BAD: close reason not UTF-8");
      }
      got.push_back(describe(f.opcode, f.payload));
      continue;
    }
    if (f.opcode != kOpCont) {
      if (message_opcode >= 0) got.push_back("BAD: new message inside a fragmented one");
      message_opcode = f.opcode;
      message.clear();
    } else if (message_opcode < 0) {
      got.push_back("BAD: continuation without a message");
    }
    message += f.payload;
    if (f.fin) {
      got.push_back(describe(static_cast<uint8_t>(message_opcode), message));
      message_opcode = -1;
    }
  }
}

inline std::vector<std::string> describe_all(const std::vector<Expect>& expect) {
  std::vector<std::string> out;
  for (const Expect& e : expect) out.push_back(describe(e.opcode, e.payload));
  return out;
}

struct Case {
  std::string name;
  std::string send;
  std::vector<Expect> expect;  // without a close at the end, the runner closes with 1000
};

enum class Delivery { kWhole, kOctets, kSplit };

// Runs `c` on a fresh connection. kSplit sends the bytes in two writes cut at `cut`.
inline ::testing::AssertionResult run_case(uint16_t port, const Case& c, Delivery delivery,
                                           size_t cut = 0) {
  auto client = open_websocket(port);
  if (!client) return ::testing::AssertionFailure() << c.name << ": handshake failed";
  std::string bytes = c.send;
  std::vector<Expect> expect = c.expect;
  if (expect.empty() || expect.back().opcode != kOpClose) {
    bytes += close_frame(1000);
    expect.push_back(closes(1000));
  }
  switch (delivery) {
    case Delivery::kWhole:
      client->send(bytes);
      break;
    case Delivery::kOctets:
      client->send_chopped(bytes, bytes.size() <= 512 ? 1 : 997);
      break;
    case Delivery::kSplit:
      client->send_split(bytes, cut);
      break;
  }
  ReadStatus end;
  std::vector<std::string> got = read_until_closed(*client, &end);
  std::vector<std::string> want = describe_all(expect);
  const char* how = delivery == Delivery::kWhole    ? "whole"
                    : delivery == Delivery::kOctets ? "octets"
                                                    : "split";
  if (got != want) {
    auto f = ::testing::AssertionFailure() << c.name << " (" << how << " " << cut << "): expected";
    for (const auto& w : want) f << " [" << w << "]";
    f << " got";
    for (const auto& g : got) f << " [" << g << "]";
    return f;
  }
  if (end != ReadStatus::kEof)
    return ::testing::AssertionFailure()
           << c.name << " (" << how << "): stream ended with " << to_string(end) << ", not a FIN";
  return ::testing::AssertionSuccess();
}

inline void run_all(const std::vector<Case>& cases, bool octets = true) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  for (const Case& c : cases) {
    EXPECT_TRUE(run_case(server.port(), c, Delivery::kWhole));
    if (octets) {
      EXPECT_TRUE(run_case(server.port(), c, Delivery::kOctets));
    }
  }
}

// Every cut in the first 40 bytes and the last 8: headers, masks and payload starts.
inline void run_split_everywhere(uint16_t port, const Case& c) {
  size_t n = c.send.size();
  for (size_t cut = 1; cut < n; ++cut) {
    if (cut > 40 && cut + 8 < n) continue;
    EXPECT_TRUE(run_case(port, c, Delivery::kSplit, cut));
  }
}

inline std::string pattern(size_t n, bool text_bytes) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    s[i] = text_bytes ? static_cast<char>('!' + x % 90) : static_cast<char>(x);
  }
  return s;
}

inline void expect_echo(RawClient& client, uint8_t opcode, const std::string& payload) {
  Frame f;
  ASSERT_EQ(read_frame(client, &f, 5000), ReadStatus::kOk);
  EXPECT_TRUE(f.fin);
  EXPECT_FALSE(f.masked);
  EXPECT_EQ(f.opcode, opcode);
  EXPECT_EQ(f.payload.size(), payload.size());
  EXPECT_TRUE(f.payload == payload) << "payload differs";
}

inline void expect_close(RawClient& client, uint16_t code, int timeout_ms = 2000) {
  ReadStatus end;
  EXPECT_EQ(read_until_closed(client, &end, timeout_ms),
            std::vector<std::string>{"close:" + std::to_string(code)});
  EXPECT_EQ(end, ReadStatus::kEof);
}

}  // namespace weir::harness
