// ws/http_connection.h — HTTP/1.1 on one connection: requests parsed by llhttp, pipelined
// responses written in request order, keep-alive and slowloris timeouts, and the upgrade
// to a WebSocket session.
//
// Responses may be produced later (a publish answered by a room's owner on another thread):
// each request gets a slot in order, and a slot's bytes go out only when every earlier slot
// has gone out. Reading pauses while max_pipelined responses are outstanding.
//
// Abuse limits: with handshakes_per_ip set, an upgrade over the address's rate is answered 429
// with Retry-After (counted in weir_limit_refusals_total{limit="handshakes_per_ip"}).
// make_refusal() is the answer to a connection over --max-connections-per-ip.
//
// Drain: after drain() every response carries Connection: close and the connection closes
// after it (an upgrade is answered 503). An idle keep-alive connection stays open meanwhile,
// so a load balancer probing /readyz over it reads the 503 instead of a reset;
// finish_drain(), at the end of the drain's spread, closes it (or after its request in
// progress).
//
// Thread-safety: none; a connection's handler lives on its reactor thread. A DeferredReply
// must be completed on that thread (post to connection().reactor()).
#pragma once

#include <any>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/timer_wheel.h"
#include "net/connection.h"
#include "net/ip_limits.h"
#include "ws/connection_state.h"
#include "ws/deflate_negotiation.h"
#include "ws/handshake.h"
#include "ws/http_parser.h"
#include "ws/websocket_session.h"

namespace weir::ws {

class HttpConnection;

struct HttpServerOptions {
  HttpParserConfig parser;
  int64_t request_timeout_ms = 10000;    // a started request must be complete within this (408)
  int64_t keepalive_timeout_ms = 60000;  // an idle keep-alive connection closes after this
  size_t max_pipelined = 16;             // outstanding responses before reading pauses
  net::RatePerIp* handshakes_per_ip = nullptr;  // shared by all threads; null: no limit
  HandshakeConfig handshake;
  DeflateServerPolicy deflate;
  WebSocketOptions websocket;
};

// A response slot that will be filled later, on the connection's reactor thread. Completing a
// reply whose connection has gone is a no-op.
class DeferredReply {
 public:
  DeferredReply() = default;
  void send(std::string response_bytes, bool close_after = false);
  // Builds the response like HttpReply::respond (HEAD and Connection: close handled).
  void respond(int status, std::string_view content_type, std::string_view body,
               std::string_view extra_header_lines = {});
  bool head_request() const { return head_; }

 private:
  friend class HttpConnection;
  friend class HttpReply;
  std::weak_ptr<HttpConnection*> conn_;
  uint64_t slot_ = 0;
  bool head_ = false;
  bool closing_ = false;
};

// What a route answers with. Either respond() now or defer() and complete later.
class HttpReply {
 public:
  void respond(int status, std::string_view content_type, std::string_view body,
               std::string_view extra_header_lines = {});
  void respond_error(int status, std::string_view reason);
  // For routes that answer asynchronously.
  DeferredReply defer();
  bool head_request() const { return head_; }

