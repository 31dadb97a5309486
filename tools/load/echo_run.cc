// tools/load/echo_run.cc — echo pipelines, the per-thread worker, and the run's phases/report.
#include "tools/load/echo_run.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "core/clock.h"
#include "tools/load/phase_runner.h"
#include "tools/load/report.h"
#include "tools/load/svg_plot.h"

namespace weir::load {

net::ConnectionOptions client_connection_options() {
  net::ConnectionOptions o;
  o.max_buffer = 0;
  o.high_watermark = SIZE_MAX;
  o.low_watermark = SIZE_MAX / 2;
  o.linger_ms = 500;
  return o;
}

// ---------------------------------------------------------------- EchoSession

EchoSession::EchoSession(EchoWorker& worker) : worker_(worker), verifier_(&worker.pattern()) {}

void EchoSession::fill_pipeline() {
  const int depth = worker_.options().depth;
  while (open_ && worker_.sending() && !worker_.scheduled() && in_flight_ < depth) {
    uint64_t send_ns = static_cast<uint64_t>(core::monotonic_ns() - worker_.epoch_ns());
    if (!send_one(send_ns)) return;
  }
}

bool EchoSession::send_scheduled(int64_t scheduled_ns) {
  if (!open_ || queued_bytes() > EchoPacer::kMaxQueued) return false;
  return send_one(static_cast<uint64_t>(std::max<int64_t>(scheduled_ns - worker_.epoch_ns(), 0)));
}

bool EchoSession::send_one(uint64_t send_ns) {
  const size_t size = worker_.pattern().message_size();
  char* p = prepare(size);
  worker_.pattern().write(p, next_seq_, send_ns);
  if (!transmit(size)) return false;
  next_seq_++;
  in_flight_++;
  worker_.counters().messages_sent++;
  worker_.counters().bytes_sent += size;
  return true;
}

void EchoSession::opened() {
  open_ = true;
  worker_.counters().connections_opened++;
  worker_.counters().connections_open++;
  fill_pipeline();
}

void EchoSession::ended(bool was_open, const std::string& why) {
  LoadCounters& c = worker_.counters();
  if (!was_open) {
    c.connect_failures++;
    worker_.errors().report("connect failed: " + why);
    return;
  }
  open_ = false;
  c.connections_open--;
  if (!worker_.closing()) {
    c.unexpected_closes++;
    worker_.errors().report("connection closed during the run: " + why);
  }
}

void EchoSession::on_echo(EchoVerifier::Echo echo) {
  LoadCounters& c = worker_.counters();
  if (in_flight_ == 0) {  // an echo of something never sent
    c.mismatches++;
    return;
  }
  in_flight_--;
  c.messages_received++;
  c.bytes_received += worker_.pattern().message_size();
  if (echo.ok) {
    int64_t rtt = core::monotonic_ns() - worker_.epoch_ns() - static_cast<int64_t>(echo.send_ns);
    worker_.latency().record(rtt > 0 ? static_cast<uint64_t>(rtt) : 0);
  } else {
    c.mismatches++;
    worker_.errors().report("echo " + std::to_string(verifier_.expected_seq() - 1) +
                            " differs from the message sent");
  }
  fill_pipeline();
}

// ---------------------------------------------------------------- EchoWorker

EchoWorker::EchoWorker(core::Reactor& reactor, const Options& options, int connections, int index,
                       int64_t epoch_ns, ErrorLog* errors, SessionFactory factory)
    : reactor_(reactor),
      options_(options),
      connections_(connections),
      epoch_ns_(epoch_ns),
      errors_(errors),
      factory_(std::move(factory)),
      pattern_(options.size),
      context_(0x9E3779B97F4A7C15ull * (index + 1) ^ static_cast<uint64_t>(epoch_ns)),
      rate_(EchoPacer::thread_rate(options.message_rate, connections, options.connections)),
      connector_(reactor, client_connection_options()) {}

EchoWorker::~EchoWorker() {
  if (pace_fd_ < 0) return;
  reactor_.remove(pace_fd_);
  ::close(pace_fd_);
}

void EchoWorker::start() {
  sessions_.reserve(connections_);
  for (int i = 0; i < connections_; ++i) {
    sessions_.push_back(factory_(*this));
    counters_.connects_started++;
    sessions_.back()->connect();
  }
}

void EchoWorker::sample(Sample* out) {
  out->counters = counters_;
  out->latency = latency_;
  latency_.reset();
}

void EchoWorker::start_sending() {
  sending_ = true;
  if (!scheduled()) {
    for (auto& s : sessions_) s->fill_pipeline();
    return;
  }
  pace_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (pace_fd_ >= 0 && !reactor_.add(pace_fd_, this, EPOLLIN | EPOLLET)) {
    ::close(pace_fd_);
    pace_fd_ = -1;
  }
  if (pace_fd_ < 0) {
    errors().report("--rate: cannot create the pacing timer");
    counters_.protocol_errors++;
    return;
  }
  int64_t now = core::monotonic_ns();
  pacer_ = std::make_unique<EchoPacer>(rate_, now);
  send_due(now);
}

void EchoWorker::stop_sending() {
  sending_ = false;
  if (pace_fd_ >= 0) arm_pacer(0);
}

void EchoWorker::on_io(uint32_t) {
  uint64_t expirations = 0;
  while (::read(pace_fd_, &expirations, sizeof expirations) > 0) {
  }
  if (sending_) send_due(core::monotonic_ns());
}

// Every message due by now goes out, each stamped with its own scheduled time, so a late
// wake-up (a stalled loop, a busy core) shows in the round trips instead of being skipped.
void EchoWorker::send_due(int64_t now_ns) {
  int64_t scheduled_ns = 0;
  while (pacer_->take_due(now_ns, &scheduled_ns)) {
    EchoSession* s = next_open_session();
    if (s == nullptr || !s->send_scheduled(scheduled_ns)) counters_.publish_held_back++;
  }
  arm_pacer(pacer_->next_due_ns());
}

// `at_ns` 0 disarms.
void EchoWorker::arm_pacer(int64_t at_ns) {
  itimerspec spec{};
  spec.it_value.tv_sec = at_ns / 1'000'000'000;
  spec.it_value.tv_nsec = at_ns % 1'000'000'000;
  ::timerfd_settime(pace_fd_, at_ns > 0 ? TFD_TIMER_ABSTIME : 0, &spec, nullptr);
}

// Round-robin over the connections that are open; nullptr when none is.
EchoSession* EchoWorker::next_open_session() {
  for (size_t tried = 0; tried < sessions_.size(); ++tried) {
    EchoSession* s = sessions_[next_session_++ % sessions_.size()].get();
    if (s->is_open()) return s;
  }
  return nullptr;
}

void EchoWorker::close_all() {
  stop_sending();
  closing_ = true;
  for (auto& s : sessions_) s->close();
}

void EchoWorker::abort_unopened() {
  for (auto& s : sessions_) s->abort_if_unopened();
}

// ---------------------------------------------------------------- the run

namespace {

// Echoes still out when sending stops get at least 2 s (or twice the slowest round trip seen,
// up to 10 s) to come back; what is still missing then counts as lost.
constexpr int64_t kMinDrainMs = 2000;
constexpr int64_t kMaxDrainMs = 10000;
constexpr int64_t kCloseMs = 1000;

class EchoRun {
 public:
  EchoRun(const Options& o, EchoWorker::SessionFactory factory)
      : o_(o),
        factory_(std::move(factory)),
        threads_(std::min(o.threads, o.connections)),
        clock_(threads_, [this](const PhaseRow& row) { add_row(row); }),
        series_({"connections", "sent_per_sec", "echoes_per_sec", "mb_per_sec", "p50_ms", "p90_ms",
                 "p99_ms", "max_ms", "errors"}) {}

