// tools/load/token_bucket.h — the relay's throttle: a token bucket of bytes per second whose
// rate can change while it runs.
//
// Tokens accrue continuously at the rate up to a small burst (1/20 s of the rate, at least
// 256 bytes), so a relay that was idle cannot later exceed its rate by more than that. The
// bucket starts empty: a measurement from the first byte sees the configured rate, not the
// rate plus a burst. Rate 0 means unlimited.
//
// Thread-safety: none; a plain value owned by one relay direction on one reactor thread.
#pragma once

#include <cstdint>

namespace weir::load {

class TokenBucket {
 public:
  static constexpr uint64_t kUnlimited = UINT64_MAX;

  TokenBucket(double bytes_per_sec, int64_t now_ns);

  // Changes the rate from `now_ns` on; tokens earned so far are kept (up to the new burst).
  void set_rate(double bytes_per_sec, int64_t now_ns);
  double rate() const { return rate_; }
  double burst() const { return burst_; }

  // Whole tokens available at `now_ns` (kUnlimited when the rate is 0).
  uint64_t available(int64_t now_ns);
  // Spends `bytes` tokens (after available() said they are there).
  void consume(uint64_t bytes);
  // Nanoseconds from `now_ns` until `bytes` tokens (at most one burst) will be available;
  // 0 when they are already.
  int64_t wait_ns(uint64_t bytes, int64_t now_ns);

 private:
  void refill(int64_t now_ns);

  double rate_ = 0;   // bytes per second; 0 = unlimited
  double burst_ = 0;  // most tokens held
  double tokens_ = 0;
  int64_t last_ns_ = 0;
};

}  // namespace weir::load
