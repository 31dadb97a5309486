// cluster/authenticator.cc — handshake authentication and the key ring's reloads.
#include "cluster/authenticator.h"

#include <climits>
#include <iterator>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

namespace weir::cluster {
namespace {

constexpr const char* kFailuresHelp = "Tokens refused at the handshake or on refresh, by reason";
core::Counter g_missing("weir_auth_failures_total", kFailuresHelp, "reason=\"missing_token\"");
// Indexed by ws::JwtError - 1 (kOk is not a failure).
core::Counter g_jwt_failures[] = {
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"malformed\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"alg_not_allowed\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"unknown_kid\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"bad_signature\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"invalid_claims\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"expired\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"not_yet_valid\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"wrong_issuer\""},
    {"weir_auth_failures_total", kFailuresHelp, "reason=\"wrong_audience\""},
};
static_assert(std::size(g_jwt_failures) == static_cast<size_t>(ws::JwtError::kWrongAudience));

// An operator must see why tokens are refused (an issuer or audience that does not match is a
// configuration error), but a flood of bad tokens must not flood the log: one refusal a second
// per thread at info, the others at debug.
void log_refusal(const AuthOutcome& out) {
  thread_local int64_t last_info_ns = INT64_MIN / 2;
  int64_t now = core::monotonic_ns();
  core::LogLevel level = core::LogLevel::kDebug;
  if (now - last_info_ns >= 1'000'000'000) {
    level = core::LogLevel::kInfo;
    last_info_ns = now;
  }
  if (core::log_enabled(level))
    core::log_event(level, "auth refused", {{"code", out.code}, {"reason", out.message}});
}

// The value of `name=` in a query string (no percent-decoding: a JWT never needs it).
std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
        pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return {};
}

std::string_view subprotocol_token(const ws::HttpRequest& request) {
  constexpr std::string_view kPrefix = "bearer.";
  for (size_t i = 0; i < request.header_count(); ++i) {
    ws::HttpHeader h = request.header_at(i);
    if (!ws::ascii_iequals(h.name, "Sec-WebSocket-Protocol")) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view item = ws::trim_ows(list.substr(0, comma));
      if (item.size() > kPrefix.size() && item.substr(0, kPrefix.size()) == kPrefix)
        return item.substr(kPrefix.size());
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  return {};
}

}  // namespace

bool parse_auth_mode(std::string_view text, AuthMode* out) {
  if (text == "off") return *out = AuthMode::kOff, true;
  if (text == "optional") return *out = AuthMode::kOptional, true;
  if (text == "required") return *out = AuthMode::kRequired, true;
  return false;
}

bool Authenticator::reload(std::string* error) {
  std::shared_ptr<const ws::JwtKeySet> keys = ws::load_jwt_keys(files_, error);
  if (!keys) return false;
  ring_.replace(std::move(keys));
  return true;
}

std::string_view Authenticator::find_token(const ws::HttpRequest& request) {
  std::string_view auth = request.header("Authorization");
  if (auth.size() > 7 && ws::ascii_iequals(auth.substr(0, 7), "Bearer "))
    return ws::trim_ows(auth.substr(7));
  std::string_view token = query_param(request.query(), "token");
  if (!token.empty()) return token;
  return subprotocol_token(request);
}

AuthOutcome Authenticator::authenticate(const ws::HttpRequest& request, int64_t now_s) const {
  AuthOutcome out;
  if (mode_ == AuthMode::kOff) return out.ok = true, out;
  std::string_view token = find_token(request);
  if (!token.empty()) return verify(token, now_s);
  if (mode_ == AuthMode::kOptional) return out.ok = true, out;
  g_missing.inc();
  out.code = "missing_token";
  out.message =
      "a token is required: Authorization: Bearer, ?token=, or a bearer.<token> subprotocol";
  log_refusal(out);
  return out;
}

AuthOutcome Authenticator::verify(std::string_view token, int64_t now_s) const {
  AuthOutcome out;
  std::shared_ptr<const ws::JwtKeySet> keys = ring_.current();
  ws::JwtResult r;
  if (keys) {
    r = keys->verify(token, now_s, leeway_s_, required_);
  } else {
    r.error = ws::JwtError::kAlgNotAllowed;
    r.reason = "no JWT keys are configured";
  }
  if (r.ok() &&
      !RoomAcl::compile(r.claims.subscribe, r.claims.publish, &out.identity.acl, &r.reason))
    r.error = ws::JwtError::kInvalidClaims;
  if (!r.ok()) {
    g_jwt_failures[static_cast<size_t>(r.error) - 1].inc();
    out.code = ws::jwt_error_name(r.error);
    out.message = std::move(r.reason);
    log_refusal(out);
    return out;
  }
  out.ok = true;
  out.identity.authenticated = true;
  out.identity.sub = std::move(r.claims.sub);
  out.identity.exp_s = r.claims.exp;
  return out;
}

}  // namespace weir::cluster
