// tools/load/connector.cc — pending connects and connection ownership.
#include "tools/load/connector.h"

#include <unistd.h>

#include <cstring>
#include <string>

#include "core/timer_wheel.h"
#include "net/socket_ops.h"
#include "tools/load/target.h"

namespace weir::load {

// One connect in progress: watches the socket until it is writable or fails, or time runs out.
class Connector::Pending final : public core::IoHandler, public core::Retirable {
 public:
  Pending(Connector& owner, int fd, Done done) : owner_(owner), fd_(fd), done_(std::move(done)) {
    timeout_.set_callback([this] { owner_.complete(this, -1, "connect timeout"); });
  }
  ~Pending() override {
    if (fd_ >= 0) {
      owner_.reactor_.remove(fd_);
      ::close(fd_);
    }
  }

  void on_io(uint32_t events) override {
    if (fd_ < 0) return;
    int err = net::socket_error(fd_);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      owner_.complete(this, -1, std::strerror(err ? err : ECONNRESET));
    } else if (events & EPOLLOUT) {
      int fd = fd_;
      owner_.reactor_.remove(fd_);
      fd_ = -1;  // the Connection takes it
      owner_.complete(this, fd, {});
    }
  }

  // Takes the callback out: it runs after the pending entry is gone.
  Done take_done() { return std::move(done_); }
  core::Timer& timeout() { return timeout_; }
  int fd() const { return fd_; }

 private:
  Connector& owner_;
  int fd_;
  Done done_;
  core::Timer timeout_;
};

Connector::Connector(core::Reactor& reactor, const net::ConnectionOptions& options)
    : reactor_(reactor), options_(options) {}

Connector::~Connector() {
  pending_.clear();
  connections_.clear();
}

void Connector::connect(const net::SocketAddress& target, const net::SocketAddress* source,
                        int64_t timeout_ms, Done done, int receive_buffer) {
  std::string error;
  int fd = dial(target, source, &error, receive_buffer);
  if (fd < 0) {
    reactor_.post([done = std::move(done), error] { done(nullptr, error); });
    return;
  }
  auto pending = std::make_unique<Pending>(*this, fd, std::move(done));
  Pending* p = pending.get();
  if (!reactor_.add(fd, p)) {
    int err = errno;
    reactor_.post([done = p->take_done(), err] { done(nullptr, std::strerror(err)); });
    return;  // `pending` closes the descriptor
  }
  reactor_.schedule(p->timeout(), timeout_ms);
  pending_.emplace(p, std::move(pending));
}

// Runs inside the pending connect's own callback, so its object is retired, not deleted.
void Connector::complete(Pending* pending, int fd, std::string_view error) {
  auto it = pending_.find(pending);
  if (it == pending_.end()) return;
  std::unique_ptr<Pending> owned = std::move(it->second);
  pending_.erase(it);
  owned->timeout().cancel();
  Done done = owned->take_done();
  reactor_.retire(std::move(owned));
  if (fd < 0) {
    done(nullptr, error);
    return;
  }
  auto conn = std::make_unique<net::Connection>(reactor_, fd, options_, this);
  net::Connection* c = conn.get();
  connections_.emplace(c->id(), std::move(conn));
  done(c, {});
}

void Connector::on_connection_finished(net::Connection& conn) {
  auto it = connections_.find(conn.id());
  if (it == connections_.end()) return;
  reactor_.retire(std::move(it->second));
  connections_.erase(it);
}

}  // namespace weir::load
