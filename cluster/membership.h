// cluster/membership.h — SWIM cluster membership over UDP with Lifeguard's refinements (and
// state syncs over the peer links' TCP)
// (memberlist's protocol, our codec).
//
// Each node probes one member per probe interval, round-robin over a shuffled list: a ping,
// and when no ack comes within probe_timeout, ping-reqs through k other members. A probe that
// got no ack by the end of its interval makes the target suspect at its incarnation; a suspect
// that does not refute within the suspicion timeout is dead. A node that hears itself suspected
// (or declared dead) refutes: it bumps its own incarnation and gossips alive. Every state change
// is gossiped by piggybacking on pings and acks, each update retransmit_mult * ceil(log10(n+1))
// times (cluster/broadcast_queue.h: fewest transmits first, one update per member).
//
// Lifeguard (Dadgar et al. 2017, as memberlist implements it) makes a slow node doubt itself
// before it accuses others:
// - Local health (cluster/awareness.h): failed probes and refutations raise a score, acked
//   probes lower it; the probe interval and timeout are stretched by (score + 1), at most
//   awareness_max times.
// - Dynamic suspicion (cluster/suspicion.h): a suspicion starts at suspicion_max_mult times
//   the SWIM timeout and shrinks logarithmically to it as k = indirect_checks other members
//   confirm it (suspect updates name their accuser).
// - Buddy system: a ping to a member we believe suspect carries the suspicion, so the member
//   hears it, and refutes, from the first prober rather than from gossip.
//
// Joining pushes our whole state to the seeds (exponential backoff, capped) until one answers
// with its state. Every rejoin_interval we push it again to the seeds we do not list as live
// (none when all are: push-pull already exchanges states; one when push-pull is off) and to
// rejoin_dead_per_tick members we believe dead, rotating through them (a small join with our
// entry and our verdict; one that is alive refutes and answers with its state), so a partition
// heals however long it lasted: the far side learns it was declared dead, refutes, and both views
// merge again (memberlist forgets dead members; we keep them for this reason). Bounding the
// rejoin keeps its cost flat as the cluster grows: at 1000 members, pushing to every seed and
// every dead member saturated a core. Every push_pull_interval we also exchange whole states
// with one random live member, which repairs whatever gossip was lost. That exchange goes over
// the member's TCP peer link when one is up (set_stream_sender; the owner hands what arrives to
// handle_stream): one message each way, so a lost datagram cannot cut it short, and the answer
// comes back over the link. Without a link (or a stream sender: tests, the simulator), and for
// joins and rejoins, a whole state is split into datagrams of at most kMaxPacket bytes, each a
// valid message (about 80 members each with short ids, 18 with 64-byte ids); only the first
// asks for a reply. A whole state may accuse but not convict, whichever way it came: a dead
// claim in it is applied as suspect (memberlist's push-pull rule).
//
// Every message carries a truncated HMAC-SHA256 tag (cluster/swim_codec.h), datagram or stream;
// one with a bad tag, a malformed body or (stream) more than kMaxStreamMessage bytes is counted
// and dropped before it can touch any state.
//
// Thread-safety: a Membership belongs to one reactor; every method must be called on that
// reactor's thread (construct and destroy it there too, or while the reactor is not running).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/awareness.h"
#include "cluster/broadcast_queue.h"
#include "cluster/suspicion.h"
#include "cluster/swim_codec.h"
#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "net/address.h"

