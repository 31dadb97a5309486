// Close payload parsing and building; see close_payload.h for the rules.
#include "ws/close_payload.h"

#include <cstring>

#include "ws/utf8.h"

namespace weir::ws {
namespace {

// Longest prefix of `s` that fits in `limit` bytes without splitting a UTF-8 sequence.
std::string_view truncate_utf8(std::string_view s, size_t limit) {
  if (s.size() <= limit) return s;
  size_t n = limit;
  // Back off over continuation bytes (10xxxxxx) to land on the start of a character.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

ParseResult parse_close_payload(const char* data, size_t len, CloseInfo* out) {
  *out = CloseInfo{};
  if (len == 0) return ParseResult::success();
  if (len == 1) return ParseResult::error(kCloseProtocolError, "close payload of one byte");
  const auto* b = reinterpret_cast<const unsigned char*>(data);
  const uint16_t code = static_cast<uint16_t>((b[0] << 8) | b[1]);
  if (!is_valid_close_code(code)) {
    return ParseResult::error(kCloseProtocolError, "invalid close code");
  }
  std::string_view reason(data + 2, len - 2);
  if (!is_valid_utf8(reason)) {
    return ParseResult::error(kCloseInvalidPayload, "close reason is not valid UTF-8");
  }
  *out = CloseInfo{true, code, reason};
  return ParseResult::success();
}

size_t build_close_payload(char* out, uint16_t code, std::string_view reason) {
  if (code == kCloseNoStatus) return 0;
  out[0] = static_cast<char>(code >> 8);
  out[1] = static_cast<char>(code & 0xFF);
  const std::string_view r = truncate_utf8(reason, kMaxCloseReason);
  if (!r.empty()) std::memcpy(out + 2, r.data(), r.size());
  return 2 + r.size();
}

}  // namespace weir::ws
