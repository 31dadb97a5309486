// tests/store_thread_test.cc — store::Store with real reactors on real threads: requests of one
// iteration run as one backend batch, completions come back on the origin reactor's thread in
// request order, a failed commit fails its whole batch, and stop() completes what was queued.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/reactor.h"
#include "store/memory_backend.h"
#include "store/store.h"

namespace weir::store {
namespace {

// What the recording backend saw: the appended offsets of each batch.
struct Journal {
  std::mutex mutex;
  std::vector<std::vector<uint64_t>> batches;
  std::promise<void> gate_entered, gate_open;
  Status commit_status = Status::kOk;
};

// A MemoryBackend that records batches, holds the store thread inside an append to room
// "gate" until the test opens it, and can be told to fail its commits.
class RecordingBackend : public MemoryBackend {
 public:
  explicit RecordingBackend(std::shared_ptr<Journal> journal) : journal_(std::move(journal)) {}
  Status begin_batch() override {
    std::lock_guard lock(journal_->mutex);
    journal_->batches.emplace_back();
    return Status::kOk;
  }
  Status commit_batch() override {
    std::lock_guard lock(journal_->mutex);
    return journal_->commit_status;
  }
  Status append(const StoredMessage& message) override {
    if (message.room_id == "gate") {
      journal_->gate_entered.set_value();
      journal_->gate_open.get_future().wait();
    }
    {
      std::lock_guard lock(journal_->mutex);
      journal_->batches.back().push_back(message.offset);
    }
    return MemoryBackend::append(message);
  }

 private:
  std::shared_ptr<Journal> journal_;
};

// A reactor running run() on its own thread, as in the server.
class LoopThread {
 public:
  explicit LoopThread(int index) : reactor(index), thread_([this] { reactor.run(); }) {}
  ~LoopThread() { stop(); }
  void stop() {
    reactor.stop();
    if (thread_.joinable()) thread_.join();
  }
  // Runs `task` on the loop thread and waits for it.
  void run_and_wait(std::function<void()> task) {
    std::promise<void> ran;
    reactor.post([&] {
      task();
      ran.set_value();
    });
    ran.get_future().wait();
  }
  std::thread::id id() const { return thread_.get_id(); }
  core::Reactor reactor;

