// cluster/awareness.h — Lifeguard's Local Health Multiplier: how much this node trusts its own
// timing (Dadgar et al., "Lifeguard: Local Health Awareness for More Accurate Failure
// Detection"; memberlist's awareness.go).
//
// A node that misses acks, fails probes or has to refute suspicions about itself is more
// likely slow itself (overloaded, paused, its network dropping) than surrounded by dead
// members. Its score rises on such evidence and falls on every successful probe; its probe
// interval and probe timeout are stretched by (score + 1), so a sick node probes less often,
// waits longer for acks and accuses others less. The score stays in [0, max - 1]: max 1
// turns the multiplier off.
//
// Thread-safety: a plain value; owned by one Membership, used on its reactor thread.
#pragma once

#include <algorithm>
#include <cstdint>

namespace weir::cluster {

class Awareness {
 public:
  explicit Awareness(int max) : max_(std::max(max, 1)) {}

  void apply_delta(int delta) { score_ = std::clamp(score_ + delta, 0, max_ - 1); }
  int score() const { return score_; }
  int64_t scale(int64_t timeout_ms) const { return timeout_ms * (score_ + 1); }

 private:
  int max_;
  int score_ = 0;
};

}  // namespace weir::cluster
