// Builds HTTP/1.1 responses straight into a caller's buffer: status line with the standard
// reason phrase, headers, Content-Length, and the body (left out for HEAD). Also the canned
// error responses the server sends when it refuses a request.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace weir::ws {

// Standard reason phrase for `status` ("Not Found"); "Unknown" for unregistered codes.
std::string_view status_reason(int status);

// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for the Date header; independent of locale.
std::string http_date(std::time_t t);

// Appends one response to `out` in wire order, without staging copies:
//   HttpResponse(&out, 200).header("Content-Type", "text/plain").close(true).end(body, head);
// Header names and values are the caller's; CR and LF in them are replaced by spaces so a
// value that came from a peer cannot split the response.
// Thread-safety: none; a short-lived builder over one buffer.
class HttpResponse {
 public:
  HttpResponse(std::string* out, int status, std::string_view reason_phrase = {});

  HttpResponse& header(std::string_view name, std::string_view value);
  HttpResponse& header(std::string_view name, uint64_t value);
  // Raw header lines, each ending in "\r\n", appended unchanged (trusted, server-built).
  HttpResponse& raw_headers(std::string_view lines);
  // Date: now.
  HttpResponse& date();
  // Connection: close when `closing`; a no-op otherwise (HTTP/1.1 persists by default).
  HttpResponse& close(bool closing);

  // Content-Length (except for 1xx, 204 and 304, which must not have one), the blank line and
  // the body. `head_request` keeps the length of `body` but leaves its bytes out (RFC 9110
  // 9.3.2).
  void end(std::string_view body = {}, bool head_request = false);
  // Ends the header section with no Content-Length: for 101 Switching Protocols.
  void end_without_body();

 private:
  std::string* out_;
  int status_;
};

// A text/plain response whose body is `reason` plus "\n". `close` adds Connection: close.
void append_error_response(std::string* out, int status, std::string_view reason, bool close,
                           bool head_request = false);
std::string make_error_response(int status, std::string_view reason, bool close,
                                bool head_request = false);
// 405 with the Allow header RFC 9110 section 15.5.6 requires, e.g. allow = "GET".
std::string make_method_not_allowed(std::string_view allow, std::string_view reason, bool close);
// 426 for a WebSocket version we do not speak: names the one we do (RFC 6455 section 4.4) and,
// as RFC 9110 section 15.5.22 requires of 426, the protocol to upgrade to.
std::string make_upgrade_required(std::string_view reason, bool close);

}  // namespace weir::ws
