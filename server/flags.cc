// server/flags.cc — the flag table and its parser.
#include "server/flags.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <functional>
#include <string_view>
#include <thread>

#include "core/units.h"
#include "net/address.h"

namespace weir::server {
namespace {

using Setter = std::function<bool(Flags&, std::string_view)>;

struct FlagSpec {
  const char* name;
  const char* value_name;  // nullptr for a boolean switch
  std::string default_text;
  const char* help;
  Setter set;
};

bool set_int(std::string_view v, int* out) {
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  return ec == std::errc() && end == v.data() + v.size() && *out >= 0;
}
bool set_u64(std::string_view v, uint64_t* out) {
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  return ec == std::errc() && end == v.data() + v.size();
}
// RATE[:BURST] in messages per second; BURST defaults to RATE (at least 1). "off" or 0: no limit.
bool set_rate(std::string_view v, double* rate, double* burst) {
  if (v == "off" || v == "0") return *rate = 0, *burst = 0, true;
  std::string_view r = v, b;
  if (size_t colon = v.find(':'); colon != std::string_view::npos) {
    r = v.substr(0, colon);
    b = v.substr(colon + 1);
  }
  auto number = [](std::string_view text, double* out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
    return ec == std::errc() && end == text.data() + text.size() && *out > 0;
  };
  if (!number(r, rate)) return false;
  if (b.empty()) return *burst = std::max(1.0, *rate), true;
  return number(b, burst) && *burst >= 1;
}

// A fraction 0..1 ("0.01", "1").
bool set_ratio(std::string_view v, double* out) {
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  return ec == std::errc() && end == v.data() + v.size() && *out >= 0 && *out <= 1;
}

bool is_address(std::string_view v) {
  net::SocketAddress address;
  std::string error;
  return net::SocketAddress::parse(v, &address, &error);
}
// HOST:PORT[,HOST:PORT]...: every item must parse.
bool is_address_list(std::string_view v) {
  while (!v.empty()) {
    size_t comma = v.find(',');
    if (!is_address(v.substr(0, comma))) return false;
    v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
  }
  return true;
}

bool set_bool(std::string_view v, bool* out) {
  if (v == "on" || v == "true" || v == "1" || v == "yes") return *out = true, true;
  if (v == "off" || v == "false" || v == "0" || v == "no") return *out = false, true;
  return false;
}

const std::vector<FlagSpec>& specs() {
  static const Flags d;  // defaults
  static const std::vector<FlagSpec> table = {
      {"listen", "HOST:PORT", d.listen, "address of the HTTP/WebSocket listener",
       [](Flags& f, std::string_view v) { return f.listen = v, true; }},
      {"threads", "N", "cores", "reactor threads, one epoll loop each (0 = one per core)",
       [](Flags& f, std::string_view v) { return set_int(v, &f.threads); }},
      {"max-connections", "N", std::to_string(d.max_connections),
       "open connections at most; beyond it the listeners stop accepting (0 = no limit)",
       [](Flags& f, std::string_view v) { return set_u64(v, &f.max_connections); }},
      {"high-watermark", "BYTES", core::format_bytes(d.high_watermark),
       "queued output at which a connection signals backpressure (reading of its producer pauses)",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.high_watermark); }},
      {"low-watermark", "BYTES", core::format_bytes(d.low_watermark),
       "queued output under which the backpressure signal is lifted",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.low_watermark); }},
      {"max-buffer", "BYTES", core::format_bytes(d.max_buffer),
       "queued output past which a connection is dropped (\"buffer overrun\"; 0 = no limit)",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.max_buffer); }},
      {"tcp-nodelay", "on|off", "on", "TCP_NODELAY on accepted connections",
       [](Flags& f, std::string_view v) { return set_bool(v, &f.tcp_nodelay); }},
      {"linger", "DURATION", core::format_duration_ms(d.linger_ms),
       "after closing, how long to drain the peer's bytes while waiting for its FIN",
       [](Flags& f, std::string_view v) { return core::parse_duration_ms(v, &f.linger_ms); }},
      {"accept-rate", "RATE[:BURST]", "off",
       "new connections admitted per second, all listeners together (GCRA; BURST defaults to "
       "RATE); over it they wait in the kernel backlog",
       [](Flags& f, std::string_view v) { return set_rate(v, &f.accept_rate, &f.accept_burst); }},
      {"max-connections-per-ip", "N", "off",
       "open connections one client address may hold; more are answered 503 and closed (0 = off)",
       [](Flags& f, std::string_view v) { return set_u64(v, &f.max_connections_per_ip); }},
      {"ip-limit-v6-prefix", "BITS", std::to_string(d.ip_limit_v6_prefix),
       "IPv6 clients share the per-address limits by this prefix, 32..128 (64: one budget per "
       "/64, what one host is usually given; 128: per address); IPv4-mapped IPv6 counts as IPv4",
       [](Flags& f, std::string_view v) {
         return set_int(v, &f.ip_limit_v6_prefix) && f.ip_limit_v6_prefix >= 32 &&
                f.ip_limit_v6_prefix <= 128;
       }},
      {"handshakes-per-ip-per-sec", "RATE[:BURST]", "off",
       "WebSocket handshakes one client address may start per second (GCRA); more are answered "
       "429 with Retry-After",
       [](Flags& f, std::string_view v) {
         return set_rate(v, &f.handshakes_per_ip_rate, &f.handshakes_per_ip_burst);
       }},
      {"drain-spread", "DURATION", core::format_duration_ms(d.drain_spread_ms),
       "on SIGTERM/SIGINT, WebSocket sessions are closed (1001, with a reconnect hint) in slices "
       "spread over this",
       [](Flags& f, std::string_view v) { return core::parse_duration_ms(v, &f.drain_spread_ms); }},
      {"drain-timeout", "DURATION", core::format_duration_ms(d.drain_timeout_ms),
       "on SIGTERM/SIGINT, queued output is flushed for up to this; then what is open is aborted",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.drain_timeout_ms);
       }},
      {"tcp-echo", "HOST:PORT", "off",
       "run the raw TCP echo service (Akka's echo handlers) on this address instead of HTTP",
       [](Flags& f, std::string_view v) { return f.tcp_echo = v, true; }},
      {"write-mode", "ack|nack|nack-suspend", "ack",
       "TCP echo write model: ACK-based with watermarks, NACK, or NACK with write suspending",
       [](Flags& f, std::string_view v) {
         if (v == "ack")
           f.write_mode = net::WriteMode::kAck;
         else if (v == "nack")
           f.write_mode = net::WriteMode::kNack;
         else if (v == "nack-suspend")
           f.write_mode = net::WriteMode::kNackSuspend;
         else
           return false;
         return true;
       }},
      {"read-mode", "push|pull", "push", "TCP echo read model: push (suspend/resume) or pull",
       [](Flags& f, std::string_view v) {
         if (v == "push")
           f.read_mode = net::ReadMode::kPush;
         else if (v == "pull")
           f.read_mode = net::ReadMode::kPull;
         else
           return false;
         return true;
       }},
      {"max-header-bytes", "BYTES", core::format_bytes(d.max_header_bytes),
       "request line plus headers at most; more is answered 431",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.max_header_bytes); }},
      {"max-body-bytes", "BYTES", core::format_bytes(d.max_body_bytes),
       "request body at most (Content-Length or chunked); more is answered 413",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.max_body_bytes); }},
      {"request-timeout", "DURATION", core::format_duration_ms(d.request_timeout_ms),
       "a started request must arrive whole within this, else 408 and close (slowloris)",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.request_timeout_ms);
       }},
      {"keepalive-timeout", "DURATION", core::format_duration_ms(d.keepalive_timeout_ms),
       "an idle keep-alive HTTP connection is closed after this",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.keepalive_timeout_ms);
       }},
      {"allowed-origins", "LIST", "any",
       "comma-separated Origin values allowed to open WebSockets (e.g. https://a.example); others "
       "get 403",
       [](Flags& f, std::string_view v) { return f.allowed_origins = v, true; }},
      {"max-message-size", "BYTES", core::format_bytes(d.max_message_size),
       "WebSocket message size at most (after inflating); larger closes with 1009",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.max_message_size); }},
      {"ping-interval", "DURATION", core::format_duration_ms(d.ping_interval_ms),
       "ping a WebSocket that has been silent this long (0 = never)",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.ping_interval_ms);
       }},
      {"idle-timeout", "DURATION", core::format_duration_ms(d.idle_timeout_ms),
       "close (1001) a WebSocket silent this long, pongs included (0 = never)",
       [](Flags& f, std::string_view v) { return core::parse_duration_ms(v, &f.idle_timeout_ms); }},
      {"close-timeout", "DURATION", core::format_duration_ms(d.close_timeout_ms),
       "after sending a close frame, wait this long for the peer's before dropping TCP",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.close_timeout_ms);
       }},
      {"deflate", "off|shared|dedicated", d.deflate,
       "permessage-deflate: shared = no context takeover, zlib state only during a message; "
       "dedicated = per-connection windows",
       [](Flags& f, std::string_view v) {
         if (v != "off" && v != "shared" && v != "dedicated") return false;
         return f.deflate = v, true;
       }},
      {"max-rooms-per-connection", "N", std::to_string(d.max_rooms_per_connection),
       "rooms one /ws connection may be in at once (more: error too_many_rooms)",
       [](Flags& f, std::string_view v) { return set_u64(v, &f.max_rooms_per_connection); }},
      {"max-room-id-bytes", "BYTES", std::to_string(d.max_room_id_bytes),
       "longest room id accepted",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.max_room_id_bytes); }},
      {"max-content-bytes", "BYTES", core::format_bytes(d.max_content_bytes),
       "longest message content accepted (more: error content_too_large)",
       [](Flags& f, std::string_view v) { return core::parse_bytes(v, &f.max_content_bytes); }},
      {"slow-consumer", "disconnect|skip|backpressure", d.slow_consumer,
       "what a room does with a member that cannot keep up (see docs/protocol.md)",
       [](Flags& f, std::string_view v) {
         if (v != "disconnect" && v != "skip" && v != "backpressure") return false;
         return f.slow_consumer = v, true;
       }},
      {"slow-grace", "DURATION", core::format_duration_ms(d.slow_grace_ms),
       "a member above --high-watermark longer than this is disconnected as a slow consumer (0 = "
       "never)",
       [](Flags& f, std::string_view v) { return core::parse_duration_ms(v, &f.slow_grace_ms); }},
      {"api-key", "KEY", "none",
       "key for the HTTP rooms API (Authorization: Bearer KEY); without one the API answers 403",
       [](Flags& f, std::string_view v) { return f.api_key = v, true; }},
      {"auth", "off|optional|required", d.auth,
       "JWT at the /ws handshake: required refuses a missing or bad token (401); optional "
       "admits no token as anonymous (see docs/protocol.md)",
       [](Flags& f, std::string_view v) {
         if (v != "off" && v != "optional" && v != "required") return false;
         return f.auth = v, true;
       }},
      {"jwt-secret-file", "[KID=]FILE", "none",
       "HS256 secret (at least 32 bytes; trailing newlines dropped); SIGHUP reloads it",
       [](Flags& f, std::string_view v) { return !v.empty() && (f.jwt_secret_file = v, true); }},
      {"jwt-public-key", "[KID=]FILE,...", "none",
       "PEM public key(s) for RS256 (RSA >= 2048 bits) or ES256 (P-256), by kid; repeatable; "
       "SIGHUP reloads them",
       [](Flags& f, std::string_view v) {
         while (!v.empty()) {
           size_t comma = v.find(',');
           if (comma != 0) f.jwt_public_keys.emplace_back(v.substr(0, comma));
           v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
         }
         return !f.jwt_public_keys.empty();
       }},
      {"jwt-leeway", "DURATION", core::format_duration_ms(d.jwt_leeway_ms),
       "clock skew allowed when checking a token's exp and nbf",
       [](Flags& f, std::string_view v) { return core::parse_duration_ms(v, &f.jwt_leeway_ms); }},
      {"jwt-audience", "AUD", "off",
       "with --auth: a token's aud (a string, or an array) must hold this, else 401 "
       "wrong_audience",
       [](Flags& f, std::string_view v) { return !v.empty() && (f.jwt_audience = v, true); }},
      {"jwt-issuer", "ISS", "off",
       "with --auth: a token's iss must equal this, else 401 wrong_issuer",
       [](Flags& f, std::string_view v) { return !v.empty() && (f.jwt_issuer = v, true); }},
      {"store", "memory|sqlite:PATH|redis://HOST:PORT[/DB]", d.store,
       "where room history, sessions and idempotency keys live (memory: gone with the process)",
       [](Flags& f, std::string_view v) {
         if (v != "memory" && v.substr(0, 7) != "sqlite:" && v.substr(0, 8) != "redis://")
           return false;
         return f.store = v, true;
       }},
      {"durability", "none|async|sync", d.durability,
       "none: nothing stored; async: delivered at once, stored behind; sync: delivered only once "
       "stored (see docs/protocol.md for the loss window of each)",
       [](Flags& f, std::string_view v) {
         if (v != "none" && v != "async" && v != "sync") return false;
         return f.durability = v, true;
       }},
      {"replay-limit", "N", std::to_string(d.replay_limit),
       "messages replayed per room on a session resume at most (the newest, when cut)",
       [](Flags& f, std::string_view v) { return set_u64(v, &f.replay_limit); }},
      {"session-ttl", "DURATION", core::format_duration_ms(d.session_ttl_ms),
       "how long a session token can be resumed after it was issued",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.session_ttl_ms) && f.session_ttl_ms > 0;
       }},
      {"session-secret-file", "FILE", "random per process",
       "HMAC key signing session tokens; created (mode 0600) with a random key when missing",
       [](Flags& f, std::string_view v) { return f.session_secret_file = v, true; }},
      {"dedupe-window", "DURATION", core::format_duration_ms(d.dedupe_window_ms),
       "a message_id seen in a room within this is not delivered again (0 = off)",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.dedupe_window_ms);
       }},
      {"rate-limit", "RATE[:BURST]", "off",
       "messages per second one connection may publish (GCRA); over it: error rate_limited",
       [](Flags& f, std::string_view v) { return set_rate(v, &f.rate_limit, &f.rate_burst); }},
      {"room-rate-limit", "RATE[:BURST]", "off",
       "messages per second one room accepts from all its publishers (GCRA)",
       [](Flags& f, std::string_view v) {
         return set_rate(v, &f.room_rate_limit, &f.room_rate_burst);
       }},
      {"retention-messages", "N", std::to_string(d.retention_messages),
       "history kept per room at most, in messages (0 = no count limit)",
       [](Flags& f, std::string_view v) { return set_u64(v, &f.retention_messages); }},
      {"retention-age", "DURATION", core::format_duration_ms(d.retention_age_ms),
       "history older than this is purged (0 = no age limit)",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.retention_age_ms);
       }},
      {"purge-interval", "DURATION", core::format_duration_ms(d.purge_interval_ms),
       "how often retention runs and expired sessions and idempotency keys are dropped",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.purge_interval_ms) && f.purge_interval_ms > 0;
       }},
      {"tls-cert", "FILE", "off",
       "PEM certificate chain: the listener then serves https:// and wss:// (TLS 1.2+); SIGHUP "
       "reloads it",
       [](Flags& f, std::string_view v) { return f.tls_cert = v, true; }},
      {"tls-key", "FILE", "off", "PEM private key for --tls-cert",
       [](Flags& f, std::string_view v) { return f.tls_key = v, true; }},
      {"tls-handshake-timeout", "DURATION", core::format_duration_ms(d.tls_handshake_timeout_ms),
       "a TLS handshake not finished within this is dropped",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.tls_handshake_timeout_ms);
       }},
      {"node-id", "ID", "HOSTNAME:PORT of --gossip",
       "this node's name in the cluster, unique, 1..64 bytes",
       [](Flags& f, std::string_view v) {
         if (v.empty() || v.size() > 64) return false;
         return f.node_id = v, true;
       }},
      {"gossip", "HOST:PORT", "off",
       "UDP address the cluster membership (SWIM) binds; without it the node runs alone",
       [](Flags& f, std::string_view v) { return is_address(v) && (f.gossip = v, true); }},
      {"gossip-advertise", "HOST:PORT", "the bound address",
       "gossip address other nodes reach this one at (behind NAT, or when --gossip is a wildcard)",
       [](Flags& f, std::string_view v) {
         return is_address(v) && (f.gossip_advertise = v, true);
       }},
      {"join", "HOST:PORT,...", "none",
       "gossip addresses of seed nodes to join through; retried until one answers",
       [](Flags& f, std::string_view v) { return is_address_list(v) && (f.join = v, true); }},
      {"cluster-secret-file", "FILE", "none",
       "HMAC key every gossip datagram is signed with; the same file on every node (required "
       "with --gossip)",
       [](Flags& f, std::string_view v) { return f.cluster_secret_file = v, true; }},
      {"cluster-tls-cert", "FILE", "off",
       "PEM certificate chain of this node, signed by --cluster-tls-ca: every peer link is then "
       "mutual TLS (TLS 1.2+), with --cluster-tls-key and --cluster-tls-ca",
       [](Flags& f, std::string_view v) { return !v.empty() && (f.cluster_tls_cert = v, true); }},
      {"cluster-tls-key", "FILE", "off", "PEM private key for --cluster-tls-cert",
       [](Flags& f, std::string_view v) { return !v.empty() && (f.cluster_tls_key = v, true); }},
      {"cluster-tls-ca", "FILE", "off",
       "PEM CA the peer links verify every node's certificate against, both ways (the chain "
       "only, no host name: the CA is the trust boundary)",
       [](Flags& f, std::string_view v) { return !v.empty() && (f.cluster_tls_ca = v, true); }},
      {"probe-interval", "DURATION", core::format_duration_ms(d.probe_interval_ms),
       "each node probes one member this often",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.probe_interval_ms) && f.probe_interval_ms > 0;
       }},
      {"probe-timeout", "DURATION", core::format_duration_ms(d.probe_timeout_ms),
       "a probe not acked within this is retried through other members (less than "
       "--probe-interval)",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.probe_timeout_ms) && f.probe_timeout_ms > 0;
       }},
      {"suspicion-mult", "N", std::to_string(d.suspicion_mult),
       "a suspect member is declared dead after N * max(1, log10(members)) * --probe-interval",
       [](Flags& f, std::string_view v) { return set_int(v, &f.suspicion_mult) && f.suspicion_mult > 0; }},
      {"rejoin-interval", "DURATION", core::format_duration_ms(d.rejoin_interval_ms),
       "re-contact the seeds and every dead member this often, so partitions heal",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.rejoin_interval_ms) && f.rejoin_interval_ms > 0;
       }},
      {"push-pull-interval", "DURATION", core::format_duration_ms(d.push_pull_interval_ms),
       "exchange whole membership states with one random member this often (0 = never)",
       [](Flags& f, std::string_view v) {
         return core::parse_duration_ms(v, &f.push_pull_interval_ms);
       }},
      {"log-level", "debug|info|warn|error", d.log_level, "least severe log level written",
       [](Flags& f, std::string_view v) {
         if (v != "debug" && v != "info" && v != "warn" && v != "error" && v != "off") return false;
         return f.log_level = v, true;
       }},
      {"log-format", "text|json", d.log_format, "log line format",
       [](Flags& f, std::string_view v) {
         if (v != "text" && v != "json") return false;
         return f.log_format = v, true;
       }},
      {"otlp-endpoint", "URL", "off",
       "export handshake, publish and fanout spans as OTLP/HTTP JSON to this collector, "
       "http://HOST:PORT/v1/traces (see docs/operations.md, Tracing)",
       [](Flags& f, std::string_view v) {
         if (!v.empty() && v.substr(0, 7) != "http://") return false;
         return f.otlp_endpoint = v, true;
       }},
      {"otlp-service-name", "NAME", d.otlp_service_name, "service.name of the exported spans",
       [](Flags& f, std::string_view v) { return !v.empty() && (f.otlp_service_name = v, true); }},
      {"otlp-sample-ratio", "RATIO", "1",
       "fraction (0..1) of traces without a parent that are recorded, decided from the trace id; "
       "a traceparent's sampled flag (01 or 00) decides for its trace",
       [](Flags& f, std::string_view v) { return set_ratio(v, &f.otlp_sample_ratio); }},
      {"help", nullptr, "", "print this help and exit",
       [](Flags& f, std::string_view) { return f.help = true, true; }},
  };
  return table;
}

