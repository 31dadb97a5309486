// tools/load/histogram.cc — bucket arithmetic and percentiles.
#include "tools/load/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace weir::load {

// Values below 2^5 map to themselves. A value with its highest set bit at m >= 5 lands in
// group m - 4, at the sub-bucket given by the 5 bits below that highest bit.
size_t Histogram::bucket_of(uint64_t value) {
  if (value < kSubBuckets) return static_cast<size_t>(value);
  int msb = 63 - std::countl_zero(value);
  int shift = msb - kSubBucketBits;
  uint64_t group = static_cast<uint64_t>(shift) + 1;
  uint64_t sub = (value >> shift) - kSubBuckets;
  return static_cast<size_t>(group * kSubBuckets + sub);
}

uint64_t Histogram::bucket_low(size_t index) {
  if (index < kSubBuckets) return index;
  uint64_t group = index / kSubBuckets;
  uint64_t sub = index % kSubBuckets;
  return (kSubBuckets + sub) << (group - 1);
}

uint64_t Histogram::bucket_high(size_t index) {
  if (index < kSubBuckets) return index;
  uint64_t group = index / kSubBuckets;
  return bucket_low(index) + ((uint64_t{1} << (group - 1)) - 1);
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::reset() {
  *this = Histogram();
}

uint64_t Histogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(bucket_high(i), min_, max_);
  }
  return max_;
}

}  // namespace weir::load
