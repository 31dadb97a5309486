// tests/metrics_test.cc — sharded counters, gauges, histograms and their Prometheus rendering;
// and the WebSocket server's by-state and by-type series counted over real sockets.
#include "core/metrics.h"

#include <gtest/gtest.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/server_harness.h"

namespace weir::core {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The rendered lines that belong to the metric family `name` (HELP, TYPE and samples).
std::vector<std::string> family_lines(const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& line : lines_of(render_metrics())) {
    std::string_view rest = line;
    if (rest.starts_with("# HELP ") || rest.starts_with("# TYPE ")) rest.remove_prefix(7);
    if (!rest.starts_with(name)) continue;
    rest.remove_prefix(name.size());
    for (std::string_view suffix : {"_bucket", "_sum", "_count"})
      if (rest.starts_with(suffix)) rest.remove_prefix(suffix.size());
    if (rest.empty() || rest[0] == ' ' || rest[0] == '{') out.push_back(line);
  }
  return out;
}

// ---- a small checker for the text exposition format (std::regex trips GCC 12's
// -Wmaybe-uninitialized under the sanitizer builds) ----

size_t name_length(std::string_view s, bool metric) {
  auto first = [&](char c) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (metric && c == ':');
  };
  auto rest = [&](char c) { return first(c) || std::isdigit(static_cast<unsigned char>(c)); };
  if (s.empty() || !first(s[0])) return 0;
  size_t n = 1;
  while (n < s.size() && rest(s[n])) n++;
  return n;
}

bool valid_value(std::string_view s) {
  if (s == "+Inf" || s == "-Inf" || s == "NaN") return true;
  double v;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size();
}

// Consumes `{name="value",...}`; false when malformed.
bool consume_labels(std::string_view* s) {
  if (s->empty() || (*s)[0] != '{') return true;  // no labels
  s->remove_prefix(1);
  for (;;) {
    size_t n = name_length(*s, false);
    if (n == 0 || s->size() < n + 2 || s->substr(n, 2) != "=\"") return false;
    s->remove_prefix(n + 2);
    size_t close = 0;
    while (close < s->size() && (*s)[close] != '"') close += (*s)[close] == '\\' ? 2 : 1;
    if (close >= s->size()) return false;
    s->remove_prefix(close + 1);
    if (s->empty()) return false;
    char sep = (*s)[0];
    s->remove_prefix(1);
    if (sep == '}') return true;
    if (sep != ',') return false;
  }
}

// The metric name of a well-formed sample line, or "" when the line is malformed.
std::string sample_name(std::string_view line) {
  size_t n = name_length(line, true);
  if (n == 0) return "";
  std::string name(line.substr(0, n));
  std::string_view rest = line.substr(n);
  if (!consume_labels(&rest) || rest.size() < 2 || rest[0] != ' ') return "";
  return valid_value(rest.substr(1)) ? name : "";
}

// "# HELP name text" / "# TYPE name type": the name, or "" when malformed.
std::string comment_name(std::string_view line, std::string_view keyword, std::string* rest) {
  if (!line.starts_with(keyword)) return "";
  line.remove_prefix(keyword.size());
  size_t n = name_length(line, true);
  if (n == 0 || line.size() <= n || line[n] != ' ') return "";
  *rest = line.substr(n + 1);
  return std::string(line.substr(0, n));
}

TEST(Counter, SumsIncrementsFromManyThreads) {
  Counter counter("test_counter_threads_total", "Increments from several threads.");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      if (t % 2 == 0) set_metrics_shard(5);  // half of them share one shard
      for (int i = 0; i < kPerThread; ++i) counter.inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.value(), uint64_t{kThreads} * kPerThread);
  counter.inc(10);
  EXPECT_EQ(counter.value(), uint64_t{kThreads} * kPerThread + 10);
}

TEST(Counter, ShardIndexWrapsAtTheShardCount) {
  std::thread([] {
    set_metrics_shard(kMetricShards + 3);
    EXPECT_EQ(metrics_shard(), 3);
  }).join();
  int unbound = -1;
  std::thread([&] { unbound = metrics_shard(); }).join();
  EXPECT_GE(unbound, 0);
  EXPECT_LT(unbound, kMetricShards);
}

