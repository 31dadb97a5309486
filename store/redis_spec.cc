// store/redis_spec.cc — the --store=redis://HOST:PORT[/DB] value to RedisOptions.
#include <charconv>

#include "store/redis_backend.h"

namespace weir::store {

namespace {

bool parse_int(std::string_view text, int* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

bool parse_port(std::string_view text, int* port) {
  return parse_int(text, port) && *port > 0 && *port <= 65535;
}

}  // namespace

bool parse_redis_spec(std::string_view spec, RedisOptions* out, std::string* error) {
  constexpr std::string_view kScheme = "redis://";
  auto fail = [&](const std::string& why) {
    *error = "bad redis store \"" + std::string(spec) + "\": " + why +
             " (expected redis://HOST:PORT[/DB])";
    return false;
  };
  if (!spec.starts_with(kScheme)) return fail("not a redis:// URL");
  std::string_view rest = spec.substr(kScheme.size());
  if (rest.find_first_of("@?#") != std::string_view::npos) {
    return fail("credentials and options are not supported");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view host = authority, port;
  bool has_port = false;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated [IPv6] host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return fail("junk after the [IPv6] host");
    has_port = !after.empty();
    if (has_port) port = after.substr(1);
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (host.empty() || (host.find(':') != std::string_view::npos && !authority.starts_with('['))) {
    return fail("missing or malformed host");
  }
  int port_number = 6379;
  if (has_port && !parse_port(port, &port_number)) return fail("port must be 1..65535");
  int db = 0;
  if (slash != std::string_view::npos && !parse_int(rest.substr(slash + 1), &db)) {
    return fail("database must be a number >= 0");
  }
  if (db < 0) return fail("database must be a number >= 0");
  out->host = std::string(host);
  out->port = port_number;
  out->db = db;
  return true;
}

}  // namespace weir::store
