// FrameParser behaviour: RFC 6455 section 5 framing, validation and delivery, checked under
// every way of splitting the input.
#include "ws/frame_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/frame_recorder.h"

namespace weir::ws {
namespace {

using testing::b0;
using testing::frame;
using testing::FrameRecorder;
using testing::parse_bytewise;
using testing::parse_cut;
using testing::parse_whole;
using testing::ParseRun;
using testing::raw_frame;

using Events = std::vector<std::string>;

FrameParserConfig client_config() {
  FrameParserConfig c;
  c.role = Role::kClient;
  return c;
}

FrameParserConfig deflate_config() {
  FrameParserConfig c;
  c.allow_rsv1 = true;
  return c;
}

// Parses whole, byte by byte and split once at every offset; all must log `want`.
void expect_events_under_every_split(const std::string& stream, const Events& want,
                                     FrameParserConfig config = {}) {
  ParseRun whole = parse_whole(stream, config);
  ASSERT_TRUE(whole.result.ok()) << whole.result.reason;
  EXPECT_EQ(whole.events, want);
  ParseRun bytewise = parse_bytewise(stream, config);
  ASSERT_TRUE(bytewise.result.ok()) << bytewise.result.reason;
  EXPECT_EQ(bytewise.events, want);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ParseRun split = parse_cut(stream, {cut}, config);
    ASSERT_TRUE(split.result.ok()) << "cut " << cut << ": " << split.result.reason;
    ASSERT_EQ(split.events, want) << "cut " << cut;
  }
}

// Expects `code` whichever way the stream is split, and byte-by-byte exactly when byte
// `fail_byte` arrives (fail fast).
void expect_error_at(const std::string& stream, uint16_t code, size_t fail_byte,
                     FrameParserConfig config = {}) {
  ParseRun whole = parse_whole(stream, config);
  EXPECT_EQ(whole.result.close_code, code) << whole.result.reason;
  ParseRun bytewise = parse_bytewise(stream, config);
  EXPECT_EQ(bytewise.result.close_code, code) << bytewise.result.reason;
  EXPECT_EQ(bytewise.error_at, fail_byte + 1) << bytewise.result.reason;
  // Cuts past the failing byte behave like the whole stream; stop there to stay fast on
  // the 64 KiB cases.
  for (size_t cut = 0; cut <= std::min(stream.size(), fail_byte + 32); ++cut) {
    ASSERT_EQ(parse_cut(stream, {cut}, config).result.close_code, code) << "cut " << cut;
  }
}

// ---- valid streams ---------------------------------------------------------------------

TEST(FrameParser, DeliversMaskedTextMessageWhole) {
  expect_events_under_every_split(frame(Opcode::kText, "Hello"), {"begin:1", "data:Hello|end"});
}

TEST(FrameParser, DeliversUnmaskedBinaryMessageInClientRole) {
  const std::string payload("\x00\xff\x10", 3);
  expect_events_under_every_split(raw_frame(b0(Opcode::kBinary), payload, false),
                                  {"begin:2", "data:" + payload + "|end"}, client_config());
}

TEST(FrameParser, EmptyMessageEndsWithOneEmptyCompleteCall) {
  expect_events_under_every_split(frame(Opcode::kText, ""), {"begin:1", "data:|end"});
}

TEST(FrameParser, DeliversSeveralMessagesFromOneBuffer) {
  std::string s =
      frame(Opcode::kText, "one") + frame(Opcode::kBinary, "two") + frame(Opcode::kText, "three");
  expect_events_under_every_split(
      s, {"begin:1", "data:one|end", "begin:2", "data:two|end", "begin:1", "data:three|end"});
}

class FrameParserLength : public ::testing::TestWithParam<size_t> {};

TEST_P(FrameParserLength, DeliversPayloadOfBoundaryLengthInBothRoles) {
  const size_t len = GetParam();
  std::string payload(len, 'x');
  for (size_t i = 0; i < len; ++i) payload[i] = static_cast<char>('a' + i % 26);
  const Events want = {"begin:2", "data:" + payload + "|end"};
  for (bool server : {true, false}) {
    FrameParserConfig config = server ? FrameParserConfig{} : client_config();
    std::string stream = raw_frame(b0(Opcode::kBinary), payload, server);
    EXPECT_EQ(parse_whole(stream, config).events, want);
    EXPECT_EQ(parse_bytewise(stream, config).events, want);
    // Cuts inside the header, at its end, and at odd places in the payload.
    for (size_t cut : {size_t{1}, size_t{3}, size_t{9}, size_t{13}, stream.size() / 2 + 1}) {
      if (cut > stream.size()) continue;
      ParseRun run = parse_cut(stream, {cut}, config);
      ASSERT_TRUE(run.result.ok()) << run.result.reason;
      EXPECT_EQ(run.events, want) << "cut " << cut;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Lengths, FrameParserLength,
                         ::testing::Values(0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20));

TEST(FrameParser, FragmentedMessageWithInterleavedControlFramesSurvivesEverySplit) {
  std::string s = frame(Opcode::kText, "Hel", false) + frame(Opcode::kPing, "p1") +
                  frame(Opcode::kContinuation, "", false) + frame(Opcode::kPong, "") +
                  frame(Opcode::kContinuation, "lo ", false) + frame(Opcode::kPing, "") +
                  frame(Opcode::kContinuation, "world");
  expect_events_under_every_split(
      s, {"begin:1", "data:Hel", "ping:p1", "pong:", "data:lo ", "ping:", "data:world|end"});
}

TEST(FrameParser, FragmentedMessageEndingInEmptyFinalFrame) {
  std::string s = frame(Opcode::kBinary, "ab", false) + frame(Opcode::kContinuation, "");
  expect_events_under_every_split(s, {"begin:2", "data:ab|end"});
}

TEST(FrameParser, AssemblesSplitControlPayloadAndDeliversItWhole) {
  const std::string payload(125, 'p');
  ParseRun run = parse_bytewise(frame(Opcode::kPing, payload));
  ASSERT_TRUE(run.result.ok());
  EXPECT_EQ(run.events, Events{"ping:" + payload});
}

TEST(FrameParser, UnmasksInPlaceAndDeliversSpansIntoTheCallerBuffer) {
  std::string stream = frame(Opcode::kBinary, "payload!") + frame(Opcode::kPing, "pp");
  FrameRecorder rec;
  FrameParser parser({}, &rec);
  ASSERT_TRUE(parser.consume(stream.data(), stream.size()).ok());
  ASSERT_EQ(rec.data_spans.size(), 1u);
  EXPECT_EQ(rec.data_spans[0].data(), stream.data() + 6);
  EXPECT_EQ(stream.substr(6, 8), "payload!");
  EXPECT_EQ(stream.substr(20, 2), "pp");  // whole control payloads are unmasked in place too
}

TEST(FrameParser, DeliversDataAsItArrivesWithoutWaitingForTheFrameEnd) {
  std::string stream = frame(Opcode::kBinary, "abcdef");
  FrameRecorder rec;
  FrameParser parser({}, &rec);
  ASSERT_TRUE(parser.consume(stream.data(), 9).ok());  // header (6) + "abc"
  EXPECT_EQ(rec.events, (Events{"begin:2", "data:abc"}));
  EXPECT_TRUE(parser.in_message());
  ASSERT_TRUE(parser.consume(stream.data() + 9, stream.size() - 9).ok());
  EXPECT_EQ(rec.events, (Events{"begin:2", "data:abcdef|end"}));
  EXPECT_FALSE(parser.in_message());
}

TEST(FrameParser, ReportsCompressedMessagesAndLeavesTheirUtf8ToTheCaller) {
  std::string s =
      raw_frame(b0(Opcode::kText, false, 0x40), "\xff\xfe") + frame(Opcode::kContinuation, "\xc0");
  expect_events_under_every_split(s, {"begin:1:z", "data:\xff\xfe\xc0|end"}, deflate_config());
}

TEST(FrameParser, InMessageTracksFragmentedMessages) {
  std::string stream = frame(Opcode::kBinary, "a", false) + frame(Opcode::kPing, "");
  FrameRecorder rec;
  FrameParser parser({}, &rec);
  ASSERT_TRUE(parser.consume(stream.data(), stream.size()).ok());
  EXPECT_TRUE(parser.in_message());
  EXPECT_EQ(parser.message_opcode(), Opcode::kBinary);
  EXPECT_FALSE(parser.message_compressed());
}

// ---- close frames ----------------------------------------------------------------------

std::string close_frame(uint16_t code, std::string_view reason) {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xff);
  p += reason;
  return frame(Opcode::kClose, p);
}

TEST(FrameParser, DeliversCloseWithCodeAndReason) {
  expect_events_under_every_split(close_frame(1000, "bye"), {"close:1000:bye"});
}

TEST(FrameParser, EmptyCloseHasNoCodeAnd1005Semantics) {
  expect_events_under_every_split(frame(Opcode::kClose, ""), {"close:none:1005:"});
}

TEST(FrameParser, IgnoresBytesAfterClose) {
  std::string s = close_frame(1001, "") + frame(Opcode::kText, "late") + "\xff\xff";
  ParseRun run = parse_whole(s);
  EXPECT_TRUE(run.result.ok());
  EXPECT_EQ(run.events, Events{"close:1001:"});
  FrameRecorder rec;
  FrameParser parser({}, &rec);
  parser.consume(s.data(), s.size());
  EXPECT_TRUE(parser.close_received());
}

TEST(FrameParser, AcceptsCloseInsideFragmentedMessage) {
  std::string s = frame(Opcode::kText, "a", false) + close_frame(1000, "");
  expect_events_under_every_split(s, {"begin:1", "data:a", "close:1000:"});
}

TEST(FrameParser, AcceptsEveryCloseCodeAllowedOnTheWire) {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                        3000, 3999, 4000, 4999}) {
    ParseRun run = parse_whole(close_frame(code, ""));
    EXPECT_TRUE(run.result.ok()) << code;
    EXPECT_EQ(run.events, Events{"close:" + std::to_string(code) + ":"});
  }
}

