// core/log.cc — formatting and the single write per line.
#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace weir::core {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kText};
constexpr const char* kLevelNames[] = {"debug", "info", "warn", "error", "off"};

// Appends `text` JSON-escaped; returns the new length (truncates at `cap`).
size_t append_json_escaped(char* out, size_t len, size_t cap, const char* text) {
  for (const char* p = text; *p && len + 7 < cap; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\') {
      out[len++] = '\\';
      out[len++] = static_cast<char>(c);
    } else if (c < 0x20) {
      len += std::snprintf(out + len, cap - len, "\\u%04x", c);
    } else {
      out[len++] = static_cast<char>(c);
    }
  }
  return len;
}

}  // namespace

void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
void set_log_format(LogFormat format) { g_format.store(format, std::memory_order_relaxed); }
LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }

bool parse_log_level(std::string_view name, LogLevel* out) {
  for (int i = 0; i <= static_cast<int>(LogLevel::kOff); ++i) {
    if (name == kLevelNames[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void log_write(LogLevel level, const char* fmt, ...) {
  char message[2048];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(message, sizeof message, fmt, args);
  va_end(args);

  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  ::gmtime_r(&ts.tv_sec, &tm);
  char stamp[80];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

  char line[4096];
  size_t len;
  const char* name = kLevelNames[static_cast<int>(level)];
  if (g_format.load(std::memory_order_relaxed) == LogFormat::kJson) {
    len = std::snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", stamp, name);
    len = append_json_escaped(line, len, sizeof line - 3, message);
    line[len++] = '"';
    line[len++] = '}';
  } else {
    len = std::snprintf(line, sizeof line, "%s %-5s %s", stamp, name, message);
    if (len > sizeof line - 2) len = sizeof line - 2;
  }
  line[len++] = '\n';
  ssize_t rc = ::write(STDERR_FILENO, line, len);
  (void)rc;
}

}  // namespace weir::core
