// tools/load/echo_payload.h — the bytes of an echo message and their byte-for-byte check.
//
// Message `seq` of size S is a 16-byte header — the sequence number and the send time, 7 bits
// per byte so a text message stays ASCII (valid UTF-8) — followed by S-16 bytes of a fixed
// printable pattern starting at an offset that depends on seq. A reordered, truncated,
// duplicated or corrupted echo therefore fails the comparison.
//
// Echoes come back in order on one connection, so the verifier checks each one against the
// sequence number it expects, incrementally as bytes arrive: no per-connection reassembly
// buffer, no copy.
//
// Thread-safety: EchoPattern is immutable after construction (shareable); EchoVerifier is
// one connection's state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace weir::load {

inline constexpr size_t kEchoHeaderSize = 16;

class EchoPattern {
 public:
  static constexpr size_t kOffsets = 61;  // distinct body offsets (prime: no alias with sizes)

  explicit EchoPattern(size_t message_size);

  size_t message_size() const { return size_; }
  // Writes message `seq` (message_size() bytes) sent at `send_ns`.
  void write(char* out, uint64_t seq, uint64_t send_ns) const;
  // The expected body (message_size() - 16 bytes) of message `seq`.
  const char* body(uint64_t seq) const { return pattern_.data() + seq % kOffsets; }

  // 56 bits each of `seq` and `send_ns`, 7 per byte.
  static void encode_header(char* out, uint64_t seq, uint64_t send_ns);
  static void decode_header(const char* in, uint64_t* seq, uint64_t* send_ns);

 private:
  size_t size_;
  std::vector<char> pattern_;
};

class EchoVerifier {
 public:
  struct Echo {
    bool ok;
    uint64_t send_ns;  // from the header (meaningful when ok)
  };

  explicit EchoVerifier(const EchoPattern* pattern) : pattern_(pattern) {}

  // Bytes of the echo now arriving, in order (WebSocket: one message's data).
  void feed(const char* data, size_t len);
  // The echo ended (WebSocket message end): checks length and header, moves to the next seq.
  Echo finish();
  // Raw TCP: bytes of the echo stream; calls on_echo(Echo) for every message completed.
  template <class OnEcho>
  void feed_stream(const char* data, size_t len, OnEcho&& on_echo) {
    size_t size = pattern_->message_size();
    while (len > 0) {
      size_t take = size - offset_ < len ? size - offset_ : len;
      feed(data, take);
      data += take;
      len -= take;
      if (offset_ == size) on_echo(finish());
    }
  }

  uint64_t expected_seq() const { return expected_seq_; }
  size_t partial_bytes() const { return offset_; }

 private:
  const EchoPattern* pattern_;
  uint64_t expected_seq_ = 0;
  size_t offset_ = 0;  // bytes of the current echo seen
  bool bad_ = false;
  char header_[kEchoHeaderSize];
};

}  // namespace weir::load
