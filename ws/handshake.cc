// Opening-handshake validation, subprotocol choice and the 101 response.
#include "ws/handshake.h"

#include <openssl/sha.h>

#include "ws/base64.h"
#include "ws/http_response.h"

namespace weir::ws {
namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kKeyBytes = 16;

HandshakeResult failure(int status, std::string_view reason) {
  HandshakeResult r;
  r.status = status;
  r.reason = reason;
  return r;
}

bool key_is_valid(std::string_view key) {
  // 16 bytes encode to exactly 24 characters; checking first bounds the decode work.
  if (key.size() != 24) return false;
  std::string decoded;
  return base64_decode(key, &decoded) && decoded.size() == kKeyBytes;
}

bool origin_allowed(const HttpRequest& request, const HandshakeConfig& config) {
  if (!request.has_header("Origin")) return !config.require_origin;
  if (config.allowed_origins.empty()) return true;
  std::string_view origin = request.header("Origin");
  for (const std::string& allowed : config.allowed_origins) {
    if (allowed == "*" || ascii_iequals(allowed, origin)) return true;
  }
  return false;
}

// Exact comparison: subprotocol names are registered tokens and the client checks the reply
// against what it sent byte for byte.
bool list_has_exact(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (trim_ows(list.substr(0, comma)) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Server preference wins; RFC 6455 section 4.2.2 leaves the choice to the server.
std::string choose_subprotocol(const HttpRequest& request, const HandshakeConfig& config) {
  for (const std::string& ours : config.subprotocols) {
    for (size_t i = 0; i < request.header_count(); ++i) {
      HttpHeader h = request.header_at(i);
      if (ascii_iequals(h.name, "Sec-WebSocket-Protocol") && list_has_exact(h.value, ours)) {
        return ours;
      }
    }
  }
  return {};
}

std::string joined_header(const HttpRequest& request, std::string_view name) {
  std::string out;
  for (size_t i = 0; i < request.header_count(); ++i) {
    HttpHeader h = request.header_at(i);
    if (!ascii_iequals(h.name, name) || h.value.empty()) continue;
    if (!out.empty()) out.append(", ");
    out.append(h.value);
  }
  return out;
}

// Everything that makes the request a WebSocket handshake at all, before version and key.
HandshakeResult check_request_shape(const HttpRequest& request) {
  // 405 rather than 400: the resource exists but only GET can open a WebSocket on it, and
  // the Allow header tells the client so (RFC 9110 section 15.5.6).
  if (request.method() != HttpMethod::kGet) return failure(405, "WebSocket handshake must be GET");
  if (request.version_major() < 1 || (request.version_major() == 1 && request.version_minor() < 1))
    return failure(400, "WebSocket handshake requires HTTP/1.1");
  if (request.header_occurrences("Host") != 1 || request.header("Host").empty())
    return failure(400, "WebSocket handshake requires one Host header");
  if (!request.header_has_token("Upgrade", "websocket"))
    return failure(400, "Upgrade header must include websocket");
  if (!request.header_has_token("Connection", "upgrade"))
    return failure(400, "Connection header must include upgrade");
  HandshakeResult ok;
  ok.ok = true;
  return ok;
}

}  // namespace

HandshakeResult validate_upgrade(const HttpRequest& request, const HandshakeConfig& config) {
  HandshakeResult shape = check_request_shape(request);
  if (!shape.ok) return shape;
  // RFC 6455 section 4.2.2: a version we do not speak gets 426 naming the one we do.
  if (request.header_occurrences("Sec-WebSocket-Version") != 1 ||
      request.header("Sec-WebSocket-Version") != "13") {
    return failure(426, "Sec-WebSocket-Version must be 13");
  }
  if (request.header_occurrences("Sec-WebSocket-Key") != 1)
    return failure(400, "WebSocket handshake requires one Sec-WebSocket-Key");
  std::string_view key = request.header("Sec-WebSocket-Key");
  if (!key_is_valid(key)) return failure(400, "Sec-WebSocket-Key must be base64 of 16 bytes");
  if (!origin_allowed(request, config)) return failure(403, "origin not allowed");

  HandshakeResult r;
  r.ok = true;
  r.status = 101;
  r.reason = "Switching Protocols";
  r.accept_key = compute_accept_key(key);
  r.subprotocol = choose_subprotocol(request, config);
  r.extensions = joined_header(request, "Sec-WebSocket-Extensions");
  return r;
}

std::string compute_accept_key(std::string_view key) {
  std::string input;
  input.reserve(key.size() + kWebSocketGuid.size());
  input.append(key).append(kWebSocketGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return base64_encode({reinterpret_cast<const char*>(digest), sizeof(digest)});
}

void append_upgrade_response(const HandshakeResult& result, std::string* out) {
  HttpResponse r(out, 101);
  r.header("Upgrade", "websocket")
      .header("Connection", "Upgrade")
      .header("Sec-WebSocket-Accept", result.accept_key);
  if (!result.subprotocol.empty()) r.header("Sec-WebSocket-Protocol", result.subprotocol);
  r.raw_headers(result.extra_response_headers);
  r.end_without_body();
}

std::string build_upgrade_response(const HandshakeResult& result) {
  std::string out;
  append_upgrade_response(result, &out);
  return out;
}

std::string build_rejection_response(const HandshakeResult& result) {
  if (result.status == 405) return make_method_not_allowed("GET", result.reason, true);
  if (result.status == 426) return make_upgrade_required(result.reason, true);
  return make_error_response(result.status, result.reason, true);
}

}  // namespace weir::ws
