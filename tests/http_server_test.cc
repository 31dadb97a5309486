// tests/http_server_test.cc — weir's HTTP/1.1 side over real sockets: keep-alive, pipelining in
// order, HEAD, request bodies (chunked and sized) consumed before the 405, Connection: close,
// the limits (431 before the headers end, 413 before the body arrives, 408 for slowloris, the
// idle keep-alive timeout), 400/404/405 answers, /metrics in the Prometheus text format, and
// no descriptor left behind by misbehaving clients.
#include <dirent.h>
#include <gtest/gtest.h>

#include <cctype>
#include <functional>
#include <map>
#include <sstream>

#include "tests/server_harness.h"

namespace weir::harness {
namespace {

ServerConfig config_with(const std::function<void(ServerConfig&)>& tweak) {
  ServerConfig c;
  tweak(c);
  return c;
}

// The reason in an error body is one line: text, then a single "\n".
bool one_line(const std::string& body) {
  return body.size() > 1 && body.find('\n') == body.size() - 1 &&
         body.find('\r') == std::string::npos;
}

bool closes_with_fin(RawClient& client, int timeout_ms = 1000) {
  return client.wait_closed(timeout_ms) == ReadStatus::kEof && client.buffered().empty();
}

// ---------------------------------------------------------------- keep-alive and pipelining

TEST(HttpServer, KeepAliveServesRequestsOneAfterAnotherOnOneConnection) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  RawClient client(server.port());
  for (int i = 0; i < 5; ++i) {
    client.send(get_request(i % 2 ? "/readyz" : "/healthz"));
    Response r = read_response(client);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, i % 2 ? "ready\n" : "ok\n");
    EXPECT_FALSE(r.has("Connection")) << "HTTP/1.1 persists without saying so";
  }
  EXPECT_TRUE(client.quiet_for(50)) << "the connection stays open";
}

TEST(HttpServer, FiftyPipelinedRequestsInOneWriteAreAnsweredInOrder) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  struct Kind {
    std::string request;
    int status;
    std::string body;
    bool head;
  };
  const std::vector<Kind> kinds = {
      {get_request("/healthz"), 200, "ok\n", false},
      {get_request("/readyz"), 200, "ready\n", false},
      {get_request("/nope"), 404, "no such route\n", false},
      {get_request("/healthz", "", "HEAD"), 200, "", true},
      {get_request("/readyz", "Content-Length: 5\r\n", "POST") + "hello", 405,
       "method not allowed\n", false},
  };
  std::string all;
  std::vector<const Kind*> sent;
  uint32_t x = 12345;
  for (int i = 0; i < 50; ++i) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    sent.push_back(&kinds[x % kinds.size()]);
    all += sent.back()->request;
  }
  RawClient client(server.port());
  ASSERT_TRUE(client.send(all));
  for (int i = 0; i < 50; ++i) {
    Response r = read_response(client, sent[i]->head);
    ASSERT_EQ(r.read, ReadStatus::kOk) << "response " << i;
    EXPECT_EQ(r.status, sent[i]->status) << "response " << i;
    EXPECT_EQ(r.body, sent[i]->body) << "response " << i;
  }
  EXPECT_TRUE(client.quiet_for(50)) << "nothing beyond the 50 responses";
}

TEST(HttpServer, HeadAnswersWithTheLengthOfTheBodyItLeavesOut) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  RawClient client(server.port());
  client.send(get_request("/readyz", "", "HEAD") + get_request("/nope", "", "HEAD") +
              get_request("/readyz"));
  Response head = read_response(client, true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Length"), "6");
  Response head404 = read_response(client, true);
  EXPECT_EQ(head404.status, 404);
  EXPECT_EQ(head404.header("Content-Length"),
            std::to_string(std::string("no such route\n").size()));
  // The next bytes must be the GET's status line: no body slipped in after either HEAD.
  Response get = read_response(client);
  EXPECT_EQ(get.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(get.body, "ready\n");
}

// No route takes a body, so a POST earns 405; its body must be consumed, not read as the next
// request, whichever way it is framed and however it is split.
TEST(HttpServer, RequestBodiesAreConsumedBefore405ComesBackInOrder) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  const std::vector<std::string> posts = {
      get_request("/healthz", "Transfer-Encoding: chunked\r\n", "POST") +
          "5\r\nGET /\r\n6;ext=1\r\n HTTP/\r\n0\r\n\r\n",
      get_request("/healthz", "Transfer-Encoding: chunked\r\n", "POST") +
          "16\r\nGET /nope HTTP/1.1\r\n\r\n\r\n0\r\nTrailer: yes\r\n\r\n",
      get_request("/healthz", "Content-Length: 24\r\n", "PUT") + "GET /nope HTTP/1.1\r\n\r\n\r\n",
  };
  for (const std::string& post : posts) {
    for (size_t chop : {post.size() + 64, size_t{1}, size_t{7}}) {
      SCOPED_TRACE(post + " in pieces of " + std::to_string(chop));
      RawClient client(server.port());
      client.send_chopped(post + get_request("/readyz"), chop, 20);
      Response r = read_response(client);
      EXPECT_EQ(r.status, 405);
      EXPECT_EQ(r.header("Allow"), "GET, HEAD");
      Response next = read_response(client);
      EXPECT_EQ(next.status, 200);
      EXPECT_EQ(next.body, "ready\n");
      EXPECT_TRUE(client.quiet_for(20));
    }
  }
}

