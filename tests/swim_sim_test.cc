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
  c.duration_ms = 2500;
  c.converge_timeout_ms = 1000;
  return c;
}

// One run shared by the tests below: it takes the whole 2.5 s.
const SimResult& tiny_run() {
  static const SimResult result = run_simulation(tiny_cluster());
  return result;
}

// Suspicion timeout for 8 nodes: 4 * max(1, log10 8) * 100 ms = 400 ms. A probe reaches the
// killed node within a round (7 probes, 100 ms apart, spread over 7 nodes), so everyone should
// call it dead well within 1.2 s of the kill (the run goes on 1.5 s after it at least).
TEST(SwimSim, KilledNodeIsDeclaredDeadByEveryLiveNodeWithinBound) {
  const SimResult& r = tiny_run();
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_TRUE(r.converged);
  EXPECT_LT(r.converge_s, 1.0);
  ASSERT_EQ(r.killed.size(), 1u);
  EXPECT_EQ(r.killed[0].observers, 7);
  EXPECT_EQ(r.undetected_pairs, 0u);
  EXPECT_EQ(r.detection_s.count, 7u);
  EXPECT_GE(r.detection_s.min, 0.4);  // never before the suspicion timeout
  EXPECT_LT(r.detection_s.max, 1.2);
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
