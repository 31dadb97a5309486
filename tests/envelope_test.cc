// The rooms protocol's envelope codec: decoding GoAkt-style client JSON (and every error code),
// encoding each server envelope, and the encode -> decode round trip, including a property test
// that encode_message_to never writes past message_encoded_bound.
#include "ws/envelope.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <array>
#include <random>
#include <string>
#include <vector>

namespace weir::ws {
namespace {

using namespace std::string_view_literals;

class Decoded {
 public:
  bool decode(std::string_view json) { return decoder_.decode(json, &env_, &err_); }
  bool publish(std::string_view json) { return decode_publish_body(decoder_, json, &env_, &err_); }
  // Decodes and expects failure with `code`.
  void expect_error(std::string_view json, std::string_view code) {
    EXPECT_FALSE(decode(json)) << json;
    EXPECT_EQ(err_.code, code) << json << " -> " << err_.message;
  }
  const InboundEnvelope& env() const { return env_; }
  const EnvelopeError& err() const { return err_; }
  EnvelopeDecoder& decoder() { return decoder_; }

 private:
  EnvelopeDecoder decoder_;
  InboundEnvelope env_;
  EnvelopeError err_;
};

// ---- decoding ------------------------------------------------------------------------------

TEST(EnvelopeDecoder, JoinRoomDecodesRoomId) {
  Decoded d;
  ASSERT_TRUE(d.decode(R"({"join_room":{"room_id":"room-1"}})")) << d.err().message;
  EXPECT_EQ(d.env().type, EnvelopeType::kJoinRoom);
  EXPECT_EQ(d.env().room_id, "room-1");
  EXPECT_TRUE(d.env().content.empty());
}

TEST(EnvelopeDecoder, LeaveRoomIgnoresUnknownFieldsAndWhitespace) {
  Decoded d;
  ASSERT_TRUE(
      d.decode(" \r\n{ \"leave_room\" :\t{ \"v\": [1, -2.5e3, {\"x\": null}, true, false],"
               " \"room_id\" : \"lobby\", \"extra\": {\"deep\": [[], {}]} } }\n "))
      << d.err().message;
  EXPECT_EQ(d.env().type, EnvelopeType::kLeaveRoom);
  EXPECT_EQ(d.env().room_id, "lobby");
}

TEST(EnvelopeDecoder, MessageDecodesAllGoAktFieldsInAnyOrder) {
  Decoded d;
  ASSERT_TRUE(d.decode(R"({"message":{"tracestate":"k=v","sent_at":"2024-01-02T03:04:05Z",
      "content":"hello","target":"room-1","unknown":{"a":[1,2]},"message_id":"m-1",
      "traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})"))
      << d.err().message;
  const InboundEnvelope& e = d.env();
  EXPECT_EQ(e.type, EnvelopeType::kMessage);
  EXPECT_EQ(e.room_id, "room-1");
  EXPECT_EQ(e.content, "hello");
  EXPECT_EQ(e.message_id, "m-1");
  EXPECT_EQ(e.sent_at, "2024-01-02T03:04:05Z");
  EXPECT_EQ(e.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(e.tracestate, "k=v");
}

TEST(EnvelopeDecoder, OptionalFieldsAreEmptyWhenAbsentOrNull) {
  Decoded d;
  ASSERT_TRUE(d.decode(R"({"message":{"target":"r","content":"c","message_id":null}})"));
  EXPECT_TRUE(d.env().message_id.empty());
  EXPECT_TRUE(d.env().sent_at.empty());
  EXPECT_TRUE(d.env().traceparent.empty());
  EXPECT_TRUE(d.env().tracestate.empty());
}

TEST(EnvelopeDecoder, FieldsFromThePreviousDecodeDoNotLeak) {
  Decoded d;
  ASSERT_TRUE(
      d.decode(R"({"message":{"target":"r","content":"c","message_id":"m","sent_at":"s"}})"));
  ASSERT_TRUE(d.decode(R"({"message":{"target":"r2","content":"c2"}})"));
  EXPECT_EQ(d.env().room_id, "r2");
  EXPECT_TRUE(d.env().message_id.empty());
  EXPECT_TRUE(d.env().sent_at.empty());
}

TEST(EnvelopeDecoder, UnescapesStringsIncludingSurrogatePairs) {
  Decoded d;
  ASSERT_TRUE(d.decode(
      R"({"message":{"target":"caf\u00e9","content":"\ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t \u0000 \u2028"}})"))
      << d.err().message;
  EXPECT_EQ(d.env().room_id, "caf\xC3\xA9");
  EXPECT_EQ(d.env().content, "\xF0\x9F\x98\x80 \"q\" \\ / \b\f\n\r\t \0 \xE2\x80\xA8"sv);
}

TEST(EnvelopeDecoder, RawUtf8InStringsIsKept) {
  Decoded d;
  ASSERT_TRUE(
      d.decode("{\"join_room\":{\"room_id\":\"\xE6\x97\xA5\xE6\x9C\xAC-\xF0\x9F\x8E\x89\"}}"));
  EXPECT_EQ(d.env().room_id, "\xE6\x97\xA5\xE6\x9C\xAC-\xF0\x9F\x8E\x89");
}

TEST(EnvelopeDecoder, EscapedKeysMatchKnownNames) {
  Decoded d;
  ASSERT_TRUE(d.decode(R"({"join\u005froom":{"room\u005Fid":"r"}})")) << d.err().message;
  EXPECT_EQ(d.env().type, EnvelopeType::kJoinRoom);
  EXPECT_EQ(d.env().room_id, "r");
}

TEST(EnvelopeDecoder, ResumeAcceptsNumbersAndProtojsonDecimalStrings) {
  Decoded d;
  ASSERT_TRUE(d.decode(R"({"resume":{"rooms":{"r1":{"offset":12,"epoch":34,"x":[]},
      "r2":{"epoch":"18446744073709551615","offset":"7"},"r3":{},"r4":null},"token":"tok"}})"))
      << d.err().message;
  const InboundEnvelope& e = d.env();
  EXPECT_EQ(e.type, EnvelopeType::kResume);
  EXPECT_EQ(e.token, "tok");
  ASSERT_EQ(e.resume_rooms.size(), 4u);
  EXPECT_EQ(e.resume_rooms[0].room_id, "r1");
  EXPECT_EQ(e.resume_rooms[0].offset, 12u);
  EXPECT_EQ(e.resume_rooms[0].epoch, 34u);
  EXPECT_EQ(e.resume_rooms[1].room_id, "r2");
  EXPECT_EQ(e.resume_rooms[1].offset, 7u);
  EXPECT_EQ(e.resume_rooms[1].epoch, UINT64_MAX);
  EXPECT_EQ(e.resume_rooms[2].room_id, "r3");  // protojson omits zeros: absent reads as 0
  EXPECT_EQ(e.resume_rooms[2].offset, 0u);
  EXPECT_EQ(e.resume_rooms[3].room_id, "r4");
  EXPECT_EQ(e.resume_rooms[3].epoch, 0u);
}

TEST(EnvelopeDecoder, ResumeWithoutRoomsHasNoneAndReusesCapacity) {
  Decoded d;
  ASSERT_TRUE(d.decode(R"({"resume":{"token":"t","rooms":{"a":{},"b":{},"c":{}}}})"));
  const size_t capacity = d.env().resume_rooms.capacity();
  ASSERT_TRUE(d.decode(R"({"resume":{"token":"t"}})"));
  EXPECT_TRUE(d.env().resume_rooms.empty());
  EXPECT_EQ(d.env().resume_rooms.capacity(), capacity);
  ASSERT_TRUE(d.decode(R"({"resume":{"token":"t","rooms":null}})"));
  EXPECT_TRUE(d.env().resume_rooms.empty());
}

TEST(EnvelopeDecoder, LargeDocumentsGrowTheBuffersAndSmallOnesStillWork) {
  Decoded d;
  const std::string content(512 * 1024, 'x');
  ASSERT_TRUE(d.decode(R"({"message":{"target":"r","content":")" + content + R"("}})"));
  EXPECT_EQ(d.env().content, content);
  ASSERT_TRUE(d.decode(R"({"join_room":{"room_id":"r"}})"));
  EXPECT_EQ(d.env().room_id, "r");
}

TEST(EnvelopeDecoder, RecoversAfterAnError) {
  Decoded d;
  d.expect_error(R"({"join_room":{"room_id":)", kErrInvalidJson);
  ASSERT_TRUE(d.decode(R"({"join_room":{"room_id":"ok"}})"));
  EXPECT_EQ(d.env().room_id, "ok");
}

// ---- errors --------------------------------------------------------------------------------

TEST(EnvelopeDecoderErrors, NotJsonIsInvalidJson) {
  Decoded d;
  for (std::string_view bad :
       {""sv, "   "sv, "hello"sv, "{"sv, R"({"join_room")"sv, R"({"join_room":{"room_id":"r"})"sv,
        R"({"join_room":{"room_id":"r"}} x)"sv, R"({"join_room":{"room_id":"r"}}})"sv,
        R"({"join_room":{"room_id":"r"}}{"join_room":{"room_id":"r"}})"sv,
        "{\"join_room\":{\"room_id\":\"r\"}}\0"sv, R"({"join_room":{"room_id":"r",}})"sv,
        R"({,"join_room":{"room_id":"r"}})"sv, R"({"join_room" {"room_id":"r"}})"sv,
        R"({'join_room':{}})"sv, "{\"join_room\":{\"room_id\":\"a\tb\"}}"sv}) {
    d.expect_error(bad, kErrInvalidJson);
  }
  d.expect_error(R"({"join_room":{"room_id":"r"}}})", kErrInvalidJson);
  EXPECT_NE(d.err().message.find("trailing"), std::string::npos) << d.err().message;
}

TEST(EnvelopeDecoderErrors, ArraysAndScalarsAtTopLevelAreInvalidJson) {
  Decoded d;
  for (std::string_view bad : {"[]"sv, R"([{"join_room":{"room_id":"r"}}])"sv, "\"join_room\""sv,
                               "42"sv, "null"sv, "true"sv}) {
    d.expect_error(bad, kErrInvalidJson);
    EXPECT_NE(d.err().message.find("object"), std::string::npos) << d.err().message;
  }
}

TEST(EnvelopeDecoderErrors, EmptyObjectIsUnknownEnvelope) {
  Decoded d;
  d.expect_error("{}", kErrUnknownEnvelope);
  d.expect_error(" { } ", kErrUnknownEnvelope);
  EXPECT_NE(d.err().message.find("empty envelope"), std::string::npos);
}

TEST(EnvelopeDecoderErrors, UnknownTopLevelKeyIsUnknownEnvelopeWithTheKeyAsRef) {
  Decoded d;
  d.expect_error(R"({"shout":{"room_id":"r"}})", kErrUnknownEnvelope);
  EXPECT_EQ(d.err().ref, "shout");
  EXPECT_NE(d.err().message.find("\"shout\""), std::string::npos) << d.err().message;
  // The unknown body must still be well-formed.
  d.expect_error(R"({"shout":[1,]})", kErrInvalidJson);
}

TEST(EnvelopeDecoderErrors, LongUnknownKeysAreCutOnACharacterBoundary) {
  Decoded d;
  std::string key;
  for (int i = 0; i < 40; ++i) key += "\xC3\xA9";  // 80 bytes of 2-byte characters
  d.expect_error("{\"" + key + "x\":{}}", kErrUnknownEnvelope);
  EXPECT_EQ(d.err().ref, key.substr(0, 64));
  EXPECT_TRUE(simdjson::validate_utf8(d.err().message.data(), d.err().message.size()));
  key.insert(62, "\xF0\x9F\x98\x80");  // a 4-byte character across the 64-byte cut
  d.expect_error("{\"x" + key + "\":{}}", kErrUnknownEnvelope);
  EXPECT_TRUE(simdjson::validate_utf8(d.err().ref.data(), d.err().ref.size()));
  EXPECT_LE(d.err().ref.size(), 64u);
}

TEST(EnvelopeDecoderErrors, MoreThanOneTopLevelKeyIsInvalidJsonAndSaysWhy) {
  Decoded d;
  d.expect_error(R"({"join_room":{"room_id":"a"},"leave_room":{"room_id":"a"}})", kErrInvalidJson);
  EXPECT_NE(d.err().message.find("exactly one top-level key"), std::string::npos);
  EXPECT_NE(d.err().message.find("\"leave_room\""), std::string::npos) << d.err().message;
  d.expect_error(R"({"join_room":{"room_id":"a"},"join_room":{"room_id":"b"}})", kErrInvalidJson);
  d.expect_error(R"({"join_room":{"room_id":"a"},"x":1})", kErrInvalidJson);
}

TEST(EnvelopeDecoderErrors, MissingRequiredFieldNamesTheField) {
  Decoded d;
  const struct {
    std::string_view json, field, ref;
  } cases[] = {
      {R"({"join_room":{}})", "join_room.room_id", "join_room"},
      {R"({"leave_room":{"roomid":"r"}})", "leave_room.room_id", "leave_room"},
      {R"({"join_room":{"room_id":""}})", "join_room.room_id", "join_room"},
      {R"({"join_room":{"room_id":null}})", "join_room.room_id", "join_room"},
      {R"({"message":{"content":"c"}})", "message.target", "message"},
      {R"({"message":{"target":"r"}})", "message.content", "message"},
      {R"({"message":{"target":"r","message_id":"m-9"}})", "message.content", "m-9"},
      {R"({"resume":{"rooms":{}}})", "resume.token", "resume"},
  };
  for (const auto& c : cases) {
    d.expect_error(c.json, kErrMissingField);
    EXPECT_NE(d.err().message.find(c.field), std::string::npos) << d.err().message;
    EXPECT_EQ(d.err().ref, c.ref) << c.json;
  }
}

TEST(EnvelopeDecoderErrors, WrongTypedFieldIsInvalidField) {
  Decoded d;
  const struct {
    std::string_view json, field;
  } cases[] = {
      {R"({"join_room":{"room_id":5}})", "join_room.room_id"},
      {R"({"join_room":{"room_id":["r"]}})", "join_room.room_id"},
      {R"({"join_room":"room-1"})", "join_room"},
      {R"({"join_room":null})", "join_room"},
      {R"({"message":{"target":true,"content":"c"}})", "message.target"},
      {R"({"message":{"target":"r","content":42}})", "message.content"},
      {R"({"message":{"target":"r","content":{"text":"hi"}}})", "message.content"},
      {R"({"message":{"target":"r","content":"c","sent_at":1700000000}})", "message.sent_at"},
      {R"({"resume":{"token":"t","rooms":["r1"]}})", "resume.rooms"},
      {R"({"resume":{"token":"t","rooms":{"r1":5}}})", "resume.rooms[\"r1\"]"},
      {R"({"resume":{"token":"t","rooms":{"r1":{"offset":-1}}}})", "resume.rooms[\"r1\"].offset"},
      {R"({"resume":{"token":"t","rooms":{"r1":{"offset":1.5}}}})", "resume.rooms[\"r1\"].offset"},
      {R"({"resume":{"token":"t","rooms":{"r1":{"epoch":"12a"}}}})", "resume.rooms[\"r1\"].epoch"},
      {R"({"resume":{"token":"t","rooms":{"r1":{"epoch":""}}}})", "resume.rooms[\"r1\"].epoch"},
      {R"({"resume":{"token":"t","rooms":{"r1":{"epoch":"-3"}}}})", "resume.rooms[\"r1\"].epoch"},
      {R"({"resume":{"token":"t","rooms":{"r1":{"epoch":true}}}})", "resume.rooms[\"r1\"].epoch"},
  };
  for (const auto& c : cases) {
    d.expect_error(c.json, kErrInvalidField);
    EXPECT_EQ(d.err().message.rfind(c.field, 0), 0u) << d.err().message;
  }
}

TEST(EnvelopeDecoderErrors, OffsetsBeyond64BitsAreInvalidField) {
  Decoded d;
  ASSERT_TRUE(
      d.decode(R"({"resume":{"token":"t","rooms":{"r":{"offset":18446744073709551615}}}})"));
  EXPECT_EQ(d.env().resume_rooms[0].offset, UINT64_MAX);
  for (std::string_view huge :
       {"18446744073709551616"sv, "99999999999999999999999999999999"sv, "1e999"sv,
        "\"18446744073709551616\""sv, "\"340282366920938463463374607431768211456\""sv}) {
    d.expect_error(R"({"resume":{"token":"t","rooms":{"r":{"offset":)" + std::string(huge) + "}}}}",
                   kErrInvalidField);
    EXPECT_NE(d.err().message.find("unsigned 64-bit"), std::string::npos) << d.err().message;
  }
}

TEST(EnvelopeDecoderErrors, FieldErrorRefIsTheMessageIdEvenWhenItComesLater) {
  Decoded d;
  d.expect_error(R"({"message":{"target":"r","content":7,"message_id":"abc-1"}})",
                 kErrInvalidField);
  EXPECT_EQ(d.err().ref, "abc-1");
  d.expect_error(R"({"message":{"message_id":"abc-2","target":"r","content":7}})",
                 kErrInvalidField);
  EXPECT_EQ(d.err().ref, "abc-2");
  d.expect_error(R"({"message":{"target":"r","content":7}})", kErrInvalidField);
  EXPECT_EQ(d.err().ref, "message");
  // The first field error wins; a broken document overrides it.
  d.expect_error(R"({"message":{"target":1,"content":7}})", kErrInvalidField);
  EXPECT_EQ(d.err().message.rfind("message.target", 0), 0u);
  d.expect_error(R"({"message":{"target":1,"content":7,"x":[}})", kErrInvalidJson);
}

TEST(EnvelopeDecoderErrors, InvalidUtf8InsideStringsIsInvalidJson) {
  Decoded d;
  for (std::string_view bytes : {"\xFF"sv, "\xC0\xAF"sv, "\xED\xA0\x80"sv, "\xE2\x82"sv,
                                 "\xF4\x90\x80\x80"sv, "\x80"sv, "ok\xF0\x9F\x98"sv}) {
    d.expect_error("{\"message\":{\"target\":\"r\",\"content\":\"" + std::string(bytes) + "\"}}",
                   kErrInvalidJson);
    d.expect_error("{\"join_room\":{\"room_id\":\"r\",\"x\":\"" + std::string(bytes) + "\"}}",
                   kErrInvalidJson);
  }
  // Escapes that do not form a scalar value: lone or reversed surrogates.
  for (std::string_view esc : {R"(\ud800)"sv, R"(\udc00)"sv, R"(\ude00\ud83d)"sv,
                               R"(\ud800\u0041)"sv, R"(\u12)"sv, R"(\x41)"sv}) {
    d.expect_error(R"({"join_room":{"room_id":")" + std::string(esc) + R"("}})", kErrInvalidJson);
  }
}

TEST(EnvelopeDecoderErrors, DeeplyNestedJunkIsInvalidJsonWithoutRecursingForever) {
  Decoded d;
  const int n = 100000;
  d.expect_error(std::string(n, '[') + std::string(n, ']'), kErrInvalidJson);
  std::string deep = R"({"message":{"target":"r","content":"c","x":)";
  for (int i = 0; i < n; ++i) deep += R"({"a":[)";
  for (int i = 0; i < n; ++i) deep += "]}";
  deep += "}}";
  d.expect_error(deep, kErrInvalidJson);
  EXPECT_NE(d.err().message.find("deep"), std::string::npos) << d.err().message;
  d.expect_error(R"({"join_room":)" + std::string(n, '['), kErrInvalidJson);
}

TEST(EnvelopeDecoderErrors, NestingUpToTheLimitIsAccepted) {
  Decoded d;
  auto nested = [](int levels) {  // the body's "x" value holds `levels` arrays
    return R"({"join_room":{"room_id":"r","x":)" + std::string(levels, '[') +
           std::string(levels, ']') + "}}";
  };
  EXPECT_TRUE(d.decode(nested(kMaxEnvelopeDepth - 2))) << d.err().message;
  d.expect_error(nested(kMaxEnvelopeDepth - 1), kErrInvalidJson);
}

TEST(EnvelopeDecoderErrors, MalformedValuesInIgnoredFieldsAreInvalidJson) {
  Decoded d;
  for (std::string_view junk :
       {"[1,]"sv, "01"sv, "1."sv, "-"sv, "tru"sv, "nul"sv, "fals"sv, R"({"a" 1})"sv,
        R"({"a":1,})"sv, R"([1 2])"sv, R"("\q")"sv, "{1:2}"sv, "]"sv}) {
    d.expect_error(R"({"join_room":{"room_id":"r","x":)" + std::string(junk) + "}}",
                   kErrInvalidJson);
  }
  // Numbers simdjson cannot represent are still valid JSON.
  EXPECT_TRUE(
      d.decode(R"({"join_room":{"room_id":"r","x":[1e999,123456789012345678901234,-0.0]}})"))
      << d.err().message;
}

TEST(EnvelopeDecoderErrors, DuplicateKnownFieldIsRejectedUnknownOnesAreNot) {
  Decoded d;
  d.expect_error(R"({"join_room":{"room_id":"a","room_id":"b"}})", kErrInvalidJson);
  EXPECT_NE(d.err().message.find("duplicate field \"room_id\""), std::string::npos);
  d.expect_error(R"({"resume":{"token":"t","rooms":{"r":{"offset":1,"offset":2}}}})",
                 kErrInvalidJson);
  d.expect_error(R"({"message":{"target":"r","content":"a","message_id":null,"message_id":"x"}})",
                 kErrInvalidJson);
  EXPECT_TRUE(d.decode(R"({"join_room":{"room_id":"a","x":1,"x":2}})"));
}

TEST(EnvelopeDecoderErrors, DocumentsOverTheLimitAreInvalidJson) {
  EnvelopeDecoder d(64);
  InboundEnvelope env;
  EnvelopeError err;
  EXPECT_TRUE(d.decode(R"({"join_room":{"room_id":"r"}})", &env, &err));
  const std::string big = R"({"join_room":{"room_id":")" + std::string(64, 'r') + R"("}})";
  EXPECT_FALSE(d.decode(big, &env, &err));
  EXPECT_EQ(err.code, kErrInvalidJson);
  EXPECT_NE(err.message.find("limit"), std::string::npos) << err.message;
}

// ---- HTTP publish body ---------------------------------------------------------------------

TEST(PublishBody, DecodesContentAndOptionalFieldsAndIgnoresTarget) {
  Decoded d;
  ASSERT_TRUE(d.publish(R"({"content":"hi \u00e9","message_id":"m","traceparent":"tp",
      "tracestate":"ts","target":"elsewhere","other":[1]})"))
      << d.err().message;
  EXPECT_EQ(d.env().type, EnvelopeType::kMessage);
  EXPECT_TRUE(d.env().room_id.empty());
  EXPECT_EQ(d.env().content, "hi \xC3\xA9");
  EXPECT_EQ(d.env().message_id, "m");
  EXPECT_EQ(d.env().traceparent, "tp");
  EXPECT_EQ(d.env().tracestate, "ts");
}

TEST(PublishBody, ReportsEachErrorCode) {
  Decoded d;
  EXPECT_FALSE(d.publish(R"({"message_id":"m-7"})"));
  EXPECT_EQ(d.err().code, kErrMissingField);
  EXPECT_EQ(d.err().message, "body.content is missing or empty");
  EXPECT_EQ(d.err().ref, "m-7");
  EXPECT_FALSE(d.publish(R"({"content":1})"));
  EXPECT_EQ(d.err().code, kErrInvalidField);
  EXPECT_FALSE(d.publish(R"({"content":"x"} 1)"));
  EXPECT_EQ(d.err().code, kErrInvalidJson);
  EXPECT_FALSE(d.publish(R"(["x"])"));
  EXPECT_EQ(d.err().code, kErrInvalidJson);
}

// ---- encoding ------------------------------------------------------------------------------

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(&out, s);
  EXPECT_EQ(out.size(), json_string_encoded_size(s));
  return out;
}

