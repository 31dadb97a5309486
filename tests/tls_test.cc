// tests/tls_test.cc — weir's TLS layer (net/tls_context, net/tls_session, net/connection_tls)
// over real loopback sockets, against a blocking OpenSSL client and a certificate made here at
// run time: byte-exact echo in every write and read mode with the queue (plaintext plus
// ciphertext) sampled on the reactor thread, acks only once a record reached the kernel,
// handshake failures and timeouts with their metrics, close_notify before FIN, RST on abort,
// certificate reload, and no descriptor left behind.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/reactor.h"
#include "net/tcp_echo.h"
#include "net/tcp_server.h"
#include "net/tls_context.h"
#include "server/echo_endpoint.h"
#include "tests/test_certs.h"
#include "ws/http_connection.h"
#include "ws/http_request.h"

namespace weir::net {
namespace {

using namespace std::chrono_literals;

const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

constexpr size_t kMaxBuffer = 1 << 20;
constexpr size_t kHighWatermark = 512 << 10;
constexpr size_t kLowWatermark = 128 << 10;

// ---------------------------------------------------------------- bytes and certificates

// A pseudo-random stream whose period is no power of two, so a misplaced chunk never matches.
class Pattern {
 public:
  static constexpr size_t kPeriod = 65521;
  Pattern() : bytes_(kPeriod + (1 << 20), '\0') {
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < kPeriod; ++i) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      bytes_[i] = static_cast<char>(x);
    }
    for (size_t i = kPeriod; i < bytes_.size(); ++i) bytes_[i] = bytes_[i - kPeriod];
  }
  // Up to 1 MiB of the stream from `offset`.
  const char* at(uint64_t offset) const { return bytes_.data() + offset % kPeriod; }

 private:
  std::string bytes_;
};

const Pattern& pattern() {
  static const Pattern p;
  return p;
}

template <typename WriteFn>
bool write_pem(const std::string& path, WriteFn write) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return false;
  bool ok = write(f) == 1;
  ok = std::fclose(f) == 0 && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;  // a reload never sees half a file
}

// A fresh EC P-256 key and a self-signed certificate for CN=`name` with `serial`, as PEM.
bool make_certificate(const std::string& cert_path, const std::string& key_path, const char* name,
                      long serial) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* cert = X509_new();
  bool ok = key && cert;
  if (ok) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
    X509_set_issuer_name(cert, subject);
    ok = X509_sign(cert, key, EVP_sha256()) > 0;
  }
  ok = ok && write_pem(key_path, [&](FILE* f) {
         return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
       });
  ok = ok && write_pem(cert_path, [&](FILE* f) { return PEM_write_X509(f, cert); });
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

int open_fds() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  while (struct dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') count++;
  ::closedir(dir);
  return count - 1;  // the directory's own descriptor
}

double handshakes(const char* result) {
  double v = -1;
  core::find_metric_value("weir_tls_handshakes_total", std::string("result=\"") + result + "\"",
                          &v);
  return v;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  for (auto end = std::chrono::steady_clock::now() + limit;
       std::chrono::steady_clock::now() < end;) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

// ---------------------------------------------------------------- client side

int connect_raw(uint16_t port, int rcvbuf = 0) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
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

// Reads and drops until the peer closes: 0 after FIN, else the errno (ECONNRESET after RST).
int drain_until_closed(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return 0;
    if (n < 0 && errno != EINTR) return errno;
  }
}

SSL_CTX* client_context() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);  // self-signed: we check the serial instead
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return c;
  }();
  return ctx;
}

class TlsClient {
 public:
  explicit TlsClient(uint16_t port, int rcvbuf = 0) : fd_(connect_raw(port, rcvbuf)) {
    ssl_ = SSL_new(client_context());
    SSL_set_fd(ssl_, fd_);
    connected_ = SSL_connect(ssl_) == 1;
  }
  ~TlsClient() {
    SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  SSL* ssl() { return ssl_; }
  int fd() const { return fd_; }

  long peer_serial() {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    long serial = cert ? ASN1_INTEGER_get(X509_get_serialNumber(cert)) : -1;
    X509_free(cert);
    return serial;
  }
  bool write_all(std::string_view data) {
    while (!data.empty()) {
      int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
      if (n <= 0) return false;
      data.remove_prefix(n);
    }
    return true;
  }
  // Reads exactly `len` bytes (less if the stream ends first).
  std::string read_exact(size_t len) {
    std::string out(len, '\0');
    size_t got = 0;
    while (got < len) {
      int n = SSL_read(ssl_, out.data() + got, static_cast<int>(len - got));
      if (n <= 0) break;
      got += n;
    }
    out.resize(got);
    return out;
  }
  // Reads until `marker` was seen (or the stream ends).
  std::string read_until(std::string_view marker) {
    std::string out;
    char buf[4096];
    while (out.find(marker) == std::string::npos) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, n);
    }
    return out;
  }
  // A short message sent and echoed back unchanged.
  bool round_trip(std::string_view message) {
    return write_all(message) && read_exact(message.size()) == message;
  }

 private:
  int fd_;
  SSL* ssl_;
  bool connected_ = false;
};

