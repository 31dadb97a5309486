// server/http_service.cc — builds the HTTP/WebSocket service from the flags and runs it.
#include "server/http_service.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "cluster/authenticator.h"
#include "cluster/membership.h"
#include "cluster/peer_link.h"
#include "cluster/room_bridge.h"
#include "cluster/room_service.h"
#include "cluster/rooms_endpoint.h"
#include "core/log.h"
#include "core/trace.h"
#include "net/tcp_server.h"
#include "net/tls_context.h"
#include "server/drain.h"
#include "server/echo_endpoint.h"
#include "server/routes.h"
#include "server/stream_endpoint.h"
#include "store/store.h"
#include "ws/http_connection.h"

namespace weir::server {
namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) items.push_back(item);
  return items;
}

ws::HttpServerOptions http_options(const Flags& flags) {
  ws::HttpServerOptions o;
  o.parser.max_header_bytes = flags.max_header_bytes;
  o.parser.max_body_bytes = flags.max_body_bytes;
  o.request_timeout_ms = flags.request_timeout_ms;
  o.keepalive_timeout_ms = flags.keepalive_timeout_ms;
  o.handshake.allowed_origins = split_list(flags.allowed_origins);
  ws::parse_deflate_mode(flags.deflate, &o.deflate.mode);
  o.websocket.max_message_size = flags.max_message_size;
  o.websocket.ping_interval_ms = flags.ping_interval_ms;
  o.websocket.idle_timeout_ms = flags.idle_timeout_ms;
  o.websocket.close_timeout_ms = flags.close_timeout_ms;
  return o;
}

cluster::RoomsConfig rooms_config(const Flags& flags) {
  cluster::RoomsConfig c;
  c.max_rooms_per_connection = flags.max_rooms_per_connection;
  c.max_room_id_bytes = flags.max_room_id_bytes;
  c.max_content_bytes = flags.max_content_bytes;
  cluster::parse_slow_consumer_policy(flags.slow_consumer, &c.policy);
  c.slow_grace_ms = flags.slow_grace_ms;
  c.high_watermark = flags.high_watermark;
  c.low_watermark = flags.low_watermark;
  c.max_buffer = flags.max_buffer;
  cluster::parse_durability(flags.durability, &c.durability);
  c.replay_limit = flags.replay_limit;
  c.session_ttl_ms = flags.session_ttl_ms;
  c.dedupe_window_ms = flags.dedupe_window_ms;
  c.rate_limit = flags.rate_limit;
  c.rate_burst = flags.rate_burst;
  c.room_rate_limit = flags.room_rate_limit;
  c.room_rate_burst = flags.room_rate_burst;
  return c;
}

// sqlite:PATH: the directory is made when missing (make run keeps its database in ./data/).
bool prepare_store_path(const std::string& spec, std::string* error) {
  if (spec.rfind("sqlite:", 0) != 0) return true;
  std::filesystem::path path(spec.substr(7));
  if (!path.has_parent_path()) return true;
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) *error = "cannot create " + path.parent_path().string() + ": " + ec.message();
  return !ec;
}

// The HMAC key: the file's bytes, without the trailing newline an editor adds.
bool read_cluster_secret(const std::string& path, std::string* secret, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "--cluster-secret-file " + path + ": cannot read it";
    return false;
  }
  secret->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  while (!secret->empty() && (secret->back() == '\n' || secret->back() == '\r')) secret->pop_back();
  if (secret->empty()) *error = "--cluster-secret-file " + path + " is empty";
  return !secret->empty();
}

std::string default_node_id(const net::SocketAddress& gossip) {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
  return std::string(host) + ":" + std::to_string(gossip.port());
}

// The flags were checked by parse_flags; what is left to fail is reading the secret.
bool membership_config(const Flags& flags, cluster::MembershipConfig* c, std::string* error) {
  if (!net::SocketAddress::parse(flags.gossip, &c->bind, error)) return false;
  if (!flags.gossip_advertise.empty() &&
      !net::SocketAddress::parse(flags.gossip_advertise, &c->advertise, error))
    return false;
  for (const std::string& seed : split_list(flags.join)) {
    net::SocketAddress address;
    if (!net::SocketAddress::parse(seed, &address, error)) return false;
    c->seeds.push_back(address);
  }
  c->node_id = flags.node_id.empty() ? default_node_id(c->bind) : flags.node_id;
  c->probe_interval_ms = flags.probe_interval_ms;
  c->probe_timeout_ms = flags.probe_timeout_ms;
  c->suspicion_mult = flags.suspicion_mult;
  c->rejoin_interval_ms = flags.rejoin_interval_ms;
  c->push_pull_interval_ms = flags.push_pull_interval_ms;
  return read_cluster_secret(flags.cluster_secret_file, &c->secret, error);
}

