// cluster/membership.cc — SWIM probing, suspicion, dissemination and joining over UDP, with
// Lifeguard's local health, dynamic suspicion and buddy system; push-pull over the peer links.
#include "cluster/membership.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/log.h"
#include "core/metrics.h"
#include "net/socket_ops.h"

namespace weir::cluster {
namespace {

constexpr size_t kReadBuffer = 65536;

core::Counter g_probes("weir_gossip_probes_total", "SWIM probes (pings) sent");
core::Counter g_probe_failures("weir_gossip_probe_failures_total",
                               "SWIM probes that got no ack, direct or indirect");
core::Counter g_suspicions("weir_gossip_suspicions_total", "members that became suspect");
core::Counter g_refutations("weir_gossip_refutations_total",
                            "times this node refuted a suspicion by bumping its incarnation");
constexpr char kBadHelp[] = "gossip messages (datagrams, link state syncs) dropped, by reason";
constexpr char kPushPullHelp[] = "periodic state exchanges started, by transport";
core::Counter g_bad_auth("weir_gossip_bad_packets_total", kBadHelp, "reason=\"auth\"");
core::Counter g_bad_malformed("weir_gossip_bad_packets_total", kBadHelp, "reason=\"malformed\"");
core::Counter g_push_pull_tcp("weir_gossip_push_pull_total", kPushPullHelp, "transport=\"tcp\"");
core::Counter g_push_pull_udp("weir_gossip_push_pull_total", kPushPullHelp, "transport=\"udp\"");
core::Counter g_bytes_in("weir_gossip_bytes_total", "gossip bytes", "direction=\"in\"");
core::Counter g_bytes_out("weir_gossip_bytes_total", "gossip bytes", "direction=\"out\"");
core::Gauge g_members[4] = {
    {"weir_gossip_members", "cluster members by state, as this node sees them", "state=\"alive\""},
    {"weir_gossip_members", "cluster members by state, as this node sees them",
     "state=\"suspect\""},
    {"weir_gossip_members", "cluster members by state, as this node sees them", "state=\"dead\""},
    {"weir_gossip_members", "cluster members by state, as this node sees them", "state=\"left\""},
};

bool same_address(const net::SocketAddress& a, const net::SocketAddress& b) {
  return a.family() == b.family() && a.port() == b.port() && a.host() == b.host();
}

SwimMessage make_header(MessageType type, uint32_t seq, const std::string& sender,
                        const std::string& target = {}) {
  SwimMessage header;
  header.type = type;
  header.seq = seq;
  header.sender = sender;
  header.target = target;
  return header;
}

bool is_live(MemberState s) {
  return s == MemberState::kAlive || s == MemberState::kSuspect;
}

}  // namespace

const char* member_event_name(MemberEvent event) {
  switch (event) {
    case MemberEvent::kJoined:
      return "joined";
    case MemberEvent::kAliveAgain:
      return "alive";
    case MemberEvent::kSuspected:
      return "suspected";
    case MemberEvent::kDead:
      return "dead";
    case MemberEvent::kLeft:
      return "left";
  }
  return "?";
}

Membership::Membership(core::Reactor& reactor, MembershipConfig config)
    : reactor_(reactor),
      config_(std::move(config)),
      writer_(config_.secret),
      rng_(std::random_device{}()),
      awareness_(config_.awareness_max) {
  probe_timer_.set_callback([this] { probe_tick(); });
  probe_timeout_timer_.set_callback([this] { send_indirect_probes(); });
  join_timer_.set_callback([this] { join_retry_tick(); });
  rejoin_timer_.set_callback([this] { rejoin_tick(); });
  push_pull_timer_.set_callback([this] { push_pull_tick(); });
}

Membership::~Membership() {
  stop();
  for (int s = 0; s < 4; ++s) g_members[s].add(-state_counts_[s]);
}

bool Membership::start(std::string* error) {
  if (config_.node_id.empty() || config_.node_id.size() > kMaxNodeId) {
    *error = "node id must be 1..64 bytes";
    return false;
  }
  int family = config_.bind.family() == AF_INET6 ? AF_INET6 : AF_INET;
  fd_ = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || ::bind(fd_, config_.bind.sockaddr(), config_.bind.length()) != 0 ||
      !reactor_.add(fd_, this, EPOLLIN | EPOLLET)) {
    *error = "gossip socket on " + config_.bind.to_string() + ": " + std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return false;
  }
  advertise_ = config_.advertise.family() != 0 ? config_.advertise : net::local_address(fd_);
  if (advertise_.host() == "0.0.0.0" || advertise_.host() == "::")
    log_warn("gossip: advertising wildcard address %s; set an advertise address peers can reach",
             advertise_.to_string().c_str());
  running_ = true;
  read_buf_.resize(kReadBuffer);
  auto self_node = std::make_unique<Node>();
  self_node->info = {config_.node_id, advertise_, MemberState::kAlive, 0};
  nodes_[config_.node_id] = std::move(self_node);
  state_counts_[0]++;
  g_members[0].inc();

