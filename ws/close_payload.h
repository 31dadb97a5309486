// Close frame bodies (RFC 6455 5.5.1, 7.4): a 2-byte big-endian status code followed by an
// optional UTF-8 reason, or nothing at all. Parsing validates; building truncates safely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ws/frame.h"

namespace weir::ws {

struct CloseInfo {
  bool code_present = false;  // false: empty payload, reported locally as 1005
  uint16_t code = kCloseNoStatus;
  std::string_view reason;  // points into the parsed payload
};

// Validates an (already unmasked) close payload. Errors: 1-byte payload -> 1002, code not
// allowed on the wire -> 1002, reason not valid UTF-8 -> 1007. Thread-safe: pure function.
ParseResult parse_close_payload(const char* data, size_t len, CloseInfo* out);

// Writes a close payload into `out` (at least kMaxControlPayload bytes) and returns its size.
// code == kCloseNoStatus writes an empty payload. A reason longer than kMaxCloseReason is cut
// at a UTF-8 character boundary so the frame stays valid. Thread-safe: pure function.
size_t build_close_payload(char* out, uint16_t code, std::string_view reason);

}  // namespace weir::ws
