// store/store.h — the asynchronous front of a Backend, so no reactor ever blocks on storage.
//
// A Store owns one store thread running its own core::Reactor. Each call posts a request to
// that thread's mailbox and returns at once. The store thread gathers every request that
// arrived during one loop iteration and runs them as one batch (begin_batch .. commit_batch:
// one SQLite transaction, one Redis pipeline) in an end-of-iteration hook. Each completion
// then goes back to the reactor the request came from (core::Reactor::current() at call time),
// all completions of one batch for one reactor in one post, in request order. A caller that
// is not on a reactor thread (main, tests) gets its completion on the store thread, and so
// does an empty `done` (fire and forget: nothing is posted). A completion whose reactor has
// been destroyed meanwhile (shutdown) is dropped.
//
// When a batch's commit fails, every request of it that had succeeded reports the commit's
// status instead: nothing of a failed batch is acknowledged.
//
// Shutdown: stop() runs everything already queued to completion, then joins the thread;
// requests made after stop() complete with kUnavailable. Stopping it after the reactors lets
// the connections' last requests (sessions saved at close) still run.
//
// Thread-safety: every method may be called from any thread except the store thread itself.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "store/backend.h"

namespace weir::store {

class Store : private core::IterationHook {
 public:
  using Done = std::function<void(Status)>;
  using ReadDone =
      std::function<void(Status, std::vector<StoredMessage> messages, uint64_t first_offset)>;
  using RoomStateDone = std::function<void(Status, RoomState)>;
  using SessionDone = std::function<void(Status, Session)>;
  using IdempotencyDone = std::function<void(Status, IdempotencyResult)>;
  using RateDone = std::function<void(Status, RateDecision)>;

  // Starts the store thread over `backend`.
  explicit Store(std::unique_ptr<Backend> backend);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  ~Store() override;  // stop()

  void append(StoredMessage message, Done done);
  // Several appends as one request (one completion): what a room owner published in one loop
  // iteration. Fails as a whole with the first failing append.
  void append_batch(std::vector<StoredMessage> messages, Done done);
  void read_room(std::string room_id, uint64_t epoch, uint64_t after, size_t limit, ReadDone done);
  void room_state(std::string room_id, RoomStateDone done);
  void put_session(Session session, Done done);
  void get_session(std::string token, int64_t now_ms, SessionDone done);
  void delete_session(std::string token, Done done);
  void remember_message_id(std::string room_id, std::string message_id, uint64_t offset,
                           int64_t window_ms, int64_t now_ms, IdempotencyDone done);
  void rate_take(std::string key, RateLimit limit, double cost, int64_t now_ms, RateDone done);
  void purge(Retention retention, int64_t now_ms, Done done);

  // Runs purge(retention) on the store thread every `interval_ms`, from now on.
  void start_purge(Retention retention, int64_t interval_ms);

  // Completes everything queued, then joins the store thread. Idempotent.
  void stop();

  // The backend's name ("memory", "sqlite", "redis"). Any thread.
  const char* backend_name() const { return backend_name_; }
  // False from a batch with a failed request until a batch without one: the backend's server
  // is down or failing, so durability is degraded. Any thread.
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }
  // Batches run so far. Any thread.
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }

 private:
  struct Request {
    std::shared_ptr<core::ReactorGate> origin;  // null: complete on the store thread
    std::function<Status(Backend&)> execute;    // store thread
    std::function<void(Status)> complete;       // origin thread
    Status status = Status::kOk;
  };

  void submit(std::function<Status(Backend&)> execute, std::function<void(Status)> complete);
  void on_end_of_iteration() override;  // runs the batch
  void run_batch(std::vector<Request>& batch);
  static void deliver(std::vector<Request>& batch);

  std::unique_ptr<Backend> backend_;
  const char* backend_name_;
  core::Reactor loop_;
  std::vector<Request> pending_;  // store thread
  std::atomic<bool> stopped_{false};
  std::atomic<int> submitting_{0};  // callers between the stopped_ check and their post
  std::atomic<uint64_t> batches_{0};
  std::atomic<bool> healthy_{true};
  static constexpr int64_t kProbeIntervalMs = 1000;
  void start_probe();
  core::Timer purge_timer_;  // store thread
  core::Timer probe_timer_;  // store thread
  uint64_t probed_at_batches_ = 0;
  Retention retention_;
  int64_t purge_interval_ms_ = 0;
  std::thread thread_;
};

}  // namespace weir::store