TEST(JsonString, EscapesEveryControlCharacter) {
  static constexpr std::string_view kShort[] = {"\\b", "\\t", "\\n", "", "\\f", "\\r"};
  for (int c = 0; c < 0x20; ++c) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "\\u%04x", c);
    const std::string_view want =
        (c >= 8 && c <= 13 && !kShort[c - 8].empty()) ? kShort[c - 8] : std::string_view(hex);
    EXPECT_EQ(json_string(std::string(1, static_cast<char>(c))), "\"" + std::string(want) + "\"")
        << c;
  }
  EXPECT_EQ(json_string("\x7F"), "\"\x7F\"");  // DEL needs no escape
}

TEST(JsonString, EscapesQuoteAndBackslashOnly) {
  EXPECT_EQ(json_string(R"(a"b\c/d'e)"), R"("a\"b\\c/d'e")");
  EXPECT_EQ(json_string(""), R"("")");
  std::string quotes;
  for (int i = 0; i < 40; ++i) quotes += "\\\"";
  EXPECT_EQ(json_string(std::string(40, '"')), "\"" + quotes + "\"");
}

TEST(JsonString, PassesUtf8ThroughAndEscapesLineAndParagraphSeparators) {
  const std::string utf8 = "caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80 \xE2\x80\x94 \xE2\x80\xA6";
  EXPECT_EQ(json_string(utf8), "\"" + utf8 + "\"");
  EXPECT_EQ(json_string("a\xE2\x80\xA8z\xE2\x80\xA9"), R"("a\u2028z\u2029")");
  // A lone or truncated 0xE2 is copied as is.
  EXPECT_EQ(json_string("x\xE2\x80"), "\"x\xE2\x80\"");
  EXPECT_EQ(json_string("\xE2"), "\"\xE2\"");
  // Long runs exercise the 16-byte scan, with specials at every position of a block.
  for (size_t pos = 0; pos < 40; ++pos) {
    std::string s(40, 'a');
    s[pos] = '\n';
    std::string want = "\"" + s + "\"";
    want.replace(pos + 1, 1, "\\n");
    EXPECT_EQ(json_string(s), want) << pos;
  }
}

// Byte-at-a-time escaper used as the oracle for the vectorised one.
std::string reference_json_string(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0xE2 && i + 2 < s.size() && s[i + 1] == '\x80' &&
        (s[i + 2] == '\xA8' || s[i + 2] == '\xA9')) {
      out += s[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      static constexpr std::string_view kShort = "btn_fr";  // 8..13, '_' = no short form
      char buf[8];
      if (c >= 8 && c <= 13 && kShort[c - 8] != '_') {
        out += '\\';
        out += kShort[c - 8];
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      }
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

TEST(JsonString, MatchesAByteAtATimeEscaperAtEveryLengthAndPosition) {
  static constexpr std::string_view kSpecials[] = {
      "\n", "\"", "\\", "\x1F", "\x00"sv, "\xE2\x80\xA8", "\xE2\x80\x94", "\xE2"};
  for (size_t len = 1; len <= 70; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (std::string_view special : kSpecials) {
        std::string s(len, 'a');
        s.replace(pos, std::min(special.size(), len - pos), special.substr(0, len - pos));
        s[len - 1] = (len % 3 == 0) ? '\x7F' : s[len - 1];
        ASSERT_EQ(json_string(s), reference_json_string(s)) << len << " " << pos;
      }
    }
  }
  std::mt19937 rng(7);
  for (int iter = 0; iter < 5000; ++iter) {
    std::string s(rng() % 80, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 4 == 0 ? rng() % 0x24 : 0x20 + rng() % 0xE0);
    ASSERT_EQ(json_string(s), reference_json_string(s));
  }
}

// Parses encoder output with simdjson's DOM, an independent reader.
simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& json) {
  simdjson::dom::element root;
  EXPECT_EQ(p.parse(json).get(root), simdjson::SUCCESS) << json;
  return root;
}

TEST(Encoders, SessionListsTheRooms) {
  std::string out = "prefix";
  const std::array<std::string_view, 2> rooms{"room-1", "r\"2"};
  encode_session(&out, "tok", "member-7", rooms);
  EXPECT_EQ(
      out, R"(prefix{"session":{"token":"tok","member_id":"member-7","rooms":["room-1","r\"2"]}})");
  out.clear();
  encode_session(&out, "t", "m", {});
  EXPECT_EQ(out, R"({"session":{"token":"t","member_id":"m","rooms":[]}})");
}

