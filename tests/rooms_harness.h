// tests/rooms_harness.h — an in-process rooms server wired like server/http_service.cc
// (RoomService attached per reactor thread, RoomsEndpoint on /ws, RoomsApi under /api/rooms/,
// optionally a store), a blocking /ws client that masks its frames and parses envelopes, and
// helpers for the HTTP API, /metrics and ordered collection of messages. Shared by
// rooms_test.cc and rooms_store_test.cc.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/member.h"
#include "cluster/room_service.h"
#include "cluster/rooms_endpoint.h"
#include "server/routes.h"
#include "tests/server_harness.h"

namespace weir {
namespace {

using harness::ReadStatus;
using std::chrono::milliseconds;
constexpr char kApiKey[] = "test-key-0123456789";

// ---------------------------------------------------------------- the server

class RoomsServer {
 public:
  // `store`: where history and sessions go (outlives the server); null runs without one.
  explicit RoomsServer(int threads, cluster::RoomsConfig rooms = {}, std::string api_key = kApiKey,
                       store::Store* store = nullptr)
      : service_(rooms, threads), api_(service_, std::move(api_key)) {
    if (store) {
      service_.set_store(store);
      service_.set_session_key("rooms-test-session-key");
      routes_.set_store(store, "async");
    }
    net::TcpServerOptions tcp;
    std::string error;
    net::SocketAddress::parse("127.0.0.1:0", &tcp.listen, &error);
    tcp.threads = threads;
    tcp.connection.high_watermark = rooms.high_watermark;  // http_service.cc uses one flag for both
    tcp.connection.low_watermark = rooms.low_watermark;
    tcp.connection.max_buffer = rooms.max_buffer;
    tcp.connection.keep_open_on_peer_closed = true;
    routes_.add_websocket("/ws", std::make_unique<cluster::RoomsEndpoint>(service_));
    routes_.set_rooms_api(&api_);
    routes_.set_ready(true);
    server_ = std::make_unique<net::TcpServer>(tcp, [this](net::Connection& conn) {
      return std::make_unique<ws::HttpConnection>(conn, http_, &routes_);
    });
    server_->set_thread_init([this](core::Reactor& reactor) { service_.attach(reactor); });
    started_ = server_->start(&error_);
  }
  ~RoomsServer() { server_->stop(); }

  bool started() const { return started_; }
  uint16_t port() const { return server_->port(); }
  size_t open_connections() const { return server_->open_connections(); }
  cluster::RoomService& service() { return service_; }

  // Runs `fn` on reactor thread `i` (where shard state may be read) and returns its result.
  template <typename Fn>
  auto on_thread(int i, Fn fn) -> decltype(fn()) {
    auto done = std::make_shared<std::promise<decltype(fn())>>();
    auto result = done->get_future();
    server_->reactor(i).post([done, fn]() mutable { done->set_value(fn()); });
    return result.get();
  }
  // member_ids of the room's members whose connections live on thread `i`.
  std::set<std::string> members_on(int i, const std::string& room) {
    return on_thread(i, [this, i, room] {
      std::set<std::string> names;
      if (cluster::LocalRoom* r = service_.shard(i).local_room(room))
        for (cluster::Member* m : r->members) names.insert(m->name());
      return names;
    });
  }
  // Rooms owned plus local room views over every shard: 0 once nobody is in any room.
  size_t room_state() {
    size_t n = 0;
    for (int i = 0; i < service_.threads(); ++i)
      n += on_thread(i, [this, i] {
        return service_.shard(i).owned_rooms() + service_.shard(i).local_rooms();
      });
    return n;
  }

 private:
  cluster::RoomService service_;  // outlives the server: members point at it
  cluster::RoomsApi api_;
  server::Routes routes_;
  ws::HttpServerOptions http_;
  std::unique_ptr<net::TcpServer> server_;
  std::string error_;
  bool started_ = false;
};

// ---------------------------------------------------------------- envelopes

// One server envelope, flattened: {"<type>":{<field>:<string|uint|array>}}. A close frame reads
// as type "close" with its code and reason.
struct Env {
  std::string type, raw;
  std::map<std::string, std::string> str;
  std::map<std::string, uint64_t> num;
  std::map<std::string, size_t> arrays;
  std::map<std::string, bool> flags;
  uint16_t close_code = 0;
  std::string close_reason;

