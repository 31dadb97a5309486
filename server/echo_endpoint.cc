// server/echo_endpoint.cc — the echo handler.
#include "server/echo_endpoint.h"

namespace weir::server {
namespace {

class EchoHandler : public ws::WebSocketHandler {
 public:
  void on_message(ws::WebSocketSession& session, ws::Opcode opcode, std::string_view payload) override {
    session.send(opcode, payload);
  }
  void on_backpressure(ws::WebSocketSession& session, bool above_high) override {
    if (above_high)
      session.suspend_reading();
    else
      session.resume_reading();
  }
};

}  // namespace

std::unique_ptr<ws::WebSocketHandler> EchoEndpoint::create(ws::WebSocketSession&, const ws::HttpRequest&) {
  return std::make_unique<EchoHandler>();
}

}  // namespace weir::server
