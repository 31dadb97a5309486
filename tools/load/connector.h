// tools/load/connector.h — outgoing connections of one reactor thread: non-blocking connects
// with a timeout (EPOLLOUT says connected, EPOLLERR or SO_ERROR says refused), then ownership
// of the net::Connection each successful connect becomes, until it finishes.
//
// A pending connect watches its descriptor itself; on success it hands the descriptor to a new
// Connection (which registers it again), so the Connection sees a connected socket, knows its
// peer, and the caller learns the connect time.
//
// Thread-safety: none; one connector per reactor thread, used on that thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "core/reactor.h"
#include "net/address.h"
#include "net/connection.h"

namespace weir::load {

class Connector : public net::ConnectionOwner {
 public:
  // Called once per connect(), never from inside connect(): the new connection (install a
  // handler on it) or nullptr and the reason it failed.
  using Done = std::function<void(net::Connection* conn, std::string_view error)>;

  Connector(core::Reactor& reactor, const net::ConnectionOptions& options);
  ~Connector() override;  // closes everything without calling back
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Connects to `target`, from `source` when given, with SO_RCVBUF `receive_buffer` when not
  // 0 (see dial()).
  void connect(const net::SocketAddress& target, const net::SocketAddress* source,
               int64_t timeout_ms, Done done, int receive_buffer = 0);

  size_t pending() const { return pending_.size(); }
  size_t connections() const { return connections_.size(); }
  core::Reactor& reactor() const { return reactor_; }

  void on_connection_finished(net::Connection& conn) override;

 private:
  class Pending;
  void complete(Pending* pending, int fd, std::string_view error);

  core::Reactor& reactor_;
  net::ConnectionOptions options_;
  std::unordered_map<Pending*, std::unique_ptr<Pending>> pending_;
  std::unordered_map<uint64_t, std::unique_ptr<net::Connection>> connections_;
};

}  // namespace weir::load