namespace weir::cluster {

struct MembershipConfig {
  std::string node_id;                    // unique in the cluster, 1..64 bytes
  net::SocketAddress bind;                // UDP address to bind (port 0 picks a free one)
  net::SocketAddress advertise;           // address peers use; default: the bound address
  std::vector<net::SocketAddress> seeds;  // --join
  std::string secret;                     // shared HMAC key (--cluster-secret)
  int64_t probe_interval_ms = 1000;
  int64_t probe_timeout_ms = 500;
  int indirect_checks = 3;  // k members asked to ping-req a silent target
  int suspicion_mult = 4;   // suspicion timeout = mult * max(1, log10(n)) * probe_interval
  // Lifeguard: a suspicion starts at this many times that timeout and shrinks to it as
  // indirect_checks members confirm it (1: a fixed timeout).
  int suspicion_max_mult = 6;
  int awareness_max = 8;    // probe interval and timeout stretch up to this factor (1: off)
  int retransmit_mult = 4;  // each update is piggybacked mult * ceil(log10(n+1)) times
  int64_t join_retry_initial_ms = 200;  // first join retry; doubles up to join_retry_max_ms
  int64_t join_retry_max_ms = 10000;
  int64_t rejoin_interval_ms = 30000;  // re-contact seeds and dead members this often
  int rejoin_dead_per_tick = 3;        // dead members contacted per rejoin, in rotation
  // Anti-entropy: exchange whole states with one random live member this often (0: never), so
  // an update whose piggybacked copies were all lost still arrives (memberlist's push-pull).
  int64_t push_pull_interval_ms = 30000;
};

struct MemberInfo {
  std::string node_id;
  net::SocketAddress address;
  MemberState state = MemberState::kAlive;
  uint32_t incarnation = 0;
};

// kDead about this node itself: others declared it dead, and it refuted.
enum class MemberEvent { kJoined, kAliveAgain, kSuspected, kDead, kLeft };
const char* member_event_name(MemberEvent event);

// Per-instance counts (the process-wide metrics sum every instance; tests read these).
struct MembershipStats {
  uint64_t probes = 0;
  uint64_t probe_failures = 0;
  uint64_t suspicions = 0;
  uint64_t refutations = 0;
  uint64_t bad_tag = 0;
  uint64_t malformed = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t packets_dropped_by_filter = 0;
  uint64_t push_pulls_tcp = 0;  // push-pulls we started, by the transport they went over
  uint64_t push_pulls_udp = 0;
  uint64_t stream_messages_in = 0;  // stream messages accepted (pushes and answers)
};

class Membership : public core::IoHandler {
 public:
  using ChangeCallback = std::function<void(const MemberInfo&, MemberEvent)>;
  // Test hook: return true to drop a datagram. `outgoing` tells the direction; `peer` is the
  // destination or the source address; `type` is known for outgoing datagrams only (incoming
  // ones are filtered before they are authenticated, as the network would).
  using PacketFilter =
      std::function<bool(bool outgoing, const net::SocketAddress& peer, MessageType type)>;
  // Sends one stream message whole to `node_id` (a peer-link frame of type kLinkFrameSwim);
  // false when no link to it is up. Called on this membership's reactor.
  using StreamSender = std::function<bool(const std::string& node_id, std::string_view message)>;

  Membership(core::Reactor& reactor, MembershipConfig config);
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;
  ~Membership() override;

  // Binds the socket, starts probing and joining. False with a reason in `error` on failure.
  bool start(std::string* error);
  // Graceful leave: tells every member we left (they mark us left, not dead) and stops.
  void leave();
  // Abrupt stop: closes the socket and cancels every timer, telling nobody.
  void stop();

  std::vector<MemberInfo> members() const;
  const std::string& node_id() const { return config_.node_id; }
  const net::SocketAddress& address() const { return advertise_; }
  uint32_t incarnation() const;
  // True once a seed answered (or there were no seeds).
  bool joined() const { return joined_; }
  const MembershipStats& stats() const { return stats_; }
  // Lifeguard's local health score, 0 (healthy) .. awareness_max - 1.
  int health_score() const { return awareness_.score(); }
  // The probe interval and timeout as the health score stretches them now.
  int64_t current_probe_interval_ms() const;
  int64_t current_probe_timeout_ms() const;
  // The whole suspicion timeout of a suspect member as its confirmations have shrunk it so far
  // (from the start of the suspicion); -1 when it is not suspect.
  int64_t suspicion_timeout_of(const std::string& node_id) const;
  void set_change_callback(ChangeCallback callback) { on_change_ = std::move(callback); }
  void set_packet_filter(PacketFilter filter) { filter_ = std::move(filter); }
  // Push-pulls go over the stream when it sends; the UDP datagrams when it does not.
  void set_stream_sender(StreamSender sender) { stream_sender_ = std::move(sender); }
  // A stream message (a kLinkFrameSwim frame's payload) from the peer link to `from_node`.
  void handle_stream(const std::string& from_node, std::string_view message);

