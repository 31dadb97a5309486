// tools/load/echo_payload.cc — pattern generation, header coding, incremental verification.
#include "tools/load/echo_payload.h"

#include <cstring>
#include <iterator>

namespace weir::load {

namespace {

// Chat-like words rather than random bytes: deflate then sees text of realistic
// compressibility (about 3:1), and any shift or corruption still changes the bytes.
const char* const kWords[] = {
    "the",      "server", "sends",     "every",      "message",      "to",     "all",   "room",
    "members",  "while",  "slow",      "clients",    "hold",         "back",   "their", "reads",
    "and",      "queues", "grow",      "until",      "backpressure", "pauses", "the",   "producer",
    "{\"id\":", "42,",    "\"text\":", "\"hello\"}", "ok",           "ping"};

}  // namespace

EchoPattern::EchoPattern(size_t message_size)
    : size_(message_size < kEchoHeaderSize ? kEchoHeaderSize : message_size) {
  size_t want = size_ - kEchoHeaderSize + kOffsets;
  pattern_.reserve(want + 16);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  while (pattern_.size() < want) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (const char* w = kWords[x % std::size(kWords)]; *w; ++w) pattern_.push_back(*w);
    pattern_.push_back(x & 0x100 ? ' ' : '\n');
  }
  pattern_.resize(want);
}

void EchoPattern::encode_header(char* out, uint64_t seq, uint64_t send_ns) {
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>((seq >> (7 * i)) & 0x7F);
    out[8 + i] = static_cast<char>((send_ns >> (7 * i)) & 0x7F);
  }
}

void EchoPattern::decode_header(const char* in, uint64_t* seq, uint64_t* send_ns) {
  uint64_t s = 0, t = 0;
  for (int i = 0; i < 8; ++i) {
    s |= static_cast<uint64_t>(static_cast<unsigned char>(in[i]) & 0x7F) << (7 * i);
    t |= static_cast<uint64_t>(static_cast<unsigned char>(in[8 + i]) & 0x7F) << (7 * i);
  }
  *seq = s;
  *send_ns = t;
}

void EchoPattern::write(char* out, uint64_t seq, uint64_t send_ns) const {
  encode_header(out, seq, send_ns);
  std::memcpy(out + kEchoHeaderSize, body(seq), size_ - kEchoHeaderSize);
}

void EchoVerifier::feed(const char* data, size_t len) {
  size_t size = pattern_->message_size();
  if (offset_ + len > size) {  // longer than sent: the check fails at finish()
    bad_ = true;
    len = offset_ < size ? size - offset_ : 0;
  }
  if (offset_ < kEchoHeaderSize && len > 0) {
    size_t take = kEchoHeaderSize - offset_ < len ? kEchoHeaderSize - offset_ : len;
    std::memcpy(header_ + offset_, data, take);
    offset_ += take;
    data += take;
    len -= take;
  }
  if (len > 0) {
    const char* expected = pattern_->body(expected_seq_) + (offset_ - kEchoHeaderSize);
    if (std::memcmp(data, expected, len) != 0) bad_ = true;
    offset_ += len;
  }
}

EchoVerifier::Echo EchoVerifier::finish() {
  Echo echo{false, 0};
  if (!bad_ && offset_ == pattern_->message_size()) {
    // The decoder masks bit 7 off, so a corrupted header byte must be caught here.
    bool seven_bit = true;
    for (char c : header_) seven_bit = seven_bit && (static_cast<unsigned char>(c) & 0x80) == 0;
    uint64_t seq = 0;
    EchoPattern::decode_header(header_, &seq, &echo.send_ns);
    echo.ok = seven_bit && seq == (expected_seq_ & ((uint64_t{1} << 56) - 1));
  }
  expected_seq_++;
  offset_ = 0;
  bad_ = false;
  return echo;
}

}  // namespace weir::load
