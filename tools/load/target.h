// tools/load/target.h — where a run connects to and from: `ws://HOST:PORT/path` URLs, the
// non-blocking dial (optionally bound to a source address first), and the spread of source
// addresses over 127.0.0.1..127.0.0.254 that lets `hold` open more connections to one
// loopback port than one source address has ephemeral ports (~28k).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "net/address.h"

namespace weir::load {

struct WsUrl {
  std::string host;  // as written, for the Host header ("127.0.0.1", "[::1]", "localhost")
  uint16_t port = 80;
  std::string target;  // path and query, "/" when the URL has none
  net::SocketAddress address;

  std::string host_header() const { return host + ":" + std::to_string(port); }
  std::string to_string() const { return "ws://" + host_header() + target; }
};

// Accepts ws://HOST[:PORT][/path[?query]] with an IP literal or "localhost" as HOST. No wss:
// the tool measures the server, not a TLS stack. Thread-safe: pure function.
bool parse_ws_url(std::string_view text, WsUrl* out, std::string* error);

// Starts a non-blocking TCP connect to `target`; with `source`, binds to it first (port 0,
// IP_BIND_ADDRESS_NO_PORT so the port is picked per destination at connect time). A non-zero
// `receive_buffer` sets SO_RCVBUF before the connect (so the window is scaled for it). Returns
// the fd, or -1 with a reason. Thread-safe.
int dial(const net::SocketAddress& target, const net::SocketAddress* source, std::string* error,
         int receive_buffer = 0);

// Round-robin source addresses for one thread. Spreads only towards an IPv4 loopback target
// (any 127.x address is local); otherwise next() returns nullptr: let the kernel choose.
// Thread-safety: none; one per reactor thread.
class SourceAddresses {
 public:
  static constexpr int kLoopbackCount = 254;  // 127.0.0.1 .. 127.0.0.254

  SourceAddresses(const net::SocketAddress& target, bool spread, int start_index);
  const net::SocketAddress* next();
  // How many distinct source addresses next() cycles through (0: kernel's choice).
  int count() const { return spread_ ? kLoopbackCount : 0; }

 private:
  bool spread_;
  int index_;
  net::SocketAddress current_;
};

bool is_ipv4_loopback(const net::SocketAddress& address);

}  // namespace weir::load
