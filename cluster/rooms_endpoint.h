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
// Thread-safety: admit(), create() and handle_api() run on any reactor thread; each uses that
// thread's shard.
#pragma once

#include <string>

#include "cluster/authenticator.h"
#include "cluster/room_service.h"
#include "ws/http_connection.h"

namespace weir::cluster {

// With an Authenticator (--auth optional|required), admit() verifies the upgrade's token and
// refuses a bad one (or a missing one under required) with 401, a JSON body
// {"error":{"code":<reason>,"message":..,"ref":"auth"}} and WWW-Authenticate: Bearer, before
// the 101; the member is created with the token's identity.
class RoomsEndpoint : public ws::WebSocketEndpoint {
 public:
  explicit RoomsEndpoint(RoomService& service, const Authenticator* auth = nullptr)
      : service_(service), auth_(auth) {}
  std::unique_ptr<ws::WebSocketHandler> create(ws::WebSocketSession& session,
                                               const ws::HttpRequest& request) override;
  void admit(const ws::HttpRequest& request, ws::Admission* admission) override;
  std::unique_ptr<ws::WebSocketHandler> create_admitted(ws::WebSocketSession& session,
                                                        const ws::HttpRequest& request,
                                                        ws::Admission& admission) override;
  // weir.v1 when offered; plain JSON without a subprotocol stays GoAkt-compatible. A
  // `bearer.<token>` entry is never selected: a browser passing its token that way offers
  // weir.v1 beside it and gets weir.v1 back.
  const std::vector<std::string>& subprotocols() const override { return subprotocols_; }

 private:
  RoomService& service_;
  const Authenticator* auth_;
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
