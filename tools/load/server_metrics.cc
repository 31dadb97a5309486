// tools/load/server_metrics.cc — the /metrics GET, the exposition parser and the interval rules.
#include "tools/load/server_metrics.h"

#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/clock.h"
#include "net/socket_ops.h"

namespace weir::load {
namespace {

constexpr size_t kMaxResponse = 16u << 20;

// Waits for `events` on `fd` until `deadline_ms`; false on timeout or error.
bool wait_fd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - core::monotonic_ms();
    if (left <= 0) return false;
    struct pollfd p {
      fd, events, 0
    };
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

bool send_all(int fd, std::string_view data, int64_t deadline_ms, std::string* error) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_fd(fd, POLLOUT, deadline_ms)) {
        *error = "timed out sending the request";
        return false;
      }
    } else {
      *error = std::string("send: ") + std::strerror(errno);
      return false;
    }
  }
  return true;
}

bool read_all(int fd, int64_t deadline_ms, std::string* out, std::string* error) {
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      if (out->size() > kMaxResponse) {
        *error = "response larger than 16MiB";
        return false;
      }
    } else if (n == 0) {
      return true;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_fd(fd, POLLIN, deadline_ms)) {
        *error = "timed out reading the response";
        return false;
      }
    } else {
      *error = std::string("recv: ") + std::strerror(errno);
      return false;
    }
  }
}

bool header_value(std::string_view head, std::string_view name, std::string_view* value) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2, end = head.find("\r\n", start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? end : end - start);
    size_t colon = line.find(':');
    if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      *value = v;
      return true;
    }
    pos = end;
  }
  return false;
}

bool dechunk(std::string_view body, std::string* out) {
  out->clear();
  size_t i = 0;
  for (;;) {
    size_t eol = body.find("\r\n", i);
    if (eol == std::string_view::npos) return false;
    uint64_t len = 0;
    auto [end, ec] = std::from_chars(body.data() + i, body.data() + eol, len, 16);
    if (ec != std::errc() || end == body.data() + i) return false;
    if (len == 0) return true;
    if (len > body.size() - (eol + 2)) return false;  // eol + 2 <= size: the find succeeded
    out->append(body.substr(eol + 2, len));
    i = eol + 2 + len + 2;
  }
}

// Splits a full response into status, head and body.
bool parse_response(std::string_view raw, std::string* body, std::string* error) {
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.substr(0, 7) != "HTTP/1." || raw.size() < 12 || head_end == std::string_view::npos) {
    *error = "not an HTTP/1.x response";
    return false;
  }
  std::string_view head = raw.substr(0, head_end + 2);
  std::string_view rest = raw.substr(head_end + 4);
  if (raw.substr(9, 3) != "200") {
    *error = "HTTP " + std::string(raw.substr(9, 3));
    return false;
  }
  std::string_view v;
  if (header_value(head, "transfer-encoding", &v) && v.find("chunked") != std::string_view::npos) {
    if (dechunk(rest, body)) return true;
    *error = "bad chunked body";
    return false;
  }
  if (header_value(head, "content-length", &v)) {
    uint64_t len = 0;
    std::from_chars(v.data(), v.data() + v.size(), len);
    if (rest.size() < len) {
      *error = "body shorter than its Content-Length";
      return false;
    }
    rest = rest.substr(0, len);
  }
  body->assign(rest);
  return true;
}

}  // namespace

bool parse_http_url(std::string_view text, HttpUrl* out, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  if (text.substr(0, kScheme.size()) != kScheme) {
    *error = "expected an http://HOST:PORT/path URL, got '" + std::string(text) + "'";
    return false;
  }
  std::string_view rest = text.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  HttpUrl url;
  url.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  size_t bracket = authority.rfind(']');
  size_t colon = authority.rfind(':');
  bool has_port =
      colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket);
  url.host = std::string(has_port ? authority.substr(0, colon) : authority);
  std::string hostport =
      url.host + ":" + (has_port ? std::string(authority.substr(colon + 1)) : "80");
  if (url.host.empty() || !net::SocketAddress::parse(hostport, &url.address, error)) {
    if (url.host.empty()) *error = "no host";
    *error = "URL '" + std::string(text) + "': " + *error;
    return false;
  }
  url.port = url.address.port();
  *out = std::move(url);
  return true;
}

