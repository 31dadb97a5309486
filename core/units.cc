// core/units.cc — size and duration parsing.
#include "core/units.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace weir::core {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// Splits "12.5MiB" into 12.5 and "MiB".
bool split_number(std::string_view text, double* number, std::string_view* unit) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + i, *number);
  if (ec != std::errc() || end != text.data() + i || *number < 0) return false;
  *unit = text.substr(i);
  return true;
}

}  // namespace

bool parse_bytes(std::string_view text, uint64_t* out) {
  double number;
  std::string_view unit;
  if (!split_number(text, &number, &unit)) return false;
  double scale;
  if (unit.empty() || iequals(unit, "b")) scale = 1;
  else if (iequals(unit, "k") || iequals(unit, "kb") || iequals(unit, "kib")) scale = 1024.0;
  else if (iequals(unit, "m") || iequals(unit, "mb") || iequals(unit, "mib")) scale = 1024.0 * 1024;
  else if (iequals(unit, "g") || iequals(unit, "gb") || iequals(unit, "gib")) scale = 1024.0 * 1024 * 1024;
  else return false;
  double value = number * scale;
  if (value > 1.8e19) return false;
  *out = static_cast<uint64_t>(std::llround(value));
  return true;
}

bool parse_duration_ms(std::string_view text, int64_t* out) {
  double number;
  std::string_view unit;
  if (!split_number(text, &number, &unit)) return false;
  double scale;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m") scale = 60000;
  else if (unit == "h") scale = 3600000;
  else return false;
  *out = static_cast<int64_t>(std::llround(number * scale));
  return true;
}

std::string format_bytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB"};
  int unit = 0;
  while (unit < 3 && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    unit++;
  }
  return std::to_string(bytes) + kUnits[unit];
}

std::string format_duration_ms(int64_t ms) {
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace weir::core
