// core/log.cc — formatting (text or JSON, escaped) and the single write per line.
#include "core/log.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>

namespace weir::core {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kText};
constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error", "off"};
constexpr size_t kLineBytes = 4096;

// Appends to a fixed buffer, keeping `reserve` bytes for the line's closing characters. A
// piece is written whole or not at all, so a cut line never ends inside an escape.
class LineWriter {
 public:
  LineWriter(char* out, size_t cap, size_t reserve) : out_(out), cap_(cap), reserve_(reserve) {}

  bool put(std::string_view piece) {
    if (full_ || len_ + piece.size() + reserve_ > cap_) return !(full_ = true);
    for (char c : piece) out_[len_++] = c;
    return true;
  }
  // The closing characters, written into the reserve.
  void finish(std::string_view tail) {
    for (char c : tail)
      if (len_ < cap_) out_[len_++] = c;
  }
  bool full() const { return full_; }
  size_t size() const { return len_; }

 private:
  char* out_;
  size_t cap_;
  size_t reserve_;
  size_t len_ = 0;
  bool full_ = false;
};

// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 when the first byte does not start one.
size_t utf8_sequence(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char c = byte(0);
  size_t n = c >= 0xC2 && c <= 0xDF   ? 2
             : c >= 0xE0 && c <= 0xEF ? 3
             : c >= 0xF0 && c <= 0xF4 ? 4
                                      : 0;
  if (n == 0 || s.size() < n) return 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range depends on the first
  if (c == 0xE0) lo = 0xA0;
  if (c == 0xED) hi = 0x9F;
  if (c == 0xF0) lo = 0x90;
  if (c == 0xF4) hi = 0x8F;
  if (byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  return n;
}

std::string_view short_escape(unsigned char c) {
  switch (c) {
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    default:
      return {};
  }
}

// A JSON string's contents (RFC 8259): quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD so the line stays valid JSON whatever a peer sent.
void put_json_chars(LineWriter& w, std::string_view s) {
  char hex[8];
  for (size_t i = 0; i < s.size() && !w.full();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      std::string_view esc = short_escape(c);
      if (!esc.empty()) {
        w.put(esc);
      } else if (c < 0x20) {
        std::snprintf(hex, sizeof hex, "\\u%04x", c);
        w.put(hex);
      } else {
        w.put(std::string_view(s.data() + i, 1));
      }
      i++;
      continue;
    }
    size_t n = utf8_sequence(s.substr(i));
    if (n == 0) {
      w.put("\\ufffd");
      i++;
    } else {
      w.put(s.substr(i, n));
      i += n;
    }
  }
}

