// server/echo_endpoint.h — /echo: every message comes back, with end-to-end backpressure.
//
// The Akka echo pattern carried onto WebSocket: while this session's outbound queue is above
// the high watermark the server stops reading from the client, and it resumes under the low
// watermark, so a client that sends faster than it reads fills its own TCP window, not our
// memory.
#pragma once

#include "ws/http_connection.h"

namespace weir::server {

class EchoEndpoint : public ws::WebSocketEndpoint {
 public:
  std::unique_ptr<ws::WebSocketHandler> create(ws::WebSocketSession& session,
                                               const ws::HttpRequest& request) override;
};

}  // namespace weir::server
