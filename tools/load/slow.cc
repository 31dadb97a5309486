// tools/load/slow.cc — `weir-load slow`: the run's phases, its per-second rows and its report.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "tools/load/commands.h"
#include "tools/load/phase_runner.h"
#include "tools/load/relay.h"
#include "tools/load/relay_control.h"
#include "tools/load/report.h"
#include "tools/load/run_support.h"
#include "tools/load/server_metrics.h"
#include "tools/load/slow_plan.h"
#include "tools/load/slow_report.h"

namespace weir::load {

namespace {

constexpr int64_t kDrainMs = 3000;
constexpr int64_t kCloseMs = 1000;
constexpr int64_t kMetricsTimeoutMs = 500;
constexpr int64_t kBinSlackMs = 5000;

class SlowRun {
 public:
  explicit SlowRun(const Options& o)
      : o_(o),
        specs_(make_slow_specs(o)),
        threads_(std::max(1, std::min<int>(o.threads, static_cast<int>(specs_.size())))),
        clock_(threads_, [this](const PhaseRow& row) { add_row(row); }),
        stats_(specs_.size()),
        previous_(specs_.size()) {
    report_.options = &o;
    report_.specs = &specs_;
    report_.room = !o.room.empty();
    report_.stream_rate = static_cast<double>(query_number(o.url.target, "rate", 10));
    report_.stream_size = query_number(o.url.target, "size", 100);
  }

  int run();

 private:
  bool start_relay();
  void start_workers();
  void add_row(const PhaseRow& row);
  void sample_server(SlowRow* row);
  void sample_feeder(SlowRow* row, double dt);
  SlowWorker::FeederCounts feeder_counts();
  void collect() {
    threads_.run_on_each([this](Worker& w) { static_cast<SlowWorker&>(w).collect(&stats_); });
  }
  bool caught_up();
  void progress(const SlowRow& row) const;
  void each(void (SlowWorker::*fn)()) {
    threads_.run_on_each([fn](Worker& w) { (static_cast<SlowWorker&>(w).*fn)(); });
  }