  reactor_.schedule(probe_timer_, config_.probe_interval_ms);
  reactor_.schedule(rejoin_timer_, config_.rejoin_interval_ms);
  if (config_.push_pull_interval_ms > 0)
    reactor_.schedule(push_pull_timer_, config_.push_pull_interval_ms);
  join_backoff_ms_ = config_.join_retry_initial_ms;
  send_joins();
  if (!joined_) reactor_.schedule(join_timer_, join_backoff_ms_);
  return true;
}

void Membership::leave() {
  if (!running_) return;
  Node& me = self();
  set_state(me, MemberState::kLeft, me.info.incarnation);
  SwimMessage header = make_header(MessageType::kGossip, 0, config_.node_id);
  for (auto& [id, node] : nodes_) {
    if (id == config_.node_id || !is_live(node->info.state)) continue;
    writer_.begin(header);
    writer_.add_update(update_of(me.info));
    send_datagram(writer_.finish(), node->info.address, header.type);
  }
  stop();
}

void Membership::stop() {
  running_ = false;
  probe_timer_.cancel();
  probe_timeout_timer_.cancel();
  join_timer_.cancel();
  rejoin_timer_.cancel();
  push_pull_timer_.cancel();
  for (auto& [id, node] : nodes_) end_suspicion(*node);
  if (fd_ >= 0) {
    reactor_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }
}

std::vector<MemberInfo> Membership::members() const {
  std::vector<MemberInfo> out;
  out.reserve(nodes_.size());
  for (const auto& [id, node] : nodes_) out.push_back(node->info);
  return out;
}

int64_t Membership::current_probe_interval_ms() const {
  return awareness_.scale(config_.probe_interval_ms);
}

int64_t Membership::current_probe_timeout_ms() const {
  return awareness_.scale(config_.probe_timeout_ms);
}

int64_t Membership::suspicion_timeout_of(const std::string& node_id) const {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end() || !it->second->suspicion) return -1;
  return it->second->suspicion->timeout_ms();
}

uint32_t Membership::incarnation() const {
  auto it = nodes_.find(config_.node_id);
  return it == nodes_.end() ? 0 : it->second->info.incarnation;
}

// ---- Probing -------------------------------------------------------------------------------

void Membership::probe_tick() {
  finish_probe();
  if (Node* target = next_probe_target()) start_probe(*target);
  for (auto it = relays_.begin(); it != relays_.end();) {
    it = it->second.expires_ms <= reactor_.now_ms() ? relays_.erase(it) : std::next(it);
  }
  reactor_.schedule(probe_timer_, current_probe_interval_ms());
}