TEST(Encoders, RoomJoinedLeftLaggedResumedAndErrorAreExact) {
  std::string out;
  encode_room_joined(&out, "r", 12, UINT64_MAX);
  EXPECT_EQ(out, R"({"room_joined":{"room_id":"r","offset":12,"epoch":18446744073709551615}})");
  out.clear();
  encode_room_left(&out, "r\n");
  EXPECT_EQ(out, R"({"room_left":{"room_id":"r\n"}})");
  out.clear();
  encode_lagged(&out, "r", 5, 9);
  EXPECT_EQ(out, R"({"lagged":{"room_id":"r","from_offset":5,"to_offset":9}})");
  out.clear();
  encode_resumed(&out, "r", true, 0, 3);
  EXPECT_EQ(out, R"({"resumed":{"room_id":"r","recovered":true,"offset":0,"epoch":3}})");
  out.clear();
  encode_resumed(&out, "r", false, 1, 2);
  EXPECT_EQ(out, R"({"resumed":{"room_id":"r","recovered":false,"offset":1,"epoch":2}})");
  out.clear();
  encode_error(&out, "not_member", "not a member of \"r\"", "m-1");
  EXPECT_EQ(out,
            R"({"error":{"code":"not_member","message":"not a member of \"r\"","ref":"m-1"}})");
}

