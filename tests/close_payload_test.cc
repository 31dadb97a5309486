// Close payload rules (RFC 6455 5.5.1, 7.4) independent of framing.
#include "ws/close_payload.h"

#include <gtest/gtest.h>

#include <string>

namespace weir::ws {
namespace {

ParseResult parse(const std::string& s, CloseInfo* info) {
  return parse_close_payload(s.data(), s.size(), info);
}

TEST(ClosePayload, EmptyPayloadMeansNoStatusCode) {
  CloseInfo info;
  EXPECT_TRUE(parse("", &info).ok());
  EXPECT_FALSE(info.code_present);
  EXPECT_EQ(info.code, kCloseNoStatus);
  EXPECT_TRUE(info.reason.empty());
}

TEST(ClosePayload, ParsesCodeAndReason) {
  CloseInfo info;
  std::string s =
      "\x0f\xa0"
      "caf\xc3\xa9";  // 4000
  EXPECT_TRUE(parse(s, &info).ok());
  EXPECT_TRUE(info.code_present);
  EXPECT_EQ(info.code, 4000);
  EXPECT_EQ(info.reason, "caf\xc3\xa9");
}

TEST(ClosePayload, RejectsOneBytePayloadWith1002) {
  CloseInfo info;
  EXPECT_EQ(parse("\x03", &info).close_code, kCloseProtocolError);
}

TEST(ClosePayload, ValidCodeSetMatchesRfcAndRegistry) {
  for (uint32_t code = 0; code <= 65535; ++code) {
    const bool want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                      (code >= 3000 && code <= 4999);
    ASSERT_EQ(is_valid_close_code(static_cast<uint16_t>(code)), want) << code;
    std::string s = {static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
    CloseInfo info;
    ASSERT_EQ(parse(s, &info).close_code, want ? 0 : kCloseProtocolError) << code;
  }
}

TEST(ClosePayload, RejectsInvalidUtf8ReasonWith1007) {
  CloseInfo info;
  EXPECT_EQ(parse("\x03\xe8\xff", &info).close_code, kCloseInvalidPayload);
  EXPECT_EQ(parse("\x03\xe8\xe2\x82", &info).close_code, kCloseInvalidPayload);
  EXPECT_FALSE(info.code_present);
}

TEST(ClosePayload, BuildsCodeAndReason) {
  char buf[kMaxControlPayload];
  const size_t n = build_close_payload(buf, kCloseMessageTooBig, "too big");
  EXPECT_EQ(std::string(buf, n), "\x03\xf1too big");
  EXPECT_EQ(build_close_payload(buf, kCloseNoStatus, "x"), 0u);
}

TEST(ClosePayload, TruncatesLongReasonWithoutSplittingCharacters) {
  char buf[kMaxControlPayload];
  std::string ascii(200, 'a');
  EXPECT_EQ(build_close_payload(buf, 1000, ascii), 2 + kMaxCloseReason);
  std::string euro;
  for (int i = 0; i < 60; ++i) euro += "\xe2\x82\xac";  // 180 bytes, 3 per character
  const size_t n = build_close_payload(buf, 1000, euro);
  EXPECT_EQ(n, 2u + 123u);  // 41 whole characters
  CloseInfo info;
  EXPECT_TRUE(parse_close_payload(buf, n, &info).ok());
  std::string four;
  for (int i = 0; i < 40; ++i) four += "\xf0\x9f\x98\x80";
  const size_t m = build_close_payload(buf, 1000, four);
  EXPECT_EQ(m, 2u + 120u);
  EXPECT_TRUE(parse_close_payload(buf, m, &info).ok());
}

}  // namespace
}  // namespace weir::ws