// The cluster membership. It lives on one reactor (cluster/membership.h): created, started,
// left and destroyed on that reactor's thread, and on every change it logs the event and
// hands the routes a fresh view of the members.
//
// Thread-safety: start() and leave() from the main thread, each once, while the reactor runs;
// they wait for the work they post.
class GossipNode {
 public:
  GossipNode(cluster::MembershipConfig config, Routes& routes, cluster::RoomService& rooms)
      : config_(std::move(config)), routes_(routes), rooms_(rooms) {
    // Rooms frames leave through reactor 0's links (the shards only call this there).
    rooms.set_node_sender(
        [this](const std::string& node, uint8_t type, std::span<const std::string_view> parts) {
          return links_ && links_->send(node, type, parts);
        });
  }

  bool start(core::Reactor& reactor, std::string* error) {
    reactor_ = &reactor;
    std::promise<std::string> started;
    reactor.post([this, &started] {
      std::string reason;
      membership_ = std::make_unique<cluster::Membership>(*reactor_, config_);
      membership_->set_change_callback(
          [this](const cluster::MemberInfo& m, cluster::MemberEvent e) { on_change(m, e); });
      if (membership_->start(&reason) && start_links(&reason)) {
        connect_state_sync();
        log_info("cluster: node %s gossiping on %s (UDP; peer links on TCP), %zu seeds",
                 config_.node_id.c_str(), membership_->address().to_string().c_str(),
                 config_.seeds.size());
        publish();
      } else {
        bridge_.reset();
        links_.reset();
        membership_.reset();
      }
      started.set_value(reason);
    });
    *error = started.get_future().get();
    return error->empty();
  }

  // --cluster-tls-*: the peer links' mutual TLS context; before start().
  void set_link_tls(std::shared_ptr<net::TlsContext> tls) { link_tls_ = std::move(tls); }

  // Tells the other members we left (they mark us left, not dead), then destroys the membership.
  void leave() {
    if (!reactor_) return;
    std::promise<void> left;
    reactor_->post([this, &left] {
      if (membership_) membership_->leave();
      membership_.reset();
      bridge_.reset();
      if (links_) links_->stop();
      links_.reset();
      left.set_value();
    });
    left.get_future().get();
    reactor_ = nullptr;
  }

 private:
  void on_change(const cluster::MemberInfo& member, cluster::MemberEvent event) {
    if (member.node_id == config_.node_id) {  // others declared us dead; we refuted
      log_info("cluster: this node (%s) was declared dead by others; refuted at incarnation %u",
               member.node_id.c_str(), member.incarnation);
      if (bridge_) bridge_->fence();
      return;
    }
    log_info("cluster: %s %s (%s, incarnation %u)", member.node_id.c_str(),
             cluster::member_event_name(event), member.address.to_string().c_str(),
             member.incarnation);
    publish();
  }
  // Peer links listen on TCP at the gossip address, as memberlist does, so a member's gossip
  // address is also where its links are dialled.
  bool start_links(std::string* reason) {
    cluster::PeerLinksConfig config;
    config.node_id = config_.node_id;
    config.bind = config_.bind;
    if (config.bind.port() == 0) config.bind = membership_->address();
    config.secret = config_.secret;
    config.tls = link_tls_;  // mutual TLS with --cluster-tls-*; the hello still runs inside
    links_ = std::make_unique<cluster::PeerLinks>(*reactor_, config);
    if (!links_->start(reason)) return false;
    bridge_ = std::make_unique<cluster::RoomBridge>(*reactor_, rooms_, *links_);
    routes_.set_rooms_owned_source([owned = bridge_->rooms_owned()] { return owned->snapshot(); });
    return true;
  }
  void publish() {
    std::vector<cluster::MemberInfo> members = membership_->members();
    if (bridge_) bridge_->update(membership_->node_id(), members);
    routes_.set_cluster_view(membership_->node_id(), std::move(members));
  }
  // The membership's push-pulls ride on the peer links when they are up (cluster/membership.h).
  void connect_state_sync() {
    membership_->set_stream_sender([this](const std::string& node, std::string_view message) {
      return links_ && links_->send(node, cluster::kLinkFrameSwim, message);
    });
    bridge_->set_stream_handler([this](const std::string& node, std::string_view message) {
      if (membership_) membership_->handle_stream(node, message);
    });
  }

