// tests/log_format_test.cc — log lines as text and JSON: fields, escaping, and lines cut short
// that stay one valid line.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "core/log.h"

namespace weir::core {
namespace {

constexpr std::string_view kStamp = "2026-12-07T10:00:00.123Z";

std::string line(LogFormat format, std::string_view msg, std::vector<LogField> fields,
                 size_t cap = 4096, LogLevel level = LogLevel::kInfo) {
  std::string out(cap, '\0');
  size_t n = format_log_line(out.data(), cap, format, level, kStamp, msg, fields);
  out.resize(n);
  return out;
}

// Parses a JSON line (simdjson also rejects invalid UTF-8); empty on failure.
simdjson::dom::element parse(simdjson::dom::parser& parser, const std::string& text, bool* ok) {
  simdjson::dom::element doc;
  *ok = parser.parse(text).get(doc) == simdjson::SUCCESS;
  return doc;
}

TEST(LogFormat, JsonLineHoldsTsLevelMsgAndFields) {
  std::string l = line(LogFormat::kJson, "ws open",
                       {{"conn", uint64_t{7}}, {"peer", "10.0.0.2:51234"}, {"code", 1001}});
  EXPECT_EQ(l,
            "{\"ts\":\"2026-12-07T10:00:00.123Z\",\"level\":\"info\",\"msg\":\"ws open\","
            "\"conn\":7,\"peer\":\"10.0.0.2:51234\",\"code\":1001}\n");
}

TEST(LogFormat, TextLineHasKeyValueFieldsQuotedWhenNeeded) {
  std::string l = line(LogFormat::kText, "ws close",
                       {{"conn", 7}, {"reason", "server draining"}, {"path", "/ws"}, {"empty", ""}},
                       4096, LogLevel::kWarn);
  EXPECT_EQ(l,
            "2026-12-07T10:00:00.123Z warn  ws close conn=7 reason=\"server draining\" "
            "path=/ws empty=\"\"\n");
}

TEST(LogFormat, JsonEscapesQuotesBackslashesAndControlCharacters) {
  std::string l = line(LogFormat::kJson, "a \"quoted\" \\ path\nnext\tline\x01",
                       {{"reason", "{\"reconnect_after_ms\":12}"}});
  simdjson::dom::parser parser;
  bool ok;
  auto doc = parse(parser, l, &ok);
  ASSERT_TRUE(ok) << l;
  EXPECT_EQ(std::string_view(doc["msg"]), "a \"quoted\" \\ path\nnext\tline\x01");
  EXPECT_EQ(std::string_view(doc["reason"]), "{\"reconnect_after_ms\":12}");
  EXPECT_NE(l.find("\\u0001"), std::string::npos);
  EXPECT_EQ(l.find('\n'), l.size() - 1) << "one line";
}

TEST(LogFormat, JsonReplacesInvalidUtf8AndKeepsValidSequences) {
  // "é" and "€" are valid; a lone continuation byte, a truncated sequence, an overlong
  // encoding and a surrogate are not.
  std::string msg = "caf\xc3\xa9 \xe2\x82\xac | \x80 | \xe2\x82 | \xc0\xaf | \xed\xa0\x80";
  std::string l = line(LogFormat::kJson, msg, {{"peer", "\xff"}});
  simdjson::dom::parser parser;
  bool ok;
  auto doc = parse(parser, l, &ok);
  ASSERT_TRUE(ok) << l;
  std::string_view got = doc["msg"];
  EXPECT_EQ(got.substr(0, 10), "caf\xc3\xa9 \xe2\x82\xac ");
  EXPECT_EQ(std::string_view(doc["peer"]), "\xef\xbf\xbd");  // U+FFFD
}

TEST(LogFormat, TextEscapesControlCharactersSoAnEventStaysOneLine) {
  std::string l = line(LogFormat::kText, "forged\n2026-01-01T00:00:00.000Z error  fake",
                       {{"reason", "a\"b\\c\r\n"}});
  EXPECT_EQ(l.find('\n'), l.size() - 1) << l;
  EXPECT_NE(l.find("forged\\n2026"), std::string::npos) << l;
  EXPECT_NE(l.find("reason=\"a\\\"b\\\\c\\r\\n\""), std::string::npos) << l;
}

// However short the buffer, a JSON line is a complete object ending in a newline: the cut
// falls between whole characters, escapes and fields.
TEST(LogFormat, JsonLineCutShortIsStillValidJson) {
  std::string msg(300, 'x');
  msg += "\"\\\n\xe2\x82\xac";
  simdjson::dom::parser parser;
  for (size_t cap = 80; cap <= 420; ++cap) {
    std::string l = line(LogFormat::kJson, msg,
                         {{"conn", uint64_t{123456789}}, {"reason", std::string(40, '"')}}, cap);
    ASSERT_LE(l.size(), cap);
    ASSERT_EQ(l.back(), '\n') << cap;
    bool ok;
    auto doc = parse(parser, l, &ok);
    ASSERT_TRUE(ok) << "cap " << cap << ": " << l;
    EXPECT_EQ(std::string_view(doc["level"]), "info");
  }
}

TEST(LogFormat, TextLineCutShortEndsWithANewline) {
  for (size_t cap = 64; cap <= 200; ++cap) {
    std::string l = line(LogFormat::kText, std::string(150, 'm'), {{"reason", "a b c"}}, cap);
    ASSERT_LE(l.size(), cap);
    ASSERT_EQ(l.back(), '\n');
    EXPECT_EQ(l.find('\n'), l.size() - 1);
  }
}

TEST(LogFormat, ParsesLevelAndFormatNames) {
  LogFormat format;
  EXPECT_TRUE(parse_log_format("json", &format));
  EXPECT_EQ(format, LogFormat::kJson);
  EXPECT_TRUE(parse_log_format("text", &format));
  EXPECT_EQ(format, LogFormat::kText);
  EXPECT_FALSE(parse_log_format("xml", &format));
  LogLevel level;
  EXPECT_TRUE(parse_log_level("warn", &level));
  EXPECT_EQ(level, LogLevel::kWarn);
  EXPECT_FALSE(parse_log_level("verbose", &level));
}

}  // namespace
}  // namespace weir::core
