// ws/websocket_session.cc — WebSocket session: framing, deflate, keepalive, close handshake.
#include "ws/websocket_session.h"

#include <algorithm>
#include <cstring>

#include "core/log.h"
#include "core/metrics.h"
#include "ws/frame_encoder.h"
#include "ws/message_metrics.h"

namespace weir::ws {
namespace {

core::Counter g_frames_in("weir_ws_frames_received_total",
                          "WebSocket frames received (control frames included)");
core::Counter g_frames_out("weir_ws_frames_sent_total",
                           "WebSocket frames sent (shared frames count once per recipient)");
core::Counter g_pings("weir_ws_pings_sent_total", "Keepalive pings sent to silent connections");
core::Counter g_idle("weir_ws_idle_timeouts_total",
                     "Sessions closed for staying silent past --idle-timeout");
core::Gauge g_open("weir_ws_sessions_open", "WebSocket sessions open");
core::Counter g_drain_dropped("weir_ws_drain_dropped_messages_total",
                              "Messages received while the server drained, dropped unprocessed "
                              "(never acknowledged)");

// Close codes we send, by code; anything else lands in "other".
constexpr uint16_t kCountedCodes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013};
core::Counter g_close_sent[] = {
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1000\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1001\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1002\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1003\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1007\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1008\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1009\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1011\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"1013\""},
    {"weir_ws_closes_sent_total", "Close frames sent, by code", "code=\"other\""},
};

void count_close_sent(uint16_t code) {
  size_t n = sizeof kCountedCodes / sizeof kCountedCodes[0];
  for (size_t i = 0; i < n; ++i)
    if (kCountedCodes[i] == code) return g_close_sent[i].inc();
  g_close_sent[n].inc();
}

thread_local std::string t_compressed;  // scratch for outgoing compressed payloads

FrameParserConfig parser_config(const WebSocketOptions& options, bool deflate) {
  FrameParserConfig config;
  config.role = Role::kServer;
  config.max_message_size = options.max_message_size;
  config.allow_rsv1 = deflate;
  // With deflate the frames carry compressed bytes, which for incompressible data exceed the
  // message by up to zlib's conservative bound (~13% with a small memLevel, as Python's
  // websockets uses); the inflater enforces the limit on the inflated size.
  if (deflate) {
    uint64_t m = options.max_message_size;
    config.max_message_size = m + (m >> 3) + (m >> 8) + (m >> 9) + 64;
  }
  return config;
}

}  // namespace

WebSocketSession::WebSocketSession(net::Connection& conn, const WebSocketOptions& options,
                                   const DeflateParams* deflate, DeflateWorkspace* workspace,
                                   std::string subprotocol)
    : conn_(conn),
      options_(options),
      parser_(parser_config(options, deflate != nullptr), this),
      subprotocol_(std::move(subprotocol)) {
  if (deflate)
    deflate_ = std::make_unique<PerMessageDeflate>(workspace, *deflate, Role::kServer,
                                                   options.max_message_size);
  last_rx_ms_ = conn_.reactor().now_ms();
  opened_ms_ = last_rx_ms_;
  keepalive_timer_.set_callback([this] { on_keepalive_timer(); });
  close_timer_.set_callback([this] { on_close_timer(); });
  g_open.inc();
}

WebSocketSession::~WebSocketSession() {
  g_open.dec();
}

void WebSocketSession::start(std::unique_ptr<WebSocketHandler> handler) {
  handler_ = std::move(handler);
  int64_t first =
      options_.ping_interval_ms > 0 ? options_.ping_interval_ms : options_.idle_timeout_ms;
  if (first > 0) conn_.reactor().schedule(keepalive_timer_, first);
  if (core::log_enabled(core::LogLevel::kInfo)) {
    std::string peer = conn_.peer().to_string();
    core::log_event(core::LogLevel::kInfo, "ws open",
                    {{"conn", conn_.id()},
                     {"peer", peer},
                     {"path", path_},
                     {"subprotocol", subprotocol_},
                     {"deflate", deflate_ ? "on" : "off"}});
  }
  handler_->on_open(*this);
}