TEST(FrameParser, RejectsCloseCodesNotAllowedOnTheWireWith1002) {
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    std::string s = close_frame(static_cast<uint16_t>(code), "");
    expect_error_at(s, kCloseProtocolError, s.size() - 1);
  }
}

TEST(FrameParser, RejectsOneByteClosePayloadWith1002) {
  std::string s = frame(Opcode::kClose, "\x03");
  expect_error_at(s, kCloseProtocolError, s.size() - 1);
}

TEST(FrameParser, RejectsCloseReasonWithInvalidUtf8With1007) {
  std::string s = close_frame(1000, "ok\xed\xa0\x80");
  expect_error_at(s, kCloseInvalidPayload, s.size() - 1);
}

// ---- header validation (all fail fast at the byte that proves the error) ----------------

TEST(FrameParser, RejectsRsv2AndRsv3With1002) {
  for (uint8_t bits : {0x20, 0x10, 0x30}) {
    expect_error_at(raw_frame(b0(Opcode::kText, true, bits), "x"), kCloseProtocolError, 1);
    expect_error_at(raw_frame(b0(Opcode::kText, true, bits), "x"), kCloseProtocolError, 1,
                    deflate_config());
  }
}

TEST(FrameParser, RejectsRsv1WithoutNegotiatedExtensionWith1002) {
  expect_error_at(raw_frame(b0(Opcode::kText, true, 0x40), "x"), kCloseProtocolError, 1);
}

