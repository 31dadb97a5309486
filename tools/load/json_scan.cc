// tools/load/json_scan.cc — the one-pass key scanner.
#include "tools/load/json_scan.h"

#include <charconv>

namespace weir::load {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && is_space(s[i])) ++i;
  return i;
}

// `i` is just past an opening quote; returns the index of the closing quote, or npos.
size_t string_end(std::string_view s, size_t i) {
  while (i < s.size()) {
    char c = s[i];
    if (c == '"') return i;
    i += c == '\\' ? 2 : 1;
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
bool json_find_scalar(std::string_view json, std::string_view key, std::string_view* value,
                      bool* is_string) {
  size_t i = 0;
  while (i < json.size()) {
    if (json[i] != '"') {
      ++i;
      continue;
    }
    size_t end = string_end(json, i + 1);
    if (end == std::string_view::npos) return false;
    size_t after = skip_space(json, end + 1);
    bool is_key = after < json.size() && json[after] == ':';
    if (is_key && json.substr(i + 1, end - i - 1) == key)
      return scalar_at(json, skip_space(json, after + 1), value, is_string);
    i = end + 1;
  }
  return false;
}

bool json_find_uint(std::string_view json, std::string_view key, uint64_t* out) {
  std::string_view text;
  if (!json_find_scalar(json, key, &text)) return false;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  *out = v;
  return true;
}

bool json_find_string(std::string_view json, std::string_view key, std::string_view* out) {
  bool is_string = false;
  std::string_view text;
  if (!json_find_scalar(json, key, &text, &is_string) || !is_string) return false;
  *out = text;
  return true;
}

}  // namespace weir::load