// ---------------------------------------------------------------- inbound

void WebSocketSession::on_data(net::Connection&, char* data, size_t len) {
  last_rx_ms_ = conn_.reactor().now_ms();
  if (state_ == State::kClosed) return;
  const uint64_t frames_before = parser_.frames();
  ParseResult result = parser_.consume(data, len);
  g_frames_in.inc(parser_.frames() - frames_before);  // once per read, not per frame
  if (!result.ok()) fail(result.close_code, result.reason);
}

void WebSocketSession::on_message_begin(Opcode opcode, bool compressed) {
  message_opcode_ = opcode;
  message_compressed_ = compressed;
  message_.clear();
  if (compressed) inflated_utf8_.reset();
}

void WebSocketSession::on_message_data(std::span<const char> data, bool message_complete) {
  if (state_ != State::kOpen) return;  // after our close frame, data is ignored
  if (message_compressed_) {
    if (!inflate_piece(data, message_complete)) return;
    if (message_complete) deliver(message_);
    return;
  }
  if (message_complete && message_.empty()) {
    deliver(std::string_view(data.data(), data.size()));  // whole message in one piece: no copy
    return;
  }
  message_.append(data.data(), data.size());
  if (message_complete) deliver(message_);
}

bool WebSocketSession::inflate_piece(std::span<const char> data, bool message_complete) {
  size_t before = message_.size();
  ParseResult r = deflate_->decompressor().feed(data, message_complete, &message_);
  if (!r.ok()) {
    parser_.fail(r.close_code, r.reason);
    return false;
  }
  if (message_opcode_ == Opcode::kText) {
    bool valid = inflated_utf8_.feed(message_.data() + before, message_.size() - before);
    if (!valid || (message_complete && !inflated_utf8_.complete())) {
      parser_.fail(kCloseInvalidPayload, "invalid UTF-8 in text message");
      return false;
    }
  }
  return true;
}

void WebSocketSession::deliver(std::string_view payload) {
  metrics::count_message(metrics::kIn, message_opcode_, payload.size());
  messages_in_++;
  if (!taking_messages_) {
    g_drain_dropped.inc();
    return;
  }
  if (handler_) handler_->on_message(*this, message_opcode_, payload);
  if (message_.capacity() > (1u << 20)) std::string().swap(message_);  // don't pin big buffers
}

void WebSocketSession::on_ping(std::span<const char> payload) {
  metrics::count_message(metrics::kIn, Opcode::kPing, payload.size());
  if (state_ != State::kOpen) return;
  metrics::count_message(metrics::kOut, Opcode::kPong, payload.size());
  write_frame(Opcode::kPong, false, std::string_view(payload.data(), payload.size()));
}

void WebSocketSession::on_pong(std::span<const char> payload) {
  metrics::count_message(metrics::kIn, Opcode::kPong, payload.size());
}

void WebSocketSession::on_close(bool code_present, uint16_t code, std::string_view reason) {
  metrics::count_message(metrics::kIn, Opcode::kClose, code_present ? 2 + reason.size() : 0);
  if (state_ == State::kOpen) {
    // Echo the peer's code (RFC 6455 5.5.1); without one, answer with an empty close.
    send_close_frame(code_present ? code : kCloseNoStatus, {});
    notify_close(code_present ? code : kCloseNoStatus, reason, Closer::kPeer);
  }
  set_state(State::kClosed);
  close_timer_.cancel();
  conn_.close();  // the server closes TCP first (RFC 6455 7.1.1)
}

// ---------------------------------------------------------------- outbound

SendResult WebSocketSession::send(Opcode opcode, std::string_view payload) {
  if (state_ != State::kOpen) return SendResult::kClosed;
  metrics::count_message(metrics::kOut, opcode, payload.size());
  messages_out_++;
  if (deflate_ && payload.size() >= options_.compress_min_bytes) {
    t_compressed.clear();
    ParseResult r = deflate_->compressor().compress(payload, &t_compressed);
    if (r.ok()) return write_frame(opcode, true, t_compressed);
    log_warn("deflate failed on connection %llu: %.*s; sending uncompressed",
             static_cast<unsigned long long>(conn_.id()), static_cast<int>(r.reason.size()),
             r.reason.data());
  }
  return write_frame(opcode, false, payload);
}

