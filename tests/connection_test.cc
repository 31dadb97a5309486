// tests/connection_test.cc — net::Connection over real loopback sockets: the write models
// (ACK, NACK, NACK-suspend), push and pull reading, watermarks and max-buffer, and the close
// modes as the peer sees them. The server side is a one-thread TcpServer whose handler records
// every callback; the client side is a plain blocking socket on the test thread.
#include "net/connection.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/tcp_server.h"

namespace weir::net {
namespace {

using namespace std::chrono_literals;

// Writing to a reset socket must fail with EPIPE, not kill the test (weir's main does the same).
const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

constexpr int kSmallBuffer = 32 * 1024;  // socket buffers small enough to fill quickly

std::string pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed + i / 251) % 26);
  return s;
}

// ---------------------------------------------------------------- client side

int connect_client(uint16_t port, int rcvbuf = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct timeval tv {
    5, 0
  };  // a hang becomes a failed recv, not a stuck test
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(n);
  }
  return true;
}

bool recv_exactly(int fd, size_t n, std::string* out) {
  out->clear();
  char buf[65536];
  while (out->size() < n) {
    ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out->size()), 0);
    if (got <= 0) return false;
    out->append(buf, got);
  }
  return true;
}

// Reads until the stream ends: 0 for a FIN, else the errno (ECONNRESET for a reset).
int recv_to_end(int fd, std::string* out) {
  char buf[65536];
  for (;;) {
    ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got > 0) {
      out->append(buf, got);
      continue;
    }
    return got == 0 ? 0 : errno;
  }
}

// True when no byte (and no FIN) arrives within `ms`.
bool stays_quiet(int fd, int ms) {
  struct pollfd p {
    fd, POLLIN, 0
  };
  return ::poll(&p, 1, ms) == 0;
}

void reset_and_close(int fd) {
  struct linger lg {
    1, 0
  };
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

// ---------------------------------------------------------------- server side

// What the handler saw, shared with the test thread under `mu`.
struct Record {
  bool accepted = false;
  std::string data;
  int data_calls = 0;
  std::vector<std::pair<uint64_t, uint64_t>> acks;  // token, bytes_written() at the ack
  int resumed = 0;
  size_t queued_at_resumed = SIZE_MAX;
  int high = 0;
  int low = 0;
  int peer_closed = 0;
  int closed = 0;
  CloseReason reason = CloseReason::kClosed;
  uint64_t written_at_close = 0;
  bool closed_inside_call = false;  // on_closed ran inside a call the test made
  bool event_after_close = false;
};

// Optional behaviour for the handler, fixed before the server starts (loop thread only).
struct Hooks {
  std::function<void(Connection&, std::string_view)> on_data;
  std::function<void(Connection&)> on_accept;
};

class ProbeServer {
 public:
  explicit ProbeServer(ConnectionOptions options, Hooks hooks = {}, int server_sndbuf = 0)
      : hooks_(std::move(hooks)), sndbuf_(server_sndbuf) {
    TcpServerOptions o;
    std::string error;
    EXPECT_TRUE(SocketAddress::parse("127.0.0.1:0", &o.listen, &error)) << error;
    o.connection = options;
    server_ = std::make_unique<TcpServer>(o, [this](Connection& c) { return accept(c); });
    EXPECT_TRUE(server_->start(&error)) << error;
  }
  ~ProbeServer() { server_->stop(); }

  // Connects a client and waits until the server side has its handler.
  int connect(int rcvbuf = 0) {
    int fd = connect_client(server_->port(), rcvbuf);
    EXPECT_GE(fd, 0);
    EXPECT_TRUE(wait([](const Record& r) { return r.accepted; }));
    return fd;
  }

  // Runs fn(conn) on the reactor thread and waits for it; false when the connection is gone.
  bool on_loop(std::function<void(Connection&)> fn) {
    auto done = std::make_shared<std::promise<bool>>();
    std::future<bool> result = done->get_future();
    server_->reactor(0).post([this, fn = std::move(fn), done] {
      Connection* conn = conn_;
      if (conn) {
        in_call_ = true;
        fn(*conn);
        in_call_ = false;
      }
      done->set_value(conn != nullptr);
    });
    if (result.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "reactor thread did not run the task";
      std::abort();
    }
    return result.get();
  }
  size_t queued() {
    size_t q = 0;
    on_loop([&](Connection& c) { q = c.queued_bytes(); });
    return q;
  }

  template <typename Pred>
  bool wait(Pred pred, std::chrono::milliseconds limit = 5s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return pred(record_); });
  }
  Record snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return record_;
  }
  TcpServer& server() { return *server_; }

 private:
  class Probe;
  std::unique_ptr<ConnectionHandler> accept(Connection& conn);
  template <typename F>
  void note(F change) {
    std::lock_guard<std::mutex> lock(mu_);
    if (record_.closed > 0) record_.event_after_close = true;
    change(record_);
    cv_.notify_all();
  }

  Hooks hooks_;
  int sndbuf_;
  std::mutex mu_;
  std::condition_variable cv_;
  Record record_;
  Connection* conn_ = nullptr;  // loop thread only
  bool in_call_ = false;        // loop thread only
  std::unique_ptr<TcpServer> server_;
};