TEST(Encoders, ErrorFromADecodeFailureIsValidJsonCarryingIt) {
  Decoded d;
  d.expect_error("{\"\\u0001\xC3\xA9\\n\":{}}", kErrUnknownEnvelope);
  std::string out;
  encode_error(&out, d.err().code, d.err().message, d.err().ref);
  simdjson::dom::parser p;
  const auto e = parse(p, out)["error"];
  EXPECT_EQ(std::string_view(e["code"]), kErrUnknownEnvelope);
  EXPECT_EQ(std::string_view(e["message"]), d.err().message);
  EXPECT_EQ(std::string_view(e["ref"]), "\x01\xC3\xA9\n");
  EXPECT_EQ(std::string_view(e["message"]).find('\n'), std::string_view::npos);  // one line
}

TEST(Encoders, EveryEnvelopeParsesBackToItsFields) {
  simdjson::dom::parser p;
  std::string out;
  const std::array<std::string_view, 1> rooms{"\xF0\x9F\x98\x80"};
  encode_session(&out, "t\\", "m", rooms);
  auto s = parse(p, out)["session"];
  EXPECT_EQ(std::string_view(s["token"]), "t\\");
  EXPECT_EQ(std::string_view(s["rooms"].at(0)), "\xF0\x9F\x98\x80");
  out.clear();
  encode_lagged(&out, "\t", UINT64_MAX, 1);
  auto l = parse(p, out)["lagged"];
  EXPECT_EQ(std::string_view(l["room_id"]), "\t");
  EXPECT_EQ(uint64_t(l["from_offset"]), UINT64_MAX);
  out.clear();
  encode_resumed(&out, "\xE2\x80\xA8", true, 4, 5);
  auto r = parse(p, out)["resumed"];
  EXPECT_EQ(std::string_view(r["room_id"]), "\xE2\x80\xA8");
  EXPECT_TRUE(bool(r["recovered"]));
  EXPECT_EQ(uint64_t(r["epoch"]), 5u);
}

