// tests/listener_test.cc — accepting over real loopback sockets: pull accepting and
// --max-connections, descriptor exhaustion (EMFILE) without spinning or wedging, and several
// reactors sharing one port with SO_REUSEPORT.
#include "net/listener.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "net/tcp_echo.h"
#include "net/tcp_server.h"

namespace weir::net {
namespace {

using namespace std::chrono_literals;

const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

// A client socket created now and connected later, so connecting needs no new descriptor.
int client_socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv {
    5, 0
  };
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool connect_to(int fd, uint16_t port) {
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

int connect_client(uint16_t port) {
  int fd = client_socket();
  EXPECT_TRUE(connect_to(fd, port));
  return fd;
}

// Sends `text` and expects it echoed within the receive timeout.
bool echoes(int fd, const std::string& text) {
  if (::send(fd, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size()))
    return false;
  std::string got;
  char buf[256];
  while (got.size() < text.size()) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, n);
  }
  return got == text;
}

bool stays_quiet(int fd, int ms) {
  struct pollfd p {
    fd, POLLIN, 0
  };
  return ::poll(&p, 1, ms) == 0;
}

SocketAddress loopback_any_port() {
  SocketAddress addr;
  std::string error;
  EXPECT_TRUE(SocketAddress::parse("127.0.0.1:0", &addr, &error)) << error;
  return addr;
}

TcpServerOptions echo_options(int threads = 1, size_t max_connections = 0) {
  TcpServerOptions o;
  o.listen = loopback_any_port();
  o.threads = threads;
  o.max_connections = max_connections;
  return o;
}

std::unique_ptr<ConnectionHandler> echo_factory(Connection&) {
  return std::make_unique<AckEchoHandler>();
}

double fd_exhausted_count() {
  double v = 0;
  EXPECT_TRUE(core::find_metric_value("weir_accept_errors_total", "reason=\"fd_exhausted\"", &v));
  return v;
}

// The lowest descriptor number open() would return now.
int lowest_free_fd() {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ::close(fd);
  return fd;
}

// Descriptors of this process pointing at /dev/null.
std::set<int> dev_null_fds() {
  std::set<int> out;
  DIR* dir = ::opendir("/proc/self/fd");
  while (struct dirent* e = ::readdir(dir)) {
    int fd = std::atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == ::dirfd(dir)) continue;
    char target[256];
    ssize_t n =
        ::readlink(("/proc/self/fd/" + std::string(e->d_name)).c_str(), target, sizeof target - 1);
    if (n > 0 && std::string(target, n) == "/dev/null") out.insert(fd);
  }
  ::closedir(dir);
  return out;
}

// Lowers the soft RLIMIT_NOFILE for the whole process until restore() or destruction.
class FdLimit {
 public:
  explicit FdLimit(rlim_t soft) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    struct rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    active_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~FdLimit() { restore(); }
  void restore() {
    if (active_) ::setrlimit(RLIMIT_NOFILE, &saved_);
    active_ = false;
  }
  bool active() const { return active_; }

 private:
  struct rlimit saved_ {};
  bool active_ = false;
};

// How much the loop iterated and the process ran on a CPU over a stretch of wall time.
struct Activity {
  uint64_t iterations;
  int64_t cpu_ms;
  int64_t wall_ms;
};

uint64_t loop_iterations(core::Reactor& reactor) {
  auto done = std::make_shared<std::promise<uint64_t>>();
  auto result = done->get_future();
  reactor.post([&reactor, done] { done->set_value(reactor.iterations()); });
  return result.get();
}

int64_t process_cpu_ms() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

Activity activity_over(core::Reactor& reactor, std::chrono::milliseconds span) {
  uint64_t iterations = loop_iterations(reactor);
  int64_t cpu = process_cpu_ms();
  int64_t wall = core::monotonic_ms();
  std::this_thread::sleep_for(span);
  return {loop_iterations(reactor) - iterations, process_cpu_ms() - cpu,
          core::monotonic_ms() - wall};
}

// Runs what the test runs while descriptors are exhausted once before (as the warm connection
// does for the server's callbacks): UBSan's vptr check needs a pipe the first time it meets a
// type, and reports a false "invalid vptr" without one.
void warm_up(core::Reactor& reactor) {
  activity_over(reactor, 0ms);
}