struct EchoResult {
  uint64_t sent = 0;
  uint64_t received = 0;
  int64_t first_mismatch = -1;
  std::string error;
};

// Sends `total` pattern bytes and reads the echo back at no more than `read_rate` bytes/s, on
// one thread (an SSL object must not be read and written concurrently), then says close_notify.
EchoResult echo_pattern(TlsClient& client, uint64_t total, double read_rate) {
  EchoResult r;
  SSL* ssl = client.ssl();
  ::fcntl(client.fd(), F_SETFL, ::fcntl(client.fd(), F_GETFL) | O_NONBLOCK);
  static thread_local char buf[64 << 10];
  int64_t start = core::monotonic_ms();
  while (r.received < total && r.error.empty()) {
    if (core::monotonic_ms() - start > 20000) r.error = "timed out";
    short events = 0;
    bool progress = false;
    if (r.sent < total) {
      int len = static_cast<int>(std::min<uint64_t>(total - r.sent, 16 << 10));
      int n = SSL_write(ssl, pattern().at(r.sent), len);
      if (n > 0)
        r.sent += n, progress = true;
      else if (int e = SSL_get_error(ssl, n); e == SSL_ERROR_WANT_WRITE)
        events |= POLLOUT;
      else if (e == SSL_ERROR_WANT_READ)
        events |= POLLIN;
      else
        r.error = "SSL_write: error " + std::to_string(e);
    }
    int64_t due_ms = static_cast<int64_t>(r.received * 1000 / read_rate);
    int64_t wait_ms = due_ms - (core::monotonic_ms() - start);
    if (wait_ms <= 0) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        if (r.first_mismatch < 0 && std::memcmp(buf, pattern().at(r.received), n) != 0) {
          int i = 0;
          while (buf[i] == pattern().at(r.received)[i]) ++i;
          r.first_mismatch = static_cast<int64_t>(r.received + i);
        }
        r.received += n;
        continue;
      }
      if (int e = SSL_get_error(ssl, n); e == SSL_ERROR_WANT_READ)
        events |= POLLIN;
      else if (e == SSL_ERROR_WANT_WRITE)
        events |= POLLOUT;
      else
        r.error = "SSL_read: error " + std::to_string(e);
      wait_ms = 100;
    }
    if (!progress) {
      struct pollfd p {
        client.fd(), events, 0
      };
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(wait_ms, 100)));
    }
  }
  ::fcntl(client.fd(), F_SETFL, ::fcntl(client.fd(), F_GETFL) & ~O_NONBLOCK);
  SSL_shutdown(ssl);
  return r;
}

// ---------------------------------------------------------------- server side

// What the reactor thread saw; read by the test thread.
struct Stats {
  std::atomic<size_t> max_held{0};  // the most ever held for the peer (queue + handler store)
  std::atomic<int> high_marks{0};
  std::atomic<int> low_marks{0};
  std::atomic<uint64_t> acks{0};
  std::atomic<int> ack_errors{0};  // out of order, or before the record reached the kernel
  std::atomic<int> closed{0};
  std::atomic<int> reason{-1};
};