  cluster::MembershipConfig config_;
  Routes& routes_;
  cluster::RoomService& rooms_;
  core::Reactor* reactor_ = nullptr;
  std::unique_ptr<cluster::Membership> membership_;
  std::unique_ptr<cluster::PeerLinks> links_;
  std::unique_ptr<cluster::RoomBridge> bridge_;
  std::shared_ptr<net::TlsContext> link_tls_;
};

// Runs the span exporter from start() to the end of its scope.
class TraceExporterScope {
 public:
  bool start(const Flags& flags, std::string* error) {
    core::TraceExporterConfig config;
    config.endpoint = flags.otlp_endpoint;
    config.service_name = flags.otlp_service_name;
    config.sample_ratio = flags.otlp_sample_ratio;
    if (!core::start_trace_exporter(config, error)) return false;
    log_info("tracing: OTLP spans to %s (root spans sampled at %g)", flags.otlp_endpoint.c_str(),
             flags.otlp_sample_ratio);
    return started_ = true;
  }
  ~TraceExporterScope() {
    if (started_) core::stop_trace_exporter();
  }

 private:
  bool started_ = false;
};

}  // namespace

// The answer to a connection over --max-connections-per-ip, before it is closed.
std::string connections_per_ip_body(uint64_t limit) {
  return "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"this address holds "
         "--max-connections-per-ip connections already\",\"limit\":\"connections_per_ip\","
         "\"max\":" +
         std::to_string(limit) + "}}\n";
}

