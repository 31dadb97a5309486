// cluster/rooms_endpoint.h — the rooms protocol's entry points: the /ws WebSocket endpoint
// (one Member per connection) and the HTTP API for backends:
//
//   POST /api/rooms/{room}/messages  {"content":"...","message_id":"opt"}  ->
//   {"offset":N,"epoch":N} GET  /api/rooms/{room} ->
//   {"room_id":..,"members":N,"last_offset":N,"epoch":N}
//
// The API is protected by --api-key (Authorization: Bearer KEY, or X-API-Key: KEY); without a
// configured key it answers 403 so a forgotten key never leaves it open.
//
// Thread-safety: create() and handle_api() run on any reactor thread; each uses that
// thread's shard.
#pragma once

#include <string>

#include "cluster/room_service.h"
#include "ws/http_connection.h"

namespace weir::cluster {

class RoomsEndpoint : public ws::WebSocketEndpoint {
 public:
  explicit RoomsEndpoint(RoomService& service) : service_(service) {}
  std::unique_ptr<ws::WebSocketHandler> create(ws::WebSocketSession& session,
                                               const ws::HttpRequest& request) override;
  // weir.v1 when offered; plain JSON without a subprotocol stays GoAkt-compatible.
  const std::vector<std::string>& subprotocols() const override { return subprotocols_; }

 private:
  RoomService& service_;
  std::vector<std::string> subprotocols_{"weir.v1"};
};

class RoomsApi {
 public:
  RoomsApi(RoomService& service, std::string api_key)
      : service_(service), api_key_(std::move(api_key)) {}
  // Handles /api/rooms/... requests; false when the path is not the API's.
  bool handle(const ws::HttpRequest& request, ws::HttpReply& reply);

 private:
  bool authorized(const ws::HttpRequest& request) const;
  void publish(std::string room_id, const ws::HttpRequest& request, ws::HttpReply& reply);
  void inspect(std::string room_id, ws::HttpReply& reply);

  RoomService& service_;
  std::string api_key_;
};

}  // namespace weir::cluster
