// tools/swim_sim/sim_cluster.cc — the simulation's timeline and bookkeeping: start the nodes,
// follow every node's change events, kill some, and summarise.
#include "tools/swim_sim/sim_cluster.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include "cluster/membership.h"
#include "core/reactor.h"
#include "core/timer_wheel.h"

namespace weir::swim_sim {
namespace {

using cluster::MemberEvent;
using cluster::MemberInfo;
using cluster::Membership;

constexpr int64_t kCheckEveryMs = 20;
const std::string kSecret = "swim-sim-secret";

// The Udp RcvbufErrors counter of /proc/net/snmp: datagrams the kernel dropped because a
// socket's receive buffer was full (loss we did not ask for). 0 when unreadable.
uint64_t udp_rcvbuf_errors() {
  std::ifstream in("/proc/net/snmp");
  std::string header, values, line;
  while (std::getline(in, line)) {
    if (line.rfind("Udp:", 0) != 0) continue;
    if (header.empty()) {
      header = line;
    } else {
      values = line;
      break;
    }
  }
  std::istringstream names(header), numbers(values);
  std::string name, number;
  while (names >> name && numbers >> number) {
    if (name == "RcvbufErrors") return std::stoull(number);
  }
  return 0;
}

double cpu_seconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(usage.ru_utime) + secs(usage.ru_stime);
}

// A thousand sockets need a thousand descriptors: raise the soft limit up to the hard one.
bool ensure_descriptors(size_t needed, std::string* error) {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return true;
  if (limit.rlim_cur >= needed) return true;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
    *error = "need " + std::to_string(needed) + " open files, the hard limit is " +
             std::to_string(limit.rlim_max);
    return false;
  }
  limit.rlim_cur = needed;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    *error = "setrlimit(RLIMIT_NOFILE) failed";
    return false;
  }
  return true;
}

net::SocketAddress loopback_any_port() {
  net::SocketAddress addr;
  std::string error;
  net::SocketAddress::parse("127.0.0.1:0", &addr, &error);
  return addr;
}

class Simulation {
 public:
  explicit Simulation(const SimConfig& config);
  SimResult run();

 private:
  void start_node(int index);
  void start_due_nodes();
  void check_tick();
  bool converged() const;
  void kill_nodes();
  void on_event(int observer, const MemberInfo& info, MemberEvent event);
  void record_false_positive(int subject, uint32_t incarnation, MemberEvent event);
  void summarise(SimResult* result);
  bool lose(double probability);
  double since_start_s() const { return static_cast<double>(now()) / 1000.0; }
  int64_t now() const { return reactor_.now_ms() - start_ms_; }
  bool running(int index) const { return started_[index] && kill_slot_[index] < 0; }

  SimConfig config_;
  int n_;
  core::Reactor reactor_;
  std::vector<std::unique_ptr<Membership>> nodes_;
  std::vector<bool> started_;
  std::vector<net::SocketAddress> seed_addresses_;
  int next_to_start_ = 0;
  int64_t start_ms_ = 0;
  std::mt19937_64 rng_;
  double side_loss_ = 0;

  // view_[o * n + s]: observer o lists s alive; alive_seen_[o] counts them.
  std::vector<uint8_t> view_;
  std::vector<int> alive_seen_;
  int64_t converge_ms_ = -1;

  // Kills: kill_slot_[i] is i's position in killed_, or -1; dead_ms_[slot][o] is -1 until o
  // declared it dead.
  std::vector<int> killed_;
  std::vector<int> kill_slot_;
  std::vector<std::vector<int64_t>> dead_ms_;
  std::vector<int64_t> first_suspect_ms_;
  int64_t kill_ms_ = -1;
  double alive_pairs_at_kill_ = 0;

  std::set<std::pair<int, uint32_t>> dead_episodes_, suspect_episodes_;
  std::set<int> dead_nodes_, suspect_nodes_;
  uint64_t dead_declarations_ = 0, suspect_declarations_ = 0;

