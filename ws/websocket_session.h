// ws/websocket_session.h — one WebSocket connection after the handshake: frames in and out,
// message assembly, permessage-deflate, pings, the close handshake, and backpressure.
//
// The session is the net::Connection's handler; the application's per-connection logic is a
// WebSocketHandler the session owns. Outbound frames go through the connection's queue and
// watermarks: every frame queued during one loop iteration leaves in one writev.
//
// Close semantics (RFC 6455 7): a close frame from the peer is answered with the same code
// (or an empty close when it had none) and the server closes TCP first. A protocol error
// sends its close code (1002, 1007, 1009) and closes at once. A close we start waits up to
// close_timeout for the peer's reply. 1005 and 1006 are reported to the handler, never sent.
//
// Drain (server/drain.h) takes two steps: stop_taking_messages() (messages that arrive are
// dropped, never handed to the application, so a draining node takes no new work; pings and
// the close handshake go on), then go_away() (close 1001 with a reason, queued output flushed
// up to a deadline).
//
// Lifecycle logs: one info line when the session opens (peer, path) and one when its
// connection is gone (close code, reason, who closed, duration, bytes and messages); nothing
// per message.
//
// Thread-safety: none; everything runs on the connection's reactor thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/timer_wheel.h"
#include "net/connection.h"
#include "ws/connection_state.h"
#include "ws/deflate_codec.h"
#include "ws/frame_parser.h"

namespace weir::ws {

class WebSocketSession;

struct WebSocketOptions {
  uint64_t max_message_size = 16u << 20;
  int64_t ping_interval_ms = 30000;  // ping a connection silent this long (0: never)
  int64_t idle_timeout_ms = 75000;   // close a connection silent this long (0: never)
  int64_t close_timeout_ms = 5000;   // wait this long for the peer's close frame
  size_t compress_min_bytes = 64;    // smaller messages are sent uncompressed
};

// The application's side of one session. Callbacks run on the session's reactor thread.
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  virtual void on_open(WebSocketSession&) {}
  // A whole text (valid UTF-8) or binary message; the view is valid during the call only.
  virtual void on_message(WebSocketSession& session, Opcode opcode, std::string_view payload) = 0;
  // The outbound queue crossed the high watermark (true) or fell under the low one (false).
  virtual void on_backpressure(WebSocketSession&, bool /*above_high*/) {}
  // The session ended: the close code received or sent (1005: none given, 1006: no close
  // frame, the connection was lost). Called exactly once.
  virtual void on_close(WebSocketSession&, uint16_t /*code*/, std::string_view /*reason*/) {}
};

enum class SendResult { kQueued, kClosed };

class WebSocketSession final : public net::ConnectionHandler, private FrameHandler {
 public:
  // `deflate` is null when permessage-deflate was not negotiated; `workspace` is the reactor
  // thread's zlib workspace (needed only with deflate).
  WebSocketSession(net::Connection& conn, const WebSocketOptions& options,
                   const DeflateParams* deflate, DeflateWorkspace* workspace,
                   std::string subprotocol);
  ~WebSocketSession() override;

  // Installs the application handler and calls its on_open.
  void start(std::unique_ptr<WebSocketHandler> handler);

  // A text or binary message (compressed when deflate is on and it is large enough).
  SendResult send(Opcode opcode, std::string_view payload);
  // A complete, unmasked, uncompressed frame encoded once and shared among many sessions;
  // `frames` > 1 when the bytes are that many whole frames back to back (one queue slice).
  SendResult send_frame(const core::SharedBuffer& frame) {
    return send_frame(frame, 0, frame.size());
  }
  // `text_bytes`: when the caller knows the frames are text messages of that many payload
  // bytes in all (a room's batch, counted once for all its recipients), the metrics take it
  // instead of reading the frames' headers for every recipient.
  static constexpr uint64_t kCountFromHeaders = UINT64_MAX;
  SendResult send_frame(const core::SharedBuffer& buffer, size_t offset, size_t length,
                        uint32_t frames = 1, uint64_t text_bytes = kCountFromHeaders);
  SendResult ping(std::string_view payload);
  // Starts the close handshake with `code` (a valid wire code) and a short reason.
  void close(uint16_t code, std::string_view reason);
  // Drain: from now on messages from the peer are dropped (counted), not delivered.
  void stop_taking_messages() { taking_messages_ = false; }
  // Drain: closes with 1001 and `reason` (at most 123 bytes), then waits for the peer's close
  // while queued output still flows, until `flush_deadline_ms` (reactor clock) at the latest;
  // with nothing left to send, or nothing taken by the peer for a whole close_timeout, it
  // waits close_timeout as close() does.
  void go_away(std::string_view reason, int64_t flush_deadline_ms);
  // The request path the session was opened at (for its log lines); before start().
  void set_path(std::string_view path) { path_ = path; }

