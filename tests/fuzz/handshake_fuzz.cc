// Fuzzes the opening handshake on requests built from arbitrary header lines (so every
// header value is reachable, not just what llhttp lets through), plus base64 and the accept
// key. A result must be consistent: ok means 101 with a 28-character accept key, otherwise
// one of the documented error statuses and a well-formed rejection response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ws/base64.h"
#include "ws/handshake.h"

using namespace weir::ws;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// "name: value" per line; lines without a colon are skipped.
HttpRequest request_from(std::string_view text, uint8_t flags) {
  HttpRequest r;
  r.set_method(flags & 1 ? HttpMethod::kPost : HttpMethod::kGet);
  r.set_version(1, flags & 2 ? 0 : 1);
  r.set_target("/ws");
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos)
      r.add_header(line.substr(0, colon), line.substr(colon + 1));
    if (eol == std::string_view::npos) break;
    text.remove_prefix(eol + 1);
  }
  return r;
}

void check_base64(std::string_view input) {
  std::string encoded = base64_encode(input);
  check(encoded.size() == 4 * ((input.size() + 2) / 3));
  std::string decoded;
  check(base64_decode(encoded, &decoded) && decoded == input);
  std::string ignored;
  if (base64_decode(input, &ignored)) check(input.size() % 4 == 0);
  check(compute_accept_key(input).size() == 28);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  check_base64(text);

  HandshakeConfig config;
  config.subprotocols = {"chat", "superchat"};
  if (data[0] & 4) config.allowed_origins = {"https://example.com", "http://a.b:8080"};
  config.require_origin = (data[0] & 8) != 0;
  HttpRequest request = request_from(text, data[0]);
  HandshakeResult r = validate_upgrade(request, config);
  if (r.ok) {
    check(r.status == 101 && r.accept_key.size() == 28);
    check(r.subprotocol.empty() || r.subprotocol == "chat" || r.subprotocol == "superchat");
    std::string out = build_upgrade_response(r);
    check(out.starts_with("HTTP/1.1 101 ") && out.ends_with("\r\n\r\n"));
  } else {
    check(r.status == 400 || r.status == 403 || r.status == 405 || r.status == 426);
    check(!r.reason.empty());
    std::string out = build_rejection_response(r);
    check(out.starts_with("HTTP/1.1 4") && out.find("close\r\n") != std::string::npos);
  }
  return 0;
}
