// net/tcp_server.cc — reactor threads, listeners and the connection limit.
#include "net/tcp_server.h"

#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"

namespace weir::net {
namespace {
core::Counter g_limited("weir_max_connections_reached_total",
                        "Times a listener paused because --max-connections was reached");
}  // namespace

TcpServer::TcpServer(TcpServerOptions options, HandlerFactory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {}

TcpServer::~TcpServer() { stop(); }

bool TcpServer::start(std::string* error) {
  SocketAddress addr = options_.listen;
  for (int i = 0; i < options_.threads; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->server = this;
    worker->reactor = std::make_unique<core::Reactor>(i, options_.tick_ms);
    Worker* w = worker.get();
    worker->listener = std::make_unique<Listener>(*worker->reactor, [this, w](int fd) { on_accept(*w, fd); });
    worker->listener->set_pull_mode(options_.max_connections > 0);
    if (!worker->listener->listen(addr, true, options_.backlog, error)) return false;
    if (i == 0) {
      port_ = worker->listener->port();
      addr.set_port(port_);  // port 0: every listener shares the port the first one got
    }
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->thread = std::thread([this, w] {
      if (thread_init_) thread_init_(*w->reactor);
      grant(*w);
      w->reactor->run();
    });
  }
  started_ = true;
  return true;
}

void TcpServer::stop() {
  if (!started_) return;
  started_ = false;
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->reactor->post([w] {
      w->listener->close();
      // Abort what is still open: a graceful drain happens above this layer, before stop().
      for (auto& [conn, owned] : w->connections) owned->abort();
      // One more iteration delivers the aborts' on_closed; then the rest (lingering
      // connections) is destroyed here, on its own thread, before per-thread state goes.
      w->reactor->post([w] {
        w->reactor->post([w] {
          w->connections.clear();
          w->reactor->stop();
        });
      });
    });
  }
  for (auto& worker : workers_)
    if (worker->thread.joinable()) worker->thread.join();
  workers_.clear();
}

void TcpServer::stop_accepting() {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->reactor->post([w] { w->listener->close(); });
  }
}

void TcpServer::on_accept(Worker& worker, int fd) {
  open_.fetch_add(1, std::memory_order_relaxed);
  auto conn = std::make_unique<Connection>(*worker.reactor, fd, options_.connection, &worker);
  Connection* raw = conn.get();
  worker.connections.emplace(raw, std::move(conn));
  raw->set_handler(factory_(*raw));
  if (options_.max_connections > 0 && worker.listener->paused()) grant(worker);
}

// Grants the listener what the global limit still allows. Two threads may both grant the
// last slot; the overshoot is bounded by the number of threads and corrected at the next grant.
void TcpServer::grant(Worker& worker) {
  if (options_.max_connections == 0) return;
  size_t open = open_.load(std::memory_order_relaxed);
  size_t room = open < options_.max_connections ? options_.max_connections - open : 0;
  if (room == 0) g_limited.inc();
  worker.listener->resume_accepting(static_cast<uint32_t>(std::min<size_t>(room, 1)));
}

void TcpServer::regrant_all() {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    if (w->reactor->in_loop_thread()) {
      if (w->listener->paused()) grant(*w);
    } else {
      w->reactor->post([this, w] {
        if (w->listener->paused()) grant(*w);
      });
    }
  }
}

void TcpServer::Worker::on_connection_finished(Connection& conn) {
  auto it = connections.find(&conn);
  if (it == connections.end()) return;
  reactor->retire(std::move(it->second));
  connections.erase(it);
  size_t before = server->open_.fetch_sub(1, std::memory_order_relaxed);
  if (server->options_.max_connections > 0 && before == server->options_.max_connections)
    server->regrant_all();
}

}  // namespace weir::net