  void suspend_reading() { conn_.suspend_reading(); }
  void resume_reading() { conn_.resume_reading(); }
  size_t queued_bytes() const { return conn_.queued_bytes(); }
  bool above_high_watermark() const { return conn_.above_high_watermark(); }
  bool is_open() const { return state_ == State::kOpen; }
  const std::string& subprotocol() const { return subprotocol_; }
  bool deflate_enabled() const { return deflate_ != nullptr; }
  net::Connection& connection() { return conn_; }
  WebSocketHandler* handler() { return handler_.get(); }

  // net::ConnectionHandler
  void on_data(net::Connection& conn, char* data, size_t len) override;
  void on_closed(net::Connection& conn, net::CloseReason reason, std::string_view detail) override;
  void on_high_watermark(net::Connection&) override;
  void on_low_watermark(net::Connection&) override;
  void on_peer_closed(net::Connection&) override;

 private:
  enum class State { kOpen, kClosing, kClosed };
  enum class Closer { kServer, kPeer, kNone };  // who sent the first close frame

  // FrameHandler
  void on_message_begin(Opcode opcode, bool compressed) override;
  void on_message_data(std::span<const char> data, bool message_complete) override;
  void on_ping(std::span<const char> payload) override;
  void on_pong(std::span<const char> payload) override;
  void on_close(bool code_present, uint16_t code, std::string_view reason) override;

  // Leaves kOpen for good: moves the session to "closing" in weir_connections{state}.
  void set_state(State state) {
    state_ = state;
    connection_state_.set(ConnectionState::State::kClosing);
  }
  bool inflate_piece(std::span<const char> data, bool message_complete);
  void deliver(std::string_view payload);
  SendResult write_frame(Opcode opcode, bool rsv1, std::string_view payload);
  void send_close_frame(uint16_t code, std::string_view reason);
  void fail(uint16_t code, std::string_view reason);
  void notify_close(uint16_t code, std::string_view reason, Closer closer);
  void on_keepalive_timer();
  void on_close_timer();
  void log_closed(net::CloseReason reason);

  net::Connection& conn_;
  WebSocketOptions options_;
  FrameParser parser_;
  std::unique_ptr<PerMessageDeflate> deflate_;
  std::unique_ptr<WebSocketHandler> handler_;
  std::string subprotocol_;
  State state_ = State::kOpen;
  ConnectionState connection_state_{ConnectionState::State::kOpen};
  bool close_sent_ = false;
  bool close_notified_ = false;
  Opcode message_opcode_ = Opcode::kText;
  bool message_compressed_ = false;
  std::string message_;  // assembled fragments / inflated bytes; capacity reused
  Utf8Validator inflated_utf8_;
  int64_t last_rx_ms_ = 0;
  core::Timer keepalive_timer_;
  core::Timer close_timer_;
  bool taking_messages_ = true;
  int64_t flush_deadline_ms_ = 0;        // go_away(): output may flow until then
  uint64_t written_at_close_check_ = 0;  // bytes written when the close timer last looked
  // For the lifecycle log lines.
  std::string path_;
  int64_t opened_ms_ = 0;
  uint64_t messages_in_ = 0, messages_out_ = 0;
  uint16_t close_code_ = 0;
  std::string close_reason_;
  Closer closer_ = Closer::kNone;
};

}  // namespace weir::ws
