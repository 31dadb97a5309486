// tools/load/token_bucket.cc — refill arithmetic.
#include "tools/load/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace weir::load {
namespace {

double burst_for(double rate) {
  return std::max(rate / 20.0, 256.0);
}

}  // namespace

TokenBucket::TokenBucket(double bytes_per_sec, int64_t now_ns)
    : rate_(std::max(bytes_per_sec, 0.0)), burst_(burst_for(rate_)), last_ns_(now_ns) {}

void TokenBucket::set_rate(double bytes_per_sec, int64_t now_ns) {
  refill(now_ns);
  rate_ = std::max(bytes_per_sec, 0.0);
  burst_ = burst_for(rate_);
  tokens_ = std::min(tokens_, burst_);
}

void TokenBucket::refill(int64_t now_ns) {
  if (now_ns > last_ns_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * static_cast<double>(now_ns - last_ns_) / 1e9);
    last_ns_ = now_ns;
  }
}

uint64_t TokenBucket::available(int64_t now_ns) {
  if (rate_ == 0) return kUnlimited;
  refill(now_ns);
  return static_cast<uint64_t>(std::floor(tokens_));
}

void TokenBucket::consume(uint64_t bytes) {
  if (rate_ == 0) return;
  tokens_ -= static_cast<double>(bytes);
}

int64_t TokenBucket::wait_ns(uint64_t bytes, int64_t now_ns) {
  if (rate_ == 0) return 0;
  refill(now_ns);
  double want = std::min(static_cast<double>(bytes), burst_);
  if (tokens_ >= want) return 0;
  return static_cast<int64_t>(std::ceil((want - tokens_) / rate_ * 1e9));
}

}  // namespace weir::load
