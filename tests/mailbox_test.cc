// tests/mailbox_test.cc — the MPSC task queue and its eventfd wake-up, driven through epoll
// the way a Reactor watches it (edge-triggered, counter never read).
#include "core/mailbox.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace weir::core {
namespace {

// Watches a mailbox's eventfd like a reactor does.
class Watcher {
 public:
  explicit Watcher(const Mailbox& mailbox) : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    struct epoll_event ev {};
    ev.events = EPOLLIN | EPOLLET;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, mailbox.event_fd(), &ev);
  }
  ~Watcher() { ::close(epoll_fd_); }
  // True when the mailbox signalled a wake-up since the last call.
  bool woken(int timeout_ms) {
    struct epoll_event ev;
    return ::epoll_wait(epoll_fd_, &ev, 1, timeout_ms) == 1;
  }

 private:
  int epoll_fd_;
};

// Reads (and resets) the eventfd counter: the number of write(2)s since the last read.
uint64_t wake_writes(const Mailbox& mailbox) {
  uint64_t count = 0;
  if (::read(mailbox.event_fd(), &count, sizeof count) != sizeof count) return 0;
  return count;
}

TEST(Mailbox, RunsTasksInPostOrder) {
  Mailbox mailbox;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) mailbox.post([&order, i] { order.push_back(i); });
  EXPECT_EQ(mailbox.drain(SIZE_MAX), 100u);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  EXPECT_EQ(mailbox.drain(SIZE_MAX), 0u);
}

TEST(Mailbox, DrainedMailboxWakesAgainWhenPostedTo) {
  Mailbox mailbox;
  Watcher watcher(mailbox);
  EXPECT_FALSE(watcher.woken(0));
  int ran = 0;
  for (int round = 0; round < 100; ++round) {
    mailbox.post([&] { ran++; });
    ASSERT_TRUE(watcher.woken(0)) << "round " << round;
    EXPECT_TRUE(mailbox.maybe_pending());
    ASSERT_EQ(mailbox.drain(SIZE_MAX), 1u);
    EXPECT_FALSE(mailbox.maybe_pending());
    EXPECT_FALSE(watcher.woken(0)) << "spurious wake after an empty drain, round " << round;
  }
  EXPECT_EQ(ran, 100);
}

TEST(Mailbox, ABurstOfPostsCostsOneWakeWrite) {
  Mailbox mailbox;
  for (int i = 0; i < 100; ++i) mailbox.post([] {});
  EXPECT_EQ(wake_writes(mailbox), 1u);
  mailbox.drain(SIZE_MAX);
  for (int i = 0; i < 100; ++i) mailbox.post([] {});
  EXPECT_EQ(wake_writes(mailbox), 1u);
  mailbox.drain(SIZE_MAX);
}

TEST(Mailbox, DrainStopsAtMaxAndSchedulesAnotherWake) {
  Mailbox mailbox;
  Watcher watcher(mailbox);
  int ran = 0;
  for (int i = 0; i < 10; ++i) mailbox.post([&] { ran++; });
  ASSERT_TRUE(watcher.woken(0));
  EXPECT_EQ(mailbox.drain(3), 3u);
  EXPECT_EQ(ran, 3);
  EXPECT_TRUE(watcher.woken(0));  // the rest must not wait for an unrelated post
  EXPECT_EQ(mailbox.drain(SIZE_MAX), 7u);
  EXPECT_EQ(ran, 10);
}

TEST(Mailbox, TaskPostedByARunningTaskIsNotLost) {
  Mailbox mailbox;
  Watcher watcher(mailbox);
  int second = 0;
  mailbox.post([&] { mailbox.post([&] { second++; }); });
  ASSERT_TRUE(watcher.woken(0));
  size_t ran = mailbox.drain(SIZE_MAX);
  if (ran == 1) {  // not picked up by the same drain: a wake must be pending
    EXPECT_TRUE(watcher.woken(0));
    EXPECT_EQ(mailbox.drain(SIZE_MAX), 1u);
  }
  EXPECT_EQ(second, 1);
}

TEST(Mailbox, DestructorDropsTasksThatNeverRan) {
  auto token = std::make_shared<int>(0);
  {
    Mailbox mailbox;
    for (int i = 0; i < 10; ++i) mailbox.post([token] { (*token)++; });
    EXPECT_EQ(token.use_count(), 11);
  }
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(*token, 0);
}

// Four producers post 100k numbered tasks each while the consumer drains on epoll wake-ups.
// Each producer's tasks must arrive in order, none lost, and no wake-up may be missed (a
// missed one shows as an epoll_wait that times out while tasks are outstanding).
TEST(Mailbox, FourProducersKeepPerProducerOrderAndLoseNothing) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 100'000;
  Mailbox mailbox;
  Watcher watcher(mailbox);
  std::vector<int> next(kProducers, 0);  // consumer-thread state
  int out_of_order = 0;
  int received = 0;
  std::atomic<bool> go{false};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      for (int seq = 0; seq < kPerProducer; ++seq) {
        mailbox.post([&, p, seq] {
          if (next[p] != seq) out_of_order++;
          next[p] = seq + 1;
          received++;
        });
      }
    });
  }
  go = true;
  int stalls = 0;
  while (received < kProducers * kPerProducer && stalls < 3) {
    if (!watcher.woken(2000)) {
      stalls++;
      continue;
    }
    mailbox.drain(1024);
  }
  for (auto& t : producers) t.join();
  mailbox.drain(SIZE_MAX);
  EXPECT_EQ(stalls, 0) << "a wake-up was lost";
  EXPECT_EQ(received, kProducers * kPerProducer);
  EXPECT_EQ(out_of_order, 0);
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kPerProducer);
}

}  // namespace
}  // namespace weir::core
