// Frame encoding: exact header bytes (RFC 6455 5.7 examples), control frame helpers, and
// round trips through FrameParser in both roles.
#include "ws/frame_encoder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/frame_recorder.h"
#include "ws/frame_parser.h"
#include "ws/mask.h"

namespace weir::ws {
namespace {

using testing::FrameRecorder;
using Events = std::vector<std::string>;

const uint32_t kKey = [] {
  uint32_t k;
  std::memcpy(&k, "\x37\xfa\x21\x3d", 4);
  return k;
}();

std::string header(Opcode op, bool fin, bool rsv1, uint64_t len, const uint32_t* mask) {
  char buf[kMaxFrameHeaderSize];
  const size_t n = encode_frame_header(buf, op, fin, rsv1, len, mask);
  EXPECT_EQ(n, frame_header_size(len, mask != nullptr));
  return std::string(buf, n);
}

TEST(FrameEncoder, HeaderSizeFollowsMinimalLengthForm) {
  static_assert(frame_header_size(0, false) == 2);
  static_assert(frame_header_size(125, false) == 2);
  static_assert(frame_header_size(126, false) == 4);
  static_assert(frame_header_size(65535, false) == 4);
  static_assert(frame_header_size(65536, false) == 10);
  static_assert(frame_header_size(UINT64_MAX >> 1, true) == kMaxFrameHeaderSize);
  static_assert(frame_header_size(125, true) == 6);
  static_assert(kMaxControlFrameSize == 131);
}

TEST(FrameEncoder, EncodesRfcExampleHeaders) {
  EXPECT_EQ(header(Opcode::kText, true, false, 5, nullptr), "\x81\x05");
  EXPECT_EQ(header(Opcode::kText, true, false, 5, &kKey), "\x81\x85\x37\xfa\x21\x3d");
  EXPECT_EQ(header(Opcode::kText, false, false, 3, nullptr), "\x01\x03");
  EXPECT_EQ(header(Opcode::kContinuation, true, false, 2, nullptr), std::string("\x80\x02", 2));
  EXPECT_EQ(header(Opcode::kBinary, true, false, 256, nullptr), std::string("\x82\x7e\x01\x00", 4));
  EXPECT_EQ(header(Opcode::kBinary, true, false, 65536, nullptr),
            std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
}

TEST(FrameEncoder, EncodesRsv1AndLargeLengths) {
  EXPECT_EQ(header(Opcode::kText, true, true, 0, nullptr), std::string("\xc1\x00", 2));
  EXPECT_EQ(header(Opcode::kBinary, true, false, 0x0102030405060708ull, &kKey),
            "\x82\xff\x01\x02\x03\x04\x05\x06\x07\x08\x37\xfa\x21\x3d");
  EXPECT_EQ(header(Opcode::kBinary, true, false, 65535, nullptr), "\x82\x7e\xff\xff");
}

TEST(FrameEncoder, EncodesUnmaskedAndMaskedPingLikeRfc) {
  char buf[kMaxControlFrameSize];
  size_t n = encode_ping_frame(buf, "Hello", nullptr);
  EXPECT_EQ(std::string(buf, n), "\x89\x05Hello");
  n = encode_pong_frame(buf, "Hello", &kKey);
  EXPECT_EQ(std::string(buf, n), "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
}

TEST(FrameEncoder, EncodesCloseFrames) {
  char buf[kMaxControlFrameSize];
  size_t n = encode_close_frame(buf, kCloseNormal, "bye", nullptr);
  EXPECT_EQ(std::string(buf, n),
            "\x88\x05\x03\xe8"
            "bye");
  n = encode_close_frame(buf, kCloseNoStatus, "ignored", nullptr);
  EXPECT_EQ(std::string(buf, n), std::string("\x88\x00", 2));
}

TEST(FrameEncoder, TruncatesOversizedControlPayloads) {
  char buf[kMaxControlFrameSize];
  const size_t n = encode_ping_frame(buf, std::string(300, 'x'), &kKey);
  EXPECT_EQ(n, kMaxControlFrameSize);
  EXPECT_EQ(static_cast<unsigned char>(buf[1]), 0x80 | 125);
}

// ---- round trips -----------------------------------------------------------------------

// Encodes data frames and control frames as `sender` would and parses them as the peer.
class RoundTrip {
 public:
  explicit RoundTrip(Role receiver) : masked_(receiver == Role::kServer) {
    config_.role = receiver;
    config_.allow_rsv1 = true;
    config_.max_message_size = UINT64_MAX;
  }
  void data(Opcode op, bool fin, bool rsv1, const std::string& payload) {
    char h[kMaxFrameHeaderSize];
    const uint32_t key = next_key();
    const size_t n =
        encode_frame_header(h, op, fin, rsv1, payload.size(), masked_ ? &key : nullptr);
    wire_.append(h, n);
    std::string body = payload;
    if (masked_) apply_mask(body.data(), body.size(), key, 0);
    wire_ += body;
  }
  void ping(std::string_view p) { control(encode_ping_frame, p); }
  void pong(std::string_view p) { control(encode_pong_frame, p); }
  void close(uint16_t code, std::string_view reason) {
    char buf[kMaxControlFrameSize];
    const uint32_t key = next_key();
    wire_.append(buf, encode_close_frame(buf, code, reason, masked_ ? &key : nullptr));
  }
  Events parse(size_t chunk) {
    FrameRecorder rec;
    FrameParser parser(config_, &rec);
    std::string copy = wire_;
    for (size_t off = 0; off < copy.size(); off += chunk) {
      ParseResult r = parser.consume(copy.data() + off, std::min(chunk, copy.size() - off));
      EXPECT_TRUE(r.ok()) << r.reason;
    }
    return rec.events;
  }

 private:
  using ControlEncoder = size_t (*)(char*, std::string_view, const uint32_t*);
  void control(ControlEncoder enc, std::string_view p) {
    char buf[kMaxControlFrameSize];
    const uint32_t key = next_key();
    wire_.append(buf, enc(buf, p, masked_ ? &key : nullptr));
  }
  uint32_t next_key() { return key_ = key_ * 2654435761u + 12345u; }

  FrameParserConfig config_;
  bool masked_;
  uint32_t key_ = 1;
  std::string wire_;
};

TEST(FrameEncoder, RoundTripsThroughParserInBothRoles) {
  for (Role receiver : {Role::kServer, Role::kClient}) {
    RoundTrip rt(receiver);
    std::vector<std::string> want;
    for (size_t len : {0, 1, 125, 126, 65535, 65536, 200000}) {
      std::string payload(len, '\0');
      for (size_t i = 0; i < len; ++i) payload[i] = static_cast<char>('a' + i % 26);
      rt.data(Opcode::kText, true, false, payload);
      want.push_back("begin:1");
      want.push_back("data:" + payload + "|end");
    }
    rt.data(Opcode::kBinary, false, true, "comp");
    rt.ping("are you there");
    rt.data(Opcode::kContinuation, false, false, "ressed");
    rt.pong("");
    rt.data(Opcode::kContinuation, true, false, "!");
    rt.close(kCloseGoingAway, "shutting down");
    for (const char* e : {"begin:2:z", "data:comp", "ping:are you there", "data:ressed",
                          "pong:", "data:!|end", "close:1001:shutting down"}) {
      want.push_back(e);
    }
    for (size_t chunk : {size_t{1} << 30, size_t{4096}, size_t{7}, size_t{1}}) {
      ASSERT_EQ(rt.parse(chunk), want) << "chunk " << chunk;
    }
  }
}

TEST(FrameEncoder, CloseReasonTruncatedAtCharacterBoundaryStillParses) {
  std::string reason;
  for (int i = 0; i < 100; ++i) reason += "\xc3\xa9";  // 200 bytes of é
  RoundTrip rt(Role::kServer);
  rt.close(kCloseNormal, reason);
  const Events events = rt.parse(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], "close:1000:" + reason.substr(0, 122));
}

TEST(FrameEncoder, EmptyCloseRoundTripsAsNoStatus) {
  RoundTrip rt(Role::kClient);
  rt.close(kCloseNoStatus, "");
  EXPECT_EQ(rt.parse(3), Events{"close:none:1005:"});
}

}  // namespace
}  // namespace weir::ws
