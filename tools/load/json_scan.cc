// tools/load/json_scan.cc — the one-pass key scanner.
#include "tools/load/json_scan.h"

#include <charconv>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace weir::load {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && is_space(s[i])) ++i;
  return i;
}

// `i` is just past an opening quote; returns the index of the closing quote, or npos. memchr
// finds each candidate quote; one preceded by an odd run of backslashes is escaped.
size_t string_end(std::string_view s, size_t i) {
  while (i < s.size()) {
    const void* hit = std::memchr(s.data() + i, '"', s.size() - i);
    if (!hit) return std::string_view::npos;
    size_t q = static_cast<size_t>(static_cast<const char*>(hit) - s.data());
    size_t backslashes = 0;
    while (q - backslashes > i && s[q - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) return q;
    i = q + 1;
  }
  return std::string_view::npos;
}

// The scalar starting at `i` (a string's contents, or a bare token up to a delimiter).
bool scalar_at(std::string_view s, size_t i, std::string_view* value, bool* is_string) {
  if (i >= s.size()) return false;
  if (s[i] == '"') {
    size_t end = string_end(s, i + 1);
    if (end == std::string_view::npos) return false;
    *value = s.substr(i + 1, end - i - 1);
    if (is_string) *is_string = true;
    return true;
  }
  if (s[i] == '{' || s[i] == '[') return false;
  size_t end = i;
  while (end < s.size() && s[end] != ',' && s[end] != '}' && s[end] != ']' && !is_space(s[end]))
    ++end;
  if (end == i) return false;
  *value = s.substr(i, end - i);
  if (is_string) *is_string = false;
  return true;
}

}  // namespace

std::string_view json_first_key(std::string_view json) {
  size_t i = skip_space(json, 0);
  if (i >= json.size() || json[i] != '{') return {};
  i = skip_space(json, i + 1);
  if (i >= json.size() || json[i] != '"') return {};
  size_t end = string_end(json, i + 1);
  if (end == std::string_view::npos) return {};
  size_t colon = skip_space(json, end + 1);
  if (colon >= json.size() || json[colon] != ':') return {};
  return json.substr(i + 1, end - i - 1);
}

// Every string is either a key (followed by ':') or a value; only keys are compared, so the
// same word inside a value is skipped over with the rest of that string.
// The common case first: one walk over the quotes, matching `"key":` right after each. In
// valid JSON that text can only open a key: inside a string both quotes would be escaped, a
// quote closing a string is never followed by `key":`, and a key's opening quote never follows
// a backslash. Keys with space before their colon, values that are not scalars, and malformed
// input fall back to the full scan below.
// The candidate at `q` (a quote): true when it opens a wanted key; its value then fills the field.
// Sets *bad when a wanted key holds no scalar (the full scan decides then).
// `first` holds a bit per byte value that starts a wanted key: most quotes close a string and
// are followed by `:`, `,` or `}`, and are turned away by that one test.
bool match_key_at(std::string_view json, const char* q, const uint64_t first[4], JsonField* fields,
                  size_t count, bool* bad) {
  const char* end = json.data() + json.size();
  const char* name = q + 1;
  if (name >= end) return false;
  auto c = static_cast<unsigned char>(*name);
  if (!((first[c >> 6] >> (c & 63)) & 1) || (q > json.data() && q[-1] == '\\')) return false;
  for (size_t f = 0; f < count; ++f) {
    JsonField& field = fields[f];
    size_t n = field.key.size();
    if (field.found || static_cast<size_t>(end - name) < n + 2 || name[0] != field.key[0] ||
        std::memcmp(name, field.key.data(), n) != 0 || name[n] != '"' || name[n + 1] != ':')
      continue;
    size_t at = skip_space(json, static_cast<size_t>(name + n + 2 - json.data()));
    if (!scalar_at(json, at, &field.value, &field.is_string)) *bad = true;
    field.found = !*bad;
    return field.found;
  }
  return false;
}

