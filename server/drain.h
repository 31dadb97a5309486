// server/drain.h — the graceful drain that SIGTERM (and SIGINT) starts, lame-duck style.
//
// /readyz already answers 503 (the caller flips it first, so load balancers stop sending).
// Then, in order:
//
//   1. The listeners close on every thread: connecting clients are refused by the kernel.
//   2. Quiesce: every WebSocket session stops taking messages (what arrives is dropped, never
//      acknowledged); every HTTP response from now on carries Connection: close and closes
//      its connection, and upgrades are answered 503. Two more passes over every thread
//      let what was already taken finish: a publish read just before step 2 reaches its room's
//      owner in the first pass, and the owner's fanout reaches every member's queue in the
//      second (each pass waits for every thread's end-of-iteration hooks, where the rooms'
//      outboxes and fanouts run). So every message a publisher saw acknowledged is queued,
//      ahead of the close frame, to every member of its room.
//   3. Lame duck: the sessions are closed with 1001 in slices of about 100 ms spread over
//      --drain-spread, each thread its own share, so their clients do not all reconnect to
//      the other nodes at once. The close reason carries a jittered hint,
//      {"reason":"server draining","reconnect_after_ms":N} with N uniform in
//      [0, max(1 s, --drain-spread)].
//   4. Queued output flows until --drain-timeout after the signal; connections still open
//      then are left to the caller, which aborts them (TcpServer::stop()).
//
// Idle keep-alive HTTP connections stay open until the last slice (a load balancer probing
// /readyz over one reads the 503), and every response during the drain closes its connection.
// Without WebSocket sessions there is nothing to spread and the drain takes no longer than
// the responses it owes. A second SIGTERM/SIGINT cuts any wait short.
//
// Thread-safety: run() from the main thread, once; it reaches the reactors only through
// TcpServer::run_on_every_thread.
#pragma once

#include <cstdint>
#include <functional>

#include "net/tcp_server.h"

namespace weir::server {

struct DrainOptions {
  int64_t spread_ms = 5000;    // closes of WebSocket sessions spread over this
  int64_t timeout_ms = 30000;  // from the signal: output flows until then
  int64_t slice_ms = 100;      // one slice of closes per this, per thread
};

// Waits up to `ms`; true when a second stop signal arrived (then the drain ends at once).
using Interrupted = std::function<bool(int64_t ms)>;

// The reconnect hint sent as the close reason: `{"reason":"server draining",
// "reconnect_after_ms":N}` (at most 123 bytes, the close frame's room for a reason).
std::string reconnect_hint(int64_t reconnect_after_ms);

// How many of `sessions` should be closed once slice `slice` (0-based) of `slices` is done:
// ceil(sessions * (slice + 1) / slices), so the last slice closes what is left.
size_t closes_due(size_t sessions, int slice, int slices);

class Drain {
 public:
  Drain(net::TcpServer& server, DrainOptions options) : server_(server), options_(options) {}

  // Runs steps 1-4; returns the connections still open (the caller aborts them).
  size_t run(const Interrupted& interrupted);

 private:
  void quiesce();
  bool close_in_slices(int slices, int64_t deadline_ms, const Interrupted& interrupted);

  net::TcpServer& server_;
  DrainOptions options_;
  std::vector<size_t> sessions_;  // per thread, open at the quiesce
  std::vector<size_t> closed_;    // per thread, closed by the drain so far
};

}  // namespace weir::server
