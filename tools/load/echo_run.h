// tools/load/echo_run.h — the echo scenario, shared by `echo` (WebSocket) and `tcp-echo` (raw
// TCP): N connections each keep D messages in flight; every echo is verified byte for byte
// and its round trip recorded; the main thread samples each second and reports.
//
// Two ways to pace: by depth (each echo that comes back lets the next message go; the server
// sets the rate) or, with --rate, on a schedule (EchoPacer): a timerfd wakes the worker at
// each message's scheduled time, the message goes to the next connection round-robin, and its
// round trip counts from the scheduled time. A 10 ms timer tick, as fanout uses, would add up
// to 10 ms to every such round trip; the timerfd keeps what the tool adds to its own wake-up.
//
// Phases: connect (all connections opened or --connect-timeout), warmup (load, not counted),
// measure (--seconds), drain (no new messages; in-flight echoes still verified, up to 2 s),
// close. Each transport supplies an EchoSession: how to connect, frame, and close.
//
// Thread-safety: an EchoWorker and its sessions live on one reactor thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/reactor.h"
#include "net/connection.h"
#include "tools/load/connector.h"
#include "tools/load/echo_pacer.h"
#include "tools/load/echo_payload.h"
#include "tools/load/load_worker.h"
#include "tools/load/options.h"
#include "tools/load/run_support.h"
#include "tools/load/ws_client.h"

namespace weir::load {

class EchoWorker;

// One connection's echo pipeline; the transport subclass moves the bytes.
class EchoSession {
 public:
  explicit EchoSession(EchoWorker& worker);
  virtual ~EchoSession() = default;
  EchoSession(const EchoSession&) = delete;
  EchoSession& operator=(const EchoSession&) = delete;

  virtual void connect() = 0;
  // The run is over: end politely (WebSocket close handshake, TCP FIN).
  virtual void close() = 0;
  // The connect phase is over: give up on a connection that has not opened.
  virtual void abort_if_unopened() = 0;

  // Sends until `depth` messages are in flight (while the run is sending, paced by depth).
  void fill_pipeline();
  // --rate: sends one message scheduled at `scheduled_ns` (monotonic); false when it cannot
  // go (not open, or more than EchoPacer::kMaxQueued unsent bytes): the caller holds it back.
  bool send_scheduled(int64_t scheduled_ns);
  bool is_open() const { return open_; }

 protected:
  // Room for one message's payload, then sends it; false when the transport refused.
  virtual char* prepare(size_t len) = 0;
  virtual bool transmit(size_t len) = 0;
  // Bytes accepted by the transport and not yet written to the socket.
  virtual size_t queued_bytes() const { return 0; }

  void opened();
  // The connection ended; `was_open` false means it never opened (a connect failure).
  void ended(bool was_open, const std::string& why);
  void on_echo(EchoVerifier::Echo echo);

  EchoWorker& worker_;
  EchoVerifier verifier_;

 private:
  // Writes and sends message next_seq_ stamped `send_ns` after the run's epoch.
  bool send_one(uint64_t send_ns);

  uint64_t next_seq_ = 0;
  int in_flight_ = 0;
  bool open_ = false;
};

class EchoWorker : public Worker, private core::IoHandler {
 public:
  using SessionFactory = std::function<std::unique_ptr<EchoSession>(EchoWorker&)>;

  EchoWorker(core::Reactor& reactor, const Options& options, int connections, int index,
             int64_t epoch_ns, ErrorLog* errors, SessionFactory factory);
  ~EchoWorker() override;

  void start() override;
  void sample(Sample* out) override;
  void start_sending();
  void stop_sending();
  void close_all();
  void abort_unopened();

  const Options& options() const { return options_; }
  const EchoPattern& pattern() const { return pattern_; }
  ClientContext& context() { return context_; }
  Connector& connector() { return connector_; }
  LoadCounters& counters() { return counters_; }
  Histogram& latency() { return latency_; }
  ErrorLog& errors() { return *errors_; }
  bool sending() const { return sending_; }
  bool closing() const { return closing_; }
  // --rate: messages go out on the schedule, not as echoes return.
  bool scheduled() const { return rate_ > 0; }
  int64_t epoch_ns() const { return epoch_ns_; }

 private:
  // The pacing timerfd fired: send what is due, then arm it for the next message.
  void on_io(uint32_t events) override;
  void send_due(int64_t now_ns);
  void arm_pacer(int64_t at_ns);
  EchoSession* next_open_session();

  core::Reactor& reactor_;
  const Options& options_;
  int connections_;
  int64_t epoch_ns_;
  ErrorLog* errors_;
  SessionFactory factory_;
  EchoPattern pattern_;
  ClientContext context_;
  LoadCounters counters_;
  Histogram latency_;
  bool sending_ = false;
  bool closing_ = false;
  double rate_;  // this thread's share of --rate, messages/s; 0 = paced by depth
  std::unique_ptr<EchoPacer> pacer_;
  int pace_fd_ = -1;  // timerfd on CLOCK_MONOTONIC (the clock of core::monotonic_ns)
  size_t next_session_ = 0;
  std::vector<std::unique_ptr<EchoSession>> sessions_;
  Connector connector_;  // after sessions_: connections (and their handlers) go first
};

// Runs the scenario with `factory`'s transport and prints the report; returns the exit code.
int run_echo_load(const Options& options, EchoWorker::SessionFactory factory);

// Connection options for load clients: no output limit (depth bounds what is queued), a short
// linger so shutdown is quick.
net::ConnectionOptions client_connection_options();

}  // namespace weir::load