// The end of a probe's interval: no ack, direct or relayed, makes the target suspect (or
// confirms its suspicion). Either outcome is also evidence about our own health: without
// nacks we cannot tell a dead target from our own lost packets, so like memberlist we count a
// failed probe against ourselves and an acked one for us.
void Membership::finish_probe() {
  probe_timeout_timer_.cancel();
  if (probe_seq_ == 0) return;
  probe_seq_ = 0;
  if (probe_acked_) {
    awareness_.apply_delta(-1);
    return;
  }
  stats_.probe_failures++;
  g_probe_failures.inc();
  awareness_.apply_delta(1);
  auto it = nodes_.find(probe_target_);
  if (it == nodes_.end() || !is_live(it->second->info.state)) return;
  MemberUpdate accusation = update_of(it->second->info);
  accusation.state = MemberState::kSuspect;
  accusation.accuser = config_.node_id;
  apply_suspect(accusation);
}

void Membership::start_probe(Node& target) {
  probe_seq_ = next_seq_++;
  probe_target_ = target.info.node_id;
  probe_acked_ = false;
  stats_.probes++;
  g_probes.inc();
  SwimMessage ping = make_header(MessageType::kPing, probe_seq_, config_.node_id, probe_target_);
  if (!writer_.begin(ping)) return;
  if (target.info.state == MemberState::kSuspect) {
    // Buddy system: the suspect hears of its suspicion from its first prober and can refute
    // at once, instead of waiting for the gossip to reach it.
    MemberUpdate suspicion = update_of(target.info);
    suspicion.accuser = config_.node_id;
    writer_.add_update(suspicion);
  }
  piggyback(writer_);
  send_datagram(writer_.finish(), target.info.address, ping.type);
  reactor_.schedule(probe_timeout_timer_, current_probe_timeout_ms());
}

// The direct ping timed out: ask k random live members to ping the target for us.
void Membership::send_indirect_probes() {
  auto target = nodes_.find(probe_target_);
  if (probe_seq_ == 0 || probe_acked_ || target == nodes_.end()) return;
  std::vector<Node*> helpers;
  for (auto& [id, node] : nodes_) {
    if (id != config_.node_id && id != probe_target_ && node->info.state == MemberState::kAlive)
      helpers.push_back(node.get());
  }
  std::shuffle(helpers.begin(), helpers.end(), rng_);
  if (helpers.size() > static_cast<size_t>(config_.indirect_checks))
    helpers.resize(static_cast<size_t>(config_.indirect_checks));
  SwimMessage req = make_header(MessageType::kPingReq, probe_seq_, config_.node_id, probe_target_);
  req.target_address = target->second->info.address;
  for (Node* helper : helpers) send_message(req, helper->info.address, true);
}

// Round-robin over a shuffled list, reshuffled each round (SWIM's bounded detection time).
Membership::Node* Membership::next_probe_target() {
  for (int pass = 0; pass < 2; ++pass) {
    while (probe_index_ < probe_order_.size()) {
      auto it = nodes_.find(probe_order_[probe_index_++]);
      if (it != nodes_.end() && is_live(it->second->info.state)) return it->second.get();
    }
    probe_order_.clear();
    probe_index_ = 0;
    for (auto& [id, node] : nodes_) {
      if (id != config_.node_id && is_live(node->info.state)) probe_order_.push_back(id);
    }
    std::shuffle(probe_order_.begin(), probe_order_.end(), rng_);
  }
  return nullptr;
}

// ---- Joining -------------------------------------------------------------------------------

void Membership::send_joins() {
  bool any = false;
  for (const auto& seed : config_.seeds) {
    if (same_address(seed, advertise_)) continue;
    send_state(seed, MessageType::kJoin, kFlagWantsReply);
    any = true;
  }
  if (!any) joined_ = true;  // no one else to ask: we are the first node
}

void Membership::join_retry_tick() {
  if (joined_ || !running_) return;
  send_joins();
  join_backoff_ms_ = std::min(join_backoff_ms_ * 2, config_.join_retry_max_ms);
  reactor_.schedule(join_timer_, join_backoff_ms_);
}