std::string chunked(std::string_view body, size_t chunk) {
  std::string out;
  char size[16];
  for (size_t off = 0; off < body.size(); off += chunk) {
    std::string_view piece = body.substr(off, chunk);
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    out.append(size).append(piece).append("\r\n");
  }
  return out + "0\r\n\r\n";
}

// The rooms API takes POST bodies. A chunked JSON body arrives whole (a room without members
// answers 404 no_such_room, a body cut short 400), and those answers, produced later by the
// room's owner, keep their place among the pipelined requests around them.
TEST(HttpServer, ChunkedBodiesReachTheRoomsApiAndDeferredAnswersKeepTheirPlace) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  const std::string headers =
      std::string("X-API-Key: ") + kApiKey +
      "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n";
  const std::string publish = get_request("/api/rooms/lobby/messages", headers, "POST");
  const std::string all =
      publish + chunked(R"({"content":"hello from a chunked body","message_id":"m-1"})", 7) +
      get_request("/healthz") + publish + chunked(R"({"content":"cut sh)", 5) +
      get_request("/readyz");
  for (size_t chop : {all.size(), size_t{3}}) {
    SCOPED_TRACE("pieces of " + std::to_string(chop));
    RawClient client(server.port());
    client.send_chopped(all, chop, 20);
    Response missing = read_response(client);
    EXPECT_EQ(missing.status, 404) << missing.body;
    EXPECT_NE(missing.body.find("no_such_room"), std::string::npos) << missing.body;
    EXPECT_EQ(read_response(client).body, "ok\n");
    Response bad = read_response(client);
    EXPECT_EQ(bad.status, 400) << bad.body;
    EXPECT_EQ(read_response(client).body, "ready\n");
  }
}

TEST(HttpServer, ConnectionCloseIsAnsweredThenTheConnectionCloses) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  RawClient client(server.port());
  client.send(get_request("/healthz", "Connection: close\r\n") + get_request("/readyz"));
  Response r = read_response(client);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(closes_with_fin(client)) << "a request after Connection: close is not answered";

  RawClient old(server.port());  // HTTP/1.0 closes unless asked to keep alive
  old.send("GET /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(read_response(old).status, 200);
  EXPECT_TRUE(closes_with_fin(old));
}

// ---------------------------------------------------------------- limits and timeouts

TEST(HttpServer, OversizedHeadersGet431BeforeTheHeaderSectionEnds) {
  for (size_t limit : {size_t{1024}, size_t{16} << 10}) {
    TestServer server(
        config_with([&](ServerConfig& c) { c.http.parser.max_header_bytes = limit; }));
    ASSERT_TRUE(server.started()) << server.error();
    RawClient ok(server.port());
    std::string fits = get_request("/healthz", "X-Pad: " + std::string(limit - 100, 'a') + "\r\n");
    ASSERT_LT(fits.size(), limit);
    ok.send(fits);
    EXPECT_EQ(read_response(ok).status, 200);

    RawClient big(server.port());
    big.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(limit, 'a'));  // no end
    Response r = read_response(big);
    EXPECT_EQ(r.status, 431) << r.status_line;
    EXPECT_TRUE(one_line(r.body)) << r.body;
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(closes_with_fin(big));
  }
}

