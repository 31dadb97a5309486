// server/routes.cc — request routing.
#include "server/routes.h"

#include "core/metrics.h"
#include "ws/http_response.h"

namespace weir::server {

void Routes::add_websocket(std::string path, std::unique_ptr<ws::WebSocketEndpoint> endpoint) {
  websockets_[std::move(path)] = std::move(endpoint);
}

ws::WebSocketEndpoint* Routes::websocket_endpoint(std::string_view path) {
  auto it = websockets_.find(path);
  return it == websockets_.end() ? nullptr : it->second.get();
}

void Routes::handle(const ws::HttpRequest& request, ws::HttpReply& reply) {
  std::string_view path = request.path();
  if (rooms_api_ && rooms_api_->handle(request, reply)) return;
  bool known = path == "/healthz" || path == "/readyz" || path == "/metrics" ||
               websockets_.find(path) != websockets_.end();
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
    body += '"';
    body += "}\n";
    return reply.respond(ready ? 200 : 503, "application/json", body);
  }
  if (path == "/metrics")
    return reply.respond(200, "text/plain; version=0.0.4; charset=utf-8", core::render_metrics());
  // A WebSocket path asked for without the upgrade.
  reply.respond(426, "text/plain", "this endpoint speaks WebSocket: send an upgrade request\n",
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
}

}  // namespace weir::server
