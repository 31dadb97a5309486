// tools/load/tcp_echo.cc — `weir-load tcp-echo`: the echo scenario over raw TCP, the baseline
// for `weir --tcp-echo`. Messages have a fixed size, so the stream needs no framing: the
// verifier cuts it every --size bytes.
#include <memory>
#include <string>

#include "tools/load/commands.h"
#include "tools/load/echo_run.h"

namespace weir::load {
namespace {

class TcpEchoSession;

// The connection's handler; forwards to the session the worker owns.
class TcpEchoHandler final : public net::ConnectionHandler {
 public:
  explicit TcpEchoHandler(TcpEchoSession* session) : session_(session) {}
  void on_data(net::Connection& conn, char* data, size_t len) override;
  void on_closed(net::Connection& conn, net::CloseReason reason, std::string_view detail) override;

 private:
  TcpEchoSession* session_;
};

class TcpEchoSession final : public EchoSession {
 public:
  using EchoSession::EchoSession;

  void connect() override {
    const Options& o = worker_.options();
    worker_.connector().connect(o.addr, nullptr, o.connect_timeout_ms,
                                [this](net::Connection* conn, std::string_view error) {
                                  if (conn == nullptr) {
                                    ended(false, std::string(error));
                                    return;
                                  }
                                  conn_ = conn;
                                  conn->set_handler(std::make_unique<TcpEchoHandler>(this));
                                  opened();
                                });
  }

  void close() override {
    if (conn_) conn_->close();
  }
  void abort_if_unopened() override {}  // the connector's timeout covers the TCP connect

  void on_data(const char* data, size_t len) {
    verifier_.feed_stream(data, len, [this](EchoVerifier::Echo echo) { on_echo(echo); });
  }

  void on_closed(net::CloseReason reason, std::string_view detail) {
    conn_ = nullptr;
    std::string why = std::string(net::close_reason_name(reason)) + ": " + std::string(detail);
    ended(true, why);
  }

 protected:
  char* prepare(size_t len) override { return worker_.context().scratch(len); }
  bool transmit(size_t len) override {
    return conn_->write(std::string_view(worker_.context().scratch(len), len)) ==
           net::WriteResult::kAccepted;
  }

 private:
  net::Connection* conn_ = nullptr;  // owned by the connector; cleared when it ends
};

void TcpEchoHandler::on_data(net::Connection&, char* data, size_t len) {
  session_->on_data(data, len);
}

void TcpEchoHandler::on_closed(net::Connection&, net::CloseReason reason, std::string_view detail) {
  session_->on_closed(reason, detail);
}

}  // namespace

int run_tcp_echo(const Options& options) {
  return run_echo_load(options, [](EchoWorker& w) { return std::make_unique<TcpEchoSession>(w); });
}

}  // namespace weir::load
