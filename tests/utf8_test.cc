// Utf8Validator against Markus Kuhn style vectors, an exhaustive comparison with a plain
// reference decoder, and every way of splitting the input.
#include "ws/utf8.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weir::ws {
namespace {

// Straightforward decoder used as the oracle: returns true if `s` is valid UTF-8.
bool reference_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else
      return false;
    if (i + n >= s.size()) return false;  // truncated
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// Whole, byte by byte and split at every offset must agree with `want`.
void expect_validity(std::string_view s, bool want) {
  EXPECT_EQ(is_valid_utf8(s), want) << ::testing::PrintToString(std::string(s));
  Utf8Validator bytewise;
  bool ok = true;
  for (char c : s) ok = bytewise.feed(&c, 1) && ok;
  EXPECT_EQ(ok && bytewise.complete(), want);
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    Utf8Validator v;
    bool a = v.feed(s.substr(0, cut));
    bool b = v.feed(s.substr(cut));
    ASSERT_EQ(a && b && v.complete(), want) << "cut " << cut;
  }
}

TEST(Utf8Validator, AcceptsValidMultibyteText) {
  for (const char* s : {"", "hello", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  // κόσμε
                        "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c",  // 你好世界
                        "\xf0\x9f\x98\x80 emoji \xf0\x9f\x8e\x89", "\xef\xbb\xbf BOM"}) {
    expect_validity(s, true);
  }
}

TEST(Utf8Validator, AcceptsBoundaryCodePoints) {
  for (std::string s :
       {std::string(1, '\0'), std::string("\x7f"), std::string("\xc2\x80"), std::string("\xdf\xbf"),
        std::string("\xe0\xa0\x80"), std::string("\xed\x9f\xbf"), std::string("\xee\x80\x80"),
        std::string("\xef\xbf\xbd"), std::string("\xef\xbf\xbf"), std::string("\xf0\x90\x80\x80"),
        std::string("\xf4\x8f\xbf\xbf")}) {
    expect_validity(s, true);
  }
}

TEST(Utf8Validator, RejectsOverlongForms) {
  for (const char* s : {"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xf0\x80\x80\xaf",
                        "\xf0\x8f\xbf\xbf", "\xc0\x80", "\xe0\x80\x80", "\xf8\x80\x80\x80\xaf"}) {
    expect_validity(s, false);
  }
}

TEST(Utf8Validator, RejectsSurrogates) {
  for (const char* s : {"\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xbf\xbf",
                        "\xed\xa0\x80\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"}) {
    expect_validity(s, false);
  }
}

TEST(Utf8Validator, RejectsCodePointsAboveU10FFFF) {
  for (const char* s :
       {"\xf4\x90\x80\x80", "\xf4\xbf\xbf\xbf", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf"}) {
    expect_validity(s, false);
  }
}

TEST(Utf8Validator, RejectsFiveAndSixByteForms) {
  for (const char* s : {"\xf8\x88\x80\x80\x80", "\xfb\xbf\xbf\xbf\xbf", "\xfc\x84\x80\x80\x80\x80",
                        "\xfd\xbf\xbf\xbf\xbf\xbf", "\xfe", "\xff", "\xfe\xfe\xff\xff"}) {
    expect_validity(s, false);
  }
}

TEST(Utf8Validator, RejectsStrayContinuationBytes) {
  for (const char* s : {"\x80", "\xbf", "a\x80\xbf", "\xc2\x80\x80", "\xe2\x82\xac\xac"}) {
    expect_validity(s, false);
  }
}

TEST(Utf8Validator, RejectsTruncatedSequences) {
  for (const char* s :
       {"\xc2", "\xe2\x82", "\xf0\x9f\x98", "\xc2 ", "\xe2\x82 x", "\xf0\x9f\x98z"}) {
    expect_validity(s, false);
  }
}

TEST(Utf8Validator, IncompleteSequenceIsPendingNotFailed) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xe2\x82", 2));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.failed());
  EXPECT_TRUE(v.feed("\xac", 1));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8Validator, FailsAtTheFirstImpossibleByte) {
  struct Case {
    std::string s;
    size_t bad;
  };
  for (const Case& c : std::vector<Case>{{"ab\xc0\x80", 2},
                                         {"\xed\xa0\x80", 1},
                                         {"\xe0\x80\x80", 1},
                                         {"\xf0\x8f", 1},
                                         {"\xf4\x90", 1},
                                         {"\xe2\x82(", 2},
                                         {"xyz\xf5", 3}}) {
    Utf8Validator v;
    size_t failed_at = SIZE_MAX;
    for (size_t i = 0; i < c.s.size() && failed_at == SIZE_MAX; ++i) {
      if (!v.feed(&c.s[i], 1)) failed_at = i;
    }
    EXPECT_EQ(failed_at, c.bad) << ::testing::PrintToString(c.s);
  }
}

TEST(Utf8Validator, RejectionIsStickyUntilReset) {
  Utf8Validator v;
  EXPECT_FALSE(v.feed("\xff", 1));
  EXPECT_FALSE(v.feed("abc", 3));
  EXPECT_TRUE(v.failed());
  v.reset();
  EXPECT_TRUE(v.feed("abc", 3));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8Validator, FindsBadByteAtEveryPositionOfLongAsciiRuns) {
  // Exercises the 16- and 8-byte fast paths at every alignment and tail length.
  for (size_t len = 1; len <= 80; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      std::string s(len, 'a');
      s[pos] = '\x80';
      ASSERT_FALSE(is_valid_utf8(s)) << len << " " << pos;
      s[pos] = '\xc3';
      if (pos + 1 < len) s[pos + 1] = '\xa9';  // é is fine
      ASSERT_EQ(is_valid_utf8(s), pos + 1 < len) << len << " " << pos;
    }
  }
}

TEST(Utf8Validator, AgreesWithReferenceOnAllOneTwoAndThreeByteStrings) {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a;
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a << " " << b;
      if (a < 0xE0 || a > 0xF4) continue;  // other leads cannot start a valid 3-byte string
      for (int c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a << " " << b << " " << c;
      }
    }
  }
}

TEST(Utf8Validator, AgreesWithReferenceOnFourByteSequences) {
  std::string s(4, '\0');
  for (int a = 0xF0; a <= 0xF7; ++a) {
    for (int b = 0x70; b <= 0xC0; ++b) {
      for (int c : {0x41, 0x80, 0xBF, 0xC0}) {
        for (int d = 0x70; d <= 0xC0; ++d) {
          s = {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
               static_cast<char>(d)};
          ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << a << " " << b << " " << c << " " << d;
        }
      }
    }
  }
}

TEST(Utf8Validator, AgreesWithReferenceOnRandomMixedText) {
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  const std::vector<std::string> pieces = {
      "a",    "hello ", "\xc3\xa9",     "\xe2\x82\xac",     "\xf0\x9f\x98\x80", "\xed\x9f\xbf",
      "\x80", "\xc0",   "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
  for (int round = 0; round < 2000; ++round) {
    std::string s;
    const int n = static_cast<int>(next() % 40);
    for (int i = 0; i < n; ++i) {
      // Mostly valid pieces so that long valid runs are common.
      const uint32_t r = next() % 100;
      s += pieces[r < 90 ? r % 6 : 6 + r % 5];
    }
    ASSERT_EQ(is_valid_utf8(s), reference_valid(s)) << ::testing::PrintToString(s);
  }
}

}  // namespace
}  // namespace weir::ws