  std::vector<uint64_t> bytes_at_kill_;
  int64_t last_check_ms_ = 0;
  int64_t max_lateness_ms_ = 0;

  core::Timer start_timer_;
  core::Timer check_timer_;
  core::Timer end_timer_;
};

Simulation::Simulation(const SimConfig& config)
    : config_(config),
      n_(config.nodes),
      rng_(config.seed),
      side_loss_(1.0 - std::sqrt(1.0 - std::clamp(config.loss, 0.0, 1.0))),
      view_(static_cast<size_t>(n_) * static_cast<size_t>(n_), 0),
      alive_seen_(static_cast<size_t>(n_), 0),
      kill_slot_(static_cast<size_t>(n_), -1) {
  if (config_.converge_timeout_ms <= 0) config_.converge_timeout_ms = config_.duration_ms / 2;
  if (config_.start_spread_ms < 0) config_.start_spread_ms = config_.probe_interval_ms;
  config_.seeds = std::clamp(config_.seeds, 1, n_);
  config_.kill = std::clamp(config_.kill, 0, n_ - config_.seeds);
  started_.assign(static_cast<size_t>(n_), false);
  start_timer_.set_callback([this] { start_due_nodes(); });
  check_timer_.set_callback([this] { check_tick(); });
  end_timer_.set_callback([this] { reactor_.stop(); });
}

bool Simulation::lose(double probability) {
  return probability > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < probability;
}

void Simulation::start_node(int index) {
  cluster::MembershipConfig c;
  c.node_id = "n" + std::to_string(index);
  c.bind = loopback_any_port();
  c.secret = kSecret;
  c.probe_interval_ms = config_.probe_interval_ms;
  c.probe_timeout_ms = config_.probe_timeout_ms;
  c.suspicion_mult = config_.suspicion_mult;
  c.suspicion_max_mult = config_.suspicion_max_mult;
  c.awareness_max = config_.awareness_max;
  c.push_pull_interval_ms = config_.push_pull_interval_ms;
  c.rejoin_interval_ms = config_.rejoin_interval_ms;
  c.seeds = seed_addresses_;
  auto node = std::make_unique<Membership>(reactor_, std::move(c));
  node->set_change_callback(
      [this, index](const MemberInfo& info, MemberEvent event) { on_event(index, info, event); });
  node->set_packet_filter(
      [this](bool, const net::SocketAddress&, cluster::MessageType) { return lose(side_loss_); });
  std::string error;
  if (!node->start(&error)) {
    std::fprintf(stderr, "swim-sim: node %d: %s\n", index, error.c_str());
    reactor_.stop();
    return;
  }
  if (index < config_.seeds) seed_addresses_.push_back(node->address());
  nodes_[static_cast<size_t>(index)] = std::move(node);
  started_[static_cast<size_t>(index)] = true;
}

// The seeds start at once; the others at even steps over start_spread_ms.
void Simulation::start_due_nodes() {
  int64_t spread = std::max<int64_t>(config_.start_spread_ms, 0);
  int rest = n_ - config_.seeds;
  while (next_to_start_ < n_) {
    int i = next_to_start_;
    int64_t due = i < config_.seeds ? 0 : spread * (i - config_.seeds) / std::max(rest, 1);
    if (due > now()) break;
    start_node(i);
    next_to_start_++;
  }
  if (next_to_start_ < n_) reactor_.schedule(start_timer_, 10);
}

bool Simulation::converged() const {
  if (next_to_start_ < n_) return false;
  for (int o = 0; o < n_; ++o) {
    if (alive_seen_[static_cast<size_t>(o)] != n_ - 1) return false;
  }
  return true;
}

