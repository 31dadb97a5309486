// permessage-deflate message codec (RFC 7692 section 7.2): a compressor turning one whole
// message into the raw DEFLATE payload of a frame with RSV1, and an incremental decompressor
// that inflates a message arriving in pieces under a hard size limit.
//
// Where the zlib state lives: a direction with context takeover owns a z_stream for the life
// of the connection, created on its first message; a direction without it borrows from the
// thread's DeflateWorkspace (the compressor for one call, the decompressor from the first
// piece of a message to its last) and keeps nothing in between. `--deflate shared` forces no
// context takeover both ways, so a shared connection holds no zlib memory while idle; in
// dedicated mode a direction the peer negotiated without takeover borrows the same way.
// Without takeover a payload depends only on the message and the window bits (the level and
// memLevel are per workspace), so a broadcast can be compressed once for all such recipients.
//
// zlib bytes per connection after one message each way (deflate_test measures them; the
// PerMessageDeflate object itself is 72 bytes), default workspace options:
//   shared, or no context takeover either way:                          0
//   dedicated, windows 15/15 (deflate memLevel 4): 142 + 39 KiB      = 181 KiB
//   dedicated, policy server window 12, client window 15: 30 + 39 KiB =  69 KiB
//   dedicated, policy windows 12/12 (client offered the parameter)    =  41 KiB
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>

#include "ws/deflate_negotiation.h"
#include "ws/deflate_workspace.h"
#include "ws/frame.h"
#include "ws/frame_parser.h"

namespace weir::ws {

struct CompressorConfig {
  int window_bits = 15;  // 9..15; the window we promised the peer not to exceed
  bool context_takeover = true;
};

// Compresses whole messages. Thread-safety: none; use on the workspace's thread.
class MessageCompressor {
 public:
  MessageCompressor(DeflateWorkspace* workspace, const CompressorConfig& config);
  ~MessageCompressor();
  MessageCompressor(const MessageCompressor&) = delete;
  MessageCompressor& operator=(const MessageCompressor&) = delete;

  // Appends the payload for one message (the concatenation of `parts`) to `out`: raw DEFLATE
  // ending in a sync flush with its 00 00 ff ff tail removed. `out` keeps its capacity, so a
  // reused buffer means no allocation. An empty message becomes the single byte 00 (7.2.3.6).
  // Fails only when zlib cannot allocate (1011); `out` is then left as it was.
  ParseResult compress(std::span<const std::string_view> parts, std::string* out);
  ParseResult compress(std::string_view message, std::string* out) {
    return compress(std::span<const std::string_view>(&message, 1), out);
  }

  // Whether compressing `size` bytes is likely to pay. Without context takeover, chat-sized
  // JSON under ~100 bytes shrinks by less than 10% (32 bytes grow to 33) for a few
  // microseconds of CPU; the sender may send such messages as they are, RSV1 clear, which
  // RFC 7692 allows message by message (the peer's window simply does not see them).
  bool worth_compressing(size_t size) const {
    return size >= (context_takeover_ ? kMinSizeWithContext : kMinSizeWithoutContext);
  }
  static constexpr size_t kMinSizeWithContext = 16;
  static constexpr size_t kMinSizeWithoutContext = 128;

  bool context_takeover() const { return context_takeover_; }
  bool holds_zlib_state() const { return own_ != nullptr; }

 private:
  z_stream_s* stream();

  DeflateWorkspace* workspace_;
  z_stream_s* own_ = nullptr;  // only with context takeover, created on first use
  int window_bits_;
  bool context_takeover_;
};

struct DecompressorConfig {
  int window_bits = 15;  // the peer's negotiated window, 8..15
  bool context_takeover = true;
  // Inflated bytes allowed per message; more fails the message with 1009.
  size_t max_message_size = std::numeric_limits<size_t>::max();
};

// Inflates messages fed in pieces. Errors carry the close code to send:
//   1009 the inflated message would exceed max_message_size. Detected while inflating, so a
//        decompression bomb costs at most the limit plus one 32 KiB chunk of output.
//   1007 the payload is not valid DEFLATE (or stops mid-block). 1007 rather than 1002: the
//        frames were well formed and RSV1 was allowed; it is the content that does not match
//        what the message claims to be, the same class as invalid UTF-8 in a text message.
//   1011 zlib could not allocate.
// After an error the message is dropped (and with takeover the window is lost): close the
// connection. Thread-safety: none; use on the workspace's thread.
class MessageDecompressor {
 public:
  MessageDecompressor(DeflateWorkspace* workspace, const DecompressorConfig& config);
  ~MessageDecompressor();
  MessageDecompressor(const MessageDecompressor&) = delete;
  MessageDecompressor& operator=(const MessageDecompressor&) = delete;

  // Inflates the next piece of a compressed message, appending output to `out`. With
  // `message_end` the 00 00 ff ff tail is appended (7.2.2) and the message must end on a
  // block boundary. Any split of the payload gives the same output.
  ParseResult feed(std::span<const char> compressed, bool message_end, std::string* out);

  // Drops a half-received message (e.g. the connection is closing) and returns borrowed state.
  void abandon_message();

  bool in_message() const { return in_message_; }
  bool holds_zlib_state() const { return stream_ != nullptr; }
  size_t max_message_size() const { return max_message_size_; }
  void set_max_message_size(size_t limit) { max_message_size_ = limit; }

 private:
  z_stream_s* stream();
  ParseResult inflate_input(z_stream_s* s, const unsigned char* data, size_t size,
                            std::string* out);
  ParseResult finish(z_stream_s* s, std::string* out);
  bool restart_after_final_block(z_stream_s* s);
  size_t output_room() const;
  void end_message(bool failed);

  DeflateWorkspace* workspace_;
  z_stream_s* stream_ = nullptr;  // owned (takeover) or borrowed until the message ends
  size_t max_message_size_;
  size_t produced_ = 0;       // inflated bytes of the current message
  size_t message_bytes_ = 0;  // compressed bytes of the current message
  int window_bits_;
  bool context_takeover_;
  bool in_message_ = false;
  bool at_block_boundary_ = true;
  bool final_block_seen_ = false;  // a BFINAL block ended and nothing was read since
};

// Both directions of one connection, configured from the agreed parameters and our role.
// Thread-safety: none; use on the workspace's thread.
class PerMessageDeflate {
 public:
  PerMessageDeflate(DeflateWorkspace* workspace, const DeflateParams& agreed, Role role,
                    size_t max_message_size);

  MessageCompressor& compressor() { return compressor_; }
  MessageDecompressor& decompressor() { return decompressor_; }

 private:
  MessageCompressor compressor_;
  MessageDecompressor decompressor_;
};

}  // namespace weir::ws
