// core/mailbox.h — a multi-producer single-consumer task queue that wakes a reactor through
// an eventfd: the only way one reactor thread hands work to another.
//
// Producers push with one atomic exchange (Dmitry Vyukov's intrusive MPSC queue): no lock,
// no CAS loop. The eventfd is written only when the consumer is not already due to wake
// (`wake_pending_`), so a burst of posts costs one write(2).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>

namespace weir::core {

class Mailbox {
 public:
  using Task = std::function<void()>;

  Mailbox();
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;
  ~Mailbox();  // drops tasks never run

  // The eventfd to watch for readability (edge-triggered; the counter is never read back).
  int event_fd() const { return event_fd_; }

  // Thread-safe: any thread may post.
  void post(Task task);

  // Consumer thread only: runs up to `max` tasks in FIFO order, returns how many ran.
  // Clears the wake flag first, so a post racing with the drain wakes the consumer again.
  size_t drain(size_t max);
  // Consumer thread only: true when a task may be waiting.
  bool maybe_pending() const;

 private:
  struct Node {
    std::atomic<Node*> next{nullptr};
    Task task;
  };
  void push(Node* node);
  Node* pop();
  void wake();

  alignas(64) std::atomic<Node*> head_;  // producers swap themselves in here
  alignas(64) Node* tail_;               // consumer's end
  Node stub_;
  std::atomic<bool> wake_pending_{false};
  int event_fd_ = -1;
};

}  // namespace weir::core