TEST(HttpServer, OversizedBodiesGet413BeforeTheBodyArrives) {
  TestServer server(config_with([](ServerConfig& c) { c.http.parser.max_body_bytes = 1024; }));
  ASSERT_TRUE(server.started()) << server.error();
  RawClient sized(server.port());
  sized.send(get_request("/healthz", "Content-Length: 1025\r\n", "POST"));  // headers only
  Response r = read_response(sized);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(one_line(r.body));
  EXPECT_TRUE(closes_with_fin(sized));

  RawClient chunked(server.port());
  chunked.send(get_request("/healthz", "Transfer-Encoding: chunked\r\n", "POST") + "200\r\n" +
               std::string(512, 'a') + "\r\n201\r\n");  // 512 + 513 announced
  r = read_response(chunked);
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(closes_with_fin(chunked));

  RawClient fits(server.port());
  fits.send(get_request("/healthz", "Content-Length: 1024\r\n", "POST") + std::string(1024, 'b'));
  EXPECT_EQ(read_response(fits).status, 405);
}

// Slowloris: bytes trickling in do not extend the deadline of a started request, and a
// connection that never sends a request meets the same deadline.
TEST(HttpServer, SlowRequestsGet408AfterTheRequestTimeout) {
  TestServer server(config_with([](ServerConfig& c) { c.http.request_timeout_ms = 1000; }));
  ASSERT_TRUE(server.started()) << server.error();
  RawClient slow(server.port()), silent(server.port());
  const std::string request = get_request("/healthz");
  int64_t start = core::monotonic_ms();
  size_t sent = 0;
  while (core::monotonic_ms() - start < 1600 && sent < request.size()) {
    if (!slow.send(request.substr(sent++, 1))) break;
    if (!slow.quiet_for(200)) break;  // something came back: the 408
  }
  Response r = read_response(slow);
  int64_t elapsed = core::monotonic_ms() - start;
  EXPECT_EQ(r.status, 408);
  EXPECT_TRUE(one_line(r.body));
  EXPECT_GE(elapsed, 900);
  EXPECT_LE(elapsed, 2000);  // a deadline renewed by each byte would come at 2600 ms or later
  EXPECT_LT(sent, request.size());
  EXPECT_TRUE(closes_with_fin(slow));

  Response s = read_response(silent, false, 1000);
  EXPECT_EQ(s.status, 408);
  EXPECT_TRUE(closes_with_fin(silent));
}

TEST(HttpServer, IdleKeepAliveConnectionsAreClosedAfterTheKeepAliveTimeout) {
  TestServer server(config_with([](ServerConfig& c) { c.http.keepalive_timeout_ms = 300; }));
  ASSERT_TRUE(server.started()) << server.error();
  RawClient client(server.port());
  client.send(get_request("/healthz"));
  EXPECT_EQ(read_response(client).status, 200);
  int64_t start = core::monotonic_ms();
  EXPECT_TRUE(closes_with_fin(client, 2000)) << "closed without a word: " << client.buffered();
  int64_t elapsed = core::monotonic_ms() - start;
  EXPECT_GE(elapsed, 250);
  EXPECT_LE(elapsed, 1500);
}

// ---------------------------------------------------------------- errors

TEST(HttpServer, MalformedRequestsGet400WithAOneLineReason) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  const std::vector<std::string> garbage = {
      "GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
      "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",  // no Host
      "GET / HTTP/1.1\r\nHost: x\r\n: no name\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      std::string("\r\n\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 15),  // TLS hello
      std::string("GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n", 30),
  };
  for (const std::string& g : garbage) {  // each on its own connection
    SCOPED_TRACE(g);
    RawClient client(server.port());
    client.send(g);
    Response r = read_response(client);
    EXPECT_EQ(r.status, 400) << r.status_line << " " << r.body;
    EXPECT_TRUE(one_line(r.body)) << r.body;
    EXPECT_EQ(r.header("Connection"), "close");
    EXPECT_TRUE(closes_with_fin(client));
  }
  // After a good request, the bad one is still answered in order, then the connection closes.
  RawClient client(server.port());
  client.send(get_request("/healthz") + "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n" +
              get_request("/readyz"));
  EXPECT_EQ(read_response(client).status, 200);
  Response r = read_response(client);
  EXPECT_EQ(r.status, 400) << r.status_line;
  EXPECT_TRUE(closes_with_fin(client));
}

