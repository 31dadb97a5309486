// tests/server_harness.h — what the socket-level HTTP and WebSocket tests share: weir's HTTP
// service started in-process on an ephemeral port (the same factory as server/http_service.cc),
// a blocking raw TCP client with deadlines, an HTTP response reader and a WebSocket frame codec
// that can also produce the invalid frames a conformance test needs.
//
// Thread-safety: a TestServer runs its own reactor thread; everything else belongs to the test
// thread that made it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cluster/room_service.h"
#include "cluster/rooms_endpoint.h"
#include "core/clock.h"
#include "net/tcp_server.h"
#include "server/echo_endpoint.h"
#include "server/routes.h"
#include "ws/http_connection.h"

namespace weir::harness {

inline const bool kSigpipeIgnored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

// ---------------------------------------------------------------- the server

struct ServerConfig {
  ws::HttpServerOptions http;
  net::TcpServerOptions tcp;
  ServerConfig() {
    std::string error;
    net::SocketAddress::parse("127.0.0.1:0", &tcp.listen, &error);
    tcp.threads = 1;
    tcp.connection.keep_open_on_peer_closed = true;  // as http_service.cc sets it
  }
};

inline constexpr char kApiKey[] = "test-api-key";

// weir's HTTP service (routes, /echo, the rooms API with key kApiKey) on 127.0.0.1 and a port
// the kernel picked.
class TestServer {
 public:
  explicit TestServer(ServerConfig config = {})
      : config_(std::move(config)),
        rooms_(cluster::RoomsConfig{}, config_.tcp.threads),
        rooms_api_(rooms_, kApiKey) {
    routes_.add_websocket("/echo", std::make_unique<server::EchoEndpoint>());
    routes_.set_rooms_api(&rooms_api_);
    routes_.set_ready(true);
    server_ = std::make_unique<net::TcpServer>(config_.tcp, [this](net::Connection& conn) {
      return std::make_unique<ws::HttpConnection>(conn, config_.http, &routes_);
    });
    server_->set_thread_init([this](core::Reactor& reactor) { rooms_.attach(reactor); });
    started_ = server_->start(&error_);
  }
  ~TestServer() { server_->stop(); }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  bool started() const { return started_; }
  const std::string& error() const { return error_; }
  uint16_t port() const { return server_->port(); }
  size_t open_connections() const { return server_->open_connections(); }
  server::Routes& routes() { return routes_; }

