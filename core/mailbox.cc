// core/mailbox.cc — Vyukov intrusive MPSC queue + eventfd wake-up.
#include "core/mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace weir::core {

Mailbox::Mailbox() : head_(&stub_), tail_(&stub_) {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) {
    std::perror("eventfd");
    std::abort();
  }
}

Mailbox::~Mailbox() {
  while (Node* node = pop()) delete node;
  ::close(event_fd_);
}

void Mailbox::push(Node* node) {
  node->next.store(nullptr, std::memory_order_relaxed);
  Node* prev = head_.exchange(node, std::memory_order_acq_rel);
  prev->next.store(node, std::memory_order_release);
}

// Returns the oldest node, or nullptr when empty or when a producer is between its exchange
// and its link (the task then shows up on the next drain: the producer's wake guarantees one).
Mailbox::Node* Mailbox::pop() {
  Node* tail = tail_;
  Node* next = tail->next.load(std::memory_order_acquire);
  if (tail == &stub_) {
    if (!next) return nullptr;
    tail_ = next;
    tail = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (next) {
    tail_ = next;
    return tail;
  }
  if (tail != head_.load(std::memory_order_acquire)) return nullptr;
  push(&stub_);
  next = tail->next.load(std::memory_order_acquire);
  if (next) {
    tail_ = next;
    return tail;
  }
  return nullptr;
}

void Mailbox::wake() {
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  while (::write(event_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void Mailbox::post(Task task) {
  Node* node = new Node;
  node->task = std::move(task);
  push(node);
  wake();
}

size_t Mailbox::drain(size_t max) {
  // An exchange, not a store: when a producer skipped its eventfd write because the flag was
  // still set, this read of its write synchronizes with it, so the pops below see its task.
  wake_pending_.exchange(false, std::memory_order_acq_rel);
  size_t ran = 0;
  while (ran < max) {
    Node* node = pop();
    if (!node) break;
    node->task();
    delete node;
    ran++;
  }
  // A producer caught mid-push or a cap reached: make sure we come back.
  if (ran == max || tail_->next.load(std::memory_order_acquire) != nullptr ||
      head_.load(std::memory_order_acquire) != tail_)
    wake();
  return ran;
}

bool Mailbox::maybe_pending() const {
  return wake_pending_.load(std::memory_order_acquire);
}

}  // namespace weir::core