int run_http_service(const Flags& flags, const WaitForShutdown& wait,
                     const Interrupted& interrupted) {
  net::TcpServerOptions tcp;
  std::string error;
  if (!net::SocketAddress::parse(flags.listen, &tcp.listen, &error)) {
    std::fprintf(stderr, "weir: --listen: %s\n", error.c_str());
    return 2;
  }
  tcp.threads = flags.threads;
  tcp.max_connections = flags.max_connections;
  tcp.connection.high_watermark = flags.high_watermark;
  tcp.connection.low_watermark = flags.low_watermark;
  tcp.connection.max_buffer = flags.max_buffer;
  tcp.connection.tcp_nodelay = flags.tcp_nodelay;
  tcp.connection.linger_ms = flags.linger_ms;
  tcp.connection.keep_open_on_peer_closed = true;  // answer pipelined requests after a half-close
  tcp.max_connections_per_ip = static_cast<uint32_t>(flags.max_connections_per_ip);
  tcp.ip_limit_v6_prefix = flags.ip_limit_v6_prefix;
  tcp.accept_rate = flags.accept_rate;
  tcp.accept_burst = flags.accept_burst;
  std::unique_ptr<net::TlsContext> tls;
  if (!flags.tls_cert.empty()) {
    tls = net::TlsContext::create(flags.tls_cert, flags.tls_key, &error);
    if (!tls) {
      std::fprintf(stderr, "weir: TLS: %s\n", error.c_str());
      return 2;
    }
    tcp.connection.tls = tls.get();
    tcp.connection.tls_handshake_timeout_ms = flags.tls_handshake_timeout_ms;
  }

  cluster::MembershipConfig gossip_config;
  if (!flags.gossip.empty() && !membership_config(flags, &gossip_config, &error)) {
    std::fprintf(stderr, "weir: %s\n", error.c_str());
    return 2;
  }
  std::shared_ptr<net::TlsContext> link_tls;
  if (!flags.cluster_tls_cert.empty()) {
    link_tls = net::TlsContext::create(
        net::TlsConfig{flags.cluster_tls_cert, flags.cluster_tls_key, flags.cluster_tls_ca},
        &error);
    if (!link_tls) {
      std::fprintf(stderr, "weir: --cluster-tls-*: %s\n", error.c_str());
      return 2;
    }
  }

  // --otlp-endpoint: declared before the server and the rooms, so stopped (its queue posted)
  // after them.
  TraceExporterScope tracing;
  if (!flags.otlp_endpoint.empty() && !tracing.start(flags, &error)) {
    std::fprintf(stderr, "weir: %s\n", error.c_str());
    return 2;
  }

  // --auth: the JWT keys are read now, and again on SIGHUP.
  std::unique_ptr<cluster::Authenticator> auth;
  if (flags.auth != "off") {
    cluster::AuthMode mode = cluster::AuthMode::kOff;
    cluster::parse_auth_mode(flags.auth, &mode);
    auth = std::make_unique<cluster::Authenticator>(
        mode, flags.jwt_leeway_ms / 1000,
        ws::JwtKeyFiles{flags.jwt_secret_file, flags.jwt_public_keys},
        ws::JwtRequirements{flags.jwt_audience, flags.jwt_issuer});
    if (!auth->reload(&error)) {
      std::fprintf(stderr, "weir: --auth: %s\n", error.c_str());
      return 2;
    }
  }

  std::string key;
  if (!prepare_store_path(flags.store, &error) ||
      !cluster::SessionTokens::load_key(flags.session_secret_file, &key, &error)) {
    std::fprintf(stderr, "weir: %s\n", error.c_str());
    return 2;
  }
  std::unique_ptr<store::Backend> backend = store::open_backend(flags.store, &error);
  if (!backend) {
    std::fprintf(stderr, "weir: --store %s: %s\n", flags.store.c_str(), error.c_str());
    return 2;
  }
  // Declared before the rooms and the server, so it is destroyed after them: members save
  // their sessions as they go, and stop() below runs what they queued.
  store::Store store(std::move(backend));
  store::Retention retention;
  retention.max_messages_per_room = flags.retention_messages;
  retention.max_age_ms = flags.retention_age_ms;
  store.start_purge(retention, flags.purge_interval_ms);

  // --handshakes-per-ip-per-sec: one table for every thread (net/ip_limits.h says why).
  std::unique_ptr<net::RatePerIp> handshake_rate;
  if (flags.handshakes_per_ip_rate > 0)
    handshake_rate = std::make_unique<net::RatePerIp>(
        flags.handshakes_per_ip_rate, flags.handshakes_per_ip_burst, flags.ip_limit_v6_prefix);
  const ws::HttpServerOptions options = [&] {
    ws::HttpServerOptions o = http_options(flags);
    o.handshakes_per_ip = handshake_rate.get();
    return o;
  }();
  cluster::RoomService rooms(rooms_config(flags), tcp.threads);
  rooms.set_store(&store);
  rooms.set_session_key(std::move(key));
  cluster::RoomsApi rooms_api(rooms, flags.api_key);
  Routes routes;
  routes.add_websocket("/echo", std::make_unique<EchoEndpoint>());
  routes.add_websocket("/stream", std::make_unique<StreamEndpoint>(StreamLimits{}));
  routes.add_websocket("/ws", std::make_unique<cluster::RoomsEndpoint>(rooms, auth.get()));
  routes.set_rooms_api(&rooms_api);
  routes.set_store(&store, flags.durability);
  std::unique_ptr<GossipNode> gossip;
  if (!flags.gossip.empty()) {
    routes.enable_cluster();
    gossip = std::make_unique<GossipNode>(std::move(gossip_config), routes, rooms);
    gossip->set_link_tls(link_tls);
  }

  net::TcpServer server(tcp, [&](net::Connection& conn) {
    return std::make_unique<ws::HttpConnection>(conn, options, &routes);
  });
  server.set_thread_init([&rooms](core::Reactor& reactor) { rooms.attach(reactor); });
  const std::string per_ip_body = connections_per_ip_body(flags.max_connections_per_ip);
  server.set_refusal_factory([&per_ip_body](net::Connection& conn) {
    return ws::make_refusal(conn, 503, per_ip_body, "Retry-After: 1\r\n");
  });
  if (!server.start(&error)) {
    std::fprintf(stderr, "weir: %s\n", error.c_str());
    return 1;
  }
  // Reactor 0 carries the gossip: its socket and timers are few and cheap next to the traffic.
  if (gossip && !gossip->start(server.reactor(0), &error)) {
    std::fprintf(stderr, "weir: cluster: %s\n", error.c_str());
    server.stop();
    store.stop();
    return 1;
  }
  routes.set_ready(true);
  log_info("weir listening on %s port %u%s, %d threads, store %s, durability %s",
           tcp.listen.host().c_str(), server.port(), tls ? " (TLS)" : "", server.threads(),
           store.backend_name(), flags.durability.c_str());
  wait([&] {
    std::string reload_error;
    if (auth && auth->reload(&reload_error))
      log_info("JWT keys reloaded (--jwt-secret-file, --jwt-public-key)");
    else if (auth)
      log_error("JWT key reload failed, keeping the old keys: %s", reload_error.c_str());
    if (!tls) return;
    if (tls->reload(&reload_error))
      log_info("TLS certificate reloaded from %s", flags.tls_cert.c_str());
    else
      log_error("TLS reload failed, keeping the old certificate: %s", reload_error.c_str());
  });
  routes.set_draining();  // /readyz answers 503 from now on
  DrainOptions drain;
  drain.spread_ms = flags.drain_spread_ms;
  drain.timeout_ms = flags.drain_timeout_ms;
  Drain(server, drain).run(interrupted);
  if (gossip) gossip->leave();  // after the sessions are gone, before the exit
  server.stop();                // aborts what the drain left open
  store.stop();
  return 0;
}

}  // namespace weir::server
