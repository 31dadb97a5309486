// llhttp glue: callbacks copy the request into HttpRequest and enforce limits; feed() drives
// llhttp, pausing at the end of the header section (to count header bytes exactly) and at the
// end of every message (so pipelined requests come out one at a time).
#include "ws/http_parser.h"

#include <algorithm>
#include <array>
#include <utility>

namespace weir::ws {
namespace {

// Chunk framing without extensions costs at most "ffffff\r\n" + "\r\n" per chunk for the
// bodies we accept; extensions and trailers must fit in max_header_bytes on top of that.
constexpr size_t kChunkFramingAllowance = 16;

// RFC 9110 section 5.6.2 token characters, the only ones allowed in a field name. A table:
// the check runs on every header byte.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<uint8_t>(c)] = true;
  return t;
}();

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return kTchar[static_cast<uint8_t>(c)]; });
}

bool implemented_method(uint8_t m, HttpMethod* out) {
  switch (m) {
    case HTTP_GET:
      *out = HttpMethod::kGet;
      return true;
    case HTTP_HEAD:
      *out = HttpMethod::kHead;
      return true;
    case HTTP_POST:
      *out = HttpMethod::kPost;
      return true;
    case HTTP_PUT:
      *out = HttpMethod::kPut;
      return true;
    case HTTP_DELETE:
      *out = HttpMethod::kDelete;
      return true;
    case HTTP_OPTIONS:
      *out = HttpMethod::kOptions;
      return true;
    case HTTP_PATCH:
      *out = HttpMethod::kPatch;
      return true;
    default:
      return false;
  }
}

// "Invalid header token" -> "invalid header token", leaving words such as "HTTP" or
// "Content-Length" that carry capitals beyond their first letter alone.
void lower_sentence_start(std::string* text) {
  std::string_view first_word = std::string_view(*text).substr(0, text->find(' '));
  if (first_word.empty() || first_word[0] < 'A' || first_word[0] > 'Z') return;
  for (char c : first_word.substr(1)) {
    if (c >= 'A' && c <= 'Z') return;
  }
  (*text)[0] = static_cast<char>((*text)[0] + 32);
}

}  // namespace

const llhttp_settings_t* HttpParser::settings() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &HttpParser::on_message_begin;
    s.on_url = &HttpParser::on_url;
    s.on_url_complete = &HttpParser::on_url_complete;
    s.on_method_complete = &HttpParser::on_method_complete;
    s.on_version_complete = &HttpParser::on_version_complete;
    s.on_header_field = &HttpParser::on_header_field;
    s.on_header_field_complete = &HttpParser::on_header_field_complete;
    s.on_header_value = &HttpParser::on_header_value;
    s.on_header_value_complete = &HttpParser::on_header_value_complete;
    s.on_headers_complete = &HttpParser::on_headers_complete;
    s.on_chunk_header = &HttpParser::on_chunk_header;
    s.on_body = &HttpParser::on_body;
    s.on_message_complete = &HttpParser::on_message_complete;
    return s;
  }();
  return &kSettings;
}

HttpParser::HttpParser(const HttpParserConfig& config) : config_(config) {
  reset();
}

void HttpParser::reset() {
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
  request_.clear();
  state_ = State::kReading;
  mid_request_ = false;
  message_complete_ = false;
  in_header_field_ = false;
  error_status_ = 0;
  error_reason_.clear();
  start_message();
}

void HttpParser::start_message() {
  headers_complete_ = false;
  header_bytes_ = body_wire_bytes_ = trailer_bytes_ = chunks_ = 0;
}

HttpRequest HttpParser::take_request() {
  HttpRequest out = std::move(request_);
  request_.clear();
  return out;
}

