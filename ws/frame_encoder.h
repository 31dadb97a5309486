// Frame headers and small control frames for the send path (RFC 6455 5.2). Servers pass
// mask == nullptr; clients pass a fresh random key per frame and mask the payload with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ws/frame.h"

namespace weir::ws {

// Header bytes for a payload of `len`: the 7-bit form below 126, 16-bit up to 65535, else
// 64-bit (always the minimal form, which the parser insists on too).
constexpr size_t frame_header_size(uint64_t len, bool masked) {
  return 2 + (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}

// Largest control frame: a masked 6-byte header and a 125-byte payload.
inline constexpr size_t kMaxControlFrameSize =
    frame_header_size(kMaxControlPayload, true) + kMaxControlPayload;

// Writes a header into `out` (room for kMaxFrameHeaderSize bytes) and returns its size.
// `mask` points at the key bytes in wire order, or is nullptr for an unmasked frame; the
// caller masks the payload itself (apply_mask with phase 0). Thread-safe: pure function.
size_t encode_frame_header(char* out, Opcode opcode, bool fin, bool rsv1, uint64_t payload_len,
                           const uint32_t* mask);

// Whole control frames written into `out` (room for kMaxControlFrameSize bytes), payload masked
// when `mask` is given; return the frame size. Payloads are cut to 125 bytes (a close reason to
// 123 at a character boundary) so a careless caller can never produce an invalid frame.
// encode_close_frame with code == kCloseNoStatus sends an empty close payload.
// Thread-safe: pure functions.
size_t encode_control_frame(char* out, Opcode opcode, std::string_view payload,
                            const uint32_t* mask);
size_t encode_ping_frame(char* out, std::string_view payload, const uint32_t* mask);
size_t encode_pong_frame(char* out, std::string_view payload, const uint32_t* mask);
size_t encode_close_frame(char* out, uint16_t code, std::string_view reason, const uint32_t* mask);

}  // namespace weir::ws
