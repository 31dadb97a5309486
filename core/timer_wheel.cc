// core/timer_wheel.cc — hashed timer wheel.
#include "core/timer_wheel.h"

#include <cassert>

namespace weir::core {

void Timer::unlink() {
  prev_->next_ = next_;
  next_->prev_ = prev_;
  prev_ = next_ = nullptr;
}

void Timer::cancel() {
  if (!pending()) return;
  unlink();
  wheel_->size_--;
}

TimerWheel::TimerWheel(int64_t tick_ms, size_t slots, int64_t now_ms)
    : tick_ms_(tick_ms), slots_(slots), current_tick_(static_cast<uint64_t>(now_ms / tick_ms)) {
  assert(tick_ms > 0 && slots > 0);
  for (Timer& sentinel : slots_) sentinel.prev_ = sentinel.next_ = &sentinel;
}

TimerWheel::~TimerWheel() {
  // Detach the timers still armed so their destructors do not touch freed sentinels.
  for (Timer& sentinel : slots_) {
    while (sentinel.next_ != &sentinel) sentinel.next_->unlink();
    sentinel.prev_ = sentinel.next_ = nullptr;
  }
}

void TimerWheel::schedule(Timer& timer, int64_t delay_ms, int64_t now_ms) {
  timer.cancel();
  if (delay_ms < 0) delay_ms = 0;
  uint64_t due = static_cast<uint64_t>((now_ms + delay_ms + tick_ms_ - 1) / tick_ms_);
  // While a tick is being fired it counts as processed: a timer armed from a callback for
  // "now" goes to the next tick, not a full revolution later.
  uint64_t earliest = current_tick_ + (firing_ ? 1 : 0);
  if (due < earliest) due = earliest;
  Timer& sentinel = slots_[due % slots_.size()];
  timer.wheel_ = this;
  timer.expires_tick_ = due;
  timer.prev_ = sentinel.prev_;
  timer.next_ = &sentinel;
  sentinel.prev_->next_ = &timer;
  sentinel.prev_ = &timer;
  size_++;
}

void TimerWheel::advance(int64_t now_ms) {
  uint64_t now_tick = static_cast<uint64_t>(now_ms / tick_ms_);
  // After a long stall, one revolution visits every slot; later ticks add nothing new.
  if (now_tick >= current_tick_ + slots_.size()) current_tick_ = now_tick - slots_.size() + 1;
  firing_ = true;
  while (current_tick_ <= now_tick && size_ > 0) {
    fire_slot(current_tick_ % slots_.size());
    current_tick_++;
  }
  firing_ = false;
  if (size_ == 0) current_tick_ = now_tick + 1;
}

void TimerWheel::fire_slot(size_t slot) {
  Timer& sentinel = slots_[slot];
  if (sentinel.next_ == &sentinel) return;
  // Move the slot's timers to a local list so callbacks may schedule, cancel or destroy any
  // timer (including ones still waiting in the local list) without invalidating iteration.
  Timer local;
  local.prev_ = sentinel.prev_;
  local.next_ = sentinel.next_;
  local.prev_->next_ = &local;
  local.next_->prev_ = &local;
  sentinel.prev_ = sentinel.next_ = &sentinel;
  while (local.next_ != &local) {
    Timer* timer = local.next_;
    timer->unlink();
    if (timer->expires_tick_ > current_tick_) {  // a later revolution: put it back
      timer->prev_ = sentinel.prev_;
      timer->next_ = &sentinel;
      sentinel.prev_->next_ = timer;
      sentinel.prev_ = timer;
      continue;
    }
    size_--;
    if (timer->callback_) timer->callback_();
  }
  local.prev_ = local.next_ = nullptr;
}

int64_t TimerWheel::ms_until_next_tick(int64_t now_ms) const {
  if (size_ == 0) return -1;
  int64_t next_boundary = static_cast<int64_t>(current_tick_) * tick_ms_;
  return next_boundary > now_ms ? next_boundary - now_ms : 0;
}

}  // namespace weir::core