class ProbeServer::Probe : public ConnectionHandler {
 public:
  explicit Probe(ProbeServer& s) : s_(s) {}
  void on_data(Connection& c, char* data, size_t len) override {
    s_.note([&](Record& r) {
      r.data.append(data, len);
      r.data_calls++;
    });
    if (s_.hooks_.on_data) s_.hooks_.on_data(c, std::string_view(data, len));
  }
  void on_write_ack(Connection& c, uint64_t ack) override {
    s_.note([&](Record& r) { r.acks.emplace_back(ack, c.bytes_written()); });
  }
  void on_writing_resumed(Connection& c) override {
    s_.note([&](Record& r) {
      r.resumed++;
      r.queued_at_resumed = c.queued_bytes();
    });
  }
  void on_high_watermark(Connection&) override {
    s_.note([](Record& r) { r.high++; });
  }
  void on_low_watermark(Connection&) override {
    s_.note([](Record& r) { r.low++; });
  }
  void on_peer_closed(Connection&) override {
    s_.note([](Record& r) { r.peer_closed++; });
  }
  void on_closed(Connection& c, CloseReason reason, std::string_view) override {
    bool inside = s_.in_call_;
    s_.conn_ = nullptr;
    std::lock_guard<std::mutex> lock(s_.mu_);
    s_.record_.closed++;
    s_.record_.reason = reason;
    s_.record_.written_at_close = c.bytes_written();
    s_.record_.closed_inside_call |= inside;
    s_.cv_.notify_all();
  }

 private:
  ProbeServer& s_;
};

std::unique_ptr<ConnectionHandler> ProbeServer::accept(Connection& conn) {
  if (sndbuf_ > 0) ::setsockopt(conn.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf_, sizeof sndbuf_);
  conn_ = &conn;
  if (hooks_.on_accept) hooks_.on_accept(conn);
  note([](Record& r) { r.accepted = true; });
  return std::make_unique<Probe>(*this);
}

ConnectionOptions with_modes(WriteMode write, ReadMode read = ReadMode::kPush) {
  ConnectionOptions o;
  o.write_mode = write;
  o.read_mode = read;
  return o;
}

// ---------------------------------------------------------------- ACK writes

TEST(Connection, AckModeDeliversTokensInOrderOnlyAfterTheBytesReachedTheKernel) {
  ProbeServer s(with_modes(WriteMode::kAck), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string small = pattern(1000, 1), big = pattern(2 << 20, 2), last = pattern(1000, 3);
  bool all_accepted = s.on_loop([&](Connection& c) {
    EXPECT_EQ(c.write(small, 1), WriteResult::kAccepted);
    EXPECT_EQ(c.write(big, 2), WriteResult::kAccepted);
    EXPECT_EQ(c.write(last, 3), WriteResult::kAccepted);
  });
  ASSERT_TRUE(all_accepted);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.acks.size() == 1; }));
  std::this_thread::sleep_for(100ms);  // the client reads nothing: 2 MiB cannot be written
  EXPECT_EQ(s.snapshot().acks.size(), 1u);

  std::string got;
  ASSERT_TRUE(recv_exactly(fd, small.size() + big.size() + last.size(), &got));
  EXPECT_TRUE(got == small + big + last);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.acks.size() == 3; }));
  Record r = s.snapshot();
  uint64_t ends[] = {small.size(), small.size() + big.size(), got.size()};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.acks[i].first, static_cast<uint64_t>(i + 1));
    EXPECT_GE(r.acks[i].second, ends[i]) << "ack " << i + 1 << " before its bytes were written";
  }
  ::close(fd);
}