void Simulation::check_tick() {
  int64_t t = now();
  max_lateness_ms_ = std::max(max_lateness_ms_, t - last_check_ms_ - kCheckEveryMs);
  last_check_ms_ = t;
  if (kill_ms_ < 0) {
    if (converged()) converge_ms_ = t;
    if (converge_ms_ >= 0 || t >= config_.converge_timeout_ms) kill_nodes();
  }
  reactor_.schedule(check_timer_, kCheckEveryMs);
}

void Simulation::kill_nodes() {
  kill_ms_ = now();
  std::vector<int> candidates;
  for (int i = config_.seeds; i < n_; ++i) {
    if (started_[static_cast<size_t>(i)]) candidates.push_back(i);
  }
  std::shuffle(candidates.begin(), candidates.end(), rng_);
  candidates.resize(std::min(candidates.size(), static_cast<size_t>(config_.kill)));
  bytes_at_kill_.assign(static_cast<size_t>(n_), 0);
  double alive_pairs = 0;
  for (int seen : alive_seen_) alive_pairs += seen;
  alive_pairs_at_kill_ = alive_pairs / (static_cast<double>(n_) * (n_ - 1));
  for (int i = 0; i < n_; ++i) {
    if (started_[static_cast<size_t>(i)])
      bytes_at_kill_[static_cast<size_t>(i)] = nodes_[static_cast<size_t>(i)]->stats().bytes_out;
  }
  for (int k : candidates) {
    kill_slot_[static_cast<size_t>(k)] = static_cast<int>(killed_.size());
    killed_.push_back(k);
    dead_ms_.emplace_back(static_cast<size_t>(n_), -1);
    first_suspect_ms_.push_back(-1);
    nodes_[static_cast<size_t>(k)]->stop();
  }
}

void Simulation::on_event(int observer, const MemberInfo& info, MemberEvent event) {
  int subject = std::atoi(info.node_id.c_str() + 1);
  if (subject < 0 || subject >= n_) return;
  size_t cell =
      static_cast<size_t>(observer) * static_cast<size_t>(n_) + static_cast<size_t>(subject);
  bool alive = event == MemberEvent::kJoined || event == MemberEvent::kAliveAgain;
  if (alive != static_cast<bool>(view_[cell])) {
    view_[cell] = alive;
    alive_seen_[static_cast<size_t>(observer)] += alive ? 1 : -1;
  }
  if (alive) return;
  int slot = kill_slot_[static_cast<size_t>(subject)];
  if (slot < 0) {
    record_false_positive(subject, info.incarnation, event);
    return;
  }
  int64_t t = now() - kill_ms_;
  auto& first = first_suspect_ms_[static_cast<size_t>(slot)];
  if (event == MemberEvent::kSuspected && first < 0) first = t;
  auto& dead = dead_ms_[static_cast<size_t>(slot)][static_cast<size_t>(observer)];
  if (event == MemberEvent::kDead && dead < 0) dead = t;
}

void Simulation::record_false_positive(int subject, uint32_t incarnation, MemberEvent event) {
  if (event == MemberEvent::kDead) {
    dead_declarations_++;
    dead_episodes_.emplace(subject, incarnation);
    dead_nodes_.insert(subject);
  } else if (event == MemberEvent::kSuspected) {
    suspect_declarations_++;
    suspect_episodes_.emplace(subject, incarnation);
    suspect_nodes_.insert(subject);
  }
}

SimResult Simulation::run() {
  SimResult result;
  result.config = config_;
  if (n_ < 2) {
    result.error = "--nodes must be at least 2";
    return result;
  }
  if (!ensure_descriptors(static_cast<size_t>(n_) + 64, &result.error)) return result;
  nodes_.resize(static_cast<size_t>(n_));
  uint64_t rcvbuf_before = udp_rcvbuf_errors();
  double cpu_before = cpu_seconds();
  reactor_.update_time();
  start_ms_ = reactor_.now_ms();
  start_due_nodes();
  reactor_.schedule(check_timer_, kCheckEveryMs);
  reactor_.schedule(end_timer_, config_.duration_ms);
  reactor_.run();
  result.run_s = since_start_s();
  result.cpu_percent = 100.0 * (cpu_seconds() - cpu_before) / std::max(result.run_s, 1e-3);
  result.kernel_rcvbuf_errors = udp_rcvbuf_errors() - rcvbuf_before;
  summarise(&result);
  for (auto& node : nodes_) {
    if (node) node->stop();
  }
  return result;
}