// The cluster flags mean something only with --gossip, and gossip is never unauthenticated.
bool check_cluster_flags(const Flags& flags, std::string* error) {
  int tls_files = !flags.cluster_tls_cert.empty() + !flags.cluster_tls_key.empty() +
                  !flags.cluster_tls_ca.empty();
  if (tls_files != 0 && tls_files != 3) {
    *error =
        "--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together (all three "
        "or none)";
    return false;
  }
  if (flags.gossip.empty() && tls_files != 0) {
    *error = "--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca need --gossip";
    return false;
  }
  if (flags.gossip.empty()) {
    if (!flags.join.empty() || !flags.gossip_advertise.empty()) {
      *error = "--join and --gossip-advertise need --gossip";
      return false;
    }
    return true;
  }
  if (flags.cluster_secret_file.empty()) {
    *error = "--gossip needs --cluster-secret-file (the HMAC key all nodes of the cluster share)";
    return false;
  }
  if (flags.probe_timeout_ms >= flags.probe_interval_ms) {
    *error = "--probe-timeout must be less than --probe-interval";
    return false;
  }
  return true;
}

}  // namespace

bool parse_flags(int argc, char** argv, Flags* flags, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.substr(0, 2) != "--") {
      *error = "unexpected argument '" + std::string(arg) + "' (flags start with --)";
      return false;
    }
    arg.remove_prefix(2);
    std::string_view value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs())
      if (arg == s.name) spec = &s;
    if (!spec) {
      *error = "unknown flag --" + std::string(arg) + " (see --help)";
      return false;
    }
    if (spec->value_name && !has_value) {
      if (i + 1 >= argc) {
        *error = "flag --" + std::string(arg) + " needs a value " + spec->value_name;
        return false;
      }
      value = argv[++i];
    }
    if (!spec->set(*flags, value)) {
      *error = "invalid value '" + std::string(value) + "' for --" + std::string(arg) +
               " (expected " + (spec->value_name ? spec->value_name : "no value") + ")";
      return false;
    }
  }
  if (flags->low_watermark > flags->high_watermark) {
    *error = "--low-watermark must not exceed --high-watermark";
    return false;
  }
  if (flags->max_buffer && flags->max_buffer < flags->high_watermark) {
    *error = "--max-buffer must be at least --high-watermark (or 0 for no limit)";
    return false;
  }
  if (flags->tls_cert.empty() != flags->tls_key.empty()) {
    *error = "--tls-cert and --tls-key go together";
    return false;
  }
  if (!check_cluster_flags(*flags, error)) return false;
  if (flags->drain_spread_ms > flags->drain_timeout_ms) {
    *error = "--drain-spread must not exceed --drain-timeout";
    return false;
  }
  if (flags->max_connections_per_ip > UINT32_MAX) {
    *error = "--max-connections-per-ip is at most 4294967295";
    return false;
  }
  if (flags->auth != "off" && flags->jwt_secret_file.empty() && flags->jwt_public_keys.empty()) {
    *error = "--auth " + flags->auth + " needs --jwt-secret-file or --jwt-public-key";
    return false;
  }
  if (flags->auth == "off" && (!flags->jwt_audience.empty() || !flags->jwt_issuer.empty())) {
    *error = "--jwt-audience and --jwt-issuer need --auth optional or required";
    return false;
  }
  if (flags->threads == 0)
    flags->threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return true;
}

std::string flags_help() {
  std::string out =
      "weir — a WebSocket server built on a per-core epoll reactor\n\n"
      "usage: weir [--flag value | --flag=value]...\n\n"
      "Sizes take B, KiB, MiB, GiB (k, M, G are the same powers of 1024); durations take ms, s,\n"
      "m, h (a bare number is seconds).\n\nflags:\n";
  for (const FlagSpec& s : specs()) {
    std::string left =
        std::string("  --") + s.name + (s.value_name ? std::string(" ") + s.value_name : "");
    if (left.size() < 40)
      left.resize(40, ' ');
    else
      left += "\n" + std::string(40, ' ');
    out += left + s.help;
    if (!s.default_text.empty()) out += " (default: " + s.default_text + ")";
    out += "\n";
  }
  return out;
}

}  // namespace weir::server