TEST(Counter, ComputedCounterSumsItsSourcesAtScrapeTime) {
  Counter a("test_computed_parts_total", "Parts.", "part=\"a\"");
  Counter b("test_computed_parts_total", "Parts.", "part=\"b\"");
  Counter sum("test_computed_sum_total", "Sum of the parts.", "",
              [&] { return a.value() + b.value(); });
  a.inc(2);
  b.inc(5);
  EXPECT_EQ(sum.value(), 7u);
  EXPECT_EQ(family_lines("test_computed_sum_total"),
            (std::vector<std::string>{"# HELP test_computed_sum_total Sum of the parts.",
                                      "# TYPE test_computed_sum_total counter",
                                      "test_computed_sum_total 7"}));
  double value = 0;
  ASSERT_TRUE(find_metric_value("test_computed_sum_total", "", &value));
  EXPECT_EQ(value, 7);
  std::thread([&] { b.inc(); }).join();
  EXPECT_EQ(sum.value(), 8u);
}

TEST(Gauge, GoesUpAndDown) {
  Gauge gauge("test_gauge_updown", "Up and down.");
  gauge.inc();
  gauge.inc();
  gauge.add(10);
  gauge.dec();
  EXPECT_EQ(gauge.value(), 11);
  gauge.add(-20);
  EXPECT_EQ(gauge.value(), -9);
  std::thread([&] { gauge.add(9); }).join();  // another thread's shard
  EXPECT_EQ(gauge.value(), 0);
}

TEST(Gauge, ReadFunctionIsEvaluatedAtScrapeTime) {
  double source = 1.5;
  Gauge gauge("test_gauge_computed", "Computed at scrape.", "pool=\"x\"", [&] { return source; });
  EXPECT_EQ(gauge.value(), 1.5);
  source = 42;
  EXPECT_EQ(gauge.value(), 42);
  EXPECT_EQ(family_lines("test_gauge_computed"),
            (std::vector<std::string>{"# HELP test_gauge_computed Computed at scrape.",
                                      "# TYPE test_gauge_computed gauge",
                                      "test_gauge_computed{pool=\"x\"} 42"}));
}

TEST(Histogram, BucketsAreCumulativeWithSumAndCount) {
  Histogram hist("test_hist_latency_seconds", "Latency.", {1, 5, 10}, "route=\"a\"");
  for (double v : {0.5, 1.0, 3.0, 7.0, 100.0}) hist.observe(v);  // 1.0 counts as le="1"
  EXPECT_EQ(hist.count(), 5u);
  EXPECT_EQ(family_lines("test_hist_latency_seconds"),
            (std::vector<std::string>{
                "# HELP test_hist_latency_seconds Latency.",
                "# TYPE test_hist_latency_seconds histogram",
                "test_hist_latency_seconds_bucket{route=\"a\",le=\"1\"} 2",
                "test_hist_latency_seconds_bucket{route=\"a\",le=\"5\"} 3",
                "test_hist_latency_seconds_bucket{route=\"a\",le=\"10\"} 4",
                "test_hist_latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 5",
                "test_hist_latency_seconds_sum{route=\"a\"} 111.5",
                "test_hist_latency_seconds_count{route=\"a\"} 5",
            }));
}

TEST(Histogram, ObservationsFromManyThreadsAreAllCounted) {
  Histogram hist("test_hist_threads", "Threads.", {10, 100});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      if (t < 2) set_metrics_shard(7);  // two writers on one shard: the sum CAS must hold
      for (int i = 0; i < 50'000; ++i) hist.observe(i % 3 == 0 ? 50.0 : 1.0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(hist.count(), 200'000u);
  std::vector<std::string> lines = family_lines("test_hist_threads");
  ASSERT_EQ(lines.size(), 7u);
  // 16667 of every 50000 are 50.0, the rest 1.0; per thread.
  EXPECT_EQ(lines[2], "test_hist_threads_bucket{le=\"10\"} 133332");
  EXPECT_EQ(lines[3], "test_hist_threads_bucket{le=\"100\"} 200000");
  EXPECT_EQ(lines[5], "test_hist_threads_sum " + std::to_string(4 * (16667 * 50 + 33333)));
}