SendResult WebSocketSession::send_frame(const core::SharedBuffer& buffer, size_t offset,
                                        size_t length, uint32_t frames, uint64_t text_bytes) {
  if (state_ != State::kOpen) return SendResult::kClosed;
  if (text_bytes != kCountFromHeaders) {
    metrics::messages[metrics::kOut][0].inc(frames);
    metrics::payload_bytes[metrics::kOut][0].inc(text_bytes);
  } else {
    metrics::count_shared_frames_sent(buffer.data() + offset, length, frames);
  }
  messages_out_ += frames;
  g_frames_out.inc(frames);
  return conn_.write(buffer, offset, length) == net::WriteResult::kAccepted ? SendResult::kQueued
                                                                            : SendResult::kClosed;
}

SendResult WebSocketSession::ping(std::string_view payload) {
  if (state_ != State::kOpen) return SendResult::kClosed;
  payload = payload.substr(0, kMaxControlPayload);
  metrics::count_message(metrics::kOut, Opcode::kPing, payload.size());
  return write_frame(Opcode::kPing, false, payload);
}

SendResult WebSocketSession::write_frame(Opcode opcode, bool rsv1, std::string_view payload) {
  char header[kMaxFrameHeaderSize];
  size_t header_len = encode_frame_header(header, opcode, true, rsv1, payload.size(), nullptr);
  net::WritePart parts[2] = {net::WritePart::copy({header, header_len}),
                             net::WritePart::copy(payload)};
  g_frames_out.inc();
  return conn_.write(std::span<const net::WritePart>(parts, 2)) == net::WriteResult::kAccepted
             ? SendResult::kQueued
             : SendResult::kClosed;
}

void WebSocketSession::send_close_frame(uint16_t code, std::string_view reason) {
  if (close_sent_) return;
  close_sent_ = true;
  if (code != kCloseNoStatus) count_close_sent(code);
  char frame[kMaxControlFrameSize];
  size_t len = encode_close_frame(frame, code, reason, nullptr);
  // An unmasked control frame's header is two bytes.
  metrics::count_message(metrics::kOut, Opcode::kClose, len - frame_header_size(0, false));
  g_frames_out.inc();
  conn_.write(std::string_view(frame, len));
}

void WebSocketSession::close(uint16_t code, std::string_view reason) {
  if (state_ != State::kOpen) return;
  set_state(State::kClosing);
  send_close_frame(code, reason);
  notify_close(code, reason, Closer::kServer);
  conn_.reactor().schedule(close_timer_, options_.close_timeout_ms);
}

void WebSocketSession::go_away(std::string_view reason, int64_t flush_deadline_ms) {
  if (state_ != State::kOpen) return;
  flush_deadline_ms_ = flush_deadline_ms;
  written_at_close_check_ = conn_.bytes_written();
  close(kCloseGoingAway, reason.substr(0, kMaxCloseReason));
  // The peer's close reply must be read even if the application had paused reading.
  conn_.resume_reading();
}

// The peer did not answer our close in time. A queue still flowing towards a slow reader gets
// until the drain's flush deadline (0 outside a drain); a reader that took nothing for a whole
// close_timeout is stalled and dropped at once, as is everything at the deadline.
void WebSocketSession::on_close_timer() {
  int64_t now = conn_.reactor().now_ms();
  bool flowing = conn_.bytes_written() != written_at_close_check_;
  written_at_close_check_ = conn_.bytes_written();
  if (now < flush_deadline_ms_ && conn_.queued_bytes() > 0 && flowing) {
    conn_.reactor().schedule(close_timer_,
                             std::min(options_.close_timeout_ms, flush_deadline_ms_ - now));
    return;
  }
  conn_.abort();
}

