// Incremental RFC 6455 frame parser: validates every header up front, unmasks payloads in the
// caller's buffer and hands out zero-copy spans. A frame may be split at any byte.
//
// Per connection it owns only a 14-byte spill buffer for a split header, a 125-byte buffer
// for a split control payload and a UTF-8 validator state; it never allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "ws/frame.h"
#include "ws/utf8.h"

namespace weir::ws {

// Which side of the connection we are: servers require masked frames, clients reject them.
enum class Role : uint8_t { kServer, kClient };

struct FrameParserConfig {
  Role role = Role::kServer;
  // Bytes of one whole message summed over its fragments, as announced by frame headers
  // (compressed size when permessage-deflate is on; the inflater enforces the inflated size).
  uint64_t max_message_size = 16u << 20;
  // Set when permessage-deflate was negotiated: RSV1 then marks a compressed message.
  bool allow_rsv1 = false;
};

// Receives what the parser decodes. Spans point into the caller's buffer (or the parser's
// control buffer) and are valid only during the call. Callbacks must not call consume(); they
// may call FrameParser::fail() to stop parsing (e.g. inflated data failed UTF-8 checks).
//
// A virtual interface rather than a template parameter: calls happen once per frame or read
// chunk, never per byte, so the indirect call is noise next to unmasking (see
// bench/framer_bench.cc); in exchange the parser stays a normal .h/.cc pair and tests and
// fuzzers plug in recorders without instantiating parser code per handler type.
class FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  // First frame of a text or binary message; `compressed` is its RSV1 bit.
  virtual void on_message_begin(Opcode opcode, bool compressed) = 0;
  // Payload bytes in order; may be called many times per frame. Every message ends with
  // exactly one call where `message_complete` is true (its span may be empty).
  virtual void on_message_data(std::span<const char> data, bool message_complete) = 0;
  virtual void on_ping(std::span<const char> payload) = 0;
  virtual void on_pong(std::span<const char> payload) = 0;
  // A validated close frame. Without a code (empty payload) `code` is kCloseNoStatus.
  virtual void on_close(bool code_present, uint16_t code, std::string_view reason) = 0;
};

// Thread-safety: none. One parser per connection, used on that connection's reactor thread.
class FrameParser {
 public:
  FrameParser(const FrameParserConfig& config, FrameHandler* handler);

  // Parses `len` bytes, unmasking payloads in place, and delivers events to the handler.
  // Returns the first protocol error (close code + static reason); after one, the parser
  // stays failed and returns the same error. Bytes after a close frame are ignored.
  ParseResult consume(char* data, size_t len);

  // Puts the parser into the failed state with this error unless it already failed; meant
  // for handlers that detect errors the framing cannot (bad inflated data, size limits).
  void fail(uint16_t close_code, std::string_view static_reason);

  // Forgets all frame and message state and applies `config` (e.g. after a handshake
  // negotiated permessage-deflate).
  void reset(const FrameParserConfig& config);

  bool in_message() const { return in_message_; }  // a data message awaits more frames
  Opcode message_opcode() const { return message_opcode_; }
  bool message_compressed() const { return compressed_; }
  bool failed() const { return state_ == State::kFailed; }
  bool close_received() const { return state_ == State::kClosed; }
  const ParseResult& error() const { return error_; }
  // Frame headers decoded so far (for the frames-received counter).
  uint64_t frames() const { return frames_; }
  const FrameParserConfig& config() const { return config_; }

 private:
  enum class State : uint8_t { kHeader, kData, kControl, kClosed, kFailed };

  bool read_header(char*& p, char* end);
  bool spill_header(char*& p, char* end);
  std::string_view flags_error(uint8_t b0, uint8_t b1) const;
  bool check_flags(uint8_t b0, uint8_t b1);
  bool check_length(const unsigned char* header);
  void begin_frame(const unsigned char* header);
  void consume_data(char*& p, char* end);
  void consume_control(char*& p, char* end);
  void deliver_control(const char* payload, size_t len);
  ParseResult result() const;

  FrameParserConfig config_;
  FrameHandler* handler_;
  State state_ = State::kHeader;
  ParseResult error_;

  // Current frame.
  Opcode frame_opcode_ = Opcode::kContinuation;
  bool frame_fin_ = false;
  bool frame_masked_ = false;
  uint8_t mask_phase_ = 0;
  uint32_t mask_key_ = 0;
  uint64_t remaining_ = 0;  // payload bytes of this frame not yet consumed
  uint64_t frames_ = 0;

  // Current data message.
  bool in_message_ = false;
  bool compressed_ = false;
  bool validate_utf8_ = false;
  Opcode message_opcode_ = Opcode::kContinuation;
  uint64_t message_bytes_ = 0;  // announced so far, for max_message_size
  Utf8Validator utf8_;

  uint8_t spill_len_ = 0;
  uint8_t control_len_ = 0;
  unsigned char spill_[kMaxFrameHeaderSize];
  char control_buf_[kMaxControlPayload];
};

}  // namespace weir::ws
