// cluster/authenticator.h — who a /ws connection is: --auth=off|optional|required, the JWT
// found in the upgrade request (Authorization: Bearer, ?token=, or a `bearer.<token>` entry of
// Sec-WebSocket-Protocol), verified against the key ring, turned into an Identity (the token's
// sub, its exp, and the room ACL of its `rooms` claim). With --jwt-issuer / --jwt-audience every
// token (handshake and refresh) must carry that iss / aud. A refusal is logged with its code
// and reason (at info once a second per thread, else at debug) and counted in
// weir_auth_failures_total{reason}.
//
// Keys are reloaded as a whole (reload(), on SIGHUP): connections admitted with the old keys
// stay open; the next handshake or refresh uses the new ones.
//
// Thread-safety: authenticate(), verify() and reload() from any thread (the key ring swaps an
// immutable key set under a short lock); the rest is immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "cluster/room_acl.h"
#include "ws/http_request.h"
#include "ws/jwt.h"

namespace weir::cluster {

enum class AuthMode : uint8_t {
  kOff,       // tokens are not looked at; every connection is anonymous with every right
  kOptional,  // a valid token authenticates; no token is anonymous; a bad token is refused
  kRequired,  // no token, or a bad one, is refused with 401
};
bool parse_auth_mode(std::string_view text, AuthMode* out);

// A connection's identity: anonymous (every right, a random member id) or a verified token's.
struct Identity {
  bool authenticated = false;
  std::string sub;  // the member id when authenticated
  int64_t exp_s = 0;
  RoomAcl acl = RoomAcl::allow_all();
};

struct AuthOutcome {
  bool ok = false;
  std::string code;     // when refused: "missing_token" or a ws::jwt_error_name
  std::string message;  // one line
  Identity identity;
};

class Authenticator {
 public:
  Authenticator(AuthMode mode, int64_t leeway_s, ws::JwtKeyFiles files,
                ws::JwtRequirements required = {})
      : mode_(mode),
        leeway_s_(leeway_s),
        files_(std::move(files)),
        required_(std::move(required)) {}

  // Reads the key files into a new key set and, when every file was good, puts it in use
  // (the first load included). On failure the keys in use stay and *error says why.
  bool reload(std::string* error);

  AuthMode mode() const { return mode_; }
  int64_t leeway_s() const { return leeway_s_; }
  // The handshake. Anonymous and ok under off, or under optional without a token.
  AuthOutcome authenticate(const ws::HttpRequest& request, int64_t now_s) const;
  // A token on its own (refresh); counted in weir_auth_failures_total when refused.
  AuthOutcome verify(std::string_view token, int64_t now_s) const;

  // The token of an upgrade request, first found of: Authorization: Bearer, ?token=,
  // Sec-WebSocket-Protocol entry bearer.<token>. Empty when none.
  static std::string_view find_token(const ws::HttpRequest& request);

 private:
  AuthMode mode_;
  int64_t leeway_s_;
  ws::JwtKeyFiles files_;
  ws::JwtRequirements required_;
  ws::JwtKeyRing ring_;
};

}  // namespace weir::cluster
