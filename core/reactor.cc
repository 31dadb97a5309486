// core/reactor.cc — the epoll loop.
#include "core/reactor.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

namespace weir::core {
namespace {

thread_local Reactor* t_current = nullptr;

// Marks the mailbox's eventfd in epoll_event.data.ptr; real handlers are IoHandler objects.
IoHandler* const kMailboxTag = nullptr;

// Mailbox tasks run per iteration before I/O gets its turn again: cross-thread traffic cannot
// starve sockets, and sockets cannot starve it (the rest waits one iteration).
constexpr size_t kMailboxBatch = 4096;

// Destroys retired objects in rounds: a destructor may retire more objects, and the vector
// must not grow while it is being cleared.
void destroy_retired(std::vector<std::unique_ptr<Retirable>>& retired) {
  while (!retired.empty()) {
    std::vector<std::unique_ptr<Retirable>> doomed;
    doomed.swap(retired);
  }
}

}  // namespace

Reactor::Reactor(int index, int64_t tick_ms)
    : index_(index), now_ms_(monotonic_ms()), timers_(tick_ms, 1024, now_ms_), events_(256) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    std::perror("epoll_create1");
    std::abort();
  }
  struct epoll_event ev {};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.ptr = kMailboxTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, mailbox_.event_fd(), &ev) < 0) {
    std::perror("epoll_ctl(eventfd)");
    std::abort();
  }
  thread_id_ = std::this_thread::get_id();
}

bool ReactorGate::post(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  if (!reactor_) return false;
  reactor_->post(std::move(task));
  return true;
}

void ReactorGate::close() {
  std::lock_guard lock(mutex_);
  reactor_ = nullptr;
}

Reactor::~Reactor() {
  gate_->close();
  destroy_retired(retired_);
  ::close(epoll_fd_);
  if (t_current == this) t_current = nullptr;
}

Reactor* Reactor::current() {
  return t_current;
}

void Reactor::update_time() {
  now_ms_ = monotonic_ms();
}

void Reactor::run() {
  thread_id_ = std::this_thread::get_id();
  t_current = this;
  set_metrics_shard(index_);
  while (!stop_.load(std::memory_order_acquire)) run_once(-1);
  // Tasks posted before stop() still run: they may hold resources to release.
  mailbox_.drain(SIZE_MAX);
  run_local_tasks();
  while (!hooks_.empty() || !early_hooks_.empty()) run_hooks();
  destroy_retired(retired_);
}

void Reactor::run_once(int timeout_ms) {
  if (t_current == nullptr) t_current = this;
  int ready = ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()),
                           poll_timeout(timeout_ms));
  if (ready < 0 && errno != EINTR) {
    log_error("epoll_wait failed: errno %d", errno);
    ready = 0;
  }
  update_time();
  iterations_++;
  dispatch(std::max(ready, 0));
  timers_.advance(now_ms_);
  mailbox_.drain(kMailboxBatch);
  run_local_tasks();
  run_hooks();
  destroy_retired(retired_);
  if (ready == static_cast<int>(events_.size())) events_.resize(events_.size() * 2);
}

int Reactor::poll_timeout(int requested) const {
  if (!local_tasks_.empty() || !hooks_.empty() || !early_hooks_.empty() || !retired_.empty())
    return 0;
  int64_t timer_wait = timers_.ms_until_next_tick(monotonic_ms());
  if (timer_wait < 0) return requested;
  if (requested < 0) return static_cast<int>(timer_wait);
  return static_cast<int>(std::min<int64_t>(requested, timer_wait));
}

void Reactor::dispatch(int ready) {
  for (int i = 0; i < ready; ++i) {
    auto* handler = static_cast<IoHandler*>(events_[i].data.ptr);
    if (handler == kMailboxTag) continue;  // drained after timers, every iteration
    handler->on_io(events_[i].events);
  }
}

void Reactor::run_local_tasks() {
  // Tasks may post more tasks; those run in the next round, not in this loop.
  for (int round = 0; round < 16 && !local_tasks_.empty(); ++round) {
    std::vector<Task> tasks;
    tasks.swap(local_tasks_);
    for (Task& task : tasks) task();
  }
}

void Reactor::run_hooks() {
  run_hook_pass(early_hooks_);
  run_hook_pass(hooks_);
}

void Reactor::run_hook_pass(std::vector<IterationHook*>& hooks) {
  // One pass: hooks queued while these run (a read resumed by a flush) wait for the next
  // iteration, which then polls without blocking. A busy connection cannot starve the loop.
  // The list is walked in place, not swapped out, so a hook cancelled by an earlier hook of
  // this pass (and maybe destroyed right after: a connection closing another) is seen as the
  // null its cancel left, never dereferenced.
  size_t queued = hooks.size();
  for (size_t i = 0; i < queued; ++i) {
    IterationHook* hook = hooks[i];
    if (!hook) continue;  // cancelled
    hooks[i] = nullptr;   // a cancel from here on must not match this ran entry
    hook->hook_queued_ = false;
    hook->on_end_of_iteration();
  }
  hooks.erase(hooks.begin(), hooks.begin() + static_cast<std::ptrdiff_t>(queued));
}

bool Reactor::add(int fd, IoHandler* handler, uint32_t events) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = handler;
  return ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Reactor::modify(int fd, IoHandler* handler, uint32_t events) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.ptr = handler;
  return ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void Reactor::remove(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Reactor::post(Task task) {
  if (in_loop_thread() && t_current == this) {
    local_tasks_.push_back(std::move(task));
    return;
  }
  mailbox_.post(std::move(task));
}

void Reactor::run_in_loop(Task task) {
  if (in_loop_thread() && t_current == this) {
    task();
    return;
  }
  mailbox_.post(std::move(task));
}

void Reactor::stop() {
  stop_.store(true, std::memory_order_release);
  mailbox_.post([] {});  // wakes epoll_wait
}

void Reactor::on_end_of_iteration(IterationHook* hook, bool early) {
  if (hook->hook_queued_) return;
  hook->hook_queued_ = true;
  (early ? early_hooks_ : hooks_).push_back(hook);
}

void Reactor::cancel_end_of_iteration(IterationHook* hook) {
  if (!hook->hook_queued_) return;
  hook->hook_queued_ = false;
  std::replace(hooks_.begin(), hooks_.end(), hook, static_cast<IterationHook*>(nullptr));
  std::replace(early_hooks_.begin(), early_hooks_.end(), hook,
               static_cast<IterationHook*>(nullptr));
}

void Reactor::retire(std::unique_ptr<Retirable> object) {
  retired_.push_back(std::move(object));
}

}  // namespace weir::core