  void on_io(uint32_t events) override;

 private:
  struct Node {
    MemberInfo info;
    core::Timer suspicion_timer;
    std::unique_ptr<Suspicion> suspicion;  // set while suspect
  };
  struct Relay {  // a ping we send on behalf of a ping-req
    std::string requester;
    net::SocketAddress requester_address;
    uint32_t requester_seq;
    int64_t expires_ms;
  };

  // Probing.
  void probe_tick();
  void finish_probe();
  void start_probe(Node& target);
  void send_indirect_probes();
  Node* next_probe_target();
  // Joining.
  void send_joins();
  void join_retry_tick();
  void rejoin_tick();
  void rejoin_seeds();
  void rejoin_dead_members();
  void send_dead_check(const MemberInfo& member);
  void push_pull_tick();
  void send_state(const net::SocketAddress& to, MessageType type, uint8_t flags);
  bool send_state_stream(const std::string& node_id, MessageType type, uint8_t flags);
  // Incoming.
  void handle_packet(std::string_view data, const net::SocketAddress& from);
  bool accepted(DecodeStatus status);
  void apply_message(SwimMessage& msg);
  void handle_ping(const SwimMessage& msg, const net::SocketAddress& from);
  void handle_ping_req(const SwimMessage& msg, const net::SocketAddress& from);
  void handle_ack(const SwimMessage& msg);
  // State machine: apply one claim; `from_state_sync` softens dead to suspect (memberlist's
  // push-pull rule: a full state is old news, so it may accuse but not convict).
  void apply(const MemberUpdate& update, bool from_state_sync);
  void apply_alive(const MemberUpdate& update);
  void apply_suspect(const MemberUpdate& update);
  void apply_dead(const MemberUpdate& update);
  void refute(uint32_t accused_incarnation);
  void set_state(Node& node, MemberState state, uint32_t incarnation);
  void start_suspicion(Node& node, const std::string& accuser);
  void confirm_suspicion(Node& node, const MemberUpdate& update);
  void end_suspicion(Node& node);
  void on_suspicion_timeout(const std::string& node_id);
  // Dissemination.
  void queue_broadcast(const MemberInfo& info, const std::string& accuser = {});
  void piggyback(PacketWriter& writer);
  int retransmit_limit() const;
  int64_t suspicion_min_ms() const;
  // Sending.
  void send_message(const SwimMessage& header, const net::SocketAddress& to, bool with_gossip);
  void send_datagram(std::string_view data, const net::SocketAddress& to, MessageType type);

  Node& self() { return *nodes_.at(config_.node_id); }
  const Node& self() const { return *nodes_.at(config_.node_id); }
  size_t live_count() const;
  MemberUpdate update_of(const MemberInfo& info) const;
  bool is_live_member_at(const net::SocketAddress& address) const;

  core::Reactor& reactor_;
  MembershipConfig config_;
  net::SocketAddress advertise_;
  int fd_ = -1;
  bool running_ = false;
  bool joined_ = false;
  PacketWriter writer_;
  std::string read_buf_;
  std::mt19937 rng_;

  std::map<std::string, std::unique_ptr<Node>> nodes_;  // self included
  std::vector<std::string> probe_order_;
  size_t probe_index_ = 0;

  uint32_t next_seq_ = 1;
  uint32_t probe_seq_ = 0;  // 0: no probe in flight
  std::string probe_target_;
  bool probe_acked_ = false;
  std::map<uint32_t, Relay> relays_;  // by the seq of our ping to the target
  BroadcastQueue broadcasts_;
  Awareness awareness_;
  std::string rejoin_cursor_;  // the last dead member a rejoin contacted
  size_t rejoin_seed_index_ = 0;

  core::Timer probe_timer_;
  core::Timer probe_timeout_timer_;
  core::Timer join_timer_;
  core::Timer rejoin_timer_;
  core::Timer push_pull_timer_;
  int64_t join_backoff_ms_ = 0;

  MembershipStats stats_;
  int64_t state_counts_[4] = {0, 0, 0, 0};  // this instance's share of the members gauge
  ChangeCallback on_change_;
  PacketFilter filter_;
  StreamSender stream_sender_;
};

}  // namespace weir::cluster
