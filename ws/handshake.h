// The server side of the RFC 6455 opening handshake (section 4.2): checks an upgrade request,
// negotiates the subprotocol, computes Sec-WebSocket-Accept and builds the 101 response, or
// the error response that refuses the upgrade. Pure code: no sockets, no state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ws/http_request.h"

namespace weir::ws {

struct HandshakeConfig {
  // Origins allowed to open a WebSocket, e.g. "https://chat.example.com". Empty allows all, as
  // does an entry "*". Compared whole and case-insensitively (scheme and host are).
  std::vector<std::string> allowed_origins;
  // Browsers always send Origin; other clients usually do not, and could forge it anyway. So a
  // request without Origin passes the check unless this is set.
  bool require_origin = false;
  // Subprotocols we speak, most preferred first.
  std::vector<std::string> subprotocols;
};

struct HandshakeResult {
  bool ok = false;
  int status = 0;           // 101 when ok; otherwise 400, 403, 405 or 426
  std::string_view reason;  // one line for the error response or log; static storage
  std::string accept_key;   // Sec-WebSocket-Accept value
  std::string subprotocol;  // the chosen one; empty when none was offered or none matched
  // The client's Sec-WebSocket-Extensions, raw (several header lines joined with ", "): the
  // permessage-deflate module negotiates it separately.
  std::string extensions;
  // Filled by the caller before building the 101, e.g. the Sec-WebSocket-Extensions reply;
  // whole lines, each ending in "\r\n".
  std::string extra_response_headers;
};

// RFC 6455 section 4.2.1 checks, in order, each failure with the status it earns:
//   method GET                                  else 405 with Allow: GET
//   HTTP/1.1 or later                           else 400
//   exactly one non-empty Host                  else 400
//   Upgrade lists "websocket"                   else 400
//   Connection lists "upgrade"                  else 400
//   Sec-WebSocket-Version: 13 (one header)      else 426 with Sec-WebSocket-Version: 13
//   Sec-WebSocket-Key: base64 of 16 bytes, once else 400
//   Origin allowed                              else 403
// Then the subprotocol: the first of config.subprotocols the client offered.
HandshakeResult validate_upgrade(const HttpRequest& request, const HandshakeConfig& config);

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), RFC 6455 section 4.2.2.
std::string compute_accept_key(std::string_view key);

// The 101 Switching Protocols response for a successful result, appended to `out`.
void append_upgrade_response(const HandshakeResult& result, std::string* out);
std::string build_upgrade_response(const HandshakeResult& result);

// The response refusing a failed handshake: 405 carries Allow: GET, 426 carries
// Sec-WebSocket-Version: 13, all close the connection (the peer's bytes after the request may
// already be WebSocket frames).
std::string build_rejection_response(const HandshakeResult& result);

}  // namespace weir::ws
