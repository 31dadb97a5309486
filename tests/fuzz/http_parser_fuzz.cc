// Fuzzes HttpParser the way a connection drives it: bytes arrive in fuzzer-chosen slices,
// every request is taken and answered, an upgrade goes through the handshake, an error gets
// its response. Checks the parser's promises (consumed bounds, limits, one-line reasons).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ws/handshake.h"
#include "ws/http_parser.h"
#include "ws/http_response.h"

using namespace weir::ws;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void answer(const HttpRequest& req, const HttpParserConfig& config) {
  check(req.body().size() <= config.max_body_bytes);
  check(req.header_count() <= config.max_headers);
  check(req.path().size() <= req.target().size());
  for (size_t i = 0; i < req.header_count(); ++i) {
    HttpHeader h = req.header_at(i);
    check(!h.name.empty());
    check(req.has_header(h.name));
  }
  std::string out;
  HttpResponse(&out, 200)
      .header("X-Path", req.path())
      .close(!req.keep_alive())
      .end(req.body(), req.method() == HttpMethod::kHead);
  check(out.find("\r\n\r\n") != std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  HttpParserConfig config;
  config.max_header_bytes = 32 + data[0] * 8u;
  config.max_body_bytes = data[1] * 4u;
  config.max_headers = 1 + data[0] % 16;
  config.require_host = (data[1] & 1) != 0;
  const size_t slice = 1 + data[1] % 37;
  const char* bytes = reinterpret_cast<const char*>(data + 2);
  const size_t len = size - 2;

  HttpParser parser(config);
  size_t off = 0;
  for (int rounds = 0; off < len && rounds < 100000; ++rounds) {
    size_t n = len - off < slice ? len - off : slice;
    FeedResult r = parser.feed(bytes + off, n);
    check(r.consumed <= n);
    off += r.consumed;
    switch (r.status) {
      case FeedStatus::kNeedMore:
        check(r.consumed == n);
        check(parser.mid_request() || parser.closed() || n == 0);
        break;
      case FeedStatus::kRequest:
        answer(parser.request(), config);
        parser.take_request();
        break;
      case FeedStatus::kUpgrade: {
        HandshakeResult h = validate_upgrade(parser.request(), HandshakeConfig{});
        std::string out = h.ok ? build_upgrade_response(h) : build_rejection_response(h);
        check(!out.empty());
        return 0;
      }
      case FeedStatus::kError: {
        int s = r.http_status;
        check(s == 400 || s == 413 || s == 431 || s == 501 || s == 505);
        check(!r.reason.empty() && r.reason.find('\n') == std::string_view::npos);
        std::string out = make_error_response(s, r.reason, true);
        check(parser.feed(bytes, len).status == FeedStatus::kError);
        return 0;
      }
    }
  }
  return 0;
}
