// tests/tcp_echo_test.cc — the three echo handlers of net/tcp_echo.h over real loopback
// sockets: 32 MiB echoed byte-exact to a slow reader with a 4 MiB max-buffer, a peer that
// resets while the server holds a full queue, and a peer that half-closes. The bytes held for
// the peer (connection queue plus the handler's store) are sampled on the reactor thread after
// every callback and must never pass max-buffer; no descriptor may leak.
#include "net/tcp_echo.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "core/clock.h"
#include "net/tcp_server.h"

namespace weir::net {
namespace {

using namespace std::chrono_literals;

const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

constexpr size_t kMaxBuffer = 4 << 20;
constexpr size_t kHighWatermark = 1 << 20;

// ---------------------------------------------------------------- the byte pattern

// A pseudo-random stream with a period that is no power of two, so a misplaced or repeated
// chunk never lines up with the right bytes by accident.
class Pattern {
 public:
  static constexpr size_t kPeriod = 65521;
  static constexpr size_t kMaxSpan = 1 << 20;
  Pattern() : bytes_(kPeriod + kMaxSpan, '\0') {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < kPeriod; ++i) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      bytes_[i] = static_cast<char>(x);
    }
    for (size_t i = kPeriod; i < bytes_.size(); ++i) bytes_[i] = bytes_[i - kPeriod];
  }
  // The `len` (<= kMaxSpan) bytes of the stream starting at `offset`.
  const char* at(uint64_t offset) const { return bytes_.data() + offset % kPeriod; }

 private:
  std::string bytes_;
};

const Pattern& pattern() {
  static const Pattern p;
  return p;
}

// ---------------------------------------------------------------- server side

// What the reactor thread saw; read by the test thread.
struct Stats {
  std::atomic<size_t> held{0};      // queue + store after the latest callback
  std::atomic<size_t> max_held{0};  // the most ever held
  std::atomic<int> closed{0};
  std::atomic<int> reason{-1};
};

// Forwards every callback to an echo handler and samples the bytes held for the peer after each.
class Sampler : public ConnectionHandler {
 public:
  Sampler(std::unique_ptr<ConnectionHandler> inner, Stats& stats)
      : inner_(std::move(inner)), stats_(stats) {}
  void on_data(Connection& c, char* data, size_t len) override {
    inner_->on_data(c, data, len);
    sample(c);
  }
  void on_write_ack(Connection& c, uint64_t ack) override {
    inner_->on_write_ack(c, ack);
    sample(c);
  }
  void on_writing_resumed(Connection& c) override {
    inner_->on_writing_resumed(c);
    sample(c);
  }
  void on_high_watermark(Connection& c) override {
    inner_->on_high_watermark(c);
    sample(c);
  }
  void on_low_watermark(Connection& c) override {
    inner_->on_low_watermark(c);
    sample(c);
  }
  void on_peer_closed(Connection& c) override {
    inner_->on_peer_closed(c);
    sample(c);
  }
  void on_closed(Connection& c, CloseReason reason, std::string_view detail) override {
    inner_->on_closed(c, reason, detail);
    stats_.reason = static_cast<int>(reason);
    stats_.closed++;
  }

 private:
  void sample(Connection& c) {
    size_t held = c.queued_bytes();
    if (auto* nack = dynamic_cast<NackSuspendEchoHandler*>(inner_.get())) held += nack->stored();
    stats_.held = held;
    if (held > stats_.max_held) stats_.max_held = held;
  }

  std::unique_ptr<ConnectionHandler> inner_;
  Stats& stats_;
};

struct EchoMode {
  const char* name;
  WriteMode write;
  ReadMode read;
};

class EchoServer {
 public:
  explicit EchoServer(const EchoMode& mode) {
    TcpServerOptions o;
    std::string error;
    EXPECT_TRUE(SocketAddress::parse("127.0.0.1:0", &o.listen, &error)) << error;
    o.connection.write_mode = mode.write;
    o.connection.read_mode = mode.read;
    o.connection.high_watermark = kHighWatermark;
    o.connection.low_watermark = 256 << 10;
    o.connection.max_buffer = kMaxBuffer;
    o.connection.keep_open_on_peer_closed = true;  // as `weir --tcp-echo` runs them
    server_ = std::make_unique<TcpServer>(o, [this](Connection& c) {
      return std::make_unique<Sampler>(make_echo_handler(c), stats);
    });
    EXPECT_TRUE(server_->start(&error)) << error;
  }
  ~EchoServer() { server_->stop(); }
  TcpServer& server() { return *server_; }
  Stats stats;

 private:
  std::unique_ptr<TcpServer> server_;
};

// ---------------------------------------------------------------- client side

int connect_client(uint16_t port, int rcvbuf) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct timeval tv {
    10, 0
  };
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Sends `total` pattern bytes, then half-closes.
void send_pattern(int fd, uint64_t total) {
  uint64_t sent = 0;
  while (sent < total) {
    size_t len = std::min<uint64_t>(total - sent, 256 << 10);
    ssize_t n = ::send(fd, pattern().at(sent), len, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += n;
  }
  EXPECT_EQ(sent, total);
  ::shutdown(fd, SHUT_WR);
}

struct ReadResult {
  uint64_t bytes = 0;
  int64_t first_mismatch = -1;
  int end = -1;  // 0: FIN, else errno
};

// Reads to the end at no more than `bytes_per_second`, comparing with the pattern.
ReadResult read_pattern(int fd, double bytes_per_second) {
  ReadResult r;
  static thread_local char buf[64 << 10];
  int64_t start = core::monotonic_ms();
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      r.end = n == 0 ? 0 : errno;
      return r;
    }
    if (r.first_mismatch < 0 && std::memcmp(buf, pattern().at(r.bytes), n) != 0) {
      size_t i = 0;
      while (buf[i] == pattern().at(r.bytes)[i]) ++i;
      r.first_mismatch = static_cast<int64_t>(r.bytes + i);
    }
    r.bytes += n;
    int64_t due_ms = static_cast<int64_t>(r.bytes * 1000 / bytes_per_second);
    int64_t ahead = due_ms - (core::monotonic_ms() - start);
    if (ahead > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ahead));
  }
}