bool find_fields_fast(std::string_view json, size_t from, JsonField* fields, size_t count) {
  const char* base = json.data();
  size_t size = json.size();
  size_t found = 0;
  bool bad = false;
  size_t i = from;
  uint64_t first[4] = {0, 0, 0, 0};
  for (size_t f = 0; f < count; ++f) {
    if (fields[f].key.empty()) return false;
    auto c = static_cast<unsigned char>(fields[f].key[0]);
    first[c >> 6] |= uint64_t{1} << (c & 63);
  }
#ifdef __SSE2__
  // Sixteen bytes at a time: a candidate is a quote followed by the first letter of a wanted
  // key, so the test is two loads and a few compares per block, and a check per candidate.
  __m128i letters[8];
  size_t distinct = 0;
  for (size_t f = 0; f < count && distinct <= 8; ++f) {
    bool seen = false;
    for (size_t g = 0; g < f; ++g) seen = seen || fields[g].key[0] == fields[f].key[0];
    if (!seen && distinct < 8) letters[distinct] = _mm_set1_epi8(fields[f].key[0]);
    if (!seen) ++distinct;
  }
  const __m128i quote = _mm_set1_epi8('"');
  for (; distinct <= 8 && i + 17 <= size && found < count && !bad; i += 16) {
    __m128i at = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + i));
    __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + i + 1));
    __m128i starts = _mm_cmpeq_epi8(next, letters[0]);
    for (size_t d = 1; d < distinct; ++d)
      starts = _mm_or_si128(starts, _mm_cmpeq_epi8(next, letters[d]));
    auto mask =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(at, quote), starts)));
    while (mask && found < count && !bad) {
      const char* q = base + i + __builtin_ctz(mask);
      mask &= mask - 1;
      if (match_key_at(json, q, first, fields, count, &bad)) ++found;
    }
  }
#endif
  for (; i < size && found < count && !bad; ++i)
    if (base[i] == '"' && match_key_at(json, base + i, first, fields, count, &bad)) ++found;
  return found == count && !bad;
}

size_t json_find_fields(std::string_view json, JsonField* fields, size_t count) {
  if (find_fields_fast(json, 0, fields, count)) return count;
  size_t found = 0;
  size_t settled = 0;  // found, or first seen with a value that is not a scalar
  size_t i = 0;
  for (size_t f = 0; f < count; ++f) fields[f].found = false;
  uint64_t seen = 0;  // bit f: field f settled (fields past 64 are never settled early)
  while (settled < count && i < json.size()) {
    const void* hit = std::memchr(json.data() + i, '"', json.size() - i);
    if (!hit) break;
    size_t open = static_cast<size_t>(static_cast<const char*>(hit) - json.data());
    size_t end = string_end(json, open + 1);
    if (end == std::string_view::npos) break;
    i = end + 1;
    size_t after = skip_space(json, i);
    if (after >= json.size() || json[after] != ':') continue;  // a value, not a key
    std::string_view key = json.substr(open + 1, end - open - 1);
    for (size_t f = 0; f < count; ++f) {
      JsonField& field = fields[f];
      uint64_t bit = f < 64 ? uint64_t{1} << f : 0;
      if ((seen & bit) || field.found || field.key != key) continue;
      seen |= bit;
      ++settled;
      size_t at = skip_space(json, after + 1);
      if (scalar_at(json, at, &field.value, &field.is_string)) {
        field.found = true;
        ++found;
        // Resume after the value: a string value is skipped whole, not rescanned for keys.
        if (field.is_string)
          i = static_cast<size_t>(field.value.data() + field.value.size() - json.data()) + 1;
      }
      break;
    }
  }
  return found;
}

bool json_find_scalar(std::string_view json, std::string_view key, std::string_view* value,
                      bool* is_string) {
  JsonField field{key};
  if (json_find_fields(json, &field, 1) == 0) return false;
  *value = field.value;
  if (is_string) *is_string = field.is_string;
  return true;
}

bool json_field_uint(const JsonField& field, uint64_t* out) {
  if (!field.found) return false;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(field.value.data(), field.value.data() + field.value.size(), v);
  if (ec != std::errc() || end != field.value.data() + field.value.size() || field.value.empty())
    return false;
  *out = v;
  return true;
}

bool json_find_uint(std::string_view json, std::string_view key, uint64_t* out) {
  JsonField field{key};
  json_find_fields(json, &field, 1);
  return json_field_uint(field, out);
}

bool json_find_string(std::string_view json, std::string_view key, std::string_view* out) {
  bool is_string = false;
  std::string_view text;
  if (!json_find_scalar(json, key, &text, &is_string) || !is_string) return false;
  *out = text;
  return true;
}

bool json_find_fields_after(std::string_view json, size_t from, JsonField* fields, size_t count) {
  for (size_t f = 0; f < count; ++f) fields[f].found = false;
  return from < json.size() && find_fields_fast(json, from, fields, count);
}

}  // namespace weir::load
