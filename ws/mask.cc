// Masking runs over every byte a client sends, so it works on 32 bytes per iteration (two SSE2
// registers when available, else four 64-bit words) with a key pre-rotated by the phase.
#include "ws/mask.h"

#include <bit>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace weir::ws {
namespace {

// The key repeated over 8 bytes, starting at key byte `phase % 4`: a byte rotation of the
// 32-bit key (direction depends on endianness), then duplicated.
uint64_t rotated_key64(uint32_t mask_key, size_t phase) {
  const int bits = static_cast<int>(8 * (phase & 3));
  const uint32_t k = std::endian::native == std::endian::little ? std::rotr(mask_key, bits)
                                                                : std::rotl(mask_key, bits);
  return (static_cast<uint64_t>(k) << 32) | k;
}

inline void xor_word(char* p, uint64_t key) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  w ^= key;
  std::memcpy(p, &w, 8);
}

}  // namespace

void apply_mask(char* data, size_t len, uint32_t mask_key, size_t phase) {
  const uint64_t key = rotated_key64(mask_key, phase);
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i key128 = _mm_set1_epi64x(static_cast<long long>(key));
  for (; i + 32 <= len; i += 32) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i + 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(data + i), _mm_xor_si128(a, key128));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(data + i + 16), _mm_xor_si128(b, key128));
  }
#else
  for (; i + 32 <= len; i += 32) {
    xor_word(data + i, key);
    xor_word(data + i + 8, key);
    xor_word(data + i + 16, key);
    xor_word(data + i + 24, key);
  }
#endif
  for (; i + 8 <= len; i += 8) xor_word(data + i, key);
  // Every processed block was a multiple of 4 bytes, so the key is still aligned at `i`.
  unsigned char tail_key[8];
  std::memcpy(tail_key, &key, 8);
  for (size_t j = 0; i < len; ++i, ++j) data[i] = static_cast<char>(data[i] ^ tail_key[j]);
}

}  // namespace weir::ws