  // Waits until the server holds at most `n` connections; false on timeout.
  bool wait_open_connections_at_most(size_t n, int timeout_ms) const {
    const int64_t deadline = core::monotonic_ms() + timeout_ms;
    while (server_->open_connections() > n) {
      if (core::monotonic_ms() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }

 private:
  ServerConfig config_;
  cluster::RoomService rooms_;
  cluster::RoomsApi rooms_api_;
  server::Routes routes_;
  std::unique_ptr<net::TcpServer> server_;
  std::string error_;
  bool started_ = false;
};

// ---------------------------------------------------------------- the raw client

enum class ReadStatus { kOk, kEof, kReset, kTimeout };

inline const char* to_string(ReadStatus s) {
  switch (s) {
    case ReadStatus::kOk:
      return "ok";
    case ReadStatus::kEof:
      return "eof";
    case ReadStatus::kReset:
      return "reset";
    case ReadStatus::kTimeout:
      return "timeout";
  }
  return "?";
}

// A blocking loopback client. Reads go through a buffer so responses can be taken apart
// piecewise; every wait has a deadline so a misbehaving server fails a test, never hangs it.
class RawClient {
 public:
  static constexpr int kDefaultTimeoutMs = 3000;

  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    int one = 1;
    if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes with RST instead of FIN (SO_LINGER 0), like a crashed or impatient peer.
  void reset() {
    linger l{1, 0};
    if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Sends every byte; false once the peer is gone (later bytes of a case may legitimately
  // meet a socket the server already closed).
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Sends in pieces of `chop` bytes with a pause between them, so the server's reads see the
  // bytes split at those offsets (Autobahn's "chopped" delivery).
  bool send_chopped(std::string_view bytes, size_t chop, int pause_us = 100) {
    for (size_t off = 0; off < bytes.size(); off += chop) {
      if (off > 0 && pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
      if (!send(bytes.substr(off, chop))) return false;
    }
    return true;
  }
  // Two writes: bytes [0, cut) and [cut, end) with a pause between.
  bool send_split(std::string_view bytes, size_t cut, int pause_us = 300) {
    if (!send(bytes.substr(0, cut))) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
    return send(bytes.substr(cut));
  }

  // Buffered bytes not yet taken.
  std::string& buffered() { return buf_; }

  ReadStatus read_exact(size_t n, std::string* out, int timeout_ms = kDefaultTimeoutMs) {
    const int64_t deadline = core::monotonic_ms() + timeout_ms;
    while (buf_.size() < n) {
      ReadStatus s = fill(deadline);
      if (s != ReadStatus::kOk) return s;
    }
    out->assign(buf_, 0, n);
    buf_.erase(0, n);
    return ReadStatus::kOk;
  }
  // Takes everything up to and including `delim`.
  ReadStatus read_until(std::string_view delim, std::string* out,
                        int timeout_ms = kDefaultTimeoutMs, size_t max_bytes = 1 << 20) {
    const int64_t deadline = core::monotonic_ms() + timeout_ms;
    size_t pos;
    while ((pos = buf_.find(delim)) == std::string::npos) {
      if (buf_.size() > max_bytes) return ReadStatus::kTimeout;
      ReadStatus s = fill(deadline);
      if (s != ReadStatus::kOk) return s;
    }
    out->assign(buf_, 0, pos + delim.size());
    buf_.erase(0, pos + delim.size());
    return ReadStatus::kOk;
  }
  // Waits for the end of the stream. Bytes that arrive meanwhile are appended to buffered();
  // kEof is a FIN, kReset an RST.
  ReadStatus wait_closed(int timeout_ms = kDefaultTimeoutMs) {
    const int64_t deadline = core::monotonic_ms() + timeout_ms;
    for (;;) {
      ReadStatus s = fill(deadline);
      if (s != ReadStatus::kOk) return s;
    }
  }
  // True when nothing arrives (and the stream stays open) for `quiet_ms`.
  bool quiet_for(int quiet_ms) {
    size_t before = buf_.size();
    ReadStatus s = fill(core::monotonic_ms() + quiet_ms);
    return s == ReadStatus::kTimeout && buf_.size() == before;
  }
  // Reads whatever arrives within `timeout_ms` into buffered(); the final status.
  ReadStatus fill_for(int timeout_ms) { return fill(core::monotonic_ms() + timeout_ms); }

 private:
  ReadStatus fill(int64_t deadline_ms) {
    for (;;) {
      int64_t left = deadline_ms - core::monotonic_ms();
      if (left < 0) left = 0;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return ReadStatus::kTimeout;
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return ReadStatus::kEof;
      if (n < 0) return errno == ECONNRESET ? ReadStatus::kReset : ReadStatus::kTimeout;
      buf_.append(chunk, static_cast<size_t>(n));
      return ReadStatus::kOk;
    }
  }

  int fd_ = -1;
  std::string buf_;
};

// ---------------------------------------------------------------- HTTP

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

struct Response {
  ReadStatus read = ReadStatus::kTimeout;
  std::string status_line;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string head_bytes;  // the status line and headers as received

  bool has(std::string_view name) const {
    for (const auto& h : headers)
      if (iequals(h.first, name)) return true;
    return false;
  }
  std::string header(std::string_view name) const {
    for (const auto& h : headers)
      if (iequals(h.first, name)) return h.second;
    return {};
  }
};

// Reads one response. The body is read by Content-Length, except after HEAD (`head_request`),
// for 1xx, 204 and 304, whose responses end with the header section.
inline Response read_response(RawClient& client, bool head_request = false,
                              int timeout_ms = RawClient::kDefaultTimeoutMs) {
  Response r;
  r.read = client.read_until("\r\n\r\n", &r.head_bytes, timeout_ms);
  if (r.read != ReadStatus::kOk) return r;
  std::string_view rest(r.head_bytes);
  size_t eol = rest.find("\r\n");
  r.status_line = std::string(rest.substr(0, eol));
  if (r.status_line.size() >= 12 && r.status_line.compare(0, 5, "HTTP/") == 0)
    r.status = std::atoi(r.status_line.c_str() + 9);
  rest.remove_prefix(eol + 2);
  while (!rest.empty() && rest.substr(0, 2) != "\r\n") {
    eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    size_t colon = line.find(':');
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    rest.remove_prefix(eol + 2);
  }
  bool bodyless = head_request || r.status / 100 == 1 || r.status == 204 || r.status == 304;
  if (!bodyless && r.has("Content-Length")) {
    size_t len = std::strtoull(r.header("Content-Length").c_str(), nullptr, 10);
    r.read = client.read_exact(len, &r.body, timeout_ms);
  }
  return r;
}

inline std::string get_request(std::string_view path, std::string_view extra_headers = {},
                               std::string_view method = "GET") {
  std::string req(method);
  req.append(" ").append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  req.append(extra_headers).append("\r\n");
  return req;
}

// ---------------------------------------------------------------- WebSocket frames

inline constexpr uint8_t kOpCont = 0, kOpText = 1, kOpBinary = 2, kOpClose = 8, kOpPing = 9,
                         kOpPong = 10;
inline constexpr char kClientKey[] = "dGhlIHNhbXBsZSBub25jZQ==";
inline constexpr char kClientAccept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

inline std::string upgrade_request(std::string_view path = "/echo",
                                   std::string_view extra_headers = {}) {
  std::string req = "GET ";
  req.append(path).append(
      " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: ");
  req.append(kClientKey).append("\r\nSec-WebSocket-Version: 13\r\n");
  req.append(extra_headers).append("\r\n");
  return req;
}

struct FrameSpec {
  uint8_t opcode = kOpText;
  bool fin = true;
  uint8_t rsv = 0;  // the three RSV bits as a number 0..7 (RSV1 = 4)
  bool mask = true;
  int length_form = 0;  // 0: minimal; 2: force the 16-bit form; 8: force the 64-bit form
  uint64_t announced = UINT64_MAX;  // length written in the header if not the payload's
};

// A client frame, masked with a key derived from a running counter so no two frames share one.
inline std::string make_frame(const FrameSpec& spec, std::string_view payload) {
  static uint32_t key_state = 0x9e3779b9u;
  std::string out;
  out.push_back(
      static_cast<char>((spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0F)));
  uint64_t len = spec.announced != UINT64_MAX ? spec.announced : payload.size();
  int form = spec.length_form ? spec.length_form : (len < 126 ? 0 : len <= 0xFFFF ? 2 : 8);
  uint8_t mask_bit = spec.mask ? 0x80 : 0;
  if (form == 0) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else {
    out.push_back(static_cast<char>(mask_bit | (form == 2 ? 126 : 127)));
    for (int i = form - 1; i >= 0; --i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
  }
  size_t start = out.size() + (spec.mask ? 4 : 0);
  char key[4];
  if (spec.mask) {
    key_state ^= key_state << 13, key_state ^= key_state >> 17, key_state ^= key_state << 5;
    std::memcpy(key, &key_state, 4);
    out.append(key, 4);
  }
  out.append(payload);
  if (spec.mask)
    for (size_t i = start; i < out.size(); ++i)
      out[i] = static_cast<char>(out[i] ^ key[(i - start) & 3]);
  return out;
}

inline std::string frame(uint8_t opcode, std::string_view payload, bool fin = true) {
  FrameSpec spec;
  spec.opcode = opcode;
  spec.fin = fin;
  return make_frame(spec, payload);
}

inline std::string close_body(uint16_t code, std::string_view reason = {}) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  p.append(reason);
  return p;
}

inline std::string close_frame(uint16_t code, std::string_view reason = {}) {
  return frame(kOpClose, close_body(code, reason));
}

struct Frame {
  bool fin = false;
  uint8_t rsv = 0;
  uint8_t opcode = 0;
  bool masked = false;
  std::string payload;
  size_t wire_size = 0;

  uint16_t close_code() const {
    if (payload.size() < 2) return 1005;
    return static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                 static_cast<uint8_t>(payload[1]));
  }
};

// Reads one server frame (payloads arrive unmasked; a masked one is reported, not unmasked).
inline ReadStatus read_frame(RawClient& client, Frame* f,
                             int timeout_ms = RawClient::kDefaultTimeoutMs) {
  std::string h;
  ReadStatus s = client.read_exact(2, &h, timeout_ms);
  if (s != ReadStatus::kOk) return s;
  auto b0 = static_cast<uint8_t>(h[0]), b1 = static_cast<uint8_t>(h[1]);
  f->fin = b0 & 0x80;
  f->rsv = (b0 >> 4) & 7;
  f->opcode = b0 & 0x0F;
  f->masked = b1 & 0x80;
  uint64_t len = b1 & 0x7F;
  size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
  if (ext) {
    std::string e;
    if ((s = client.read_exact(ext, &e, timeout_ms)) != ReadStatus::kOk) return s;
    len = 0;
    for (char c : e) len = (len << 8) | static_cast<uint8_t>(c);
  }
  std::string key;
  if (f->masked && (s = client.read_exact(4, &key, timeout_ms)) != ReadStatus::kOk) return s;
  f->wire_size = 2 + ext + key.size() + len;
  return client.read_exact(len, &f->payload, timeout_ms);
}

// Connects and completes the opening handshake; the 101 (or the refusal) lands in `*response`.
inline std::unique_ptr<RawClient> open_websocket(uint16_t port, std::string_view extra_headers = {},
                                                 Response* response = nullptr,
                                                 std::string_view path = "/echo") {
  auto client = std::make_unique<RawClient>(port);
  if (!client->connected()) return nullptr;
  client->send(upgrade_request(path, extra_headers));
  Response r = read_response(*client);
  bool ok = r.status == 101 && r.header("Sec-WebSocket-Accept") == kClientAccept;
  if (response) *response = std::move(r);
  return ok ? std::move(client) : nullptr;
}

}  // namespace weir::harness