TEST(Connection, AckModeAcksEachPartOfACompoundWriteInOrder) {
  ProbeServer s(with_modes(WriteMode::kAck), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string head = "head:", body = pattern(300 << 10, 4), tail = pattern(700, 5);
  s.on_loop([&](Connection& c) {
    core::SharedBuffer shared = core::SharedBuffer::copy_of(body);
    WritePart parts[] = {WritePart::copy(head, 11), WritePart::share(shared, 12),
                         WritePart::copy(tail), WritePart::copy("!", 13)};
    EXPECT_EQ(c.write(parts), WriteResult::kAccepted);
    EXPECT_EQ(c.write(shared, 10, 20, 14), WriteResult::kAccepted);
  });
  std::string expected = head + body + tail + "!" + body.substr(10, 20);
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, expected.size(), &got));
  EXPECT_TRUE(got == expected);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.acks.size() == 4; }));
  Record r = s.snapshot();
  uint64_t tokens[] = {11, 12, 13, 14};
  uint64_t ends[] = {head.size(), head.size() + body.size(), expected.size() - 20, expected.size()};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(r.acks[i].first, tokens[i]);
    EXPECT_GE(r.acks[i].second, ends[i]);
  }
  ::close(fd);
}

// A temporary file (unlinked at once) holding `content`.
int temp_file_with(const std::string& content) {
  char path[] = "/tmp/weir-conn-test-XXXXXX";
  int fd = ::mkstemp(path);
  ::unlink(path);
  EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  return fd;
}

TEST(Connection, FileRangesAreSentInOrderWithBytesAndAcked) {
  std::string file = pattern(1536 << 10, 6);
  int file_fd = temp_file_with(file);
  ProbeServer s(with_modes(WriteMode::kAck), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  s.on_loop([&](Connection& c) {
    core::SharedBuffer shared = core::SharedBuffer::copy_of("<shared>");
    WritePart parts[] = {WritePart::copy("<head>"), WritePart::file(file_fd, 1000, 1 << 20, 21),
                         WritePart::copy("<mid>", 22), WritePart::file(file_fd, 0, 100, 23),
                         WritePart::share(shared, 24)};
    EXPECT_EQ(c.write(parts), WriteResult::kAccepted);
    EXPECT_EQ(c.write_file(file_fd, 5, 10, 25), WriteResult::kAccepted);
    EXPECT_EQ(c.write("<end>", 26), WriteResult::kAccepted);
  });
  std::string expected = "<head>" + file.substr(1000, 1 << 20) + "<mid>" + file.substr(0, 100) +
                         "<shared>" + file.substr(5, 10) + "<end>";
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, expected.size(), &got));
  EXPECT_TRUE(got == expected) << "sendfile ranges out of order with the byte parts";
  ASSERT_TRUE(s.wait([](const Record& r) { return r.acks.size() == 6; }));
  Record r = s.snapshot();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(r.acks[i].first, static_cast<uint64_t>(21 + i));
  EXPECT_GE(r.acks[0].second, 6u + (1 << 20));
  EXPECT_GE(r.acks[5].second, expected.size());
  EXPECT_EQ(s.queued(), 0u);
  ::close(fd);
  ::close(file_fd);
}

