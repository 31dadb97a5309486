// store/redis_backend.h — the Backend that keeps weir's state in Redis, so that several nodes
// share history, sessions, idempotency keys and rate limits. What each key holds (all under
// "weir:"):
//
//   weir:history:<room>:<epoch>   a Stream per room epoch; entry ID "<offset>-1", fields p
//                                 (payload) and t (stored_ms): a read by offset is one XRANGE
//   weir:epochs:<room>            a sorted set of the room's epochs that have a stream
//   weir:room:<room>              a hash {epoch, last}: the room's newest epoch and offset
//   weir:rooms                    a set of the rooms with history, walked by purge
//   weir:session:<token>          a hash {member, rooms, expires}, PEXPIREAT expires
//   weir:dedupe:<n>:<room>:<id>   "<offset> <seen_ms>" with PX = the dedupe window
//   weir:rate:<key>               the GCRA theoretical arrival time, with PX
//
// Appends, dedupe checks, rate takes and purges are Lua scripts (store/redis_scripts.h).
// Retention by count and age trims the streams; sessions and message ids expire by their
// TTL on the server's clock (reads still judge expiry by the caller's now_ms).
//
// The backend talks to Redis over one synchronous hiredis connection with connect and command
// timeouts, behind a circuit breaker (store/redis_connection.h): while Redis is down every call
// answers kUnavailable at once, and the backend reconnects by itself after a backoff.
//
// Thread-safety: none; one store thread owns a backend (see store/backend.h).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "store/backend.h"

namespace weir::store {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::chrono::milliseconds connect_timeout{200};
  std::chrono::milliseconds command_timeout{200};  // per read or write without progress
  std::chrono::milliseconds backoff_min{100};   // the circuit stays open this long after a failure,
  std::chrono::milliseconds backoff_max{5000};  // doubling on every failed reconnect up to this
};

// Parses "redis://HOST:PORT" or "redis://HOST:PORT/DB" (HOST may be "[v6]"; PORT defaults to
// 6379 when ":PORT" is left out) into the address fields of *out. Thread-safe.
bool parse_redis_spec(std::string_view spec, RedisOptions* out, std::string* error);

// Builds a Redis backend for a --store value. Fails (nullptr, *error) only when the spec is
// malformed: a server that cannot be reached yet is an outage like any other, answered with
// kUnavailable until it comes up. Thread-safe.
std::unique_ptr<Backend> open_redis_backend(std::string_view spec, std::string* error);
std::unique_ptr<Backend> open_redis_backend(const RedisOptions& options, std::string* error);

}  // namespace weir::store