FeedResult HttpParser::feed(const char* data, size_t len) {
  if (state_ == State::kFailed) return error_result();
  if (state_ == State::kUpgraded) return fail(500, "HTTP parser fed after an upgrade", 0);
  if (state_ == State::kClosed) return {FeedStatus::kNeedMore, len, 0, {}};
  size_t off = 0;
  // After the pause at the end of the headers llhttp must run once more even with no bytes
  // left: a request without a body completes without consuming anything further.
  bool headers_just_ended = false;
  while (off < len || headers_just_ended) {
    headers_just_ended = false;
    const bool in_headers = !headers_complete_;
    size_t n = len - off;
    if (in_headers) n = std::min(n, config_.max_header_bytes - header_bytes_);
    const char* start = data + off;
    llhttp_errno_t err = llhttp_execute(&parser_, start, n);
    size_t used = n;
    if (err != HPE_OK) {
      used = std::min(n, static_cast<size_t>(llhttp_get_error_pos(&parser_) - start));
      // llhttp calls any unknown method invalid; only a token can be a method we do not
      // implement (501): other bytes (a TLS ClientHello, binary noise) are a malformed request.
      if (err == HPE_INVALID_METHOD && used < n && !kTchar[static_cast<uint8_t>(start[used])]) {
        return fail(400, "malformed request line", off + used);
      }
    }
    off += used;
    (in_headers ? header_bytes_ : body_wire_bytes_) += used;
    if (err == HPE_PAUSED) {
      llhttp_resume(&parser_);
      if (message_complete_) return complete_request(off);
      headers_just_ended = true;
    } else if (err == HPE_PAUSED_UPGRADE) {
      state_ = State::kUpgraded;
      mid_request_ = false;
      return {FeedStatus::kUpgrade, off, 0, {}};
    } else if (err != HPE_OK) {
      return fail_from_llhttp(err, off);
    }
    if (!headers_complete_ && header_bytes_ >= config_.max_header_bytes) {
      return fail(431, "request header fields too large", off);
    }
    if (framing_over_budget()) return fail(413, "chunk extensions or trailers too large", off);
  }
  if (len > 0) mid_request_ = true;
  return {FeedStatus::kNeedMore, len, 0, {}};
}

FeedResult HttpParser::complete_request(size_t consumed) {
  message_complete_ = false;
  mid_request_ = false;
  if (!request_.keep_alive()) state_ = State::kClosed;
  start_message();
  return {FeedStatus::kRequest, consumed, 0, {}};
}

bool HttpParser::framing_over_budget() const {
  if (!headers_complete_) return false;
  size_t framing = body_wire_bytes_ - std::min(body_wire_bytes_, request_.body().size());
  return framing > config_.max_header_bytes + kChunkFramingAllowance * (chunks_ + 1);
}

FeedResult HttpParser::fail(int http_status, std::string_view reason, size_t consumed) {
  state_ = State::kFailed;
  error_status_ = http_status;
  error_reason_.assign(reason);
  return {FeedStatus::kError, consumed, error_status_, error_reason_};
}

// A callback that rejected the request has already chosen status and reason; otherwise the
// error is llhttp's own and its reason, with the first letter lowered, becomes ours.
FeedResult HttpParser::fail_from_llhttp(llhttp_errno_t err, size_t consumed) {
  state_ = State::kFailed;
  if (error_status_ == 0) {
    if (err == HPE_INVALID_METHOD) {
      // RFC 9110 section 9.1: an unrecognised method is answered with 501.
      error_status_ = 501;
      error_reason_ = "unsupported method";
    } else {
      error_status_ = 400;
      const char* reason = llhttp_get_error_reason(&parser_);
      error_reason_ = reason != nullptr ? reason : llhttp_errno_name(err);
      lower_sentence_start(&error_reason_);
    }
  }
  return {FeedStatus::kError, consumed, error_status_, error_reason_};
}

FeedResult HttpParser::error_result() const {
  return {FeedStatus::kError, 0, error_status_, error_reason_};
}

int HttpParser::reject(int http_status, std::string_view reason) {
  error_status_ = http_status;
  error_reason_.assign(reason);
  return -1;
}

int HttpParser::on_message_begin(llhttp_t* p) {
  HttpParser* self = from(p);
  self->request_.clear();
  self->in_header_field_ = false;
  return 0;
}

int HttpParser::on_url(llhttp_t* p, const char* at, size_t len) {
  from(p)->request_.append_target({at, len});
  return 0;
}

int HttpParser::on_url_complete(llhttp_t* p) {
  HttpParser* self = from(p);
  self->request_.finish_target();
  // A request line without a version is HTTP/0.9, for which llhttp has already set 0.9 here
  // (otherwise the version is parsed after the URL); it never reaches on_version_complete.
  if (p->http_major == 0 && p->http_minor == 9) {
    return self->reject(505, "HTTP version not supported");
  }
  return 0;
}

int HttpParser::on_method_complete(llhttp_t* p) {
  HttpParser* self = from(p);
  HttpMethod method;
  if (implemented_method(p->method, &method)) {
    self->request_.set_method(method);
    return 0;
  }
  // "PRI * HTTP/2.0" opens the HTTP/2 connection preface (RFC 9113 section 3.4).
  if (p->method == HTTP_PRI) return self->reject(505, "HTTP/2 is not supported");
  return self->reject(501, "method not implemented");
}

