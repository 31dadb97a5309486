// net/tcp_server.h — N reactor threads, each with its own SO_REUSEPORT listener and the
// connections it accepted (shared-nothing: a connection never leaves its thread).
//
// --max-connections is enforced with pull accepting: each listener is granted only the
// connections still available; when the server is full the listeners pause, and a close
// anywhere grants them again.
//
// Thread-safety: start() and stop() from the owning (main) thread; open_connections() from
// any thread; everything else runs on the reactor threads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/reactor.h"
#include "net/address.h"
#include "net/connection.h"
#include "net/listener.h"

namespace weir::net {

struct TcpServerOptions {
  SocketAddress listen;
  int threads = 1;
  size_t max_connections = 0;  // 0: unlimited
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
  // Binds every listener (port 0 picks one port for all) and starts the threads.
  bool start(std::string* error);
  // Stops accepting, aborts what is still open, joins the threads. Idempotent.
  void stop();

  uint16_t port() const { return port_; }
  int threads() const { return static_cast<int>(workers_.size()); }
  core::Reactor& reactor(int i) { return *workers_[i]->reactor; }
  size_t open_connections() const { return open_.load(std::memory_order_relaxed); }
  // Any thread: runs `fn` on every reactor thread with its listener (e.g. drain).
  void stop_accepting();

 private:
  struct Worker : public ConnectionOwner {
    TcpServer* server = nullptr;
    std::unique_ptr<core::Reactor> reactor;
    std::unique_ptr<Listener> listener;
    std::unordered_map<Connection*, std::unique_ptr<Connection>> connections;
    std::thread thread;
    void on_connection_finished(Connection& conn) override;
  };

  void on_accept(Worker& worker, int fd);
  void grant(Worker& worker);
  void regrant_all();

  TcpServerOptions options_;
  HandlerFactory factory_;
  ThreadInit thread_init_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<size_t> open_{0};
  uint16_t port_ = 0;
  bool started_ = false;
};

}  // namespace weir::net
