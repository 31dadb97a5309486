// permessage-deflate message codec: whole-message compressor, incremental bounded inflater.
#include "ws/deflate_codec.h"

#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace weir::ws {
namespace {

// What a sync flush ends with and what the receiver appends back (RFC 7692 7.2.1, 7.2.2).
constexpr unsigned char kSyncTail[4] = {0x00, 0x00, 0xff, 0xff};
// zlib counts in 32-bit uInt; longer inputs are fed in slices.
constexpr size_t kMaxSlice = size_t{1} << 30;

ParseResult out_of_memory() {
  return ParseResult::error(kCloseInternalError, "permessage-deflate: out of memory");
}

// Deflates one slice, growing `out` until zlib stops asking for room. The first guess is
// zlib's bound, so a message almost always takes one call.
void deflate_slice(z_stream* s, const char* data, size_t size, int flush, std::string* out) {
  s->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  s->avail_in = static_cast<uInt>(size);
  size_t room = deflateBound(s, s->avail_in) + 16;
  do {
    const size_t used = out->size();
    out->resize(used + room);
    s->next_out = reinterpret_cast<Bytef*>(out->data() + used);
    s->avail_out = static_cast<uInt>(room);
    [[maybe_unused]] const int rc = deflate(s, flush);
    assert(rc == Z_OK || rc == Z_BUF_ERROR);
    out->resize(used + room - s->avail_out);
    room = std::max<size_t>(room, 4096);
  } while (s->avail_out == 0);  // zlib's rule: a full output buffer may hide pending output
}

void deflate_part(z_stream* s, std::string_view part, int flush, std::string* out) {
  while (part.size() > kMaxSlice) {
    deflate_slice(s, part.data(), kMaxSlice, Z_NO_FLUSH, out);
    part.remove_prefix(kMaxSlice);
  }
  deflate_slice(s, part.data(), part.size(), flush, out);
}

}  // namespace

// ---- MessageCompressor ----

MessageCompressor::MessageCompressor(DeflateWorkspace* workspace, const CompressorConfig& config)
    : workspace_(workspace),
      window_bits_(config.window_bits),
      context_takeover_(config.context_takeover) {
  // Negotiation never agrees to 8 for our own compressor (zlib cannot; see the negotiation
  // header), and compressing with 9 would break the promise.
  assert(window_bits_ >= 9 && window_bits_ <= 15);
}

MessageCompressor::~MessageCompressor() {
  if (own_ != nullptr) workspace_->delete_deflater(own_);
}

z_stream_s* MessageCompressor::stream() {
  if (!context_takeover_) return workspace_->shared_deflater(window_bits_);
  if (own_ == nullptr) own_ = workspace_->new_deflater(window_bits_);
  return own_;
}

ParseResult MessageCompressor::compress(std::span<const std::string_view> parts, std::string* out) {
  size_t last = parts.size();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!parts[i].empty()) last = i;
  }
  // An empty message is an empty stored block, "00" once the tail is gone. Written by hand:
  // zlib refuses a second sync flush without input in between (Z_BUF_ERROR, no output), and
  // with context takeover the previous message ended with one.
  if (last == parts.size()) {
    out->push_back('\0');
    return ParseResult::success();
  }
  z_stream* s = stream();
  if (s == nullptr) return out_of_memory();
  [[maybe_unused]] const size_t start = out->size();
  for (size_t i = 0; i <= last; ++i) {
    if (!parts[i].empty()) deflate_part(s, parts[i], i == last ? Z_SYNC_FLUSH : Z_NO_FLUSH, out);
  }
  assert(out->size() - start >= sizeof kSyncTail &&
         std::memcmp(out->data() + out->size() - sizeof kSyncTail, kSyncTail, sizeof kSyncTail) ==
             0);
  out->resize(out->size() - sizeof kSyncTail);
  // Reset, not End + Init: keeps the stream's buffers for the next message.
  if (!context_takeover_) deflateReset(s);
  return ParseResult::success();
}

// ---- MessageDecompressor ----

MessageDecompressor::MessageDecompressor(DeflateWorkspace* workspace,
                                         const DecompressorConfig& config)
    : workspace_(workspace),
      max_message_size_(config.max_message_size),
      // A peer limited to 8 bits is inflated with 9: zlib before 1.2.9 silently compressed
      // with 9 when asked for 8, and a larger window accepts everything a smaller one makes.
      window_bits_(std::clamp(config.window_bits, 9, 15)),
      context_takeover_(config.context_takeover) {}

MessageDecompressor::~MessageDecompressor() {
  if (stream_ == nullptr) return;
  if (context_takeover_) {
    workspace_->delete_inflater(stream_);
  } else {
    workspace_->release_inflater(stream_);
  }
}

z_stream_s* MessageDecompressor::stream() {
  if (stream_ == nullptr) {
    stream_ =
        context_takeover_ ? workspace_->new_inflater(window_bits_) : workspace_->acquire_inflater();
  }
  return stream_;
}

ParseResult MessageDecompressor::feed(std::span<const char> compressed, bool message_end,
                                      std::string* out) {
  z_stream* s = stream();
  if (s == nullptr) {
    end_message(true);
    return out_of_memory();
  }
  in_message_ = true;
  message_bytes_ += compressed.size();
  const auto* data = reinterpret_cast<const unsigned char*>(compressed.data());
  ParseResult result;
  for (size_t done = 0; result.ok() && done < compressed.size(); done += kMaxSlice) {
    result = inflate_input(s, data + done, std::min(kMaxSlice, compressed.size() - done), out);
  }
  if (result.ok() && message_end) result = finish(s, out);
  if (!result.ok() || message_end) end_message(!result.ok());
  return result;
}

