// Accessors and incremental building for HttpRequest, plus the token-list helpers.
#include "ws/http_request.h"

namespace weir::ws {
namespace {

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view method_name(HttpMethod method) {
  switch (method) {
    case HttpMethod::kGet:
      return "GET";
    case HttpMethod::kHead:
      return "HEAD";
    case HttpMethod::kPost:
      return "POST";
    case HttpMethod::kPut:
      return "PUT";
    case HttpMethod::kDelete:
      return "DELETE";
    case HttpMethod::kOptions:
      return "OPTIONS";
    case HttpMethod::kPatch:
      return "PATCH";
    case HttpMethod::kOther:
      break;
  }
  return "OTHER";
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool token_list_contains(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view element = list.substr(0, comma);
    if (ascii_iequals(trim_ows(element), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

HttpHeader HttpRequest::header_at(size_t i) const {
  return {view(headers_[i].name), view(headers_[i].value)};
}

std::string_view HttpRequest::header(std::string_view name) const {
  for (const HeaderSpans& h : headers_) {
    if (ascii_iequals(view(h.name), name)) return view(h.value);
  }
  return {};
}

bool HttpRequest::has_header(std::string_view name) const {
  return header_occurrences(name) > 0;
}

size_t HttpRequest::header_occurrences(std::string_view name) const {
  size_t n = 0;
  for (const HeaderSpans& h : headers_) {
    if (ascii_iequals(view(h.name), name)) ++n;
  }
  return n;
}

// Looks at every header of that name: RFC 9110 allows a list to be split across field lines.
bool HttpRequest::header_has_token(std::string_view name, std::string_view token) const {
  for (const HeaderSpans& h : headers_) {
    if (ascii_iequals(view(h.name), name) && token_list_contains(view(h.value), token)) {
      return true;
    }
  }
  return false;
}

void HttpRequest::clear() {
  text_.clear();
  target_ = path_ = query_ = Span{};
  headers_.clear();
  body_.clear();
  method_ = HttpMethod::kGet;
  version_major_ = 1;
  version_minor_ = 1;
  keep_alive_ = true;
  upgrade_ = chunked_ = false;
}

void HttpRequest::set_version(int major, int minor) {
  version_major_ = static_cast<uint8_t>(major);
  version_minor_ = static_cast<uint8_t>(minor);
}

// Spans are offsets, so the target need not come first in text_; a replaced target leaves its
// old bytes behind, which only hand-built requests ever do.
void HttpRequest::set_target(std::string_view target) {
  target_ = Span{};
  append_target(target);
  finish_target();
}

void HttpRequest::add_header(std::string_view name, std::string_view value) {
  begin_header();
  append_header_name(name);
  begin_header_value();
  append_header_value(value);
  finish_header_value();
}

void HttpRequest::append_target(std::string_view bytes) {
  if (target_.length == 0) target_.offset = static_cast<uint32_t>(text_.size());
  text_.append(bytes);
  target_.length += static_cast<uint32_t>(bytes.size());
}

// Splits origin-form `/p?q#f`; for absolute-form `http://host/p?q` the path starts after the
// authority so routing sees the same path either way.
void HttpRequest::finish_target() {
  std::string_view t = view(target_);
  size_t start = 0;
  size_t scheme = t.find("://");
  if (!t.empty() && t.front() != '/' && scheme != std::string_view::npos) {
    size_t slash = t.find('/', scheme + 3);
    start = slash == std::string_view::npos ? t.size() : slash;
  }
  size_t hash = t.find('#', start);
  size_t end = hash == std::string_view::npos ? t.size() : hash;
  size_t question = t.find('?', start);
  if (question > end) question = std::string_view::npos;
  size_t path_end = question == std::string_view::npos ? end : question;
  path_ = {static_cast<uint32_t>(target_.offset + start), static_cast<uint32_t>(path_end - start)};
  if (question == std::string_view::npos) {
    query_ = {static_cast<uint32_t>(target_.offset + end), 0};
  } else {
    query_ = {static_cast<uint32_t>(target_.offset + question + 1),
              static_cast<uint32_t>(end - question - 1)};
  }
}

void HttpRequest::begin_header() {
  HeaderSpans h;
  h.name.offset = static_cast<uint32_t>(text_.size());
  headers_.push_back(h);
}

void HttpRequest::append_header_name(std::string_view bytes) {
  text_.append(bytes);
  headers_.back().name.length += static_cast<uint32_t>(bytes.size());
}

void HttpRequest::begin_header_value() {
  headers_.back().value = {static_cast<uint32_t>(text_.size()), 0};
}

void HttpRequest::append_header_value(std::string_view bytes) {
  text_.append(bytes);
  headers_.back().value.length += static_cast<uint32_t>(bytes.size());
}

// llhttp strips leading whitespace from a value but keeps trailing whitespace; RFC 9110
// excludes both from the field value.
void HttpRequest::finish_header_value() {
  Span& v = headers_.back().value;
  std::string_view value = trim_ows(view(v));
  v.offset = static_cast<uint32_t>(value.data() - text_.data());
  v.length = static_cast<uint32_t>(value.size());
}

}  // namespace weir::ws
