// core/reactor.h — one epoll event loop, owned by one thread (muduo's EventLoop, Redis's ae).
//
// Each iteration: epoll_wait -> dispatch I/O events -> fire due timers -> run mailbox tasks
// -> run end-of-iteration hooks (connections flush their corked output here, so all frames
// queued for a socket during one iteration leave in one writev) -> destroy retired objects.
// Early hooks run before the others, and hooks they queue still run in the same pass: a
// room's batched fanout (early) fills connections' queues that flush (late) in this iteration.
// Hooks queued while the late hooks run wait for the next iteration, which then polls with
// timeout 0.
//
// Descriptors are registered edge-triggered, once, for both directions (see
// docs/architecture.md): suspending and resuming reading or write interest is then pure
// user-space bookkeeping and never costs an epoll_ctl.
//
// Thread-safety: post(), stop() and in_loop_thread() may be called from any thread; every
// other method only from the loop's own thread.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/mailbox.h"
#include "core/timer_wheel.h"

namespace weir::core {

// Receives readiness events for one descriptor. Does not own the descriptor.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void on_io(uint32_t events) = 0;
};

// Something that wants a call at the end of the current loop iteration (after all I/O of
// the iteration was dispatched), e.g. a connection flushing its corked output.
class IterationHook {
 public:
  virtual ~IterationHook() = default;
  virtual void on_end_of_iteration() = 0;

 private:
  friend class Reactor;
  bool hook_queued_ = false;
};

// Base for objects whose destruction must wait until no stack frame of this iteration can
// still refer to them (a connection closed from inside its own callback).
class Retirable {
 public:
  virtual ~Retirable() = default;
};

class Reactor;

// A way to post to a reactor that may be destroyed meanwhile: post() runs the task on the
// reactor if it still exists and drops it otherwise. For services on their own threads (the
// store) whose completions can outlive the reactors that asked for them at shutdown.
class ReactorGate {
 public:
  explicit ReactorGate(Reactor* reactor) : reactor_(reactor) {}
  // False (and the task dropped) once the reactor is gone.
  bool post(std::function<void()> task);
  void close();

 private:
  std::mutex mutex_;
  Reactor* reactor_;
};

class Reactor {
 public:
  using Task = Mailbox::Task;
  static constexpr uint32_t kEdgeEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

  explicit Reactor(int index = 0, int64_t tick_ms = 10);
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;
  ~Reactor();

  // Runs until stop(). Binds the reactor to the calling thread.
  void run();
  // Runs a single iteration waiting at most `timeout_ms` (tests, tools). Loop thread.
  void run_once(int timeout_ms);
  // Any thread: asks the loop to return from run() after the current iteration.
  void stop();
  bool stopping() const { return stop_.load(std::memory_order_acquire); }

  // Loop thread: descriptor registration.
  bool add(int fd, IoHandler* handler, uint32_t events = kEdgeEvents);
  bool modify(int fd, IoHandler* handler, uint32_t events);
  void remove(int fd);

  // Any thread: queues `task` to run on the loop thread (through the mailbox when called from
  // another thread; without syscalls from the loop thread itself).
  void post(Task task);
  // Any thread: runs `task` now when on the loop thread, else posts it.
  void run_in_loop(Task task);

  // Loop thread: calls hook->on_end_of_iteration() once at the end of this iteration; an
  // early hook runs before every late one.
  void on_end_of_iteration(IterationHook* hook, bool early = false);
  void cancel_end_of_iteration(IterationHook* hook);
  // Loop thread: deletes `object` after this iteration.
  void retire(std::unique_ptr<Retirable> object);

  // Loop thread: timers.
  TimerWheel& timers() { return timers_; }
  void schedule(Timer& timer, int64_t delay_ms) { timers_.schedule(timer, delay_ms, now_ms_); }
  // Cached monotonic time of this iteration (one clock read per iteration, not per event).
  int64_t now_ms() const { return now_ms_; }
  void update_time();

  bool in_loop_thread() const {
    return thread_id_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  int index() const { return index_; }
  uint64_t iterations() const { return iterations_; }
  // The reactor running on the calling thread, or nullptr.
  static Reactor* current();
  // This reactor's gate (see ReactorGate); closed by the destructor.
  const std::shared_ptr<ReactorGate>& gate() const { return gate_; }

 private:
  void dispatch(int ready);
  void run_local_tasks();
  void run_hooks();
  static void run_hook_pass(std::vector<IterationHook*>& hooks);
  int poll_timeout(int requested) const;

  int index_;
  std::shared_ptr<ReactorGate> gate_ = std::make_shared<ReactorGate>(this);
  int epoll_fd_ = -1;
  std::atomic<std::thread::id> thread_id_;  // read by post() on any thread
  std::atomic<bool> stop_{false};
  int64_t now_ms_ = 0;
  uint64_t iterations_ = 0;
  TimerWheel timers_;
  Mailbox mailbox_;
  std::vector<Task> local_tasks_;
  std::vector<IterationHook*> early_hooks_;
  std::vector<IterationHook*> hooks_;
  std::vector<std::unique_ptr<Retirable>> retired_;
  std::vector<struct epoll_event> events_;
};

}  // namespace weir::core