// More slices than one writev takes (64 iovecs) ahead of a file range: a writev that took all
// it was offered is not a short write, and waiting for EPOLLOUT after it would stall forever.
TEST(Connection, ByteQueuesLongerThanOneWritevAheadOfAFileKeepFlowing) {
  std::string file = pattern(1000, 16);
  int file_fd = temp_file_with(file);
  ProbeServer s(with_modes(WriteMode::kAck));
  int fd = s.connect();
  std::string expected;
  s.on_loop([&](Connection& c) {
    for (int i = 0; i < 300; ++i) {
      core::SharedBuffer piece = core::SharedBuffer::copy_of(pattern(600, i));
      expected += piece.view();
      c.write(piece, 0, piece.size());  // by reference: one slice each
    }
    c.write_file(file_fd, 0, file.size());
  });
  expected += file;
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, expected.size(), &got)) << "stalled after " << got.size();
  EXPECT_TRUE(got == expected);
  ::close(fd);
  ::close(file_fd);
}

// ---------------------------------------------------------------- NACK writes

TEST(Connection, NackModeRefusesWhileAWriteIsPendingThenAcceptsAgain) {
  ProbeServer s(with_modes(WriteMode::kNack), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string big = pattern(1 << 20, 7);
  s.on_loop([&](Connection& c) {
    EXPECT_EQ(c.write(big), WriteResult::kAccepted);
    size_t pending = c.queued_bytes();
    EXPECT_GT(pending, 0u) << "1 MiB should not fit the small socket buffers";
    EXPECT_EQ(c.write("refused"), WriteResult::kRefused);
    EXPECT_EQ(c.queued_bytes(), pending) << "a refused write must not be queued";
  });
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, big.size(), &got));
  EXPECT_TRUE(got == big);
  for (int i = 0; i < 100 && s.queued() > 0; ++i) std::this_thread::sleep_for(5ms);
  s.on_loop([&](Connection& c) { EXPECT_EQ(c.write("accepted"), WriteResult::kAccepted); });
  ASSERT_TRUE(recv_exactly(fd, 8, &got));
  EXPECT_EQ(got, "accepted");
  EXPECT_TRUE(stays_quiet(fd, 50)) << "the refused bytes must never be sent";
  ::close(fd);
}

TEST(Connection, NackSuspendRefusesEverythingUntilResumeWriting) {
  ProbeServer s(with_modes(WriteMode::kNackSuspend), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string big = pattern(1 << 20, 8);
  s.on_loop([&](Connection& c) {
    EXPECT_EQ(c.write(big), WriteResult::kAccepted);
    EXPECT_EQ(c.write("x"), WriteResult::kRefused);
  });
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, big.size(), &got));
  for (int i = 0; i < 100 && s.queued() > 0; ++i) std::this_thread::sleep_for(5ms);
  // Nothing is pending any more, but the connection stays suspended.
  s.on_loop([&](Connection& c) { EXPECT_EQ(c.write("y"), WriteResult::kRefused); });
  EXPECT_EQ(s.snapshot().resumed, 0);
  s.on_loop([&](Connection& c) { c.resume_writing(); });
  ASSERT_TRUE(s.wait([](const Record& r) { return r.resumed == 1; }));
  s.on_loop([&](Connection& c) { EXPECT_EQ(c.write("z"), WriteResult::kAccepted); });
  ASSERT_TRUE(recv_exactly(fd, 1, &got));
  EXPECT_EQ(got, "z");
  EXPECT_TRUE(stays_quiet(fd, 50));
  ::close(fd);
}

TEST(Connection, NackSuspendResumesOnlyAfterTheLastAcceptedWriteCompleted) {
  ProbeServer s(with_modes(WriteMode::kNackSuspend), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string big = pattern(1 << 20, 9);
  s.on_loop([&](Connection& c) {
    EXPECT_EQ(c.write(big), WriteResult::kAccepted);
    EXPECT_EQ(c.write("x"), WriteResult::kRefused);
    c.resume_writing();
    EXPECT_EQ(c.write("still suspended"), WriteResult::kRefused);
  });
  std::this_thread::sleep_for(100ms);  // the client reads nothing: the write cannot complete
  EXPECT_EQ(s.snapshot().resumed, 0);
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, big.size(), &got));
  ASSERT_TRUE(s.wait([](const Record& r) { return r.resumed == 1; }));
  EXPECT_EQ(s.snapshot().queued_at_resumed, 0u);
  s.on_loop([&](Connection& c) {
    EXPECT_EQ(c.bytes_written(), big.size());
    EXPECT_EQ(c.write("after"), WriteResult::kAccepted);
  });
  ASSERT_TRUE(recv_exactly(fd, 5, &got));
  EXPECT_EQ(got, "after");
  ::close(fd);
}

