// tools/load/ws_client.h — the client side of one WebSocket connection for the load tool: the
// HTTP upgrade request, the 101 check (Sec-WebSocket-Accept included), masked frames, the
// project's FrameParser in client role, permessage-deflate when offered and accepted, ping
// answers and the close handshake.
//
// Write policy: a message is framed in the thread's scratch buffer (header in a small array,
// payload masked in place with a fresh xorshift key) and copied into the connection's queue,
// which leaves in one writev at the end of the loop iteration. Steady traffic allocates
// nothing: the scratch and zlib buffers belong to the thread and only grow.
//
// Received messages reach the listener as data spans in order (zero copy when uncompressed),
// not reassembled: the echo check verifies them incrementally.
//
// Thread-safety: none; a client, its connection and its ClientContext live on one reactor.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "net/connection.h"
#include "ws/deflate_codec.h"
#include "ws/deflate_negotiation.h"
#include "ws/deflate_workspace.h"
#include "ws/frame_parser.h"

namespace weir::load {

// Per reactor thread: randomness for mask keys and Sec-WebSocket-Key, and the buffers every
// client of the thread borrows while it frames or inflates one message.
class ClientContext {
 public:
  explicit ClientContext(uint64_t seed);
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  uint64_t next_random();  // xorshift64*: fast, not cryptographic (mask keys need not be)
  uint32_t mask_key() { return static_cast<uint32_t>(next_random() >> 32); }
  // At least `len` writable bytes, valid until the next call.
  char* scratch(size_t len);
  std::string& compressed() { return compressed_; }
  std::string& inflated() { return inflated_; }
  ws::DeflateWorkspace& workspace();

 private:
  uint64_t state_;
  std::unique_ptr<char[]> scratch_;
  size_t scratch_size_ = 0;
  std::string compressed_;
  std::string inflated_;
  std::unique_ptr<ws::DeflateWorkspace> workspace_;
};

struct WsClientConfig {
  std::string host_header;  // "127.0.0.1:8080"
  std::string target = "/";
  bool offer_deflate = false;
  uint64_t max_message_size = 64u << 20;
};

// How a client ended; given to the listener exactly once.
struct WsClientEnd {
  bool opened = false;  // the upgrade had succeeded
  bool clean = false;   // close frames were exchanged
  uint16_t code = ws::kCloseAbnormal;
  std::string reason;
};

class WsClient;

// The load scenario's side of one client. Callbacks run on the client's reactor thread.
class WsClientListener {
 public:
  virtual ~WsClientListener() = default;
  virtual void on_open(WsClient& client) = 0;
  virtual void on_message_begin(WsClient&, ws::Opcode) {}
  // Payload bytes in order; `last` marks the end of the message (the span may be empty).
  virtual void on_message_data(WsClient& client, std::span<const char> data, bool last) = 0;
  virtual void on_pong(WsClient&, std::span<const char>) {}
  // The client ended (also when the upgrade failed). It is destroyed after this iteration.
  virtual void on_closed(WsClient& client, const WsClientEnd& end) = 0;
};

// The upgrade request for `config` with Sec-WebSocket-Key `key`. Thread-safe: pure function.
std::string build_upgrade_request(const WsClientConfig& config, std::string_view key,
                                  const ws::DeflateClientOffer* offer);

struct UpgradeCheck {
  bool ok = false;
  std::string error;
  bool deflate = false;  // permessage-deflate accepted with `params`
  ws::DeflateParams params;
};

// Checks a response head (status line and headers, up to the blank line) against RFC 6455
// 4.1: status 101, Upgrade: websocket, Connection: upgrade, the Sec-WebSocket-Accept matching
// `key`, and any Sec-WebSocket-Extensions against `offer` (nullptr: nothing offered, so any
// extension fails). Thread-safe: pure function.
UpgradeCheck check_upgrade_response(std::string_view head, std::string_view key,
                                    const ws::DeflateClientOffer* offer);

class WsClient final : public net::ConnectionHandler, private ws::FrameHandler {
 public:
  // Queues the upgrade request on `conn` (sent once the connection is writable). The caller
  // then installs the client with conn.set_handler().
  WsClient(net::Connection& conn, const WsClientConfig& config, ClientContext* context,
           WsClientListener* listener);
  ~WsClient() override;

  bool is_open() const { return state_ == State::kOpen; }
  bool deflate_active() const { return deflate_ != nullptr; }
  net::Connection& connection() { return conn_; }

  // Room for a `len`-byte payload in the thread's scratch; fill it, then send_prepared().
  char* prepare(size_t len) { return context_->scratch(len); }
  // Sends the prepared payload as one final frame. False when the client is not open.
  bool send_prepared(ws::Opcode opcode, size_t len);
  bool send(ws::Opcode opcode, std::string_view payload);
  bool ping(std::string_view payload);
  // Starts the close handshake; the connection ends when the server answers.
  void close(uint16_t code, std::string_view reason);
  // Ends now (RST); the listener hears `why`.
  void abort(std::string_view why);

  // net::ConnectionHandler
  void on_data(net::Connection& conn, char* data, size_t len) override;
  void on_closed(net::Connection& conn, net::CloseReason reason, std::string_view detail) override;

 private:
  enum class State : uint8_t { kUpgrading, kOpen, kClosing, kClosed };

  void read_upgrade_response(char* data, size_t len);
  void consume_frames(char* data, size_t len);
  void fail(uint16_t code, std::string_view reason);
  bool send_frame(ws::Opcode opcode, char* payload, size_t len, bool compressed);
  void send_control(ws::Opcode opcode, std::string_view payload);
  void record_end(bool clean, uint16_t code, std::string_view reason);

  // ws::FrameHandler
  void on_message_begin(ws::Opcode opcode, bool compressed) override;
  void on_message_data(std::span<const char> data, bool message_complete) override;
  void on_ping(std::span<const char> payload) override;
  void on_pong(std::span<const char> payload) override;
  void on_close(bool code_present, uint16_t code, std::string_view reason) override;

  net::Connection& conn_;
  WsClientConfig config_;
  ClientContext* context_;
  WsClientListener* listener_;
  State state_ = State::kUpgrading;
  std::string key_;
  std::string response_;  // the upgrade response head while it arrives; empty afterwards
  ws::DeflateClientOffer offer_;
  ws::FrameParser parser_;
  std::unique_ptr<ws::PerMessageDeflate> deflate_;
  bool message_compressed_ = false;
  bool end_recorded_ = false;
  WsClientEnd end_;
};

}  // namespace weir::load