bool http_get(const HttpUrl& url, int64_t timeout_ms, std::string* body, std::string* error) {
  int64_t deadline = core::monotonic_ms() + timeout_ms;
  int fd = net::connect_nonblocking(url.address, error);
  if (fd < 0) return false;
  bool ok = false;
  std::string raw;
  if (!wait_fd(fd, POLLOUT, deadline)) {
    *error = "connect to " + url.address.to_string() + " timed out";
  } else if (int err = net::socket_error(fd); err != 0) {
    *error = "connect to " + url.address.to_string() + ": " + std::strerror(err);
  } else {
    std::string request = "GET " + url.path + " HTTP/1.1\r\nHost: " + url.host + ":" +
                          std::to_string(url.port) +
                          "\r\nUser-Agent: weir-load\r\nConnection: close\r\n\r\n";
    ok = send_all(fd, request, deadline, error) && read_all(fd, deadline, &raw, error) &&
         parse_response(raw, body, error);
  }
  ::close(fd);
  return ok;
}

// ---------------------------------------------------------------- MetricsText

bool MetricsText::parse(std::string_view text, std::string* error) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    // The value follows the series: after the closing brace when there are labels (label
    // values may hold spaces), else after the name.
    size_t brace = line.find('{');
    size_t close = brace == std::string_view::npos ? std::string_view::npos : line.find('}', brace);
    size_t split = line.find(' ', close == std::string_view::npos ? 0 : close);
    if (split == std::string_view::npos ||
        (brace != std::string_view::npos && close == std::string_view::npos)) {
      *error = "bad metrics line: '" + std::string(line.substr(0, 120)) + "'";
      return false;
    }
    std::string_view series = line.substr(0, split);
    std::string_view rest = line.substr(split + 1);
    rest = rest.substr(0, rest.find(' '));  // an optional timestamp follows
    std::string number(rest);
    char* end = nullptr;
    double v = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size()) {
      *error = "bad metrics value: '" + std::string(line.substr(0, 120)) + "'";
      return false;
    }
    series_[std::string(series)] = v;
  }
  return true;
}

double MetricsText::value(std::string_view name, std::string_view labels) const {
  std::string key(name);
  if (!labels.empty()) key += "{" + std::string(labels) + "}";
  auto it = series_.find(key);
  return it == series_.end() ? NAN : it->second;
}

double MetricsText::sum(std::string_view name) const {
  double total = NAN;
  for (auto it = series_.lower_bound(name); it != series_.end(); ++it) {
    std::string_view key = it->first;
    if (key.substr(0, name.size()) != name) break;
    if (key.size() != name.size() && key[name.size()] != '{') continue;
    total = std::isnan(total) ? it->second : total + it->second;
  }
  return total;
}

ServerSnapshot server_snapshot(const MetricsText& m) {
  ServerSnapshot s;
  s.stream_sent = m.value("weir_stream_messages_sent_total");
  s.stream_deferred = m.value("weir_stream_messages_deferred_total");
  s.stream_dropped = m.value("weir_stream_messages_dropped_total");
  s.stream_held_back = m.value("weir_stream_sessions_held_back");
  s.watermark_crossings = m.value("weir_high_watermark_crossings_total");
  s.reading_suspended_s = m.value("weir_reading_suspended_seconds_total");
  s.room_messages = m.value("weir_room_messages_total");
  s.room_deliveries = m.value("weir_room_deliveries_total");
  s.slow_skips = m.value("weir_slow_consumer_actions_total", "action=\"skip\"");
  s.slow_pauses = m.value("weir_slow_consumer_actions_total", "action=\"pause_publisher\"");
  s.slow_disconnects = m.value("weir_slow_consumer_actions_total", "action=\"disconnect\"");
  s.buffer_overruns = m.value("weir_connections_closed_total", "reason=\"buffer_overrun\"");
  return s;
}

ServerInterval server_interval(const ServerSnapshot& a, const ServerSnapshot& b, double seconds,
                               bool room) {
  auto rate = [&](double x, double y) { return seconds > 0 ? (y - x) / seconds : NAN; };
  auto positive = [](double v) { return std::isfinite(v) && v > 0; };
  ServerInterval r;
  r.sent_per_sec =
      room ? rate(a.room_deliveries, b.room_deliveries) : rate(a.stream_sent, b.stream_sent);
  r.deferred_per_sec = rate(a.stream_deferred, b.stream_deferred);
  r.room_messages_per_sec = rate(a.room_messages, b.room_messages);
  r.skips_per_sec = rate(a.slow_skips, b.slow_skips);
  r.pauses_per_sec = rate(a.slow_pauses, b.slow_pauses);
  r.suspended_fraction = rate(a.reading_suspended_s, b.reading_suspended_s);
  r.held_back_sessions = b.stream_held_back;
  r.crossings = b.watermark_crossings - a.watermark_crossings;
  // Held back: the server had something to send and did not (deferred, skipped, paused a
  // publisher), or a queue sat at the high watermark.
  r.held_back = positive(r.deferred_per_sec) || positive(r.held_back_sessions) ||
                positive(r.skips_per_sec) || positive(r.pauses_per_sec) ||
                positive(r.suspended_fraction) || positive(r.crossings);
  return r;
}

}  // namespace weir::load
