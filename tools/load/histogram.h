// tools/load/histogram.h — a log-linear latency histogram (HdrHistogram's bucket layout):
// exact below 32, then 32 linear sub-buckets per power of two, so any recorded value is
// reported within 1/32 (~3%) of itself at every magnitude from nanoseconds to hours.
//
// Recording is one shift, one add and a bounds-free array increment: cheap enough to do per
// message on a reactor thread. Merging is element-wise, so each thread keeps its own and the
// main thread sums them.
//
// Thread-safety: none; a plain value. Threads exchange copies, never share one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace weir::load {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 5;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;
  // One group of kSubBuckets for the exact range, then one per power of two from 2^5 to 2^63.
  static constexpr size_t kBucketCount = (64 - kSubBucketBits + 1) * kSubBuckets;

  void record(uint64_t value) {
    counts_[bucket_of(value)]++;
    count_++;
    sum_ += value;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }
  void merge(const Histogram& other);
  void reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
  // The smallest value v such that at least `percent`% of the recorded values are <= v, to
  // within the bucket's width (the bucket's upper bound, clamped to the observed min/max).
  // 0 when empty.
  uint64_t percentile(double percent) const;

  static size_t bucket_of(uint64_t value);
  static uint64_t bucket_low(size_t index);
  static uint64_t bucket_high(size_t index);

 private:
  std::array<uint64_t, kBucketCount> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;  // wraps only after ~584 years of nanoseconds
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace weir::load
