// cluster/suspicion.cc — the suspicion timeout's logarithmic shrinking with confirmations.
#include "cluster/suspicion.h"

#include <algorithm>
#include <cmath>

namespace weir::cluster {

Suspicion::Suspicion(std::string accuser, int k, int64_t min_ms, int64_t max_ms, int64_t start_ms)
    : k_(std::max(k, 0)), min_ms_(min_ms), max_ms_(std::max(max_ms, min_ms)), start_ms_(start_ms) {
  accusers_.push_back(std::move(accuser));
}

int64_t Suspicion::timeout_ms(int n, int k, int64_t min_ms, int64_t max_ms) {
  if (k < 1 || max_ms <= min_ms) return min_ms;
  double fraction = std::log(n + 1.0) / std::log(k + 1.0);
  double raw = static_cast<double>(max_ms) - fraction * static_cast<double>(max_ms - min_ms);
  return std::max(min_ms, static_cast<int64_t>(std::floor(raw)));
}

bool Suspicion::confirm(const std::string& accuser) {
  if (n_ >= k_) return false;
  if (std::find(accusers_.begin(), accusers_.end(), accuser) != accusers_.end()) return false;
  accusers_.push_back(accuser);
  n_++;
  return true;
}

}  // namespace weir::cluster