TEST(HttpServer, UnknownPathsAre404AndUnsupportedMethods405WithAllow) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  RawClient client(server.port());
  client.send(get_request("/no/such/thing") + get_request("/healthz", "", "DELETE") +
              get_request("/metrics", "Content-Length: 0\r\n", "PUT") +
              get_request("/healthz?verbose=1"));
  Response missing = read_response(client);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "no such route\n");
  for (int i = 0; i < 2; ++i) {
    Response wrong = read_response(client);
    EXPECT_EQ(wrong.status, 405);
    EXPECT_EQ(wrong.header("Allow"), "GET, HEAD");
  }
  EXPECT_EQ(read_response(client).status, 200) << "the query string is not part of the path";
}

// RFC 9110 7.8: a server may ignore an Upgrade it does not speak and answer over HTTP/1.1.
TEST(HttpServer, UpgradeToAnotherProtocolIsIgnored) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  RawClient client(server.port());
  client.send(get_request("/healthz",
                          "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: "
                          "AAMAAABkAAQAoAAAAAIAAAAA\r\n") +
              get_request("/readyz"));
  Response r = read_response(client);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(read_response(client).body, "ready\n");
}

// ---------------------------------------------------------------- metrics

// One exposition line "name{label="value",...} value" (Prometheus text format 0.0.4): sets
// the metric name and the value; false if the line is not a sample.
bool parse_sample(const std::string& line, std::string* name, double* value) {
  auto name_char = [](char c, bool first, bool colon = true) {  // label names have no ':'
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (colon && c == ':') ||
           (!first && std::isdigit(static_cast<unsigned char>(c)));
  };
  size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i == 0) return false;
  *name = line.substr(0, i);
  if (i < line.size() && line[i] == '{') {
    for (++i; i < line.size() && line[i] != '}';) {
      size_t label = i;
      while (i < line.size() && name_char(line[i], i == label, false)) ++i;
      if (i == label || line.compare(i, 2, "=\"") != 0) return false;
      for (i += 2; i < line.size() && line[i] != '"'; ++i)
        if (line[i] == '\\') ++i;  // an escaped quote, backslash or newline
      if (i >= line.size()) return false;
      if (++i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;
  }
  if (i >= line.size() || line[i] != ' ') return false;
  const std::string v = line.substr(i + 1);
  if (v == "NaN" || v == "+Inf" || v == "-Inf") return *value = 0, true;
  char* end = nullptr;
  *value = std::strtod(v.c_str(), &end);
  return !v.empty() && end == v.c_str() + v.size();
}

// The family a sample belongs to: histograms add _bucket, _sum and _count to its name.
std::string family_of(std::string name, const std::map<std::string, std::string>& types) {
  for (std::string suffix : {"_bucket", "_sum", "_count"}) {
    if (types.count(name) || name.size() <= suffix.size()) break;
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      name.resize(name.size() - suffix.size());
  }
  return name;
}

// Samples by "name{labels}"; what breaks the format lands in `errors`: a malformed line, an
// unknown type, a second # TYPE for a family, a sample before its # TYPE or away from its group.
std::map<std::string, double> parse_exposition(const std::string& body, std::string* errors) {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::string current;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      if (type != "counter" && type != "gauge" && type != "histogram")
        *errors += "bad type: " + line + "\n";
      if (types.count(name)) *errors += "second # TYPE: " + line + "\n";
      types[name] = type;
      current = name;
      continue;
    }
    std::string name;
    double value;
    if (!parse_sample(line, &name, &value)) {
      *errors += "not a sample: " + line + "\n";
      continue;
    }
    std::string family = family_of(name, types);
    if (!types.count(family)) *errors += "sample before its # TYPE: " + line + "\n";
    if (family != current) *errors += "sample away from its family: " + line + "\n";
    samples[line.substr(0, line.rfind(' '))] = value;
  }
  return samples;
}

std::map<std::string, double> scrape(uint16_t port, std::string* errors) {
  RawClient client(port);
  client.send(get_request("/metrics"));
  Response r = read_response(client);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return parse_exposition(r.body, errors);
}

bool has_family(const std::map<std::string, double>& samples, const std::string& name) {
  for (const auto& [key, value] : samples)
    if (key == name || key.rfind(name + "{", 0) == 0) return true;
  return false;
}

