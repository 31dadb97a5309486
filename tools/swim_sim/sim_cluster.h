// tools/swim_sim/sim_cluster.h — many SWIM Membership instances in one process, on one
// reactor over loopback UDP, with random datagram loss; measures convergence, failure
// detection, false positives and gossip traffic (issue 6's simulation).
//
// Every node is a real cluster::Membership with its own UDP socket on 127.0.0.1, so the
// protocol code, codec, HMAC and timers are exactly the server's. All nodes share one reactor
// (one thread): a node is one socket and five timers, and one core runs a thousand of them.
// Loss is the Membership packet filter: each datagram is lost with probability `loss`, drawn
// from one seeded generator, half of it (in the sense 1 - sqrt(1 - loss)) on the sending
// side and half on the receiving side. Membership's own choices (probe order, helpers) use
// its own unseeded generator, so two runs with one seed are alike, not identical.
//
// Timeline: node 0 (the seed) starts at once, the others start spread evenly over
// `start_spread_ms` and join through the first `seeds` nodes. When every running node lists
// every other one alive (converged), or at `converge_timeout_ms`, `kill` random non-seed nodes
// are stopped abruptly (Membership::stop(), nobody told). The run ends `duration_ms` after the
// start. Times come from the reactor's clock (10 ms timer ticks).
//
// Thread-safety: run_simulation() blocks the calling thread, which becomes the reactor thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace weir::swim_sim {

struct SimConfig {
  int nodes = 10;
  double loss = 0;  // probability that a datagram is lost, 0..1
  int64_t probe_interval_ms = 1000;
  int64_t probe_timeout_ms = 500;
  int suspicion_mult = 4;
  int suspicion_max_mult = 6;  // Lifeguard (1: a fixed suspicion timeout, plain SWIM)
  int awareness_max = 8;       // Lifeguard (1: no local health multiplier)
  int64_t push_pull_interval_ms = 30000;
  int64_t rejoin_interval_ms = 30000;
  int64_t duration_ms = 30000;      // the whole run, from the start of the first node
  int64_t converge_timeout_ms = 0;  // kill anyway at this time; 0: half of duration_ms
  int64_t start_spread_ms = -1;     // -1: one probe interval
  int kill = 1;                     // nodes stopped abruptly after convergence
  int seeds = 1;                    // nodes 0..seeds-1 are every node's --join list
  uint64_t seed = 1;                // the loss and kill-choice generator
};

// Seconds; empty when count == 0.
struct Distribution {
  size_t count = 0;
  double min = 0, median = 0, p99 = 0, max = 0;
};
Distribution distribution_of(std::vector<double> samples);

struct KilledNode {
  std::string node_id;
  int observers = 0;            // live nodes that should declare it dead
  Distribution dead_s;          // each observer's time from the kill to its kDead event
  double first_suspect_s = -1;  // earliest suspicion by anyone after the kill; -1: none
};

// A wrong verdict about a node that was running: "episodes" count distinct (node,
// incarnation) verdicts, however many observers heard them; "declarations" count every
// observer's event; "nodes" count distinct accused nodes.
struct FalsePositives {
  uint64_t episodes = 0;
  uint64_t declarations = 0;
  uint64_t nodes = 0;
};

struct SimResult {
  SimConfig config;
  double run_s = 0;
  bool converged = false;
  double converge_s = -1;  // -1: never
  double kill_at_s = -1;
  double alive_pairs_at_kill = 0;  // share of (node, other node) pairs listed alive at the kill
  std::vector<KilledNode> killed;
  Distribution detection_s;        // all (observer, killed node) pairs pooled
  Distribution first_suspicion_s;  // one sample per killed node
  size_t undetected_pairs = 0;     // observers that never declared a killed node dead
  FalsePositives false_dead;
  FalsePositives false_suspect;
  double live_node_hours = 0;  // running nodes x run time, the false positives' denominator
  // Traffic (MembershipStats): bytes each node sent per second over the whole run, and over the
  // steady part (after convergence, live nodes only).
  double bytes_out_per_node_s = 0;
  double steady_bytes_out_per_node_s = 0;
  uint64_t probes = 0;
  uint64_t probe_failures = 0;
  uint64_t suspicions = 0;
  uint64_t refutations = 0;
  uint64_t dropped_by_filter = 0;
  uint64_t kernel_rcvbuf_errors = 0;  // /proc/net/snmp Udp RcvbufErrors delta (machine-wide)
  double cpu_percent = 0;             // this process's CPU over the run, % of one core
  int64_t max_timer_lateness_ms = 0;  // how late the 20 ms check timer ran at worst
  std::string error;                  // non-empty: the run could not start
};

SimResult run_simulation(const SimConfig& config);

}  // namespace weir::swim_sim
