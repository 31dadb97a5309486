// tools/swim_sim/swim_sim.cc — `weir-swim-sim`: the command line of the SWIM simulation
// (sim_cluster.h): flags in, a text or JSON report out. Exit 2 on bad flags, 1 when the run
// could not start.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/units.h"
#include "tools/swim_sim/sim_cluster.h"

namespace weir::swim_sim {
namespace {

struct Flag {
  const char* name;
  const char* value;
  std::string default_text;
  const char* help;
  std::function<bool(std::string_view)> set;
};

bool set_int(std::string_view v, int* out, int min) {
  char* end = nullptr;
  std::string text(v);
  long n = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || n < min || n > 1000000) return false;
  *out = static_cast<int>(n);
  return true;
}

bool set_duration(std::string_view v, int64_t* out) {
  return core::parse_duration_ms(v, out) && *out > 0;
}

std::vector<Flag> flag_table(SimConfig& c, bool& json) {
  SimConfig d;
  auto ms = [](int64_t v) { return core::format_duration_ms(v); };
  return {
      {"nodes", "N", std::to_string(d.nodes), "Membership instances, one UDP socket each",
       [&](std::string_view v) { return set_int(v, &c.nodes, 2); }},
      {"loss", "P", "0", "probability that a datagram is lost (0..1; 0.05 is 5%)",
       [&](std::string_view v) {
         char* end = nullptr;
         std::string text(v);
         c.loss = std::strtod(text.c_str(), &end);
         return !text.empty() && *end == '\0' && c.loss >= 0 && c.loss < 1;
       }},
      {"probe-interval", "DURATION", ms(d.probe_interval_ms),
       "each node probes one member this often",
       [&](std::string_view v) { return set_duration(v, &c.probe_interval_ms); }},
      {"probe-timeout", "DURATION", ms(d.probe_timeout_ms),
       "a probe not acked within this goes indirect (ping-req)",
       [&](std::string_view v) { return set_duration(v, &c.probe_timeout_ms); }},
      {"suspicion-mult", "N", std::to_string(d.suspicion_mult),
       "suspect -> dead after N * max(1, log10(members)) * probe interval",
       [&](std::string_view v) { return set_int(v, &c.suspicion_mult, 1); }},
      {"suspicion-max-mult", "N", std::to_string(d.suspicion_max_mult),
       "Lifeguard: a suspicion starts N times longer and shrinks with confirmations (1: off)",
       [&](std::string_view v) { return set_int(v, &c.suspicion_max_mult, 1); }},
      {"awareness-max", "N", std::to_string(d.awareness_max),
       "Lifeguard: an unhealthy node stretches its probe interval up to N times (1: off)",
       [&](std::string_view v) { return set_int(v, &c.awareness_max, 1); }},
      {"push-pull-interval", "DURATION", ms(d.push_pull_interval_ms),
       "full-state exchange with one random member this often",
       [&](std::string_view v) { return set_duration(v, &c.push_pull_interval_ms); }},
      {"rejoin-interval", "DURATION", ms(d.rejoin_interval_ms),
       "full state to lost seeds and to 3 dead members (in turn) this often",
       [&](std::string_view v) { return set_duration(v, &c.rejoin_interval_ms); }},
      {"duration", "DURATION", ms(d.duration_ms), "the whole run, from the first node's start",
       [&](std::string_view v) { return set_duration(v, &c.duration_ms); }},
      {"converge-timeout", "DURATION", "half of --duration",
       "kill even if the cluster has not converged by then",
       [&](std::string_view v) { return set_duration(v, &c.converge_timeout_ms); }},
      {"start-spread", "DURATION", "--probe-interval", "non-seed nodes start evenly over this time",
       [&](std::string_view v) { return core::parse_duration_ms(v, &c.start_spread_ms); }},
      {"kill", "K", std::to_string(d.kill), "non-seed nodes stopped abruptly after convergence",
       [&](std::string_view v) { return set_int(v, &c.kill, 0); }},
      {"seeds", "S", std::to_string(d.seeds), "nodes 0..S-1 are every node's join list",
       [&](std::string_view v) { return set_int(v, &c.seeds, 1); }},
      {"seed", "N", std::to_string(d.seed), "seed of the loss and kill-choice generator",
       [&](std::string_view v) {
         char* end = nullptr;
         std::string text(v);
         c.seed = std::strtoull(text.c_str(), &end, 10);
         return !text.empty() && *end == '\0';
       }},
      {"json", "", "off", "print the result as one JSON object",
       [&](std::string_view) { return json = true; }},
  };
}

void usage(const std::vector<Flag>& flags) {
  std::fprintf(stderr,
               "usage: weir-swim-sim [flags]\n"
               "Runs N SWIM nodes in one process on loopback UDP, kills some, and reports\n"
               "convergence, detection time, false positives and gossip bytes.\n\n");
  for (const Flag& f : flags) {
    std::string left = std::string("--") + f.name + (*f.value ? std::string(" ") + f.value : "");
    std::fprintf(stderr, "  %-28s %s (default %s)\n", left.c_str(), f.help, f.default_text.c_str());
  }
}

bool parse(int argc, char** argv, SimConfig* config, bool* json) {
  std::vector<Flag> flags = flag_table(*config, *json);
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(flags);
      std::exit(0);
    }
    std::string_view value;
    bool inline_value = false;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    const Flag* flag = nullptr;
    for (const Flag& f : flags) {
      if (arg == std::string("--") + f.name) flag = &f;
    }
    if (!flag) {
      std::fprintf(stderr, "weir-swim-sim: unknown flag %s\n", argv[i]);
      usage(flags);
      return false;
    }
    if (*flag->value && !inline_value) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "weir-swim-sim: --%s needs a value\n", flag->name);
        return false;
      }
      value = argv[++i];
    }
    if (!flag->set(value)) {
      std::fprintf(stderr, "weir-swim-sim: --%s: bad value '%.*s'\n", flag->name,
                   static_cast<int>(value.size()), value.data());
      return false;
    }
  }
  if (config->probe_timeout_ms >= config->probe_interval_ms) {
    std::fprintf(stderr, "weir-swim-sim: --probe-timeout must be less than --probe-interval\n");
    return false;
  }
  return true;
}

