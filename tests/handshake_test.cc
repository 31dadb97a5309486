// RFC 6455 opening handshake: every failure class and its status, accept key, subprotocol
// choice, origin policy, the 101 bytes, and base64 strictness.
#include "ws/handshake.h"

#include <gtest/gtest.h>

#include <string>

#include "ws/base64.h"
#include "ws/http_parser.h"

namespace weir::ws {
namespace {

constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

// The RFC 6455 section 1.2 example request, minus the optional headers.
HttpRequest valid_request() {
  HttpRequest r;
  r.set_method(HttpMethod::kGet);
  r.set_version(1, 1);
  r.set_target("/chat");
  r.add_header("Host", "server.example.com");
  r.add_header("Upgrade", "websocket");
  r.add_header("Connection", "Upgrade");
  r.add_header("Sec-WebSocket-Key", kKey);
  r.add_header("Sec-WebSocket-Version", "13");
  r.set_upgrade(true);
  return r;
}

// valid_request() with header `name` replaced by `value` (or removed when value is null).
HttpRequest with_header(std::string_view name, const char* value) {
  HttpRequest base = valid_request();
  HttpRequest r;
  r.set_method(base.method());
  r.set_version(base.version_major(), base.version_minor());
  r.set_target(base.target());
  for (size_t i = 0; i < base.header_count(); ++i) {
    HttpHeader h = base.header_at(i);
    if (ascii_iequals(h.name, name)) {
      if (value != nullptr) r.add_header(h.name, value);
    } else {
      r.add_header(h.name, h.value);
    }
  }
  return r;
}

HandshakeResult validate(const HttpRequest& r, const HandshakeConfig& config = {}) {
  return validate_upgrade(r, config);
}

TEST(Handshake, AcceptKeyMatchesRfc6455Example) {
  EXPECT_EQ(compute_accept_key(kKey), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, ValidRequestSwitchesProtocolsWith101) {
  HandshakeResult r = validate(valid_request());
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(r.subprotocol.empty());
  EXPECT_TRUE(r.extensions.empty());
  EXPECT_EQ(build_upgrade_response(r),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
}

TEST(Handshake, UpgradeResponseCarriesSubprotocolAndCallerHeaders) {
  HttpRequest req = valid_request();
  req.add_header("Sec-WebSocket-Protocol", "chat, superchat");
  req.add_header("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
  req.add_header("Sec-WebSocket-Extensions", "x-foo");
  HandshakeConfig config;
  config.subprotocols = {"superchat", "chat"};
  HandshakeResult r = validate(req, config);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.subprotocol, "superchat");
  EXPECT_EQ(r.extensions, "permessage-deflate; client_max_window_bits, x-foo");
  r.extra_response_headers = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
  std::string out = build_upgrade_response(r);
  EXPECT_NE(out.find("\r\nSec-WebSocket-Protocol: superchat\r\n"), std::string::npos);
  EXPECT_TRUE(out.ends_with("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"));
}

TEST(Handshake, SubprotocolFollowsServerPreferenceAndMatchesExactly) {
  HandshakeConfig config;
  config.subprotocols = {"v2.weir", "v1.weir"};
  HttpRequest a = valid_request();
  a.add_header("Sec-WebSocket-Protocol", "v1.weir, v2.weir");
  EXPECT_EQ(validate(a, config).subprotocol, "v2.weir");

  HttpRequest split = valid_request();
  split.add_header("Sec-WebSocket-Protocol", "other");
  split.add_header("Sec-WebSocket-Protocol", " v1.weir ");
  EXPECT_EQ(validate(split, config).subprotocol, "v1.weir");

  HttpRequest none = valid_request();
  none.add_header("Sec-WebSocket-Protocol", "V2.WEIR, mqtt");
  HandshakeResult r = validate(none, config);
  EXPECT_TRUE(r.ok);  // no match: proceed without one and let the client decide
  EXPECT_TRUE(r.subprotocol.empty());
  EXPECT_EQ(build_upgrade_response(r).find("Sec-WebSocket-Protocol"), std::string::npos);

  EXPECT_TRUE(validate(valid_request(), config).subprotocol.empty());
}

TEST(Handshake, NonGetMethodGets405WithAllowGet) {
  for (HttpMethod m : {HttpMethod::kPost, HttpMethod::kHead, HttpMethod::kPut}) {
    HttpRequest req = valid_request();
    req.set_method(m);
    HandshakeResult r = validate(req);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.status, 405);
    std::string out = build_rejection_response(r);
    EXPECT_EQ(out.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u);
    EXPECT_NE(out.find("\r\nAllow: GET\r\n"), std::string::npos);
    EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos);
  }
}

TEST(Handshake, Http10Gets400) {
  HttpRequest req = valid_request();
  req.set_version(1, 0);
  HandshakeResult r = validate(req);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.reason, "WebSocket handshake requires HTTP/1.1");
  req.set_version(2, 0);
  EXPECT_TRUE(validate(req).ok);  // "HTTP/1.1 or later"
}

struct Bad {
  const char* header;
  const char* value;  // nullptr removes the header
  int status;
};

TEST(Handshake, EachMissingOrWrongHeaderGetsItsStatus) {
  const Bad cases[] = {
      {"Host", nullptr, 400},
      {"Host", "", 400},
      {"Upgrade", nullptr, 400},
      {"Upgrade", "h2c", 400},
      {"Connection", nullptr, 400},
      {"Connection", "keep-alive", 400},
      {"Sec-WebSocket-Version", nullptr, 426},
      {"Sec-WebSocket-Version", "8", 426},
      {"Sec-WebSocket-Version", "13, 8", 426},
      {"Sec-WebSocket-Key", nullptr, 400},
      {"Sec-WebSocket-Key", "", 400},
      {"Sec-WebSocket-Key", "not base64 at all!!!!!!!", 400},
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ", 400},       // padding missing
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZXg=", 400},     // 17 bytes
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j", 400},         // 15 bytes
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub2 5jZQ=", 400},     // inner space
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=====", 400},  // extra padding
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(std::string(c.header) + ": " + (c.value ? c.value : "(absent)"));
    HandshakeResult r = validate(with_header(c.header, c.value));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.status, c.status);
    EXPECT_FALSE(r.reason.empty());
  }
}

