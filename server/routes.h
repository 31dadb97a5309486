// server/routes.h — weir's HTTP routes: health, readiness, metrics, and the WebSocket
// endpoints by path.
//
// Thread-safety: handle() and websocket_endpoint() run on any reactor thread at once; the
// routes hold only immutable endpoint objects, an atomic readiness flag and the cluster view,
// which the gossip reactor replaces under a mutex and the routes copy out of it.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/membership.h"
#include "cluster/rooms_endpoint.h"
#include "store/store.h"
#include "ws/http_connection.h"

namespace weir::server {

class Routes : public ws::HttpRoutes {
 public:
  // Registers a WebSocket endpoint; before the server starts.
  void add_websocket(std::string path, std::unique_ptr<ws::WebSocketEndpoint> endpoint);
  // /readyz answers 503 while not ready (starting, draining). Any thread.
  void set_ready(bool ready) { ready_.store(ready, std::memory_order_release); }
  // The drain began: /readyz answers 503 and rooms API publishes 503 with Retry-After (a
  // message acknowledged now could miss members already closed). Any thread.
  void set_draining() {
    draining_.store(true, std::memory_order_release);
    set_ready(false);
  }
  // Requests under /api/rooms/ go to the rooms API; before the server starts.
  void set_rooms_api(cluster::RoomsApi* api) { rooms_api_ = api; }
  // /readyz reports the store's health (durability degraded while it fails); before start.
  void set_store(const store::Store* store, std::string durability) {
    store_ = store;
    durability_ = std::move(durability);
  }

  // /cluster lists the membership (404 without this call) and /readyz counts live members;
  // before the server starts.
  void enable_cluster() { cluster_enabled_ = true; }
  // Any thread (the gossip reactor calls it after every membership change): the view of the
  // cluster that /cluster and /readyz show from now on.
  void set_cluster_view(const std::string& node_id,
                        const std::vector<cluster::MemberInfo>& members);
  // Any thread: where /cluster reads how many rooms each member orders (called on the
  // request's thread; must be thread-safe). Without it, rooms_owned is null.
  using RoomsOwned = std::function<std::map<std::string, uint64_t>()>;
  void set_rooms_owned_source(RoomsOwned source) {
    std::lock_guard lock(cluster_mutex_);
    rooms_owned_ = std::move(source);
  }

  void handle(const ws::HttpRequest& request, ws::HttpReply& reply) override;
  ws::WebSocketEndpoint* websocket_endpoint(std::string_view path) override;

 private:
  void handle_cluster(ws::HttpReply& reply);
  // "off" or "N alive of M", for /readyz.
  std::string cluster_summary();

  std::map<std::string, std::unique_ptr<ws::WebSocketEndpoint>, std::less<>> websockets_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  cluster::RoomsApi* rooms_api_ = nullptr;
  const store::Store* store_ = nullptr;
  std::string durability_;

  bool cluster_enabled_ = false;
  std::mutex cluster_mutex_;
  std::string cluster_node_id_;
  std::vector<cluster::MemberInfo> cluster_members_;  // as set_cluster_view saw them
  RoomsOwned rooms_owned_;
  size_t cluster_alive_ = 0;
  size_t cluster_size_ = 0;
};

}  // namespace weir::server
