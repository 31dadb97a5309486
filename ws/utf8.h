// Incremental UTF-8 validation (RFC 3629) for text messages: a byte-class DFA with an ASCII
// fast path. Used by the frame parser for uncompressed text and by callers after inflating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace weir::ws {

// Validates a byte stream fed in arbitrary pieces; a code point may be split across feeds.
// Rejects overlong forms, surrogates (U+D800..U+DFFF), code points above U+10FFFF and the
// obsolete 5/6-byte forms. Rejection is sticky until reset().
// Thread-safety: none; one validator per message stream.
class Utf8Validator {
 public:
  // Returns false as soon as the bytes so far cannot be the prefix of valid UTF-8.
  bool feed(const char* data, size_t len);
  bool feed(std::string_view s) { return feed(s.data(), s.size()); }
  // True when everything fed is valid and no code point is left half-finished.
  bool complete() const { return state_ == kAccept; }
  bool failed() const { return state_ == kReject; }
  void reset() { state_ = kAccept; }

  // DFA states as bit offsets into a shift-DFA row (see utf8.cc).
  static constexpr uint8_t kAccept = 0;
  static constexpr uint8_t kReject = 6;

 private:
  uint8_t state_ = kAccept;
};

// Whole-buffer convenience: valid and complete.
bool is_valid_utf8(std::string_view s);

}  // namespace weir::ws
