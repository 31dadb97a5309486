// ws/http_connection.cc — HTTP/1.1 request handling and the WebSocket upgrade.
#include "ws/http_connection.h"

#include <algorithm>
#include <cstdlib>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "ws/http_response.h"

namespace weir::ws {
namespace {

core::Counter g_responses[] = {
    {"weir_http_responses_total", "HTTP responses sent, by status class", "class=\"1xx\""},
    {"weir_http_responses_total", "HTTP responses sent, by status class", "class=\"2xx\""},
    {"weir_http_responses_total", "HTTP responses sent, by status class", "class=\"3xx\""},
    {"weir_http_responses_total", "HTTP responses sent, by status class", "class=\"4xx\""},
    {"weir_http_responses_total", "HTTP responses sent, by status class", "class=\"5xx\""},
};
core::Counter g_hs_ok("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                      "result=\"accepted\"");
core::Counter g_hs_bad("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                       "result=\"bad_request\"");
core::Counter g_hs_origin("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                          "result=\"forbidden_origin\"");
core::Counter g_hs_version("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                           "result=\"unsupported_version\"");
core::Counter g_hs_method("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                          "result=\"method_not_allowed\"");
core::Counter g_hs_path("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                        "result=\"not_found\"");
core::Counter g_hs_unauthorized("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                                "result=\"unauthorized\"");
core::Counter g_hs_rate("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                        "result=\"rate_limited\"");
core::Counter g_hs_draining("weir_ws_handshakes_total", "WebSocket handshakes, by result",
                            "result=\"draining\"");
// The same family as the rooms' limit="rooms_per_connection" (cluster/member.cc) and the
// server's limit="connections_per_ip" (net/tcp_server.cc): one name, one help text.
core::Counter g_hs_refused("weir_limit_refusals_total", "Requests refused by a limit, by limit",
                           "limit=\"handshakes_per_ip\"");
core::Counter g_timeouts("weir_http_request_timeouts_total",
                         "Requests answered 408 (headers or body too slow)");

void count_response(int status) {
  int cls = status / 100;
  if (cls >= 1 && cls <= 5) g_responses[cls - 1].inc();
}

void count_handshake_failure(int status) {
  switch (status) {
    case 403:
      return g_hs_origin.inc();
    case 426:
      return g_hs_version.inc();
    case 405:
      return g_hs_method.inc();
    case 404:
      return g_hs_path.inc();
    case 401:
      return g_hs_unauthorized.inc();
    default:
      return g_hs_bad.inc();
  }
}

// --otlp-endpoint: one span per WebSocket upgrade request, its path and how it was answered
// (the result names of weir_ws_handshakes_total); a traceparent header is continued.
class HandshakeSpan {
 public:
  explicit HandshakeSpan(const HttpRequest& request) : traced_(core::tracing_enabled()) {
    if (!traced_) return;
    span_.start("ws.handshake", core::Span::Kind::kServer, request.header("traceparent"),
                request.header("tracestate"));
    span_.add("url.path", request.path());
  }
  ~HandshakeSpan() {
    if (!traced_) return;
    span_.add("http.response.status_code", int64_t{status});
    span_.add("weir.handshake.result", result_name(status));
    span_.end();
  }
  int status = 101;

 private:
  static const char* result_name(int status) {
    switch (status) {
      case 101:
        return "accepted";
      case 403:
        return "forbidden_origin";
      case 426:
        return "unsupported_version";
      case 405:
        return "method_not_allowed";
      case 404:
        return "not_found";
      case 401:
        return "unauthorized";
      case 429:
        return "rate_limited";
      case 503:
        return "draining";
      default:
        return "bad_request";
    }
  }
  bool traced_;
  core::Span span_;
};

thread_local std::unique_ptr<DeflateWorkspace> t_workspace;

// Answers at once and closes; whatever the peer sends is drained by the close, unread.
class RefusedConnection final : public net::ConnectionHandler {
 public:
  RefusedConnection(net::Connection& conn, const std::string& response) {
    conn.write(response);
    conn.close();
  }
  void on_data(net::Connection&, char*, size_t) override {}
  void on_closed(net::Connection&, net::CloseReason, std::string_view) override {}