void Simulation::summarise(SimResult* r) {
  r->converged = converge_ms_ >= 0;
  r->converge_s = converge_ms_ / 1000.0;
  r->kill_at_s = kill_ms_ / 1000.0;
  r->alive_pairs_at_kill = alive_pairs_at_kill_;
  r->max_timer_lateness_ms = max_lateness_ms_;
  std::vector<double> pooled, firsts;
  for (size_t slot = 0; slot < killed_.size(); ++slot) {
    KilledNode k;
    k.node_id = "n" + std::to_string(killed_[slot]);
    std::vector<double> times;
    for (int o = 0; o < n_; ++o) {
      if (!running(o)) continue;
      k.observers++;
      int64_t t = dead_ms_[slot][static_cast<size_t>(o)];
      if (t < 0) {
        r->undetected_pairs++;
        continue;
      }
      times.push_back(t / 1000.0);
      pooled.push_back(t / 1000.0);
    }
    k.dead_s = distribution_of(times);
    if (first_suspect_ms_[slot] >= 0) {
      k.first_suspect_s = first_suspect_ms_[slot] / 1000.0;
      firsts.push_back(k.first_suspect_s);
    }
    r->killed.push_back(std::move(k));
  }
  r->detection_s = distribution_of(pooled);
  r->first_suspicion_s = distribution_of(firsts);
  r->false_dead = {dead_episodes_.size(), dead_declarations_, dead_nodes_.size()};
  r->false_suspect = {suspect_episodes_.size(), suspect_declarations_, suspect_nodes_.size()};

  double live_seconds = 0, steady_seconds = 0;
  uint64_t bytes = 0, steady_bytes = 0;
  double end_s = r->run_s;
  for (int i = 0; i < n_; ++i) {
    if (!started_[static_cast<size_t>(i)]) continue;
    const cluster::MembershipStats& s = nodes_[static_cast<size_t>(i)]->stats();
    r->probes += s.probes;
    r->probe_failures += s.probe_failures;
    r->suspicions += s.suspicions;
    r->refutations += s.refutations;
    r->dropped_by_filter += s.packets_dropped_by_filter;
    bytes += s.bytes_out;
    bool killed = kill_slot_[static_cast<size_t>(i)] >= 0;
    live_seconds += (killed ? r->kill_at_s : end_s);
    if (!killed && kill_ms_ >= 0) {
      steady_bytes += s.bytes_out - bytes_at_kill_[static_cast<size_t>(i)];
      steady_seconds += end_s - r->kill_at_s;
    }
  }
  r->live_node_hours = live_seconds / 3600.0;
  r->bytes_out_per_node_s = bytes / std::max(end_s * n_, 1e-3);
  if (steady_seconds > 0) r->steady_bytes_out_per_node_s = steady_bytes / steady_seconds;
}

}  // namespace

Distribution distribution_of(std::vector<double> samples) {
  Distribution d;
  if (samples.empty()) return d;
  std::sort(samples.begin(), samples.end());
  auto rank = [&](double q) {  // nearest rank
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    return samples[std::clamp<size_t>(i, 1, samples.size()) - 1];
  };
  d.count = samples.size();
  d.min = samples.front();
  d.median = rank(0.5);
  d.p99 = rank(0.99);
  d.max = samples.back();
  return d;
}

SimResult run_simulation(const SimConfig& config) {
  Simulation sim(config);
  return sim.run();
}

}  // namespace weir::swim_sim
