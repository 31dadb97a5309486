// net/tcp_server.h — N reactor threads, each with its own SO_REUSEPORT listener and the
// connections it accepted (shared-nothing: a connection never leaves its thread).
//
// --max-connections is enforced with pull accepting: each listener is granted only the
// connections still available; when the server is full the listeners pause, and a close
// anywhere grants them again. --accept-rate makes the listeners wait the same way while a
// shared budget is spent (net/accept_rate.h).
//
// --max-connections-per-ip is checked at accept against a table shared by all threads
// (net/ip_limits.h says why not per thread): a connection over it is handed to the refusal
// handler (weir's answers HTTP 503 naming the limit) and does not count for its address.
//
// Drain: stop_accepting() closes every listener (new connections are then refused by the
// kernel) and run_on_every_thread() lets the layer above visit each thread's connections.
//
// Thread-safety: start(), stop(), stop_accepting() and run_on_every_thread() from the owning
// (main) thread; open_connections() from any thread; everything else runs on the reactor
// threads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/reactor.h"
#include "net/accept_rate.h"
#include "net/address.h"
#include "net/connection.h"
#include "net/ip_limits.h"
#include "net/listener.h"

namespace weir::net {

struct TcpServerOptions {
  SocketAddress listen;
  int threads = 1;
  size_t max_connections = 0;                 // 0: unlimited
  uint32_t max_connections_per_ip = 0;        // 0: unlimited
  int ip_limit_v6_prefix = kDefaultV6Prefix;  // IPv6 clients counted per this prefix
  double accept_rate = 0;                     // connections per second (0: unlimited)
  double accept_burst = 0;                    // admitted at once before the rate applies
  int backlog = 4096;
  int64_t tick_ms = 10;
  ConnectionOptions connection;
};

class TcpServer {
 public:
  // Creates the handler for a freshly accepted connection (on the connection's thread).
  using HandlerFactory = std::function<std::unique_ptr<ConnectionHandler>(Connection&)>;
  // Runs on each reactor thread before it serves connections (per-thread state setup).
  using ThreadInit = std::function<void(core::Reactor&)>;

  TcpServer(TcpServerOptions options, HandlerFactory factory);
  ~TcpServer();
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  void set_thread_init(ThreadInit init) { thread_init_ = std::move(init); }
  // The handler for a connection over --max-connections-per-ip (it answers and closes).
  // Without one such a connection is closed at once. Before start().
  void set_refusal_factory(HandlerFactory factory) { refusal_factory_ = std::move(factory); }
  // Binds every listener (port 0 picks one port for all) and starts the threads.
  bool start(std::string* error);
  // Stops accepting, aborts what is still open, joins the threads. Idempotent.
  void stop();

  uint16_t port() const { return port_; }
  int threads() const { return static_cast<int>(workers_.size()); }
  core::Reactor& reactor(int i) { return *workers_[i]->reactor; }
  size_t open_connections() const { return open_.load(std::memory_order_relaxed); }
  // Closes every listener, each on its thread; returns once all are closed. From then on
  // connecting clients are refused by the kernel (and what waited in a backlog is reset).
  void stop_accepting();
  // Runs `fn` on each reactor thread with the connections that thread holds, and returns once
  // every thread has also finished that loop iteration: its end-of-iteration hooks ran, so
  // whatever `fn` queued (writes, room traffic to other threads) has left the thread.
  using ThreadVisitor = std::function<void(core::Reactor&, const std::vector<Connection*>&)>;
  void run_on_every_thread(const ThreadVisitor& fn);

 private:
  struct Held {
    std::unique_ptr<Connection> connection;
    bool counted_for_ip = false;  // holds a --max-connections-per-ip slot of its address
  };
  struct Worker : public ConnectionOwner {
    TcpServer* server = nullptr;
    std::unique_ptr<core::Reactor> reactor;
    std::unique_ptr<Listener> listener;
    std::unordered_map<Connection*, Held> connections;
    std::thread thread;
    int64_t last_refusal_log_ms = -1000000;
    void on_connection_finished(Connection& conn) override;
  };

  void on_accept(Worker& worker, int fd);
  void refuse(Worker& worker, Connection& conn);
  void grant(Worker& worker);
  void regrant_all();

  TcpServerOptions options_;
  HandlerFactory factory_;
  ThreadInit thread_init_;
  HandlerFactory refusal_factory_;
  std::unique_ptr<ConnectionsPerIp> per_ip_;
  std::unique_ptr<AcceptRate> accept_rate_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> open_{0};
  uint16_t port_ = 0;
  bool started_ = false;
};

}  // namespace weir::net