TEST(Encoders, MessageOmitsEmptyTraceContext) {
  OutboundMessage m{.target = "r",
                    .content = "hi",
                    .message_id = "m",
                    .sent_at = "s",
                    .sender = "u",
                    .traceparent = {},
                    .tracestate = {},
                    .offset = 3,
                    .epoch = 4};
  std::string out;
  encode_message(&out, m);
  EXPECT_EQ(out, R"({"message":{"target":"r","content":"hi","message_id":"m","sent_at":"s",)"
                 R"("sender":"u","offset":3,"epoch":4}})");
  m.traceparent = "tp";
  m.tracestate = "ts";
  out = "x";
  encode_message(&out, m);
  EXPECT_EQ(out, R"(x{"message":{"target":"r","content":"hi","message_id":"m","sent_at":"s",)"
                 R"("sender":"u","offset":3,"epoch":4,"traceparent":"tp","tracestate":"ts"}})");
}

TEST(Encoders, MessageRoundTripsThroughTheInboundDecoder) {
  const OutboundMessage m{.target = "caf\xC3\xA9",
                          .content = "line1\nline2 \"q\" \\ \x01 \xE2\x80\xA8 \xF0\x9F\x98\x80",
                          .message_id = "id",
                          .sent_at = "2024",
                          .sender = "s",
                          .traceparent = "tp",
                          .tracestate = "ts",
                          .offset = 1,
                          .epoch = 2};
  std::string out;
  encode_message(&out, m);
  Decoded d;
  ASSERT_TRUE(d.decode(out)) << d.err().message;
  EXPECT_EQ(d.env().room_id, m.target);
  EXPECT_EQ(d.env().content, m.content);
  EXPECT_EQ(d.env().message_id, m.message_id);
  EXPECT_EQ(d.env().sent_at, m.sent_at);
  EXPECT_EQ(d.env().traceparent, m.traceparent);
  EXPECT_EQ(d.env().tracestate, m.tracestate);
}