// Forwards every callback to an echo handler; samples the bytes held after each and, with ACK
// echo, checks each ack against the stream position its write ended at.
class Probe : public ConnectionHandler {
 public:
  Probe(std::unique_ptr<ConnectionHandler> inner, Stats& stats, bool track_acks)
      : inner_(std::move(inner)), stats_(stats), track_acks_(track_acks) {}
  void on_data(Connection& c, char* data, size_t len) override {
    enqueued_ += len;
    if (track_acks_) ends_.push_back(enqueued_);  // AckEchoHandler: one write per read
    inner_->on_data(c, data, len);
    sample(c);
  }
  void on_write_ack(Connection& c, uint64_t ack) override {
    if (track_acks_) check_ack(c, ack);
    inner_->on_write_ack(c, ack);
    sample(c);
  }
  void on_writing_resumed(Connection& c) override {
    inner_->on_writing_resumed(c);
    sample(c);
  }
  void on_high_watermark(Connection& c) override {
    stats_.high_marks++;
    inner_->on_high_watermark(c);
    sample(c);
  }
  void on_low_watermark(Connection& c) override {
    stats_.low_marks++;
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
  // Token k ends at ends_[k-1]. Once acked, none of its ciphertext may still be queued: what is
  // queued covers only later plaintext, plus at most a record's overhead per later write.
  void check_ack(Connection& c, uint64_t ack) {
    uint64_t end = ends_.empty() ? UINT64_MAX : ends_.front();
    if (!ends_.empty()) ends_.pop_front();
    bool in_order = ack == ++last_ack_;
    bool written = c.bytes_written() >= end;
    size_t slack = 64 * (ends_.size() + 20);
    bool nothing_earlier_queued = end != UINT64_MAX && c.queued_bytes() <= enqueued_ - end + slack;
    if (!in_order || !written || !nothing_earlier_queued) stats_.ack_errors++;
    stats_.acks++;
  }
  void sample(Connection& c) {
    size_t held = c.queued_bytes();
    if (auto* nack = dynamic_cast<NackSuspendEchoHandler*>(inner_.get())) held += nack->stored();
    if (held > stats_.max_held) stats_.max_held = held;
  }

  std::unique_ptr<ConnectionHandler> inner_;
  Stats& stats_;
  bool track_acks_;
  uint64_t enqueued_ = 0;
  uint64_t last_ack_ = 0;
  std::deque<uint64_t> ends_;
};

ConnectionOptions tls_options(TlsContext* tls) {
  ConnectionOptions o;
  o.tls = tls;
  o.high_watermark = kHighWatermark;
  o.low_watermark = kLowWatermark;
  o.max_buffer = kMaxBuffer;
  o.keep_open_on_peer_closed = true;  // as `weir --tcp-echo` runs the echo handlers
  return o;
}

class Server {
 public:
  Server(const ConnectionOptions& options, TcpServer::HandlerFactory factory) {
    TcpServerOptions o;
    std::string error;
    EXPECT_TRUE(SocketAddress::parse("127.0.0.1:0", &o.listen, &error)) << error;
    o.connection = options;
    server_ = std::make_unique<TcpServer>(o, std::move(factory));
    EXPECT_TRUE(server_->start(&error)) << error;
  }
  ~Server() { server_->stop(); }
  uint16_t port() const { return server_->port(); }
  size_t open_connections() const { return server_->open_connections(); }

 private:
  std::unique_ptr<TcpServer> server_;
};

// Writes `bytes` of the pattern on the first read, then closes or aborts.
class WriteThenEnd : public ConnectionHandler {
 public:
  WriteThenEnd(uint64_t bytes, bool abort, Stats& stats)
      : bytes_(bytes), abort_(abort), stats_(stats) {}
  void on_data(Connection& c, char*, size_t) override {
    if (started_) return;
    started_ = true;
    for (uint64_t off = 0; off < bytes_; off += 64 << 10)
      c.write(std::string_view(pattern().at(off), std::min<uint64_t>(bytes_ - off, 64 << 10)));
    if (abort_)
      c.abort();
    else
      c.close();
  }
  void on_closed(Connection&, CloseReason reason, std::string_view) override {
    stats_.reason = static_cast<int>(reason);
    stats_.closed++;
  }

 private:
  uint64_t bytes_;
  bool abort_;
  Stats& stats_;
  bool started_ = false;
};

class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/weir-tls-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    cert_ = dir_ + "/cert.pem";
    key_ = dir_ + "/key.pem";
    ASSERT_TRUE(make_certificate(cert_, key_, "weir-first", 1001));
    std::string error;
    tls_ = TlsContext::create(cert_, key_, &error);
    ASSERT_TRUE(tls_) << error;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // `sndbuf` > 0 caps the server socket's send buffer, so a slow reader fills the connection's
  // queue whatever the kernel's autotuning would have absorbed.
  std::unique_ptr<Server> echo_server(const ConnectionOptions& options, Stats& stats,
                                      int sndbuf = 0) {
    bool ack = options.write_mode == WriteMode::kAck && options.read_mode == ReadMode::kPush;
    return std::make_unique<Server>(options, [&stats, ack, sndbuf](Connection& c) {
      if (sndbuf > 0) ::setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
      return std::make_unique<Probe>(make_echo_handler(c), stats, ack);
    });
  }

  std::string dir_, cert_, key_;
  std::unique_ptr<TlsContext> tls_;
};

// ---------------------------------------------------------------- echo under backpressure

