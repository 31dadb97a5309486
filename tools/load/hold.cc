// tools/load/hold.cc — `weir-load hold`: open N idle WebSocket connections at a bounded rate,
// spreading source addresses over 127.0.0.1..254 towards a loopback server, ping each one
// every --ping-interval, and report how many stayed up.
//
// Each thread opens its share at its share of the rate, from a 10 ms timer; pings of one
// connection start at a random offset so they do not arrive at the server in waves.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/timer_wheel.h"
#include "tools/load/commands.h"
#include "tools/load/connector.h"
#include "tools/load/echo_run.h"
#include "tools/load/phase_runner.h"
#include "tools/load/report.h"
#include "tools/load/run_support.h"
#include "tools/load/svg_plot.h"
#include "tools/load/target.h"
#include "tools/load/ws_client.h"

namespace weir::load {
namespace {

constexpr int64_t kOpenTickMs = 10;
constexpr int64_t kCloseMs = 3000;

class HoldWorker;

class HoldSession final : public WsClientListener {
 public:
  explicit HoldSession(HoldWorker& worker);
  void connect(const net::SocketAddress* source);
  void close();

  void on_open(WsClient& client) override;
  void on_message_data(WsClient&, std::span<const char>, bool) override {}
  void on_pong(WsClient&, std::span<const char> payload) override;
  void on_closed(WsClient&, const WsClientEnd& end) override;

 private:
  void send_ping();

  HoldWorker& worker_;
  WsClient* client_ = nullptr;  // owned by its connection; cleared when it ends
  core::Timer upgrade_timer_;
  core::Timer ping_timer_;
  bool open_ = false;
  bool awaiting_pong_ = false;
};

class HoldWorker final : public Worker {
 public:
  HoldWorker(core::Reactor& reactor, const Options& o, int share, double rate, int index,
             ErrorLog* errors)
      : reactor_(reactor),
        options_(o),
        share_(share),
        rate_(rate),
        errors_(errors),
        context_(0xD1B54A32D192ED03ull * (index + 1) ^ static_cast<uint64_t>(core::monotonic_ns())),
        sources_(o.url.address, true,
                 index * (SourceAddresses::kLoopbackCount / std::max(o.threads, 1))),
        connector_(reactor, client_connection_options()) {
    config_.host_header = o.url.host_header();
    config_.target = o.url.target;
    open_timer_.set_callback([this] { open_due(); });
  }

  void start() override {
    sessions_.reserve(share_);
    start_ms_ = reactor_.now_ms();
    open_due();
  }

  void sample(Sample* out) override {
    out->counters = counters_;
    out->latency = ping_rtt_;
    ping_rtt_.reset();
  }

  void close_all() {
    closing_ = true;
    open_timer_.cancel();
    for (auto& s : sessions_) s->close();
  }

  const Options& options() const { return options_; }
  const WsClientConfig& config() const { return config_; }
  core::Reactor& reactor() { return reactor_; }
  ClientContext& context() { return context_; }
  Connector& connector() { return connector_; }
  LoadCounters& counters() { return counters_; }
  Histogram& ping_rtt() { return ping_rtt_; }
  ErrorLog& errors() { return *errors_; }
  bool closing() const { return closing_; }

 private:
  // Opens what the rate allows by now, then comes back in one tick.
  void open_due() {
    if (closing_) return;
    double elapsed_s = static_cast<double>(reactor_.now_ms() - start_ms_) / 1000.0;
    int64_t due =
        std::min<int64_t>(share_, static_cast<int64_t>(std::floor(rate_ * elapsed_s)) + 1);
    while (static_cast<int64_t>(sessions_.size()) < due) {
      sessions_.push_back(std::make_unique<HoldSession>(*this));
      counters_.connects_started++;
      sessions_.back()->connect(sources_.next());
    }
    if (static_cast<int>(sessions_.size()) < share_) reactor_.schedule(open_timer_, kOpenTickMs);
  }