std::string json_distribution(const Distribution& d) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "{\"count\":%zu,\"min\":%.3f,\"median\":%.3f,\"p99\":%.3f,\"max\":%.3f}", d.count,
                d.min, d.median, d.p99, d.max);
  return buf;
}

std::string json_false_positives(const FalsePositives& f, double node_hours) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "{\"episodes\":%llu,\"declarations\":%llu,\"nodes\":%llu,\"per_node_hour\":%.4f}",
                static_cast<unsigned long long>(f.episodes),
                static_cast<unsigned long long>(f.declarations),
                static_cast<unsigned long long>(f.nodes),
                node_hours > 0 ? static_cast<double>(f.episodes) / node_hours : 0.0);
  return buf;
}

void print_json(const SimResult& r) {
  const SimConfig& c = r.config;
  std::printf(
      "{\"nodes\":%d,\"loss\":%g,\"probe_interval_ms\":%lld,\"probe_timeout_ms\":%lld,"
      "\"suspicion_mult\":%d,\"suspicion_max_mult\":%d,\"awareness_max\":%d,"
      "\"push_pull_interval_ms\":%lld,\"rejoin_interval_ms\":%lld,\"duration_"
      "ms\":%lld,\"kill\":%d,"
      "\"seeds\":%d,\"seed\":%llu,",
      c.nodes, c.loss, static_cast<long long>(c.probe_interval_ms),
      static_cast<long long>(c.probe_timeout_ms), c.suspicion_mult, c.suspicion_max_mult,
      c.awareness_max, static_cast<long long>(c.push_pull_interval_ms),
      static_cast<long long>(c.rejoin_interval_ms), static_cast<long long>(c.duration_ms), c.kill,
      c.seeds, static_cast<unsigned long long>(c.seed));
  std::printf(
      "\"run_s\":%.3f,\"converged\":%s,\"converge_s\":%.3f,\"kill_at_s\":%.3f,"
      "\"alive_pairs_at_kill\":%.4f,",
      r.run_s, r.converged ? "true" : "false", r.converge_s, r.kill_at_s, r.alive_pairs_at_kill);
  std::printf("\"detection_s\":%s,\"first_suspicion_s\":%s,\"undetected_pairs\":%zu,",
              json_distribution(r.detection_s).c_str(),
              json_distribution(r.first_suspicion_s).c_str(), r.undetected_pairs);
  std::printf("\"killed\":[");
  for (size_t i = 0; i < r.killed.size(); ++i) {
    const KilledNode& k = r.killed[i];
    std::printf("%s{\"node_id\":\"%s\",\"observers\":%d,\"dead_s\":%s,\"first_suspect_s\":%.3f}",
                i ? "," : "", k.node_id.c_str(), k.observers, json_distribution(k.dead_s).c_str(),
                k.first_suspect_s);
  }
  std::printf("],\"false_dead\":%s,\"false_suspect\":%s,\"live_node_hours\":%.4f,",
              json_false_positives(r.false_dead, r.live_node_hours).c_str(),
              json_false_positives(r.false_suspect, r.live_node_hours).c_str(), r.live_node_hours);
  std::printf(
      "\"bytes_out_per_node_s\":%.1f,\"steady_bytes_out_per_node_s\":%.1f,\"probes\":%llu,"
      "\"probe_failures\":%llu,\"suspicions\":%llu,\"refutations\":%llu,"
      "\"dropped_by_filter\":%llu,\"kernel_rcvbuf_errors\":%llu,\"cpu_percent\":%.1f,"
      "\"max_timer_lateness_ms\":%lld}\n",
      r.bytes_out_per_node_s, r.steady_bytes_out_per_node_s,
      static_cast<unsigned long long>(r.probes), static_cast<unsigned long long>(r.probe_failures),
      static_cast<unsigned long long>(r.suspicions), static_cast<unsigned long long>(r.refutations),
      static_cast<unsigned long long>(r.dropped_by_filter),
      static_cast<unsigned long long>(r.kernel_rcvbuf_errors), r.cpu_percent,
      static_cast<long long>(r.max_timer_lateness_ms));
}

