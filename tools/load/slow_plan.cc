// tools/load/slow_plan.cc — client specs, the stream's query, send-time bins, shaded spans.
#include "tools/load/slow_plan.h"

#include <cmath>
#include <string>

namespace weir::load {

std::vector<SlowClientSpec> make_slow_specs(const Options& o) {
  std::vector<SlowClientSpec> specs;
  uint64_t state = o.seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  for (int i = 0; i < o.clients; ++i) {
    SlowClientSpec s;
    s.index = i;
    s.name = "slow" + std::to_string(i + 1);
    s.slow = true;
    s.via_relay = o.via_relay >= 0;
    s.delay_ms = o.delay_ms;
    if (o.delay_base_ms >= 0) {
      state ^= state >> 12;  // xorshift64*: the same seed gives the same delays
      state ^= state << 25;
      state ^= state >> 27;
      uint64_t r = (state * 0x2545F4914F6CDD1Dull) >> 11;
      s.delay_ms =
          o.delay_base_ms + static_cast<int64_t>(r % static_cast<uint64_t>(o.delay_range_ms + 1));
    }
    specs.push_back(s);
  }
  for (int i = 0; i < o.fast_clients; ++i) {
    SlowClientSpec s;
    s.index = o.clients + i;
    s.name = "fast" + std::to_string(i + 1);
    specs.push_back(s);
  }
  return specs;
}

uint64_t query_number(std::string_view target, std::string_view key, uint64_t fallback) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return fallback;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.size() <= key.size() || pair.substr(0, key.size()) != key || pair[key.size()] != '=')
      continue;
    std::string_view v = pair.substr(key.size() + 1);
    uint64_t n = 0;
    for (char c : v) {
      if (c < '0' || c > '9') return fallback;
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    return v.empty() ? fallback : n;
  }
  return fallback;
}

double bins_rate(const std::vector<uint32_t>& bins, double t0, double t1) {
  constexpr double kBinsPerSecond = 1e9 / SlowSession::kBinNs;
  if (!(t1 > t0)) return NAN;
  auto first = static_cast<int64_t>(std::llround(t0 * kBinsPerSecond));
  auto last = static_cast<int64_t>(std::llround(t1 * kBinsPerSecond));
  if (first < 0 || last > static_cast<int64_t>(bins.size())) return NAN;
  uint64_t sum = 0;
  for (int64_t b = first; b < last; ++b) sum += bins[static_cast<size_t>(b)];
  return static_cast<double>(sum) / (t1 - t0);
}

std::vector<std::pair<double, double>> flagged_spans(const std::vector<double>& times,
                                                     const std::vector<bool>& flags) {
  std::vector<std::pair<double, double>> out;
  for (size_t i = 0; i < times.size() && i < flags.size(); ++i) {
    if (!flags[i]) continue;
    double start = i == 0 ? 0.0 : times[i - 1];
    if (!out.empty() && out.back().second == start)
      out.back().second = times[i];
    else
      out.emplace_back(start, times[i]);
  }
  return out;
}

}  // namespace weir::load