  bool has(const std::string& k) const { return str.count(k) || num.count(k) || arrays.count(k); }
  std::string s(const std::string& k) const { return str.count(k) ? str.at(k) : "<absent>"; }
  uint64_t n(const std::string& k) const { return num.count(k) ? num.at(k) : UINT64_MAX; }
  // A boolean field: "true", "false", or "<absent>".
  std::string b(const std::string& k) const {
    return flags.count(k) ? (flags.at(k) ? "true" : "false") : "<absent>";
  }
};

inline bool parse_env(std::string_view json, Env* e) {
  thread_local simdjson::dom::parser parser;
  e->raw = std::string(json);
  simdjson::dom::object top, body;
  if (parser.parse(e->raw).get(top) || top.size() != 1) return false;
  for (auto [key, value] : top) {
    e->type = std::string(key);
    if (value.get(body)) return false;
  }
  for (auto [key, value] : body) {
    std::string k(key);
    std::string_view sv;
    uint64_t u;
    simdjson::dom::array arr;
    bool flag;
    if (!value.get(sv))
      e->str[k] = std::string(sv);
    else if (!value.get(flag))
      e->flags[k] = flag;
    else if (!value.get(u))
      e->num[k] = u;
    else if (!value.get(arr))
      e->arrays[k] = arr.size();
    else
      return false;
  }
  return true;
}

// ---------------------------------------------------------------- a /ws client

// A blocking rooms client on a raw socket. One thread may send while another reads.
class WsConn {
 public:
  // Opens /ws. `rcvbuf` > 0 shrinks the socket's receive buffer before connecting (so the
  // window is small from the SYN on), so a member that stops reading fills the server's queue
  // instead of the kernel's.
  explicit WsConn(uint16_t port, std::string_view extra_headers = {}, int rcvbuf = 0,
                  std::string_view path = "/ws") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    send_bytes(harness::upgrade_request(path, extra_headers));
    if (!read_head()) return;
    ok_ = status_ == 101 && recv(&session_) == ReadStatus::kOk && session_.type == "session";
  }
  ~WsConn() { close(); }
  WsConn(const WsConn&) = delete;
  WsConn& operator=(const WsConn&) = delete;

