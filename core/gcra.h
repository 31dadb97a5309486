// core/gcra.h — the Generic Cell Rate Algorithm: a rate limiter that keeps one number per
// key (the theoretical arrival time) instead of a token count and a refill timestamp.
//
// A limit of `rate` per second with `burst` lets `burst` requests through at once, then one
// every 1/rate seconds. take() answers whether a request of `cost` fits now, and if not, how
// long until it would. Exact with integer nanoseconds; no floating drift over long runs.
//
// Thread-safety: none; one owner (a member, a room's owner thread).
#pragma once

#include <algorithm>
#include <cstdint>

namespace weir::core {

class Gcra {
 public:
  Gcra() = default;
  // rate <= 0: no limit (take() always allows).
  Gcra(double rate, double burst)
      : interval_ns_(rate > 0 ? static_cast<int64_t>(1e9 / rate) : 0),
        tolerance_ns_(rate > 0 ? static_cast<int64_t>((std::max(burst, 1.0) - 1) * 1e9 / rate)
                               : 0) {}

  bool limited() const { return interval_ns_ > 0; }

  // Takes `cost` requests at `now_ns` if the limit allows them; else leaves the state alone and
  // sets *retry_after_ns to the wait until it would.
  bool take(int64_t now_ns, int64_t* retry_after_ns, double cost = 1) {
    if (interval_ns_ == 0) return true;
    int64_t increment = static_cast<int64_t>(interval_ns_ * cost);
    int64_t tat = std::max(tat_ns_, now_ns);
    int64_t allow_at = tat + increment - interval_ns_ - tolerance_ns_;
    if (allow_at > now_ns) {
      if (retry_after_ns) *retry_after_ns = allow_at - now_ns;
      return false;
    }
    tat_ns_ = tat + increment;
    return true;
  }

 private:
  int64_t interval_ns_ = 0;   // 1 / rate
  int64_t tolerance_ns_ = 0;  // (burst - 1) / rate
  int64_t tat_ns_ = 0;        // theoretical arrival time of the next request
};

}  // namespace weir::core
