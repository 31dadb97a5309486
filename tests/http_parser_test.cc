// HttpParser (request parsing, pipelining, limits, errors) and HttpResponse (serialisation).
#include "ws/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ws/http_response.h"

namespace weir::ws {
namespace {

// What a connection would see after feeding some bytes the way the server does: every
// complete request is taken and the unconsumed remainder is fed again.
struct Drained {
  std::vector<HttpRequest> requests;
  FeedResult last;
  size_t consumed = 0;
};

void drain_into(HttpParser& parser, std::string_view bytes, Drained* out) {
  size_t off = 0;
  do {
    FeedResult r = parser.feed(bytes.data() + off, bytes.size() - off);
    off += r.consumed;
    out->consumed += r.consumed;
    out->last = r;
    if (r.status == FeedStatus::kRequest || r.status == FeedStatus::kUpgrade) {
      out->requests.push_back(parser.request());
    }
    if (r.status != FeedStatus::kRequest) return;
  } while (off < bytes.size());
}

Drained drain(HttpParser& parser, std::string_view bytes) {
  Drained out;
  drain_into(parser, bytes, &out);
  return out;
}

FeedResult feed_all(HttpParser& parser, std::string_view bytes) {
  return drain(parser, bytes).last;
}

const std::string kGet = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
const std::string kPost = "POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
const std::string kChunked =
    "POST /three HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    "4;name=value\r\nWiki\r\n5;ext\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
    "0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";
const std::string kHead = "HEAD /four HTTP/1.1\r\nHost: h\r\n\r\n";
const std::string kPipeline = kGet + kPost + kChunked + kHead;

void expect_pipeline(const std::vector<HttpRequest>& got) {
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].target(), "/one");
  EXPECT_EQ(got[1].target(), "/two");
  EXPECT_EQ(got[1].body(), "hello");
  EXPECT_EQ(got[2].target(), "/three");
  EXPECT_EQ(got[2].body(), "Wikipedia in\r\n\r\nchunks.");
  EXPECT_TRUE(got[2].chunked());
  EXPECT_EQ(got[3].target(), "/four");
  EXPECT_EQ(got[3].method(), HttpMethod::kHead);
}

TEST(HttpParser, ParsesRequestLinePathQueryAndHeaders) {
  HttpParser parser;
  std::string req =
      "GET /chat/room?name=a&b=c#frag HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\n"
      "X-Padded:   v w \t\r\n\r\n";
  FeedResult r = parser.feed(req.data(), req.size());
  ASSERT_EQ(r.status, FeedStatus::kRequest);
  EXPECT_EQ(r.consumed, req.size());
  const HttpRequest& q = parser.request();
  EXPECT_EQ(q.method(), HttpMethod::kGet);
  EXPECT_EQ(q.method_name(), "GET");
  EXPECT_EQ(q.target(), "/chat/room?name=a&b=c#frag");
  EXPECT_EQ(q.path(), "/chat/room");
  EXPECT_EQ(q.query(), "name=a&b=c");
  EXPECT_EQ(q.version_major(), 1);
  EXPECT_EQ(q.version_minor(), 1);
  ASSERT_EQ(q.header_count(), 3u);
  EXPECT_EQ(q.header_at(0).name, "Host");
  EXPECT_EQ(q.header("host"), "example.com");
  EXPECT_TRUE(q.has_header("X-EMPTY"));
  EXPECT_EQ(q.header("x-empty"), "");
  EXPECT_EQ(q.header("X-Padded"), "v w");
  EXPECT_FALSE(q.has_header("Missing"));
  EXPECT_TRUE(q.keep_alive());
  EXPECT_FALSE(q.is_upgrade());
  EXPECT_FALSE(q.chunked());
  EXPECT_TRUE(q.body().empty());
}

TEST(HttpParser, SplitsAbsoluteFormTargetAfterAuthority) {
  HttpParser parser;
  ASSERT_EQ(feed_all(parser, "GET http://h:80/p/q?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").status,
            FeedStatus::kRequest);
  EXPECT_EQ(parser.request().path(), "/p/q");
  EXPECT_EQ(parser.request().query(), "x=1");
}

