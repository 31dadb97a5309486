// Frame parsing state machine. Every check that the first bytes of a header allow is made
// before the rest arrives (fail fast, Autobahn 1-7, 9, 10); payload bytes are unmasked,
// UTF-8-checked and delivered in whatever pieces the reads produce.
#include "ws/frame_parser.h"

#include <algorithm>
#include <cstring>

#include "ws/close_payload.h"
#include "ws/mask.h"

namespace weir::ws {
namespace {

constexpr uint8_t kFin = 0x80;
constexpr uint8_t kRsv1 = 0x40;
constexpr uint8_t kRsv23 = 0x30;
constexpr uint8_t kOpcodeBits = 0x0F;
constexpr uint8_t kMaskBit = 0x80;
constexpr uint8_t kLen7Bits = 0x7F;

// Bytes of extended length that follow the first two header bytes.
constexpr size_t extended_length_size(uint8_t b1) {
  const uint8_t len7 = b1 & kLen7Bits;
  return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

constexpr size_t header_size(uint8_t b1) {
  return 2 + extended_length_size(b1) + ((b1 & kMaskBit) ? 4 : 0);
}

constexpr bool is_known_opcode(uint8_t op) { return op <= 2 || (op >= 8 && op <= 10); }

uint64_t decode_length(const unsigned char* h) {
  const uint8_t len7 = h[1] & kLen7Bits;
  if (len7 < 126) return len7;
  const size_t n = len7 == 126 ? 2 : 8;
  uint64_t len = 0;
  for (size_t i = 0; i < n; ++i) len = (len << 8) | h[2 + i];
  return len;
}

}  // namespace

FrameParser::FrameParser(const FrameParserConfig& config, FrameHandler* handler)
    : config_(config), handler_(handler) {}

void FrameParser::reset(const FrameParserConfig& config) {
  FrameHandler* handler = handler_;
  *this = FrameParser(config, handler);
}

void FrameParser::fail(uint16_t close_code, std::string_view static_reason) {
  if (state_ == State::kFailed) return;
  error_ = ParseResult::error(close_code, static_reason);
  state_ = State::kFailed;
}

ParseResult FrameParser::result() const {
  return state_ == State::kFailed ? error_ : ParseResult::success();
}

ParseResult FrameParser::consume(char* data, size_t len) {
  char* p = data;
  char* const end = data + len;
  for (;;) {
    switch (state_) {
      case State::kFailed:
        return error_;
      case State::kClosed:
        return ParseResult::success();  // RFC 6455 5.5.1: nothing follows a close frame
      case State::kHeader:
        if (p == end || !read_header(p, end)) return result();
        break;
      case State::kData:
        consume_data(p, end);
        if (state_ == State::kData) return result();
        break;
      case State::kControl:
        consume_control(p, end);
        if (state_ == State::kControl) return result();
        break;
    }
  }
}

// Returns true once a header is decoded and its frame begun; false when the input ran out
// (the partial header waits in spill_) or the header was rejected.
bool FrameParser::read_header(char*& p, char* end) {
  const auto* h = reinterpret_cast<const unsigned char*>(p);
  const size_t avail = static_cast<size_t>(end - p);
  if (spill_len_ != 0 || avail < 2 || avail < header_size(h[1])) return spill_header(p, end);
  // Fast path: the whole header is in the caller's buffer, decode it where it lies.
  if (!check_flags(h[0], h[1]) || !check_length(h)) return false;
  p += header_size(h[1]);
  begin_frame(h);
  return state_ != State::kFailed;
}

// Collects a split header. Checks run the moment their bytes are present: flags after two
// bytes, the length after the extended length, so an oversized frame fails before its mask.
bool FrameParser::spill_header(char*& p, char* end) {
  while (p < end) {
    const size_t before = spill_len_;
    const size_t target = before < 2 ? 2 : header_size(spill_[1]);
    const size_t n = std::min(target - before, static_cast<size_t>(end - p));
    std::memcpy(spill_ + before, p, n);
    p += n;
    spill_len_ = static_cast<uint8_t>(before + n);
    if (spill_len_ < 2) return false;
    if (before < 2 && !check_flags(spill_[0], spill_[1])) return false;
    const size_t length_end = 2 + extended_length_size(spill_[1]);
    if (before < length_end && spill_len_ >= length_end && !check_length(spill_)) return false;
    if (spill_len_ == header_size(spill_[1])) {
      spill_len_ = 0;
      begin_frame(spill_);
      return state_ != State::kFailed;
    }
  }
  return false;
}

bool FrameParser::check_flags(uint8_t b0, uint8_t b1) {
  const uint8_t op = b0 & kOpcodeBits;
  const bool rsv1 = (b0 & kRsv1) != 0;
  if (b0 & kRsv23) {
    fail(kCloseProtocolError, "RSV2/RSV3 set without a negotiated extension");
  } else if (!is_known_opcode(op)) {
    fail(kCloseProtocolError, "reserved opcode");
  } else if (rsv1 && !config_.allow_rsv1) {
    fail(kCloseProtocolError, "RSV1 set without a negotiated extension");
  } else if (is_control(static_cast<Opcode>(op))) {
    if (!(b0 & kFin)) fail(kCloseProtocolError, "fragmented control frame");
    else if ((b1 & kLen7Bits) > kMaxControlPayload)
      fail(kCloseProtocolError, "control frame payload over 125 bytes");
    else if (rsv1) fail(kCloseProtocolError, "RSV1 set on a control frame");
  } else if (op == 0) {
    if (!in_message_) fail(kCloseProtocolError, "continuation frame without a message");
    else if (rsv1) fail(kCloseProtocolError, "RSV1 set on a continuation frame");
  } else if (in_message_) {
    fail(kCloseProtocolError, "new data frame inside a fragmented message");
  }
  if (state_ == State::kFailed) return false;
  const bool masked = (b1 & kMaskBit) != 0;
  if (config_.role == Role::kServer && !masked) {
    fail(kCloseProtocolError, "unmasked frame from client");
  } else if (config_.role == Role::kClient && masked) {
    fail(kCloseProtocolError, "masked frame from server");
  }
  return state_ != State::kFailed;
}

bool FrameParser::check_length(const unsigned char* h) {
  const uint8_t len7 = h[1] & kLen7Bits;
  const uint64_t len = decode_length(h);
  if (len7 == 126 && len < 126) {
    fail(kCloseProtocolError, "16-bit length used for a payload under 126 bytes");
  } else if (len7 == 127 && (len >> 63) != 0) {
    fail(kCloseProtocolError, "64-bit length with the most significant bit set");
  } else if (len7 == 127 && len <= 0xFFFF) {
    fail(kCloseProtocolError, "64-bit length used for a payload under 65536 bytes");
  } else if (!is_control(static_cast<Opcode>(h[0] & kOpcodeBits)) &&
             len > config_.max_message_size - message_bytes_) {
    fail(kCloseMessageTooBig, "message exceeds the maximum message size");
  }
  return state_ != State::kFailed;
}

// State changes happen before handler calls so a handler's fail() is never overwritten.
void FrameParser::begin_frame(const unsigned char* h) {
  const auto op = static_cast<Opcode>(h[0] & kOpcodeBits);
  ++frames_;
  frame_opcode_ = op;
  frame_fin_ = (h[0] & kFin) != 0;
  frame_masked_ = (h[1] & kMaskBit) != 0;
  if (frame_masked_) std::memcpy(&mask_key_, h + header_size(h[1]) - 4, 4);
  mask_phase_ = 0;
  remaining_ = decode_length(h);
  if (is_control(op)) {
    control_len_ = 0;
    state_ = State::kControl;
    return;
  }
  state_ = State::kData;
  message_bytes_ += remaining_;
  if (op == Opcode::kContinuation) return;
  const bool compressed = (h[0] & kRsv1) != 0;
  in_message_ = true;
  message_opcode_ = op;
  compressed_ = compressed;
  validate_utf8_ = op == Opcode::kText && !compressed;
  utf8_.reset();
  handler_->on_message_begin(op, compressed);
}

void FrameParser::consume_data(char*& p, char* end) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, end - p));
  char* chunk = p;
  p += n;
  remaining_ -= n;
  if (frame_masked_) {
    apply_mask(chunk, n, mask_key_, mask_phase_);
    mask_phase_ = static_cast<uint8_t>((mask_phase_ + n) & 3);
  }
  if (validate_utf8_ && !utf8_.feed(chunk, n)) {
    return fail(kCloseInvalidPayload, "invalid UTF-8 in text message");
  }
  const bool message_complete = remaining_ == 0 && frame_fin_;
  if (remaining_ == 0) state_ = State::kHeader;
  if (message_complete) {
    if (validate_utf8_ && !utf8_.complete()) {
      return fail(kCloseInvalidPayload, "text message ends inside a UTF-8 sequence");
    }
    in_message_ = false;
    message_bytes_ = 0;
  } else if (n == 0) {
    return;  // an empty non-final frame has nothing to report
  }
  handler_->on_message_data(std::span<const char>(chunk, n), message_complete);
}