  core::Reactor& reactor_;
  const Options& options_;
  int share_;
  double rate_;
  ErrorLog* errors_;
  WsClientConfig config_;
  ClientContext context_;
  SourceAddresses sources_;
  LoadCounters counters_;
  Histogram ping_rtt_;
  core::Timer open_timer_;
  int64_t start_ms_ = 0;
  bool closing_ = false;
  std::vector<std::unique_ptr<HoldSession>> sessions_;
  Connector connector_;  // after sessions_: connections (and their clients) go first
};

HoldSession::HoldSession(HoldWorker& worker) : worker_(worker) {
  upgrade_timer_.set_callback([this] {
    if (client_ && !open_) client_->abort("no upgrade response within --connect-timeout");
  });
  ping_timer_.set_callback([this] { send_ping(); });
}

void HoldSession::connect(const net::SocketAddress* source) {
  const Options& o = worker_.options();
  worker_.connector().connect(
      o.url.address, source, o.connect_timeout_ms,
      [this](net::Connection* conn, std::string_view error) {
        if (conn == nullptr) {
          worker_.counters().connect_failures++;
          worker_.errors().report("connect failed: " + std::string(error));
          return;
        }
        auto client = std::make_unique<WsClient>(*conn, worker_.config(), &worker_.context(), this);
        client_ = client.get();
        conn->set_handler(std::move(client));
        worker_.reactor().schedule(upgrade_timer_, worker_.options().connect_timeout_ms);
      });
}

void HoldSession::close() {
  ping_timer_.cancel();
  upgrade_timer_.cancel();
  if (client_) client_->close(ws::kCloseNormal, "run complete");
}

void HoldSession::on_open(WsClient&) {
  upgrade_timer_.cancel();
  open_ = true;
  LoadCounters& c = worker_.counters();
  c.connections_opened++;
  c.connections_open++;
  int64_t interval = worker_.options().ping_interval_ms;
  int64_t first =
      static_cast<int64_t>(worker_.context().next_random() % static_cast<uint64_t>(interval)) + 1;
  worker_.reactor().schedule(ping_timer_, first);
}

void HoldSession::send_ping() {
  if (!client_ || !open_) return;
  if (awaiting_pong_) worker_.counters().pongs_missed++;
  int64_t now = core::monotonic_ns();
  char payload[sizeof now];
  std::memcpy(payload, &now, sizeof now);
  if (client_->ping(std::string_view(payload, sizeof payload))) {
    awaiting_pong_ = true;
    worker_.counters().pings_sent++;
  }
  worker_.reactor().schedule(ping_timer_, worker_.options().ping_interval_ms);
}

void HoldSession::on_pong(WsClient&, std::span<const char> payload) {
  if (payload.size() != sizeof(int64_t) || !awaiting_pong_) return;  // unsolicited: ignore
  int64_t sent = 0;
  std::memcpy(&sent, payload.data(), sizeof sent);
  int64_t rtt = core::monotonic_ns() - sent;
  worker_.ping_rtt().record(rtt > 0 ? static_cast<uint64_t>(rtt) : 0);
  worker_.counters().pongs_received++;
  awaiting_pong_ = false;
}

void HoldSession::on_closed(WsClient&, const WsClientEnd& end) {
  client_ = nullptr;
  ping_timer_.cancel();
  upgrade_timer_.cancel();
  LoadCounters& c = worker_.counters();
  if (!end.opened) {
    c.connect_failures++;
    worker_.errors().report("upgrade failed: " + end.reason);
    return;
  }
  open_ = false;
  c.connections_open--;
  if (!worker_.closing()) {
    c.unexpected_closes++;
    worker_.errors().report("held connection closed: " + end.reason + " (code " +
                            std::to_string(end.code) + ")");
  }
}

// ---------------------------------------------------------------- the run

class HoldRun {
 public:
  explicit HoldRun(const Options& o)
      : o_(o),
        threads_(std::min(o.threads, o.connections)),
        clock_(threads_, [this](const PhaseRow& row) { add_row(row); }),
        series_({"open", "opened_per_sec", "connect_failures", "dropped", "pings_per_sec",
                 "pongs_per_sec", "ping_rtt_p50_ms", "ping_rtt_p99_ms"}) {}

  int run();

 private:
  void add_row(const PhaseRow& row);
  std::string summary() const;
  void write_outputs() const;

