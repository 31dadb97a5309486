// tools/load/relay_run.cc — `weir-load relay`: the throttling relay as a command of its own,
// with the usual progress line, CSV, plot and JSON summary (bytes each way per second against
// the bandwidth in force).
//
// A relay is usually ended with Ctrl-C or SIGTERM; that is not a failure (exit 0). Exit 1 means
// it could not listen or the target refused a connection.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "core/clock.h"
#include "tools/load/commands.h"
#include "tools/load/phase_runner.h"
#include "tools/load/relay.h"
#include "tools/load/relay_control.h"
#include "tools/load/report.h"
#include "tools/load/run_support.h"
#include "tools/load/svg_plot.h"

namespace weir::load {
namespace {

std::string rate_text(double bps) {
  return bps == 0 ? std::string("unlimited") : human_count(bps) + " B/s";
}

class RelayRun {
 public:
  explicit RelayRun(const Options& o)
      : o_(o),
        control_(o.bandwidth, o.bandwidth_schedule),
        threads_(1),
        clock_(threads_, [this](const PhaseRow& row) { add_row(row); }),
        series_({"connections", "up_bytes_per_sec", "down_bytes_per_sec", "bandwidth"}) {}

  int run();

 private:
  void add_row(const PhaseRow& row);
  std::string summary() const;
  void write_outputs() const;

  const Options& o_;
  RelayControl control_;
  WorkerThreads threads_;
  PhaseRunner clock_;
  ErrorLog errors_;
  TimeSeries series_;
  RelayWorker* worker_ = nullptr;
  double start_bandwidth_ = 0;
  uint64_t changes_seen_ = 0;
  LoadCounters final_;
};

void RelayRun::add_row(const PhaseRow& row) {
  const LoadCounters& c = row.now;
  double up = (c.bytes_sent - row.before.bytes_sent) / row.dt;
  double down = (c.bytes_received - row.before.bytes_received) / row.dt;
  double bw = control_.bandwidth();
  series_.add_row(row.t, row.phase,
                  {static_cast<double>(c.connections_open), up, down, bw == 0 ? NAN : bw});
  if (o_.quiet) return;
  std::fprintf(stderr, "relay %6.1fs  bandwidth %s  conns %llu  up %s B/s  down %s B/s\n", row.t,
               rate_text(bw).c_str(), static_cast<unsigned long long>(c.connections_open),
               human_count(up).c_str(), human_count(down).c_str());
}

int RelayRun::run() {
  start_bandwidth_ = control_.bandwidth();
  control_.apply_schedule(0);
  threads_.start([&](core::Reactor& reactor, int) {
    auto w = std::make_unique<RelayWorker>(reactor, o_.listen, o_.addr, &control_, &errors_);
    worker_ = w.get();
    return w;
  });
  if (worker_->port() == 0) {
    std::fprintf(stderr, "weir-load: relay cannot listen on %s: %s\n",
                 o_.listen.to_string().c_str(), worker_->listen_error().c_str());
    threads_.stop();
    return 1;
  }
  std::fprintf(stderr,
               "relay: %s:%u -> %s at %s per direction; stdin 'bandwidth N', "
               "SIGUSR1 halves, SIGUSR2 doubles\n",
               o_.listen.host().c_str(), worker_->port(), o_.target_text.c_str(),
               rate_text(control_.bandwidth()).c_str());
  control_.install_signals();
  control_.start_console();
  int64_t start = clock_.start_ms();
  clock_.run_phase_for("relay", o_.seconds_ms, [&](const LoadCounters&) {
    control_.apply_schedule(core::monotonic_ms() - start);
    return false;
  });
  control_.stop_console();
  changes_seen_ = control_.generation();
  final_ = clock_.counters();
  threads_.stop();
  write_outputs();
  std::printf("%s\n", summary().c_str());
  std::fflush(stdout);
  return final_.connect_failures == 0 ? 0 : 1;
}

std::string RelayRun::summary() const {
  const LoadCounters& c = final_;
  double secs = (clock_.last_row_ms() - clock_.start_ms()) / 1000.0;
  if (secs <= 0) secs = 1;
  // Rates over the seconds that carried traffic, so idle time before the first client does
  // not dilute them.
  std::vector<double> up = series_.column("up_bytes_per_sec");
  std::vector<double> down = series_.column("down_bytes_per_sec");
  int busy_up = 0, busy_down = 0;
  for (double v : up) busy_up += v > 0;
  for (double v : down) busy_down += v > 0;
  JsonWriter j;
  j.begin_object()
      .field("command", "relay")
      .field("listen", o_.listen.host() + ":" + std::to_string(worker_ ? worker_->port() : 0))
      .field("target", o_.target_text)
      .field("seconds", secs)
      .field("bandwidth_start", start_bandwidth_)
      .field("bandwidth_end", control_.bandwidth())
      .field("bandwidth_changes", changes_seen_)
      .field("connections", c.connections_opened)
      .field("connect_failures", c.connect_failures)
      .field("bytes_up", c.bytes_sent)
      .field("bytes_down", c.bytes_received)
      .field("up_bytes_per_sec_busy", busy_up ? c.bytes_sent / static_cast<double>(busy_up) : 0.0)
      .field("down_bytes_per_sec_busy",
             busy_down ? c.bytes_received / static_cast<double>(busy_down) : 0.0)
      .field("interrupted", interrupted())
      .end_object();
  return j.str();
}

void RelayRun::write_outputs() const {
  std::string error;
  if (!o_.csv_path.empty() && !write_text_file(o_.csv_path, series_.to_csv(), &error))
    std::fprintf(stderr, "weir-load: --csv: %s\n", error.c_str());
  if (o_.plot_path.empty()) return;
  PlotSpec spec;
  spec.title = "relay -> " + o_.target_text + ": bytes/s per direction against the bandwidth";
  std::vector<double> t = series_.column("t");
  spec.panels.push_back({"bytes/s",
                         {{"bandwidth (per direction)", t, series_.column("bandwidth")},
                          {"down (target -> client)", t, series_.column("down_bytes_per_sec")},
                          {"up (client -> target)", t, series_.column("up_bytes_per_sec")}}});
  spec.panels.push_back({"connections", {{"open", t, series_.column("connections")}}});
  if (!write_text_file(o_.plot_path, render_svg(spec), &error))
    std::fprintf(stderr, "weir-load: --plot: %s\n", error.c_str());
}

}  // namespace

int run_relay(const Options& options) {
  Watchdog watchdog(options.seconds_ms + 10000, "relay");
  install_signal_handlers();
  RelayRun run(options);
  return run.run();
}

}  // namespace weir::load
