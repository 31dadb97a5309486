// server/stream_endpoint.h — /stream?rate=N&size=S: the server pushes N text messages a
// second of S bytes each (the seed's /stats route), for the slow-client scenarios.
//
// Each message is JSON: {"seq":N,"ts_us":T,"deferred":D,"pad":"..."} padded to S bytes.
// While the session is above the high watermark the producer does not write: the messages
// due meanwhile are deferred (counted) and sent once the queue falls under the low watermark,
// up to a backlog of max_backlog messages; older ones are dropped and counted. The send rate
// thus follows what the client can take, which is what the load tool's plots show.
#pragma once

#include <cstdint>

#include "ws/http_connection.h"

namespace weir::server {

struct StreamLimits {
  uint64_t max_rate = 100000;       // messages per second per connection
  uint64_t max_size = 1 << 20;      // bytes per message
  uint64_t max_backlog = 10000;     // deferred messages kept per connection
};

class StreamEndpoint : public ws::WebSocketEndpoint {
 public:
  explicit StreamEndpoint(StreamLimits limits) : limits_(limits) {}
  std::unique_ptr<ws::WebSocketHandler> create(ws::WebSocketSession& session,
                                               const ws::HttpRequest& request) override;

 private:
  StreamLimits limits_;
};

}  // namespace weir::server