// Partitions heal: keep pushing our state to the seeds we lost and to the members we think
// are dead, a few at a time so that the cost does not grow with the cluster.
void Membership::rejoin_tick() {
  rejoin_seeds();
  rejoin_dead_members();
  reactor_.schedule(rejoin_timer_, config_.rejoin_interval_ms);
}

// A seed we list alive needs no push: we are in touch with it, and push-pull repairs whatever
// gossip lost. With push-pull off, one live seed in turn stands in for it.
void Membership::rejoin_seeds() {
  std::vector<const net::SocketAddress*> live_seeds;
  bool pushed = false;
  for (const auto& seed : config_.seeds) {
    if (same_address(seed, advertise_)) continue;
    if (is_live_member_at(seed)) {
      live_seeds.push_back(&seed);
      continue;
    }
    send_state(seed, MessageType::kJoin, kFlagWantsReply);
    pushed = true;
  }
  if (pushed || live_seeds.empty() || config_.push_pull_interval_ms > 0) return;
  send_state(*live_seeds[rejoin_seed_index_++ % live_seeds.size()], MessageType::kJoin,
             kFlagWantsReply);
}

// rejoin_dead_per_tick dead members, continuing after the last one contacted: each of D dead
// members hears from us every ceil(D / per_tick) rejoin intervals, however long they stay dead.
void Membership::rejoin_dead_members() {
  int budget = config_.rejoin_dead_per_tick;
  auto it = nodes_.upper_bound(rejoin_cursor_);
  for (size_t seen = 0; seen < nodes_.size() && budget > 0; ++seen, ++it) {
    if (it == nodes_.end()) it = nodes_.begin();
    if (it->second->info.state != MemberState::kDead) continue;
    rejoin_cursor_ = it->first;
    send_dead_check(it->second->info);
    budget--;
  }
}

// One small join to a member we believe dead: our own entry and our verdict about it. Most
// dead members are dead, and a whole state (13 to 56 datagrams at 1000 members) to each would
// be wasted. One that is alive (a partition healed) refutes the verdict at once and answers
// with its whole state, which carries the refutation back and tells us what it believes.
void Membership::send_dead_check(const MemberInfo& member) {
  SwimMessage header = make_header(MessageType::kJoin, 0, config_.node_id);
  header.flags = kFlagWantsReply;
  if (!writer_.begin(header)) return;
  writer_.add_update(update_of(self().info));
  writer_.add_update(update_of(member));
  send_datagram(writer_.finish(), member.address, header.type);
}

void Membership::push_pull_tick() {
  std::vector<Node*> live;
  for (auto& [id, node] : nodes_) {
    if (id != config_.node_id && node->info.state == MemberState::kAlive)
      live.push_back(node.get());
  }
  if (!live.empty()) {
    std::uniform_int_distribution<size_t> pick(0, live.size() - 1);
    const MemberInfo& peer = live[pick(rng_)]->info;
    if (send_state_stream(peer.node_id, MessageType::kJoin, kFlagWantsReply)) {
      stats_.push_pulls_tcp++;
      g_push_pull_tcp.inc();
    } else {
      stats_.push_pulls_udp++;
      g_push_pull_udp.inc();
      send_state(peer.address, MessageType::kJoin, kFlagWantsReply);
    }
  }
  reactor_.schedule(push_pull_timer_, config_.push_pull_interval_ms);
}

// Our whole member list in one stream message, over the peer link; false when there is no
// stream sender, no link is up, or the state passes kMaxStreamMessage (the datagrams take it).
bool Membership::send_state_stream(const std::string& node_id, MessageType type, uint8_t flags) {
  if (!stream_sender_) return false;
  SwimMessage header = make_header(type, 0, config_.node_id);
  header.flags = flags | kFlagStream;
  if (!writer_.begin(header)) return false;
  for (auto& [id, node] : nodes_) {
    if (!writer_.add_update(update_of(node->info))) return false;
  }
  std::string_view message = writer_.finish();
  if (!stream_sender_(node_id, message)) return false;
  stats_.bytes_out += message.size();
  g_bytes_out.inc(message.size());
  return true;
}