  const Options& o_;
  WorkerThreads threads_;
  PhaseRunner clock_;
  ErrorLog errors_;
  TimeSeries series_;
  Histogram rtt_;
  uint64_t fd_limit_ = 0;
  uint64_t peak_open_ = 0;
  double ramp_seconds_ = 0;
  LoadCounters at_end_, final_;
};

void HoldRun::add_row(const PhaseRow& row) {
  const LoadCounters& c = row.now;
  const Histogram& h = row.latency;
  double opened = (c.connections_opened - row.before.connections_opened) / row.dt;
  double pings = (c.pings_sent - row.before.pings_sent) / row.dt;
  double pongs = (c.pongs_received - row.before.pongs_received) / row.dt;
  auto ms = [&](double p) { return h.count() ? h.percentile(p) / 1e6 : NAN; };
  series_.add_row(
      row.t, row.phase,
      {static_cast<double>(c.connections_open), opened, static_cast<double>(c.connect_failures),
       static_cast<double>(c.unexpected_closes), pings, pongs, ms(50), ms(99)});
  rtt_.merge(h);
  peak_open_ = std::max(peak_open_, c.connections_open);
  if (o_.quiet) return;
  std::fprintf(stderr,
               "hold %6.1fs %-5s open %llu/%d  +%s/s  failed %llu  dropped %llu  pongs %s/s  "
               "ping rtt p99 %s\n",
               row.t, row.phase, static_cast<unsigned long long>(c.connections_open),
               o_.connections, human_count(opened).c_str(),
               static_cast<unsigned long long>(c.connect_failures),
               static_cast<unsigned long long>(c.unexpected_closes), human_count(pongs).c_str(),
               latency_text(h, 99).c_str());
}

int HoldRun::run() {
  fd_limit_ = raise_fd_limit(static_cast<uint64_t>(o_.connections) + 64);
  if (o_.connections / o_.rate * 1000 > o_.seconds_ms)
    std::fprintf(stderr, "weir-load: opening %d connections at %g/s takes longer than --seconds\n",
                 o_.connections, o_.rate);
  int n = threads_.count();
  threads_.start([&](core::Reactor& reactor, int i) {
    int share = o_.connections / n + (i < o_.connections % n ? 1 : 0);
    double rate = o_.rate * share / o_.connections;
    return std::make_unique<HoldWorker>(reactor, o_, share, rate, i, &errors_);
  });
  int64_t end = clock_.start_ms() + o_.seconds_ms;
  uint64_t wanted = static_cast<uint64_t>(o_.connections);
  bool alive = clock_.run_phase("ramp", end, [&](const LoadCounters& c) {
    return c.connections_opened + c.connect_failures >= wanted;
  });
  ramp_seconds_ = (clock_.last_row_ms() - clock_.start_ms()) / 1000.0;
  if (alive) clock_.run_phase("hold", end);
  at_end_ = clock_.counters();
  threads_.run_on_each([](Worker& w) { static_cast<HoldWorker&>(w).close_all(); });
  clock_.run_phase_for("close", kCloseMs,
                       [](const LoadCounters& c) { return c.connections_open == 0; });
  final_ = clock_.counters();
  threads_.stop();
  write_outputs();
  std::printf("%s\n", summary().c_str());
  std::fflush(stdout);
  if (errors_.suppressed() > 0)
    std::fprintf(stderr, "weir-load: %llu more errors not shown\n",
                 static_cast<unsigned long long>(errors_.suppressed()));
  bool all_up = at_end_.connections_open == wanted;
  return all_up && at_end_.errors() == 0 && at_end_.pongs_missed == 0 && !interrupted() ? 0 : 1;
}

std::string HoldRun::summary() const {
  const LoadCounters& c = at_end_;
  JsonWriter j;
  j.begin_object()
      .field("command", "hold")
      .field("target", o_.target_text)
      .field("connections", o_.connections)
      .field("rate_per_sec", o_.rate)
      .field("seconds", o_.seconds_ms / 1000.0)
      .field("ping_interval_seconds", o_.ping_interval_ms / 1000.0)
      .field("threads", threads_.count())
      .field("source_addresses",
             is_ipv4_loopback(o_.url.address) ? SourceAddresses::kLoopbackCount : 0)
      .field("fd_limit", fd_limit_)
      .field("opened", c.connections_opened)
      .field("connect_failures", c.connect_failures)
      .field("dropped", c.unexpected_closes)
      .field("up_at_end", c.connections_open)
      .field("peak_open", peak_open_)
      .field("ramp_seconds", ramp_seconds_)
      .field("pings_sent", c.pings_sent)
      .field("pongs_received", c.pongs_received)
      .field("pongs_missed", c.pongs_missed)
      .begin_object("ping_rtt_ms")
      .field("p50", rtt_.percentile(50) / 1e6)
      .field("p99", rtt_.percentile(99) / 1e6)
      .field("max", rtt_.max() / 1e6)
      .end_object()
      .field("closed_cleanly", c.connections_open - final_.connections_open)
      .field("interrupted", interrupted())
      .end_object();
  return j.str();
}

void HoldRun::write_outputs() const {
  std::string error;
  if (!o_.csv_path.empty() && !write_text_file(o_.csv_path, series_.to_csv(), &error))
    std::fprintf(stderr, "weir-load: --csv: %s\n", error.c_str());
  if (o_.plot_path.empty()) return;
  PlotSpec spec;
  spec.title = "hold " + o_.target_text + ": " + std::to_string(o_.connections) + " connections";
  size_t rows = series_.first_row_of("close");  // the run ends where closing starts
  std::vector<double> t = series_.column("t", rows);
  spec.panels.push_back({"connections",
                         {{"open", t, series_.column("open", rows)},
                          {"dropped", t, series_.column("dropped", rows)},
                          {"connect failures", t, series_.column("connect_failures", rows)}}});
  spec.panels.push_back({"per second",
                         {{"opened/s", t, series_.column("opened_per_sec", rows)},
                          {"pongs/s", t, series_.column("pongs_per_sec", rows)}}});
  for (auto [x0, x1] : series_.spans("ramp")) spec.regions.push_back({x0, x1, "ramp"});
  if (!write_text_file(o_.plot_path, render_svg(spec), &error))
    std::fprintf(stderr, "weir-load: --plot: %s\n", error.c_str());
}

}  // namespace

int run_hold(const Options& options) {
  Watchdog watchdog(options.seconds_ms + kCloseMs + 10000, "hold");
  install_signal_handlers();
  HoldRun run(options);
  return run.run();
}

}  // namespace weir::load
