// Incremental HTTP/1.x request parser on top of llhttp, one per connection.
//
// feed() stops after every complete request so pipelined requests are handled one at a time,
// in order: the caller takes the request, answers it, and feeds the unconsumed remainder
// again. Limits are enforced while bytes arrive, not after the fact, and every rejection comes
// with the status to answer and a one-line reason.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ws/http_request.h"

namespace weir::ws {

struct HttpParserConfig {
  // Request line plus header fields, counted on the wire; exceeding it answers 431.
  size_t max_header_bytes = 16 * 1024;
  // Decoded body; a larger Content-Length or chunk answers 413 before the body arrives.
  size_t max_body_bytes = 1024 * 1024;
  // Header fields per request; exceeding it answers 431.
  size_t max_headers = 100;
  // RFC 9112 section 3.2: an HTTP/1.1 request without exactly one Host header gets 400.
  bool require_host = true;
};

enum class FeedStatus : uint8_t {
  kNeedMore,  // every byte was taken; the request is not complete yet
  kRequest,   // a complete request: take_request(), then feed the rest of the bytes again
  kUpgrade,   // a complete Upgrade request; bytes after `consumed` belong to the new protocol
  kError,     // answer http_status with reason, then close; the parser stays failed
};

struct FeedResult {
  FeedStatus status = FeedStatus::kNeedMore;
  size_t consumed = 0;      // bytes of this feed() call that were parsed
  int http_status = 0;      // kError only: 400, 413, 431, 501 or 505
  std::string_view reason;  // kError only: one line, valid until the next feed() or reset()
};

// Thread-safety: none. Owned by one connection and used on its reactor thread only. Not
// movable: llhttp keeps a pointer back to the parser.
class HttpParser {
 public:
  explicit HttpParser(const HttpParserConfig& config = {});
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // Parses up to `len` bytes; see FeedStatus for what each outcome asks of the caller. Once a
  // request arrived without keep-alive, later bytes are ignored (consumed, kNeedMore): the
  // server closes after answering, as RFC 9112 section 9.6 requires.
  FeedResult feed(const char* data, size_t len);

  // The last complete request (after kRequest or kUpgrade); valid until the next feed().
  const HttpRequest& request() const { return request_; }
  // Moves the last complete request out; request() is empty afterwards.
  HttpRequest take_request();

  // True while bytes of an unfinished request have been seen: the caller's header/request
  // timeout applies (408 for slowloris). Otherwise the keep-alive idle timeout applies.
  bool mid_request() const { return mid_request_; }
  bool idle() const { return !mid_request_ && state_ == State::kReading; }
  // A request without keep-alive was parsed; nothing more will be.
  bool closed() const { return state_ == State::kClosed; }

  // Back to a fresh connection's state, keeping buffer capacity.
  void reset();

 private:
  enum class State : uint8_t { kReading, kClosed, kUpgraded, kFailed };

  static HttpParser* from(llhttp_t* p) { return static_cast<HttpParser*>(p->data); }
  static int on_message_begin(llhttp_t* p);
  static int on_url(llhttp_t* p, const char* at, size_t len);
  static int on_url_complete(llhttp_t* p);
  static int on_method_complete(llhttp_t* p);
  static int on_version_complete(llhttp_t* p);
  static int on_header_field(llhttp_t* p, const char* at, size_t len);
  static int on_header_field_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, size_t len);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_chunk_header(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, size_t len);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t* settings();

  void start_message();
  FeedResult complete_request(size_t consumed);
  // Callbacks reject by recording status and reason and returning -1 to llhttp.
  int reject(int http_status, std::string_view reason);
  int check_headers();
  int count_trailer_bytes(size_t len);
  FeedResult fail(int http_status, std::string_view reason, size_t consumed);
  FeedResult fail_from_llhttp(llhttp_errno_t err, size_t consumed);
  FeedResult error_result() const;
  bool framing_over_budget() const;

  HttpParserConfig config_;
  llhttp_t parser_;
  HttpRequest request_;
  State state_ = State::kReading;
  bool mid_request_ = false;
  bool message_complete_ = false;
  bool headers_complete_ = false;
  bool in_header_field_ = false;
  size_t header_bytes_ = 0;     // wire bytes before the end of the header section
  size_t body_wire_bytes_ = 0;  // wire bytes after it: body plus chunk framing and trailers
  size_t trailer_bytes_ = 0;
  size_t chunks_ = 0;
  int error_status_ = 0;  // set by a callback that rejects the request
  std::string error_reason_;
};

}  // namespace weir::ws
