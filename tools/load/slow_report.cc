// tools/load/slow_report.cc — the slow scenario's CSV, plot and JSON summary.
#include "tools/load/slow_report.h"

#include <algorithm>
#include <cstdio>

#include "tools/load/slow_plan.h"
#include "tools/load/svg_plot.h"

namespace weir::load {
namespace {

// Sums over the rows of the run (connect and measure) of a per-second value times its interval.
double run_total(const SlowReport& r, double ServerInterval::*field) {
  double total = 0;
  for (size_t i = 0; i < slow_rows_in_run(r); ++i) {
    const SlowRow& row = r.rows[i];
    double v = row.server.*field;
    if (row.metrics_ok && std::isfinite(v)) total += v * row.dt;
  }
  return total;
}

double measured_seconds(const SlowReport& r) {
  return std::max(r.measure_end_t - r.measure_start_t, 1e-3);
}

double received_rate(const SlowReport& r, size_t i) {
  if (i >= r.measure_end.size()) return 0;
  return (r.measure_end[i].processed - r.measure_start[i].processed) / measured_seconds(r);
}

bool has_send_times(const SlowReport& r, size_t i) {
  return !r.room && i < r.final_stats.size() && r.final_stats[i].clock_shared &&
         i < r.bins.size() && !r.bins[i].empty();
}

std::string bandwidth_text(double bps) {
  return bps == 0 ? std::string("unlimited") : human_count(bps) + " B/s";
}

// "20.0k B/s, from 40s unlimited, from 50s 30.0k B/s"
std::string describe_relay(const Options& o) {
  std::string text;
  for (const BandwidthStep& step : o.bandwidth_schedule) {
    if (step.at_ms == 0) {
      text = bandwidth_text(step.bytes_per_sec);
      continue;
    }
    if (text.empty()) text = bandwidth_text(o.via_relay);
    char at[32];
    std::snprintf(at, sizeof at, "%gs", static_cast<double>(step.at_ms) / 1000.0);
    text += std::string(", from ") + at + " " + bandwidth_text(step.bytes_per_sec);
  }
  return text.empty() ? bandwidth_text(o.via_relay) : text;
}

std::string describe_clients(const SlowReport& r) {
  const Options& o = *r.options;
  std::string text;
  if (o.clients > 0) {
    text = std::to_string(o.clients) + (o.clients == 1 ? " slow client" : " slow clients");
    if (o.via_relay >= 0) text += " behind a relay at " + describe_relay(o);
    if (o.delay_base_ms >= 0)
      text += " at " + std::to_string(o.delay_base_ms) + "+0.." + std::to_string(o.delay_range_ms) +
              " ms/message";
    else if (o.delay_ms > 0)
      text += " at " + std::to_string(o.delay_ms) + " ms/message";
  }
  if (o.fast_clients > 0)
    text += (text.empty() ? "" : ", ") + std::to_string(o.fast_clients) + " fast";
  return text;
}

void write_server(JsonWriter& j, const SlowReport& r) {
  const Options& o = *r.options;
  size_t run_rows = slow_rows_in_run(r);
  double held = 0, first = NAN, sent = 0, sent_secs = 0;
  for (size_t i = 0; i < run_rows; ++i) {
    const SlowRow& row = r.rows[i];
    if (row.held_back) {
      held += row.dt;
      if (std::isnan(first)) first = row.t - row.dt;
    }
    if (row.phase == "measure" && row.metrics_ok && std::isfinite(row.server.sent_per_sec)) {
      sent += row.server.sent_per_sec * row.dt;
      sent_secs += row.dt;
    }
  }
  double crossings = 0;
  for (size_t i = 0; i < run_rows; ++i)
    if (r.rows[i].metrics_ok && std::isfinite(r.rows[i].server.crossings))
      crossings += r.rows[i].server.crossings;
  j.begin_object("server")
      .field("metrics_url", o.metrics_url.to_string())
      .field("metrics_ok", r.metrics_ok)
      .field("sent_per_sec", sent_secs > 0 ? sent / sent_secs : NAN)
      .field("deferred", run_total(r, &ServerInterval::deferred_per_sec))
      .field("dropped", r.last_snapshot.stream_dropped - r.first_snapshot.stream_dropped)
      .field("skips", run_total(r, &ServerInterval::skips_per_sec))
      .field("publisher_pauses", run_total(r, &ServerInterval::pauses_per_sec))
      .field("watermark_crossings", crossings)
      .field("buffer_overruns", r.last_snapshot.buffer_overruns - r.first_snapshot.buffer_overruns)
      .field("held_back_seconds", held)
      .field("first_held_back_at_s", first)
      .end_object();
}

void write_client(JsonWriter& j, const SlowReport& r, size_t i) {
  const SlowClientSpec& spec = (*r.specs)[i];
  const SlowClientStats& s = r.final_stats[i];
  j.begin_object()
      .field("name", spec.name)
      .field("delay_ms", spec.delay_ms)
      .field("received", r.measure_end[i].processed - r.measure_start[i].processed)
      .field("received_per_sec", received_rate(r, i))
      .field("server_sent_per_sec",
             has_send_times(r, i) ? bins_rate(r.bins[i], r.measure_start_t, r.measure_end_t) : NAN)
      .field("max_age_ms", s.max_age_ms)
      .field("backlog_peak", s.backlog_peak)
      .field("dropped", s.dropped);
  if (s.dropped) j.field("end_reason", s.end_reason);
  // A member's fate in a room: messages the server dropped for it show as gaps (silently) or
  // skipped (announced by lagged notices); `behind` is what had not reached it when the run
  // ended (still buffered in the server, the kernel or the relay).
  uint64_t last = s.offsets.last_offset();
  if (r.room)
    j.field("lost", s.offsets.lost(r.room_last_offset))
        .field("skipped", s.offsets.skipped())
        .field("gaps", s.offsets.gap_messages())
        .field("behind", r.room_last_offset > last ? r.room_last_offset - last : 0)
        .field("order_violations", s.offsets.order_violations());
  else
    j.field("server_deferred", s.last_deferred).field("gaps", s.stream_gaps);
  j.end_object();
}

void write_room(JsonWriter& j, const SlowReport& r) {
  uint64_t lost = 0, violations = 0;
  for (const SlowClientStats& s : r.final_stats) {
    lost += s.offsets.lost(r.room_last_offset);
    violations += s.offsets.order_violations();
  }
  j.field("published", r.published)
      .field("publisher_held_back", r.publisher_held_back)
      .field("room_last_offset", r.room_last_offset)
      .field("lost", lost)
      .field("order_violations", violations);
}

struct ClassTotals {
  double sum = 0, min = INFINITY, max_age = 0;
  int count = 0;
};

ClassTotals class_totals(const SlowReport& r, bool slow) {
  ClassTotals t;
  for (size_t i = 0; i < r.specs->size(); ++i) {
    if ((*r.specs)[i].slow != slow) continue;
    double rate = received_rate(r, i);
    t.sum += rate;
    t.min = std::min(t.min, rate);
    t.max_age = std::max(t.max_age, r.final_stats[i].max_age_ms);
    t.count++;
  }
  return t;
}

void add_client_panels(PlotSpec* spec, const SlowReport& r, const TimeSeries& s, size_t rows) {
  std::vector<double> t = s.column("t", rows);
  PlotPanel to_client{"server -> client (messages/s)", {}};
  PlotPanel received{"client received (messages/s)", {}};
  PlotPanel age{"age of processed message (s)", {}};
  for (size_t i = 0; i < r.specs->size(); ++i) {
    const SlowClientSpec& c = (*r.specs)[i];
    std::string label = c.name + (c.slow ? " (" + std::to_string(c.delay_ms) + " ms)" : "");
    if (has_send_times(r, i))
      to_client.series.push_back({label, t, s.column(c.name + "_server_sent_per_sec", rows)});
    received.series.push_back({label, t, s.column(c.name + "_received_per_sec", rows)});
    age.series.push_back({label, t, s.column(c.name + "_age_s", rows)});
  }
  if (!to_client.series.empty()) spec->panels.push_back(std::move(to_client));
  spec->panels.push_back(std::move(received));
  spec->panels.push_back(std::move(age));
}

}  // namespace

size_t slow_rows_in_run(const SlowReport& r) {
  for (size_t i = 0; i < r.rows.size(); ++i)
    if (r.rows[i].phase != "connect" && r.rows[i].phase != "measure") return i;
  return r.rows.size();
}

TimeSeries slow_series(const SlowReport& r) {
  std::vector<std::string> columns = {
      "server_sent_per_sec",    "server_deferred_per_sec", "server_held_back",
      "held_back_sessions",     "watermark_crossings",     "room_messages_per_sec",
      "skips_per_sec",          "pauses_per_sec",          "published_per_sec",
      "publisher_held_per_sec", "publisher_unacked",       "relay_down_bytes_per_sec",
      "relay_bandwidth"};
  for (const SlowClientSpec& c : *r.specs)
    for (const char* suffix : {"_received_per_sec", "_age_s", "_server_sent_per_sec"})
      columns.push_back(c.name + suffix);
  TimeSeries series(columns);
  double previous_t = 0;
  for (const SlowRow& row : r.rows) {
    const ServerInterval& s = row.server;
    auto m = [&](double v) { return row.metrics_ok ? v : NAN; };
    std::vector<double> v = {
        m(s.sent_per_sec),          m(s.deferred_per_sec), row.held_back ? 1.0 : 0.0,
        m(s.held_back_sessions),    m(s.crossings),        m(s.room_messages_per_sec),
        m(s.skips_per_sec),         m(s.pauses_per_sec),   row.published_per_sec,
        row.publisher_held_per_sec, row.publisher_unacked, row.relay_down_per_sec,
        row.relay_bandwidth};
    for (size_t i = 0; i < r.specs->size(); ++i) {
      v.push_back(row.received_per_sec[i]);
      v.push_back(row.age_s[i]);
      v.push_back(has_send_times(r, i) ? bins_rate(r.bins[i], previous_t, row.t) : NAN);
    }
    series.add_row(row.t, row.phase, v);
    previous_t = row.t;
  }
  return series;
}

std::string slow_summary(const SlowReport& r) {
  const Options& o = *r.options;
  const LoadCounters& c = r.final_counters;
  ClassTotals slow = class_totals(r, true), fast = class_totals(r, false);
  double events = run_total(r, &ServerInterval::deferred_per_sec) +
                  run_total(r, &ServerInterval::skips_per_sec) +
                  run_total(r, &ServerInterval::pauses_per_sec) +
                  static_cast<double>(r.publisher_held_back);
  for (size_t i = 0; i < slow_rows_in_run(r); ++i)
    if (r.rows[i].metrics_ok && std::isfinite(r.rows[i].server.crossings))
      events += r.rows[i].server.crossings;
  JsonWriter j;
  j.begin_object()
      .field("command", "slow")
      .field("target", o.target_text)
      .field("mode", r.room ? "room" : "stream")
      .field("clients", describe_clients(r));
  if (r.room)
    j.field("room", o.room).field("publish_rate", o.publish_rate).field("size", o.size);
  else
    j.field("stream_rate", r.stream_rate).field("stream_size", r.stream_size);
  j.field("seconds", measured_seconds(r))
      .field("slow_clients", o.clients)
      .field("fast_clients", o.fast_clients)
      .field("via_relay", o.via_relay >= 0 ? o.via_relay : NAN)
      .field("receive_buffer", o.receive_buffer);
  write_server(j, r);
  j.field("backpressure_events", events)
      .begin_object("slow")
      .field("received_per_sec_mean", slow.count ? slow.sum / slow.count : NAN)
      .field("max_age_ms", slow.max_age)
      .end_object()
      .begin_object("fast")
      .field("received_per_sec_min", fast.count ? fast.min : NAN)
      .field("received_per_sec_mean", fast.count ? fast.sum / fast.count : NAN)
      .begin_object("latency_ms")
      .field("p50", r.fast_latency.percentile(50) / 1e6)
      .field("p99", r.fast_latency.percentile(99) / 1e6)
      .field("max", r.fast_latency.max() / 1e6)
      .end_object()
      .end_object();
  if (r.room) write_room(j, r);
  j.begin_array("per_client");
  for (size_t i = 0; i < r.specs->size(); ++i) write_client(j, r, i);
  j.end_array()
      .begin_object("errors")
      .field("connect_failures", c.connect_failures)
      .field("protocol_errors", c.protocol_errors)
      .field("dropped", c.unexpected_closes)
      .end_object()
      .field("interrupted", r.interrupted)
      .end_object();
  return j.str();
}

void write_slow_outputs(const SlowReport& r) {
  const Options& o = *r.options;
  TimeSeries s = slow_series(r);
  std::string error;
  if (!o.csv_path.empty() && !write_text_file(o.csv_path, s.to_csv(), &error))
    std::fprintf(stderr, "weir-load: --csv: %s\n", error.c_str());
  if (o.plot_path.empty()) return;
  size_t rows = slow_rows_in_run(r);  // drain and close rows are a few ms of catching up
  std::vector<double> t = s.column("t", rows);
  PlotSpec spec;
  spec.title = "slow " + o.url.target + ": " + describe_clients(r);
  PlotPanel server{
      r.room ? "room (messages/s; unacked: messages)" : "server (messages/s, /metrics)", {}};
  if (r.room) {
    server.series.push_back({"room messages/s", t, s.column("room_messages_per_sec", rows)});
    server.series.push_back({"published/s (tool)", t, s.column("published_per_sec", rows)});
    server.series.push_back({"skipped/s", t, s.column("skips_per_sec", rows)});
    server.series.push_back({"publisher unacked", t, s.column("publisher_unacked", rows)});
  } else {
    server.series.push_back({"sent/s (all clients)", t, s.column("server_sent_per_sec", rows)});
    server.series.push_back({"deferred/s", t, s.column("server_deferred_per_sec", rows)});
  }
  spec.panels.push_back(std::move(server));
  add_client_panels(&spec, r, s, rows);
  if (o.via_relay >= 0)
    spec.panels.push_back({"relay to slow clients (bytes/s)",
                           {{"passed", t, s.column("relay_down_bytes_per_sec", rows)},
                            {"bandwidth", t, s.column("relay_bandwidth", rows)}}});
  std::vector<bool> held;
  for (size_t i = 0; i < rows; ++i) held.push_back(r.rows[i].held_back);
  for (auto [x0, x1] : flagged_spans(t, held)) spec.regions.push_back({x0, x1, "server held back"});
  if (!write_text_file(o.plot_path, render_svg(spec), &error))
    std::fprintf(stderr, "weir-load: --plot: %s\n", error.c_str());
}

int slow_exit_status(const SlowReport& r) {
  const LoadCounters& c = r.final_counters;
  bool fast_dropped = false;
  uint64_t received = 0;
  for (size_t i = 0; i < r.specs->size(); ++i) {
    if (!(*r.specs)[i].slow && r.final_stats[i].dropped) fast_dropped = true;
    received += r.measure_end[i].processed - r.measure_start[i].processed;
  }
  if (received == 0) std::fprintf(stderr, "weir-load: no message arrived during the measurement\n");
  bool ok = c.connect_failures == 0 && c.protocol_errors == 0 && !fast_dropped && received > 0 &&
            !r.interrupted;
  return ok ? 0 : 1;
}

}  // namespace weir::load
