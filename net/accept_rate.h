// net/accept_rate.h — the rate at which the server admits new connections (--accept-rate), one
// budget shared by every listener.
//
// A restarted node behind a load balancer would otherwise take every client that just lost
// its old node at once (TLS handshakes, joins, resumes, history reads). Over the rate the
// listeners wait with the connections left in the kernel's backlog, as they do at
// --max-connections: a client sees a slower connect, not a refusal, and a backlog that
// overflows makes the kernel drop SYNs, which clients retry with backoff.
//
// It is GCRA (core/gcra.h) split in two: ready() asks before accept(2), consume() counts a
// connection actually accepted. Asking alone costs nothing, so an accept that finds the
// backlog empty does not spend the budget. Shared, because SO_REUSEPORT spreads connections
// unevenly over the listeners: a per-listener share would admit less than the rate on a
// quiet listener and hold connections back on a busy one.
//
// Thread-safety: any thread (one mutex, taken per accepted connection).
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>

namespace weir::net {

class AcceptRate {
 public:
  // `rate` connections per second, `burst` at once (at least 1).
  AcceptRate(double rate, double burst)
      : interval_ns_(static_cast<int64_t>(1e9 / rate)),
        tolerance_ns_(static_cast<int64_t>((std::max(burst, 1.0) - 1) * 1e9 / rate)) {}

  // 0 when a connection may be accepted at `now_ns`; else the wait in nanoseconds.
  int64_t ready(int64_t now_ns) {
    std::lock_guard lock(mutex_);
    int64_t allow_at = tat_ns_ - tolerance_ns_;
    return allow_at > now_ns ? allow_at - now_ns : 0;
  }
  // Counts one accepted connection against the budget.
  void consume(int64_t now_ns) {
    std::lock_guard lock(mutex_);
    tat_ns_ = std::max(tat_ns_, now_ns) + interval_ns_;
  }

 private:
  std::mutex mutex_;
  int64_t interval_ns_;
  int64_t tolerance_ns_;
  int64_t tat_ns_ = 0;
};

}  // namespace weir::net
