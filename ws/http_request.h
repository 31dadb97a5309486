// One parsed HTTP/1.x request: method, target (split into path and query), version, headers,
// decoded body and the connection facts the server acts on (keep-alive, upgrade, chunked).
//
// Header names and values live back to back in one string and are addressed by offsets, so a
// request can be moved without dangling views and clear() keeps every buffer's capacity: a
// connection that reuses one request object parses steady keep-alive traffic without
// allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace weir::ws {

// The methods the server implements; HttpParser answers any other method with 501, so
// kOther only appears in requests built by hand.
enum class HttpMethod : uint8_t { kGet, kHead, kPost, kPut, kDelete, kOptions, kPatch, kOther };

std::string_view method_name(HttpMethod method);

// ASCII case-insensitive equality, as HTTP field names and most tokens compare.
bool ascii_iequals(std::string_view a, std::string_view b);

// Strips spaces and tabs (HTTP optional whitespace) from both ends.
std::string_view trim_ows(std::string_view s);

// True when a comma-separated token list (`keep-alive, Upgrade`) holds `token`, compared
// case-insensitively after trimming optional whitespace around each element.
bool token_list_contains(std::string_view list, std::string_view token);

struct HttpHeader {
  std::string_view name;
  std::string_view value;
};

// Thread-safety: a plain value; no internal synchronisation.
class HttpRequest {
 public:
  HttpMethod method() const { return method_; }
  std::string_view method_name() const { return weir::ws::method_name(method_); }
  // The request-target exactly as sent; path() is the part before '?', query() the part after
  // it (without the '?'), both without any '#fragment'.
  std::string_view target() const { return view(target_); }
  std::string_view path() const { return view(path_); }
  std::string_view query() const { return view(query_); }
  int version_major() const { return version_major_; }
  int version_minor() const { return version_minor_; }
  // HTTP/1.1 defaults to persistent unless `Connection: close`; HTTP/1.0 only with
  // `Connection: keep-alive`.
  bool keep_alive() const { return keep_alive_; }
  // `Connection: upgrade` together with an `Upgrade` header.
  bool is_upgrade() const { return upgrade_; }
  // The body arrived with `Transfer-Encoding: chunked` (body() holds it decoded).
  bool chunked() const { return chunked_; }
  const std::string& body() const { return body_; }

  size_t header_count() const { return headers_.size(); }
  HttpHeader header_at(size_t i) const;
  // Value of the first header named `name` (case-insensitive); empty if absent.
  std::string_view header(std::string_view name) const;
  bool has_header(std::string_view name) const;
  size_t header_occurrences(std::string_view name) const;
  // True when any header named `name` is a token list containing `token`.
  bool header_has_token(std::string_view name, std::string_view token) const;

  // Building, used by HttpParser and by tests that need a request without wire bytes.
  void clear();
  void set_method(HttpMethod method) { method_ = method; }
  void set_version(int major, int minor);
  void set_target(std::string_view target);
  void add_header(std::string_view name, std::string_view value);
  void set_keep_alive(bool on) { keep_alive_ = on; }
  void set_upgrade(bool on) { upgrade_ = on; }
  void set_chunked(bool on) { chunked_ = on; }
  std::string& mutable_body() { return body_; }

 private:
  friend class HttpParser;

  struct Span {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  struct HeaderSpans {
    Span name;
    Span value;
  };

  std::string_view view(Span s) const { return {text_.data() + s.offset, s.length}; }
  // Incremental building for HttpParser: llhttp hands each element over in pieces, and the
  // element being built is always the last one in text_.
  void append_target(std::string_view bytes);
  void finish_target();
  void begin_header();
  void append_header_name(std::string_view bytes);
  void begin_header_value();
  void append_header_value(std::string_view bytes);
  void finish_header_value();
  std::string_view last_header_name() const { return view(headers_.back().name); }

  std::string text_;
  Span target_;
  Span path_;
  Span query_;
  std::vector<HeaderSpans> headers_;
  std::string body_;
  HttpMethod method_ = HttpMethod::kGet;
  uint8_t version_major_ = 1;
  uint8_t version_minor_ = 1;
  bool keep_alive_ = true;
  bool upgrade_ = false;
  bool chunked_ = false;
};

}  // namespace weir::ws
