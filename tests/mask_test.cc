// apply_mask against a byte-by-byte reference at every length, phase and split point.
#include "ws/mask.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace weir::ws {
namespace {

uint32_t wire_key(const char (&bytes)[5]) {
  uint32_t k;
  std::memcpy(&k, bytes, 4);
  return k;
}

std::string reference_mask(std::string data, uint32_t key, size_t phase) {
  unsigned char k[4];
  std::memcpy(k, &key, 4);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>(data[i] ^ k[(phase + i) % 4]);
  return data;
}

std::string test_data(size_t len) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>(i * 37 + 11);
  return s;
}

TEST(Mask, MatchesRfc6455Example) {
  // RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
  std::string s = "Hello";
  apply_mask(s.data(), s.size(), wire_key("\x37\xfa\x21\x3d"), 0);
  EXPECT_EQ(s, "\x7f\x9f\x4d\x51\x58");
}

TEST(Mask, MatchesReferenceForEveryLengthAndPhase) {
  const uint32_t key = wire_key("\x01\x82\xf3\x44");
  for (size_t len = 0; len <= 200; ++len) {
    for (size_t phase = 0; phase < 8; ++phase) {
      std::string s = test_data(len);
      const std::string want = reference_mask(s, key, phase);
      apply_mask(s.data(), s.size(), key, phase);
      ASSERT_EQ(s, want) << "len " << len << " phase " << phase;
    }
  }
}

TEST(Mask, HandlesUnalignedBuffers) {
  const uint32_t key = wire_key("\xde\xad\xbe\xef");
  std::string backing = test_data(300);
  for (size_t offset = 0; offset < 16; ++offset) {
    std::string copy = backing;
    const std::string want = reference_mask(copy.substr(offset, 250), key, 0);
    apply_mask(copy.data() + offset, 250, key, 0);
    ASSERT_EQ(copy.substr(offset, 250), want) << offset;
    ASSERT_EQ(copy.substr(0, offset), backing.substr(0, offset));        // no writes before
    ASSERT_EQ(copy.substr(offset + 250), backing.substr(offset + 250));  // nor after
  }
}

TEST(Mask, PayloadSplitAtAnyOffsetUnmasksLikeWhole) {
  const uint32_t key = wire_key("\x37\xfa\x21\x3d");
  const std::string plain = test_data(97);
  const std::string masked = reference_mask(plain, key, 0);
  for (size_t a = 0; a <= masked.size(); ++a) {
    for (size_t b = a; b <= masked.size(); b += 7) {
      std::string s = masked;
      apply_mask(s.data(), a, key, 0);
      apply_mask(s.data() + a, b - a, key, a);
      apply_mask(s.data() + b, s.size() - b, key, b);
      ASSERT_EQ(s, plain) << a << " " << b;
    }
  }
}

TEST(Mask, AppliedTwiceIsIdentity) {
  const uint32_t key = wire_key("\x9a\x00\xff\x10");
  std::string s = test_data(4096);
  const std::string orig = s;
  apply_mask(s.data(), s.size(), key, 3);
  EXPECT_NE(s, orig);
  apply_mask(s.data(), s.size(), key, 3);
  EXPECT_EQ(s, orig);
}

}  // namespace
}  // namespace weir::ws
