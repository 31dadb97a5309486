// Response serialisation: status line, sanitised headers, Content-Length and body.
#include "ws/http_response.h"

#include <charconv>
#include <cstdio>

namespace weir::ws {
namespace {

void append_uint(std::string* out, uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  (void)ec;  // 24 digits always suffice for uint64_t
  out->append(digits, end);
}

// Copies `text`, turning CR and LF into spaces: header lines must stay one line each.
void append_sanitized(std::string* out, std::string_view text) {
  for (char c : text) out->push_back(c == '\r' || c == '\n' ? ' ' : c);
}

bool is_bodiless(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

// Finishes an error response whose text/plain body is `reason` + "\n", written in place so no
// temporary string is built. Sanitising keeps the length, so Content-Length stays exact.
void end_with_reason(HttpResponse& r, std::string* out, int status, std::string_view reason,
                     bool head_request) {
  if (is_bodiless(status)) return r.end();
  r.header("Content-Type", "text/plain; charset=utf-8")
      .header("Content-Length", static_cast<uint64_t>(reason.size() + 1));
  out->append("\r\n");
  if (head_request) return;
  append_sanitized(out, reason);
  out->push_back('\n');
}

}  // namespace

std::string_view status_reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string http_date(std::time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  int n = std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                        tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                        tm.tm_sec);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

HttpResponse::HttpResponse(std::string* out, int status, std::string_view reason_phrase)
    : out_(out), status_(status) {
  out_->append("HTTP/1.1 ");
  append_uint(out_, static_cast<uint64_t>(status));
  out_->push_back(' ');
  append_sanitized(out_, reason_phrase.empty() ? status_reason(status) : reason_phrase);
  out_->append("\r\n");
}

HttpResponse& HttpResponse::header(std::string_view name, std::string_view value) {
  append_sanitized(out_, name);
  out_->append(": ");
  append_sanitized(out_, value);
  out_->append("\r\n");
  return *this;
}

HttpResponse& HttpResponse::header(std::string_view name, uint64_t value) {
  append_sanitized(out_, name);
  out_->append(": ");
  append_uint(out_, value);
  out_->append("\r\n");
  return *this;
}

HttpResponse& HttpResponse::raw_headers(std::string_view lines) {
  out_->append(lines);
  return *this;
}

HttpResponse& HttpResponse::date() {
  return header("Date", http_date(std::time(nullptr)));
}

HttpResponse& HttpResponse::close(bool closing) {
  if (closing) header("Connection", "close");
  return *this;
}

void HttpResponse::end(std::string_view body, bool head_request) {
  bool bodiless = is_bodiless(status_);
  if (!bodiless) header("Content-Length", static_cast<uint64_t>(body.size()));
  out_->append("\r\n");
  if (!bodiless && !head_request) out_->append(body);
}

void HttpResponse::end_without_body() {
  out_->append("\r\n");
}

void append_error_response(std::string* out, int status, std::string_view reason, bool close,
                           bool head_request) {
  HttpResponse r(out, status);
  r.close(close);
  end_with_reason(r, out, status, reason, head_request);
}

std::string make_error_response(int status, std::string_view reason, bool close,
                                bool head_request) {
  std::string out;
  append_error_response(&out, status, reason, close, head_request);
  return out;
}

std::string make_method_not_allowed(std::string_view allow, std::string_view reason, bool close) {
  std::string out;
  HttpResponse r(&out, 405);
  r.header("Allow", allow).close(close);
  end_with_reason(r, &out, 405, reason, false);
  return out;
}

std::string make_upgrade_required(std::string_view reason, bool close) {
  std::string out;
  HttpResponse r(&out, 426);
  r.header("Sec-WebSocket-Version", "13")
      .header("Upgrade", "websocket")
      .header("Connection", close ? "Upgrade, close" : "Upgrade");
  end_with_reason(r, &out, 426, reason, false);
  return out;
}

}  // namespace weir::ws