TEST_F(Tls, AckEcho8MiBByteExactToASlowReaderWithinMaxBufferAndAcksAfterTheKernel) {
  constexpr uint64_t kTotal = 8 << 20;
  Stats stats;
  auto server = echo_server(tls_options(tls_.get()), stats, 64 << 10);
  TlsClient client(server->port(), 64 << 10);
  ASSERT_TRUE(client.connected());
  EchoResult r = echo_pattern(client, kTotal, 12e6);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.received, kTotal);
  EXPECT_EQ(r.first_mismatch, -1);
  ASSERT_TRUE(eventually([&] { return stats.closed == 1; }));
  EXPECT_EQ(stats.reason.load(), static_cast<int>(CloseReason::kClosed));
  EXPECT_LE(stats.max_held.load(), kMaxBuffer + (64 << 10));
  EXPECT_GE(stats.max_held.load(), kHighWatermark) << "the slow reader never made the server queue";
  EXPECT_GE(stats.high_marks.load(), 1);
  EXPECT_GE(stats.low_marks.load(), 1);
  EXPECT_GT(stats.acks.load(), 0u);
  EXPECT_EQ(stats.ack_errors.load(), 0);
}

TEST_F(Tls, NackSuspendAndPullEcho4MiBByteExact) {
  constexpr uint64_t kTotal = 4 << 20;
  for (bool pull : {false, true}) {
    SCOPED_TRACE(pull ? "pull" : "nack-suspend");
    ConnectionOptions o = tls_options(tls_.get());
    if (pull)
      o.read_mode = ReadMode::kPull;
    else
      o.write_mode = WriteMode::kNackSuspend;
    Stats stats;
    auto server = echo_server(o, stats);
    TlsClient client(server->port(), 64 << 10);
    ASSERT_TRUE(client.connected());
    EchoResult r = echo_pattern(client, kTotal, 16e6);
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.received, kTotal);
    EXPECT_EQ(r.first_mismatch, -1);
    ASSERT_TRUE(eventually([&] { return stats.closed == 1; }));
    EXPECT_EQ(stats.reason.load(), static_cast<int>(CloseReason::kClosed));
    EXPECT_LE(stats.max_held.load(), kMaxBuffer + (64 << 10));
  }
}

// A handler that writes more than max_buffer without looking at the watermarks: the limit
// counts the ciphertext not yet sent, so the connection is dropped before the queue passes it.
TEST_F(Tls, MaxBufferCountsCiphertextNotYetSent) {
  struct Flood : ConnectionHandler {
    explicit Flood(Stats& s) : stats(s) {}
    void on_data(Connection& c, char*, size_t) override {
      if (timer.pending() || c.closing()) return;
      timer.set_callback([this, &c] { tick(c); });
      c.reactor().schedule(timer, 1);
    }
    void tick(Connection& c) {
      for (int i = 0; i < 4 && !c.closing(); ++i) {
        c.write(std::string_view(pattern().at(0), 64 << 10));
        if (c.queued_bytes() > stats.max_held) stats.max_held = c.queued_bytes();
        c.flush();  // encrypt now: ciphertext piles up as the reader does not read
      }
      if (!c.closing()) c.reactor().schedule(timer, 1);
    }
    void on_closed(Connection&, CloseReason reason, std::string_view) override {
      timer.cancel();
      stats.reason = static_cast<int>(reason);
      stats.closed++;
    }
    Stats& stats;
    core::Timer timer;
  };
  Stats stats;
  Server server(tls_options(tls_.get()),
                [&](Connection&) { return std::make_unique<Flood>(stats); });
  TlsClient client(server.port(), 64 << 10);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.write_all("flood"));
  ASSERT_TRUE(eventually([&] { return stats.closed == 1; }, 10000ms));
  EXPECT_EQ(stats.reason.load(), static_cast<int>(CloseReason::kBufferOverrun));
  EXPECT_LE(stats.max_held.load(), kMaxBuffer + 1024) << "queued bytes passed max_buffer";
}

// ---------------------------------------------------------------- handshake failures

TEST_F(Tls, GarbageInsteadOfAClientHelloIsClosedAndCountedAsFailed) {
  Stats stats;
  auto server = echo_server(tls_options(tls_.get()), stats);
  double failed = handshakes("failed");
  int fd = connect_raw(server->port());
  std::string garbage(300, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 37 + 11);
  ASSERT_EQ(::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(garbage.size()));
  EXPECT_NE(drain_until_closed(fd), EAGAIN) << "the server kept the connection open";
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return handshakes("failed") == failed + 1; }));
  EXPECT_TRUE(eventually([&] { return server->open_connections() == 0; }));
  EXPECT_EQ(stats.reason.load(), static_cast<int>(CloseReason::kErrorClosed));
}