  const Options& o_;
  std::vector<SlowClientSpec> specs_;
  WorkerThreads threads_;
  PhaseRunner clock_;
  ErrorLog errors_;
  std::vector<SlowClientStats> stats_, previous_;
  SlowReport report_;
  // The server's metrics.
  ServerSnapshot last_snapshot_;
  int64_t last_snapshot_ms_ = -1;
  bool metrics_warned_ = false;
  // The in-process relay (--via-relay).
  std::unique_ptr<RelayControl> control_;
  std::unique_ptr<WorkerThreads> relay_threads_;
  RelayWorker* relay_ = nullptr;
  LoadCounters relay_before_;
  net::SocketAddress relay_address_;
  // The room feeder's counters at the previous row.
  uint64_t fed_ = 0, fed_held_ = 0;
  int64_t measure_end_ns_ = 0;
};

bool SlowRun::start_relay() {
  if (o_.via_relay < 0) return true;
  control_ = std::make_unique<RelayControl>(o_.via_relay, o_.bandwidth_schedule);
  control_->apply_schedule(0);
  relay_threads_ = std::make_unique<WorkerThreads>(1);
  std::string error;
  net::SocketAddress listen;
  net::SocketAddress::parse("127.0.0.1:0", &listen, &error);
  relay_threads_->start([&](core::Reactor& reactor, int) {
    auto w =
        std::make_unique<RelayWorker>(reactor, listen, o_.url.address, control_.get(), &errors_);
    relay_ = w.get();
    return w;
  });
  if (relay_->port() == 0) {
    std::fprintf(stderr, "weir-load: the relay cannot listen: %s\n",
                 relay_->listen_error().c_str());
    return false;
  }
  net::SocketAddress::parse("127.0.0.1:" + std::to_string(relay_->port()), &relay_address_, &error);
  control_->install_signals();
  control_->start_console();
  return true;
}

void SlowRun::start_workers() {
  int n = threads_.count();
  int64_t epoch_ns = clock_.start_ms() * 1'000'000;
  int64_t bins = (o_.connect_timeout_ms + o_.seconds_ms + kDrainMs + kCloseMs + kBinSlackMs) / 10;
  const net::SocketAddress* relay = relay_ ? &relay_address_ : nullptr;
  threads_.start([&](core::Reactor& reactor, int i) {
    std::vector<SlowClientSpec> mine;
    for (const SlowClientSpec& s : specs_)
      if (s.index % n == i) mine.push_back(s);
    bool feeder = !o_.room.empty() && i == 0;
    return std::make_unique<SlowWorker>(reactor, o_, std::move(mine), feeder, epoch_ns, bins, relay,
                                        &errors_);
  });
}

void SlowRun::sample_server(SlowRow* row) {
  std::string body, error;
  MetricsText metrics;
  int64_t asked = core::monotonic_ms();
  bool ok = http_get(o_.metrics_url, kMetricsTimeoutMs, &body, &error);
  // The server rendered the page somewhere within the GET; the midpoint is the best guess, and
  // keeps a slow answer from squeezing the next interval.
  int64_t now = (asked + core::monotonic_ms()) / 2;
  if (!ok || !metrics.parse(body, &error)) {
    if (!metrics_warned_)
      std::fprintf(stderr, "weir-load: cannot read %s (%s); the server side stays empty\n",
                   o_.metrics_url.to_string().c_str(), error.c_str());
    metrics_warned_ = true;
    return;
  }
  ServerSnapshot s = server_snapshot(metrics);
  if (last_snapshot_ms_ >= 0) {
    double dt = std::max<int64_t>(now - last_snapshot_ms_, 1) / 1000.0;
    row->server = server_interval(last_snapshot_, s, dt, report_.room);
    row->metrics_ok = true;
  } else {
    report_.first_snapshot = s;
  }
  report_.last_snapshot = s;
  report_.metrics_ok = true;
  last_snapshot_ = s;
  last_snapshot_ms_ = now;
}

SlowWorker::FeederCounts SlowRun::feeder_counts() {
  SlowWorker::FeederCounts counts;
  threads_.run_on_each([&](Worker& w) {
    SlowWorker::FeederCounts c;
    if (static_cast<SlowWorker&>(w).feeder_counts(&c)) counts = c;
  });
  return counts;
}

void SlowRun::sample_feeder(SlowRow* row, double dt) {
  if (o_.room.empty()) return;
  SlowWorker::FeederCounts c = feeder_counts();
  row->published_per_sec = (c.sent - fed_) / dt;
  row->publisher_held_per_sec = (c.held_back - fed_held_) / dt;
  row->publisher_unacked = c.sent > c.received ? static_cast<double>(c.sent - c.received) : 0.0;
  fed_ = c.sent;
  fed_held_ = c.held_back;
  report_.room_last_offset = c.last_offset;
  report_.published = c.sent;
  report_.publisher_held_back = c.held_back;
}

void SlowRun::add_row(const PhaseRow& pr) {
  collect();
  SlowRow row;
  row.t = pr.t;
  row.dt = pr.dt;
  row.phase = pr.phase;
  for (size_t i = 0; i < stats_.size(); ++i) {
    row.received_per_sec.push_back((stats_[i].processed - previous_[i].processed) / pr.dt);
    bool fresh = stats_[i].processed > previous_[i].processed || stats_[i].open;
    row.age_s.push_back(fresh ? stats_[i].last_age_ms / 1000.0 : NAN);
  }
  previous_ = stats_;
  sample_server(&row);
  sample_feeder(&row, pr.dt);
  if (relay_) {
    Sample s = relay_threads_->sample();
    row.relay_down_per_sec = (s.counters.bytes_received - relay_before_.bytes_received) / pr.dt;
    double bw = control_->bandwidth();
    row.relay_bandwidth = bw == 0 ? NAN : bw;
    relay_before_ = s.counters;
  }
  // weir pauses a room's publishers without a gauge to show it: a room more than half a
  // second behind the feeder is the feeder being held back.
  double lag_limit = std::max(10.0, o_.publish_rate / 2);
  row.held_back =
      row.server.held_back || row.publisher_held_per_sec > 0 || row.publisher_unacked > lag_limit;
  report_.fast_latency.merge(pr.latency);
  report_.rows.push_back(row);
  progress(report_.rows.back());
}

void SlowRun::progress(const SlowRow& row) const {
  if (o_.quiet) return;
  double slow_sum = 0, fast_min = INFINITY, age_max = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (specs_[i].slow) {
      slow_sum += row.received_per_sec[i];
      if (std::isfinite(row.age_s[i])) age_max = std::max(age_max, row.age_s[i]);
    } else {
      fast_min = std::min(fast_min, row.received_per_sec[i]);
    }
  }
  char server[160] = "server: no metrics";
  if (row.metrics_ok)
    std::snprintf(server, sizeof server, "server: sent %s/s deferred %s/s%s",
                  human_count(row.server.sent_per_sec).c_str(),
                  human_count(row.server.deferred_per_sec).c_str(),
                  row.held_back ? " [held back]" : "");
  std::string fast = o_.fast_clients ? "  fast(" + std::to_string(o_.fast_clients) + "): min " +
                                           human_count(fast_min) + " msg/s"
                                     : "";
  std::fprintf(stderr, "slow %6.1fs %-7s %s  slow(%d): %.1f msg/s avg, oldest %.1fs%s\n", row.t,
               row.phase.c_str(), server, o_.clients, o_.clients ? slow_sum / o_.clients : 0.0,
               age_max, fast.c_str());
}

// Every message the server sent before the measurement ended has been read (stream), or every
// member has every offset the feeder published (room).
bool SlowRun::caught_up() {
  collect();
  SlowWorker::FeederCounts feeder;
  if (!o_.room.empty()) {
    feeder = feeder_counts();
    if (feeder.received < feeder.sent) return false;  // its own messages are still coming
  }
  uint64_t room_last = feeder.last_offset;
  for (const SlowClientStats& s : stats_) {
    if (!s.open || s.dropped) continue;
    if (o_.room.empty() && (!s.clock_shared || s.last_sent_ns < measure_end_ns_)) return false;
    if (!o_.room.empty() && s.offsets.last_offset() < room_last) return false;
  }
  return true;
}

int SlowRun::run() {
  if (!start_relay()) return 1;
  start_workers();
  size_t wanted = specs_.size() + (o_.room.empty() ? 0 : 1);
  SlowRow baseline;
  sample_server(&baseline);  // the metrics' starting point
  bool alive = clock_.run_phase_for("connect", o_.connect_timeout_ms, [&](const LoadCounters& c) {
    return c.connections_opened + c.connect_failures >= wanted;
  });
  each(&SlowWorker::abort_unopened);
  collect();
  report_.measure_start = stats_;
  report_.measure_start_t = (clock_.last_row_ms() - clock_.start_ms()) / 1000.0;
  each(&SlowWorker::start_publishing);
  int64_t start = clock_.start_ms();
  if (alive && clock_.counters().connections_opened > 0)  // else there is nothing to measure
    alive = clock_.run_phase_for("measure", o_.seconds_ms, [&](const LoadCounters&) {
      if (control_) control_->apply_schedule(core::monotonic_ms() - start);
      return false;
    });
  collect();
  report_.measure_end = stats_;
  report_.measure_end_t = (clock_.last_row_ms() - clock_.start_ms()) / 1000.0;
  measure_end_ns_ = clock_.last_row_ms() * 1'000'000;
  each(&SlowWorker::stop_publishing);
  each(&SlowWorker::unpace_all);
  if (control_) control_->set(0);  // let the relay's backlog through too
  clock_.run_phase_for("drain", kDrainMs, [&](const LoadCounters&) { return caught_up(); });
  each(&SlowWorker::close_all);
  clock_.run_phase_for("close", kCloseMs,
                       [](const LoadCounters& c) { return c.connections_open == 0; });
  report_.final_counters = clock_.counters();
  collect();
  report_.final_stats = stats_;
  report_.bins.assign(specs_.size(), {});
  threads_.run_on_each(
      [this](Worker& w) { static_cast<SlowWorker&>(w).collect_bins(&report_.bins); });
  threads_.stop();
  if (control_) control_->stop_console();
  if (relay_threads_) relay_threads_->stop();
  report_.interrupted = interrupted();
  write_slow_outputs(report_);
  std::printf("%s\n", slow_summary(report_).c_str());
  std::fflush(stdout);
  if (errors_.suppressed() > 0)
    std::fprintf(stderr, "weir-load: %llu more errors not shown\n",
                 static_cast<unsigned long long>(errors_.suppressed()));
  return slow_exit_status(report_);
}

}  // namespace

int run_slow(const Options& options) {
  // A metrics GET may take up to half of each second on top of the phases.
  int64_t bound = options.connect_timeout_ms + options.seconds_ms * 3 / 2 + kDrainMs * 3 / 2 +
                  kCloseMs * 3 / 2 + 15000;
  Watchdog watchdog(bound, "slow");
  install_signal_handlers();
  SlowRun run(options);
  return run.run();
}

}  // namespace weir::load
