// server/routes.cc — request routing.
#include "server/routes.h"

#include "core/metrics.h"
#include "server/pages.h"
#include "ws/envelope_encoder.h"
#include "ws/http_response.h"

namespace weir::server {

void Routes::add_websocket(std::string path, std::unique_ptr<ws::WebSocketEndpoint> endpoint) {
  websockets_[std::move(path)] = std::move(endpoint);
}

ws::WebSocketEndpoint* Routes::websocket_endpoint(std::string_view path) {
  auto it = websockets_.find(path);
  return it == websockets_.end() ? nullptr : it->second.get();
}

void Routes::set_cluster_view(const std::string& node_id,
                              const std::vector<cluster::MemberInfo>& members) {
  size_t alive = 0;
  for (const cluster::MemberInfo& m : members) alive += m.state == cluster::MemberState::kAlive;
  std::lock_guard lock(cluster_mutex_);
  cluster_node_id_ = node_id;
  cluster_members_ = members;
  cluster_alive_ = alive;
  cluster_size_ = members.size();
}

// Rendered per request: the rooms counts change without the membership changing.
void Routes::handle_cluster(ws::HttpReply& reply) {
  if (!cluster_enabled_) {
    std::string body;
    ws::encode_error(&body, "cluster_off",
                     "this node runs without a cluster (start it with --gossip)", "api");
    return reply.respond(404, "application/json", body + "\n");
  }
  RoomsOwned source;
  {
    std::lock_guard lock(cluster_mutex_);
    source = rooms_owned_;
  }
  std::map<std::string, uint64_t> owned;
  if (source) owned = source();
  std::string json;
  {
    std::lock_guard lock(cluster_mutex_);
    if (cluster_node_id_.empty()) {  // the membership is starting (the listeners open before it)
      ws::encode_error(&json, "cluster_starting", "the cluster membership is starting", "api");
      return reply.respond(503, "application/json", json + "\n");
    }
    json = "{\"node_id\":";
    ws::append_json_string(&json, cluster_node_id_);
    json += ",\"members\":[";
    for (const cluster::MemberInfo& m : cluster_members_) {
      if (&m != &cluster_members_.front()) json += ',';
      json += "{\"node_id\":";
      ws::append_json_string(&json, m.node_id);
      json += ",\"address\":";
      ws::append_json_string(&json, m.address.to_string());
      json += ",\"state\":";
      ws::append_json_string(&json, cluster::member_state_name(m.state));
      json += ",\"incarnation\":" + std::to_string(m.incarnation);
      auto it = owned.find(m.node_id);  // null: not reported (yet), or the member is down
      json += ",\"rooms_owned\":" + (it == owned.end() ? "null" : std::to_string(it->second));
      json += '}';
    }
  }
  json += "]}\n";
  reply.respond(200, "application/json", json);
}

std::string Routes::cluster_summary() {
  if (!cluster_enabled_) return "off";
  std::lock_guard lock(cluster_mutex_);
  return std::to_string(cluster_alive_) + " alive of " + std::to_string(cluster_size_);
}

void Routes::handle(const ws::HttpRequest& request, ws::HttpReply& reply) {
  std::string_view path = request.path();
  if (draining_.load(std::memory_order_acquire) && request.method() == ws::HttpMethod::kPost &&
      path.starts_with("/api/")) {
    std::string body;
    ws::encode_error(&body, "draining", "the server is shutting down: send to another node", "api");
    return reply.respond(503, "application/json", body + "\n", "Retry-After: 1\r\n");
  }
  if (rooms_api_ && rooms_api_->handle(request, reply)) return;
  if (serve_page(request, reply)) return;  // /, /dashboard, /static/*, /api/stats
  bool known = path == "/healthz" || path == "/readyz" || path == "/metrics" ||
               path == "/cluster" || websockets_.find(path) != websockets_.end();
  if (!known) return reply.respond_error(404, "no such route");
  bool get_or_head =
      request.method() == ws::HttpMethod::kGet || request.method() == ws::HttpMethod::kHead;
  if (!get_or_head)
    return reply.respond(405, "text/plain", "method not allowed\n", "Allow: GET, HEAD\r\n");
  if (path == "/healthz") return reply.respond(200, "text/plain", "ok\n");
  if (path == "/readyz") {
    // Ready means ready to take traffic: a failing store degrades durability, not delivery,
    // so it shows in the details and /metrics (weir_store_up) but keeps the node in rotation.
    bool ready = ready_.load(std::memory_order_acquire);
    if (!store_)
      return reply.respond(ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not ready\n");
    std::string body = ready ? "{\"status\":\"ready\"" : "{\"status\":\"not ready\"";
    body += ",\"store\":\"";
    body += store_->backend_name();
    body += "\",\"durability_mode\":\"" + durability_ + "\",\"durability\":\"";
    body += durability_ == "none" ? "off" : store_->healthy() ? "ok" : "degraded";
    body += "\",\"cluster\":\"" + cluster_summary() + "\"}\n";
    return reply.respond(ready ? 200 : 503, "application/json", body);
  }
  if (path == "/cluster") return handle_cluster(reply);
  if (path == "/metrics")
    return reply.respond(200, "text/plain; version=0.0.4; charset=utf-8", core::render_metrics());
  // A WebSocket path asked for without the upgrade.
  reply.respond(426, "text/plain", "this endpoint speaks WebSocket: send an upgrade request\n",
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
}

}  // namespace weir::server
