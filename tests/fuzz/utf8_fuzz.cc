// Fuzzes Utf8Validator against a plain reference decoder, fed whole and in pieces whose sizes
// come from the input, so the ASCII fast paths and sequence splits are both exercised.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ws/utf8.h"

namespace {

bool reference_valid(std::string_view s) {
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
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
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view s(reinterpret_cast<const char*>(data) + 1, size - 1);
  const bool want = reference_valid(s);
  if (weir::ws::is_valid_utf8(s) != want) abort();

  weir::ws::Utf8Validator v;
  uint32_t seed = data[0];
  size_t off = 0;
  bool ok = true;
  while (off < s.size()) {
    seed = seed * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(s.size() - off, (seed >> 16) % 37);
    ok = v.feed(s.data() + off, n) && ok;
    // Failure must be sticky and reported by the feed that saw the bad byte.
    if (!ok && !v.failed()) abort();
    off += n;
  }
  if ((ok && v.complete()) != want) abort();
  return 0;
}