// ---------------------------------------------------------------- pull accepting

TEST(Listener, PullAcceptingTakesOnlyWhatWasGranted) {
  core::Reactor reactor;
  std::vector<int> accepted;
  Listener listener(reactor, [&](int fd) { accepted.push_back(fd); });
  listener.set_pull_mode(true);
  std::string error;
  ASSERT_TRUE(listener.listen(loopback_any_port(), false, 16, &error)) << error;
  int clients[4];
  for (int i = 0; i < 3; ++i) clients[i] = connect_client(listener.port());
  auto spin = [&] {
    for (int i = 0; i < 5; ++i) reactor.run_once(10);
  };
  spin();
  EXPECT_TRUE(accepted.empty()) << "accepted without a grant";
  EXPECT_TRUE(listener.paused());
  listener.resume_accepting(1);
  spin();
  EXPECT_EQ(accepted.size(), 1u);
  EXPECT_TRUE(listener.paused());
  listener.resume_accepting(5);  // more than is waiting: the rest stays granted
  spin();
  EXPECT_EQ(accepted.size(), 3u);
  EXPECT_FALSE(listener.paused());
  clients[3] = connect_client(listener.port());
  spin();
  EXPECT_EQ(accepted.size(), 4u);
  for (int fd : accepted) ::close(fd);
  for (int fd : clients) ::close(fd);
}

TEST(TcpServer, MaxConnectionsLeavesTheNextClientInTheBacklogUntilOneCloses) {
  TcpServer server(echo_options(1, 2), echo_factory);
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  int a = connect_client(server.port());
  int b = connect_client(server.port());
  EXPECT_TRUE(echoes(a, "a"));
  EXPECT_TRUE(echoes(b, "b"));
  int c = connect_client(server.port());  // the kernel completes the handshake (backlog)
  ASSERT_GE(c, 0);
  ASSERT_EQ(::send(c, "c", 1, MSG_NOSIGNAL), 1);
  EXPECT_TRUE(stays_quiet(c, 200)) << "the third client was served past max-connections";
  EXPECT_EQ(server.open_connections(), 2u);
  ::close(a);
  char byte = 0;
  EXPECT_EQ(::recv(c, &byte, 1, 0), 1) << "the waiting client was not accepted after a close";
  EXPECT_EQ(byte, 'c');
  EXPECT_TRUE(echoes(b, "still served"));
  EXPECT_EQ(server.open_connections(), 2u);
  ::close(b);
  ::close(c);
  server.stop();
}

// ---------------------------------------------------------------- descriptor exhaustion

TEST(Listener, DescriptorExhaustionShedsPendingClientsWithoutSpinning) {
  TcpServer server(echo_options(), echo_factory);
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  int warm = connect_client(server.port());
  ASSERT_TRUE(echoes(warm, "warm"));
  int pending[3];
  for (int& fd : pending) fd = client_socket();
  double errors_before = fd_exhausted_count();
  warm_up(server.reactor(0));

  // Every descriptor number under the limit is taken: accept4 fails with EMFILE.
  FdLimit limit(lowest_free_fd());
  ASSERT_TRUE(limit.active());
  for (int fd : pending) ASSERT_TRUE(connect_to(fd, server.port()));
  Activity a = activity_over(server.reactor(0), 300ms);
  for (int fd : pending) {
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, 0);
    EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << "pending client not shed: " << n;
  }
  EXPECT_TRUE(echoes(warm, "open connections keep working"));
  limit.restore();

  EXPECT_GE(fd_exhausted_count() - errors_before, 3.0);
  EXPECT_LT(a.iterations, 200u) << "the loop spun while out of descriptors";
  EXPECT_LT(a.cpu_ms, a.wall_ms / 3) << "the loop burned CPU while out of descriptors";
  int fresh = connect_client(server.port());
  EXPECT_TRUE(echoes(fresh, "served again"));
  for (int fd : pending) ::close(fd);
  ::close(warm);
  ::close(fresh);
  server.stop();
}