// A control payload that is whole in the caller's buffer is delivered in place; one split
// across reads is assembled in control_buf_ first, since control frames are delivered whole.
void FrameParser::consume_control(char*& p, char* end) {
  const auto avail = static_cast<size_t>(end - p);
  if (control_len_ == 0 && avail >= remaining_) {
    char* payload = p;
    const auto len = static_cast<size_t>(remaining_);
    p += len;
    remaining_ = 0;
    if (frame_masked_) apply_mask(payload, len, mask_key_, 0);
    state_ = State::kHeader;
    return deliver_control(payload, len);
  }
  const size_t n = std::min(static_cast<size_t>(remaining_), avail);
  std::memcpy(control_buf_ + control_len_, p, n);
  p += n;
  control_len_ = static_cast<uint8_t>(control_len_ + n);
  remaining_ -= n;
  if (remaining_ != 0) return;
  if (frame_masked_) apply_mask(control_buf_, control_len_, mask_key_, 0);
  state_ = State::kHeader;
  deliver_control(control_buf_, control_len_);
}

void FrameParser::deliver_control(const char* payload, size_t len) {
  const std::span<const char> span(payload, len);
  switch (frame_opcode_) {
    case Opcode::kPing:
      return handler_->on_ping(span);
    case Opcode::kPong:
      return handler_->on_pong(span);
    case Opcode::kClose: {
      CloseInfo info;
      const ParseResult r = parse_close_payload(payload, len, &info);
      if (!r.ok()) return fail(r.close_code, r.reason);
      state_ = State::kClosed;
      return handler_->on_close(info.code_present, info.code, info.reason);
    }
    default:
      return;  // check_flags admits no other control opcode
  }
}

}  // namespace weir::ws