TEST(Handshake, DuplicatedHostKeyOrVersionIsRejected) {
  HttpRequest host = valid_request();
  host.add_header("Host", "evil.example.com");
  EXPECT_EQ(validate(host).status, 400);
  HttpRequest key = valid_request();
  key.add_header("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==");
  EXPECT_EQ(validate(key).status, 400);
  HttpRequest version = valid_request();
  version.add_header("Sec-WebSocket-Version", "13");
  EXPECT_EQ(validate(version).status, 426);
}

TEST(Handshake, WrongVersionGets426NamingVersion13) {
  HandshakeResult r = validate(with_header("Sec-WebSocket-Version", "7"));
  ASSERT_EQ(r.status, 426);
  std::string out = build_rejection_response(r);
  EXPECT_EQ(out.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0), 0u);
  EXPECT_NE(out.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
}

TEST(Handshake, UpgradeAndConnectionAreCaseInsensitiveTokenLists) {
  EXPECT_TRUE(validate(with_header("Upgrade", "foo/2, WebSocket")).ok);
  EXPECT_TRUE(validate(with_header("Connection", "keep-alive, UPGRADE")).ok);
  EXPECT_TRUE(validate(with_header("Connection", "upgrade")).ok);
}

TEST(Handshake, OriginPolicy) {
  HttpRequest req = valid_request();
  req.add_header("Origin", "HTTPS://Chat.Example.com");
  HandshakeConfig any;
  EXPECT_TRUE(validate(req, any).ok);

  HandshakeConfig listed;
  listed.allowed_origins = {"https://other.example", "https://chat.example.com"};
  EXPECT_TRUE(validate(req, listed).ok);

  HandshakeConfig star;
  star.allowed_origins = {"*"};
  EXPECT_TRUE(validate(req, star).ok);

  HandshakeConfig strict;
  strict.allowed_origins = {"https://chat.example.com:8443", "http://chat.example.com"};
  HandshakeResult r = validate(req, strict);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(build_rejection_response(r).rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u);

  // Non-browser clients send no Origin; they pass unless the config demands one.
  EXPECT_TRUE(validate(valid_request(), strict).ok);
  strict.require_origin = true;
  EXPECT_EQ(validate(valid_request(), strict).status, 403);
}

TEST(Handshake, RequestParsedFromTheWireValidates) {
  std::string bytes =
      "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
      "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  HttpParser parser;
  FeedResult f = parser.feed(bytes.data(), bytes.size());
  ASSERT_EQ(f.status, FeedStatus::kUpgrade);
  HandshakeConfig config;
  config.allowed_origins = {"http://example.com"};
  config.subprotocols = {"chat"};
  HandshakeResult r = validate_upgrade(parser.request(), config);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(r.subprotocol, "chat");
}

TEST(Base64, EncodesAndDecodesStrictly) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  std::string out;
  EXPECT_TRUE(base64_decode("Zm9vYmFy", &out));
  EXPECT_EQ(out, "foobar");
  out.clear();
  EXPECT_TRUE(base64_decode("Zg==", &out));
  EXPECT_EQ(out, "f");
  out.clear();
  EXPECT_TRUE(base64_decode("Zm8=", &out));
  EXPECT_EQ(out, "fo");
  for (std::string_view bad :
       {"Zg=", "Z===", "Zg=a", "Zm9v\n", "Zm 9", "=Zm9", "Zm9v====", "Zm-_"}) {
    std::string ignored;
    EXPECT_FALSE(base64_decode(bad, &ignored)) << bad;
  }
}

}  // namespace
}  // namespace weir::ws
