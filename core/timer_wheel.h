// core/timer_wheel.h — a hashed timer wheel: O(1) schedule and cancel, for per-connection
// timeouts (idle, handshake, close linger) where thousands of timers are re-armed often.
//
// Timers are intrusive: a Timer lives inside its owner (a connection), so scheduling never
// allocates. The wheel has `slots` buckets of `tick_ms` each; a timer further away than one
// revolution stays in its bucket until its tick comes round (the `expires_tick` check).
//
// Idle timeouts should not be re-armed on every message: record the last activity time and,
// when the timer fires, re-arm it for the remainder (see net/connection.cc).
//
// Not thread-safe: a wheel and its timers belong to one reactor thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace weir::core {

class TimerWheel;

class Timer {
 public:
  using Callback = std::function<void()>;

  Timer() = default;
  explicit Timer(Callback callback) : callback_(std::move(callback)) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { cancel(); }

  void set_callback(Callback callback) { callback_ = std::move(callback); }
  bool pending() const { return next_ != nullptr; }
  void cancel();

 private:
  friend class TimerWheel;
  void unlink();

  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
  TimerWheel* wheel_ = nullptr;
  uint64_t expires_tick_ = 0;
  Callback callback_;
};

class TimerWheel {
 public:
  explicit TimerWheel(int64_t tick_ms = 10, size_t slots = 1024, int64_t now_ms = 0);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  ~TimerWheel();

  // (Re)arms `timer` to fire `delay_ms` from `now_ms` (rounded up to the next tick).
  void schedule(Timer& timer, int64_t delay_ms, int64_t now_ms);
  void cancel(Timer& timer) { timer.cancel(); }
  // Fires every timer due at or before `now_ms`, in tick order.
  void advance(int64_t now_ms);
  // Milliseconds until the next tick boundary, or -1 when no timer is pending.
  int64_t ms_until_next_tick(int64_t now_ms) const;
  size_t size() const { return size_; }
  int64_t tick_ms() const { return tick_ms_; }

 private:
  friend class Timer;
  void fire_slot(size_t slot);

  int64_t tick_ms_;
  std::vector<Timer> slots_;  // sentinels of circular doubly-linked lists
  uint64_t current_tick_;     // all ticks before this one have been processed
  size_t size_ = 0;
  bool firing_ = false;
};

}  // namespace weir::core