std::string random_string(std::mt19937& rng, size_t max_len) {
  static constexpr std::string_view kPieces[] = {"a",
                                                 "Z",
                                                 " ",
                                                 "\"",
                                                 "\\",
                                                 "\n",
                                                 "\x01",
                                                 "\x1F",
                                                 "\x7F",
                                                 "\xC3\xA9",
                                                 "\xE2\x80\xA8",
                                                 "\xE2\x80\xA9",
                                                 "\xE2\x80\x94",
                                                 "\xF0\x9F\x98\x80",
                                                 "\xE6\x97\xA5"};
  std::string s;
  const size_t len = std::uniform_int_distribution<size_t>(0, max_len)(rng);
  while (s.size() < len) s += kPieces[rng() % std::size(kPieces)];
  return s;
}

// Encodes into a buffer of exactly the bound, guarded by canaries on both sides.
std::string encode_guarded(const OutboundMessage& m) {
  const size_t bound = message_encoded_bound(m);
  std::string buf(bound + 64, '\xAA');
  const size_t written = encode_message_to(buf.data() + 32, m);
  EXPECT_EQ(written, bound);
  EXPECT_EQ(buf.substr(0, 32), std::string(32, '\xAA'));
  EXPECT_EQ(buf.substr(32 + bound), std::string(32, '\xAA'));
  return buf.substr(32, written);
}

