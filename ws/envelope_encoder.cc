// Envelope encoders. Each is one template over a byte sink, so the size a CountingSink measures
// is by construction what a RawSink writes: message_encoded_bound() cannot drift from
// encode_message_to().
#include "ws/envelope_encoder.h"

#include <array>
#include <cassert>
#include <charconv>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace weir::ws {
namespace {

struct CountingSink {
  size_t size = 0;
  void put(char) { ++size; }
  void put(std::string_view s) { size += s.size(); }
};

struct RawSink {
  char* p;
  void put(char c) { *p++ = c; }
  void put(std::string_view s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
};

struct StringSink {
  std::string* s;
  void put(char c) { s->push_back(c); }
  void put(std::string_view v) { s->append(v); }
};

// 1: escaped; 2: 0xE2, the first byte of U+2028/U+2029 (E2 80 A8/A9); 0: copied.
constexpr std::array<uint8_t, 256> kByteClass = [] {
  std::array<uint8_t, 256> t{};
  for (int i = 0; i < 0x20; ++i) t[i] = 1;
  t['"'] = t['\\'] = 1;
  t[0xE2] = 2;
  return t;
}();

// The scanners below are forced inline: each call covers only a few bytes of a short string.

// Bit 7 of each byte of the result is set where `x` has a byte needing attention (< 0x20, '"',
// '\\', 0xE2). Borrows can set bits above a true hit, never below one, so the lowest set bit
// is exact (the classic has-zero-byte / has-less-than tricks, OR-ed).
[[gnu::always_inline]] inline uint64_t special_bytes(uint64_t x) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  auto zero_bytes = [](uint64_t y) { return (y - kOnes) & ~y & kHigh; };
  const uint64_t control = (x - kOnes * 0x20) & ~x & kHigh;
  return control | zero_bytes(x ^ (kOnes * '"')) | zero_bytes(x ^ (kOnes * '\\')) |
         zero_bytes(x ^ (kOnes * 0xE2));
}

[[gnu::always_inline]] inline size_t first_special_in_word(const unsigned char* s) {
  uint64_t x;
  std::memcpy(&x, s, 8);
  const uint64_t bits = special_bytes(x);  // little-endian: lowest address, lowest bits
  return bits ? static_cast<size_t>(__builtin_ctzll(bits)) / 8 : 8;
}

#if defined(__SSE2__)
[[gnu::always_inline]] inline unsigned special_mask16(const unsigned char* s) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);  // <= 0x1F
  const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
  const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
  const __m128i e2 = _mm_cmpeq_epi8(v, _mm_set1_epi8(static_cast<char>(0xE2)));
  return static_cast<unsigned>(
      _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(control, quote), _mm_or_si128(backslash, e2))));
}
#endif

// Length of the prefix of s[0, n) that is copied verbatim. Most strings are short (ids, room
// names), so a tail is finished with one overlapping load instead of a byte loop.
[[gnu::always_inline]] inline size_t plain_prefix(const unsigned char* s, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  if (n >= 16) {
    for (; i + 16 <= n; i += 16) {
      if (const unsigned bits = special_mask16(s + i)) return i + __builtin_ctz(bits);
    }
    if (i == n) return n;
    // Reload the last 16 bytes; drop the bits of those already checked.
    const unsigned bits = special_mask16(s + n - 16) >> (16 - (n - i));
    return bits ? i + __builtin_ctz(bits) : n;
  }
#endif
  for (; i + 8 <= n; i += 8) {
    const size_t at = first_special_in_word(s + i);
    if (at < 8) return i + at;
  }
  if (i == n) return n;
  if (n >= 8) {  // same overlapping trick for the tail
    const size_t from = n - 8;
    uint64_t x;
    std::memcpy(&x, s + from, 8);
    const uint64_t bits = special_bytes(x) >> (8 * (i - from));
    return bits ? i + static_cast<size_t>(__builtin_ctzll(bits)) / 8 : n;
  }
  while (i < n && kByteClass[s[i]] == 0) ++i;
  return i;
}

// Writes the escape for the special byte at s[0] (n bytes remain); returns bytes consumed.
template <class Sink>
size_t put_escape(Sink& out, const unsigned char* s, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  const unsigned char c = s[0];
  if (c == 0xE2) {
    if (n >= 3 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9)) {
      out.put(s[2] == 0xA8 ? "\\u2028" : "\\u2029");
      return 3;
    }
    out.put(static_cast<char>(c));
    return 1;
  }
  switch (c) {
    case '"':
      out.put("\\\"");
      break;
    case '\\':
      out.put("\\\\");
      break;
    case '\b':
      out.put("\\b");
      break;
    case '\f':
      out.put("\\f");
      break;
    case '\n':
      out.put("\\n");
      break;
    case '\r':
      out.put("\\r");
      break;
    case '\t':
      out.put("\\t");
      break;
    default: {
      const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out.put(std::string_view(u, sizeof u));
    }
  }
  return 1;
}

template <class Sink>
void put_string(Sink& out, std::string_view v) {
  const auto* s = reinterpret_cast<const unsigned char*>(v.data());
  const size_t n = v.size();
  out.put('"');
  for (size_t i = 0; i < n;) {
    const size_t run = plain_prefix(s + i, n - i);
    out.put(v.substr(i, run));
    i += run;
    if (i < n) i += put_escape(out, s + i, n - i);
  }
  out.put('"');
}