TEST(HttpServer, MetricsAreExposedInPrometheusTextFormatWithTheNamedCounters) {
  TestServer server;
  ASSERT_TRUE(server.started()) << server.error();
  std::string errors;
  std::map<std::string, double> before = scrape(server.port(), &errors);
  EXPECT_EQ(errors, "");
  // What issue 3 names: connections open/accepted/closed by reason, handshakes by result,
  // frames and bytes in/out, high-watermark crossings, time with reading suspended, overruns.
  for (const char* name :
       {"weir_connections_open", "weir_connections_accepted_total", "weir_connections_closed_total",
        "weir_ws_handshakes_total", "weir_ws_frames_received_total", "weir_ws_frames_sent_total",
        "weir_tcp_bytes_received_total", "weir_tcp_bytes_sent_total",
        "weir_high_watermark_crossings_total", "weir_reading_suspended_seconds_total",
        "weir_buffer_overruns_total", "weir_http_responses_total"}) {
    EXPECT_TRUE(has_family(before, name)) << name;
  }
  // Each event counts once.
  auto ws = open_websocket(server.port());
  ASSERT_TRUE(ws);
  ws->send(frame(kOpText, "one") + frame(kOpText, "two", false) + frame(kOpCont, "three"));
  RawClient bad(server.port());
  bad.send(upgrade_request("/echo", "Sec-WebSocket-Version: 12\r\n"));
  EXPECT_EQ(read_response(bad).status, 426);
  RawClient missing(server.port());
  missing.send(get_request("/nope"));
  EXPECT_EQ(read_response(missing).status, 404);
  Frame f;
  ASSERT_EQ(read_frame(*ws, &f), ReadStatus::kOk);
  ASSERT_EQ(read_frame(*ws, &f), ReadStatus::kOk);
  std::map<std::string, double> after = scrape(server.port(), &errors);
  EXPECT_EQ(errors, "");
  auto delta = [&](const std::string& key) { return after[key] - before[key]; };
  EXPECT_EQ(delta("weir_ws_handshakes_total{result=\"accepted\"}"), 1);
  EXPECT_EQ(delta("weir_ws_handshakes_total{result=\"unsupported_version\"}"), 1);
  EXPECT_EQ(delta("weir_http_responses_total{class=\"4xx\"}"), 2);
  EXPECT_EQ(delta("weir_http_responses_total{class=\"1xx\"}"), 1);
  EXPECT_EQ(delta("weir_ws_frames_received_total"), 3);
  EXPECT_EQ(delta("weir_ws_frames_sent_total"), 2);
  EXPECT_EQ(delta("weir_connections_accepted_total"), 4);  // ws, bad, missing, the scrape
  EXPECT_GE(delta("weir_tcp_bytes_received_total"), 100);
  EXPECT_GE(after["weir_connections_open"], 3);  // ws, missing and the scrape at least
}

// ---------------------------------------------------------------- robustness

size_t open_descriptors() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

TEST(HttpServer, ManyBadClientsLeaveNoDescriptorBehind) {
  TestServer server(config_with([](ServerConfig& c) { c.tcp.connection.linger_ms = 200; }));
  ASSERT_TRUE(server.started()) << server.error();
  ASSERT_TRUE(server.wait_open_connections_at_most(0, 1000));
  const size_t baseline = open_descriptors();
  for (int i = 0; i < 300; ++i) {
    RawClient c(server.port());
    switch (i % 6) {
      case 0:
        c.send("\x16\x03\x01 garbage\r\n\r\n");
        break;  // garbage, then gone
      case 1:
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        c.reset();
        break;  // half a request, RST
      case 2:
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + std::string(20000, 'a'));
        break;
      case 3:
        break;  // connect and leave
      case 4:   // WebSocket, then RST mid-frame
        c.send(upgrade_request() + frame(kOpBinary, std::string(1000, 'x')).substr(0, 500));
        c.reset();
        break;
      case 5:
        c.send(get_request("/healthz"));
        c.shutdown_write();
        break;  // half-close
    }
  }
  EXPECT_TRUE(server.wait_open_connections_at_most(0, 3000))
      << server.open_connections() << " still open";
  EXPECT_EQ(open_descriptors(), baseline);
  RawClient after(server.port());  // and the server still serves
  after.send(get_request("/healthz"));
  EXPECT_EQ(read_response(after).status, 200);
}

}  // namespace
}  // namespace weir::harness
