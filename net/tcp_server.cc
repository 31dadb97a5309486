// net/tcp_server.cc — reactor threads, listeners and the connection limit.
#include "net/tcp_server.h"

#include <unistd.h>

#include <future>

#include "core/log.h"
#include "core/metrics.h"

namespace weir::net {
namespace {

core::Counter g_limited("weir_max_connections_reached_total",
                        "Times a listener paused because --max-connections was reached");
// The same family as the rooms' limit="rooms_per_connection" (cluster/member.cc): one name,
// one help text.
core::Counter g_ip_refused("weir_limit_refusals_total", "Requests refused by a limit, by limit",
                           "limit=\"connections_per_ip\"");

// Signals the end of the loop iteration it was queued in: late hooks run after the early
// ones (the rooms' outboxes) and after the connections' flushes queued before it.
class IterationFence : public core::IterationHook {
 public:
  explicit IterationFence(std::promise<void>* done) : done_(done) {}
  void on_end_of_iteration() override {
    done_->set_value();
    delete this;  // the reactor forgot the hook before calling it
  }

 private:
  std::promise<void>* done_;
};

// A refused connection when no refusal handler was given: closed at once, input ignored.
class ClosingHandler : public ConnectionHandler {
 public:
  void on_data(Connection&, char*, size_t) override {}
  void on_closed(Connection&, CloseReason, std::string_view) override {}
};

}  // namespace

TcpServer::TcpServer(TcpServerOptions options, HandlerFactory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {
  if (options_.max_connections_per_ip > 0)
    per_ip_ = std::make_unique<ConnectionsPerIp>(options_.max_connections_per_ip,
                                                 options_.ip_limit_v6_prefix);
  if (options_.accept_rate > 0)
    accept_rate_ = std::make_unique<AcceptRate>(options_.accept_rate, options_.accept_burst);
}

TcpServer::~TcpServer() {
  stop();
}

bool TcpServer::start(std::string* error) {
  SocketAddress addr = options_.listen;
  for (int i = 0; i < options_.threads; ++i) {
    auto worker = std::make_unique<Worker>();
    worker->server = this;
    worker->reactor = std::make_unique<core::Reactor>(i, options_.tick_ms);
    Worker* w = worker.get();
    worker->listener =
        std::make_unique<Listener>(*worker->reactor, [this, w](int fd) { on_accept(*w, fd); });
    worker->listener->set_pull_mode(options_.max_connections > 0);
    worker->listener->set_accept_rate(accept_rate_.get());
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
      for (auto& [conn, held] : w->connections) held.connection->abort();
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
  if (!started_) return;
  std::vector<std::promise<void>> closed(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    w->reactor->post([w, done = &closed[i]] {
      w->listener->close();
      done->set_value();
    });
  }
  for (auto& done : closed) done.get_future().wait();
}

void TcpServer::run_on_every_thread(const ThreadVisitor& fn) {
  if (!started_) return;
  std::vector<std::promise<void>> done(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    w->reactor->post([w, &fn, fence = &done[i]] {
      std::vector<Connection*> connections;
      connections.reserve(w->connections.size());
      for (auto& [conn, held] : w->connections) connections.push_back(conn);
      fn(*w->reactor, connections);
      w->reactor->on_end_of_iteration(new IterationFence(fence));
    });
  }
  for (auto& fence : done) fence.get_future().wait();
}

void TcpServer::on_accept(Worker& worker, int fd) {
  open_.fetch_add(1, std::memory_order_relaxed);
  auto conn = std::make_unique<Connection>(*worker.reactor, fd, options_.connection, &worker);
  Connection* raw = conn.get();
  bool admitted = !per_ip_ || per_ip_->try_acquire(raw->peer());
  worker.connections.emplace(raw, Held{std::move(conn), per_ip_ && admitted});
  if (admitted)
    raw->set_handler(factory_(*raw));
  else
    refuse(worker, *raw);
  if (options_.max_connections > 0 && worker.listener->paused()) grant(worker);
}

// Over --max-connections-per-ip: counted, logged at most once a second per thread (a flood
// must not flood the log), and handed to the refusal handler.
void TcpServer::refuse(Worker& worker, Connection& conn) {
  g_ip_refused.inc();
  if (worker.reactor->now_ms() - worker.last_refusal_log_ms >= 1000) {
    worker.last_refusal_log_ms = worker.reactor->now_ms();
    log_warn("connection from %s refused: it holds --max-connections-per-ip (%u) already",
             conn.peer().to_string().c_str(), options_.max_connections_per_ip);
  }
  if (refusal_factory_) return conn.set_handler(refusal_factory_(conn));
  conn.set_handler(std::make_unique<ClosingHandler>());
  conn.close();
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
  if (it->second.counted_for_ip) server->per_ip_->release(conn.peer());
  reactor->retire(std::move(it->second.connection));
  connections.erase(it);
  size_t before = server->open_.fetch_sub(1, std::memory_order_relaxed);
  if (server->options_.max_connections > 0 && before == server->options_.max_connections)
    server->regrant_all();
}

}  // namespace weir::net