// _Fail the WebSocket Connection_ (RFC 6455 7.1.7): send our code, then close TCP.
void WebSocketSession::fail(uint16_t code, std::string_view reason) {
  if (state_ == State::kClosed) return;
  log_debug("connection %llu %s: closing with %u: %.*s",
            static_cast<unsigned long long>(conn_.id()), conn_.peer().to_string().c_str(), code,
            static_cast<int>(reason.size()), reason.data());
  send_close_frame(code, reason);
  notify_close(code, reason, Closer::kServer);
  set_state(State::kClosed);
  close_timer_.cancel();
  conn_.close();
}

void WebSocketSession::notify_close(uint16_t code, std::string_view reason, Closer closer) {
  if (close_notified_) return;
  close_notified_ = true;
  close_code_ = code;
  close_reason_ = reason;
  closer_ = closer;
  keepalive_timer_.cancel();
  if (handler_) handler_->on_close(*this, code, reason);
}

// ---------------------------------------------------------------- connection events

void WebSocketSession::on_closed(net::Connection&, net::CloseReason reason,
                                 std::string_view detail) {
  set_state(State::kClosed);
  keepalive_timer_.cancel();
  close_timer_.cancel();
  if (reason == net::CloseReason::kBufferOverrun)
    notify_close(kClosePolicyViolation, "slow consumer: buffer overrun", Closer::kNone);
  else
    notify_close(kCloseAbnormal, detail, Closer::kNone);
  if (deflate_) deflate_->decompressor().abandon_message();
  log_closed(reason);
}

// The session's one closing line: the WebSocket close code and reason (1006: none was
// exchanged), who sent the first close frame, and what the connection carried.
void WebSocketSession::log_closed(net::CloseReason reason) {
  if (!core::log_enabled(core::LogLevel::kInfo)) return;
  static constexpr const char* kClosers[] = {"server", "peer", "none"};
  std::string peer = conn_.peer().to_string();
  core::log_event(core::LogLevel::kInfo, "ws close",
                  {{"conn", conn_.id()},
                   {"peer", peer},
                   {"path", path_},
                   {"code", close_code_},
                   {"reason", close_reason_},
                   {"closed_by", kClosers[static_cast<int>(closer_)]},
                   {"tcp", net::close_reason_name(reason)},
                   {"duration_ms", conn_.reactor().now_ms() - opened_ms_},
                   {"bytes_in", conn_.bytes_read()},
                   {"bytes_out", conn_.bytes_written()},
                   {"messages_in", messages_in_},
                   {"messages_out", messages_out_}});
}

// TCP FIN without a close frame: the session is over (1006 to the handler), and we finish
// sending what is queued before closing our side.
void WebSocketSession::on_peer_closed(net::Connection&) {
  set_state(State::kClosed);
  keepalive_timer_.cancel();
  close_timer_.cancel();
  notify_close(kCloseAbnormal, "peer closed the TCP connection without a close frame",
               Closer::kNone);
  conn_.close();
}

void WebSocketSession::on_high_watermark(net::Connection&) {
  if (handler_) handler_->on_backpressure(*this, true);
}

void WebSocketSession::on_low_watermark(net::Connection&) {
  if (handler_) handler_->on_backpressure(*this, false);
}

// Pings a connection that went quiet and closes one silent past the idle timeout. Activity is
// a timestamp updated per read, so traffic never touches the timer wheel.
void WebSocketSession::on_keepalive_timer() {
  if (state_ != State::kOpen) return;
  int64_t now = conn_.reactor().now_ms();
  int64_t silent = now - last_rx_ms_;
  if (options_.idle_timeout_ms > 0 && silent >= options_.idle_timeout_ms) {
    g_idle.inc();
    close(kCloseGoingAway, "idle timeout");
    return;
  }
  int64_t next = options_.idle_timeout_ms > 0 ? options_.idle_timeout_ms - silent : INT64_MAX;
  if (options_.ping_interval_ms > 0) {
    if (silent >= options_.ping_interval_ms) {
      g_pings.inc();
      ping({});
      next = std::min(next, options_.ping_interval_ms);
    } else {
      next = std::min(next, options_.ping_interval_ms - silent);
    }
  }
  conn_.reactor().schedule(keepalive_timer_, next);
}

}  // namespace weir::ws
