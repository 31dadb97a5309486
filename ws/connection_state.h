// ws/connection_state.h — weir_connections{state}: every connection the HTTP server accepted,
// counted in exactly one state and moved on transitions (never per message or per read).
//
//   handshaking  accepted, TLS handshake and HTTP requests, not (yet) upgraded
//   open         a WebSocket session that has not started closing
//   closing      WebSocket close handshake under way, or TCP shutting down: output draining,
//                lingering for the peer's FIN; also connections refused at accept
//
// Cluster peer links are net::Connections too (in weir_connections_open) but not in here.
//
// Thread-safety: an instance belongs to its connection's reactor thread; the gauges are
// per-thread shards summed at scrape time.
#pragma once

#include <cstdint>

namespace weir::ws {

class ConnectionState {
 public:
  enum class State : uint8_t { kHandshaking, kOpen, kClosing, kNone };

  explicit ConnectionState(State state) { set(state); }
  ConnectionState(const ConnectionState&) = delete;
  ConnectionState& operator=(const ConnectionState&) = delete;
  ~ConnectionState() { set(State::kNone); }

  // Leaves the current state's gauge and enters `state`'s (kNone: counted nowhere).
  void set(State state);
  State state() const { return state_; }

 private:
  State state_ = State::kNone;
};

}  // namespace weir::ws