TEST(Histogram, ExponentialBounds) {
  EXPECT_EQ(Histogram::exponential(1, 2, 5), (std::vector<double>{1, 2, 4, 8, 16}));
  EXPECT_TRUE(Histogram::exponential(1, 2, 0).empty());
}

// A bucket's le label must name its bound exactly, or the scraper files samples under a
// different bound than the server counted them (and two close bounds could collide).
TEST(Histogram, BucketLabelsKeepTheBoundExactly) {
  Histogram hist("test_hist_sizes_bytes", "Sizes.", {2.5e-05, 0.005, 1048576, 16777216});
  std::vector<std::string> lines = family_lines("test_hist_sizes_bytes");
  ASSERT_GE(lines.size(), 6u);
  EXPECT_EQ(lines[2], "test_hist_sizes_bytes_bucket{le=\"2.5e-05\"} 0");
  EXPECT_EQ(lines[3], "test_hist_sizes_bytes_bucket{le=\"0.005\"} 0");
  EXPECT_EQ(lines[4], "test_hist_sizes_bytes_bucket{le=\"1048576\"} 0");
  EXPECT_EQ(lines[5], "test_hist_sizes_bytes_bucket{le=\"16777216\"} 0");
}

// rate(x_sum) needs the sum's low digits: six significant digits lose every increment once
// the sum passes a million.
TEST(Histogram, SumKeepsFullPrecision) {
  Histogram hist("test_hist_precise_seconds", "Precise.", {1});
  hist.observe(1'000'000);
  hist.observe(0.25);
  std::vector<std::string> lines = family_lines("test_hist_precise_seconds");
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[4], "test_hist_precise_seconds_sum 1000000.25");
}

TEST(Metrics, SpecialValuesUsePrometheusSpelling) {
  double value = -std::numeric_limits<double>::infinity();
  Gauge gauge("test_gauge_special", "Special values.", "", [&] { return value; });
  EXPECT_EQ(family_lines("test_gauge_special").back(), "test_gauge_special -Inf");
  value = std::numeric_limits<double>::infinity();
  EXPECT_EQ(family_lines("test_gauge_special").back(), "test_gauge_special +Inf");
  value = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(family_lines("test_gauge_special").back(), "test_gauge_special NaN");
  value = -2.5;
  EXPECT_EQ(family_lines("test_gauge_special").back(), "test_gauge_special -2.5");
}

TEST(Metrics, HelpAndTypeAppearOncePerNameAcrossLabelSets) {
  Counter a("test_frames_total", "Frames.", "dir=\"in\"");
  Gauge unrelated("test_frames_other", "Other.");
  Counter b("test_frames_total", "Frames.", "dir=\"out\"");
  a.inc(3);
  b.inc(4);
  EXPECT_EQ(family_lines("test_frames_total"),
            (std::vector<std::string>{
                "# HELP test_frames_total Frames.", "# TYPE test_frames_total counter",
                "test_frames_total{dir=\"in\"} 3", "test_frames_total{dir=\"out\"} 4"}));
}

// Checks the whole exposition against the text format: comment lines, sample lines, one TYPE
// per family, declared before and grouped with that family's samples.
TEST(Metrics, RenderedTextFollowsThePrometheusSyntax) {
  Counter c("test_syntax_total", "Counter with labels.", "a=\"1\",b=\"two\"");
  Gauge g("test_syntax_gauge", "Gauge.");
  Histogram h("test_syntax_seconds", "Histogram.", {0.001, 0.5, 1e6});
  c.inc();
  g.add(-3);
  h.observe(0.0001);
  h.observe(0.75);
  std::string text = render_metrics();
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  std::map<std::string, int> types;
  std::string family;  // the family declared by the last TYPE line
  std::string family_type;
  for (const std::string& line : lines_of(text)) {
    std::string rest;
    if (!comment_name(line, "# HELP ", &rest).empty()) continue;
    if (std::string name = comment_name(line, "# TYPE ", &rest); !name.empty()) {
      EXPECT_TRUE(rest == "counter" || rest == "gauge" || rest == "histogram") << line;
      family = name;
      family_type = rest;
      EXPECT_EQ(++types[family], 1) << "second TYPE for " << family;
      continue;
    }
    std::string name = sample_name(line);
    ASSERT_FALSE(name.empty()) << "bad line: " << line;
    bool in_family = name == family;
    if (family_type == "histogram")
      in_family =
          name == family + "_bucket" || name == family + "_sum" || name == family + "_count";
    EXPECT_TRUE(in_family) << name << " outside its family block (" << family << ")";
  }
  EXPECT_EQ(types["test_syntax_total"], 1);
  EXPECT_EQ(types["test_syntax_gauge"], 1);
  EXPECT_EQ(types["test_syntax_seconds"], 1);
}

