// server/flags.h — weir's command-line flags: one table holds each flag's name, default,
// unit and help line, so `--help` and docs/flags.md cannot drift from the parser.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "net/connection.h"

namespace weir::server {

struct Flags {
  std::string listen = "0.0.0.0:8080";
  int threads = 0;  // 0: one per core
  uint64_t max_connections = 100000;
  uint64_t high_watermark = 1 << 20;
  uint64_t low_watermark = 256 << 10;
  uint64_t max_buffer = 4 << 20;
  bool tcp_nodelay = true;
  int64_t linger_ms = 2000;
  // Admission and abuse limits (0 = off)
  double accept_rate = 0, accept_burst = 0;  // new connections per second, server-wide
  uint64_t max_connections_per_ip = 0;
  int ip_limit_v6_prefix = 64;  // IPv6 clients share the per-IP limits per this prefix
  double handshakes_per_ip_rate = 0, handshakes_per_ip_burst = 0;  // WebSocket upgrades/s
  // Graceful drain (SIGTERM, SIGINT)
  int64_t drain_spread_ms = 5000;
  int64_t drain_timeout_ms = 30000;

  std::string tcp_echo;  // HOST:PORT: run the raw TCP echo service instead of HTTP
  net::WriteMode write_mode = net::WriteMode::kAck;
  net::ReadMode read_mode = net::ReadMode::kPush;

  // HTTP
  uint64_t max_header_bytes = 16 << 10;
  uint64_t max_body_bytes = 1 << 20;
  int64_t request_timeout_ms = 10000;
  int64_t keepalive_timeout_ms = 60000;
  // WebSocket
  std::string allowed_origins;  // comma-separated; empty allows every origin
  uint64_t max_message_size = 16 << 20;
  int64_t ping_interval_ms = 30000;
  int64_t idle_timeout_ms = 75000;
  int64_t close_timeout_ms = 5000;
  std::string deflate = "off";
  // Rooms
  uint64_t max_rooms_per_connection = 100;
  uint64_t max_room_id_bytes = 128;
  uint64_t max_content_bytes = 64 << 10;
  std::string slow_consumer = "disconnect";
  int64_t slow_grace_ms = 30000;
  std::string api_key;
  // Authentication (JWT at the /ws handshake)
  std::string auth = "off";                  // off | optional | required
  std::string jwt_secret_file;               // [KID=]PATH of the HS256 secret
  std::vector<std::string> jwt_public_keys;  // [KID=]PATH each, PEM (RS256 / ES256)
  int64_t jwt_leeway_ms = 30000;             // clock skew allowed on exp and nbf
  std::string jwt_audience;                  // required in `aud` when set
  std::string jwt_issuer;                    // required as `iss` when set
  // Store
  std::string store = "memory";  // memory | sqlite:PATH | redis://HOST:PORT[/DB]
  std::string durability = "async";
  uint64_t replay_limit = 1000;
  int64_t session_ttl_ms = 24 * 3600 * 1000;
  std::string session_secret_file;  // empty: a random key per process
  int64_t dedupe_window_ms = 5 * 60 * 1000;
  double rate_limit = 0, rate_burst = 0;            // per connection, messages/s (0 = off)
  double room_rate_limit = 0, room_rate_burst = 0;  // per room
  uint64_t retention_messages = 10000;
  int64_t retention_age_ms = 24 * 3600 * 1000;
  int64_t purge_interval_ms = 60 * 1000;
  // TLS
  std::string tls_cert;  // PEM certificate chain; with tls_key, the listener speaks TLS only
  std::string tls_key;
  int64_t tls_handshake_timeout_ms = 10000;
  // Cluster membership (SWIM over UDP); off while gossip is empty
  std::string node_id;           // empty: this host's name and the --gossip port
  std::string gossip;            // HOST:PORT to bind the UDP socket on
  std::string gossip_advertise;  // HOST:PORT peers reach us at; empty: the bound address
  std::string join;              // comma-separated seeds, HOST:PORT each
  std::string cluster_secret_file;
  // Mutual TLS on the peer links: all three or none (PEM files)
  std::string cluster_tls_cert;  // this node's certificate chain, signed by cluster_tls_ca
  std::string cluster_tls_key;
  std::string cluster_tls_ca;  // the cluster CA every node's certificate must chain to
  int64_t probe_interval_ms = 1000;
  int64_t probe_timeout_ms = 500;
  int suspicion_mult = 4;
  int64_t rejoin_interval_ms = 30000;
  int64_t push_pull_interval_ms = 30000;

  std::string log_level = "info";
  std::string log_format = "text";
  // Tracing (OTLP/HTTP JSON); off while otlp_endpoint is empty
  std::string otlp_endpoint;  // http://HOST:PORT/v1/traces
  std::string otlp_service_name = "weir";
  double otlp_sample_ratio = 1.0;  // root spans recorded; a parent's sampled flag wins
  bool help = false;
};

// Parses argv into `flags`. Returns false with a one-line reason in `error`.
bool parse_flags(int argc, char** argv, Flags* flags, std::string* error);
// The --help text: usage, then every flag with its default and help line.
std::string flags_help();

}  // namespace weir::server
