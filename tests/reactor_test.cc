// tests/reactor_test.cc — the event loop: cross-thread tasks, timers, end-of-iteration hooks,
// deferred destruction and edge-triggered descriptors.
#include "core/reactor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace weir::core {
namespace {

using namespace std::chrono_literals;

// Runs iterations until `done()` or `limit_ms` of wall time passed.
template <typename Pred>
bool run_until(Reactor& reactor, Pred done, int64_t limit_ms = 5000) {
  int64_t deadline = monotonic_ms() + limit_ms;
  while (!done()) {
    if (monotonic_ms() > deadline) return false;
    reactor.run_once(10);
  }
  return true;
}

// A reactor running run() on its own thread, as in the server.
class LoopThread {
 public:
  LoopThread() : thread_([this] { reactor.run(); }) {}
  ~LoopThread() { stop(); }
  void stop() {
    reactor.stop();
    if (thread_.joinable()) thread_.join();
  }
  Reactor reactor{3};

 private:
  std::thread thread_;
};

TEST(Reactor, StopFromAnotherThreadReturnsRun) {
  Reactor reactor;
  std::atomic<bool> returned{false};
  std::thread loop([&] {
    reactor.run();
    returned = true;
  });
  std::this_thread::sleep_for(20ms);  // let it block in epoll_wait
  EXPECT_FALSE(returned.load());
  reactor.stop();
  loop.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(reactor.stopping());
}

TEST(Reactor, RunBindsTheCallingThreadAsLoopThread) {
  LoopThread loop;
  std::atomic<bool> in_loop{false};
  std::atomic<Reactor*> current{nullptr};
  std::atomic<bool> done{false};
  loop.reactor.post([&] {
    in_loop = loop.reactor.in_loop_thread();
    current = Reactor::current();
    done = true;
  });
  while (!done.load()) std::this_thread::yield();
  EXPECT_TRUE(in_loop.load());
  EXPECT_EQ(current.load(), &loop.reactor);
  EXPECT_FALSE(loop.reactor.in_loop_thread());
  EXPECT_EQ(loop.reactor.index(), 3);
}

TEST(Reactor, TasksPostedBeforeStopStillRun) {
  Reactor reactor;
  std::atomic<int> ran{0};
  std::thread loop([&] { reactor.run(); });
  for (int i = 0; i < 1000; ++i) reactor.post([&] { ran++; });
  reactor.stop();
  loop.join();
  EXPECT_EQ(ran.load(), 1000);
}

TEST(Reactor, FourProducersPostInOrderToARunningLoop) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 100'000;
  std::vector<int> next(kProducers, 0);  // loop-thread state
  int out_of_order = 0;
  int received = 0;
  std::thread::id loop_id;
  bool wrong_thread = false;
  {
    LoopThread loop;
    loop.reactor.post([&] { loop_id = std::this_thread::get_id(); });
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int seq = 0; seq < kPerProducer; ++seq) {
          loop.reactor.post([&, p, seq] {
            if (next[p] != seq) out_of_order++;
            if (std::this_thread::get_id() != loop_id) wrong_thread = true;
            next[p] = seq + 1;
            received++;
          });
        }
      });
    }
    for (auto& t : producers) t.join();
  }  // stop + join: run() drains what is left before returning
  EXPECT_EQ(received, kProducers * kPerProducer);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_FALSE(wrong_thread);
}

TEST(Reactor, PostFromTheLoopThreadDefersWithoutTheMailbox) {
  Reactor reactor;
  reactor.run_once(0);  // binds this thread
  std::vector<char> order;
  reactor.post([&] { order.push_back('L'); });
  EXPECT_TRUE(order.empty());  // deferred, not inline
  std::thread([&] { reactor.post([&] { order.push_back('M'); }); }).join();
  reactor.run_once(0);
  // Mailbox tasks drain before the loop's local queue: the local task, posted first, running
  // second shows it never went through the mailbox.
  EXPECT_EQ(order, (std::vector<char>{'M', 'L'}));
}

