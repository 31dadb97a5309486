// net/listener.cc — accepting connections.
#include "net/listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/socket_ops.h"

namespace weir::net {
namespace {

// Connections accepted per readiness event before the loop serves others.
constexpr int kAcceptBatch = 64;
constexpr int64_t kExhaustionBackoffMs = 100;

core::Counter g_accepted("weir_connections_accepted_total", "TCP connections accepted");
core::Counter g_emfile("weir_accept_errors_total", "accept(2) failures, by reason",
                       "reason=\"fd_exhausted\"");
core::Counter g_accept_other("weir_accept_errors_total", "accept(2) failures, by reason",
                             "reason=\"other\"");
core::Counter g_rate_paused("weir_accept_rate_limited_total",
                            "Times a listener paused because --accept-rate was spent "
                            "(connections wait in the kernel backlog)");

}  // namespace

Listener::Listener(core::Reactor& reactor, AcceptCallback on_accept)
    : reactor_(reactor), on_accept_(std::move(on_accept)) {
  backoff_timer_.set_callback([this] {
    backing_off_ = false;
    reopen_reserve();
    accept_loop();
  });
}

Listener::~Listener() {
  close();
}

bool Listener::listen(const SocketAddress& addr, bool reuse_port, int backlog, std::string* error) {
  fd_ = create_listen_socket(addr, reuse_port, backlog, error);
  if (fd_ < 0) return false;
  port_ = local_address(fd_).port();
  reopen_reserve();
  if (!reactor_.add(fd_, this, EPOLLIN | EPOLLET)) {
    *error = std::string("epoll_ctl: ") + std::strerror(errno);
    close();
    return false;
  }
  return true;
}

void Listener::close() {
  backoff_timer_.cancel();
  if (fd_ >= 0) {
    reactor_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    reserve_fd_ = -1;
  }
}

void Listener::reopen_reserve() {
  if (reserve_fd_ < 0) reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void Listener::resume_accepting(uint32_t batch) {
  granted_ = batch;
  // A grant from inside our own accept callback just lets the running loop go on.
  if (pending_ && granted_ > 0 && !accepting_) accept_loop();
}

void Listener::on_io(uint32_t) {
  pending_ = true;
  accept_loop();
}

void Listener::accept_loop() {
  if (fd_ < 0 || backing_off_) return;
  accepting_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{accepting_};
  for (int i = 0; i < kAcceptBatch; ++i) {
    if (pull_mode_ && granted_ == 0) return;  // stays pending until the next grant
    if (accept_rate_ && !admitted_by_rate()) return;
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      g_accepted.inc();
      if (accept_rate_) accept_rate_->consume(core::monotonic_ns());
      if (pull_mode_) granted_--;
      on_accept_(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN) {
      pending_ = false;
      return;
    }
    if (errno == EMFILE || errno == ENFILE) {
      if (!handle_exhaustion()) return;
      continue;
    }
    g_accept_other.inc();
    log_warn("accept on port %u failed: %s", port_, std::strerror(errno));
    return;
  }
  // Batch used up with connections left: continue after others had their turn.
  reactor_.post([this] { accept_loop(); });
}

// Asks the shared budget before accept(2); when it is spent the listener waits, the
// connections left in the backlog, until it refills (the backoff timer resumes the loop).
bool Listener::admitted_by_rate() {
  int64_t wait_ns = accept_rate_->ready(core::monotonic_ns());
  if (wait_ns == 0) return true;
  g_rate_paused.inc();
  backing_off_ = true;
  reactor_.schedule(backoff_timer_, std::max<int64_t>(1, (wait_ns + 999'999) / 1'000'000));
  return false;
}

// Returns true when the pending connection was shed and accepting may continue.
bool Listener::handle_exhaustion() {
  g_emfile.inc();
  if (reactor_.now_ms() - last_exhaustion_log_ms_ >= 1000) {  // one line a second, not a flood
    last_exhaustion_log_ms_ = reactor_.now_ms();
    log_warn("accept on port %u: out of file descriptors (%s); shedding connections", port_,
             std::strerror(errno));
  }
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    reserve_fd_ = -1;
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) ::close(fd);
    reopen_reserve();
    if (fd >= 0 && reserve_fd_ >= 0) return true;
  }
  // No reserve to spend: wait instead of spinning on a backlog we cannot drain.
  backing_off_ = true;
  reactor_.schedule(backoff_timer_, kExhaustionBackoffMs);
  return false;
}

}  // namespace weir::net