  bool ok() const { return ok_; }
  // A response header of the handshake; "<absent>" when not sent.
  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers_)
      if (harness::iequals(k, name)) return v;
    return "<absent>";
  }
  const Env& session() const { return session_; }
  const std::string& member_id() const { return session_.str.at("member_id"); }
  bool ignore_messages = false;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void reset() {  // RST instead of FIN
    linger l{1, 0};
    if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  // Waits for the server to end the stream: kEof or kReset.
  ReadStatus wait_closed(int timeout_ms = 3000) {
    const int64_t deadline = core::monotonic_ms() + timeout_ms;
    ReadStatus s;
    while ((s = fill(deadline)) == ReadStatus::kOk) {
      buf_.clear();
      pos_ = 0;
    }
    return s;
  }
  bool send_bytes(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // A masked client frame (the key from a per-connection sequence: a sender thread owns it).
  std::string frame(uint8_t opcode, std::string_view payload) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | opcode));
    size_t len = payload.size();
    if (len < 126) {
      f.push_back(static_cast<char>(0x80 | len));
    } else if (len <= 0xFFFF) {
      f.push_back(static_cast<char>(0x80 | 126));
      f.push_back(static_cast<char>(len >> 8));
      f.push_back(static_cast<char>(len & 0xFF));
    } else {
      f.push_back(static_cast<char>(0x80 | 127));
      for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
    }
    mask_ = mask_ * 1103515245u + 12345u;
    char key[4];
    std::memcpy(key, &mask_, 4);
    f.append(key, 4);
    for (size_t i = 0; i < len; ++i) f.push_back(static_cast<char>(payload[i] ^ key[i & 3]));
    return f;
  }
  bool send_frame(uint8_t opcode, std::string_view payload) {
    return send_bytes(frame(opcode, payload));
  }
  bool send(std::string_view json) { return send_frame(harness::kOpText, json); }

  // The next envelope; pings and pongs are skipped, a close frame reads as type "close".
  ReadStatus recv(Env* e, int timeout_ms = 3000) {
    harness::Frame f;
    for (;;) {
      ReadStatus s = read_frame(&f, timeout_ms);
      if (s != ReadStatus::kOk) return s;
      if (f.opcode == harness::kOpClose) {
        *e = Env{};
        e->type = "close";
        e->close_code = f.close_code();
        if (f.payload.size() > 2) e->close_reason = f.payload.substr(2);
        return s;
      }
      if (f.opcode != harness::kOpText) continue;
      *e = Env{};
      if (!parse_env(f.payload, e)) e->type = "unparsable: " + f.payload;
      return s;
    }
  }
  // The next envelope, which must be of `type` (room messages are skipped when
  // `ignore_messages`: other members' traffic in a shared room).
  Env expect(const std::string& type, int timeout_ms = 3000) {
    Env e;
    ReadStatus s;
    do {
      s = recv(&e, timeout_ms);
    } while (s == ReadStatus::kOk && ignore_messages && e.type == "message" && type != "message");
    EXPECT_EQ(s, ReadStatus::kOk) << "waiting for " << type << ": " << harness::to_string(s);
    EXPECT_EQ(e.type, type) << e.raw;
    return e;
  }
  Env join(const std::string& room) {
    send(R"({"join_room":{"room_id":")" + room + R"("}})");
    Env e = expect("room_joined");
    EXPECT_EQ(e.s("room_id"), room);
    return e;
  }
  void publish(const std::string& room, const std::string& content) {
    send(R"({"message":{"target":")" + room + R"(","content":")" + content + R"("}})");
  }
  // True when no frame arrives for `ms`.
  bool quiet_for(int ms) {
    harness::Frame f;
    return read_frame(&f, ms) == ReadStatus::kTimeout;
  }
  ReadStatus read_frame(harness::Frame* f, int timeout_ms) {
    const int64_t deadline = core::monotonic_ms() + timeout_ms;
    for (;;) {
      if (take_frame(f)) return ReadStatus::kOk;
      ReadStatus s = fill(deadline);
      if (s != ReadStatus::kOk) return s;
    }
  }

 private:
  // Reads once (what arrives by `deadline_ms`) into the buffer.
  ReadStatus fill(int64_t deadline_ms) {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      int r =
          ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, deadline_ms - core::monotonic_ms())));
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
  // The handshake response's status line and headers.
  bool read_head() {
    const int64_t deadline = core::monotonic_ms() + 3000;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (fill(deadline) != ReadStatus::kOk) return false;
    std::string head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    if (head.size() > 12) status_ = std::atoi(head.c_str() + 9);
    for (size_t at = head.find("\r\n") + 2; at < head.size();) {
      size_t eol = head.find("\r\n", at), colon = head.find(':', at);
      if (colon < eol) {
        size_t v = head.find_first_not_of(' ', colon + 1);
        headers_.emplace_back(head.substr(at, colon - at), head.substr(v, eol - v));
      }
      at = eol + 2;
    }
    return true;
  }
  // Parses one frame from the buffered bytes without erasing per frame (a burst is thousands).
  bool take_frame(harness::Frame* f) {
    auto at = [&](size_t i) { return static_cast<uint8_t>(buf_[pos_ + i]); };
    size_t avail = buf_.size() - pos_;
    bool done = false;
    if (avail >= 2) {
      uint64_t len = at(1) & 0x7F;
      size_t head = len == 126 ? 4 : len == 127 ? 10 : 2;
      if (avail >= head) {
        if (head > 2) len = 0;
        for (size_t i = 2; i < head; ++i) len = (len << 8) | at(i);
        if (avail >= head + len) {
          f->fin = at(0) & 0x80;
          f->opcode = at(0) & 0x0F;
          f->payload.assign(buf_, pos_ + head, len);
          pos_ += head + len;
          done = true;
        }
      }
    }
    if (!done || pos_ > (1u << 20)) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    return done;
  }

  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
  int status_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  Env session_;
  bool ok_ = false;
  uint32_t mask_ = 0x2545F491u;
};