// Our whole member list, in as many datagrams as it takes.
void Membership::send_state(const net::SocketAddress& to, MessageType type, uint8_t flags) {
  SwimMessage header = make_header(type, 0, config_.node_id);
  header.flags = flags;
  writer_.begin(header);
  for (auto& [id, node] : nodes_) {
    MemberUpdate update = update_of(node->info);
    if (writer_.add_update(update)) continue;
    send_datagram(writer_.finish(), to, type);
    header.flags = 0;  // one answer per state push is enough
    writer_.begin(header);
    writer_.add_update(update);
  }
  send_datagram(writer_.finish(), to, type);
}

// ---- Incoming ------------------------------------------------------------------------------

void Membership::on_io(uint32_t) {
  while (fd_ >= 0) {
    struct sockaddr_storage from {};
    socklen_t from_len = sizeof from;
    ssize_t n = ::recvfrom(fd_, read_buf_.data(), read_buf_.size(), 0,
                           reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) log_warn("gossip recvfrom: %s", std::strerror(errno));
      return;  // drained: edge-triggered, the next datagram brings a new edge
    }
    auto peer = net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&from), from_len);
    if (filter_ && filter_(false, peer, MessageType::kGossip)) {
      stats_.packets_dropped_by_filter++;
      continue;
    }
    stats_.bytes_in += static_cast<uint64_t>(n);
    g_bytes_in.inc(static_cast<uint64_t>(n));
    handle_packet(std::string_view(read_buf_.data(), static_cast<size_t>(n)), peer);
  }
}

void Membership::handle_packet(std::string_view data, const net::SocketAddress& from) {
  SwimMessage msg;
  if (!accepted(decode_packet(data, config_.secret, &msg))) return;
  if (msg.sender == config_.node_id || !running_) return;  // our own echo via a seed list
  apply_message(msg);
  switch (msg.type) {
    case MessageType::kPing:
      handle_ping(msg, from);
      break;
    case MessageType::kPingReq:
      handle_ping_req(msg, from);
      break;
    case MessageType::kAck:
      handle_ack(msg);
      break;
    case MessageType::kJoin:
      if (msg.flags & kFlagWantsReply) send_state(from, MessageType::kJoinAck, 0);
      break;
    case MessageType::kJoinAck:
      joined_ = true;
      join_timer_.cancel();
      break;
    case MessageType::kGossip:
      break;
  }
}

// A whole state over a peer link: the same tag and checks as a datagram, then the same rules
// (softened verdicts). A push that wants a reply gets ours back over the link, or as datagrams
// if the link went down meanwhile.
void Membership::handle_stream(const std::string& from_node, std::string_view message) {
  if (!running_) return;
  stats_.bytes_in += message.size();
  g_bytes_in.inc(message.size());
  SwimMessage msg;
  if (!accepted(decode_packet(message, config_.secret, &msg, kMaxStreamMessage))) return;
  bool state_sync = msg.type == MessageType::kJoin || msg.type == MessageType::kJoinAck;
  if (!state_sync || !(msg.flags & kFlagStream) || msg.sender != from_node) {
    accepted(DecodeStatus::kMalformed);  // signed, but not what a link may carry from this node
    return;
  }
  stats_.stream_messages_in++;
  apply_message(msg);
  if (msg.type == MessageType::kJoinAck) {
    joined_ = true;
    join_timer_.cancel();
  } else if ((msg.flags & kFlagWantsReply) &&
             !send_state_stream(from_node, MessageType::kJoinAck, 0)) {
    auto it = nodes_.find(from_node);
    if (it != nodes_.end()) send_state(it->second->info.address, MessageType::kJoinAck, 0);
  }
}

