// net/listener.h — a listening socket on one reactor: accept4 in batches, pull accepting, and
// descriptor exhaustion (EMFILE/ENFILE) handled without a busy loop.
//
// Pull accepting (Akka's ResumeAccepting): the listener accepts at most the number of
// connections it was granted with resume_accepting(n) and then waits, leaving the rest in the
// kernel's backlog. The server grants what --max-connections leaves, so the limit holds
// without accepting and immediately closing connections.
//
// With an accept rate (--accept-rate, net/accept_rate.h) the listener also waits, connections
// left in the backlog, while the shared budget is spent, and resumes when it refills.
//
// On EMFILE the listener spends its reserve descriptor: close it, accept the pending
// connection, close that (the client sees a clean close instead of a hung connect), reopen
// the reserve. When even that fails it pauses for a backoff period.
//
// Thread-safety: none; a listener belongs to its reactor's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "net/accept_rate.h"
#include "net/address.h"

namespace weir::net {

class Listener : public core::IoHandler {
 public:
  // Called with each accepted non-blocking descriptor (ownership passes to the callee).
  using AcceptCallback = std::function<void(int fd)>;

  Listener(core::Reactor& reactor, AcceptCallback on_accept);
  ~Listener() override;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  bool listen(const SocketAddress& addr, bool reuse_port, int backlog, std::string* error);
  void close();
  uint16_t port() const { return port_; }

  // Push accepting is the default: every connection is accepted as it arrives.
  // Pull accepting: accept at most `batch` more, then wait for the next grant.
  void set_pull_mode(bool pull) { pull_mode_ = pull; }
  void resume_accepting(uint32_t batch);
  bool paused() const { return pull_mode_ && granted_ == 0; }
  // Admits connections only as fast as `rate` allows (shared with other listeners; must
  // outlive this one). Before listen().
  void set_accept_rate(AcceptRate* rate) { accept_rate_ = rate; }

  void on_io(uint32_t events) override;

 private:
  void accept_loop();
  bool handle_exhaustion();
  bool admitted_by_rate();
  void reopen_reserve();

  core::Reactor& reactor_;
  AcceptCallback on_accept_;
  int fd_ = -1;
  int reserve_fd_ = -1;
  uint16_t port_ = 0;
  bool pull_mode_ = false;
  uint32_t granted_ = 0;
  AcceptRate* accept_rate_ = nullptr;
  bool pending_ = false;  // the backlog may hold connections (edge-triggered)
  bool backing_off_ = false;
  bool accepting_ = false;  // inside accept_loop
  int64_t last_exhaustion_log_ms_ = -1000000;
  core::Timer backoff_timer_;
};

}  // namespace weir::net
