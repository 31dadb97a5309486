// tools/load/server_metrics.h — what the slow scenarios read from the server under test: a
// plain HTTP GET of its /metrics page (blocking, with a deadline), the Prometheus text format
// parsed into series, and the counters that tell whether backpressure held the server back.
//
// The tool samples once a second from its main thread, so a blocking GET with a short
// deadline is the simple and right tool: it never touches the reactor threads.
//
// Thread-safety: pure functions and plain values; http_get blocks the calling thread only.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "net/address.h"

namespace weir::load {

struct HttpUrl {
  std::string host;  // for the Host header
  uint16_t port = 80;
  std::string path = "/";
  net::SocketAddress address;
  std::string to_string() const { return "http://" + host + ":" + std::to_string(port) + path; }
};

// http://HOST[:PORT][/path] with an IP literal or "localhost". Thread-safe: pure function.
bool parse_http_url(std::string_view text, HttpUrl* out, std::string* error);

// GETs `url` (HTTP/1.1, Connection: close) and returns the body of a 200 response, read by
// Content-Length, chunked encoding or to EOF. False with a reason on any failure or when
// `timeout_ms` passes. Blocks the calling thread.
bool http_get(const HttpUrl& url, int64_t timeout_ms, std::string* body, std::string* error);

// Prometheus text exposition (version 0.0.4): `name{labels} value` lines; comments and blank
// lines skipped. Labels are kept as written between the braces, so a series is found by the
// exact text the server prints (`reason="buffer_overrun"`).
class MetricsText {
 public:
  // False (with the first bad line) when a non-comment line has no parsable value; the lines
  // before it are kept.
  bool parse(std::string_view text, std::string* error);

  // The series' value, or NaN when absent.
  double value(std::string_view name, std::string_view labels = {}) const;
  // Sum over every label set of `name`, or NaN when there is none.
  double sum(std::string_view name) const;
  size_t size() const { return series_.size(); }

 private:
  std::map<std::string, double, std::less<>> series_;  // "name" or "name{labels}"
};

// The counters and gauges of weir that show backpressure at work; NaN when the server does
// not export one (a peer server, an older weir).
struct ServerSnapshot {
  double stream_sent = NAN;          // weir_stream_messages_sent_total
  double stream_deferred = NAN;      // weir_stream_messages_deferred_total
  double stream_dropped = NAN;       // weir_stream_messages_dropped_total
  double stream_held_back = NAN;     // weir_stream_sessions_held_back (gauge)
  double watermark_crossings = NAN;  // weir_high_watermark_crossings_total
  double reading_suspended_s = NAN;  // weir_reading_suspended_seconds_total
  double room_messages = NAN;        // weir_room_messages_total
  double room_deliveries = NAN;      // weir_room_deliveries_total
  double slow_skips = NAN;           // weir_slow_consumer_actions_total{action="skip"}
  double slow_pauses = NAN;          // ... {action="pause_publisher"}
  double slow_disconnects = NAN;     // ... {action="disconnect"}
  double buffer_overruns = NAN;      // weir_connections_closed_total{reason="buffer_overrun"}
};

ServerSnapshot server_snapshot(const MetricsText& metrics);

// What changed between two snapshots, per second of the interval; whether the server was held
// back is decided here so the CSV, the JSON and the plot agree.
struct ServerInterval {
  double sent_per_sec = NAN;  // stream messages, or room deliveries when there is no stream
  double deferred_per_sec = NAN;
  double room_messages_per_sec = NAN;
  double skips_per_sec = NAN;
  double pauses_per_sec = NAN;
  double suspended_fraction = NAN;  // seconds of suspended reading per second
  double held_back_sessions = NAN;  // the gauge at the interval's end
  double crossings = NAN;           // high-watermark crossings in the interval
  bool held_back = false;
};

// `room` selects what "sent" means (room deliveries instead of stream messages).
ServerInterval server_interval(const ServerSnapshot& before, const ServerSnapshot& now,
                               double seconds, bool room);

}  // namespace weir::load
