// tools/load/slow_report.h — what `weir-load slow` tells: the per-second rows it collected,
// turned into the CSV, the SVG (the server's send rate against each client's receive rate,
// with the seconds in which backpressure held the server back shaded) and the JSON summary.
//
// Thread-safety: main thread only; plain values.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/load/histogram.h"
#include "tools/load/load_worker.h"
#include "tools/load/options.h"
#include "tools/load/report.h"
#include "tools/load/server_metrics.h"
#include "tools/load/slow_session.h"

namespace weir::load {

struct SlowRow {
  double t = 0;   // seconds since the run started
  double dt = 0;  // seconds since the previous row
  std::string phase;
  bool metrics_ok = false;  // `server` holds this interval's /metrics deltas
  ServerInterval server;
  std::vector<double> received_per_sec;  // per client (processed messages)
  std::vector<double> age_s;             // per client: age of the last message processed
  double relay_down_per_sec = NAN;       // bytes the relay passed to the slow clients
  double relay_bandwidth = NAN;          // in force at the row (NaN: unlimited)
  double published_per_sec = NAN;        // room mode: the feeder
  double publisher_held_per_sec = NAN;   // room mode: messages the feeder could not queue
  double publisher_unacked = NAN;  // room mode: sent by the feeder, not yet back from the room
  bool held_back = false;          // server held back, or the feeder was
};

struct SlowReport {
  const Options* options = nullptr;
  const std::vector<SlowClientSpec>* specs = nullptr;
  bool room = false;
  double stream_rate = 0;  // /stream?rate=
  uint64_t stream_size = 0;
  std::vector<SlowRow> rows;
  bool metrics_ok = false;
  ServerSnapshot first_snapshot, last_snapshot;
  std::vector<SlowClientStats> measure_start, measure_end, final_stats;
  double measure_start_t = 0, measure_end_t = 0;
  std::vector<std::vector<uint32_t>> bins;  // per client, after the drain
  Histogram fast_latency;                   // fast clients: send to processing, ns
  LoadCounters final_counters;
  uint64_t room_last_offset = 0;
  uint64_t published = 0;
  uint64_t publisher_held_back = 0;
  bool interrupted = false;
};

// Rows of the connect and measure phases (the plot's and the summary's time span).
size_t slow_rows_in_run(const SlowReport& r);
// The CSV's columns: the server's, the feeder's, the relay's, then three per client.
TimeSeries slow_series(const SlowReport& r);
std::string slow_summary(const SlowReport& r);
void write_slow_outputs(const SlowReport& r);
// 0 unless a connect failed, the server sent something unreadable, a fast client (or the
// feeder) was dropped, nothing was received, or the run was interrupted.
int slow_exit_status(const SlowReport& r);

}  // namespace weir::load