// Counts and refuses what failed to decode.
bool Membership::accepted(DecodeStatus status) {
  if (status == DecodeStatus::kBadTag) {
    stats_.bad_tag++;
    g_bad_auth.inc();
    return false;
  }
  if (status == DecodeStatus::kMalformed) {
    stats_.malformed++;
    g_bad_malformed.inc();
    return false;
  }
  return true;
}

void Membership::apply_message(SwimMessage& msg) {
  bool state_sync = msg.type == MessageType::kJoin || msg.type == MessageType::kJoinAck;
  for (auto& update : msg.updates) {
    if (update.accuser.empty()) update.accuser = msg.sender;  // a state sync's suspicions
    apply(update, state_sync);
  }
}

void Membership::handle_ping(const SwimMessage& msg, const net::SocketAddress& from) {
  if (msg.target != config_.node_id) return;  // meant for another node (one that restarted?)
  SwimMessage ack = make_header(MessageType::kAck, msg.seq, config_.node_id);
  send_message(ack, from, true);
}

void Membership::handle_ping_req(const SwimMessage& msg, const net::SocketAddress& from) {
  uint32_t seq = next_seq_++;
  relays_[seq] =
      Relay{msg.sender, from, msg.seq, reactor_.now_ms() + 2 * config_.probe_interval_ms};
  SwimMessage ping = make_header(MessageType::kPing, seq, config_.node_id, msg.target);
  send_message(ping, msg.target_address, true);
}

void Membership::handle_ack(const SwimMessage& msg) {
  auto relay = relays_.find(msg.seq);
  if (relay != relays_.end()) {
    SwimMessage ack = make_header(MessageType::kAck, relay->second.requester_seq, config_.node_id);
    net::SocketAddress to = relay->second.requester_address;
    relays_.erase(relay);
    send_message(ack, to, true);
    return;
  }
  if (msg.seq != 0 && msg.seq == probe_seq_) {
    probe_acked_ = true;
    probe_timeout_timer_.cancel();
  }
}

// ---- State machine -------------------------------------------------------------------------

void Membership::apply(const MemberUpdate& update, bool from_state_sync) {
  switch (update.state) {
    case MemberState::kAlive:
      apply_alive(update);
      break;
    case MemberState::kSuspect:
      apply_suspect(update);
      break;
    case MemberState::kDead:
      if (from_state_sync) {
        MemberUpdate softened = update;
        softened.state = MemberState::kSuspect;
        apply_suspect(softened);
      } else {
        apply_dead(update);
      }
      break;
    case MemberState::kLeft:
      apply_dead(update);
      break;
  }
}

void Membership::apply_alive(const MemberUpdate& update) {
  if (update.node_id == config_.node_id) {
    // A claim from a previous life of ours (we restarted, maybe on another port): out-bid it.
    uint32_t mine = self().info.incarnation;
    if (update.incarnation > mine ||
        (update.incarnation == mine && !same_address(update.address, advertise_)))
      refute(update.incarnation);
    return;
  }
  auto it = nodes_.find(update.node_id);
  if (it == nodes_.end()) {
    auto node = std::make_unique<Node>();
    node->info = {update.node_id, update.address, MemberState::kAlive, update.incarnation};
    Node& added = *node;
    nodes_[update.node_id] = std::move(node);
    state_counts_[0]++;
    g_members[0].inc();
    queue_broadcast(added.info);
    if (on_change_) on_change_(added.info, MemberEvent::kJoined);
    return;
  }
  Node& node = *it->second;
  if (update.incarnation <= node.info.incarnation) return;
  MemberState before = node.info.state;
  node.info.address = update.address;
  end_suspicion(node);
  set_state(node, MemberState::kAlive, update.incarnation);
  queue_broadcast(node.info);
  if (before != MemberState::kAlive && on_change_) on_change_(node.info, MemberEvent::kAliveAgain);
}