int HttpParser::on_version_complete(llhttp_t* p) {
  if (p->http_major == 1 && p->http_minor <= 1) return 0;
  return from(p)->reject(505, "HTTP version not supported");
}

int HttpParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  HttpParser* self = from(p);
  if (self->headers_complete_) return self->count_trailer_bytes(len);
  if (!self->in_header_field_) {
    if (self->request_.header_count() >= self->config_.max_headers) {
      return self->reject(431, "too many header fields");
    }
    self->request_.begin_header();
    self->in_header_field_ = true;
  }
  self->request_.append_header_name({at, len});
  return 0;
}

// llhttp's lenient default lets spaces into field names; RFC 9112 section 5.1 says 400.
int HttpParser::on_header_field_complete(llhttp_t* p) {
  HttpParser* self = from(p);
  self->in_header_field_ = false;
  if (self->headers_complete_) return 0;
  if (!is_token(self->request_.last_header_name())) {
    return self->reject(400, "invalid header field name");
  }
  self->request_.begin_header_value();
  return 0;
}

int HttpParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  HttpParser* self = from(p);
  if (self->headers_complete_) return self->count_trailer_bytes(len);
  self->request_.append_header_value({at, len});
  return 0;
}

int HttpParser::on_header_value_complete(llhttp_t* p) {
  HttpParser* self = from(p);
  if (!self->headers_complete_) self->request_.finish_header_value();
  return 0;
}

// Trailer fields are parsed for framing but not kept: nothing in the server reads them.
int HttpParser::count_trailer_bytes(size_t len) {
  trailer_bytes_ += len;
  if (trailer_bytes_ > config_.max_header_bytes) return reject(431, "trailer fields too large");
  return 0;
}

// Returns HPE_PAUSED so feed() learns exactly where the header section ended.
int HttpParser::on_headers_complete(llhttp_t* p) {
  HttpParser* self = from(p);
  HttpRequest& r = self->request_;
  self->headers_complete_ = true;
  r.set_version(p->http_major, p->http_minor);
  r.set_keep_alive(llhttp_should_keep_alive(p) != 0);
  r.set_upgrade(p->upgrade != 0);
  r.set_chunked((p->flags & F_CHUNKED) != 0);
  if (int rc = self->check_headers(); rc != 0) return rc;
  return HPE_PAUSED;
}

int HttpParser::check_headers() {
  const HttpRequest& r = request_;
  if (config_.require_host && r.version_minor() >= 1) {
    size_t hosts = r.header_occurrences("Host");
    if (hosts == 0) return reject(400, "missing Host header");
    if (hosts > 1) return reject(400, "multiple Host headers");
  }
  // RFC 9112 section 6.1: a transfer coding the server does not understand gets 501.
  for (size_t i = 0; i < r.header_count(); ++i) {
    HttpHeader h = r.header_at(i);
    if (!ascii_iequals(h.name, "Transfer-Encoding")) continue;
    if (!ascii_iequals(h.value, "chunked")) return reject(501, "unsupported transfer coding");
  }
  if ((parser_.flags & F_CONTENT_LENGTH) != 0) {
    if (parser_.content_length > config_.max_body_bytes) {
      return reject(413, "request body too large");
    }
    request_.mutable_body().reserve(parser_.content_length);
  }
  return 0;
}

int HttpParser::on_chunk_header(llhttp_t* p) {
  HttpParser* self = from(p);
  ++self->chunks_;
  size_t have = self->request_.body().size();
  if (p->content_length > self->config_.max_body_bytes - have) {
    return self->reject(413, "request body too large");
  }
  return 0;
}

int HttpParser::on_body(llhttp_t* p, const char* at, size_t len) {
  HttpParser* self = from(p);
  std::string& body = self->request_.mutable_body();
  if (len > self->config_.max_body_bytes - body.size()) {
    return self->reject(413, "request body too large");
  }
  body.append(at, len);
  return 0;
}

// Pauses so feed() returns after each request; an upgrade instead lets llhttp stop with
// HPE_PAUSED_UPGRADE, which also marks where the new protocol's bytes begin.
int HttpParser::on_message_complete(llhttp_t* p) {
  HttpParser* self = from(p);
  self->message_complete_ = true;
  return p->upgrade ? 0 : HPE_PAUSED;
}

}  // namespace weir::ws