void MessageDecompressor::abandon_message() {
  if (in_message_) end_message(true);
}

// One byte past the limit is all it takes to see that a message is too big.
size_t MessageDecompressor::output_room() const {
  const size_t left = max_message_size_ - produced_;
  return left >= DeflateWorkspace::kScratchBytes ? DeflateWorkspace::kScratchBytes : left + 1;
}

ParseResult MessageDecompressor::inflate_input(z_stream* s, const unsigned char* data, size_t size,
                                               std::string* out) {
  s->next_in = const_cast<unsigned char*>(data);
  s->avail_in = static_cast<uInt>(size);
  unsigned char* chunk = workspace_->scratch();
  for (;;) {
    const size_t room = output_room();
    s->next_out = chunk;
    s->avail_out = static_cast<uInt>(room);
    const uInt in_before = s->avail_in;
    // Z_BLOCK returns at every block boundary and flags it in data_type, which is how
    // finish() tells a complete message from a truncated one.
    const int rc = inflate(s, Z_BLOCK);
    const size_t produced = room - s->avail_out;
    if (produced != 0 || s->avail_in != in_before) at_block_boundary_ = (s->data_type & 128) != 0;
    // data_type 64 + 128: the block that just ended had BFINAL set. Z_BLOCK returns there,
    // one call before zlib would report Z_STREAM_END.
    const bool stream_ended = rc == Z_STREAM_END || (rc == Z_OK && (s->data_type & 192) == 192);
    if (s->avail_in != in_before) final_block_seen_ = false;
    produced_ += produced;
    if (produced_ > max_message_size_) {
      return ParseResult::error(kCloseMessageTooBig, "inflated message exceeds the size limit");
    }
    out->append(reinterpret_cast<const char*>(chunk), produced);
    if (stream_ended) {
      if (!restart_after_final_block(s)) return out_of_memory();
      continue;
    }
    if (rc == Z_BUF_ERROR) return ParseResult::success();  // waiting for input
    if (rc == Z_MEM_ERROR) return out_of_memory();
    if (rc != Z_OK) {
      return ParseResult::error(kCloseInvalidPayload,
                                s->msg != nullptr ? s->msg : "invalid DEFLATE data");
    }
    if (s->avail_in == 0 && s->avail_out != 0) return ParseResult::success();
  }
}

// RFC 7692 7.2.3.4 lets a sender end a block with BFINAL set and carry on with a new DEFLATE
// stream. Later data may still point back into the window (in this message, or the next one
// with context takeover), so the window is carried into the new stream as its dictionary.
bool MessageDecompressor::restart_after_final_block(z_stream* s) {
  unsigned char* window = workspace_->scratch();  // its output was already appended
  uInt length = 0;
  inflateGetDictionary(s, window, &length);
  inflateReset(s);
  final_block_seen_ = true;
  at_block_boundary_ = true;
  return length == 0 || inflateSetDictionary(s, window, length) == Z_OK;
}

ParseResult MessageDecompressor::finish(z_stream* s, std::string* out) {
  // An empty payload is not DEFLATE, but it can only mean an empty message. After a BFINAL
  // block with nothing behind it, the tail would open a stored block that never ends.
  if (message_bytes_ == 0 || final_block_seen_) return ParseResult::success();
  ParseResult result = inflate_input(s, kSyncTail, sizeof kSyncTail, out);
  if (result.ok() && !at_block_boundary_) {
    return ParseResult::error(kCloseInvalidPayload, "compressed message ends mid-block");
  }
  return result;
}

void MessageDecompressor::end_message(bool failed) {
  if (stream_ != nullptr && !context_takeover_) {
    workspace_->release_inflater(stream_);
    stream_ = nullptr;
  } else if (stream_ != nullptr && failed) {
    inflateReset(stream_);  // the window is unusable now; the connection is going away
  }
  produced_ = 0;
  message_bytes_ = 0;
  in_message_ = false;
  at_block_boundary_ = true;
  final_block_seen_ = false;
}

// ---- PerMessageDeflate ----

namespace {

CompressorConfig outgoing(const DeflateParams& agreed, Role role) {
  if (role == Role::kServer) {
    return {agreed.server_max_window_bits, !agreed.server_no_context_takeover};
  }
  return {agreed.client_max_window_bits, !agreed.client_no_context_takeover};
}

DecompressorConfig incoming(const DeflateParams& agreed, Role role, size_t max_message_size) {
  if (role == Role::kServer) {
    return {agreed.client_max_window_bits, !agreed.client_no_context_takeover, max_message_size};
  }
  return {agreed.server_max_window_bits, !agreed.server_no_context_takeover, max_message_size};
}

}  // namespace

PerMessageDeflate::PerMessageDeflate(DeflateWorkspace* workspace, const DeflateParams& agreed,
                                     Role role, size_t max_message_size)
    : compressor_(workspace, outgoing(agreed, role)),
      decompressor_(workspace, incoming(agreed, role, max_message_size)) {}

}  // namespace weir::ws
