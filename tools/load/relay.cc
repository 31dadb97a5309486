// tools/load/relay.cc — relayed connection pairs and their throttled directions.
#include "tools/load/relay.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/clock.h"
#include "net/socket_ops.h"
#include "tools/load/target.h"
#include "tools/load/token_bucket.h"

namespace weir::load {

// Side 0 is the accepted client, side 1 the connection to the target. Direction 0 carries
// client -> target ("up"), direction 1 target -> client ("down").
class RelayWorker::Pair final : public core::Retirable {
 public:
  Pair(RelayWorker& owner, int client_fd, int target_fd, double bandwidth)
      : owner_(owner), dirs_{Direction(bandwidth, 0, 1), Direction(bandwidth, 1, 0)} {
    fd_[0] = client_fd;
    fd_[1] = target_fd;
    for (int s = 0; s < 2; ++s) sides_[s] = Side(this, s);
    for (int d = 0; d < 2; ++d) dirs_[d].timer.set_callback([this, d] { pump(d); });
  }
  ~Pair() override { close_fds(); }

  // Registers both descriptors; false when the reactor refused one.
  bool start() {
    return owner_.reactor_.add(fd_[0], &sides_[0]) && owner_.reactor_.add(fd_[1], &sides_[1]);
  }

  void set_bandwidth(double bandwidth) {
    int64_t now = core::monotonic_ns();
    for (int d = 0; d < 2; ++d) {
      dirs_[d].bucket.set_rate(bandwidth, now);
      dirs_[d].timer.cancel();
      pump(d);
    }
  }

 private:
  struct Side final : core::IoHandler {
    Side() = default;
    Side(Pair* p, int i) : pair(p), index(i) {}
    void on_io(uint32_t events) override { pair->on_io(index, events); }
    Pair* pair = nullptr;
    int index = 0;
  };
  struct Direction {
    Direction(double bandwidth, int f, int t)
        : from(f), to(t), bucket(bandwidth, core::monotonic_ns()) {}
    int from, to;
    TokenBucket bucket;
    std::unique_ptr<char[]> buf = std::make_unique<char[]>(kChunk);
    size_t offset = 0, length = 0;  // bytes read and not yet written
    bool eof = false;               // the source sent FIN
    bool shut = false;              // ... and it was passed on
    core::Timer timer;              // waits for tokens
  };

  void on_io(int side, uint32_t events) {
    if (done_) return;
    if (side == 1 && !connected_) {
      int err = net::socket_error(fd_[1]);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
        owner_.counters_.connect_failures++;
        owner_.errors_->report("relay: connect to " + owner_.target_.to_string() + ": " +
                               std::strerror(err ? err : ECONNREFUSED));
        finish();
        return;
      }
      if (!(events & EPOLLOUT)) return;
      connected_ = true;
      owner_.counters_.connections_opened++;
      owner_.counters_.connections_open++;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_[side] = true;
    if (events & (EPOLLOUT | EPOLLERR)) writable_[side] = true;
    pump(0);
    pump(1);
  }

  // Writes what is held, then reads what the bucket allows, until something would block.
  void pump(int d) {
    Direction& dir = dirs_[d];
    while (!done_ && connected_) {
      if (dir.length > 0) {
        if (!writable_[dir.to]) return;
        ssize_t n = ::send(fd_[dir.to], dir.buf.get() + dir.offset, dir.length, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN) return fail(errno);
          writable_[dir.to] = false;
          return;
        }
        dir.offset += static_cast<size_t>(n);
        dir.length -= static_cast<size_t>(n);
        (d == 0 ? owner_.counters_.bytes_sent : owner_.counters_.bytes_received) +=
            static_cast<uint64_t>(n);
        continue;
      }
      if (dir.eof) {
        if (!dir.shut) {
          dir.shut = true;
          ::shutdown(fd_[dir.to], SHUT_WR);
        }
        if (dirs_[1 - d].shut) finish();
        return;
      }
      if (!readable_[dir.from]) return;
      int64_t now = core::monotonic_ns();
      uint64_t allowed = dir.bucket.available(now);
      if (allowed == 0) return wait_for_tokens(dir, now);
      ssize_t n = ::recv(fd_[dir.from], dir.buf.get(), std::min<uint64_t>(allowed, kChunk), 0);
      if (n > 0) {
        dir.bucket.consume(static_cast<uint64_t>(n));
        dir.offset = 0;
        dir.length = static_cast<size_t>(n);
      } else if (n == 0) {
        dir.eof = true;
      } else if (errno == EAGAIN) {
        readable_[dir.from] = false;
      } else if (errno != EINTR) {
        return fail(errno);
      }
    }
  }