int open_fds() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (struct dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') count++;
  ::closedir(dir);
  return count - 1;  // the directory's own descriptor
}

// Waits until the server has no connection and the process is back to `fds` descriptors.
bool back_to_idle(EchoServer& s, int fds) {
  for (int i = 0; i < 400; ++i) {
    if (s.server().open_connections() == 0 && open_fds() == fds) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

class TcpEcho : public ::testing::TestWithParam<EchoMode> {};

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpEcho,
    ::testing::Values(EchoMode{"ack", WriteMode::kAck, ReadMode::kPush},
                      EchoMode{"nack_suspend", WriteMode::kNackSuspend, ReadMode::kPush},
                      EchoMode{"pull", WriteMode::kAck, ReadMode::kPull}),
    [](const ::testing::TestParamInfo<EchoMode>& info) { return std::string(info.param.name); });

TEST_P(TcpEcho, Echoes32MiBByteExactToASlowReaderWithinMaxBuffer) {
  constexpr uint64_t kTotal = 32 << 20;
  EchoServer s(GetParam());
  int fds = open_fds();
  int fd = connect_client(s.server().port(), 256 << 10);
  std::thread writer([&] { send_pattern(fd, kTotal); });
  ReadResult r = read_pattern(fd, 48e6);
  writer.join();
  EXPECT_EQ(r.end, 0);
  EXPECT_EQ(r.bytes, kTotal);
  EXPECT_EQ(r.first_mismatch, -1);
  EXPECT_LE(s.stats.max_held.load(), kMaxBuffer);
  if (GetParam().read != ReadMode::kPull) {  // the slow reader made the server hold bytes
    EXPECT_GE(s.stats.max_held.load(), kHighWatermark / 2);
  }
  ::close(fd);
  EXPECT_TRUE(back_to_idle(s, fds));
  EXPECT_EQ(s.stats.closed.load(), 1);
  EXPECT_EQ(s.stats.reason.load(), static_cast<int>(CloseReason::kClosed));
}

TEST_P(TcpEcho, PeerThatResetsWhileTheQueueIsFullLeavesNothingBehind) {
  EchoServer s(GetParam());
  int fds = open_fds();
  int fd = connect_client(s.server().port(), 64 << 10);
  // Garbage the server echoes into a client that never reads, until the server holds as much
  // as the mode lets it (the watermark, or in pull mode one unacknowledged read).
  size_t full = GetParam().read == ReadMode::kPull ? 1 : kHighWatermark;
  std::string garbage(64 << 10, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 131 + 7);
  int64_t deadline = core::monotonic_ms() + 5000;
  while (core::monotonic_ms() < deadline) {
    ssize_t n = ::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
      if (s.stats.held >= full) break;
      std::this_thread::sleep_for(1ms);
    }
  }
  EXPECT_GE(s.stats.held.load(), full) << "the server never filled its queue";
  struct linger lg {
    1, 0
  };
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);  // RST: the peer vanishes mid-write
  EXPECT_TRUE(back_to_idle(s, fds)) << "connection or descriptor left behind";
  EXPECT_EQ(s.stats.closed.load(), 1);
  EXPECT_EQ(s.stats.reason.load(), static_cast<int>(CloseReason::kErrorClosed));
  EXPECT_LE(s.stats.max_held.load(), kMaxBuffer);
}

TEST_P(TcpEcho, HalfClosingPeerGetsEveryByteBackThenFin) {
  constexpr uint64_t kTotal = 3 << 20;
  EchoServer s(GetParam());
  int fds = open_fds();
  int fd = connect_client(s.server().port(), 128 << 10);
  std::thread writer([&] { send_pattern(fd, kTotal); });  // half-closes when done
  std::this_thread::sleep_for(50ms);  // the FIN may reach the server before we read at all
  ReadResult r = read_pattern(fd, 1e9);
  writer.join();
  EXPECT_EQ(r.end, 0);
  EXPECT_EQ(r.bytes, kTotal);
  EXPECT_EQ(r.first_mismatch, -1);
  ::close(fd);
  EXPECT_TRUE(back_to_idle(s, fds));
  EXPECT_EQ(s.stats.reason.load(), static_cast<int>(CloseReason::kClosed));

  // Half-closing and then vanishing without reading: the server's writes fail, and it cleans up.
  fd = connect_client(s.server().port(), 64 << 10);
  EXPECT_GT(::send(fd, pattern().at(0), 512 << 10, MSG_NOSIGNAL | MSG_DONTWAIT), 0);
  ::shutdown(fd, SHUT_WR);
  std::this_thread::sleep_for(20ms);
  ::close(fd);
  EXPECT_TRUE(back_to_idle(s, fds));
  EXPECT_EQ(s.stats.closed.load(), 2);
  EXPECT_LE(s.stats.max_held.load(), kMaxBuffer);
}

}  // namespace
}  // namespace weir::net
