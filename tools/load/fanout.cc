// tools/load/fanout.cc — `weir-load fanout`: K rooms of M members each and P publishers spread
// over them; deliveries per second, delivery latency, loss and per-room order.
//
// Phases: connect (every connection has joined its room, or --connect-timeout), warmup,
// measure (--seconds), drain (publishing stops; until every publisher has its messages back
// and deliveries have been quiet for 300 ms, at most 5 s), close. Loss is counted after the
// drain from offsets: each member owed every offset from its join offset + 1 to the highest
// offset any member of its room saw.
//
// --resume-every drops members on purpose while messages flow (fanout_client.h); the drain
// also waits for resumes under way, and the summary adds how they went (`resumes`).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "tools/load/commands.h"
#include "tools/load/fanout_client.h"
#include "tools/load/phase_runner.h"
#include "tools/load/report.h"
#include "tools/load/run_support.h"
#include "tools/load/svg_plot.h"

namespace weir::load {
namespace {

constexpr int64_t kMaxDrainMs = 5000;
constexpr int64_t kQuietMs = 300;
constexpr int64_t kCloseMs = 2000;
constexpr int kMaxRoomsListed = 20;

struct RoomTotals {
  uint64_t members = 0, last_offset = 0, expected = 0, received = 0, lost = 0, skipped = 0,
           violations = 0, duplicates = 0;
};

std::vector<std::string> series_columns(const Options& o) {
  std::vector<std::string> columns({"joined", "published_per_sec", "deliveries_per_sec",
                                    "expected_per_sec", "p50_ms", "p90_ms", "p99_ms", "max_ms",
                                    "order_violations", "skipped", "errors"});
  if (o.resume_every_ms > 0)
    for (const char* c : {"resumes", "resumes_recovered", "replayed", "resume_p99_ms"})
      columns.push_back(c);
  return columns;
}

class FanoutRun {
 public:
  explicit FanoutRun(const Options& o)
      : o_(o),
        total_(static_cast<size_t>(o.rooms) * o.members + o.publishers),
        threads_(static_cast<int>(std::min<size_t>(o.threads, total_))),
        clock_(threads_, [this](const PhaseRow& row) { add_row(row); }),
        series_(series_columns(o)) {
    room_prefix_ = "load-" + std::to_string(::getpid()) + "-" +
                   std::to_string(core::monotonic_ms() % 100000) + "-";
  }

  int run();

 private:
  void start_workers();
  void add_row(const PhaseRow& row);
  void account();
  uint64_t errors() const;
  std::string summary() const;
  void write_rooms(JsonWriter& j) const;
  void write_resumes(JsonWriter& j) const;
  std::string resume_progress(const PhaseRow& row) const;
  void write_outputs() const;
  void each(void (FanoutWorker::*fn)()) {
    threads_.run_on_each([fn](Worker& w) { (static_cast<FanoutWorker&>(w).*fn)(); });
  }

