// tools/load/slow_plan.h — `weir-load slow`: the seed's slow-client scenarios, and the rules of
// a run that are worth testing on their own.
//
//   1. one client spending D ms on each message (--clients 1 --delay-ms D);
//   2. a client on a slow network (--delay-ms 0 --via-relay B/s, optionally with a
//      --bandwidth-schedule or stdin 'bandwidth N' lines to change it on the way);
//   3. N clients with delays base + random(range) (--delay-base-ms B --delay-range-ms R),
// plus --fast-clients F that read as fast as they can, against /stream?rate=N&size=S or a room
// (--room R on /ws, fed by the tool at --publish-rate).
//
// Phases: connect (all clients open, or --connect-timeout), measure (--seconds), drain (the
// clients stop pacing and read what the buffers still hold, up to 3 s, so every message the
// server sent during the run is accounted for), close. Each second the main thread samples the
// clients, GETs the server's /metrics, and records: the server's send and deferral rates,
// whether backpressure held it back that second, each client's receive rate and the age of
// what it processes. After the drain the send times carried by /stream messages give the
// server's send rate to each client, second by second.
//
// slow.cc runs it; slow_report.cc tells it.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/load/options.h"
#include "tools/load/slow_session.h"

namespace weir::load {

// The clients of a run: --clients slow ones (named slow1..N, with --delay-ms, or base +
// a seeded uniform random part up to --delay-range-ms), then --fast-clients (fast1..F).
std::vector<SlowClientSpec> make_slow_specs(const Options& options);

// `key`'s value in the query of a request target ("/stream?rate=40&size=5000"), or `fallback`.
uint64_t query_number(std::string_view target, std::string_view key, uint64_t fallback);

// Sum of the 10 ms bins covering (t0, t1] seconds after the epoch, divided by the interval:
// messages per second. NaN when the interval is empty or outside the bins.
double bins_rate(const std::vector<uint32_t>& bins, double t0, double t1);

// [start, end] spans of consecutive flagged intervals; interval i runs from times[i-1] (or 0)
// to times[i].
std::vector<std::pair<double, double>> flagged_spans(const std::vector<double>& times,
                                                     const std::vector<bool>& flags);

}  // namespace weir::load