TEST(Reactor, PostFromATaskRunsInTheSameIteration) {
  Reactor reactor;
  reactor.run_once(0);
  int ran = 0;
  std::thread([&] { reactor.post([&] { reactor.post([&] { ran++; }); }); }).join();
  reactor.run_once(1000);
  EXPECT_EQ(ran, 1);
}

TEST(Reactor, RunInLoopRunsInlineOnTheLoopThread) {
  Reactor reactor;
  reactor.run_once(0);
  bool ran = false;
  reactor.run_in_loop([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(Reactor, RunInLoopFromAnotherThreadRunsOnTheLoopThread) {
  Reactor reactor;
  reactor.run_once(0);
  std::thread::id ran_on;
  std::thread([&] { reactor.run_in_loop([&] { ran_on = std::this_thread::get_id(); }); }).join();
  EXPECT_EQ(ran_on, std::thread::id());  // not inline on the posting thread
  reactor.run_once(1000);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(Reactor, TimerThroughScheduleFiresNotEarly) {
  Reactor reactor;
  reactor.run_once(0);
  int64_t fired_at = -1;
  Timer timer([&] { fired_at = monotonic_ms(); });
  int64_t scheduled_at = reactor.now_ms();
  reactor.schedule(timer, 30);
  ASSERT_TRUE(run_until(reactor, [&] { return fired_at >= 0; }));
  EXPECT_GE(fired_at - scheduled_at, 30);
  EXPECT_LT(fired_at - scheduled_at, 30 + 200);  // one tick late, plus scheduler slack
}

TEST(Reactor, RunWakesForADueTimerWithoutAnyOtherEvent) {
  Reactor reactor;
  Timer timer([&] { reactor.stop(); });
  std::atomic<bool> returned{false};
  std::thread loop([&] {
    reactor.post([&] { reactor.schedule(timer, 20); });
    reactor.run();
    returned = true;
  });
  for (int i = 0; i < 500 && !returned.load(); ++i) std::this_thread::sleep_for(10ms);
  bool timed_out = !returned.load();
  if (timed_out) reactor.stop();
  loop.join();
  EXPECT_FALSE(timed_out) << "run() slept through a due timer";
}

class CountingHook : public IterationHook {
 public:
  void on_end_of_iteration() override {
    calls++;
    if (then) then();
  }
  int calls = 0;
  std::function<void()> then;
};

TEST(Reactor, EndOfIterationHookRunsOncePerIterationHoweverOftenRequested) {
  Reactor reactor;
  reactor.run_once(0);
  CountingHook hook;
  reactor.post([&] {
    for (int i = 0; i < 5; ++i) reactor.on_end_of_iteration(&hook);
  });
  reactor.run_once(0);
  EXPECT_EQ(hook.calls, 1);
  reactor.run_once(0);
  EXPECT_EQ(hook.calls, 1);  // not requested again
  reactor.on_end_of_iteration(&hook);
  reactor.on_end_of_iteration(&hook);
  reactor.run_once(0);
  EXPECT_EQ(hook.calls, 2);
}

TEST(Reactor, HookRunsAfterTheIterationsTasks) {
  Reactor reactor;
  reactor.run_once(0);
  std::vector<char> order;
  CountingHook hook;
  hook.then = [&] { order.push_back('H'); };
  reactor.post([&] {
    reactor.on_end_of_iteration(&hook);
    order.push_back('1');
  });
  reactor.post([&] { order.push_back('2'); });
  reactor.run_once(0);
  EXPECT_EQ(order, (std::vector<char>{'1', '2', 'H'}));
}

// One pass per iteration: a hook queued by a hook (a read resumed by a flush) runs in the
// next iteration, which must not block in epoll_wait first.
TEST(Reactor, HookRequestedByAnotherHookRunsInTheNextIterationWithoutWaiting) {
  Reactor reactor;
  reactor.run_once(0);
  CountingHook first, second;
  first.then = [&] { reactor.on_end_of_iteration(&second); };
  reactor.on_end_of_iteration(&first);
  reactor.run_once(0);
  EXPECT_EQ(first.calls, 1);
  EXPECT_EQ(second.calls, 0);
  int64_t start = monotonic_ms();
  reactor.run_once(5000);
  EXPECT_LT(monotonic_ms() - start, 1000);
  EXPECT_EQ(first.calls, 1);
  EXPECT_EQ(second.calls, 1);
}

TEST(Reactor, HookRequeuedByItselfRunsOncePerIteration) {
  Reactor reactor;
  reactor.run_once(0);
  CountingHook hook;
  hook.then = [&] { reactor.on_end_of_iteration(&hook); };
  reactor.on_end_of_iteration(&hook);
  for (int i = 1; i <= 3; ++i) {
    reactor.run_once(0);
    EXPECT_EQ(hook.calls, i);
  }
  hook.then = nullptr;
  reactor.run_once(0);
  reactor.run_once(0);
  EXPECT_EQ(hook.calls, 4);
}

TEST(Reactor, CancelledHookDoesNotRun) {
  Reactor reactor;
  reactor.run_once(0);
  CountingHook hook;
  reactor.on_end_of_iteration(&hook);
  reactor.cancel_end_of_iteration(&hook);
  reactor.cancel_end_of_iteration(&hook);  // idempotent
  reactor.run_once(0);
  EXPECT_EQ(hook.calls, 0);
  reactor.on_end_of_iteration(&hook);  // can be requested again after a cancel
  reactor.run_once(0);
  EXPECT_EQ(hook.calls, 1);
}

// A hook that closes another connection cancels its flush and destroys it in the same pass:
// the loop must not touch the destroyed hook (a use-after-free under -fsanitize=address).
TEST(Reactor, HookCancelledAndDestroyedByAnEarlierHookIsNotTouched) {
  Reactor reactor;
  reactor.run_once(0);
  auto victim = std::make_unique<CountingHook>();
  CountingHook killer;
  killer.then = [&] {
    reactor.cancel_end_of_iteration(victim.get());
    victim.reset();
  };
  CountingHook after;
  reactor.on_end_of_iteration(&killer);
  reactor.on_end_of_iteration(victim.get());
  reactor.on_end_of_iteration(&after);
  reactor.run_once(0);
  EXPECT_EQ(killer.calls, 1);
  EXPECT_EQ(victim, nullptr);
  EXPECT_EQ(after.calls, 1);
}

class Tracked : public Retirable {
 public:
  explicit Tracked(std::atomic<int>* destroyed, std::function<void()> on_destroy = nullptr)
      : destroyed_(destroyed), on_destroy_(std::move(on_destroy)) {}
  ~Tracked() override {
    (*destroyed_)++;
    if (on_destroy_) on_destroy_();
  }

 private:
  std::atomic<int>* destroyed_;
  std::function<void()> on_destroy_;
};

TEST(Reactor, RetiredObjectOutlivesTheIterationThatRetiredIt) {
  Reactor reactor;
  reactor.run_once(0);
  std::atomic<int> destroyed{0};
  int destroyed_seen_by_hook = -1;
  CountingHook hook;
  hook.then = [&] { destroyed_seen_by_hook = destroyed.load(); };
  reactor.post([&] {
    reactor.retire(std::make_unique<Tracked>(&destroyed));
    reactor.on_end_of_iteration(&hook);
  });
  reactor.run_once(0);
  EXPECT_EQ(destroyed_seen_by_hook, 0);  // still alive during the iteration's hooks
  EXPECT_EQ(destroyed.load(), 1);        // gone when the iteration ended
}

TEST(Reactor, ObjectRetiredByARetiredObjectsDestructorIsDestroyedToo) {
  Reactor reactor;
  reactor.run_once(0);
  std::atomic<int> destroyed{0};
  reactor.post([&] {
    for (int i = 0; i < 8; ++i)  // several, so the retire list would have to grow mid-clear
      reactor.retire(std::make_unique<Tracked>(
          &destroyed, [&] { reactor.retire(std::make_unique<Tracked>(&destroyed)); }));
  });
  ASSERT_TRUE(run_until(
      reactor, [&] { return destroyed.load() == 16; }, 1000));
}

TEST(Reactor, DestroyingTheReactorDestroysRetiredObjects) {
  std::atomic<int> destroyed{0};
  {
    Reactor reactor;
    reactor.retire(std::make_unique<Tracked>(&destroyed));
  }
  EXPECT_EQ(destroyed.load(), 1);
}

class RecordingHandler : public IoHandler {
 public:
  void on_io(uint32_t events) override {
    calls++;
    last = events;
    seen |= events;
  }
  int calls = 0;
  uint32_t last = 0;
  uint32_t seen = 0;
};

TEST(Reactor, EdgeTriggeredSocketReportsEachArrivalOnce) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  Reactor reactor;
  RecordingHandler handler;
  ASSERT_TRUE(reactor.add(fds[0], &handler));
  reactor.run_once(0);  // the initial writable edge
  EXPECT_TRUE(handler.seen & EPOLLOUT);
  handler.calls = 0;
  handler.seen = 0;

  ASSERT_EQ(::write(fds[1], "ping", 4), 4);
  reactor.run_once(1000);
  EXPECT_EQ(handler.calls, 1);
  EXPECT_TRUE(handler.last & EPOLLIN);

  reactor.run_once(0);  // data left unread: edge-triggered, so no new event
  EXPECT_EQ(handler.calls, 1);

  ASSERT_EQ(::write(fds[1], "pong", 4), 4);  // a new arrival is a new edge
  reactor.run_once(1000);
  EXPECT_EQ(handler.calls, 2);
  EXPECT_TRUE(handler.last & EPOLLIN);

  ::close(fds[1]);
  reactor.run_once(1000);
  EXPECT_EQ(handler.calls, 3);
  EXPECT_TRUE(handler.last & EPOLLRDHUP);

  reactor.remove(fds[0]);
  ::close(fds[0]);
}

TEST(Reactor, RemovedDescriptorReportsNothing) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  Reactor reactor;
  RecordingHandler handler;
  ASSERT_TRUE(reactor.add(fds[0], &handler, EPOLLIN | EPOLLET));
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  reactor.run_once(1000);
  EXPECT_EQ(handler.calls, 1);
  EXPECT_TRUE(handler.last & EPOLLIN);
  reactor.remove(fds[0]);
  ASSERT_EQ(::write(fds[1], "y", 1), 1);
  reactor.run_once(20);
  EXPECT_EQ(handler.calls, 1);
  EXPECT_FALSE(reactor.add(fds[0] + 1000, &handler));  // not a descriptor: reported, not fatal
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Reactor, ModifyChangesTheInterestSet) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  Reactor reactor;
  RecordingHandler handler;
  ASSERT_TRUE(reactor.add(fds[0], &handler, EPOLLET));  // nothing of interest
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  reactor.run_once(20);
  EXPECT_EQ(handler.calls, 0);
  ASSERT_TRUE(reactor.modify(fds[0], &handler, EPOLLIN | EPOLLET));
  reactor.run_once(1000);
  EXPECT_EQ(handler.calls, 1);
  reactor.remove(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Reactor, IterationsAreCounted) {
  Reactor reactor;
  uint64_t before = reactor.iterations();
  reactor.run_once(0);
  reactor.run_once(0);
  EXPECT_EQ(reactor.iterations(), before + 2);
}

}  // namespace
}  // namespace weir::core

namespace weir::core {
namespace {

TEST(ReactorGate, PostsWhileTheReactorLivesAndDropsAfterwards) {
  std::shared_ptr<ReactorGate> gate;
  int ran = 0;
  {
    Reactor reactor;
    gate = reactor.gate();
    EXPECT_TRUE(gate->post([&] { ++ran; }));
    reactor.run_once(0);
    EXPECT_EQ(ran, 1);
  }
  EXPECT_FALSE(gate->post([&] { ++ran; }));  // the reactor is gone: dropped, not a crash
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace weir::core