void Membership::apply_suspect(const MemberUpdate& update) {
  if (update.node_id == config_.node_id) {
    if (update.incarnation >= self().info.incarnation) refute(update.incarnation);
    return;
  }
  auto it = nodes_.find(update.node_id);
  if (it == nodes_.end()) return;  // we cannot suspect a node we never knew alive
  Node& node = *it->second;
  if (update.incarnation < node.info.incarnation) return;
  if (node.info.state == MemberState::kSuspect) {
    confirm_suspicion(node, update);
    return;
  }
  if (node.info.state != MemberState::kAlive) return;
  set_state(node, MemberState::kSuspect, update.incarnation);
  stats_.suspicions++;
  g_suspicions.inc();
  start_suspicion(node, update.accuser);
  queue_broadcast(node.info, update.accuser);
  if (on_change_) on_change_(node.info, MemberEvent::kSuspected);
}

// Lifeguard: the timeout starts long and shrinks with every independent confirmation. Expect
// indirect_checks of them, none when too few other members could give them (memberlist).
void Membership::start_suspicion(Node& node, const std::string& accuser) {
  int64_t min_ms = suspicion_min_ms();
  int64_t max_ms = min_ms * std::max(1, config_.suspicion_max_mult);
  int k = config_.indirect_checks;
  if (static_cast<int>(live_count()) - 2 < k) k = 0;  // minus ourselves and the suspect
  node.suspicion = std::make_unique<Suspicion>(accuser, k, min_ms, max_ms, reactor_.now_ms());
  std::string id = node.info.node_id;
  node.suspicion_timer.set_callback([this, id] { on_suspicion_timeout(id); });
  reactor_.schedule(node.suspicion_timer, node.suspicion->timeout_ms());
}

// Another member suspects it too. A new accuser brings the deadline closer and is gossiped on,
// so that every node hears the confirmations (memberlist re-gossips only new ones).
void Membership::confirm_suspicion(Node& node, const MemberUpdate& update) {
  bool newer = update.incarnation > node.info.incarnation;
  if (newer) set_state(node, MemberState::kSuspect, update.incarnation);  // keep the timer
  bool confirmed = node.suspicion && node.suspicion->confirm(update.accuser);
  if (confirmed) {
    int64_t left = node.suspicion->deadline_ms() - reactor_.now_ms();
    reactor_.schedule(node.suspicion_timer, std::max<int64_t>(left, 0));
  }
  if (newer || confirmed) queue_broadcast(node.info, update.accuser);
}

void Membership::end_suspicion(Node& node) {
  node.suspicion_timer.cancel();
  node.suspicion.reset();
}

void Membership::apply_dead(const MemberUpdate& update) {
  if (update.node_id == config_.node_id) {
    if (running_ && update.incarnation >= self().info.incarnation) {
      refute(update.incarnation);
      // Others declared us dead (we were paused, or cut off): they may have taken over what
      // we own. The callback hears it as a kDead event about ourselves.
      if (on_change_) on_change_(self().info, MemberEvent::kDead);
    }
    return;
  }
  auto it = nodes_.find(update.node_id);
  if (it == nodes_.end()) return;
  Node& node = *it->second;
  if (update.incarnation < node.info.incarnation) return;
  MemberState now = node.info.state;
  // Dead and left are final at an incarnation, except that a node's own word (left) wins.
  if (now == MemberState::kLeft ||
      (now == MemberState::kDead && update.state != MemberState::kLeft))
    return;
  end_suspicion(node);
  set_state(node, update.state, update.incarnation);
  queue_broadcast(node.info);
  if (on_change_)
    on_change_(node.info,
               update.state == MemberState::kLeft ? MemberEvent::kLeft : MemberEvent::kDead);
}