TEST(Encoders, EncodeMessageToNeverExceedsTheBound) {
  std::mt19937 rng(12345);
  Decoded d;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string f[7];
    for (auto& s : f) s = random_string(rng, iter % 10 == 0 ? 600 : 40);
    const OutboundMessage m{f[0], f[1], f[2], f[3], f[4], f[5], f[6], rng(), uint64_t(rng()) << 32};
    const std::string out = encode_guarded(m);
    std::string via_string;
    encode_message(&via_string, m);
    ASSERT_EQ(out, via_string);
    if (m.target.empty() || m.content.empty()) {
      d.expect_error(out, kErrMissingField);
      continue;
    }
    ASSERT_TRUE(d.decode(out)) << d.err().message;
    ASSERT_EQ(d.env().room_id, m.target);
    ASSERT_EQ(d.env().content, m.content);
    ASSERT_EQ(d.env().message_id, m.message_id);
    ASSERT_EQ(d.env().tracestate, m.tracestate);
  }
}

TEST(Encoders, WorstCaseAllControlCharactersFitTheBound) {
  std::string worst;
  for (int i = 0; i < 4096; ++i) worst.push_back(static_cast<char>(i % 0x20 == 8 ? 1 : i % 0x20));
  const OutboundMessage m{worst, worst, worst, worst, worst, worst, worst, UINT64_MAX, UINT64_MAX};
  const std::string out = encode_guarded(m);
  EXPECT_GT(out.size(), 7 * 4 * worst.size());  // most characters took \u00XX
  EXPECT_EQ(json_string_encoded_size(std::string(100, '\x01')), 602u);
  Decoded d;
  ASSERT_TRUE(d.decode(out)) << d.err().message;
  EXPECT_EQ(d.env().content, worst);
}

}  // namespace
}  // namespace weir::ws