TEST_F(Tls, SilentClientIsDroppedAfterTheHandshakeTimeout) {
  ConnectionOptions o = tls_options(tls_.get());
  o.tls_handshake_timeout_ms = 300;
  Stats stats;
  auto server = echo_server(o, stats);
  double timeouts = handshakes("timeout");
  int fd = connect_raw(server->port());
  int64_t start = core::monotonic_ms();
  int end = drain_until_closed(fd);
  int64_t waited = core::monotonic_ms() - start;
  ::close(fd);
  EXPECT_TRUE(end == 0 || end == ECONNRESET) << std::strerror(end);
  EXPECT_GE(waited, 250);
  EXPECT_LT(waited, 3000);
  EXPECT_TRUE(eventually([&] { return handshakes("timeout") == timeouts + 1; }));
  EXPECT_TRUE(eventually([&] { return server->open_connections() == 0; }));

  // A client that finishes its handshake in time is not touched by the timer (a longer one
  // here, so that a loaded machine's slow handshake does not count as a timeout).
  o.tls_handshake_timeout_ms = 1000;
  Stats stats2;
  auto server2 = echo_server(o, stats2);
  TlsClient client(server2->port());
  ASSERT_TRUE(client.connected());
  std::this_thread::sleep_for(1200ms);
  EXPECT_TRUE(client.round_trip("still here"));
}

TEST_F(Tls, PlainHttpRequestToTheTlsPortIsRefusedAndTheServerKeepsServing) {
  Stats stats;
  auto server = echo_server(tls_options(tls_.get()), stats);
  double failed = handshakes("failed");
  int fd = connect_raw(server->port());
  std::string request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  EXPECT_FALSE(n > 0 && std::string_view(buf, n).find("HTTP/1.1 200") != std::string_view::npos);
  EXPECT_NE(drain_until_closed(fd), EAGAIN);
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return handshakes("failed") == failed + 1; }));
  TlsClient client(server->port());
  ASSERT_TRUE(client.connected());
  EXPECT_TRUE(client.round_trip("after the plain request"));
}

TEST_F(Tls, HundredFailedHandshakesLeakNoDescriptor) {
  Stats stats;
  auto server = echo_server(tls_options(tls_.get()), stats);
  int fds = open_fds();
  double failed = handshakes("failed");
  for (int i = 0; i < 100; ++i) {
    int fd = connect_raw(server->port());
    std::string junk = "\x16\x03\x01\xff\xff not a client hello " + std::to_string(i);
    ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    drain_until_closed(fd);
    ::close(fd);
  }
  EXPECT_TRUE(eventually([&] { return handshakes("failed") == failed + 100; }));
  EXPECT_TRUE(eventually([&] { return server->open_connections() == 0 && open_fds() == fds; }))
      << open_fds() << " descriptors open, " << fds << " before";
  EXPECT_EQ(stats.closed.load(), 100);
}

// Writes `writes` blocks of 16 KiB with acks as soon as it is installed, before the handshake
// has finished; each ack must find none of its block's ciphertext still queued.
class Greeter : public ConnectionHandler {
 public:
  static constexpr size_t kBlock = 16 << 10;
  // TLS 1.3 record overhead (header, content type, tag) with margin, times the records that
  // fit the encryption look-ahead: what may be queued beyond the unacknowledged plaintext.
  static constexpr size_t kSlack = 32 * 20;
  Greeter(Connection& c, int writes, Stats& stats) : writes_(writes), stats_(stats) {
    // A small socket buffer: the kernel takes the stream in many pieces, so every ack is
    // checked right after a partial write, with the session tickets still ahead in the stream.
    int sndbuf = 4 << 10;
    ::setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    for (int i = 0; i < writes; ++i)
      c.write(std::string_view(pattern().at(i * kBlock), kBlock), i + 1);
  }
  void on_data(Connection&, char*, size_t) override {}
  void on_write_ack(Connection& c, uint64_t ack) override {
    uint64_t end = ack * kBlock;
    bool in_order = ack == stats_.acks + 1;
    bool written = c.bytes_written() >= end;
    bool nothing_earlier_queued = c.queued_bytes() <= (writes_ * kBlock - end) + kSlack;
    if (!in_order || !written || !nothing_earlier_queued) stats_.ack_errors++;
    stats_.acks++;
  }
  void on_closed(Connection&, CloseReason reason, std::string_view) override {
    stats_.reason = static_cast<int>(reason);
    stats_.closed++;
  }

 private:
  uint64_t writes_;
  Stats& stats_;
};