  const Options& o_;
  size_t total_;
  std::string room_prefix_;
  WorkerThreads threads_;
  PhaseRunner clock_;
  ErrorLog errors_;
  TimeSeries series_;
  Histogram measured_;
  Histogram resume_latency_;  // the whole run's
  LoadCounters measure_start_, measure_end_, final_;
  double measured_seconds_ = 0;
  std::vector<RoomTotals> rooms_;
  RoomTotals all_;
};

void FanoutRun::start_workers() {
  int n = threads_.count();
  int64_t epoch_ns = core::monotonic_ns();
  std::vector<std::vector<FanoutClientSpec>> per_thread(n);
  std::vector<int> publishers(n, 0);
  for (int p = 0; p < o_.publishers; ++p) {
    per_thread[p % n].push_back({p, p % o_.rooms, p});
    publishers[p % n]++;
  }
  int index = o_.publishers;
  for (int k = 0; k < o_.rooms; ++k)
    for (int m = 0; m < o_.members; ++m, ++index) per_thread[index % n].push_back({index, k, -1});
  threads_.start([&](core::Reactor& reactor, int i) {
    double rate = o_.publish_rate * publishers[i] / o_.publishers;
    return std::make_unique<FanoutWorker>(reactor, o_, room_prefix_, std::move(per_thread[i]), rate,
                                          epoch_ns, &errors_);
  });
}

void FanoutRun::add_row(const PhaseRow& row) {
  const LoadCounters& c = row.now;
  const Histogram& h = row.latency;
  double published = (c.messages_sent - row.before.messages_sent) / row.dt;
  double deliveries = (c.messages_received - row.before.messages_received) / row.dt;
  // Every member of the room gets each message, publishers included.
  double room_size = (static_cast<double>(o_.rooms) * o_.members + o_.publishers) / o_.rooms;
  auto ms = [](const Histogram& h, double p) { return h.count() ? h.percentile(p) / 1e6 : NAN; };
  std::vector<double> values(
      {static_cast<double>(c.connections_open), published, deliveries, published * room_size,
       ms(h, 50), ms(h, 90), ms(h, 99), h.count() ? h.max() / 1e6 : NAN,
       static_cast<double>(c.order_violations), static_cast<double>(c.skipped),
       static_cast<double>(c.errors() + c.resume_failures)});
  if (o_.resume_every_ms > 0)
    values.insert(values.end(),
                  {static_cast<double>(c.resumes), static_cast<double>(c.resumes_recovered),
                   static_cast<double>(c.replayed), ms(row.resume_latency, 99)});
  series_.add_row(row.t, row.phase, values);
  if (std::string_view(row.phase) == "measure") measured_.merge(h);
  resume_latency_.merge(row.resume_latency);
  if (o_.quiet) return;
  std::fprintf(stderr,
               "fanout %6.1fs %-7s joined %llu/%zu  published %s/s  deliveries %s/s  p50 %s "
               "p99 %s  order violations %llu  skipped %llu  errors %llu%s\n",
               row.t, row.phase, static_cast<unsigned long long>(c.connections_open), total_,
               human_count(published).c_str(), human_count(deliveries).c_str(),
               latency_text(h, 50).c_str(), latency_text(h, 99).c_str(),
               static_cast<unsigned long long>(c.order_violations),
               static_cast<unsigned long long>(c.skipped),
               static_cast<unsigned long long>(c.errors() + c.resume_failures),
               resume_progress(row).c_str());
}

// "  resumes 12 (12 recovered, 0 failed) replayed 340  resume p50 2.1ms p99 4.1ms": totals so
// far, percentiles of this row's resumes.
std::string FanoutRun::resume_progress(const PhaseRow& row) const {
  if (o_.resume_every_ms <= 0) return "";
  const LoadCounters& c = row.now;
  char line[200];
  std::snprintf(line, sizeof line,
                "  resumes %llu (%llu recovered, %llu failed) replayed %llu  resume p50 %s p99 %s",
                static_cast<unsigned long long>(c.resumes),
                static_cast<unsigned long long>(c.resumes_recovered),
                static_cast<unsigned long long>(c.resume_failures),
                static_cast<unsigned long long>(c.replayed),
                latency_text(row.resume_latency, 50).c_str(),
                latency_text(row.resume_latency, 99).c_str());
  return line;
}

// Loss and order per room, from every member's offsets after the drain.
void FanoutRun::account() {
  std::vector<FanoutClientResult> results(total_);
  threads_.run_on_each([&](Worker& w) { static_cast<FanoutWorker&>(w).collect(&results); });
  rooms_.assign(o_.rooms, {});
  for (const FanoutClientResult& r : results)
    if (r.joined)
      rooms_[r.room].last_offset = std::max(rooms_[r.room].last_offset, r.offsets.last_offset());
  for (const FanoutClientResult& r : results) {
    if (!r.joined) continue;
    RoomTotals& t = rooms_[r.room];
    t.members++;
    t.expected += r.offsets.expected(t.last_offset);
    t.received += r.offsets.received();
    t.lost += r.offsets.lost(t.last_offset);
    t.skipped += r.offsets.skipped();
    t.violations += r.offsets.order_violations();
    t.duplicates += r.offsets.duplicates();
  }
  for (const RoomTotals& t : rooms_) {
    all_.members += t.members;
    all_.expected += t.expected;
    all_.received += t.received;
    all_.lost += t.lost;
    all_.skipped += t.skipped;
    all_.violations += t.violations;
    all_.duplicates += t.duplicates;
  }
}

// Announced skips (--slow-consumer skip) are the server keeping its promise; silent loss,
// disorder, drops and refusals are errors, and so is a resume that failed or did not recover
// everything (the member was promised every message after its offset).
uint64_t FanoutRun::errors() const {
  uint64_t silent_loss = all_.lost > all_.skipped ? all_.lost - all_.skipped : 0;
  return final_.connect_failures + final_.unexpected_closes + final_.protocol_errors +
         all_.violations + silent_loss + final_.resume_failures +
         (final_.resumes - final_.resumes_recovered);
}

int FanoutRun::run() {
  raise_fd_limit(total_ + 64);
  start_workers();
  bool alive = clock_.run_phase_for("connect", o_.connect_timeout_ms, [&](const LoadCounters& c) {
    return c.connections_opened + c.connect_failures >= total_;
  });
  each(&FanoutWorker::abort_unjoined);
  if (clock_.counters().connections_opened > 0) {
    each(&FanoutWorker::start_sending);
    if (alive && o_.warmup_ms > 0) alive = clock_.run_phase_for("warmup", o_.warmup_ms);
    measure_start_ = clock_.counters();
    int64_t start_ms = clock_.last_row_ms();
    if (alive) alive = clock_.run_phase_for("measure", o_.seconds_ms);
    measure_end_ = clock_.counters();
    measured_seconds_ = (clock_.last_row_ms() - start_ms) / 1000.0;
  }
  each(&FanoutWorker::stop_sending);
  uint64_t last_deliveries = UINT64_MAX;
  int64_t quiet_since = core::monotonic_ms();
  clock_.run_phase_for("drain", kMaxDrainMs, [&](const LoadCounters& c) {
    int64_t now = core::monotonic_ms();
    if (c.messages_received != last_deliveries) {
      last_deliveries = c.messages_received;
      quiet_since = now;
    }
    return c.acks >= c.messages_sent && c.resumes_pending() == 0 && now - quiet_since >= kQuietMs;
  });
  account();
  each(&FanoutWorker::close_all);
  clock_.run_phase_for("close", kCloseMs,
                       [](const LoadCounters& c) { return c.connections_open == 0; });
  final_ = clock_.counters();
  threads_.stop();
  write_outputs();
  std::printf("%s\n", summary().c_str());
  std::fflush(stdout);
  uint64_t measured = measure_end_.messages_received - measure_start_.messages_received;
  if (measured == 0) std::fprintf(stderr, "weir-load: no delivery during the measurement\n");
  if (errors_.suppressed() > 0)
    std::fprintf(stderr, "weir-load: %llu more errors not shown\n",
                 static_cast<unsigned long long>(errors_.suppressed()));
  return errors() == 0 && measured > 0 && !interrupted() ? 0 : 1;
}

std::string FanoutRun::summary() const {
  const LoadCounters& a = measure_start_;
  const LoadCounters& b = measure_end_;
  double secs = measured_seconds_ > 0 ? measured_seconds_ : 1;
  JsonWriter j;
  j.begin_object()
      .field("command", "fanout")
      .field("target", o_.target_text)
      .field("rooms", o_.rooms)
      .field("members_per_room", o_.members)
      .field("publishers", o_.publishers)
      .field("rate", o_.publish_rate)
      .field("depth", o_.depth)
      .field("size", o_.size)
      .field("threads", threads_.count())
      .field("connections", static_cast<uint64_t>(total_))
      .field("joined", final_.connections_opened)
      .field("warmup_seconds", o_.warmup_ms / 1000.0)
      .field("seconds", measured_seconds_)
      .field("published", b.messages_sent - a.messages_sent)
      .field("published_per_sec", (b.messages_sent - a.messages_sent) / secs)
      .field("deliveries", b.messages_received - a.messages_received)
      .field("deliveries_per_sec", (b.messages_received - a.messages_received) / secs)
      .field("payload_mb_per_sec", (b.bytes_received - a.bytes_received) / secs / 1e6)
      .begin_object("latency_ms")
      .field("p50", measured_.percentile(50) / 1e6)
      .field("p90", measured_.percentile(90) / 1e6)
      .field("p99", measured_.percentile(99) / 1e6)
      .field("max", measured_.max() / 1e6)
      .field("mean", measured_.mean() / 1e6)
      .end_object()
      .field("expected_deliveries", all_.expected)
      .field("received_deliveries", all_.received)
      .field("lost", all_.lost)
      .field("loss_ratio", all_.expected ? static_cast<double>(all_.lost) / all_.expected : 0.0)
      .field("skipped", all_.skipped)
      .field("order_violations", all_.violations)
      .field("duplicates", all_.duplicates)
      .field("rooms_with_violations",
             static_cast<uint64_t>(std::count_if(rooms_.begin(), rooms_.end(),
                                                 [](const RoomTotals& t) { return t.violations; })))
      .field("publish_held_back", final_.publish_held_back)
      .field("acks", final_.acks)
      .field("unacked", final_.messages_sent - std::min(final_.acks, final_.messages_sent));
  if (o_.resume_every_ms > 0) write_resumes(j);
  if (o_.rooms <= kMaxRoomsListed) write_rooms(j);
  j.begin_object("errors")
      .field("total", errors())
      .field("connect_failures", final_.connect_failures)
      .field("unexpected_closes", final_.unexpected_closes)
      .field("protocol_errors", final_.protocol_errors)
      .field("order_violations", all_.violations)
      .field("silent_loss", all_.lost > all_.skipped ? all_.lost - all_.skipped : 0)
      .field("resume_failures", final_.resume_failures)
      .field("resumes_not_recovered", final_.resumes - final_.resumes_recovered)
      .end_object()
      .field("interrupted", interrupted())
      .end_object();
  return j.str();
}

void FanoutRun::write_rooms(JsonWriter& j) const {
  j.begin_array("per_room");
  for (int k = 0; k < o_.rooms; ++k)
    j.begin_object()
        .field("room", room_prefix_ + std::to_string(k))
        .field("members", rooms_[k].members)
        .field("last_offset", rooms_[k].last_offset)
        .field("lost", rooms_[k].lost)
        .field("order_violations", rooms_[k].violations)
        .end_object();
  j.end_array();
}

// The whole run's resumes (warm-up included): every drop of --resume-every and its outcome.
void FanoutRun::write_resumes(JsonWriter& j) const {
  const Histogram& h = resume_latency_;
  j.begin_object("resumes")
      .field("every_seconds", o_.resume_every_ms / 1000.0)
      .field("started", final_.resumes_started)
      .field("done", final_.resumes)
      .field("recovered", final_.resumes_recovered)
      .field("not_recovered", final_.resumes - final_.resumes_recovered)
      .field("failed", final_.resume_failures)
      .field("replayed", final_.replayed)
      .begin_object("latency_ms")
      .field("p50", h.percentile(50) / 1e6)
      .field("p90", h.percentile(90) / 1e6)
      .field("p99", h.percentile(99) / 1e6)
      .field("max", h.max() / 1e6)
      .field("mean", h.mean() / 1e6)
      .end_object()
      .end_object();
}

void FanoutRun::write_outputs() const {
  std::string error;
  if (!o_.csv_path.empty() && !write_text_file(o_.csv_path, series_.to_csv(), &error))
    std::fprintf(stderr, "weir-load: --csv: %s\n", error.c_str());
  if (o_.plot_path.empty()) return;
  PlotSpec spec;
  spec.title = "fanout " + o_.target_text + ": " + std::to_string(o_.rooms) + " rooms x " +
               std::to_string(o_.members) + " members, " + std::to_string(o_.publishers) +
               " publishers" +
               (o_.publish_rate > 0 ? " at " + human_count(o_.publish_rate) + "/s"
                                    : ", depth " + std::to_string(o_.depth));
  size_t rows = series_.first_row_of("drain");
  std::vector<double> t = series_.column("t", rows);
  spec.panels.push_back({"deliveries/s",
                         {{"deliveries/s", t, series_.column("deliveries_per_sec", rows)},
                          {"published x room size", t, series_.column("expected_per_sec", rows)}}});
  spec.panels.push_back(
      {"published/s", {{"published/s", t, series_.column("published_per_sec", rows)}}});
  spec.panels.push_back({"delivery latency (ms)",
                         {{"p50", t, series_.column("p50_ms", rows)},
                          {"p99", t, series_.column("p99_ms", rows)},
                          {"max", t, series_.column("max_ms", rows)}}});
  for (const char* p : {"connect", "warmup"})
    for (auto [x0, x1] : series_.spans(p)) spec.regions.push_back({x0, x1, p});
  if (!write_text_file(o_.plot_path, render_svg(spec), &error))
    std::fprintf(stderr, "weir-load: --plot: %s\n", error.c_str());
}

}  // namespace

int run_fanout(const Options& options) {
  int64_t bound = options.connect_timeout_ms + options.warmup_ms + options.seconds_ms +
                  kMaxDrainMs + kCloseMs + 10000;
  Watchdog watchdog(bound, "fanout");
  install_signal_handlers();
  FanoutRun run(options);
  return run.run();
}

}  // namespace weir::load
