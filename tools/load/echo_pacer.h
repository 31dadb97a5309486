// tools/load/echo_pacer.h — the schedule of `weir-load echo --rate`: message i of a thread's
// share is due at start + i / rate, whatever happened to the messages before it.
//
// Latency is measured from that scheduled time, not from when the message actually left. A
// server (or load thread) that stalls for 50 ms makes every message due in those 50 ms late by
// what it waited, as a client sending at that rate would see it; sending them later and timing
// from then would hide the stall (coordinated omission). A message whose connection cannot
// take it (more than kMaxQueued bytes unsent) is neither queued nor made up later: it counts
// as held back, and the achieved rate falls short of the asked one.
//
// Header-only and clock-free: callers pass the time, so tests need no sleeps.
// Thread-safety: none; a value owned by one echo worker on its reactor thread.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace weir::load {

class EchoPacer {
 public:
  // Unsent bytes on a connection past which a due message is held back, as fanout --rate.
  static constexpr size_t kMaxQueued = 1 << 20;

  // `rate` messages per second (> 0), the first one due at `start_ns`.
  EchoPacer(double rate, int64_t start_ns) : rate_(rate), start_ns_(start_ns) {}

  // Scheduled time of the next message (computed from its index, so no rounding accumulates).
  int64_t next_due_ns() const {
    return start_ns_ +
           static_cast<int64_t>(std::llround(static_cast<double>(taken_) * 1e9 / rate_));
  }

  // When the next message is due by `now_ns`: its scheduled time in `*scheduled_ns`, and the
  // schedule moves past it (sent or held back, it is not due again).
  bool take_due(int64_t now_ns, int64_t* scheduled_ns) {
    int64_t due = next_due_ns();
    if (due > now_ns) return false;
    *scheduled_ns = due;
    taken_++;
    return true;
  }

  // Messages the schedule has handed out so far.
  uint64_t taken() const { return taken_; }
  double rate() const { return rate_; }

  // One thread's share of `rate` when it drives `share` of `connections` connections.
  static double thread_rate(double rate, int share, int connections) {
    return connections > 0 ? rate * share / connections : 0;
  }

 private:
  double rate_;
  int64_t start_ns_;
  uint64_t taken_ = 0;
};

}  // namespace weir::load