TEST_F(Tls, DataWrittenBeforeTheHandshakeIsSentAfterItAndAckedOnlyOnceInTheKernel) {
  constexpr int kWrites = 160;
  constexpr uint64_t kTotal = kWrites * Greeter::kBlock;
  Stats stats;
  ConnectionOptions o = tls_options(tls_.get());
  o.max_buffer = 0;
  o.high_watermark = kTotal + 1;
  Server server(o, [&](Connection& c) { return std::make_unique<Greeter>(c, kWrites, stats); });
  TlsClient client(server.port(), 32 << 10);
  ASSERT_TRUE(client.connected());
  std::this_thread::sleep_for(50ms);  // the server fills the socket and stops mid-stream
  uint64_t received = 0;
  int64_t mismatch = -1;
  while (received < kTotal) {
    std::string chunk = client.read_exact(std::min<uint64_t>(kTotal - received, 7919));
    if (chunk.empty()) break;
    if (mismatch < 0 && std::memcmp(chunk.data(), pattern().at(received), chunk.size()) != 0)
      mismatch = received;
    received += chunk.size();
    if (received % 5 == 0) std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(received, kTotal);
  EXPECT_EQ(mismatch, -1);
  EXPECT_TRUE(eventually([&] { return stats.acks == kWrites; }));
  EXPECT_EQ(stats.ack_errors.load(), 0);
}

// ---------------------------------------------------------------- closing

TEST_F(Tls, CloseDeliversAllDataThenCloseNotifyThenFin) {
  constexpr uint64_t kBytes = 3 << 20;  // more than the socket buffers: close() must wait
  Stats stats;
  ConnectionOptions o = tls_options(tls_.get());
  o.max_buffer = 0;  // the whole response is queued at once
  Server server(o,
                [&](Connection&) { return std::make_unique<WriteThenEnd>(kBytes, false, stats); });
  TlsClient client(server.port(), 64 << 10);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.write_all("go"));
  std::this_thread::sleep_for(100ms);  // let the server block on a full socket first
  std::string got = client.read_exact(kBytes);
  ASSERT_EQ(got.size(), kBytes);
  EXPECT_EQ(std::memcmp(got.data(), pattern().at(0), 1 << 20), 0);
  EXPECT_EQ(std::memcmp(got.data() + (2 << 20), pattern().at(2 << 20), 1 << 20), 0);
  char byte;
  int n = SSL_read(client.ssl(), &byte, 1);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(SSL_get_error(client.ssl(), n), SSL_ERROR_ZERO_RETURN) << "no close_notify";
  EXPECT_EQ(::recv(client.fd(), &byte, 1, 0), 0) << "no FIN after close_notify";
  SSL_shutdown(client.ssl());
  ::shutdown(client.fd(), SHUT_WR);  // our FIN ends the server's linger
  EXPECT_TRUE(eventually([&] { return stats.closed == 1 && server.open_connections() == 0; }));
  EXPECT_EQ(stats.reason.load(), static_cast<int>(CloseReason::kClosed));
}

TEST_F(Tls, AbortSendsRstWithoutCloseNotify) {
  Stats stats;
  Server server(tls_options(tls_.get()),
                [&](Connection&) { return std::make_unique<WriteThenEnd>(0, true, stats); });
  TlsClient client(server.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.write_all("go"));
  char buf[256];
  int n;
  while ((n = SSL_read(client.ssl(), buf, sizeof buf)) > 0) {
  }
  int read_errno = errno;
  int error = SSL_get_error(client.ssl(), n);
  EXPECT_EQ(error, SSL_ERROR_SYSCALL) << "expected a reset, got SSL error " << error;
  EXPECT_EQ(read_errno, ECONNRESET) << std::strerror(read_errno);
  EXPECT_TRUE(eventually([&] { return stats.closed == 1 && server.open_connections() == 0; }));
  EXPECT_EQ(stats.reason.load(), static_cast<int>(CloseReason::kAborted));
}

// ---------------------------------------------------------------- certificate reload

