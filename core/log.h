// core/log.h — leveled logging to stderr, one write(2) per line, as text or JSON.
//
// Lines are formatted printf-style into a stack buffer and written with a single write, so
// lines from several threads never interleave. Nothing is logged per message at info.
//
// Events with structured fields (a connection's id, its peer, a close code) go through
// log_event: in text they follow the message as key=value (quoted when needed), in JSON they
// are members of the line's object next to ts, level and msg:
//
//   2026-12-07T10:00:00.123Z info  ws open conn=7 peer=10.0.0.2:51234 path=/ws
//   {"ts":"2026-12-07T10:00:00.123Z","level":"info","msg":"ws open","conn":7,"peer":"..."}
//
// Either format escapes what it writes (control characters, quotes; invalid UTF-8 becomes
// U+FFFD in JSON), so a peer-supplied string cannot forge or split a line.
//
// Thread-safety: all functions may be called from any thread.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace weir::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };
enum class LogFormat { kText, kJson };

void set_log_level(LogLevel level);
void set_log_format(LogFormat format);
LogLevel log_level();
bool log_enabled(LogLevel level);
bool parse_log_level(std::string_view name, LogLevel* out);
bool parse_log_format(std::string_view name, LogFormat* out);

// One structured field of a log event: a key and a string or an integer. The views must
// outlive the log_event call only.
struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), text(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), text(v) {}
  LogField(std::string_view k, const char* v) : key(k), text(v) {}
  LogField(std::string_view k, int64_t n) : key(k), number(n), is_number(true) {}
  LogField(std::string_view k, uint64_t n)
      : key(k), number(static_cast<int64_t>(n)), is_number(true) {}
  LogField(std::string_view k, int n) : key(k), number(n), is_number(true) {}
  LogField(std::string_view k, unsigned n) : key(k), number(n), is_number(true) {}
  LogField(std::string_view k, long long n) : key(k), number(n), is_number(true) {}
  LogField(std::string_view k, unsigned long long n)
      : key(k), number(static_cast<int64_t>(n)), is_number(true) {}

  std::string_view key;  // [a-z_]+, chosen by the caller
  std::string_view text;
  int64_t number = 0;
  bool is_number = false;
};

void log_write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// One line: `msg` and its fields. Callers test log_enabled() first when building the fields
// costs something.
void log_event(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields);

// The line log_event writes, newline included, into `out` (at most `cap` bytes, cap >= 64):
// cut short, it still ends in a complete escape, a closing `"}` (JSON) and the newline.
// Returns its length. Pure: the unit tests call it.
size_t format_log_line(char* out, size_t cap, LogFormat format, LogLevel level,
                       std::string_view stamp, std::string_view msg,
                       std::span<const LogField> fields);

#define WEIR_LOG_AT(level, ...)                                                 \
  do {                                                                          \
    if (static_cast<int>(level) >= static_cast<int>(::weir::core::log_level())) \
      ::weir::core::log_write(level, __VA_ARGS__);                              \
  } while (0)

#define log_debug(...) WEIR_LOG_AT(::weir::core::LogLevel::kDebug, __VA_ARGS__)
#define log_info(...) WEIR_LOG_AT(::weir::core::LogLevel::kInfo, __VA_ARGS__)
#define log_warn(...) WEIR_LOG_AT(::weir::core::LogLevel::kWarn, __VA_ARGS__)
#define log_error(...) WEIR_LOG_AT(::weir::core::LogLevel::kError, __VA_ARGS__)

}  // namespace weir::core