// ---------------------------------------------------------------- reading

TEST(Connection, PushModeDeliversNothingWhileSuspendedAndTheBacklogAfterResume) {
  Hooks hooks;
  hooks.on_data = [](Connection& c, std::string_view) { c.suspend_reading(); };
  ProbeServer s(with_modes(WriteMode::kAck, ReadMode::kPush), hooks);
  int fd = s.connect();
  ASSERT_TRUE(send_all(fd, "first"));
  ASSERT_TRUE(s.wait([](const Record& r) { return r.data == "first"; }));
  // More than one read's worth, small enough for the kernel buffers while nobody reads.
  std::string later = pattern(80 << 10, 10);
  ASSERT_TRUE(send_all(fd, later));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(s.snapshot().data_calls, 1) << "on_data while reading was suspended";
  // The hook suspends again after each delivery: keep resuming until the backlog is in.
  while (s.snapshot().data.size() < 5 + later.size()) {
    int calls = s.snapshot().data_calls;
    s.on_loop([](Connection& c) { c.resume_reading(); });
    ASSERT_TRUE(s.wait([&](const Record& r) { return r.data_calls > calls; }));
  }
  EXPECT_GE(s.snapshot().data_calls, 3);
  EXPECT_TRUE(s.snapshot().data == "first" + later);
  ::close(fd);
}

TEST(Connection, PullModeDeliversOneReadPerResume) {
  ProbeServer s(with_modes(WriteMode::kAck, ReadMode::kPull));
  int fd = s.connect();
  std::string input = pattern(256 << 10, 11);  // several reads' worth
  // From a thread: the server reads only when granted, so the sender may block meanwhile.
  std::jthread sender([&] { EXPECT_TRUE(send_all(fd, input)); });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(s.snapshot().data_calls, 0) << "pull mode reads only when asked";
  for (int grant = 1; grant <= 3; ++grant) {
    s.on_loop([](Connection& c) { c.resume_reading(); });
    ASSERT_TRUE(s.wait([&](const Record& r) { return r.data_calls == grant; }));
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(s.snapshot().data_calls, grant);
  }
  size_t got = s.snapshot().data.size();
  while (s.snapshot().data.size() < input.size()) {
    int calls = s.snapshot().data_calls;
    s.on_loop([](Connection& c) { c.resume_reading(); });
    ASSERT_TRUE(s.wait([&](const Record& r) { return r.data_calls == calls + 1; }));
  }
  EXPECT_GT(s.snapshot().data.size(), got);
  sender.join();
  // A grant made while nothing is readable is spent on the next bytes to arrive.
  s.on_loop([](Connection& c) { c.resume_reading(); });
  std::this_thread::sleep_for(30ms);
  int calls = s.snapshot().data_calls;
  ASSERT_TRUE(send_all(fd, "late"));
  ASSERT_TRUE(s.wait([&](const Record& r) { return r.data_calls == calls + 1; }));
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(s.snapshot().data_calls, calls + 1);
  EXPECT_TRUE(s.snapshot().data == input + "late");
  ::close(fd);
}

// ---------------------------------------------------------------- watermarks and max-buffer

TEST(Connection, HighAndLowWatermarksAreEachSignalledOncePerCrossing) {
  ConnectionOptions o = with_modes(WriteMode::kAck);
  o.high_watermark = 256 << 10;
  o.low_watermark = 64 << 10;
  o.max_buffer = 0;
  ProbeServer s(o, {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string chunk = pattern(64 << 10, 12);
  for (int round = 0; round < 2; ++round) {
    s.on_loop([&](Connection& c) {
      for (int i = 0; i < 8; ++i) c.write(chunk);
      EXPECT_TRUE(c.above_high_watermark());
    });
  }
  Record r = s.snapshot();
  EXPECT_EQ(r.high, 1);
  EXPECT_EQ(r.low, 0);
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, 16 * chunk.size(), &got));  // the client starts reading
  ASSERT_TRUE(s.wait([](const Record& r) { return r.low == 1; }));
  s.on_loop([&](Connection& c) {
    EXPECT_FALSE(c.above_high_watermark());
    c.write(chunk);  // under the high mark again: no signal
  });
  ASSERT_TRUE(recv_exactly(fd, chunk.size(), &got));
  r = s.snapshot();
  EXPECT_EQ(r.high, 1);
  EXPECT_EQ(r.low, 1);
  ::close(fd);
}

