// tools/load/echo.cc — `weir-load echo`: the echo scenario over WebSocket connections.
#include <memory>
#include <string>

#include "tools/load/commands.h"
#include "tools/load/echo_run.h"
#include "tools/load/ws_client.h"

namespace weir::load {
namespace {

class WsEchoSession final : public EchoSession, public WsClientListener {
 public:
  explicit WsEchoSession(EchoWorker& worker) : EchoSession(worker) {
    const Options& o = worker.options();
    config_.host_header = o.url.host_header();
    config_.target = o.url.target;
    config_.offer_deflate = o.deflate;
    config_.max_message_size = o.size + 1024;
    opcode_ = o.binary ? ws::Opcode::kBinary : ws::Opcode::kText;
  }

  void connect() override {
    worker_.connector().connect(
        worker_.options().url.address, nullptr, worker_.options().connect_timeout_ms,
        [this](net::Connection* conn, std::string_view error) {
          if (conn == nullptr) {
            ended(false, std::string(error));
            return;
          }
          auto client = std::make_unique<WsClient>(*conn, config_, &worker_.context(), this);
          client_ = client.get();
          conn->set_handler(std::move(client));
        });
  }

  void close() override {
    if (client_) client_->close(ws::kCloseNormal, "run complete");
  }

  void abort_if_unopened() override {
    if (client_ && !is_open()) client_->abort("no upgrade response within --connect-timeout");
  }

  // WsClientListener
  void on_open(WsClient& client) override {
    if (client.deflate_active()) worker_.counters().deflate_connections++;
    opened();
  }

  void on_message_begin(WsClient&, ws::Opcode opcode) override {
    wrong_opcode_ = opcode != opcode_;
  }

  void on_message_data(WsClient&, std::span<const char> data, bool last) override {
    verifier_.feed(data.data(), data.size());
    if (!last) return;
    EchoVerifier::Echo echo = verifier_.finish();
    if (wrong_opcode_) echo.ok = false;
    on_echo(echo);
  }

  void on_closed(WsClient&, const WsClientEnd& end) override {
    client_ = nullptr;
    if (end.opened && !end.clean && end.code != ws::kCloseAbnormal)
      worker_.counters().protocol_errors++;
    std::string why = end.reason;
    if (end.code != ws::kCloseAbnormal) why += " (close code " + std::to_string(end.code) + ")";
    ended(end.opened, why);
  }

 protected:
  char* prepare(size_t len) override { return client_->prepare(len); }
  bool transmit(size_t len) override { return client_->send_prepared(opcode_, len); }
  size_t queued_bytes() const override {
    return client_ ? client_->connection().queued_bytes() : 0;
  }

 private:
  WsClientConfig config_;
  WsClient* client_ = nullptr;  // owned by its connection; cleared when it ends
  ws::Opcode opcode_;
  bool wrong_opcode_ = false;
};

}  // namespace

int run_echo(const Options& options) {
  return run_echo_load(options, [](EchoWorker& w) { return std::make_unique<WsEchoSession>(w); });
}

}  // namespace weir::load
