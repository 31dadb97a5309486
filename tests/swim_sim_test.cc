// tests/swim_sim_test.cc — the SWIM simulation (tools/swim_sim/) on a tiny cluster: eight
// real Membership instances on one reactor over loopback UDP, probing every 100 ms.
#include <gtest/gtest.h>

#include "tools/swim_sim/sim_cluster.h"

namespace weir::swim_sim {
namespace {

SimConfig tiny_cluster() {
  SimConfig c;
  c.nodes = 8;
  c.kill = 1;
  c.probe_interval_ms = 100;
  c.probe_timeout_ms = 50;
  // Generous windows: on a loaded machine convergence and detection take longer, and the
  // properties below are about correctness, not speed (docs/benchmarks.md has the timings).
  c.duration_ms = 8000;
  c.converge_timeout_ms = 5000;
  return c;
}

// One run shared by the tests below: it takes the whole 8 s.
const SimResult& tiny_run() {
  static const SimResult result = run_simulation(tiny_cluster());
  return result;
}

// Suspicion timeout for 8 nodes: 4 * max(1, log10 8) * 100 ms = 400 ms at least, 6 times that
// (2.4 s) without confirmations (Lifeguard). Every live node must call the killed node dead
// before the run ends (about 1 s after the kill on a quiet machine, at least 3 s left even if
// convergence took its whole window), and none before the shortest suspicion timeout.
TEST(SwimSim, KilledNodeIsDeclaredDeadByEveryLiveNode) {
  const SimResult& r = tiny_run();
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_TRUE(r.converged);
  ASSERT_EQ(r.killed.size(), 1u);
  EXPECT_EQ(r.killed[0].observers, 7);
  EXPECT_EQ(r.undetected_pairs, 0u);
  EXPECT_EQ(r.detection_s.count, 7u);
  EXPECT_GE(r.detection_s.min, 0.4);  // never before the suspicion timeout
  EXPECT_GE(r.killed[0].first_suspect_s, 0.0);
  EXPECT_LE(r.killed[0].first_suspect_s, r.detection_s.min);
}

TEST(SwimSim, NoLiveNodeIsDeclaredDeadWithoutLoss) {
  const SimResult& r = tiny_run();
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.false_dead.episodes, 0u);
  EXPECT_EQ(r.false_dead.declarations, 0u);
  EXPECT_GT(r.probes, 100u);
  EXPECT_GT(r.steady_bytes_out_per_node_s, 0);
}

TEST(SwimSim, DistributionUsesNearestRank) {
  Distribution d = distribution_of({5, 1, 4, 2, 3});
  EXPECT_EQ(d.count, 5u);
  EXPECT_EQ(d.min, 1);
  EXPECT_EQ(d.median, 3);
  EXPECT_EQ(d.p99, 5);
  EXPECT_EQ(d.max, 5);
  EXPECT_EQ(distribution_of({}).count, 0u);
}

}  // namespace
}  // namespace weir::swim_sim