TEST(Connection, MaxBufferOverrunResetsThePeerAndReportsBufferOverrun) {
  ConnectionOptions o = with_modes(WriteMode::kAck);
  o.high_watermark = 512 << 10;
  o.low_watermark = 128 << 10;
  o.max_buffer = 1 << 20;
  ProbeServer s(o, {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string chunk = pattern(64 << 10, 13);
  size_t max_queued = 0;
  WriteResult last = WriteResult::kAccepted;
  // One write per loop iteration, so the kernel takes what it can between writes.
  for (int i = 0; i < 64 && last == WriteResult::kAccepted; ++i) {
    s.on_loop([&](Connection& c) {
      last = c.write(chunk);
      if (last == WriteResult::kAccepted) max_queued = std::max(max_queued, c.queued_bytes());
    });
  }
  EXPECT_EQ(last, WriteResult::kClosed);
  EXPECT_LE(max_queued, o.max_buffer);
  EXPECT_GT(max_queued, o.max_buffer - chunk.size());
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed > 0; }));
  Record r = s.snapshot();
  EXPECT_EQ(r.reason, CloseReason::kBufferOverrun);
  EXPECT_FALSE(r.closed_inside_call) << "on_closed ran inside write()";
  std::string got;
  EXPECT_EQ(recv_to_end(fd, &got), ECONNRESET);
  EXPECT_LT(got.size(), 64 * chunk.size());
  ::close(fd);
}

// ---------------------------------------------------------------- closing

TEST(Connection, CloseSendsEveryQueuedByteThenFin) {
  ProbeServer s(with_modes(WriteMode::kAck), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  std::string out = pattern(2 << 20, 14);
  s.on_loop([&](Connection& c) {
    c.write(out);
    c.close();
    EXPECT_EQ(c.write("too late"), WriteResult::kClosed);
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(s.snapshot().closed, 0) << "closed before the queue was flushed";
  std::string got;
  EXPECT_EQ(recv_to_end(fd, &got), 0);
  EXPECT_TRUE(got == out);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed == 1; }));
  Record r = s.snapshot();
  EXPECT_EQ(r.reason, CloseReason::kClosed);
  EXPECT_EQ(r.written_at_close, out.size());
  ::close(fd);
  for (int i = 0; i < 200 && s.server().open_connections() > 0; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s.server().open_connections(), 0u) << "the lingering descriptor was not released";
}

TEST(Connection, AbortResetsThePeerAndDropsPendingOutput) {
  ProbeServer s(with_modes(WriteMode::kAck), {}, kSmallBuffer);
  int fd = s.connect(kSmallBuffer);
  s.on_loop([&](Connection& c) { c.write(pattern(2 << 20, 15)); });
  std::this_thread::sleep_for(20ms);
  s.on_loop([](Connection& c) { c.abort(); });
  std::string got;
  EXPECT_EQ(recv_to_end(fd, &got), ECONNRESET);
  EXPECT_LT(got.size(), 2u << 20);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed == 1; }));
  EXPECT_EQ(s.snapshot().reason, CloseReason::kAborted);
  ::close(fd);
}

TEST(Connection, ConfirmedCloseSendsFinAndDeliversInputUntilThePeerCloses) {
  ProbeServer s(with_modes(WriteMode::kAck));
  int fd = s.connect();
  s.on_loop([](Connection& c) {
    c.write("bye");
    c.confirmed_close();
  });
  std::string got;
  EXPECT_EQ(recv_to_end(fd, &got), 0);  // our FIN arrived
  EXPECT_EQ(got, "bye");
  ASSERT_TRUE(send_all(fd, "still talking"));
  ASSERT_TRUE(s.wait([](const Record& r) { return r.data == "still talking"; }));
  EXPECT_EQ(s.snapshot().closed, 0);
  ::shutdown(fd, SHUT_WR);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed == 1; }));
  EXPECT_EQ(s.snapshot().reason, CloseReason::kConfirmedClosed);
  ::close(fd);
}