 private:
  ConnectionState connection_state_{ConnectionState::State::kClosing};
};

}  // namespace

std::unique_ptr<net::ConnectionHandler> make_refusal(net::Connection& conn, int status,
                                                     std::string_view body,
                                                     std::string_view extra_header_lines) {
  std::string bytes;
  HttpResponse response(&bytes, status);
  response.header("Content-Type", "application/json");
  response.raw_headers(extra_header_lines).close(true).end(body);
  count_response(status);
  return std::make_unique<RefusedConnection>(conn, bytes);
}

DeflateWorkspace& thread_deflate_workspace() {
  if (!t_workspace) t_workspace = std::make_unique<DeflateWorkspace>();
  return *t_workspace;
}

// ---------------------------------------------------------------- replies

void DeferredReply::send(std::string response_bytes, bool close_after) {
  auto conn = conn_.lock();
  if (!conn || !*conn) return;
  (*conn)->complete(slot_, std::move(response_bytes), close_after);
}

void DeferredReply::respond(int status, std::string_view content_type, std::string_view body,
                            std::string_view extra_header_lines) {
  std::string bytes;
  bytes.reserve(160 + body.size());
  HttpResponse response(&bytes, status);
  if (!content_type.empty()) response.header("Content-Type", content_type);
  response.raw_headers(extra_header_lines).close(closing_).end(body, head_);
  send(std::move(bytes), closing_);
}

void HttpReply::respond(int status, std::string_view content_type, std::string_view body,
                        std::string_view extra_header_lines) {
  std::string bytes;
  bytes.reserve(160 + body.size());
  HttpResponse response(&bytes, status);
  if (!content_type.empty()) response.header("Content-Type", content_type);
  response.raw_headers(extra_header_lines).close(closing_).end(body, head_);
  answered_ = true;
  conn_->complete(slot_, std::move(bytes), closing_);
}

void HttpReply::respond_error(int status, std::string_view reason) {
  answered_ = true;
  conn_->complete(slot_, make_error_response(status, reason, closing_, head_), closing_);
}

DeferredReply HttpReply::defer() {
  answered_ = true;
  DeferredReply deferred;
  deferred.conn_ = conn_->self_;
  deferred.slot_ = slot_;
  deferred.head_ = head_;
  deferred.closing_ = closing_;
  return deferred;
}

// ---------------------------------------------------------------- connection

HttpConnection::HttpConnection(net::Connection& conn, const HttpServerOptions& options,
                               HttpRoutes* routes)
    : conn_(conn),
      options_(options),
      routes_(routes),
      parser_(options.parser),
      self_(std::make_shared<HttpConnection*>(this)) {
  last_activity_ms_ = conn_.reactor().now_ms();
  timer_.set_callback([this] { on_timer(); });
  // A fresh connection must send its first request within the request timeout.
  conn_.reactor().schedule(timer_, options_.request_timeout_ms);
  timer_deadline_ms_ = last_activity_ms_ + options_.request_timeout_ms;
}

HttpConnection::~HttpConnection() {
  *self_ = nullptr;
}

void HttpConnection::on_data(net::Connection&, char* data, size_t len) {
  last_activity_ms_ = conn_.reactor().now_ms();
  if (closing_) return;  // answering a last request; later bytes are not ours to parse
  if (!held_.empty()) {
    held_.append(data, len);
    return;
  }
  process(data, len);
}

void HttpConnection::process(char* data, size_t len) {
  size_t offset = 0;
  while (offset < len && !closing_) {
    if (slots_.size() >= options_.max_pipelined) {
      held_.append(data + offset, len - offset);
      conn_.suspend_reading();
      return;
    }
    if (request_started_ms_ < 0) {
      request_started_ms_ = conn_.reactor().now_ms();
      arm_timer();
    }
    FeedResult r = parser_.feed(data + offset, len - offset);
    offset += r.consumed;
    switch (r.status) {
      case FeedStatus::kNeedMore:
        if (!parser_.mid_request()) request_started_ms_ = -1;
        return;
      case FeedStatus::kRequest:
        request_started_ms_ = -1;
        handle_request(parser_.request());
        if (!closing_) arm_timer();  // now idle: the keep-alive deadline may be nearer
        break;
      case FeedStatus::kUpgrade:
        request_started_ms_ = -1;
        if (!parser_.request().header_has_token("Upgrade", "websocket")) {
          // RFC 9110 7.8: an upgrade we do not speak (h2c, TLS/1.0) is ignored and the
          // request answered over HTTP/1.1, where the client keeps talking.
          handle_request(parser_.request());
          parser_.reset();
          break;
        }
        upgrade(parser_.request(), data + offset, len - offset);
        return;
      case FeedStatus::kError:
        reject(r.http_status, r.reason);
        return;
    }
  }
}

void HttpConnection::handle_request(const HttpRequest& request) {
  // An Upgrade header at a WebSocket path that llhttp did not take for an upgrade (no
  // "Connection: upgrade") is a broken handshake: refuse it as one, 400 with the reason, and
  // close, rather than answer it as plain HTTP and parse the frames behind it as requests.
  WebSocketEndpoint* endpoint = routes_->websocket_endpoint(request.path());
  if (endpoint && request.has_header("Upgrade")) {
    HandshakeConfig handshake = options_.handshake;
    handshake.subprotocols = endpoint->subprotocols();
    HandshakeResult hs = validate_upgrade(request, handshake);
    if (hs.ok) {  // llhttp read the Connection tokens differently; the stricter reading wins
      hs.ok = false;
      hs.status = 400;
      hs.reason = "Connection header must include upgrade";
    }
    refuse_handshake(hs);
    return;
  }
  bool close = !request.keep_alive() || draining_;
  uint64_t id = next_slot_++;
  slots_.push_back(Slot{id, false, false, {}});
  if (close) closing_ = true;
  HttpReply reply(this, id, request.method() == HttpMethod::kHead, close);
  routes_->handle(request, reply);
  if (!reply.answered_) reply.respond_error(500, "the route produced no response");
}

void HttpConnection::upgrade(const HttpRequest& request, char* rest, size_t rest_len) {
  HandshakeSpan span(request);
  if (draining_) {
    span.status = 503;
    g_hs_draining.inc();
    reject(503, "the server is shutting down: connect again (another node will answer)");
    return;
  }
  if (!admitted_by_rate()) {
    span.status = 429;
    return;
  }
  WebSocketEndpoint* endpoint = routes_->websocket_endpoint(request.path());
  if (!endpoint) {
    span.status = 404;
    count_handshake_failure(404);
    reject(404, "no WebSocket endpoint at this path");
    return;
  }
  HandshakeConfig handshake = options_.handshake;
  handshake.subprotocols = endpoint->subprotocols();
  HandshakeResult hs = validate_upgrade(request, handshake);
  if (!hs.ok) {
    span.status = hs.status;
    refuse_handshake(hs);
    return;
  }
  if (!slots_.empty()) {  // a deferred answer to an earlier request is still owed
    span.status = 400;
    reject(400, "upgrade pipelined behind an unanswered request");
    return;
  }
  Admission admission;
  endpoint->admit(request, &admission);
  if (admission.status != 0) {
    span.status = admission.status;
    refuse_admission(admission);
    return;
  }
  DeflateAgreement deflate;
  if (options_.deflate.mode != DeflateMode::kOff && !hs.extensions.empty()) {
    deflate = negotiate_deflate(hs.extensions, options_.deflate);
    if (deflate.accepted)
      hs.extra_response_headers = "Sec-WebSocket-Extensions: " + deflate.response + "\r\n";
  }
  g_hs_ok.inc();
  count_response(101);
  conn_.write(build_upgrade_response(hs));
  timer_.cancel();
  connection_state_.set(ConnectionState::State::kNone);  // the session counts it from here
  auto session = std::make_unique<WebSocketSession>(conn_, options_.websocket,
                                                    deflate.accepted ? &deflate.params : nullptr,
                                                    &thread_deflate_workspace(), hs.subprotocol);
  WebSocketSession* s = session.get();
  s->set_path(request.path());
  conn_.set_handler(std::move(session));  // retires this handler after the iteration
  s->start(endpoint->create_admitted(*s, request, admission));
  if (rest_len > 0 && s->is_open()) s->on_data(conn_, rest, rest_len);
}

// The refusal goes out after the responses owed before it; then the connection closes (the
// bytes behind a handshake may be WebSocket frames, never to be parsed as HTTP).
void HttpConnection::refuse_handshake(const HandshakeResult& hs) {
  count_handshake_failure(hs.status);
  closing_ = true;
  slots_.push_back(Slot{next_slot_++, true, true, build_rejection_response(hs)});
  write_ready_slots();
}

// The endpoint refused the upgrade (authentication): its answer, then close.
void HttpConnection::refuse_admission(const Admission& admission) {
  count_handshake_failure(admission.status);
  closing_ = true;
  std::string bytes;
  HttpResponse response(&bytes, admission.status);
  if (!admission.content_type.empty()) response.header("Content-Type", admission.content_type);
  response.raw_headers(admission.headers).close(true).end(admission.body);
  slots_.push_back(Slot{next_slot_++, true, true, std::move(bytes)});
  write_ready_slots();
}

// --handshakes-per-ip-per-sec: every upgrade request counts, good or bad (a bad one costs us as
// much to refuse). Over the rate: 429 with Retry-After, then close.
bool HttpConnection::admitted_by_rate() {
  if (!options_.handshakes_per_ip) return true;
  int64_t retry_ns = 0;
  if (options_.handshakes_per_ip->take(conn_.peer(), core::monotonic_ns(), &retry_ns)) return true;
  g_hs_rate.inc();
  g_hs_refused.inc();
  int64_t retry_ms = std::max<int64_t>(1, (retry_ns + 999'999) / 1'000'000);
  std::string body =
      "{\"error\":{\"code\":\"rate_limited\",\"message\":\"too many WebSocket handshakes from "
      "this address (--handshakes-per-ip-per-sec)\",\"limit\":\"handshakes_per_ip\","
      "\"retry_after_ms\":" +
      std::to_string(retry_ms) + "}}\n";
  std::string retry_after = "Retry-After: " + std::to_string((retry_ms + 999) / 1000) + "\r\n";
  std::string bytes;
  HttpResponse response(&bytes, 429);
  response.header("Content-Type", "application/json");
  response.raw_headers(retry_after).close(true).end(body);
  log_debug("connection %llu %s: handshake over --handshakes-per-ip-per-sec",
            static_cast<unsigned long long>(conn_.id()), conn_.peer().to_string().c_str());
  closing_ = true;
  slots_.push_back(Slot{next_slot_++, true, true, std::move(bytes)});
  write_ready_slots();
  return false;
}

// Answers a malformed or refused request after the responses owed before it, then closes.
void HttpConnection::reject(int status, std::string_view reason) {
  log_debug("connection %llu %s: HTTP %d: %.*s", static_cast<unsigned long long>(conn_.id()),
            conn_.peer().to_string().c_str(), status, static_cast<int>(reason.size()),
            reason.data());
  closing_ = true;
  uint64_t id = next_slot_++;
  slots_.push_back(Slot{id, false, false, {}});
  complete(id, make_error_response(status, reason, true), true);
}

void HttpConnection::complete(uint64_t slot, std::string bytes, bool close_after) {
  for (Slot& s : slots_) {
    if (s.id != slot) continue;
    s.ready = true;
    s.close_after = close_after;
    s.bytes = std::move(bytes);
    break;
  }
  write_ready_slots();
}

void HttpConnection::write_ready_slots() {
  while (!slots_.empty() && slots_.front().ready) {
    Slot& s = slots_.front();
    if (s.bytes.size() > 12) count_response(std::atoi(s.bytes.c_str() + 9));  // "HTTP/1.1 NNN"
    conn_.write(s.bytes);
    if (s.close_after) {
      slots_.clear();
      timer_.cancel();
      conn_.close();
      return;
    }
    slots_.pop_front();
  }
  if (!held_.empty() && slots_.size() < options_.max_pipelined) {
    // Parse what arrived while the pipeline was full; new bytes queue behind it meanwhile.
    core::ByteBuffer pending;
    pending.append(held_.peek(), held_.readable());
    held_.retrieve_all();
    held_.shrink_if_empty();
    process(pending.peek(), pending.readable());
    if (held_.empty()) conn_.resume_reading();
  }
  if (closing_ && slots_.empty() && !conn_.closing()) conn_.close();
}

void HttpConnection::on_peer_closed(net::Connection&) {
  closing_ = true;  // answer what was asked, then close
  if (slots_.empty()) conn_.close();
}

void HttpConnection::drain() {
  draining_ = true;
  // Responses still owed (no request half-read): answer them, then close.
  if (!closing_ && !slots_.empty() && request_started_ms_ < 0 && !parser_.mid_request())
    closing_ = true;
}

void HttpConnection::finish_drain() {
  draining_ = true;
  if (closing_ || request_started_ms_ >= 0 || parser_.mid_request()) return;  // closes after it
  closing_ = true;
  if (slots_.empty()) {
    timer_.cancel();
    conn_.close();
  }
}

void HttpConnection::on_closed(net::Connection&, net::CloseReason, std::string_view) {
  timer_.cancel();
  if (connection_state_.state() != ConnectionState::State::kNone)
    connection_state_.set(ConnectionState::State::kClosing);
  *self_ = nullptr;
}

// One timer serves both limits: a started request must finish within request_timeout (408,
// against slowloris), an idle keep-alive connection closes after keepalive_timeout.
void HttpConnection::on_timer() {
  int64_t now = conn_.reactor().now_ms();
  if (request_started_ms_ >= 0 || next_slot_ == 1) {
    int64_t started = request_started_ms_ >= 0 ? request_started_ms_ : last_activity_ms_;
    int64_t left = started + options_.request_timeout_ms - now;
    if (left <= 0) {
      g_timeouts.inc();
      parser_.reset();
      reject(408, "request not received in time");
      return;
    }
    conn_.reactor().schedule(timer_, left);
    timer_deadline_ms_ = now + left;
    return;
  }
  int64_t left = last_activity_ms_ + options_.keepalive_timeout_ms - now;
  if (left <= 0 && slots_.empty()) {
    conn_.close();
    return;
  }
  left = left > 0 ? left : options_.keepalive_timeout_ms;
  conn_.reactor().schedule(timer_, left);
  timer_deadline_ms_ = now + left;
}

// Makes the timer fire by the deadline that applies now if that is nearer than the one it is
// set for: a started request's (408) or, between requests, the idle connection's. Later
// deadlines are left to on_timer, which re-arms for the remainder, so a steady stream of
// requests rarely touches the wheel.
void HttpConnection::arm_timer() {
  const int64_t now = conn_.reactor().now_ms();
  const int64_t deadline = request_started_ms_ >= 0
                               ? request_started_ms_ + options_.request_timeout_ms
                               : now + options_.keepalive_timeout_ms;
  if (timer_.pending() && timer_deadline_ms_ <= deadline) return;
  timer_deadline_ms_ = deadline;
  conn_.reactor().schedule(timer_, deadline - now);
}

}  // namespace weir::ws