// Text: control characters spelled out (\n, \xHH) so one event stays one line; in quoted
// values, quotes and backslashes escaped too.
void put_text_chars(LineWriter& w, std::string_view s, bool quoted) {
  char hex[8];
  for (size_t i = 0; i < s.size() && !w.full(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::string_view esc = short_escape(c);
    bool quote_char = c == '"' || c == '\\';
    if (!esc.empty() && (!quote_char || quoted)) {
      w.put(esc);
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      w.put(hex);
    } else {
      w.put(std::string_view(s.data() + i, 1));
    }
  }
}

// A text value is quoted when it is empty or holds a space, '=', a quote or a control byte.
bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

size_t format_json(char* out, size_t cap, std::string_view level, std::string_view stamp,
                   std::string_view msg, std::span<const LogField> fields) {
  LineWriter w(out, cap, 3);  // room for `"}\n` wherever the line is cut
  w.put("{\"ts\":\"");
  w.put(stamp);
  w.put("\",\"level\":\"");
  w.put(level);
  w.put("\",\"msg\":\"");
  put_json_chars(w, msg);
  if (w.full() || !w.put("\"")) return w.finish("\"}\n"), w.size();
  char head[96];
  for (const LogField& f : fields) {
    // The key, its colon and the value's start go in one piece: a cut line never ends
    // between a key and its value.
    if (f.is_number) {
      int n = std::snprintf(head, sizeof head, ",\"%.*s\":%lld", static_cast<int>(f.key.size()),
                            f.key.data(), static_cast<long long>(f.number));
      if (!w.put(std::string_view(head, std::min(static_cast<size_t>(n), sizeof head - 1)))) break;
      continue;
    }
    int n = std::snprintf(head, sizeof head, ",\"%.*s\":\"", static_cast<int>(f.key.size()),
                          f.key.data());
    if (!w.put(std::string_view(head, std::min(static_cast<size_t>(n), sizeof head - 1)))) break;
    put_json_chars(w, f.text);
    if (w.full() || !w.put("\"")) return w.finish("\"}\n"), w.size();
  }
  w.finish("}\n");
  return w.size();
}

size_t format_text(char* out, size_t cap, std::string_view level, std::string_view stamp,
                   std::string_view msg, std::span<const LogField> fields) {
  LineWriter w(out, cap, 2);  // room for a closing quote and the newline
  w.put(stamp);
  w.put(" ");
  w.put(level);
  for (size_t pad = level.size(); pad < 5; ++pad) w.put(" ");
  w.put(" ");
  put_text_chars(w, msg, false);
  char head[96];
  for (const LogField& f : fields) {
    if (w.full()) break;
    if (f.is_number) {
      int n = std::snprintf(head, sizeof head, " %.*s=%lld", static_cast<int>(f.key.size()),
                            f.key.data(), static_cast<long long>(f.number));
      if (!w.put(std::string_view(head, std::min(static_cast<size_t>(n), sizeof head - 1)))) break;
      continue;
    }
    bool quoted = needs_quotes(f.text);
    int n = std::snprintf(head, sizeof head, " %.*s=%s", static_cast<int>(f.key.size()),
                          f.key.data(), quoted ? "\"" : "");
    if (!w.put(std::string_view(head, std::min(static_cast<size_t>(n), sizeof head - 1)))) break;
    put_text_chars(w, f.text, quoted);
    if (quoted && (w.full() || !w.put("\""))) return w.finish("\"\n"), w.size();
  }
  w.finish("\n");
  return w.size();
}

void write_line(LogLevel level, std::string_view msg, std::span<const LogField> fields) {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  ::gmtime_r(&ts.tv_sec, &tm);
  char stamp[80];
  int n = std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, ts.tv_nsec / 1000000);
  char line[kLineBytes];
  size_t len = format_log_line(line, sizeof line, g_format.load(std::memory_order_relaxed), level,
                               std::string_view(stamp, static_cast<size_t>(n)), msg, fields);
  ssize_t rc = ::write(STDERR_FILENO, line, len);
  (void)rc;
}

}  // namespace

void set_log_level(LogLevel level) {
  g_level.store(level, std::memory_order_relaxed);
}
void set_log_format(LogFormat format) {
  g_format.store(format, std::memory_order_relaxed);
}
LogLevel log_level() {
  return g_level.load(std::memory_order_relaxed);
}
bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= static_cast<int>(log_level());
}

bool parse_log_level(std::string_view name, LogLevel* out) {
  for (int i = 0; i <= static_cast<int>(LogLevel::kOff); ++i) {
    if (name == kLevelNames[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

bool parse_log_format(std::string_view name, LogFormat* out) {
  if (name == "text") return *out = LogFormat::kText, true;
  if (name == "json") return *out = LogFormat::kJson, true;
  return false;
}

size_t format_log_line(char* out, size_t cap, LogFormat format, LogLevel level,
                       std::string_view stamp, std::string_view msg,
                       std::span<const LogField> fields) {
  std::string_view name = kLevelNames[static_cast<int>(level)];
  return format == LogFormat::kJson ? format_json(out, cap, name, stamp, msg, fields)
                                    : format_text(out, cap, name, stamp, msg, fields);
}

void log_write(LogLevel level, const char* fmt, ...) {
  char message[2048];
  va_list args;
  va_start(args, fmt);
  int n = std::vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  size_t len = n < 0 ? 0 : std::min(static_cast<size_t>(n), sizeof message - 1);
  write_line(level, std::string_view(message, len), {});
}

void log_event(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (!log_enabled(level)) return;
  write_line(level, msg, std::span<const LogField>(fields.begin(), fields.size()));
}

}  // namespace weir::core