TEST(Connection, PeerFinWithKeepOpenReportsPeerClosedAndWritingGoesOn) {
  ConnectionOptions o = with_modes(WriteMode::kAck);
  o.keep_open_on_peer_closed = true;
  ProbeServer s(o);
  int fd = s.connect();
  ASSERT_TRUE(send_all(fd, "request"));
  ::shutdown(fd, SHUT_WR);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.peer_closed == 1; }));
  Record r = s.snapshot();
  EXPECT_EQ(r.data, "request");
  EXPECT_EQ(r.closed, 0);
  s.on_loop([](Connection& c) { EXPECT_EQ(c.write("response"), WriteResult::kAccepted); });
  std::string got;
  ASSERT_TRUE(recv_exactly(fd, 8, &got));
  EXPECT_EQ(got, "response");
  s.on_loop([](Connection& c) { c.close(); });
  EXPECT_EQ(recv_to_end(fd, &got), 0);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed == 1; }));
  EXPECT_EQ(s.snapshot().reason, CloseReason::kClosed);
  ::close(fd);
}

TEST(Connection, PeerFinWithoutKeepOpenClosesWithPeerClosed) {
  ProbeServer s(with_modes(WriteMode::kAck));
  int fd = s.connect();
  ::shutdown(fd, SHUT_WR);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed == 1; }));
  Record r = s.snapshot();
  EXPECT_EQ(r.reason, CloseReason::kPeerClosed);
  EXPECT_EQ(r.peer_closed, 0);
  std::string got;
  EXPECT_EQ(recv_to_end(fd, &got), 0);
  ::close(fd);
}

TEST(Connection, PeerResetClosesWithErrorClosed) {
  ProbeServer s(with_modes(WriteMode::kAck));
  int fd = s.connect();
  ASSERT_TRUE(send_all(fd, "x"));
  ASSERT_TRUE(s.wait([](const Record& r) { return r.data == "x"; }));
  reset_and_close(fd);
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed == 1; }));
  EXPECT_EQ(s.snapshot().reason, CloseReason::kErrorClosed);
}

TEST(Connection, OnClosedIsDeliveredExactlyOnceAndNeverInsideACall) {
  Hooks hooks;
  hooks.on_data = [](Connection& c, std::string_view) {
    c.abort();
    c.abort();
    c.close();
    c.confirmed_close();
    EXPECT_EQ(c.write("after abort"), WriteResult::kClosed);
    EXPECT_EQ(c.write_file(0, 0, 1), WriteResult::kClosed);
  };
  ProbeServer s(with_modes(WriteMode::kNack), hooks);
  int fd = s.connect();
  ASSERT_TRUE(send_all(fd, "go"));
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed > 0; }));
  std::this_thread::sleep_for(30ms);
  Record r = s.snapshot();
  EXPECT_EQ(r.closed, 1);
  EXPECT_EQ(r.reason, CloseReason::kAborted);
  EXPECT_FALSE(r.event_after_close);
  EXPECT_FALSE(s.on_loop([](Connection&) {})) << "the connection outlived its on_closed";
  std::string got;
  EXPECT_EQ(recv_to_end(fd, &got), ECONNRESET);
  ::close(fd);
}

TEST(Connection, CloseFromTheTestThreadIsReportedAfterTheCallReturns) {
  ProbeServer s(with_modes(WriteMode::kNackSuspend));
  int fd = s.connect();
  s.on_loop([](Connection& c) {
    c.close();
    c.abort();  // already closed: no second notification
  });
  ASSERT_TRUE(s.wait([](const Record& r) { return r.closed > 0; }));
  std::string got;
  EXPECT_EQ(recv_to_end(fd, &got), 0);
  ::close(fd);
  std::this_thread::sleep_for(30ms);
  Record r = s.snapshot();
  EXPECT_EQ(r.closed, 1);
  EXPECT_EQ(r.reason, CloseReason::kClosed);
  EXPECT_FALSE(r.closed_inside_call);
}

}  // namespace
}  // namespace weir::net
