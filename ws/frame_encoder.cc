// Frame header and control frame encoding; see frame_encoder.h.
#include "ws/frame_encoder.h"

#include <bit>
#include <cassert>
#include <cstring>

#include "ws/close_payload.h"
#include "ws/mask.h"

namespace weir::ws {
namespace {

// Writes header + payload and masks the payload in `out` when a key is given.
size_t finish_control_frame(char* out, Opcode opcode, const char* payload, size_t len,
                            const uint32_t* mask) {
  const size_t header = encode_frame_header(out, opcode, true, false, len, mask);
  // memmove: encode_close_frame stages the payload inside `out` itself.
  if (len > 0) std::memmove(out + header, payload, len);
  if (mask != nullptr) apply_mask(out + header, len, *mask, 0);
  return header + len;
}

}  // namespace

size_t encode_frame_header(char* out, Opcode opcode, bool fin, bool rsv1, uint64_t payload_len,
                           const uint32_t* mask) {
  assert(!is_control(opcode) || (fin && payload_len <= kMaxControlPayload));
  auto* b = reinterpret_cast<unsigned char*>(out);
  b[0] = static_cast<unsigned char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) |
                                    static_cast<uint8_t>(opcode));
  const unsigned char mask_bit = mask != nullptr ? 0x80 : 0;
  size_t n = 2;
  if (payload_len < 126) {
    b[1] = static_cast<unsigned char>(mask_bit | payload_len);
  } else if (payload_len <= 0xFFFF) {
    b[1] = mask_bit | 126;
    b[2] = static_cast<unsigned char>(payload_len >> 8);
    b[3] = static_cast<unsigned char>(payload_len);
    n = 4;
  } else {
    b[1] = mask_bit | 127;
    const uint64_t be =
        std::endian::native == std::endian::little ? __builtin_bswap64(payload_len) : payload_len;
    std::memcpy(b + 2, &be, 8);
    n = 10;
  }
  if (mask != nullptr) {
    std::memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

size_t encode_control_frame(char* out, Opcode opcode, std::string_view payload,
                            const uint32_t* mask) {
  const size_t len = payload.size() < kMaxControlPayload ? payload.size() : kMaxControlPayload;
  return finish_control_frame(out, opcode, payload.data(), len, mask);
}

size_t encode_ping_frame(char* out, std::string_view payload, const uint32_t* mask) {
  return encode_control_frame(out, Opcode::kPing, payload, mask);
}

size_t encode_pong_frame(char* out, std::string_view payload, const uint32_t* mask) {
  return encode_control_frame(out, Opcode::kPong, payload, mask);
}

size_t encode_close_frame(char* out, uint16_t code, std::string_view reason, const uint32_t* mask) {
  // Stage the payload past the largest header, then slide it into place behind the real one.
  char* staged = out + (kMaxControlFrameSize - kMaxControlPayload);
  const size_t len = build_close_payload(staged, code, reason);
  return finish_control_frame(out, Opcode::kClose, staged, len, mask);
}

}  // namespace weir::ws
