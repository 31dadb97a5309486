// core/metrics.cc — metric registry and Prometheus text rendering.
#include "core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

#include "core/log.h"

namespace weir::core {
namespace {

struct Registry {
  std::mutex mutex;  // guards registration and scraping, never the increments
  std::vector<Metric*> metrics;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: metrics may outlive static teardown
  return *r;
}

std::atomic<int> g_next_shard{kMetricShards / 2};
thread_local int t_shard = -1;

// The shortest text that parses back to exactly `value`, with Prometheus's spelling of the
// special values. Six significant digits (%g) would freeze a _sum past a million and blur
// le bounds like 1048576 into 1.04858e+06.
size_t format_value(char* out, size_t cap, double value) {
  std::string_view special;
  if (std::isnan(value))
    special = "NaN";
  else if (std::isinf(value))
    special = value > 0 ? "+Inf" : "-Inf";
  if (!special.empty()) {
    std::memcpy(out, special.data(), special.size());
    return special.size();
  }
  // Counts print as integers ("200000", not the shorter "2e+05") while they are exact.
  constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
  if (value == std::trunc(value) && std::fabs(value) < kExactIntegers)
    return static_cast<size_t>(std::to_chars(out, out + cap, static_cast<int64_t>(value)).ptr -
                               out);
  return static_cast<size_t>(std::to_chars(out, out + cap, value).ptr - out);
}

const char* type_name(Metric::Type type) {
  switch (type) {
    case Metric::Type::kCounter:
      return "counter";
    case Metric::Type::kGauge:
      return "gauge";
    case Metric::Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// HELP text as the format wants it: backslash and newline escaped (quotes are fine there).
void append_help(std::string& out, const std::string& help) {
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

// Renders one family (metrics[begin, end), all of one name, in declaration order).
void render_family(std::string& out, const std::vector<Metric*>& metrics, size_t begin, size_t end,
                   std::set<std::string>& conflicts_logged) {
  const Metric& first = *metrics[begin];
  out += "# HELP " + first.name() + " ";
  append_help(out, first.help());
  out += "\n# TYPE " + first.name() + " " + type_name(first.type()) + "\n";
  for (size_t i = begin; i < end; ++i) {
    const Metric& m = *metrics[i];
    if (m.type() != first.type()) {  // one family, one type: the later declaration is left out
      if (conflicts_logged.insert(m.name()).second)
        log_error("metric %s declared as %s and as %s; the second is not exposed", m.name().c_str(),
                  type_name(first.type()), type_name(m.type()));
      continue;
    }
    bool seen = false;  // the same series declared before: merged there
    for (size_t j = begin; j < i && !seen; ++j)
      seen = metrics[j]->type() == m.type() && metrics[j]->labels() == m.labels();
    if (seen) continue;
    if (m.type() == Metric::Type::kHistogram) {
      m.render_samples(out);
      continue;
    }
    double sum = m.scalar_value();
    bool twice = false;
    for (size_t j = i + 1; j < end; ++j) {
      if (metrics[j]->type() != m.type() || metrics[j]->labels() != m.labels()) continue;
      sum += metrics[j]->scalar_value();
      twice = true;
    }
    if (twice)
      m.render_value(out, sum);
    else
      m.render_samples(out);
  }
}

}  // namespace

double Metric::scalar_value() const {
  return NAN;
}

void set_metrics_shard(int index) {
  t_shard = index % kMetricShards;
}

int metrics_shard() {
  if (t_shard < 0) t_shard = g_next_shard.fetch_add(1, std::memory_order_relaxed) % kMetricShards;
  return t_shard;
}

Metric::Metric(Type type, std::string name, std::string help, std::string labels)
    : type_(type), name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {
  std::lock_guard lock(registry().mutex);
  registry().metrics.push_back(this);
}

Metric::~Metric() {
  std::lock_guard lock(registry().mutex);
  auto& v = registry().metrics;
  v.erase(std::remove(v.begin(), v.end(), this), v.end());
}

void Metric::render_sample(std::string& out, std::string_view suffix, std::string_view extra_label,
                           double value) const {
  out += name_;
  out += suffix;
  if (!labels_.empty() || !extra_label.empty()) {
    out += '{';
    out += labels_;
    if (!labels_.empty() && !extra_label.empty()) out += ',';
    out += extra_label;
    out += '}';
  }
  char number[64];
  out += ' ';
  out.append(number, format_value(number, sizeof number, value));
  out += '\n';
}

uint64_t Counter::value() const {
  if (read_) return read_();
  uint64_t sum = 0;
  for (const Shard& s : shards_) sum += s.value.load(std::memory_order_relaxed);
  return sum;
}

void Counter::render_samples(std::string& out) const {
  render_sample(out, "", "", static_cast<double>(value()) / scale_);
}

double Gauge::value() const {
  if (read_) return read_();
  int64_t sum = 0;
  for (const Shard& s : shards_) sum += s.value.load(std::memory_order_relaxed);
  return static_cast<double>(sum);
}

void Gauge::render_samples(std::string& out) const {
  render_sample(out, "", "", value());
}

struct Histogram::Shard {
  explicit Shard(size_t buckets) : counts(buckets + 1) {}
  std::vector<std::atomic<uint64_t>> counts;  // per bound, plus +Inf
  std::atomic<uint64_t> sum_bits{0};          // sum as a double, updated by its single writer
  char pad[64];
};

Histogram::Histogram(std::string name, std::string help, std::vector<double> bounds,
                     std::string labels)
    : Metric(Type::kHistogram, std::move(name), std::move(help), std::move(labels)),
      bounds_(std::move(bounds)) {
  shards_ = static_cast<Shard*>(::operator new(sizeof(Shard) * kMetricShards));
  for (int i = 0; i < kMetricShards; ++i) new (&shards_[i]) Shard(bounds_.size());
}

Histogram::~Histogram() {
  for (int i = 0; i < kMetricShards; ++i) shards_[i].~Shard();
  ::operator delete(shards_);
}

void Histogram::observe(double value) {
  Shard& shard = shards_[metrics_shard()];
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  shard.counts[i].fetch_add(1, std::memory_order_relaxed);
  // The sum is a double: CAS keeps it exact when two threads share a shard.
  uint64_t old_bits = shard.sum_bits.load(std::memory_order_relaxed);
  for (;;) {
    double sum;
    std::memcpy(&sum, &old_bits, sizeof sum);
    sum += value;
    uint64_t new_bits;
    std::memcpy(&new_bits, &sum, sizeof sum);
    if (shard.sum_bits.compare_exchange_weak(old_bits, new_bits, std::memory_order_relaxed)) break;
  }
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (int s = 0; s < kMetricShards; ++s)
    for (const auto& c : shards_[s].counts) n += c.load(std::memory_order_relaxed);
  return n;
}

void Histogram::render_samples(std::string& out) const {
  std::vector<uint64_t> counts(bounds_.size() + 1, 0);
  double sum = 0;
  for (int s = 0; s < kMetricShards; ++s) {
    for (size_t i = 0; i < counts.size(); ++i)
      counts[i] += shards_[s].counts[i].load(std::memory_order_relaxed);
    uint64_t bits = shards_[s].sum_bits.load(std::memory_order_relaxed);
    double part;
    std::memcpy(&part, &bits, sizeof part);
    sum += part;
  }
  uint64_t cumulative = 0;
  char label[64];
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    double bound = i < bounds_.size() ? bounds_[i] : HUGE_VAL;
    size_t len = format_value(label + 4, sizeof label - 5, bound);
    std::memcpy(label, "le=\"", 4);
    label[4 + len] = '"';
    render_sample(out, "_bucket", std::string_view(label, len + 5),
                  static_cast<double>(cumulative));
  }
  render_sample(out, "_sum", "", sum);
  render_sample(out, "_count", "", static_cast<double>(cumulative));
}

std::vector<double> Histogram::exponential(double start, double factor, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i, start *= factor) bounds.push_back(start);
  return bounds;
}

std::string render_metrics() {
  std::lock_guard lock(registry().mutex);
  std::vector<Metric*> metrics = registry().metrics;
  std::stable_sort(metrics.begin(), metrics.end(),
                   [](const Metric* a, const Metric* b) { return a->name() < b->name(); });
  std::string out;
  out.reserve(16384);
  static std::set<std::string> conflicts_logged;  // guarded by the registry mutex
  for (size_t begin = 0, end = 0; begin < metrics.size(); begin = end) {
    while (end < metrics.size() && metrics[end]->name() == metrics[begin]->name()) end++;
    render_family(out, metrics, begin, end, conflicts_logged);
  }
  return out;
}

bool find_metric_value(std::string_view name, std::string_view labels, double* value) {
  std::lock_guard lock(registry().mutex);
  for (const Metric* m : registry().metrics) {
    if (m->name() != name || m->labels() != labels) continue;
    if (auto* c = dynamic_cast<const Counter*>(m))
      *value = static_cast<double>(c->value());
    else if (auto* g = dynamic_cast<const Gauge*>(m))
      *value = g->value();
    else if (auto* h = dynamic_cast<const Histogram*>(m))
      *value = static_cast<double>(h->count());
    return true;
  }
  return false;
}

}  // namespace weir::core