  int run();

 private:
  void start_workers();
  bool load_phases();
  void add_row(const PhaseRow& row);
  std::string summary() const;
  void write_outputs() const;
  // Lost echoes (still unanswered after the drain) count with the other errors.
  uint64_t total_errors() const { return final_.errors() + final_.in_flight(); }
  void each(void (EchoWorker::*fn)()) {
    threads_.run_on_each([fn](Worker& w) { (static_cast<EchoWorker&>(w).*fn)(); });
  }

  const Options& o_;
  EchoWorker::SessionFactory factory_;
  WorkerThreads threads_;
  PhaseRunner clock_;
  ErrorLog errors_;
  TimeSeries series_;
  Histogram measured_;  // round trips over the measure phase
  LoadCounters measure_start_, measure_end_, final_;
  double measured_seconds_ = 0;
};

void EchoRun::add_row(const PhaseRow& row) {
  const LoadCounters& c = row.now;
  const Histogram& h = row.latency;
  double echoes = (c.messages_received - row.before.messages_received) / row.dt;
  double sent = (c.messages_sent - row.before.messages_sent) / row.dt;
  double mb = (c.bytes_received - row.before.bytes_received) / row.dt / 1e6;
  auto ms = [&](double v) { return h.count() ? v / 1e6 : NAN; };
  series_.add_row(
      row.t, row.phase,
      {static_cast<double>(c.connections_open), sent, echoes, mb, ms(h.percentile(50)),
       ms(h.percentile(90)), ms(h.percentile(99)), ms(h.max()), static_cast<double>(c.errors())});
  if (std::string_view(row.phase) == "measure") measured_.merge(h);
  if (o_.quiet) return;
  std::string pacing;  // --rate: what was sent against the schedule
  if (o_.message_rate > 0)
    pacing = "  sent " + human_count(sent) + "/s held back " + std::to_string(c.publish_held_back);
  std::fprintf(
      stderr,
      "%-8s %6.1fs %-8s %llu/%d conns  %s msg/s%s  %.2f MB/s  p50 %s p99 %s max %s  errors %llu\n",
      std::string(command_name(o_.command)).c_str(), row.t, row.phase,
      static_cast<unsigned long long>(c.connections_open), o_.connections,
      human_count(echoes).c_str(), pacing.c_str(), mb, latency_text(h, 50).c_str(),
      latency_text(h, 99).c_str(), latency_text(h, 100).c_str(),
      static_cast<unsigned long long>(c.errors()));
}

void EchoRun::start_workers() {
  int64_t epoch_ns = core::monotonic_ns();
  int n = threads_.count();
  threads_.start([&](core::Reactor& reactor, int i) {
    int share = o_.connections / n + (i < o_.connections % n ? 1 : 0);
    return std::make_unique<EchoWorker>(reactor, o_, share, i, epoch_ns, &errors_, factory_);
  });
}

// Connect, then warm up and measure; false when interrupted.
bool EchoRun::load_phases() {
  uint64_t wanted = static_cast<uint64_t>(o_.connections);
  bool alive = clock_.run_phase_for("connect", o_.connect_timeout_ms, [&](const LoadCounters& c) {
    return c.connections_opened + c.connect_failures >= wanted;
  });
  each(&EchoWorker::abort_unopened);
  if (clock_.counters().connections_opened == 0) return alive;  // nothing to load
  each(&EchoWorker::start_sending);
  if (alive && o_.warmup_ms > 0) alive = clock_.run_phase_for("warmup", o_.warmup_ms);
  measure_start_ = clock_.counters();
  int64_t measure_start_ms = clock_.last_row_ms();
  if (alive) alive = clock_.run_phase_for("measure", o_.seconds_ms);
  measure_end_ = clock_.counters();
  measured_seconds_ = (clock_.last_row_ms() - measure_start_ms) / 1000.0;
  return alive;
}

int EchoRun::run() {
  raise_fd_limit(static_cast<uint64_t>(o_.connections) + 64);
  start_workers();
  load_phases();
  each(&EchoWorker::stop_sending);
  int64_t drain_ms = std::clamp<int64_t>(2 * measured_.max() / 1000000, kMinDrainMs, kMaxDrainMs);
  clock_.run_phase_for("drain", drain_ms, [](const LoadCounters& c) { return c.in_flight() == 0; });
  each(&EchoWorker::close_all);
  clock_.run_phase_for("close", kCloseMs,
                       [](const LoadCounters& c) { return c.connections_open == 0; });
  final_ = clock_.counters();
  threads_.stop();
  write_outputs();
  std::printf("%s\n", summary().c_str());
  std::fflush(stdout);
  uint64_t measured = measure_end_.messages_received - measure_start_.messages_received;
  if (measured == 0) std::fprintf(stderr, "weir-load: no echo arrived during the measurement\n");
  if (errors_.suppressed() > 0)
    std::fprintf(stderr, "weir-load: %llu more errors not shown\n",
                 static_cast<unsigned long long>(errors_.suppressed()));
  return total_errors() == 0 && measured > 0 && !interrupted() ? 0 : 1;
}

std::string EchoRun::summary() const {
  const LoadCounters& a = measure_start_;
  const LoadCounters& b = measure_end_;
  double secs = measured_seconds_ > 0 ? measured_seconds_ : 1;
  JsonWriter j;
  j.begin_object()
      .field("command", command_name(o_.command))
      .field("target", o_.target_text)
      .field("connections", o_.connections)
      .field("connections_opened", final_.connections_opened)
      .field("depth", o_.depth)
      .field("size", o_.size);
  if (o_.command == Command::kEcho)
    j.field("binary", o_.binary)
        .field("deflate_offered", o_.deflate)
        .field("deflate_connections", final_.deflate_connections);
  j.field("threads", threads_.count())
      .field("warmup_seconds", o_.warmup_ms / 1000.0)
      .field("seconds", measured_seconds_)
      .field("rate", o_.message_rate)
      .field("sent_per_sec", (b.messages_sent - a.messages_sent) / secs)
      .field("held_back", final_.publish_held_back)
      .field("messages", b.messages_received - a.messages_received)
      .field("messages_per_sec", (b.messages_received - a.messages_received) / secs)
      .field("payload_mb_per_sec", (b.bytes_received - a.bytes_received) / secs / 1e6)
      .begin_object("latency_ms")
      .field("p50", measured_.percentile(50) / 1e6)
      .field("p90", measured_.percentile(90) / 1e6)
      .field("p99", measured_.percentile(99) / 1e6)
      .field("max", measured_.max() / 1e6)
      .field("mean", measured_.mean() / 1e6)
      .end_object()
      .field("sent_total", final_.messages_sent)
      .field("echoed_total", final_.messages_received)
      .field("unanswered", final_.in_flight())
      .begin_object("errors")
      .field("total", total_errors())
      .field("unanswered", final_.in_flight())
      .field("mismatches", final_.mismatches)
      .field("connect_failures", final_.connect_failures)
      .field("unexpected_closes", final_.unexpected_closes)
      .field("protocol_errors", final_.protocol_errors)
      .end_object()
      .field("interrupted", interrupted())
      .end_object();
  return j.str();
}

void EchoRun::write_outputs() const {
  std::string error;
  if (!o_.csv_path.empty() && !write_text_file(o_.csv_path, series_.to_csv(), &error))
    std::fprintf(stderr, "weir-load: --csv: %s\n", error.c_str());
  if (o_.plot_path.empty()) return;
  PlotSpec spec;
  std::string pacing = o_.message_rate > 0 ? " at " + human_count(o_.message_rate) + " msg/s"
                                           : " x depth " + std::to_string(o_.depth);
  spec.title = std::string(command_name(o_.command)) + " " + o_.target_text + ": " +
               std::to_string(o_.connections) + " connections" + pacing + " x " +
               std::to_string(o_.size) + " B";
  // Drain and close rows cover a few milliseconds each; their rates are noise, so the chart
  // ends with the measurement (the CSV keeps them).
  size_t rows = series_.first_row_of("drain");
  std::vector<double> t = series_.column("t", rows);
  spec.panels.push_back({"messages/s",
                         {{"sent/s", t, series_.column("sent_per_sec", rows)},
                          {"echoes/s", t, series_.column("echoes_per_sec", rows)}}});
  spec.panels.push_back({"round trip (ms)",
                         {{"p50", t, series_.column("p50_ms", rows)},
                          {"p99", t, series_.column("p99_ms", rows)},
                          {"max", t, series_.column("max_ms", rows)}}});
  for (const char* p : {"connect", "warmup"})
    for (auto [x0, x1] : series_.spans(p)) spec.regions.push_back({x0, x1, p});
  if (!write_text_file(o_.plot_path, render_svg(spec), &error))
    std::fprintf(stderr, "weir-load: --plot: %s\n", error.c_str());
}

}  // namespace

int run_echo_load(const Options& options, EchoWorker::SessionFactory factory) {
  // Connect, warm-up, measure, drain and close, plus slack: the run cannot outlive this.
  int64_t bound = options.connect_timeout_ms + options.warmup_ms + options.seconds_ms +
                  kMaxDrainMs + kCloseMs + 10000;
  Watchdog watchdog(bound, std::string(command_name(options.command)));
  install_signal_handlers();
  EchoRun run(options, std::move(factory));
  return run.run();
}

}  // namespace weir::load
