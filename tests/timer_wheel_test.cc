// tests/timer_wheel_test.cc — when timers fire, and what callbacks may do to the wheel.
#include "core/timer_wheel.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace weir::core {
namespace {

constexpr int64_t kTick = 10;

// Advances the wheel one millisecond at a time from `*now` to `until`.
void step_to(TimerWheel& wheel, int64_t* now, int64_t until) {
  while (*now < until) wheel.advance(++*now);
}

TEST(TimerWheel, FiresNotEarlyAndAtMostOneTickLate) {
  for (int64_t start : {0, 1, 5, 9, 10, 11, 19, 123}) {
    for (int64_t delay : {0, 1, 9, 10, 11, 25, 99, 100, 101, 1000, 12345}) {
      TimerWheel wheel(kTick, 64, 0);
      int64_t now = 0;
      step_to(wheel, &now, start);
      int64_t fired_at = -1;
      Timer timer([&] { fired_at = now; });
      wheel.schedule(timer, delay, now);
      step_to(wheel, &now, start + delay + kTick + 1);
      ASSERT_GE(fired_at, start + delay) << "start " << start << " delay " << delay;
      ASSERT_LE(fired_at, start + delay + kTick) << "start " << start << " delay " << delay;
      EXPECT_FALSE(timer.pending());
      EXPECT_EQ(wheel.size(), 0u);
    }
  }
}

TEST(TimerWheel, FiresOnTheTickBoundaryItWasRoundedUpTo) {
  TimerWheel wheel(kTick, 1024, 0);
  int fired = 0;
  Timer timer([&] { fired++; });
  wheel.schedule(timer, 25, 0);  // rounded up to 30
  wheel.advance(29);
  EXPECT_EQ(fired, 0);
  wheel.advance(30);
  EXPECT_EQ(fired, 1);
  wheel.advance(1000);
  EXPECT_EQ(fired, 1);  // once
}

TEST(TimerWheel, WheelCreatedLateCountsFromItsStartTime) {
  TimerWheel wheel(kTick, 16, 1'000'005);
  int fired = 0;
  Timer timer([&] { fired++; });
  wheel.schedule(timer, 0, 1'000'005);
  wheel.advance(1'000'009);
  EXPECT_EQ(fired, 0);
  wheel.advance(1'000'010);
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, CancelledTimerNeverFires) {
  TimerWheel wheel(kTick, 1024, 0);
  int fired = 0;
  Timer timer([&] { fired++; });
  wheel.schedule(timer, 50, 0);
  EXPECT_TRUE(timer.pending());
  EXPECT_EQ(wheel.size(), 1u);
  wheel.cancel(timer);
  EXPECT_FALSE(timer.pending());
  EXPECT_EQ(wheel.size(), 0u);
  timer.cancel();  // idempotent
  wheel.advance(1000);
  EXPECT_EQ(fired, 0);
}

TEST(TimerWheel, RescheduleReplacesThePreviousDeadline) {
  TimerWheel wheel(kTick, 1024, 0);
  int64_t now = 0;
  int64_t fired_at = -1;
  Timer timer([&] { fired_at = now; });
  wheel.schedule(timer, 30, 0);
  wheel.schedule(timer, 200, 0);
  EXPECT_EQ(wheel.size(), 1u);
  step_to(wheel, &now, 300);
  EXPECT_EQ(fired_at, 200);
}

TEST(TimerWheel, CallbackCancelsAnotherTimerDueInTheSameTick) {
  TimerWheel wheel(kTick, 1024, 0);
  int a_fired = 0, b_fired = 0;
  Timer b([&] { b_fired++; });
  Timer a([&] {
    a_fired++;
    b.cancel();
  });
  wheel.schedule(a, 20, 0);
  wheel.schedule(b, 20, 0);
  wheel.advance(20);
  EXPECT_EQ(a_fired, 1);
  EXPECT_EQ(b_fired, 0);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, CallbackCancelsATimerDueLater) {
  TimerWheel wheel(kTick, 1024, 0);
  int b_fired = 0;
  Timer b([&] { b_fired++; });
  Timer a([&] { wheel.cancel(b); });
  wheel.schedule(a, 20, 0);
  wheel.schedule(b, 500, 0);
  wheel.advance(1000);
  EXPECT_EQ(b_fired, 0);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, CallbackDestroysAnotherPendingTimerInTheSameSlot) {
  TimerWheel wheel(kTick, 1024, 0);
  int fired = 0;
  auto b = std::make_unique<Timer>([&] { fired++; });
  auto c = std::make_unique<Timer>([&] { fired++; });
  Timer a([&] { b.reset(); });
  wheel.schedule(a, 10, 0);
  wheel.schedule(*b, 10, 0);
  wheel.schedule(*c, 10, 0);
  wheel.advance(10);
  EXPECT_EQ(fired, 1);  // c only
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, CallbackMayDestroyItsOwnTimer) {
  TimerWheel wheel(kTick, 1024, 0);
  auto owner = std::make_unique<Timer>();
  bool ran = false;
  owner->set_callback([&] {
    ran = true;
    owner.reset();  // a connection closed by its own idle timeout
  });
  wheel.schedule(*owner, 10, 0);
  wheel.advance(10);
  EXPECT_TRUE(ran);
  EXPECT_EQ(owner, nullptr);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, CallbackRearmsItsOwnTimer) {
  TimerWheel wheel(kTick, 1024, 0);
  int64_t now = 0;
  std::vector<int64_t> fired;
  Timer timer;
  timer.set_callback([&] {
    fired.push_back(now);
    if (fired.size() < 5) wheel.schedule(timer, 30, now);
  });
  wheel.schedule(timer, 30, 0);
  step_to(wheel, &now, 500);
  EXPECT_EQ(fired, (std::vector<int64_t>{30, 60, 90, 120, 150}));
  EXPECT_FALSE(timer.pending());
}

TEST(TimerWheel, TimerBeyondOneRevolutionFiresOnTimeNotARevolutionEarly) {
  constexpr size_t kSlots = 8;  // one revolution = 80 ms
  TimerWheel wheel(kTick, kSlots, 0);
  int64_t now = 0;
  int64_t fired_at = -1;
  Timer timer([&] { fired_at = now; });
  wheel.schedule(timer, 205, 0);  // due tick 21; its slot comes round at 50 and 130 first
  step_to(wheel, &now, 209);
  EXPECT_EQ(fired_at, -1);
  EXPECT_TRUE(timer.pending());
  step_to(wheel, &now, 300);
  EXPECT_EQ(fired_at, 210);
}

TEST(TimerWheel, ManyRevolutionsAwayWithCoarseAdvances) {
  TimerWheel wheel(kTick, 8, 0);
  int64_t fired_at = -1;
  int64_t now = 0;
  Timer timer([&] { fired_at = now; });
  wheel.schedule(timer, 10'000, 0);
  for (now = 7; now < 12'000; now += 7) wheel.advance(now);
  ASSERT_GE(fired_at, 10'000);
  EXPECT_LT(fired_at, 10'000 + kTick + 7);
}

TEST(TimerWheel, CallbackSchedulingForNowFiresOnTheNextTick) {
  constexpr size_t kSlots = 8;
  TimerWheel wheel(kTick, kSlots, 0);
  int64_t now = 0;
  int64_t b_fired_at = -1;
  Timer b([&] { b_fired_at = now; });
  Timer a([&] { wheel.schedule(b, 0, now); });
  wheel.schedule(a, 10, 0);
  step_to(wheel, &now, 200);
  EXPECT_EQ(b_fired_at, 20);  // not 90, a revolution later
}

TEST(TimerWheel, CallbackSchedulingOneRevolutionAheadDoesNotFireInTheSamePass) {
  constexpr size_t kSlots = 8;
  TimerWheel wheel(kTick, kSlots, 0);
  int64_t now = 0;
  int64_t b_fired_at = -1;
  Timer b([&] { b_fired_at = now; });
  Timer a([&] { wheel.schedule(b, kTick * kSlots, now); });  // lands in a's own slot
  wheel.schedule(a, 10, 0);
  step_to(wheel, &now, 200);
  EXPECT_EQ(b_fired_at, 90);
}

TEST(TimerWheel, LongStallFiresEveryOverdueTimerOnce) {
  TimerWheel wheel(kTick, 8, 0);
  std::vector<int> fired(4, 0);
  Timer t0([&] { fired[0]++; });
  Timer t1([&] { fired[1]++; });
  Timer t2([&] { fired[2]++; });
  Timer t3([&] { fired[3]++; });
  wheel.schedule(t0, 50, 0);
  wheel.schedule(t1, 500, 0);
  wheel.schedule(t2, 9'999, 0);
  wheel.schedule(t3, 20'000, 0);  // still in the future after the stall
  wheel.advance(10'000);
  EXPECT_EQ(fired, (std::vector<int>{1, 1, 1, 0}));
  EXPECT_EQ(wheel.size(), 1u);
  wheel.advance(20'000);
  EXPECT_EQ(fired[3], 1);
}

TEST(TimerWheel, DestroyingAPendingTimerUnlinksIt) {
  TimerWheel wheel(kTick, 1024, 0);
  int fired = 0;
  Timer keep([&] { fired++; });
  wheel.schedule(keep, 20, 0);
  {
    Timer gone([&] { fired += 100; });
    wheel.schedule(gone, 20, 0);
    EXPECT_EQ(wheel.size(), 2u);
  }
  EXPECT_EQ(wheel.size(), 1u);
  wheel.advance(100);
  EXPECT_EQ(fired, 1);
}

TEST(TimerWheel, TimersOutliveTheirWheelSafely) {
  Timer a, b;
  {
    TimerWheel wheel(kTick, 16, 0);
    wheel.schedule(a, 10, 0);
    wheel.schedule(b, 1000, 0);
  }
  EXPECT_FALSE(a.pending());
  EXPECT_FALSE(b.pending());
  a.cancel();  // no access to the destroyed wheel
}

TEST(TimerWheel, MsUntilNextTickReportsTheNextBoundaryOnlyWhileArmed) {
  TimerWheel wheel(kTick, 1024, 0);
  EXPECT_EQ(wheel.ms_until_next_tick(3), -1);
  Timer timer;
  wheel.advance(3);
  wheel.schedule(timer, 100, 3);
  EXPECT_EQ(wheel.ms_until_next_tick(3), 7);
  EXPECT_EQ(wheel.ms_until_next_tick(10), 0);
  timer.cancel();
  EXPECT_EQ(wheel.ms_until_next_tick(3), -1);
}

TEST(TimerWheel, HundredThousandTimersScheduleCancelAndFireOnTime) {
  constexpr int kTimers = 100'000;
  TimerWheel wheel(kTick, 1024, 0);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int64_t> delay_of(0, 30'000);  // up to ~3 revolutions
  int64_t now = 0;
  std::vector<int64_t> due(kTimers);
  std::vector<int64_t> fired_at(kTimers, -1);
  std::vector<std::unique_ptr<Timer>> timers;
  timers.reserve(kTimers);
  for (int i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<Timer>([&, i] { fired_at[i] = now; }));
    due[i] = delay_of(rng);
    wheel.schedule(*timers[i], due[i], 0);
  }
  EXPECT_EQ(wheel.size(), static_cast<size_t>(kTimers));
  for (int i = 0; i < kTimers; i += 2) timers[i]->cancel();
  EXPECT_EQ(wheel.size(), static_cast<size_t>(kTimers / 2));
  for (now = 0; now <= 30'000 + kTick; now += 3) wheel.advance(now);
  EXPECT_EQ(wheel.size(), 0u);
  int early = 0, late = 0, wrong = 0;
  for (int i = 0; i < kTimers; ++i) {
    if (i % 2 == 0) {
      wrong += fired_at[i] != -1;
      continue;
    }
    early += fired_at[i] < due[i];
    late += fired_at[i] > due[i] + kTick + 3;  // one tick, plus the 3 ms advance step
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(early, 0);
  EXPECT_EQ(late, 0);
}

}  // namespace
}  // namespace weir::core