TEST(HttpParser, TokenListLookupIsCaseInsensitiveAcrossHeaderLines) {
  HttpParser parser;
  ASSERT_EQ(feed_all(parser,
                     "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                     "X-List: a\r\nx-list:  B ,c\t\r\n\r\n")
                .status,
            FeedStatus::kRequest);
  const HttpRequest& q = parser.request();
  EXPECT_TRUE(q.header_has_token("connection", "upgrade"));
  EXPECT_TRUE(q.header_has_token("Connection", "KEEP-ALIVE"));
  EXPECT_FALSE(q.header_has_token("Connection", "close"));
  EXPECT_FALSE(q.header_has_token("Connection", "Upgr"));
  EXPECT_TRUE(q.header_has_token("X-List", "b"));
  EXPECT_TRUE(q.header_has_token("X-List", "C"));
  EXPECT_EQ(q.header_occurrences("x-LIST"), 2u);
  EXPECT_EQ(q.header("X-List"), "a");
  EXPECT_TRUE(token_list_contains(" a ,, b", "b"));
  EXPECT_FALSE(token_list_contains("", "a"));
}

TEST(HttpParser, PipelinedRequestsComeOutOneAtATimeInOrder) {
  HttpParser parser;
  FeedResult r = parser.feed(kPipeline.data(), kPipeline.size());
  ASSERT_EQ(r.status, FeedStatus::kRequest);
  EXPECT_EQ(r.consumed, kGet.size());
  Drained d = drain(parser, std::string_view(kPipeline).substr(r.consumed));
  EXPECT_EQ(d.consumed, kPipeline.size() - kGet.size());
  ASSERT_EQ(d.requests.size(), 3u);
  EXPECT_EQ(d.requests[0].target(), "/two");
}

TEST(HttpParser, PipelinedRequestsSplitAtEveryOffsetComeOutInOrder) {
  for (size_t split = 0; split <= kPipeline.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    HttpParser parser;
    Drained d;
    drain_into(parser, std::string_view(kPipeline).substr(0, split), &d);
    drain_into(parser, std::string_view(kPipeline).substr(split), &d);
    EXPECT_EQ(d.consumed, kPipeline.size());
    expect_pipeline(d.requests);
  }
}

TEST(HttpParser, PipelinedRequestsFedOneByteAtATimeComeOutInOrder) {
  HttpParser parser;
  Drained d;
  for (char c : kPipeline) drain_into(parser, std::string_view(&c, 1), &d);
  expect_pipeline(d.requests);
}

TEST(HttpParser, Http11IsKeepAliveUnlessConnectionClose) {
  HttpParser a;
  ASSERT_EQ(feed_all(a, kGet).status, FeedStatus::kRequest);
  EXPECT_TRUE(a.request().keep_alive());
  HttpParser b;
  ASSERT_EQ(feed_all(b, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n").status,
            FeedStatus::kRequest);
  EXPECT_FALSE(b.request().keep_alive());
  EXPECT_TRUE(b.closed());
}

TEST(HttpParser, Http10IsCloseUnlessConnectionKeepAlive) {
  HttpParser a;
  ASSERT_EQ(feed_all(a, "GET / HTTP/1.0\r\n\r\n").status, FeedStatus::kRequest);
  EXPECT_EQ(a.request().version_minor(), 0);
  EXPECT_FALSE(a.request().keep_alive());
  HttpParser b;
  ASSERT_EQ(feed_all(b, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status,
            FeedStatus::kRequest);
  EXPECT_TRUE(b.request().keep_alive());
  EXPECT_FALSE(b.closed());
}

TEST(HttpParser, IgnoresBytesAfterARequestWithoutKeepAlive) {
  HttpParser parser;
  std::string first = "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  std::string bytes = first + kGet;
  FeedResult r = parser.feed(bytes.data(), bytes.size());
  ASSERT_EQ(r.status, FeedStatus::kRequest);
  EXPECT_EQ(r.consumed, first.size());
  r = parser.feed(kGet.data(), kGet.size());
  EXPECT_EQ(r.status, FeedStatus::kNeedMore);
  EXPECT_EQ(r.consumed, kGet.size());
  EXPECT_EQ(parser.request().target(), "/a");
}

TEST(HttpParser, DecodesChunkedBodyWithExtensionsAndTrailers) {
  HttpParser parser;
  Drained d = drain(parser, kChunked);
  ASSERT_EQ(d.last.status, FeedStatus::kRequest);
  ASSERT_EQ(d.requests.size(), 1u);
  EXPECT_EQ(d.requests[0].body(), "Wikipedia in\r\n\r\nchunks.");
  EXPECT_TRUE(d.requests[0].chunked());
  // Trailer fields frame the message but are not headers of the request.
  EXPECT_FALSE(d.requests[0].has_header("Expires"));
}

TEST(HttpParser, RecognisesHead) {
  HttpParser parser;
  ASSERT_EQ(feed_all(parser, kHead).status, FeedStatus::kRequest);
  EXPECT_EQ(parser.request().method(), HttpMethod::kHead);
  EXPECT_EQ(parser.request().method_name(), "HEAD");
}

TEST(HttpParser, UpgradeStopsAtEndOfHeadersAndLeavesFrameBytes) {
  std::string head =
      "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  std::string bytes = head + "\x81\x85" + "abcdhello";
  for (size_t split = 0; split <= bytes.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    HttpParser parser;
    Drained d;
    drain_into(parser, std::string_view(bytes).substr(0, split), &d);
    if (d.last.status != FeedStatus::kUpgrade) {
      drain_into(parser, std::string_view(bytes).substr(split), &d);
    }
    ASSERT_EQ(d.last.status, FeedStatus::kUpgrade);
    EXPECT_EQ(d.consumed, head.size());
    ASSERT_EQ(d.requests.size(), 1u);
    EXPECT_TRUE(d.requests[0].is_upgrade());
    EXPECT_EQ(d.requests[0].path(), "/ws");
  }
}

TEST(HttpParser, UpgradeHeaderWithoutConnectionUpgradeIsAPlainRequest) {
  HttpParser parser;
  FeedResult r = feed_all(parser, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_EQ(r.status, FeedStatus::kRequest);
  EXPECT_FALSE(parser.request().is_upgrade());
}

TEST(HttpParser, HeaderSectionOverLimitAnswers431BeforeItEnds) {
  HttpParserConfig config;
  config.max_header_bytes = 256;
  HttpParser parser(config);
  std::string bytes = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(1000, 'a');
  size_t fed = 0;
  FeedResult r;
  for (; fed < bytes.size(); ++fed) {
    r = parser.feed(&bytes[fed], 1);
    if (r.status != FeedStatus::kNeedMore) break;
  }
  EXPECT_EQ(r.status, FeedStatus::kError);
  EXPECT_EQ(r.http_status, 431);
  EXPECT_EQ(r.reason, "request header fields too large");
  EXPECT_EQ(fed + 1, 256u);  // the 256th byte exhausts the budget with headers unfinished
  HttpParser whole(config);
  r = whole.feed(bytes.data(), bytes.size());
  EXPECT_EQ(r.http_status, 431);
  EXPECT_EQ(r.consumed, 256u);
}

TEST(HttpParser, HeaderSectionExactlyAtLimitIsAccepted) {
  std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
  std::string tail = "\r\n\r\n";
  HttpParserConfig config;
  config.max_header_bytes = 200;
  req += std::string(200 - req.size() - tail.size(), 'p') + tail;
  ASSERT_EQ(req.size(), 200u);
  HttpParser parser(config);
  EXPECT_EQ(feed_all(parser, req).status, FeedStatus::kRequest);
  HttpParser pipelined(config);
  Drained d = drain(pipelined, req + req + req);
  EXPECT_EQ(d.requests.size(), 3u);
}

TEST(HttpParser, TooManyHeaderFieldsAnswers431BeforeTheEnd) {
  HttpParserConfig config;
  config.max_headers = 5;
  HttpParser parser(config);
  std::string bytes = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 5; ++i) bytes += "X-" + std::to_string(i) + ": v\r\n";
  FeedResult r = parser.feed(bytes.data(), bytes.size());
  EXPECT_EQ(r.status, FeedStatus::kError);
  EXPECT_EQ(r.http_status, 431);
  EXPECT_EQ(r.reason, "too many header fields");
}

TEST(HttpParser, ContentLengthOverLimitAnswers413BeforeTheBody) {
  HttpParserConfig config;
  config.max_body_bytes = 10;
  HttpParser parser(config);
  FeedResult r = feed_all(parser, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n");
  EXPECT_EQ(r.status, FeedStatus::kError);
  EXPECT_EQ(r.http_status, 413);
  HttpParser ok(config);
  EXPECT_EQ(
      feed_all(ok, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789").status,
      FeedStatus::kRequest);
  HttpParser huge(config);
  r = feed_all(huge, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n");
  EXPECT_EQ(r.http_status, 413);
}

TEST(HttpParser, ChunkedBodyOverLimitAnswers413AtTheChunkHeader) {
  HttpParserConfig config;
  config.max_body_bytes = 10;
  HttpParser parser(config);
  FeedResult r = feed_all(parser,
                          "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "8\r\n01234567\r\n3\r\n");
  EXPECT_EQ(r.status, FeedStatus::kError);
  EXPECT_EQ(r.http_status, 413);
  EXPECT_EQ(r.reason, "request body too large");
  HttpParser giant(config);
  r = feed_all(giant,
               "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n");
  EXPECT_EQ(r.http_status, 413);
}

TEST(HttpParser, EndlessChunkExtensionAnswers413) {
  HttpParserConfig config;
  config.max_header_bytes = 1024;
  HttpParser parser(config);
  std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;x=";
  ASSERT_EQ(feed_all(parser, head).status, FeedStatus::kNeedMore);
  std::string ext(512, 'e');
  FeedResult r;
  for (int i = 0; i < 10 && r.status != FeedStatus::kError; ++i) r = feed_all(parser, ext);
  EXPECT_EQ(r.status, FeedStatus::kError);
  EXPECT_EQ(r.http_status, 413);
}

TEST(HttpParser, EndlessTrailerAnswers431) {
  HttpParserConfig config;
  config.max_header_bytes = 1024;
  HttpParser parser(config);
  std::string bytes = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 100; ++i) bytes += "X-T: " + std::string(20, 't') + "\r\n";
  FeedResult r = feed_all(parser, bytes);
  EXPECT_EQ(r.status, FeedStatus::kError);
  EXPECT_EQ(r.http_status, 431);
}

struct Malformed {
  const char* name;
  std::string bytes;
  int status;
  std::string_view reason;
};

TEST(HttpParser, MalformedRequestsGetStatusAndOneLineReason) {
  const std::vector<Malformed> cases = {
      {"control char in header name", "GET / HTTP/1.1\r\nHost: h\r\nBad\x01: x\r\n\r\n", 400,
       "invalid header token"},
      {"space in header name", "GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", 400,
       "invalid header field name"},
      {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400,
       "invalid header field name"},
      {"control char in value", "GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n", 400,
       "invalid header value char"},
      {"control char in target", "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
       "invalid char in url path"},
      {"bad version", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 400, "invalid HTTP version"},
      {"not http", "GET / FTP/1.1\r\nHost: h\r\n\r\n", 400, "expected HTTP/"},
      {"leading space header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400,
       "unexpected space after start line"},
      {"bad content length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400,
       "invalid character in Content-Length"},
      {"two content lengths",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
       "duplicate Content-Length"},
      {"content length with chunked",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400,
       "Content-Length can't be present with Transfer-Encoding"},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       400, "invalid character in chunk size"},
      {"missing host", "GET / HTTP/1.1\r\n\r\n", 400, "missing Host header"},
      {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "multiple Host headers"},
      {"unknown method", "BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", 501, "unsupported method"},
      {"lowercase method", "get / HTTP/1.1\r\nHost: h\r\n\r\n", 501, "unsupported method"},
      {"webdav method", "PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n", 501, "method not implemented"},
      {"connect", "CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 501, "method not implemented"},
      {"gzip coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
       "unsupported transfer coding"},
      {"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP/2 is not supported"},
      {"explicit http/0.9", "GET / HTTP/0.9\r\n\r\n", 505, "HTTP version not supported"},
      {"http/0.9 simple request", "GET /\r\n\r\n", 505, "HTTP version not supported"},
  };
  for (const Malformed& c : cases) {
    SCOPED_TRACE(c.name);
    HttpParser parser;
    FeedResult r = feed_all(parser, c.bytes);
    ASSERT_EQ(r.status, FeedStatus::kError);
    EXPECT_EQ(r.http_status, c.status);
    EXPECT_EQ(r.reason, c.reason);
    EXPECT_EQ(r.reason.find('\n'), std::string_view::npos);
  }
}

TEST(HttpParser, HostIsOptionalForHttp10AndWhenNotRequired) {
  HttpParser old;
  EXPECT_EQ(feed_all(old, "GET / HTTP/1.0\r\n\r\n").status, FeedStatus::kRequest);
  HttpParserConfig config;
  config.require_host = false;
  HttpParser lax(config);
  EXPECT_EQ(feed_all(lax, "GET / HTTP/1.1\r\n\r\n").status, FeedStatus::kRequest);
}

TEST(HttpParser, ErrorIsStickyUntilReset) {
  HttpParser parser;
  FeedResult first = feed_all(parser, "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n");
  ASSERT_EQ(first.status, FeedStatus::kError);
  FeedResult again = parser.feed(kGet.data(), kGet.size());
  EXPECT_EQ(again.status, FeedStatus::kError);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_EQ(again.http_status, 400);
  EXPECT_EQ(again.reason, "invalid header field name");
  parser.reset();
  EXPECT_EQ(feed_all(parser, kGet).status, FeedStatus::kRequest);
}

TEST(HttpParser, MidRequestTellsHeaderTimeoutFromIdleTimeout) {
  HttpParser parser;
  EXPECT_TRUE(parser.idle());
  EXPECT_FALSE(parser.mid_request());
  parser.feed("GE", 2);
  EXPECT_TRUE(parser.mid_request());
  EXPECT_FALSE(parser.idle());
  std::string rest = kGet.substr(2) + "POST";
  FeedResult r = parser.feed(rest.data(), rest.size());
  ASSERT_EQ(r.status, FeedStatus::kRequest);
  EXPECT_TRUE(parser.idle());
  parser.feed("POST", 4);
  EXPECT_TRUE(parser.mid_request());
}

TEST(HttpParser, TakeRequestMovesItOut) {
  HttpParser parser;
  ASSERT_EQ(feed_all(parser, kPost).status, FeedStatus::kRequest);
  HttpRequest taken = parser.take_request();
  EXPECT_EQ(taken.body(), "hello");
  EXPECT_EQ(taken.header("content-length"), "5");
  EXPECT_EQ(parser.request().header_count(), 0u);
}

TEST(HttpRequest, BuiltByHandSupportsTheSameLookups) {
  HttpRequest r;
  r.add_header("Connection", " Upgrade ");
  r.set_target("/a?b");
  EXPECT_EQ(r.path(), "/a");
  EXPECT_EQ(r.query(), "b");
  EXPECT_EQ(r.header("connection"), "Upgrade");
  EXPECT_TRUE(r.header_has_token("CONNECTION", "upgrade"));
  HttpRequest moved = std::move(r);
  EXPECT_EQ(moved.header("Connection"), "Upgrade");
}

TEST(HttpResponse, WritesStatusLineHeadersLengthAndBody) {
  std::string out;
  HttpResponse(&out, 200).header("Content-Type", "text/plain").end("hi");
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi");
}

TEST(HttpResponse, HeadKeepsContentLengthButDropsBody) {
  std::string out;
  HttpResponse(&out, 404).end("missing", true);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\n");
}

TEST(HttpResponse, CloseAddsConnectionCloseAndAppendsToBuffer) {
  std::string out = "prefix|";
  HttpResponse(&out, 204).close(true).end("ignored");
  EXPECT_EQ(out, "prefix|HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  out.clear();
  HttpResponse(&out, 200).close(false).end();
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpResponse, HeaderValuesCannotSplitTheResponse) {
  std::string out;
  HttpResponse(&out, 200, "OK\r\nX: y").header("X-A", "1\r\nSet-Cookie: evil").end();
  EXPECT_EQ(out, "HTTP/1.1 200 OK  X: y\r\nX-A: 1  Set-Cookie: evil\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpResponse, ErrorResponseBodyIsTheReasonLine) {
  EXPECT_EQ(make_error_response(400, "invalid header token", true),
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\n\r\n"
            "invalid header token\n");
  EXPECT_EQ(make_error_response(431, "too big", false, true),
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\n\r\n");
}

TEST(HttpResponse, MethodNotAllowedCarriesAllow) {
  std::string out = make_method_not_allowed("GET, HEAD", "use GET", true);
  EXPECT_EQ(out.rfind("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n", 0), 0u);
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(out.ends_with("\r\n\r\nuse GET\n"));
}

TEST(HttpResponse, UpgradeRequiredNamesVersion13) {
  std::string out = make_upgrade_required("need 13", true);
  EXPECT_EQ(out.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0), 0u);
  EXPECT_NE(out.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(out.find("Upgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(out.find("Connection: Upgrade, close\r\n"), std::string::npos);
}

TEST(HttpResponse, StatusReasonsAndDate) {
  EXPECT_EQ(status_reason(101), "Switching Protocols");
  EXPECT_EQ(status_reason(408), "Request Timeout");
  EXPECT_EQ(status_reason(413), "Content Too Large");
  EXPECT_EQ(status_reason(505), "HTTP Version Not Supported");
  EXPECT_EQ(status_reason(299), "Unknown");
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  std::string out;
  HttpResponse(&out, 200).date().end();
  EXPECT_NE(out.find("\r\nDate: "), std::string::npos);
  EXPECT_NE(out.find(" GMT\r\n"), std::string::npos);
}

}  // namespace
}  // namespace weir::ws