 private:
  std::thread thread_;
};

StoredMessage message(std::string room, uint64_t offset) {
  return StoredMessage{std::move(room), 1, offset, "m" + std::to_string(offset), core::wall_ms()};
}

bool wait_for(const std::function<bool()>& done, int64_t limit_ms = 5000) {
  int64_t deadline = core::monotonic_ms() + limit_ms;
  while (!done()) {
    if (core::monotonic_ms() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(StoreThread, RequestsOfOneIterationRunAsOneBatchInOrder) {
  // Reactors outlive the Store that completes to them (declared first, destroyed last).
  LoopThread origin(1);
  auto journal = std::make_shared<Journal>();
  Store store(std::make_unique<RecordingBackend>(journal));
  // Hold the store thread inside a first batch while 200 requests pile up in its mailbox.
  store.append(message("gate", 1), [](Status) {});
  journal->gate_entered.get_future().wait();
  std::atomic<int> completed{0};
  origin.run_and_wait([&] {
    for (uint64_t o = 1; o <= 200; ++o)
      store.append(message("room", o), [&](Status s) {
        EXPECT_EQ(s, Status::kOk);
        completed++;
      });
  });
  journal->gate_open.set_value();
  ASSERT_TRUE(wait_for([&] { return completed.load() == 200; }));
  EXPECT_EQ(store.batches(), 2u);
  std::lock_guard lock(journal->mutex);
  ASSERT_EQ(journal->batches.size(), 2u);
  std::vector<uint64_t> expected;
  for (uint64_t o = 1; o <= 200; ++o) expected.push_back(o);
  EXPECT_EQ(journal->batches[1], expected);
}

TEST(StoreThread, CompletionsRunOnTheOriginThreadInRequestOrder) {
  LoopThread a(1), b(2);
  Store store(std::make_unique<MemoryBackend>());
  std::mutex mutex;
  std::vector<int> seen_a, seen_b;
  std::atomic<int> wrong_thread{0}, completed{0};
  auto issue = [&](LoopThread& loop, std::vector<int>& seen, const std::string& room) {
    core::Reactor* self = &loop.reactor;
    for (int i = 0; i < 300; ++i) {
      // Mixed operations: their completions keep the order of the requests.
      auto record = [&, self, i] {
        if (core::Reactor::current() != self || std::this_thread::get_id() != loop.id())
          wrong_thread++;
        std::lock_guard lock(mutex);
        seen.push_back(i);
        completed++;
      };
      if (i % 3 == 0) {
        store.append(message(room, static_cast<uint64_t>(i + 1)), [record](Status) { record(); });
      } else if (i % 3 == 1) {
        store.room_state(room, [record](Status, RoomState) { record(); });
      } else {
        store.rate_take(room, RateLimit{1000, 10}, 1, i,
                        [record](Status, RateDecision) { record(); });
      }
    }
  };
  a.run_and_wait([&] { issue(a, seen_a, "room-a"); });
  b.run_and_wait([&] { issue(b, seen_b, "room-b"); });
  ASSERT_TRUE(wait_for([&] { return completed.load() == 600; }));
  EXPECT_EQ(wrong_thread.load(), 0);
  std::vector<int> expected;
  for (int i = 0; i < 300; ++i) expected.push_back(i);
  std::lock_guard lock(mutex);
  EXPECT_EQ(seen_a, expected);
  EXPECT_EQ(seen_b, expected);
}

TEST(StoreThread, ReadsReturnWhatEarlierRequestsWrote) {
  Store store(std::make_unique<MemoryBackend>());
  EXPECT_STREQ(store.backend_name(), "memory");
  for (uint64_t o = 1; o <= 5; ++o) store.append(message("room", o), [](Status) {});
  std::promise<std::vector<StoredMessage>> read;
  std::promise<RoomState> state;
  std::promise<IdempotencyResult> first, second;
  store.read_room("room", 1, 2, 10, [&](Status s, std::vector<StoredMessage> m, uint64_t f) {
    EXPECT_EQ(s, Status::kOk);
    EXPECT_EQ(f, 1u);
    read.set_value(std::move(m));
  });
  store.room_state("room", [&](Status, RoomState r) { state.set_value(r); });
  store.remember_message_id("room", "id", 3, 1000, 0,
                            [&](Status, IdempotencyResult r) { first.set_value(r); });
  store.remember_message_id("room", "id", 9, 1000, 10,
                            [&](Status, IdempotencyResult r) { second.set_value(r); });
  std::vector<StoredMessage> messages = read.get_future().get();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].offset, 3u);
  EXPECT_EQ(messages[2].payload, "m5");
  EXPECT_EQ(state.get_future().get().last_offset, 5u);
  EXPECT_FALSE(first.get_future().get().duplicate);
  IdempotencyResult dup = second.get_future().get();
  EXPECT_TRUE(dup.duplicate);
  EXPECT_EQ(dup.offset, 3u);
}

TEST(StoreThread, SessionsRoundTripThroughTheStoreThread) {
  Store store(std::make_unique<MemoryBackend>());
  store.put_session(Session{"tok", "alice", {{"room", 1, 4}}, 1000}, [](Status) {});
  std::promise<std::pair<Status, Session>> got, gone;
  store.get_session("tok", 10, [&](Status s, Session v) { got.set_value({s, std::move(v)}); });
  store.delete_session("tok", [](Status) {});
  store.get_session("tok", 10, [&](Status s, Session v) { gone.set_value({s, std::move(v)}); });
  auto [status, session] = got.get_future().get();
  EXPECT_EQ(status, Status::kOk);
  EXPECT_EQ(session.member_id, "alice");
  EXPECT_EQ(gone.get_future().get().first, Status::kNotFound);
}

TEST(StoreThread, FailedCommitFailsEveryRequestOfTheBatch) {
  auto journal = std::make_shared<Journal>();
  journal->commit_status = Status::kError;
  Store store(std::make_unique<RecordingBackend>(journal));
  double errors_before = 0;
  core::find_metric_value("weir_store_errors_total", "", &errors_before);
  std::promise<Status> done;
  store.append(message("room", 1), [&](Status s) { done.set_value(s); });
  EXPECT_EQ(done.get_future().get(), Status::kError);
  double errors_after = 0;
  ASSERT_TRUE(core::find_metric_value("weir_store_errors_total", "", &errors_after));
  EXPECT_GE(errors_after, errors_before + 1);
}

TEST(StoreThread, StopCompletesQueuedRequestsAndRefusesLaterOnes) {
  Store store(std::make_unique<MemoryBackend>());
  std::atomic<int> ok{0};
  for (uint64_t o = 1; o <= 1000; ++o)
    store.append(message("room", o), [&](Status s) { ok += s == Status::kOk; });
  store.stop();
  EXPECT_EQ(ok.load(), 1000);
  Status late = Status::kOk;
  store.append(message("room", 1001), [&](Status s) { late = s; });
  EXPECT_EQ(late, Status::kUnavailable);
  store.stop();  // idempotent
}

TEST(StoreThread, CountsBatchesAndOps) {
  double batches_before = 0, ops_before = 0;
  core::find_metric_value("weir_store_batches_total", "", &batches_before);
  core::find_metric_value("weir_store_ops_total", "", &ops_before);
  {
    Store store(std::make_unique<MemoryBackend>());
    for (uint64_t o = 1; o <= 10; ++o) store.append(message("room", o), [](Status) {});
  }
  double batches = 0, ops = 0;
  ASSERT_TRUE(core::find_metric_value("weir_store_batches_total", "", &batches));
  ASSERT_TRUE(core::find_metric_value("weir_store_ops_total", "", &ops));
  EXPECT_GE(batches, batches_before + 1);
  EXPECT_EQ(ops, ops_before + 10);
}

}  // namespace
}  // namespace weir::store