TEST_F(Tls, ReloadServesTheNewCertificateToNewConnectionsAndKeepsOpenOnes) {
  Stats stats;
  auto server = echo_server(tls_options(tls_.get()), stats);
  TlsClient before(server->port());
  ASSERT_TRUE(before.connected());
  EXPECT_EQ(before.peer_serial(), 1001);
  EXPECT_TRUE(before.round_trip("before the reload"));

  ASSERT_TRUE(make_certificate(cert_, key_, "weir-second", 2002));
  std::string error;
  ASSERT_TRUE(tls_->reload(&error)) << error;
  TlsClient after(server->port());
  ASSERT_TRUE(after.connected());
  EXPECT_EQ(after.peer_serial(), 2002);
  EXPECT_TRUE(after.round_trip("after the reload"));
  EXPECT_TRUE(before.round_trip("the old connection still works"));

  // A broken certificate file: reload fails with a reason and the last good one stays.
  {
    FILE* f = std::fopen(cert_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    std::fclose(f);
  }
  error.clear();
  EXPECT_FALSE(tls_->reload(&error));
  EXPECT_NE(error, "");
  TlsClient later(server->port());
  ASSERT_TRUE(later.connected());
  EXPECT_EQ(later.peer_serial(), 2002);
  EXPECT_TRUE(later.round_trip("served by the last good certificate"));
  EXPECT_TRUE(before.round_trip("and the first connection too"));
  EXPECT_TRUE(after.round_trip("and the second"));

  // A key that does not match the certificate is refused the same way.
  ASSERT_TRUE(make_certificate(cert_, dir_ + "/other-key.pem", "weir-third", 3003));
  EXPECT_FALSE(tls_->reload(&error));
  TlsClient last(server->port());
  ASSERT_TRUE(last.connected());
  EXPECT_EQ(last.peer_serial(), 2002);
}

// ---------------------------------------------------------------- the HTTP stack over TLS

// /healthz and the real /echo endpoint (server::Routes pulls in the cluster layer).
class TestRoutes : public ws::HttpRoutes {
 public:
  void handle(const ws::HttpRequest& request, ws::HttpReply& reply) override {
    if (request.path() == "/healthz") return reply.respond(200, "text/plain", "ok\n");
    reply.respond_error(404, "no such route");
  }
  ws::WebSocketEndpoint* websocket_endpoint(std::string_view path) override {
    return path == "/echo" ? &echo_ : nullptr;
  }

 private:
  server::EchoEndpoint echo_;
};

TEST_F(Tls, HttpsAndWssEchoThroughTheRealHttpConnection) {
  ws::HttpServerOptions http;
  TestRoutes routes;
  ConnectionOptions o = tls_options(tls_.get());
  Server server(
      o, [&](Connection& c) { return std::make_unique<ws::HttpConnection>(c, http, &routes); });

  TlsClient https(server.port());
  ASSERT_TRUE(https.connected());
  ASSERT_TRUE(https.write_all("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  std::string response = https.read_until("ok\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 200", 0), 0u) << response;

  TlsClient wss(server.port());
  ASSERT_TRUE(wss.connected());
  ASSERT_TRUE(
      wss.write_all("GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"));
  std::string upgrade = wss.read_until("\r\n\r\n");
  ASSERT_EQ(upgrade.rfind("HTTP/1.1 101", 0), 0u) << upgrade;
  EXPECT_NE(upgrade.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos);
  const std::string text = "hello over TLS";
  const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string frame = {'\x81', static_cast<char>(0x80 | text.size())};
  frame.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < text.size(); ++i) frame += static_cast<char>(text[i] ^ mask[i % 4]);
  ASSERT_TRUE(wss.write_all(frame));
  std::string echoed = wss.read_exact(2 + text.size());
  ASSERT_EQ(echoed.size(), 2 + text.size());
  EXPECT_EQ(static_cast<unsigned char>(echoed[0]), 0x81);
  EXPECT_EQ(static_cast<size_t>(echoed[1]), text.size());
  EXPECT_EQ(echoed.substr(2), text);
}

// ---------------------------------------------------------------- mutual TLS (peer links)

// A CA with a server and a client certificate, and another CA with one of each.
class TlsMutual : public ::testing::Test {
 protected:
  void SetUp() override {
    test_certs::CertificateAuthority ca("mutual test CA"), other("other CA");
    ASSERT_TRUE(ca.ok() && other.ok());
    ASSERT_TRUE(ca.write_certificate(dir_.file("ca.pem")));
    ASSERT_TRUE(ca.issue(dir_.file("server.pem"), dir_.file("server.key"), "server", 2));
    ASSERT_TRUE(ca.issue(dir_.file("client.pem"), dir_.file("client.key"), "client", 3));
    ASSERT_TRUE(other.issue(dir_.file("other.pem"), dir_.file("other.key"), "server", 4));
  }
  // A mutual context presenting `cert` and trusting our CA.
  std::unique_ptr<TlsContext> mutual(const std::string& cert) {
    std::string error;
    auto tls = TlsContext::create(
        TlsConfig{dir_.file(cert + ".pem"), dir_.file(cert + ".key"), dir_.file("ca.pem")}, &error);
    EXPECT_TRUE(tls) << error;
    return tls;
  }
  // A blocking client context that verifies the server against our CA and presents `cert`.
  SSL_CTX* blocking_client(const std::string& cert) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, dir_.file("ca.pem").c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!cert.empty()) {
      SSL_CTX_use_certificate_chain_file(ctx, dir_.file(cert + ".pem").c_str());
      SSL_CTX_use_PrivateKey_file(ctx, dir_.file(cert + ".key").c_str(), SSL_FILETYPE_PEM);
    }
    return ctx;
  }
  // Connects with `ctx` and echoes one message: the server let us in.
  bool echoes(SSL_CTX* ctx, uint16_t port) {
    int fd = connect_raw(port);
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    const std::string message = "through mutual TLS";
    bool ok = SSL_connect(ssl) == 1 &&
              SSL_write(ssl, message.data(), static_cast<int>(message.size())) > 0;
    std::string got;
    char buf[64];
    while (ok && got.size() < message.size()) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, n);
    }
    SSL_free(ssl);
    ::close(fd);
    SSL_CTX_free(ctx);
    return got == message;
  }

  test_certs::TempDir dir_;
};