TEST(FrameParser, RejectsRsv1OnContinuationWith1002) {
  std::string s =
      frame(Opcode::kText, "a", false) + raw_frame(b0(Opcode::kContinuation, true, 0x40), "b");
  expect_error_at(s, kCloseProtocolError, 7 + 1, deflate_config());
}

TEST(FrameParser, RejectsRsv1OnControlFrameWith1002) {
  expect_error_at(raw_frame(b0(Opcode::kPing, true, 0x40), ""), kCloseProtocolError, 1,
                  deflate_config());
}

TEST(FrameParser, RejectsReservedOpcodesWith1002) {
  for (uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    expect_error_at(raw_frame(static_cast<uint8_t>(0x80 | op), "x"), kCloseProtocolError, 1);
  }
}

TEST(FrameParser, RejectsFragmentedControlFramesWith1002) {
  for (Opcode op : {Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
    expect_error_at(raw_frame(b0(op, false), ""), kCloseProtocolError, 1);
  }
}

TEST(FrameParser, RejectsControlPayloadOver125With1002) {
  for (Opcode op : {Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
    expect_error_at(frame(op, std::string(126, 'a')), kCloseProtocolError, 1);
  }
}

TEST(FrameParser, RejectsContinuationWithoutMessageWith1002) {
  expect_error_at(frame(Opcode::kContinuation, "x"), kCloseProtocolError, 1);
  std::string after_complete = frame(Opcode::kText, "a") + frame(Opcode::kContinuation, "b");
  expect_error_at(after_complete, kCloseProtocolError, 7 + 1);
}

TEST(FrameParser, RejectsNewDataMessageDuringFragmentedMessageWith1002) {
  for (Opcode op : {Opcode::kText, Opcode::kBinary}) {
    std::string s = frame(Opcode::kBinary, "a", false) + frame(op, "b");
    expect_error_at(s, kCloseProtocolError, 7 + 1);
  }
}

TEST(FrameParser, RejectsNonMinimalLengthEncodingsWith1002) {
  // 16-bit form for 125 bytes: known bad once the 2 length bytes are in (offset 3).
  expect_error_at(raw_frame(b0(Opcode::kBinary), std::string(125, 'a'), true, 126),
                  kCloseProtocolError, 3);
  expect_error_at(raw_frame(b0(Opcode::kBinary), std::string(0, 'a'), true, 126),
                  kCloseProtocolError, 3);
  // 64-bit form for 65535 bytes: bad at the last length byte (offset 9).
  expect_error_at(raw_frame(b0(Opcode::kBinary), std::string(65535, 'a'), true, 127),
                  kCloseProtocolError, 9);
}

TEST(FrameParser, Rejects64BitLengthWithMostSignificantBitSetWith1002) {
  std::string s = "\x82\xff";
  s += std::string("\x80\x00\x00\x00\x00\x00\x00\x01", 8);
  s += "abcd";
  FrameParserConfig unlimited;
  unlimited.max_message_size = UINT64_MAX;
  expect_error_at(s, kCloseProtocolError, 9, unlimited);
}

TEST(FrameParser, RejectsUnmaskedFrameInServerRoleWith1002) {
  expect_error_at(raw_frame(b0(Opcode::kText), "hi", false), kCloseProtocolError, 1);
}

TEST(FrameParser, RejectsMaskedFrameInClientRoleWith1002) {
  expect_error_at(raw_frame(b0(Opcode::kText), "hi", true), kCloseProtocolError, 1,
                  client_config());
}

// ---- message size ----------------------------------------------------------------------

TEST(FrameParser, AcceptsMessageOfExactlyMaxSize) {
  FrameParserConfig c;
  c.max_message_size = 10;
  std::string s = frame(Opcode::kBinary, "12345", false) + frame(Opcode::kContinuation, "67890");
  expect_events_under_every_split(s, {"begin:2", "data:1234567890|end"}, c);
}

TEST(FrameParser, RejectsOversizedFrameWith1009BeforeItsPayload) {
  FrameParserConfig c;
  c.max_message_size = 1000;
  // 16-bit length 1001: known once byte 3 arrives, before the mask key and payload.
  expect_error_at(frame(Opcode::kBinary, std::string(1001, 'a')), kCloseMessageTooBig, 3, c);
  c.max_message_size = 100;
  expect_error_at(frame(Opcode::kBinary, std::string(101, 'a')), kCloseMessageTooBig, 1, c);
}

TEST(FrameParser, RejectsMessageWhoseFragmentsExceedMaxSizeWith1009) {
  FrameParserConfig c;
  c.max_message_size = 10;
  std::string s = frame(Opcode::kText, "123456", false) + frame(Opcode::kPing, "") +
                  frame(Opcode::kContinuation, "78901");
  expect_error_at(s, kCloseMessageTooBig, 12 + 6 + 1, c);
}

TEST(FrameParser, CountsMaxSizePerMessageNotPerConnection) {
  FrameParserConfig c;
  c.max_message_size = 4;
  std::string s = frame(Opcode::kText, "abcd") + frame(Opcode::kText, "efgh");
  expect_events_under_every_split(s, {"begin:1", "data:abcd|end", "begin:1", "data:efgh|end"}, c);
}

TEST(FrameParser, ControlFramesDoNotCountTowardsMessageSize) {
  FrameParserConfig c;
  c.max_message_size = 2;
  std::string s = frame(Opcode::kText, "a", false) + frame(Opcode::kPing, std::string(100, 'p')) +
                  frame(Opcode::kContinuation, "b");
  ParseRun run = parse_whole(s, c);
  EXPECT_TRUE(run.result.ok()) << run.result.reason;
}

// ---- UTF-8 in text messages ------------------------------------------------------------

TEST(FrameParser, AcceptsMultibyteTextSplitAcrossFragments) {
  // U+20AC (E2 82 AC) and U+1F600 (F0 9F 98 80) cut between fragments, with a ping inside.
  std::string s = frame(Opcode::kText, "\xe2", false) +
                  frame(Opcode::kContinuation, "\x82", false) + frame(Opcode::kPing, "") +
                  frame(Opcode::kContinuation, "\xac\xf0\x9f", false) +
                  frame(Opcode::kContinuation, "\x98\x80");
  expect_events_under_every_split(
      s, {"begin:1", "data:\xe2\x82", "ping:", "data:\xac\xf0\x9f\x98\x80|end"});
}

TEST(FrameParser, RejectsInvalidUtf8AtTheOffendingByteWith1007) {
  // Header is 6 bytes; payload offsets are shifted by it.
  expect_error_at(frame(Opcode::kText, "ab\xc0\x80zz"), kCloseInvalidPayload, 6 + 2);
  expect_error_at(frame(Opcode::kText, "\xed\xa0\x80"), kCloseInvalidPayload, 6 + 1);
  expect_error_at(frame(Opcode::kText, "\xf4\x90\x80\x80"), kCloseInvalidPayload, 6 + 1);
  expect_error_at(frame(Opcode::kText, "ok\xf8\x88\x80\x80\x80"), kCloseInvalidPayload, 6 + 2);
  expect_error_at(frame(Opcode::kText, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
                  kCloseInvalidPayload, 6 + 12);
}

TEST(FrameParser, RejectsInvalidSequenceSplitAcrossFragmentsAtTheOffendingByte) {
  // E2 82 then "(" in the next fragment: fails on the first payload byte of frame two.
  std::string s = frame(Opcode::kText, "\xe2\x82", false) + frame(Opcode::kContinuation, "(");
  expect_error_at(s, kCloseInvalidPayload, 8 + 6);
  // Valid prefix, then a ping, then a surrogate tail.
  std::string t = frame(Opcode::kText, "a\xed", false) + frame(Opcode::kPing, "x") +
                  frame(Opcode::kContinuation, "\xb0\x80");
  expect_error_at(t, kCloseInvalidPayload, 8 + 7 + 6);
}

TEST(FrameParser, RejectsTextMessageEndingInsideSequenceWith1007) {
  std::string s = frame(Opcode::kText, "ok\xe2\x82");
  expect_error_at(s, kCloseInvalidPayload, s.size() - 1);
  std::string t = frame(Opcode::kText, "ok\xf0", false) + frame(Opcode::kContinuation, "");
  expect_error_at(t, kCloseInvalidPayload, t.size() - 1);
}

TEST(FrameParser, DoesNotValidateBinaryMessages) {
  expect_events_under_every_split(frame(Opcode::kBinary, "\xff\xc0"),
                                  {"begin:2", "data:\xff\xc0|end"});
}

// ---- error state and handler control ---------------------------------------------------

TEST(FrameParser, StaysFailedAndRepeatsTheFirstError) {
  FrameRecorder rec;
  FrameParser parser({}, &rec);
  std::string bad = raw_frame(b0(Opcode::kText), "x", false);
  ParseResult first = parser.consume(bad.data(), bad.size());
  EXPECT_EQ(first.close_code, kCloseProtocolError);
  EXPECT_EQ(first.reason, "unmasked frame from client");
  std::string good = frame(Opcode::kText, "fine");
  ParseResult again = parser.consume(good.data(), good.size());
  EXPECT_EQ(again.close_code, kCloseProtocolError);
  EXPECT_EQ(again.reason, first.reason);
  EXPECT_TRUE(parser.failed());
  EXPECT_TRUE(rec.events.empty());
}

class FailingHandler : public FrameRecorder {
 public:
  FrameParser* parser = nullptr;
  void on_message_begin(Opcode op, bool compressed) override {
    FrameRecorder::on_message_begin(op, compressed);
    parser->fail(kClosePolicyViolation, "handler said no");
  }
};

TEST(FrameParser, HandlerFailStopsParsingImmediately) {
  FailingHandler rec;
  FrameParser parser({}, &rec);
  rec.parser = &parser;
  std::string s = frame(Opcode::kText, "abc") + frame(Opcode::kPing, "");
  ParseResult r = parser.consume(s.data(), s.size());
  EXPECT_EQ(r.close_code, kClosePolicyViolation);
  EXPECT_EQ(r.reason, "handler said no");
  EXPECT_EQ(rec.events, Events{"begin:1"});
}

TEST(FrameParser, FailKeepsTheFirstError) {
  FrameRecorder rec;
  FrameParser parser({}, &rec);
  parser.fail(kCloseMessageTooBig, "inflated message too big");
  parser.fail(kCloseInternalError, "later");
  std::string s = frame(Opcode::kText, "x");
  ParseResult r = parser.consume(s.data(), s.size());
  EXPECT_EQ(r.close_code, kCloseMessageTooBig);
  EXPECT_EQ(r.reason, "inflated message too big");
  EXPECT_EQ(parser.error().close_code, kCloseMessageTooBig);
}

TEST(FrameParser, ResetClearsStateAndAppliesNewConfig) {
  FrameRecorder rec;
  FrameParser parser({}, &rec);
  std::string bad = raw_frame(b0(Opcode::kText, true, 0x40), "x");
  EXPECT_FALSE(parser.consume(bad.data(), bad.size()).ok());
  parser.reset(deflate_config());
  bad = raw_frame(b0(Opcode::kText, true, 0x40), "x");
  EXPECT_TRUE(parser.consume(bad.data(), bad.size()).ok());
  EXPECT_FALSE(parser.failed());
  EXPECT_EQ(rec.events, (Events{"begin:1:z", "data:x|end"}));
}

}  // namespace
}  // namespace weir::ws
