// core/metrics.h — counters, gauges and histograms with per-thread shards, rendered in the
// Prometheus text exposition format.
//
// Each reactor thread writes its own cache-line-sized shard, so counting a frame on the hot
// path never bounces a cache line between cores; a scrape sums the shards. Metrics are
// usually namespace-scope objects that register themselves at static initialisation.
//
// One family may be declared in several files (weir_limit_refusals_total is counted by the
// server, the HTTP layer and the rooms, each with its own label): declare it with the same
// name, type and help text everywhere. The rendering keeps the exposition valid whatever the
// declarations: HELP and TYPE once per family (the first declaration's), help text escaped, a
// series declared twice with the same labels rendered once with the sum of both (counters,
// gauges; a histogram's first declaration wins), and a declaration whose type contradicts its
// family's left out (and logged once).
//
// Thread-safety: inc/add/observe from any thread; render from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace weir::core {

constexpr int kMetricShards = 64;

// Binds the calling thread to shard `index` (reactor threads use their index).
void set_metrics_shard(int index);
int metrics_shard();

class Metric {
 public:
  enum class Type { kCounter, kGauge, kHistogram };
  Metric(Type type, std::string name, std::string help, std::string labels);
  Metric(const Metric&) = delete;
  Metric& operator=(const Metric&) = delete;
  virtual ~Metric();

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::string& labels() const { return labels_; }
  Type type() const { return type_; }
  virtual void render_samples(std::string& out) const = 0;
  // A counter's or gauge's value as rendered (NaN for a histogram), to merge duplicates.
  virtual double scalar_value() const;
  // One sample with this metric's name and labels and `value`.
  void render_value(std::string& out, double value) const { render_sample(out, "", "", value); }

 protected:
  void render_sample(std::string& out, std::string_view suffix, std::string_view extra_label,
                     double value) const;

 private:
  Type type_;
  std::string name_, help_, labels_;
};

class Counter : public Metric {
 public:
  // `scale` divides the rendered value: count milliseconds, expose seconds with scale 1000.
  Counter(std::string name, std::string help, std::string labels = "", double scale = 1)
      : Metric(Type::kCounter, std::move(name), std::move(help), std::move(labels)),
        scale_(scale) {}
  // A counter computed at scrape time, e.g. a total kept for compatibility that sums labelled
  // series, so the hot path increments one counter, not two. Never inc() it.
  Counter(std::string name, std::string help, std::string labels, std::function<uint64_t()> read)
      : Metric(Type::kCounter, std::move(name), std::move(help), std::move(labels)),
        scale_(1),
        read_(std::move(read)) {}
  void inc(uint64_t n = 1) {
    shards_[metrics_shard()].value.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t value() const;
  void render_samples(std::string& out) const override;
  double scalar_value() const override { return static_cast<double>(value()) / scale_; }

 private:
  struct alignas(64) Shard {
    std::atomic<uint64_t> value{0};
  };
  Shard shards_[kMetricShards];
  double scale_;
  std::function<uint64_t()> read_;
};

class Gauge : public Metric {
 public:
  Gauge(std::string name, std::string help, std::string labels = "")
      : Metric(Type::kGauge, std::move(name), std::move(help), std::move(labels)) {}
  // A gauge whose value is computed at scrape time (memory in use, members of rooms...).
  Gauge(std::string name, std::string help, std::string labels, std::function<double()> read)
      : Metric(Type::kGauge, std::move(name), std::move(help), std::move(labels)),
        read_(std::move(read)) {}
  void add(int64_t n) { shards_[metrics_shard()].value.fetch_add(n, std::memory_order_relaxed); }
  void inc() { add(1); }
  void dec() { add(-1); }
  double value() const;
  void render_samples(std::string& out) const override;
  double scalar_value() const override { return value(); }

 private:
  struct alignas(64) Shard {
    std::atomic<int64_t> value{0};
  };
  Shard shards_[kMetricShards];
  std::function<double()> read_;
};

// Cumulative histogram over fixed upper bounds (plus +Inf).
class Histogram : public Metric {
 public:
  Histogram(std::string name, std::string help, std::vector<double> bounds,
            std::string labels = "");
  ~Histogram() override;
  void observe(double value);
  uint64_t count() const;
  void render_samples(std::string& out) const override;
  // Exponential bounds: start, start*factor, ... (count bounds).
  static std::vector<double> exponential(double start, double factor, int count);

 private:
  struct Shard;
  std::vector<double> bounds_;
  Shard* shards_;
};

// Renders every registered metric (HELP and TYPE once per name). Thread-safe.
std::string render_metrics();
// Finds a registered metric's summed value by name and labels (tests, the load tool). Thread-safe.
bool find_metric_value(std::string_view name, std::string_view labels, double* value);

}  // namespace weir::core
