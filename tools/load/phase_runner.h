// tools/load/phase_runner.h — the main thread's clock for a run: runs named phases (connect,
// warmup, measure, drain, ...) one after the other, samples the worker threads, and produces
// one row per whole second plus one at the end of each phase.
//
// A phase ends at its deadline, when its completion test holds (polled every 50 ms), or on
// Ctrl-C. Rows carry the counters then and at the previous row, and the latency recorded in
// between, so a subcommand turns them into rates without keeping its own clock.
//
// Thread-safety: main thread only.
#pragma once

#include <cstdint>
#include <functional>

#include "tools/load/histogram.h"
#include "tools/load/load_worker.h"

namespace weir::load {

struct PhaseRow {
  const char* phase;
  double t;   // seconds since the run started
  double dt;  // seconds since the previous row
  const LoadCounters& now;
  const LoadCounters& before;
  const Histogram& latency;         // recorded since the previous row
  const Histogram& resume_latency;  // likewise (fanout --resume-every)
};

class PhaseRunner {
 public:
  using Done = std::function<bool(const LoadCounters&)>;
  using OnRow = std::function<void(const PhaseRow&)>;
  static constexpr int64_t kPollMs = 50;

  PhaseRunner(WorkerThreads& threads, OnRow on_row);

  // Runs until `end_ms` (monotonic), `done` or Ctrl-C; false when interrupted. Rows fall on
  // whole seconds since the phase began, so a phase of T seconds has T full-second rows.
  bool run_phase(const char* name, int64_t end_ms, const Done& done = nullptr);
  // The same for `duration_ms` from now.
  bool run_phase_for(const char* name, int64_t duration_ms, const Done& done = nullptr);

  int64_t start_ms() const { return start_ms_; }
  int64_t last_row_ms() const { return row_ms_; }
  const LoadCounters& counters() const { return row_counters_; }

 private:
  void add_row(const char* name, int64_t now_ms, const LoadCounters& counters);

  WorkerThreads& threads_;
  OnRow on_row_;
  int64_t start_ms_;
  int64_t row_ms_;
  LoadCounters row_counters_;
  Histogram row_latency_;
  Histogram row_resume_latency_;
};

}  // namespace weir::load
