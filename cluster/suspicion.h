// cluster/suspicion.h — Lifeguard's dynamic suspicion timeout (memberlist's suspicion.go).
//
// A suspicion starts at `max` and shrinks towards `min` as independent confirmations arrive:
// suspect messages about the same member from distinct accusers. After n of the k expected
// confirmations the timeout is
//
//   max - (max - min) * log(n + 1) / log(k + 1)      (never below min; k = 0: min at once)
//
// so a member suspected by one node alone (maybe that node is the slow one) gets the long
// timeout and time to refute, and a member many nodes fail to reach is declared dead about as
// fast as plain SWIM would. The first accuser counts as no confirmation: it started it.
//
// Thread-safety: a plain value; owned by one Membership, used on its reactor thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace weir::cluster {

class Suspicion {
 public:
  Suspicion(std::string accuser, int k, int64_t min_ms, int64_t max_ms, int64_t start_ms);

  // The timeout after `n` of `k` confirmations, from the start of the suspicion.
  static int64_t timeout_ms(int n, int k, int64_t min_ms, int64_t max_ms);

  // Counts `accuser` once. True when it was a new confirmation (the deadline moved).
  bool confirm(const std::string& accuser);
  int confirmations() const { return n_; }
  int64_t timeout_ms() const { return timeout_ms(n_, k_, min_ms_, max_ms_); }
  // When the member is to be declared dead, on the reactor clock.
  int64_t deadline_ms() const { return start_ms_ + timeout_ms(); }

 private:
  int k_;
  int64_t min_ms_, max_ms_, start_ms_;
  int n_ = 0;
  std::vector<std::string> accusers_;  // at most k + 1: a linear search is the cheapest
};

}  // namespace weir::cluster