TEST(Metrics, FindMetricValueMatchesNameAndLabels) {
  Counter in("test_find_total", "Find.", "dir=\"in\"");
  Counter out("test_find_total", "Find.", "dir=\"out\"");
  Gauge gauge("test_find_gauge", "Find gauge.");
  Histogram hist("test_find_seconds", "Find histogram.", {1});
  in.inc(2);
  out.inc(5);
  gauge.add(-7);
  hist.observe(0.5);
  hist.observe(3);
  double v = 0;
  ASSERT_TRUE(find_metric_value("test_find_total", "dir=\"in\"", &v));
  EXPECT_EQ(v, 2);
  ASSERT_TRUE(find_metric_value("test_find_total", "dir=\"out\"", &v));
  EXPECT_EQ(v, 5);
  ASSERT_TRUE(find_metric_value("test_find_gauge", "", &v));
  EXPECT_EQ(v, -7);
  ASSERT_TRUE(find_metric_value("test_find_seconds", "", &v));
  EXPECT_EQ(v, 2);  // a histogram reports its count
  EXPECT_FALSE(find_metric_value("test_find_total", "", &v));
  EXPECT_FALSE(find_metric_value("test_find_missing", "", &v));
}

TEST(Metrics, DestroyedMetricIsUnregistered) {
  double v;
  {
    Counter scoped("test_scoped_total", "Scoped.");
    ASSERT_TRUE(find_metric_value("test_scoped_total", "", &v));
  }
  EXPECT_FALSE(find_metric_value("test_scoped_total", "", &v));
  EXPECT_TRUE(family_lines("test_scoped_total").empty());
}

TEST(Metrics, HelpTextIsEscapedAsTheFormatRequires) {
  Counter c("test_help_escape_total", "Counts a \\ and a\nnewline.");
  EXPECT_EQ(family_lines("test_help_escape_total").front(),
            "# HELP test_help_escape_total Counts a \\\\ and a\\nnewline.");
}

// Two files declaring the same series (same name and labels) must not make a duplicate
// series: the scrape shows one sample with the sum.
TEST(Metrics, SeriesDeclaredTwiceIsRenderedOnceWithTheSum) {
  Counter a("test_twice_total", "Twice.", "limit=\"x\"");
  Counter other("test_twice_total", "Twice.", "limit=\"y\"");
  Counter b("test_twice_total", "Twice.", "limit=\"x\"");
  Gauge g1("test_twice_gauge", "Twice gauge.");
  Gauge g2("test_twice_gauge", "Twice gauge.");
  a.inc(2);
  b.inc(5);
  other.inc(1);
  g1.add(3);
  g2.add(-1);
  EXPECT_EQ(family_lines("test_twice_total"),
            (std::vector<std::string>{
                "# HELP test_twice_total Twice.", "# TYPE test_twice_total counter",
                "test_twice_total{limit=\"x\"} 7", "test_twice_total{limit=\"y\"} 1"}));
  EXPECT_EQ(family_lines("test_twice_gauge").back(), "test_twice_gauge 2");
}

// A family has one TYPE: a declaration that contradicts the first one is left out rather
// than rendered under the wrong TYPE.
TEST(Metrics, DeclarationOfAnotherTypeIsLeftOut) {
  Counter counter("test_conflict_total", "Conflict.", "k=\"a\"");
  Gauge gauge("test_conflict_total", "Conflict as a gauge.", "k=\"b\"");
  counter.inc();
  gauge.add(4);
  EXPECT_EQ(family_lines("test_conflict_total"),
            (std::vector<std::string>{"# HELP test_conflict_total Conflict.",
                                      "# TYPE test_conflict_total counter",
                                      "test_conflict_total{k=\"a\"} 1"}));
}

}  // namespace
}  // namespace weir::core