TEST_F(TlsMutual, ServerAdmitsOnlyClientsWithACertificateFromItsCa) {
  auto tls = mutual("server");
  Stats stats;
  Server server(tls_options(tls.get()), [&stats](Connection& c) {
    return std::make_unique<Probe>(make_echo_handler(c), stats, false);
  });
  double failed = handshakes("failed");
  EXPECT_TRUE(echoes(blocking_client("client"), server.port()));
  EXPECT_FALSE(echoes(blocking_client(""), server.port()));       // no certificate
  EXPECT_FALSE(echoes(blocking_client("other"), server.port()));  // another CA's
  EXPECT_TRUE(eventually([&] { return handshakes("failed") - failed >= 2; }));
  EXPECT_TRUE(eventually([&] { return server.open_connections() == 0; }));
}

// A connection we dialled (tls_client) on a reactor of our own; the test thread reads what it
// received and how it ended.
class DialledConnection : public ConnectionHandler {
 public:
  void on_data(Connection&, char* data, size_t len) override {
    std::lock_guard lock(mutex_);
    received_.append(data, len);
  }
  void on_closed(Connection&, CloseReason, std::string_view detail) override {
    std::lock_guard lock(mutex_);
    closed_ = true;
    detail_ = detail;
  }
  size_t received() {
    std::lock_guard lock(mutex_);
    return received_.size();
  }
  std::string data() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  bool closed() {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  std::string detail() {
    std::lock_guard lock(mutex_);
    return detail_;
  }

 private:
  std::mutex mutex_;
  std::string received_;
  bool closed_ = false;
  std::string detail_;
};

class Dialer {
 public:
  Dialer() : thread_([this] { reactor_.run(); }) {}
  ~Dialer() {
    run([this] { conn_.reset(); });
    reactor_.stop();
    thread_.join();
  }
  // Dials `port` as a TLS client with `tls`, writes `payload` at once (sent once established).
  DialledConnection* dial(TlsContext* tls, uint16_t port, const std::string& payload) {
    int fd = connect_raw(port);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    ConnectionOptions o = tls_options(tls);
    o.tls_client = true;
    o.max_buffer = 0;
    auto handler = std::make_unique<DialledConnection>();
    DialledConnection* raw = handler.get();
    run([&] {
      conn_ = std::make_unique<Connection>(reactor_, fd, o, nullptr);
      conn_->set_handler(std::move(handler));
      conn_->write(payload);
    });
    return raw;
  }
  template <typename Fn>
  void run(Fn fn) {
    std::promise<void> done;
    reactor_.post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  core::Reactor reactor_;
  std::thread thread_;
  std::unique_ptr<Connection> conn_;
};

TEST_F(TlsMutual, DialledConnectionIsAClientThatVerifiesTheServerAgainstTheCa) {
  auto server_tls = mutual("server");
  Stats stats;
  Server server(tls_options(server_tls.get()), [&stats](Connection& c) {
    return std::make_unique<Probe>(make_echo_handler(c), stats, false);
  });
  auto client_tls = mutual("client");
  std::string payload(2 << 20, '\0');
  for (size_t off = 0; off < payload.size(); off += 64 << 10)
    std::memcpy(payload.data() + off, pattern().at(off), 64 << 10);
  {
    Dialer dialer;
    DialledConnection* echo = dialer.dial(client_tls.get(), server.port(), payload);
    ASSERT_TRUE(eventually([&] { return echo->received() == payload.size(); }, 20000ms));
    EXPECT_TRUE(echo->data() == payload) << "echo not byte-exact";
    EXPECT_FALSE(echo->closed());
  }
  // A server whose certificate another CA signed: the client refuses it, and says why.
  auto impostor_tls = mutual("other");
  Server impostor(tls_options(impostor_tls.get()), [&stats](Connection& c) {
    return std::make_unique<Probe>(make_echo_handler(c), stats, false);
  });
  Dialer dialer;
  DialledConnection* refused = dialer.dial(client_tls.get(), impostor.port(), "secret");
  ASSERT_TRUE(eventually([&] { return refused->closed(); }));
  EXPECT_NE(refused->detail().find("certificate verify failed"), std::string::npos)
      << refused->detail();
  EXPECT_EQ(refused->received(), 0u);
}

}  // namespace
}  // namespace weir::net
