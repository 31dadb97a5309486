// tools/load/phase_runner.cc — phase timing and per-second rows.
#include "tools/load/phase_runner.h"

#include <algorithm>

#include "core/clock.h"
#include "tools/load/run_support.h"

namespace weir::load {

PhaseRunner::PhaseRunner(WorkerThreads& threads, OnRow on_row)
    : threads_(threads),
      on_row_(std::move(on_row)),
      start_ms_(core::monotonic_ms()),
      row_ms_(start_ms_) {}

bool PhaseRunner::run_phase_for(const char* name, int64_t duration_ms, const Done& done) {
  return run_phase(name, core::monotonic_ms() + duration_ms, done);
}

bool PhaseRunner::run_phase(const char* name, int64_t end_ms, const Done& done) {
  const int64_t phase_start = core::monotonic_ms();
  for (;;) {
    int64_t since = std::max<int64_t>(row_ms_ - phase_start, 0);
    int64_t next_second = phase_start + (since / 1000 + 1) * 1000;
    // Without a completion test there is nothing to poll for: wake on the second.
    int64_t poll = done ? core::monotonic_ms() + kPollMs : next_second;
    bool alive = sleep_until_ms(std::min({poll, next_second, end_ms}));
    Sample s = threads_.sample();
    row_latency_.merge(s.latency);
    row_resume_latency_.merge(s.resume_latency);
    int64_t now = core::monotonic_ms();
    bool finished = !alive || now >= end_ms || (done && done(s.counters));
    if (finished || now >= next_second) add_row(name, now, s.counters);
    if (finished) return alive;
  }
}

void PhaseRunner::add_row(const char* name, int64_t now_ms, const LoadCounters& counters) {
  double dt = static_cast<double>(std::max<int64_t>(now_ms - row_ms_, 1)) / 1000.0;
  double t = static_cast<double>(now_ms - start_ms_) / 1000.0;
  on_row_(PhaseRow{name, t, dt, counters, row_counters_, row_latency_, row_resume_latency_});
  row_latency_.reset();
  row_resume_latency_.reset();
  row_counters_ = counters;
  row_ms_ = now_ms;
}

}  // namespace weir::load