void Membership::on_suspicion_timeout(const std::string& node_id) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end() || it->second->info.state != MemberState::kSuspect) return;
  MemberUpdate verdict = update_of(it->second->info);
  verdict.state = MemberState::kDead;
  apply_dead(verdict);
}

// Only a node bumps its own incarnation: past any accusation, then gossip that it is alive.
void Membership::refute(uint32_t accused_incarnation) {
  Node& me = self();
  if (me.info.state == MemberState::kLeft) return;
  me.info.incarnation = std::max(me.info.incarnation, accused_incarnation) + 1;
  awareness_.apply_delta(1);  // being suspected is a hint that we are the slow one
  stats_.refutations++;
  g_refutations.inc();
  queue_broadcast(me.info);
}

void Membership::set_state(Node& node, MemberState state, uint32_t incarnation) {
  auto from = static_cast<int>(node.info.state), to = static_cast<int>(state);
  if (from != to) {
    state_counts_[from]--;
    state_counts_[to]++;
    g_members[from].dec();
    g_members[to].inc();
  }
  node.info.state = state;
  node.info.incarnation = incarnation;
}

// ---- Dissemination -------------------------------------------------------------------------

void Membership::queue_broadcast(const MemberInfo& info, const std::string& accuser) {
  MemberUpdate update = update_of(info);
  if (info.state == MemberState::kSuspect)
    update.accuser = accuser.empty() ? config_.node_id : accuser;
  broadcasts_.push(std::move(update));
}

// Least-sent updates first, as many as fit; each is retired after retransmit_limit() sends.
void Membership::piggyback(PacketWriter& writer) {
  broadcasts_.fill(writer, retransmit_limit());
}

size_t Membership::live_count() const {
  return static_cast<size_t>(state_counts_[0] + state_counts_[1]);
}

int Membership::retransmit_limit() const {
  double n = static_cast<double>(live_count());
  return config_.retransmit_mult * static_cast<int>(std::ceil(std::log10(n + 1)));
}

// memberlist's suspicionTimeout: mult * max(1, log10(n)) * probe interval. Lifeguard's
// suspicion starts at suspicion_max_mult times this and shrinks to it.
int64_t Membership::suspicion_min_ms() const {
  double n = std::max<double>(1, static_cast<double>(live_count()));
  double scale = std::max(1.0, std::log10(n));
  return static_cast<int64_t>(config_.suspicion_mult * scale *
                              static_cast<double>(config_.probe_interval_ms));
}

MemberUpdate Membership::update_of(const MemberInfo& info) const {
  return MemberUpdate{info.state, info.incarnation, info.node_id, info.address, {}};
}

bool Membership::is_live_member_at(const net::SocketAddress& address) const {
  for (const auto& [id, node] : nodes_) {
    if (id != config_.node_id && node->info.state == MemberState::kAlive &&
        same_address(node->info.address, address))
      return true;
  }
  return false;
}

// ---- Sending -------------------------------------------------------------------------------

void Membership::send_message(const SwimMessage& header, const net::SocketAddress& to,
                              bool with_gossip) {
  if (!writer_.begin(header)) return;
  if (with_gossip) piggyback(writer_);
  send_datagram(writer_.finish(), to, header.type);
}

void Membership::send_datagram(std::string_view data, const net::SocketAddress& to,
                               MessageType type) {
  if (fd_ < 0) return;
  if (filter_ && filter_(true, to, type)) {
    stats_.packets_dropped_by_filter++;
    return;
  }
  ssize_t n = ::sendto(fd_, data.data(), data.size(), MSG_NOSIGNAL, to.sockaddr(), to.length());
  if (n < 0) {
    // UDP: a full send buffer or an unreachable peer loses this datagram, as the network may.
    log_debug("gossip sendto %s: %s", to.to_string().c_str(), std::strerror(errno));
    return;
  }
  stats_.bytes_out += static_cast<uint64_t>(n);
  g_bytes_out.inc(static_cast<uint64_t>(n));
}

}  // namespace weir::cluster