 private:
  friend class HttpConnection;
  HttpReply(HttpConnection* conn, uint64_t slot, bool head, bool closing)
      : conn_(conn), slot_(slot), head_(head), closing_(closing) {}
  HttpConnection* conn_;
  uint64_t slot_;
  bool head_;
  bool closing_;
  bool answered_ = false;
};

// An endpoint's decision on an upgrade request, before the 101 (authentication).
struct Admission {
  int status = 0;  // 0: admitted; else the refusal's status (401...), sent with Connection: close
  std::string content_type, body;
  std::string headers;  // extra header lines of the refusal, each ending in "\r\n"
  std::any context;     // admitted: what create_admitted() needs (a verified identity)
};

// A WebSocket application at a path; creates one handler per session.
class WebSocketEndpoint {
 public:
  virtual ~WebSocketEndpoint() = default;
  virtual std::unique_ptr<WebSocketHandler> create(WebSocketSession& session,
                                                   const HttpRequest& request) = 0;
  // Runs once the request passed the RFC 6455 checks, before the 101 is written: an endpoint
  // refuses by setting admission->status. The default admits everyone.
  virtual void admit(const HttpRequest& /*request*/, Admission* /*admission*/) {}
  // create() for an admitted request; the default ignores what admit() left.
  virtual std::unique_ptr<WebSocketHandler> create_admitted(WebSocketSession& session,
                                                            const HttpRequest& request,
                                                            Admission& /*admission*/) {
    return create(session, request);
  }
  // Subprotocols this endpoint speaks, most preferred first (none: no Sec-WebSocket-Protocol).
  virtual const std::vector<std::string>& subprotocols() const {
    static const std::vector<std::string> none;
    return none;
  }
};

// The server's routes (implemented above the ws layer).
class HttpRoutes {
 public:
  virtual ~HttpRoutes() = default;
  virtual void handle(const HttpRequest& request, HttpReply& reply) = 0;
  virtual WebSocketEndpoint* websocket_endpoint(std::string_view path) = 0;
};

class HttpConnection final : public net::ConnectionHandler {
 public:
  HttpConnection(net::Connection& conn, const HttpServerOptions& options, HttpRoutes* routes);
  ~HttpConnection() override;

  void on_data(net::Connection& conn, char* data, size_t len) override;
  void on_closed(net::Connection& conn, net::CloseReason reason, std::string_view detail) override;
  void on_peer_closed(net::Connection& conn) override;
  // Drain: the next response is the last (Connection: close); responses still owed are
  // answered, then the connection closes. Loop thread.
  void drain();
  // The drain's end: closes now when idle, else after the request in progress. Loop thread.
  void finish_drain();

 private:
  friend class DeferredReply;
  friend class HttpReply;
  struct Slot {
    uint64_t id;
    bool ready = false;
    bool close_after = false;
    std::string bytes;
  };

  void process(char* data, size_t len);
  void handle_request(const HttpRequest& request);
  void upgrade(const HttpRequest& request, char* rest, size_t rest_len);
  void refuse_handshake(const HandshakeResult& hs);
  bool admitted_by_rate();
  void refuse_admission(const Admission& admission);
  void reject(int status, std::string_view reason);
  void complete(uint64_t slot, std::string bytes, bool close_after);
  void write_ready_slots();
  void arm_timer();
  void on_timer();

  net::Connection& conn_;
  const HttpServerOptions& options_;
  HttpRoutes* routes_;
  HttpParser parser_;
  std::deque<Slot> slots_;
  uint64_t next_slot_ = 1;
  bool closing_ = false;   // a response with Connection: close is queued; nothing more is read
  bool draining_ = false;  // the server drains: the next response is the last
  core::ByteBuffer held_;  // bytes not parsed while max_pipelined responses are outstanding
  std::shared_ptr<HttpConnection*> self_;
  int64_t request_started_ms_ = -1;
  int64_t last_activity_ms_ = 0;
  int64_t timer_deadline_ms_ = 0;  // when timer_ is set to fire
  core::Timer timer_;
  ConnectionState connection_state_{ConnectionState::State::kHandshaking};
};

// The handler of a connection refused before its first request (over
// --max-connections-per-ip): it answers `status` with the JSON `body` and Connection: close at
// once, without reading the request, then closes (the peer's bytes are drained meanwhile, so
// the answer is not lost to a reset).
std::unique_ptr<net::ConnectionHandler> make_refusal(net::Connection& conn, int status,
                                                     std::string_view body,
                                                     std::string_view extra_header_lines = {});

// The zlib workspace of the calling reactor thread (created on first use, destroyed with the
// thread).
DeflateWorkspace& thread_deflate_workspace();

}  // namespace weir::ws