// ---------------------------------------------------------------- HTTP and metrics

inline harness::Response http(uint16_t port, const std::string& method, const std::string& path,
                              const std::string& headers = {}, const std::string& body = {}) {
  harness::RawClient c(port);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers;
  if (method == "POST")
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  c.send(req);
  return harness::read_response(c);
}

inline std::string bearer(const std::string& key = kApiKey) {
  return "Authorization: Bearer " + key + "\r\n";
}

inline harness::Response api_publish(uint16_t port, const std::string& room,
                                     const std::string& body) {
  return http(port, "POST", "/api/rooms/" + room + "/messages", bearer(), body);
}

inline Env json_body(const harness::Response& r) {  // wraps a flat object as {"body":{...}}
  Env e;
  std::string body = r.body;
  while (!body.empty() && body.back() == '\n') body.pop_back();
  if (!parse_env("{\"body\":" + body + "}", &e)) e.type = "unparsable: " + r.body;
  return e;
}

// A sample's value from /metrics ("name" or "name{labels}"); -1 when absent.
inline double metric(uint16_t port, const std::string& sample) {
  harness::Response r = http(port, "GET", "/metrics");
  size_t at = r.body.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(r.body.c_str() + at + sample.size() + 2, nullptr);
}

inline double slow_actions(uint16_t port, const std::string& action) {
  return metric(port, "weir_slow_consumer_actions_total{action=\"" + action + "\"}");
}

template <typename Pred>
bool eventually(Pred pred, int timeout_ms = 5000) {
  const int64_t deadline = core::monotonic_ms() + timeout_ms;
  while (!pred()) {
    if (core::monotonic_ms() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

inline size_t open_descriptors() {
  size_t n = 0;
  for ([[maybe_unused]] auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Reads a member's envelopes on its own thread until it has seen `ends` messages whose content
// starts with "end" (or a close, EOF, or `timeout_ms` of silence), recording what came in order.
class Collector {
 public:
  explicit Collector(WsConn& conn, int ends = 1, int timeout_ms = 5000) : conn_(conn) {
    thread_ = std::thread([this, ends, timeout_ms] {
      Env e;
      int seen = 0;
      while (seen < ends && conn_.recv(&e, timeout_ms) == ReadStatus::kOk) {
        if (e.type == "message") {
          offsets.push_back(e.n("offset"));
          contents.push_back(e.s("content"));
          rooms.push_back(e.s("target"));
          count.fetch_add(1);
          if (e.s("content").rfind("end", 0) == 0) ++seen;
        } else {
          others.push_back(e);
          if (e.type == "close") break;
        }
      }
    });
  }
  ~Collector() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  std::vector<uint64_t> offsets;
  std::vector<std::string> contents;
  std::vector<std::string> rooms;
  std::vector<Env> others;  // envelopes other than messages
  std::atomic<size_t> count{0};

 private:
  WsConn& conn_;
  std::thread thread_;
};

// Offsets must run first, first+1, ... with no gap or duplicate.
inline ::testing::AssertionResult contiguous(const std::vector<uint64_t>& offsets, uint64_t first) {
  for (size_t i = 0; i < offsets.size(); ++i)
    if (offsets[i] != first + i)
      return ::testing::AssertionFailure()
             << "offset #" << i << " is " << offsets[i] << ", expected " << first + i;
  return ::testing::AssertionSuccess();
}

inline std::string pad(size_t n, char c = 'x') {
  return std::string(n, c);
}

}  // namespace
}  // namespace weir