  // Wakes when about 1/100 s of the rate has accrued: the timer wheel's 10 ms tick.
  void wait_for_tokens(Direction& dir, int64_t now) {
    if (dir.timer.pending()) return;
    uint64_t want = std::clamp<uint64_t>(static_cast<uint64_t>(dir.bucket.rate() / 100), 1, kChunk);
    int64_t ns = dir.bucket.wait_ns(want, now);
    owner_.reactor_.schedule(dir.timer, std::max<int64_t>(1, (ns + 999999) / 1000000));
  }

  void fail(int err) {
    if (err != ECONNRESET && err != EPIPE)
      owner_.errors_->report(std::string("relay: connection error: ") + std::strerror(err));
    finish();
  }

  void finish() {
    if (done_) return;
    done_ = true;
    for (Direction& dir : dirs_) dir.timer.cancel();
    if (connected_) owner_.counters_.connections_open--;
    close_fds();
    owner_.finished(this);
  }

  void close_fds() {
    for (int& fd : fd_) {
      if (fd < 0) continue;
      owner_.reactor_.remove(fd);
      ::close(fd);
      fd = -1;
    }
  }

  RelayWorker& owner_;
  int fd_[2] = {-1, -1};
  Side sides_[2];
  Direction dirs_[2];
  bool readable_[2] = {false, false};
  bool writable_[2] = {false, false};
  bool connected_ = false;
  bool done_ = false;
};

RelayWorker::RelayWorker(core::Reactor& reactor, const net::SocketAddress& listen,
                         const net::SocketAddress& target, RelayControl* control, ErrorLog* errors)
    : reactor_(reactor),
      listen_addr_(listen),
      target_(target),
      control_(control),
      errors_(errors),
      listener_(reactor, [this](int fd) { accept(fd); }) {
  control_timer_.set_callback([this] { poll_control(); });
}

RelayWorker::~RelayWorker() {
  control_timer_.cancel();
  pairs_.clear();
}

void RelayWorker::start() {
  bandwidth_ = control_->bandwidth();
  generation_ = control_->generation();
  if (!listener_.listen(listen_addr_, false, 128, &listen_error_)) return;
  port_ = listener_.port();
  reactor_.schedule(control_timer_, kControlPollMs);
}

void RelayWorker::sample(Sample* out) {
  out->counters = counters_;
  out->latency.reset();
}

void RelayWorker::accept(int fd) {
  counters_.connects_started++;
  std::string error;
  int target_fd = dial(target_, nullptr, &error);
  if (target_fd < 0) {
    counters_.connect_failures++;
    errors_->report("relay: " + error);
    ::close(fd);
    return;
  }
  net::set_tcp_nodelay(fd, true);
  net::set_tcp_nodelay(target_fd, true);
  auto pair = std::make_unique<Pair>(*this, fd, target_fd, bandwidth_);
  Pair* p = pair.get();
  pairs_.emplace(p, std::move(pair));
  if (!p->start()) {
    errors_->report(std::string("relay: epoll: ") + std::strerror(errno));
    finished(p);
  }
}

void RelayWorker::poll_control() {
  uint64_t generation = control_->generation();
  if (generation != generation_) {
    generation_ = generation;
    bandwidth_ = control_->bandwidth();
    // A pump may finish its pair (and erase it) while we go: walk a copy. Finished pairs are
    // retired, not deleted, so the pointers stay valid for this iteration.
    std::vector<Pair*> pairs;
    pairs.reserve(pairs_.size());
    for (auto& [p, pair] : pairs_) pairs.push_back(p);
    for (Pair* p : pairs) p->set_bandwidth(bandwidth_);
  }
  reactor_.schedule(control_timer_, kControlPollMs);
}

// Called from inside the pair's own callbacks: retired, not deleted.
void RelayWorker::finished(Pair* pair) {
  auto it = pairs_.find(pair);
  if (it == pairs_.end()) return;
  reactor_.retire(std::move(it->second));
  pairs_.erase(it);
}

}  // namespace weir::load