void print_distribution(const char* what, const Distribution& d) {
  if (d.count == 0) {
    std::printf("%-22s none\n", what);
    return;
  }
  std::printf("%-22s min %.2f s, median %.2f s, p99 %.2f s, max %.2f s (%zu samples)\n", what,
              d.min, d.median, d.p99, d.max, d.count);
}

void print_text(const SimResult& r) {
  const SimConfig& c = r.config;
  std::printf(
      "nodes %d, loss %.1f%%, probe every %lld ms (timeout %lld ms), suspicion mult %d, "
      "%d seed(s), %.1f s run, %.0f%% of a core\n",
      c.nodes, 100 * c.loss, static_cast<long long>(c.probe_interval_ms),
      static_cast<long long>(c.probe_timeout_ms), c.suspicion_mult, c.seeds, r.run_s,
      r.cpu_percent);
  if (r.converged)
    std::printf("converged              %.2f s (every node lists every other alive)\n",
                r.converge_s);
  else
    std::printf("converged              NO (killed at %.2f s anyway, %.1f%% of pairs alive)\n",
                r.kill_at_s, 100 * r.alive_pairs_at_kill);
  std::printf("killed                 %zu node(s) at %.2f s\n", r.killed.size(), r.kill_at_s);
  print_distribution("declared dead after", r.detection_s);
  print_distribution("first suspicion after", r.first_suspicion_s);
  if (r.undetected_pairs)
    std::printf("undetected             %zu (observer, killed) pairs by the end\n",
                r.undetected_pairs);
  double h = r.live_node_hours;
  std::printf(
      "false dead             %llu episode(s) (%llu nodes, %llu declarations), "
      "%.3f per node-hour\n",
      static_cast<unsigned long long>(r.false_dead.episodes),
      static_cast<unsigned long long>(r.false_dead.nodes),
      static_cast<unsigned long long>(r.false_dead.declarations),
      h > 0 ? r.false_dead.episodes / h : 0.0);
  std::printf(
      "false suspect          %llu episode(s) (%llu nodes, %llu declarations), "
      "%.3f per node-hour\n",
      static_cast<unsigned long long>(r.false_suspect.episodes),
      static_cast<unsigned long long>(r.false_suspect.nodes),
      static_cast<unsigned long long>(r.false_suspect.declarations),
      h > 0 ? r.false_suspect.episodes / h : 0.0);
  std::printf("gossip bytes out       %.0f B/node/s over the run, %.0f after convergence\n",
              r.bytes_out_per_node_s, r.steady_bytes_out_per_node_s);
  std::printf("probes                 %llu, %llu failed; %llu suspicions, %llu refutations\n",
              static_cast<unsigned long long>(r.probes),
              static_cast<unsigned long long>(r.probe_failures),
              static_cast<unsigned long long>(r.suspicions),
              static_cast<unsigned long long>(r.refutations));
  std::printf(
      "datagrams dropped      %llu by the filter, %llu by the kernel (machine-wide "
      "RcvbufErrors); timer late by %lld ms at worst\n",
      static_cast<unsigned long long>(r.dropped_by_filter),
      static_cast<unsigned long long>(r.kernel_rcvbuf_errors),
      static_cast<long long>(r.max_timer_lateness_ms));
}

}  // namespace
}  // namespace weir::swim_sim

int main(int argc, char** argv) {
  using namespace weir::swim_sim;
  SimConfig config;
  bool json = false;
  if (!parse(argc, argv, &config, &json)) return 2;
  SimResult result = run_simulation(config);
  if (!result.error.empty()) {
    std::fprintf(stderr, "weir-swim-sim: %s\n", result.error.c_str());
    return 1;
  }
  if (json)
    print_json(result);
  else
    print_text(result);
  return 0;
}
