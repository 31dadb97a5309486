// RFC 6455 section 5 vocabulary shared by the frame parser, encoder and close-payload code:
// opcodes, close status codes, size limits, and the result type every parsing step returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace weir::ws {

enum class Opcode : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10,
};

// Control frames are the opcodes with the high bit of the nibble set (RFC 6455 5.5).
constexpr bool is_control(Opcode op) {
  return (static_cast<uint8_t>(op) & 0x8) != 0;
}

// Close status codes (RFC 6455 7.4.1 and the IANA registry).
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseUnsupportedData = 1003;
inline constexpr uint16_t kCloseNoStatus = 1005;  // never on the wire: "payload had no code"
inline constexpr uint16_t kCloseAbnormal = 1006;  // never on the wire: "no close frame seen"
inline constexpr uint16_t kCloseInvalidPayload = 1007;
inline constexpr uint16_t kClosePolicyViolation = 1008;
inline constexpr uint16_t kCloseMessageTooBig = 1009;
inline constexpr uint16_t kCloseMandatoryExtension = 1010;
inline constexpr uint16_t kCloseInternalError = 1011;
inline constexpr uint16_t kCloseTryAgainLater = 1013;

// Codes a peer may put in a close frame. 1004/1005/1006/1015 are reserved for local use,
// 1016-2999 are unassigned, 3000-4999 belong to libraries and applications.
constexpr bool is_valid_close_code(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  if (code >= 1000 && code <= 1003) return true;
  return code >= 1007 && code <= 1014;
}

inline constexpr size_t kMaxFrameHeaderSize = 14;  // 2 + 8-byte length + 4-byte mask key
inline constexpr size_t kMaxControlPayload = 125;  // RFC 6455 5.5
inline constexpr size_t kMaxCloseReason = kMaxControlPayload - 2;

// Outcome of a parsing step. On failure `close_code` is what we must send to the peer and
// `reason` points at a static literal, so the result is free to copy and never dangles.
struct ParseResult {
  uint16_t close_code = 0;
  std::string_view reason;

  constexpr bool ok() const { return close_code == 0; }
  static constexpr ParseResult success() { return {}; }
  static constexpr ParseResult error(uint16_t code, std::string_view why) { return {code, why}; }
};

}  // namespace weir::ws