size_t decimal_digits(uint64_t v) {
  size_t n = 1;
  for (; v >= 10000; v /= 10000) n += 4;
  return n + (v >= 10) + (v >= 100) + (v >= 1000);
}

template <class Sink>
void put_uint(Sink& out, uint64_t v) {
  if constexpr (std::is_same_v<Sink, CountingSink>) {
    out.size += decimal_digits(v);
    return;
  }
  char digits[20];
  const auto result = std::to_chars(digits, digits + sizeof digits, v);
  out.put(std::string_view(digits, static_cast<size_t>(result.ptr - digits)));
}

template <class Sink>
void put_message(Sink& out, const OutboundMessage& m) {
  out.put(R"({"message":{"target":)");
  put_string(out, m.target);
  out.put(R"(,"content":)");
  put_string(out, m.content);
  out.put(R"(,"message_id":)");
  put_string(out, m.message_id);
  out.put(R"(,"sent_at":)");
  put_string(out, m.sent_at);
  out.put(R"(,"sender":)");
  put_string(out, m.sender);
  out.put(R"(,"offset":)");
  put_uint(out, m.offset);
  out.put(R"(,"epoch":)");
  put_uint(out, m.epoch);
  if (!m.traceparent.empty()) {
    out.put(R"(,"traceparent":)");
    put_string(out, m.traceparent);
  }
  if (!m.tracestate.empty()) {
    out.put(R"(,"tracestate":)");
    put_string(out, m.tracestate);
  }
  out.put("}}");
}

}  // namespace

void append_json_string(std::string* out, std::string_view s) {
  StringSink sink{out};
  put_string(sink, s);
}

size_t json_string_encoded_size(std::string_view s) {
  CountingSink sink;
  put_string(sink, s);
  return sink.size;
}

void encode_session(std::string* out, std::string_view token, std::string_view member_id,
                    std::span<const std::string_view> rooms) {
  StringSink s{out};
  s.put(R"({"session":{"token":)");
  put_string(s, token);
  s.put(R"(,"member_id":)");
  put_string(s, member_id);
  s.put(R"(,"rooms":[)");
  for (size_t i = 0; i < rooms.size(); ++i) {
    if (i > 0) s.put(',');
    put_string(s, rooms[i]);
  }
  s.put("]}}");
}

void encode_room_joined(std::string* out, std::string_view room_id, uint64_t offset,
                        uint64_t epoch) {
  StringSink s{out};
  s.put(R"({"room_joined":{"room_id":)");
  put_string(s, room_id);
  s.put(R"(,"offset":)");
  put_uint(s, offset);
  s.put(R"(,"epoch":)");
  put_uint(s, epoch);
  s.put("}}");
}

void encode_room_left(std::string* out, std::string_view room_id) {
  StringSink s{out};
  s.put(R"({"room_left":{"room_id":)");
  put_string(s, room_id);
  s.put("}}");
}

void encode_error(std::string* out, std::string_view code, std::string_view message,
                  std::string_view ref) {
  StringSink s{out};
  s.put(R"({"error":{"code":)");
  put_string(s, code);
  s.put(R"(,"message":)");
  put_string(s, message);
  s.put(R"(,"ref":)");
  put_string(s, ref);
  s.put("}}");
}

void encode_error(std::string* out, std::string_view code, std::string_view message,
                  std::string_view ref, std::string_view key, uint64_t value) {
  encode_error(out, code, message, ref);
  out->resize(out->size() - 2);  // reopen the body
  StringSink s{out};
  s.put(",");
  put_string(s, key);
  s.put(":");
  put_uint(s, value);
  s.put("}}");
}

void encode_lagged(std::string* out, std::string_view room_id, uint64_t from_offset,
                   uint64_t to_offset) {
  StringSink s{out};
  s.put(R"({"lagged":{"room_id":)");
  put_string(s, room_id);
  s.put(R"(,"from_offset":)");
  put_uint(s, from_offset);
  s.put(R"(,"to_offset":)");
  put_uint(s, to_offset);
  s.put("}}");
}

void encode_refreshed(std::string* out, uint64_t exp) {
  StringSink s{out};
  s.put(R"({"refreshed":{"exp":)");
  put_uint(s, exp);
  s.put("}}");
}

void encode_resumed(std::string* out, std::string_view room_id, bool recovered, uint64_t offset,
                    uint64_t epoch) {
  StringSink s{out};
  s.put(R"({"resumed":{"room_id":)");
  put_string(s, room_id);
  s.put(recovered ? R"(,"recovered":true,"offset":)" : R"(,"recovered":false,"offset":)");
  put_uint(s, offset);
  s.put(R"(,"epoch":)");
  put_uint(s, epoch);
  s.put("}}");
}

size_t message_encoded_bound(const OutboundMessage& m) {
  CountingSink sink;
  put_message(sink, m);
  return sink.size;
}

size_t encode_message_to(char* out, const OutboundMessage& m) {
  RawSink sink{out};
  put_message(sink, m);
  return static_cast<size_t>(sink.p - out);
}

void encode_message(std::string* out, const OutboundMessage& m) {
  const size_t old_size = out->size();
  const size_t size = message_encoded_bound(m);
  out->resize(old_size + size);
  [[maybe_unused]] const size_t written = encode_message_to(out->data() + old_size, m);
  assert(written == size);
}

}  // namespace weir::ws