// ---------------------------------------------------------------- the server's series

namespace weir::harness {
namespace {

constexpr const char* kTypes[] = {"text", "binary", "ping", "pong", "close"};

double metric(const std::string& name, const std::string& labels = "") {
  double value = -1;
  EXPECT_TRUE(core::find_metric_value(name, labels, &value)) << name << "{" << labels << "}";
  return value;
}

std::string state(const char* name) {
  return std::string("state=\"") + name + "\"";
}

std::string by_type(const char* direction, const char* type) {
  return std::string("direction=\"") + direction + "\",type=\"" + type + "\"";
}

// Every series this file checks, read now (in-process: the counters are the test binary's).
std::map<std::string, double> snapshot() {
  std::map<std::string, double> values;
  for (const char* s : {"handshaking", "open", "closing"})
    values["connections " + std::string(s)] = metric("weir_connections", state(s));
  values["above_high"] = metric("weir_connections_above_high_watermark");
  for (const char* d : {"in", "out"}) {
    for (const char* t : kTypes) {
      values[std::string("messages ") + d + " " + t] =
          metric("weir_ws_messages_total", by_type(d, t));
      values[std::string("bytes ") + d + " " + t] =
          metric("weir_ws_payload_bytes_total", by_type(d, t));
    }
  }
  values["received_total"] = metric("weir_ws_messages_received_total");
  values["sent_total"] = metric("weir_ws_messages_sent_total");
  values["bytes_received_total"] = metric("weir_ws_payload_bytes_received_total");
  values["bytes_sent_total"] = metric("weir_ws_payload_bytes_sent_total");
  return values;
}

// Gauges move on the server's thread: waits until `name`{labels} equals `want` (false after
// 5 s; the test then fails on the value, not on the time taken).
bool settles_at(const std::string& name, const std::string& labels, double want) {
  const int64_t deadline = core::monotonic_ms() + 5000;
  double value = 0;
  while (core::find_metric_value(name, labels, &value) && value != want) {
    if (core::monotonic_ms() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return value == want;
}

TEST(ServerMetrics, ConnectionsMoveThroughHandshakingOpenAndClosing) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  std::map<std::string, double> base = snapshot();
  const double handshaking = base["connections handshaking"];
  const double open = base["connections open"];
  const double closing = base["connections closing"];

  RawClient http(server.port());  // accepted, no request yet: handshaking
  ASSERT_TRUE(http.connected());
  EXPECT_TRUE(settles_at("weir_connections", state("handshaking"), handshaking + 1));

  constexpr int kSessions = 3;
  std::vector<std::unique_ptr<RawClient>> sessions;
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(open_websocket(server.port()));
    ASSERT_TRUE(sessions.back());
  }
  EXPECT_TRUE(settles_at("weir_connections", state("open"), open + kSessions));
  EXPECT_EQ(metric("weir_connections", state("handshaking")), handshaking + 1);

  // The close handshake: the server answers and closes TCP; the session counts as closing
  // until its connection is gone, and in no state afterwards.
  for (auto& ws : sessions) {
    ASSERT_TRUE(ws->send(close_frame(1000, "bye")));
    Frame f;
    ASSERT_EQ(read_frame(*ws, &f), ReadStatus::kOk);
    EXPECT_EQ(f.opcode, kOpClose);
  }
  EXPECT_TRUE(settles_at("weir_connections", state("open"), open));
  for (auto& ws : sessions) ws->close();
  http.close();
  EXPECT_TRUE(settles_at("weir_connections", state("open"), open));
  EXPECT_TRUE(settles_at("weir_connections", state("closing"), closing));
  EXPECT_TRUE(settles_at("weir_connections", state("handshaking"), handshaking));
}

TEST(ServerMetrics, MessagesAndBytesAreCountedByDirectionAndType) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  std::map<std::string, double> base = snapshot();