TEST(Listener, DescriptorExhaustionWithoutAReserveBacksOffAndRecovers) {
  std::set<int> before = dev_null_fds();
  TcpServer server(echo_options(), echo_factory);
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  // The listener's reserve descriptor is the /dev/null the server opened.
  std::vector<int> reserves;
  for (int fd : dev_null_fds())
    if (!before.count(fd)) reserves.push_back(fd);
  ASSERT_EQ(reserves.size(), 1u);
  int reserve = reserves[0];
  int warm = connect_client(server.port());  // numbered above the reserve
  ASSERT_TRUE(echoes(warm, "warm"));
  ASSERT_GT(lowest_free_fd(), reserve) << "a hole under the reserve descriptor";
  int client = client_socket();
  double errors_before = fd_exhausted_count();
  warm_up(server.reactor(0));

  // The limit sits at the reserve's number: spending the reserve frees a descriptor the
  // process may not use, so accepting keeps failing and the listener must back off.
  FdLimit limit(reserve);
  ASSERT_TRUE(limit.active());
  ASSERT_TRUE(connect_to(client, server.port()));
  ASSERT_EQ(::send(client, "ping", 4, MSG_NOSIGNAL), 4);
  Activity a = activity_over(server.reactor(0), 400ms);
  EXPECT_TRUE(stays_quiet(client, 0)) << "served or dropped while no descriptor was free";
  double errors = fd_exhausted_count() - errors_before;
  limit.restore();

  EXPECT_GE(errors, 1.0);
  EXPECT_LE(errors, 10.0) << "retried faster than the backoff allows";
  EXPECT_LT(a.iterations, 200u) << "the loop spun while out of descriptors";
  EXPECT_LT(a.cpu_ms, a.wall_ms / 3);
  std::string got(4, '\0');
  EXPECT_EQ(::recv(client, got.data(), 4, MSG_WAITALL), 4) << "not served after recovery";
  EXPECT_EQ(got, "ping");
  ::close(client);
  ::close(warm);
  server.stop();
}

// ---------------------------------------------------------------- SO_REUSEPORT

TEST(Listener, ReusePortLetsListenersOnSeveralReactorsBindOnePort) {
  core::Reactor r1(0), r2(1);
  Listener l1(r1, [](int fd) { ::close(fd); });
  Listener l2(r2, [](int fd) { ::close(fd); });
  std::string error;
  ASSERT_TRUE(l1.listen(loopback_any_port(), true, 16, &error)) << error;
  SocketAddress same = loopback_any_port();
  same.set_port(l1.port());
  EXPECT_TRUE(l2.listen(same, true, 16, &error)) << error;
  EXPECT_EQ(l2.port(), l1.port());
  core::Reactor r3(2);
  Listener exclusive(r3, [](int fd) { ::close(fd); });
  EXPECT_FALSE(exclusive.listen(same, false, 16, &error)) << "bound without SO_REUSEPORT";
}

// Answers every read with the index of the reactor that owns the connection.
class WhichReactor : public ConnectionHandler {
 public:
  void on_data(Connection& conn, char*, size_t) override {
    char index = static_cast<char>('0' + conn.reactor().index());
    conn.write(std::string_view(&index, 1));
  }
  void on_closed(Connection&, CloseReason, std::string_view) override {}
};

TEST(TcpServer, ReactorsSharingAPortAllServeConnections) {
  TcpServer server(echo_options(3), [](Connection&) { return std::make_unique<WhichReactor>(); });
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  ASSERT_EQ(server.threads(), 3);
  std::set<char> serving;
  std::vector<int> clients;
  for (int i = 0; i < 30; ++i) {
    int fd = connect_client(server.port());
    char index = 0;
    ASSERT_EQ(::send(fd, "?", 1, MSG_NOSIGNAL), 1);
    ASSERT_EQ(::recv(fd, &index, 1, 0), 1);
    serving.insert(index);
    clients.push_back(fd);
  }
  // The kernel hashes each connection to one listener: 30 connections reach more than one.
  EXPECT_GE(serving.size(), 2u);
  for (char c : serving) EXPECT_TRUE(c >= '0' && c <= '2');
  EXPECT_EQ(server.open_connections(), 30u);
  for (int fd : clients) ::close(fd);
  server.stop();
}

}  // namespace
}  // namespace weir::net
