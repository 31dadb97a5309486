// tools/load/relay.h — a throttling TCP relay (ip_relay's job): accepts clients, connects each
// to the target, and forwards bytes both ways through a token bucket per direction of each
// connection, so a client looks as if it sat behind a slow network link (the seed's scenario 2).
//
// A direction reads from its source only as many bytes as its bucket holds (at most one 16 KiB
// chunk), writes them on, and reads again only after they were all written: the relay itself
// buffers at most one chunk per direction, so what the slow link cannot carry backs up into the
// sender's TCP buffers, as on a real network. A FIN is passed on (half-close) once the bytes
// before it are; an error on either side ends both.
//
// The bandwidth is read from a RelayControl whenever its generation changes (checked every
// 20 ms), so stdin, signals or a schedule change it while connections are open.
//
// Thread-safety: a RelayWorker and its connections live on one reactor thread; port() and
// listen_error() may be read by the thread that started it once start() has run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "net/address.h"
#include "net/listener.h"
#include "tools/load/load_worker.h"
#include "tools/load/relay_control.h"
#include "tools/load/run_support.h"

namespace weir::load {

class RelayWorker final : public Worker {
 public:
  static constexpr size_t kChunk = 16 * 1024;
  static constexpr int64_t kControlPollMs = 20;

  // Counters: connects_started/connections_opened/connections_open count relayed connections,
  // connect_failures the target refusing; bytes_sent is client -> target ("up") and
  // bytes_received target -> client ("down"), counted as written.
  RelayWorker(core::Reactor& reactor, const net::SocketAddress& listen,
              const net::SocketAddress& target, RelayControl* control, ErrorLog* errors);
  ~RelayWorker() override;

  void start() override;
  void sample(Sample* out) override;

  uint16_t port() const { return port_; }
  const std::string& listen_error() const { return listen_error_; }
  double bandwidth() const { return bandwidth_; }

 private:
  class Pair;
  friend class Pair;

  void accept(int fd);
  void poll_control();
  void finished(Pair* pair);

  core::Reactor& reactor_;
  net::SocketAddress listen_addr_;
  net::SocketAddress target_;
  RelayControl* control_;
  ErrorLog* errors_;
  net::Listener listener_;
  uint16_t port_ = 0;
  std::string listen_error_;
  double bandwidth_ = 0;
  uint64_t generation_ = 0;
  core::Timer control_timer_;
  LoadCounters counters_;
  std::unordered_map<Pair*, std::unique_ptr<Pair>> pairs_;
};

}  // namespace weir::load