  constexpr int kSessions = 3, kText = 4, kBinary = 2;
  const std::string text = "hello";             // 5 bytes
  const std::string binary("\x00\x01\xff", 3);  // 3 bytes
  std::vector<std::unique_ptr<RawClient>> sessions;
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(open_websocket(server.port()));
    ASSERT_TRUE(sessions.back());
  }
  for (auto& ws : sessions) {
    std::string burst;
    for (int i = 0; i < kText; ++i) burst += frame(kOpText, text);
    for (int i = 0; i < kBinary; ++i) burst += frame(kOpBinary, binary);
    burst += frame(kOpPing, "p1");
    ASSERT_TRUE(ws->send(burst));
    for (int i = 0; i < kText + kBinary + 1; ++i) {  // the echoes and the pong
      Frame f;
      ASSERT_EQ(read_frame(*ws, &f), ReadStatus::kOk);
    }
    ASSERT_TRUE(ws->send(close_frame(1000, "bye")));  // 5 payload bytes
    Frame f;
    ASSERT_EQ(read_frame(*ws, &f), ReadStatus::kOk);  // echoed code, no reason: 2 bytes
    EXPECT_EQ(f.opcode, kOpClose);
    EXPECT_EQ(f.payload.size(), 2u);
  }
  // Everything counted was counted before the server wrote what the clients have read.
  std::map<std::string, double> now = snapshot();
  auto delta = [&](const std::string& key) { return now[key] - base[key]; };
  for (const char* d : {"in", "out"}) {
    SCOPED_TRACE(d);
    EXPECT_EQ(delta(std::string("messages ") + d + " text"), kSessions * kText);
    EXPECT_EQ(delta(std::string("bytes ") + d + " text"), kSessions * kText * 5);
    EXPECT_EQ(delta(std::string("messages ") + d + " binary"), kSessions * kBinary);
    EXPECT_EQ(delta(std::string("bytes ") + d + " binary"), kSessions * kBinary * 3);
    EXPECT_EQ(delta(std::string("messages ") + d + " close"), kSessions);
  }
  EXPECT_EQ(delta("messages in ping"), kSessions);
  EXPECT_EQ(delta("bytes in ping"), kSessions * 2);
  EXPECT_EQ(delta("messages out pong"), kSessions);
  EXPECT_EQ(delta("bytes out pong"), kSessions * 2);
  EXPECT_EQ(delta("messages out ping"), 0);
  EXPECT_EQ(delta("messages in pong"), 0);
  EXPECT_EQ(delta("bytes in close"), kSessions * 5);
  EXPECT_EQ(delta("bytes out close"), kSessions * 2);
  // The unlabelled totals are text plus binary.
  EXPECT_EQ(delta("received_total"), kSessions * (kText + kBinary));
  EXPECT_EQ(delta("sent_total"), kSessions * (kText + kBinary));
  EXPECT_EQ(delta("bytes_received_total"), kSessions * (kText * 5 + kBinary * 3));
  EXPECT_EQ(delta("bytes_sent_total"), kSessions * (kText * 5 + kBinary * 3));
}

TEST(ServerMetrics, AConnectionCountsAboveTheHighWatermarkUntilItDrains) {
  ServerConfig config;
  config.tcp.connection.high_watermark = 64 << 10;
  config.tcp.connection.low_watermark = 16 << 10;
  config.tcp.connection.max_buffer = 0;
  TestServer server(config);
  ASSERT_TRUE(server.started()) << server.error();
  const double above = metric("weir_connections_above_high_watermark");
  auto ws = open_websocket(server.port());
  ASSERT_TRUE(ws);
  // A 12 MiB echo the client does not read: more than the socket buffers take, so the
  // server's queue stays above the high watermark.
  const std::string big(12 << 20, 'x');
  ASSERT_TRUE(ws->send(frame(kOpBinary, big)));
  EXPECT_TRUE(settles_at("weir_connections_above_high_watermark", "", above + 1));
  Frame f;
  ASSERT_EQ(read_frame(*ws, &f, 20000), ReadStatus::kOk);
  EXPECT_EQ(f.payload.size(), big.size());
  EXPECT_TRUE(settles_at("weir_connections_above_high_watermark", "", above));
}

}  // namespace
}  // namespace weir::harness
