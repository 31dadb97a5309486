// core/log.h — leveled logging to stderr, one write(2) per line, as text or JSON.
//
// Lines are formatted printf-style into a stack buffer and written with a single write, so
// lines from several threads never interleave. Nothing is logged per message at info.
//
// Thread-safety: all functions may be called from any thread.
#pragma once

#include <cstdarg>
#include <string_view>

namespace weir::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };
enum class LogFormat { kText, kJson };

void set_log_level(LogLevel level);
void set_log_format(LogFormat format);
LogLevel log_level();
bool parse_log_level(std::string_view name, LogLevel* out);

void log_write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define WEIR_LOG_AT(level, ...)                                                  \
  do {                                                                           \
    if (static_cast<int>(level) >= static_cast<int>(::weir::core::log_level())) \
      ::weir::core::log_write(level, __VA_ARGS__);                               \
  } while (0)

#define log_debug(...) WEIR_LOG_AT(::weir::core::LogLevel::kDebug, __VA_ARGS__)
#define log_info(...) WEIR_LOG_AT(::weir::core::LogLevel::kInfo, __VA_ARGS__)
#define log_warn(...) WEIR_LOG_AT(::weir::core::LogLevel::kWarn, __VA_ARGS__)
#define log_error(...) WEIR_LOG_AT(::weir::core::LogLevel::kError, __VA_ARGS__)

}  // namespace weir::core
