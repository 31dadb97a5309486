// tests/membership_test.cc — SWIM membership over real UDP sockets on 127.0.0.1, each node on
// its own reactor thread (push-pulls over fake in-process links); and the wire codec (round
// trips, truncation, random bytes).
#include "cluster/membership.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "cluster/suspicion.h"
#include "cluster/swim_codec.h"
#include "core/metrics.h"
#include "core/reactor.h"
#include "net/socket_ops.h"
#include "tests/cluster_test_util.h"

namespace weir::cluster {
namespace {

using namespace std::chrono_literals;

using namespace test_util;

MembershipConfig test_config(const std::string& id) {
  MembershipConfig c;
  c.node_id = id;
  c.bind = loopback(0);
  c.secret = kSecret;
  c.probe_interval_ms = 50;
  c.probe_timeout_ms = 25;
  c.join_retry_initial_ms = 50;
  c.join_retry_max_ms = 400;
  c.rejoin_interval_ms = 300;
  // Anti-entropy at the rejoin's pace, as in production (both 30 s): a rejoin no longer pushes
  // to seeds we are in touch with, so push-pull is what repairs a lost "joined" gossip.
  c.push_pull_interval_ms = 300;
  return c;
}

// One Membership on its own reactor thread. Every call into it goes through the loop.
class TestNode {
 public:
  explicit TestNode(MembershipConfig config) : thread_([this] { reactor_.run(); }) {
    membership_ = std::make_unique<Membership>(reactor_, std::move(config));
    call([&] {
      membership_->set_change_callback([this](const MemberInfo& info, MemberEvent event) {
        std::lock_guard lock(mutex_);
        events_.emplace_back(info.node_id, event);
      });
      std::string error;
      EXPECT_TRUE(membership_->start(&error)) << error;
    });
  }
  ~TestNode() { kill(); }

  template <typename Fn>
  auto call(Fn fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    reactor_.post([&task] { task(); });
    return result.get();
  }

  // Abrupt: socket closed, loop stopped, nobody told.
  void kill() {
    if (!thread_.joinable()) return;
    call([&] { membership_->stop(); });
    reactor_.stop();
    thread_.join();
    membership_.reset();
  }

  std::vector<MemberInfo> members() {
    return call([&] { return membership_->members(); });
  }
  bool sees(const std::string& id, MemberState state) {
    for (const auto& m : members())
      if (m.node_id == id) return m.state == state;
    return false;
  }
  std::optional<MemberInfo> member(const std::string& id) {
    for (auto& m : members())
      if (m.node_id == id) return m;
    return std::nullopt;
  }
  MembershipStats stats() {
    return call([&] { return membership_->stats(); });
  }
  bool saw_event(const std::string& id, MemberEvent event) {
    std::lock_guard lock(mutex_);
    for (auto& [who, what] : events_)
      if (who == id && what == event) return true;
    return false;
  }
  net::SocketAddress address() {
    return call([&] { return membership_->address(); });
  }
  void set_filter(Membership::PacketFilter filter) {
    call([&] { membership_->set_packet_filter(std::move(filter)); });
  }
  Membership& membership() { return *membership_; }
  void post(std::function<void()> fn) { reactor_.post(std::move(fn)); }

 private:
  core::Reactor reactor_;
  std::unique_ptr<Membership> membership_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::pair<std::string, MemberEvent>> events_;
};

// A cluster of `n` nodes "n0".."n{n-1}", every node seeded with n0 only.
std::vector<std::unique_ptr<TestNode>> start_cluster(int n) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  nodes.push_back(std::make_unique<TestNode>(test_config("n0")));
  net::SocketAddress seed = nodes[0]->address();
  for (int i = 1; i < n; ++i) {
    MembershipConfig c = test_config("n" + std::to_string(i));
    c.seeds = {seed};
    nodes.push_back(std::make_unique<TestNode>(c));
  }
  return nodes;
}

bool all_see(std::vector<std::unique_ptr<TestNode>>& nodes, const std::string& id, MemberState s,
             const std::set<size_t>& skip = {}) {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!skip.count(i) && nodes[i] && !nodes[i]->sees(id, s)) return false;
  return true;
}

bool all_alive(std::vector<std::unique_ptr<TestNode>>& nodes) {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!all_see(nodes, "n" + std::to_string(i), MemberState::kAlive)) return false;
  return true;
}

// HMAC-SHA256 over `body`, truncated tag appended: what PacketWriter::finish() does.
std::string sign(const std::string& body) {
  unsigned char tag[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), tag, &len);
  return body + std::string(reinterpret_cast<char*>(tag), kTagBytes);
}

// A UDP socket that speaks the codec directly, for forged and hand-made packets.
class RawPeer {
 public:
  RawPeer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    net::SocketAddress addr = loopback(0);
    EXPECT_EQ(::bind(fd_, addr.sockaddr(), addr.length()), 0);
  }
  ~RawPeer() { ::close(fd_); }
  uint16_t port() const { return net::local_address(fd_).port(); }
  void send(std::string_view bytes, const net::SocketAddress& to) {
    ::sendto(fd_, bytes.data(), bytes.size(), 0, to.sockaddr(), to.length());
  }
  void send_gossip(const std::string& secret, const MemberUpdate& update,
                   const net::SocketAddress& to) {
    PacketWriter writer(secret);
    SwimMessage header;
    header.type = MessageType::kGossip;
    header.sender = "raw";
    writer.begin(header);
    writer.add_update(update);
    send(writer.finish(), to);
  }

 private:
  int fd_ = -1;
};

// Stand-ins for the peer links: a stream message is posted to the receiver's reactor, never
// delivered inside the sender's call, as a link's read event would deliver it. A node that is
// not added (or was cut) has no link up: sends to and from it fail. Declare it before the
// nodes, so that it outlives them.
class FakeLinks {
 public:
  void add(TestNode& node, const std::string& id) {
    {
      std::lock_guard lock(mutex_);
      nodes_[id] = &node;
    }
    node.call([&] {
      node.membership().set_stream_sender(
          [this, id](const std::string& to, std::string_view message) {
            return deliver(id, to, message);
          });
    });
  }
  void cut(const std::string& id) {
    std::lock_guard lock(mutex_);
    nodes_.erase(id);
  }

 private:
  bool deliver(const std::string& from, const std::string& to, std::string_view message) {
    std::lock_guard lock(mutex_);
    auto it = nodes_.find(to);
    if (it == nodes_.end() || !nodes_.count(from)) return false;
    TestNode* node = it->second;
    node->post([node, from, bytes = std::string(message)] {
      node->membership().handle_stream(from, bytes);
    });
    return true;
  }

  std::mutex mutex_;
  std::map<std::string, TestNode*> nodes_;
};

// ---- Cluster behaviour ---------------------------------------------------------------------

TEST(Membership, FiveNodesConvergeToAllAliveFromOneSeed) {
  auto nodes = start_cluster(5);
  EXPECT_TRUE(eventually([&] { return all_alive(nodes); }));
  for (auto& node : nodes) {
    EXPECT_EQ(node->members().size(), 5u);
    EXPECT_TRUE(node->call([&] { return node->membership().joined(); }));
  }
  EXPECT_GT(nodes[1]->stats().probes, 0u);
  double alive = 0, bytes_out = 0;
  ASSERT_TRUE(core::find_metric_value("weir_gossip_members", "state=\"alive\"", &alive));
  EXPECT_GE(alive, 25);  // five views of five members (other tests' nodes are gone)
  ASSERT_TRUE(core::find_metric_value("weir_gossip_bytes_total", "direction=\"out\"", &bytes_out));
  EXPECT_GT(bytes_out, 0);
}

TEST(Membership, JoinRetriesWithBackoffUntilTheSeedAnswers) {
  // Reserve a free port for a seed that starts late.
  uint16_t seed_port;
  {
    RawPeer probe_port;
    seed_port = probe_port.port();
  }
  MembershipConfig c = test_config("n1");
  c.seeds = {loopback(seed_port)};
  TestNode early(c);
  std::this_thread::sleep_for(400ms);  // several retries into the void
  EXPECT_FALSE(early.call([&] { return early.membership().joined(); }));
  MembershipConfig seed_config = test_config("n0");
  seed_config.bind = loopback(seed_port);
  TestNode seed(seed_config);
  EXPECT_TRUE(eventually([&] {
    return early.call([&] { return early.membership().joined(); }) &&
           early.sees("n0", MemberState::kAlive) && seed.sees("n1", MemberState::kAlive);
  }));
}

TEST(Membership, StoppedNodeBecomesSuspectThenDeadEverywhere) {
  auto nodes = start_cluster(4);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  auto killed_at = std::chrono::steady_clock::now();
  nodes[3]->kill();
  nodes[3].reset();
  // Bound: a probe round (4 x 50 ms) + the interval + suspicion (4 x 50 ms) + gossip; 10 s of
  // slack for a loaded machine.
  ASSERT_TRUE(eventually([&] { return all_see(nodes, "n3", MemberState::kDead, {3}); }));
  auto took = std::chrono::steady_clock::now() - killed_at;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(nodes[i]->saw_event("n3", MemberEvent::kDead));
  }
  // Somebody probed it, failed and suspected it before anyone declared it dead.
  bool suspected = false;
  uint64_t failures = 0;
  for (int i = 0; i < 3; ++i) {
    suspected |= nodes[i]->saw_event("n3", MemberEvent::kSuspected);
    failures += nodes[i]->stats().probe_failures;
  }
  EXPECT_TRUE(suspected);
  EXPECT_GT(failures, 0u);
  EXPECT_LT(took, 5s);
  // The survivors stay alive to each other.
  EXPECT_TRUE(eventually([&] {
    for (int i = 0; i < 3; ++i)
      if (!all_see(nodes, "n" + std::to_string(i), MemberState::kAlive, {3})) return false;
    return true;
  }));
}

TEST(Membership, SuspectedNodeRefutesAndEndsAliveWithHigherIncarnation) {
  auto nodes = start_cluster(4);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  uint32_t before = nodes[2]->member("n2")->incarnation;
  // n2 answers no probe: its acks are lost, so its probers suspect it.
  nodes[2]->set_filter([](bool outgoing, const net::SocketAddress&, MessageType type) {
    return outgoing && type == MessageType::kAck;
  });
  ASSERT_TRUE(eventually([&] { return nodes[2]->stats().refutations > 0; }));
  nodes[2]->set_filter(nullptr);
  EXPECT_TRUE(eventually([&] {
    if (!all_see(nodes, "n2", MemberState::kAlive)) return false;
    for (auto& node : nodes)
      if (node->member("n2")->incarnation <= before) return false;
    return true;
  }));
  bool someone_suspected = false;
  for (int i : {0, 1, 3}) someone_suspected |= nodes[i]->saw_event("n2", MemberEvent::kSuspected);
  EXPECT_TRUE(someone_suspected);
  EXPECT_TRUE(eventually([&] { return all_alive(nodes); }));
}

// A restarted node comes back with incarnation 0 on a new port; it learns what the cluster
// believes about its previous life and out-bids it, so its new address wins everywhere.
void restart_node(std::vector<std::unique_ptr<TestNode>>& nodes, size_t i) {
  nodes[i]->kill();
  MembershipConfig c = test_config("n" + std::to_string(i));
  c.seeds = {nodes[0]->address()};
  nodes[i] = std::make_unique<TestNode>(c);
}

bool all_see_at(std::vector<std::unique_ptr<TestNode>>& nodes, const std::string& id,
                const net::SocketAddress& address) {
  for (auto& node : nodes) {
    auto m = node->member(id);
    if (!m || m->state != MemberState::kAlive || m->address.to_string() != address.to_string())
      return false;
  }
  return true;
}

TEST(Membership, NodeRestartedAfterBeingDeclaredDeadWinsWithHigherIncarnation) {
  auto nodes = start_cluster(4);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  nodes[2]->kill();
  ASSERT_TRUE(eventually([&] { return all_see(nodes, "n2", MemberState::kDead, {2}); }));
  uint32_t dead_at = nodes[0]->member("n2")->incarnation;
  restart_node(nodes, 2);
  net::SocketAddress fresh = nodes[2]->address();
  EXPECT_TRUE(eventually([&] { return all_see_at(nodes, "n2", fresh); }));
  EXPECT_GT(nodes[0]->member("n2")->incarnation, dead_at);
  EXPECT_TRUE(nodes[0]->saw_event("n2", MemberEvent::kAliveAgain));
}

TEST(Membership, NodeRestartedBeforeDetectionTakesOverWithItsNewAddress) {
  auto nodes = start_cluster(4);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  restart_node(nodes, 3);  // same id, incarnation 0, a new port; the old one never refuted
  net::SocketAddress fresh = nodes[3]->address();
  EXPECT_TRUE(eventually([&] { return all_see_at(nodes, "n3", fresh) && all_alive(nodes); }));
  EXPECT_GT(nodes[3]->member("n3")->incarnation, 0u);
}

// 5% of datagrams lost in each direction: suspicions may happen, but refutation keeps every
// node in (or brings it back), and once the loss stops everyone is alive.
TEST(Membership, FivePercentPacketLossEndsAllAlive) {
  auto nodes = start_cluster(5);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto rng = std::make_shared<std::mt19937>(static_cast<unsigned>(i + 1));
    nodes[i]->set_filter(
        [rng](bool, const net::SocketAddress&, MessageType) { return (*rng)() % 100 < 5; });
  }
  std::this_thread::sleep_for(2s);
  uint64_t suspicions = 0, dropped = 0;
  for (auto& node : nodes) {
    suspicions += node->stats().suspicions;
    dropped += node->stats().packets_dropped_by_filter;
    node->set_filter(nullptr);
  }
  EXPECT_GT(dropped, 0u);
  EXPECT_TRUE(eventually([&] { return all_alive(nodes); }));
  RecordProperty("suspicions", static_cast<int>(suspicions));
}

TEST(Membership, GracefulLeaveIsSeenAsLeftNotDead) {
  auto nodes = start_cluster(4);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  nodes[1]->call([&] { nodes[1]->membership().leave(); });
  EXPECT_TRUE(eventually([&] { return all_see(nodes, "n1", MemberState::kLeft, {1}); }));
  for (int i : {0, 2, 3}) {
    EXPECT_TRUE(nodes[i]->saw_event("n1", MemberEvent::kLeft));
    EXPECT_FALSE(nodes[i]->saw_event("n1", MemberEvent::kDead));
  }
}

// Node i of a cluster whose only state exchange is the periodic push-pull (every 100 ms): no
// piggybacked gossip, no rejoin; it joins through node 0.
MembershipConfig push_pull_only_config(int i, const std::vector<std::unique_ptr<TestNode>>& nodes) {
  MembershipConfig c = test_config("n" + std::to_string(i));
  c.retransmit_mult = 0;
  c.rejoin_interval_ms = 60000;
  c.push_pull_interval_ms = 100;
  if (i > 0) c.seeds = {nodes[0]->address()};
  return c;
}

// With piggybacking off and n2 deaf to n1, n2 can learn that n1 left only from a state
// exchange: the periodic push-pull brings it (left overrides the dead n2 found by itself).
TEST(Membership, PushPullRepairsLostGossip) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (int i = 0; i < 4; ++i) {
    MembershipConfig c = push_pull_only_config(i, nodes);
    nodes.push_back(std::make_unique<TestNode>(c));
  }
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  uint16_t n1_port = nodes[1]->address().port();
  nodes[2]->set_filter([n1_port](bool outgoing, const net::SocketAddress& peer, MessageType) {
    return !outgoing && peer.port() == n1_port;
  });
  nodes[1]->call([&] { nodes[1]->membership().leave(); });
  EXPECT_TRUE(eventually([&] { return all_see(nodes, "n1", MemberState::kLeft, {1}); }));
}

// Datagrams carry pings and acks only, and nothing piggybacks on them: n2 can learn that n1
// left (n1's leave reaches n0 alone) only from a push-pull over a link, one message each way.
TEST(Membership, PushPullOverTheLinksRepairsGossipWhenDatagramsCarryOnlyProbes) {
  FakeLinks links;
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (int i = 0; i < 3; ++i) {
    MembershipConfig c = push_pull_only_config(i, nodes);
    nodes.push_back(std::make_unique<TestNode>(c));
    links.add(*nodes.back(), c.node_id);
  }
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  uint16_t n0_port = nodes[0]->address().port();
  for (auto& node : nodes) {
    node->set_filter([n0_port](bool outgoing, const net::SocketAddress& peer, MessageType type) {
      bool probe = type == MessageType::kPing || type == MessageType::kAck;
      bool leave_to_n0 = type == MessageType::kGossip && peer.port() == n0_port;
      return outgoing && !probe && !leave_to_n0;
    });
  }
  MembershipStats n0_before = nodes[0]->stats(), n2_before = nodes[2]->stats();
  links.cut("n1");
  nodes[1]->call([&] { nodes[1]->membership().leave(); });
  ASSERT_TRUE(eventually([&] { return nodes[0]->sees("n1", MemberState::kLeft); }));
  EXPECT_TRUE(eventually([&] { return nodes[2]->sees("n1", MemberState::kLeft); }));
  MembershipStats n0_after = nodes[0]->stats(), n2_after = nodes[2]->stats();
  EXPECT_GT(n2_after.stream_messages_in, n2_before.stream_messages_in);
  EXPECT_GT(n0_after.push_pulls_tcp + n2_after.push_pulls_tcp,
            n0_before.push_pulls_tcp + n2_before.push_pulls_tcp);  // either may have started it
  double tcp = 0;
  ASSERT_TRUE(core::find_metric_value("weir_gossip_push_pull_total", "transport=\"tcp\"", &tcp));
  EXPECT_GT(tcp, 0);
}

TEST(Membership, PushPullFallsBackToDatagramsWhenNoLinkIsUp) {
  auto nodes = start_cluster(3);
  for (auto& node : nodes) {
    node->call([&] {
      node->membership().set_stream_sender(
          [](const std::string&, std::string_view) { return false; });
    });
  }
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  EXPECT_TRUE(eventually([&] { return nodes[1]->stats().push_pulls_udp >= 2; }));
  EXPECT_EQ(nodes[1]->stats().push_pulls_tcp, 0u);
  EXPECT_TRUE(all_alive(nodes));
}

// What arrives over a link passes the same checks as a datagram, and a whole state may accuse
// but not convict there too.
TEST(Membership, ForgedOrOversizedStreamMessagesAreRefusedAndCounted) {
  auto nodes = start_cluster(3);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  MemberInfo victim = *nodes[0]->member("n1");
  MemberUpdate dead{MemberState::kDead, victim.incarnation + 100, "n1", victim.address, {}};
  auto message = [&](const std::string& secret, MessageType type, uint8_t flags) {
    PacketWriter writer(secret);
    SwimMessage header;
    header.type = type;
    header.flags = flags;
    header.sender = "n2";
    header.target = "n0";
    EXPECT_TRUE(writer.begin(header));
    EXPECT_TRUE(writer.add_update(dead));
    return std::string(writer.finish());
  };
  Membership& m0 = nodes[0]->membership();
  auto deliver = [&](const std::string& from, const std::string& bytes) {
    nodes[0]->call([&] { m0.handle_stream(from, bytes); });
  };
  MembershipStats before = nodes[0]->stats();
  deliver("n2", message("wrong-secret", MessageType::kJoin, kFlagStream));
  EXPECT_EQ(nodes[0]->stats().bad_tag, before.bad_tag + 1);
  deliver("n2", std::string(kMaxStreamMessage + 1, 'x'));
  EXPECT_EQ(nodes[0]->stats().malformed, before.malformed + 1);
  // Well signed, but not a whole state, or not from the node at the other end of the link.
  deliver("n2", message(kSecret, MessageType::kPing, kFlagStream));
  deliver("n1", message(kSecret, MessageType::kJoin, kFlagStream));
  EXPECT_EQ(nodes[0]->stats().malformed, before.malformed + 3);
  EXPECT_EQ(nodes[0]->stats().stream_messages_in, before.stream_messages_in);
  EXPECT_FALSE(nodes[0]->sees("n1", MemberState::kDead));
  deliver("n2", message(kSecret, MessageType::kJoin, kFlagStream));
  EXPECT_EQ(nodes[0]->stats().stream_messages_in, before.stream_messages_in + 1);
  EXPECT_FALSE(nodes[0]->saw_event("n1", MemberEvent::kDead));
  EXPECT_TRUE(nodes[0]->saw_event("n1", MemberEvent::kSuspected));
  EXPECT_TRUE(eventually([&] { return all_alive(nodes); }));  // n1 refutes
}

TEST(Membership, WrongSecretCannotJoin) {
  auto nodes = start_cluster(3);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  MembershipConfig c = test_config("intruder");
  c.secret = "not-the-secret";
  c.seeds = {nodes[0]->address()};
  TestNode intruder(c);
  ASSERT_TRUE(eventually([&] { return nodes[0]->stats().bad_tag >= 3; }));  // join retries
  EXPECT_EQ(nodes[0]->members().size(), 3u);
  EXPECT_FALSE(nodes[0]->member("intruder").has_value());
  EXPECT_EQ(intruder.members().size(), 1u);
  EXPECT_FALSE(intruder.call([&] { return intruder.membership().joined(); }));
}

TEST(Membership, ForgedOrMalformedPacketsCannotEvict) {
  auto nodes = start_cluster(3);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  MemberInfo victim = *nodes[0]->member("n1");
  RawPeer raw;
  MemberUpdate forged{MemberState::kDead, victim.incarnation + 100, "n1", victim.address, {}};
  uint64_t bad_before = nodes[0]->stats().bad_tag, malformed_before = nodes[0]->stats().malformed;
  raw.send_gossip("wrong-secret", forged, nodes[0]->address());
  raw.send("garbage that is long enough to have a tag", nodes[0]->address());
  ASSERT_TRUE(eventually([&] {
    auto s = nodes[0]->stats();
    return s.bad_tag >= bad_before + 2;
  }));
  // A body that is well signed but malformed (a buggy peer holding the secret) is dropped too.
  PacketWriter writer(kSecret);
  SwimMessage header;
  header.type = MessageType::kGossip;
  header.sender = "raw";
  writer.begin(header);
  writer.add_update(forged);
  std::string body(writer.finish());
  body.resize(body.size() - kTagBytes - 3);  // cut into the update
  std::string packet = sign(body);
  raw.send(packet, nodes[0]->address());
  EXPECT_TRUE(eventually([&] { return nodes[0]->stats().malformed >= malformed_before + 1; }));
  EXPECT_TRUE(nodes[0]->sees("n1", MemberState::kAlive));
  EXPECT_TRUE(all_alive(nodes));
}

TEST(Membership, IncarnationRulesOrderUpdates) {
  MembershipConfig c = test_config("solo");
  c.probe_interval_ms = 60000;  // no probing: only our packets change its view
  TestNode node(c);
  RawPeer raw;
  net::SocketAddress x_addr = loopback(9);  // discard port: nobody answers there
  auto send = [&](MemberState s, uint32_t inc) {
    raw.send_gossip(kSecret, MemberUpdate{s, inc, "x", x_addr, {}}, node.address());
  };
  auto is = [&](MemberState s, uint32_t inc) {
    return eventually([&] {
      auto m = node.member("x");
      return m && m->state == s && m->incarnation == inc;
    });
  };
  auto stays = [&](MemberState s, uint32_t inc) {
    std::this_thread::sleep_for(150ms);
    auto m = node.member("x");
    return m && m->state == s && m->incarnation == inc;
  };
  send(MemberState::kSuspect, 1);  // unknown node: suspicion of a stranger is ignored
  std::this_thread::sleep_for(150ms);
  EXPECT_FALSE(node.member("x").has_value());
  send(MemberState::kAlive, 1);
  EXPECT_TRUE(is(MemberState::kAlive, 1));
  send(MemberState::kAlive, 1);    // same incarnation: no news
  send(MemberState::kSuspect, 0);  // stale
  EXPECT_TRUE(stays(MemberState::kAlive, 1));
  send(MemberState::kSuspect, 1);  // suspect overrides alive of the same incarnation
  EXPECT_TRUE(is(MemberState::kSuspect, 1));
  send(MemberState::kAlive, 1);  // alive must out-bid the suspicion
  EXPECT_TRUE(stays(MemberState::kSuspect, 1));
  send(MemberState::kAlive, 2);
  EXPECT_TRUE(is(MemberState::kAlive, 2));
  send(MemberState::kDead, 2);  // dead overrides alive
  EXPECT_TRUE(is(MemberState::kDead, 2));
  send(MemberState::kSuspect, 2);
  send(MemberState::kAlive, 2);
  EXPECT_TRUE(stays(MemberState::kDead, 2));
  send(MemberState::kAlive, 3);  // it came back (restart or refutation)
  EXPECT_TRUE(is(MemberState::kAlive, 3));
  send(MemberState::kLeft, 3);
  EXPECT_TRUE(is(MemberState::kLeft, 3));
  // Claims about the node itself are refuted, never applied.
  raw.send_gossip(kSecret, MemberUpdate{MemberState::kDead, 5, "solo", node.address(), {}},
                  node.address());
  EXPECT_TRUE(eventually([&] { return node.member("solo")->incarnation == 6; }));
  EXPECT_TRUE(node.sees("solo", MemberState::kAlive));
  EXPECT_EQ(node.stats().refutations, 1u);
}

TEST(Membership, PartitionLongerThanDeadTimeoutHeals) {
  auto nodes = start_cluster(4);
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  std::set<uint16_t> left_side = {nodes[0]->address().port(), nodes[1]->address().port()};
  std::set<uint16_t> right_side = {nodes[2]->address().port(), nodes[3]->address().port()};
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::set<uint16_t>& other = i < 2 ? right_side : left_side;
    nodes[i]->set_filter([other](bool, const net::SocketAddress& peer, MessageType) {
      return other.count(peer.port()) > 0;
    });
  }
  ASSERT_TRUE(eventually([&] {
    return all_see(nodes, "n2", MemberState::kDead, {2, 3}) &&
           all_see(nodes, "n3", MemberState::kDead, {2, 3}) &&
           all_see(nodes, "n0", MemberState::kDead, {0, 1}) &&
           all_see(nodes, "n1", MemberState::kDead, {0, 1});
  }));
  // Stay partitioned past a few rejoin intervals: the rejoins must fail quietly meanwhile.
  std::this_thread::sleep_for(700ms);
  EXPECT_TRUE(nodes[0]->sees("n2", MemberState::kDead));
  for (auto& node : nodes) node->set_filter(nullptr);
  EXPECT_TRUE(eventually([&] { return all_alive(nodes); }));
}

// Six nodes cut 3 | 3, each rejoin contacting a single dead member: the rotation alone
// must bring the two sides back together, however long they were apart.
TEST(Membership, PartitionHealsWhenEachRejoinContactsOneDeadMember) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (int i = 0; i < 6; ++i) {
    MembershipConfig c = test_config("n" + std::to_string(i));
    c.rejoin_dead_per_tick = 1;
    if (i > 0) c.seeds = {nodes[0]->address()};
    nodes.push_back(std::make_unique<TestNode>(c));
  }
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  std::set<uint16_t> sides[2];
  for (size_t i = 0; i < nodes.size(); ++i) sides[i < 3].insert(nodes[i]->address().port());
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::set<uint16_t> other = sides[i < 3 ? 0 : 1];
    nodes[i]->set_filter([other](bool, const net::SocketAddress& peer, MessageType) {
      return other.count(peer.port()) > 0;
    });
  }
  ASSERT_TRUE(eventually(
      [&] {
        for (int i = 0; i < 6; ++i) {
          std::set<size_t> same_side =
              i < 3 ? std::set<size_t>{0, 1, 2} : std::set<size_t>{3, 4, 5};
          if (!all_see(nodes, "n" + std::to_string(i), MemberState::kDead, same_side)) return false;
        }
        return true;
      },
      30s));
  std::this_thread::sleep_for(700ms);  // a few rejoin intervals into the void
  for (auto& node : nodes) node->set_filter(nullptr);
  EXPECT_TRUE(eventually([&] { return all_alive(nodes); }, 30s));
}

// ---- Lifeguard -----------------------------------------------------------------------------

// Members that never answer: every probe fails, so the score climbs to awareness_max - 1 and
// stays there, stretching the probe interval and timeout; once a real member answers the
// probes, the score falls back to 0.
TEST(Membership, HealthScoreRisesOnFailedProbesUpToItsCapAndFallsOnAcks) {
  MembershipConfig c = test_config("solo");
  c.awareness_max = 4;
  TestNode node(c);
  RawPeer raw;
  for (int i = 0; i < 10; ++i) {
    raw.send_gossip(kSecret, {MemberState::kAlive, 1, "x" + std::to_string(i), loopback(9), {}},
                    node.address());
  }
  auto score = [&] { return node.call([&] { return node.membership().health_score(); }); };
  ASSERT_TRUE(eventually([&] { return score() == 3; }));
  EXPECT_EQ(node.call([&] { return node.membership().current_probe_interval_ms(); }), 4 * 50);
  EXPECT_EQ(node.call([&] { return node.membership().current_probe_timeout_ms(); }), 4 * 25);
  uint64_t failures = node.stats().probe_failures;
  ASSERT_TRUE(eventually([&] { return node.stats().probe_failures >= failures + 3; }));
  EXPECT_EQ(score(), 3);  // capped
  MembershipConfig p = test_config("peer");
  p.seeds = {node.address()};
  TestNode peer(p);
  EXPECT_TRUE(eventually([&] { return score() == 0; }));
  EXPECT_EQ(node.call([&] { return node.membership().current_probe_interval_ms(); }), 50);
}

// Suspect claims about x from distinct accusers shrink its suspicion timeout from max to min
// over k = indirect_checks confirmations; a repeated accuser counts once. No probing (one
// probe a minute), so only our packets change the view.
TEST(Membership, SuspicionTimeoutShrinksWithEachDistinctAccuser) {
  MembershipConfig c = test_config("solo");
  c.probe_interval_ms = 60000;
  c.probe_timeout_ms = 30000;
  TestNode node(c);
  RawPeer raw;
  for (const char* id : {"x", "a", "b", "d"})
    raw.send_gossip(kSecret, {MemberState::kAlive, 1, id, loopback(9), {}}, node.address());
  ASSERT_TRUE(eventually([&] { return node.members().size() == 5; }));
  auto timeout = [&] {
    return node.call([&] { return node.membership().suspicion_timeout_of("x"); });
  };
  auto accuse = [&](const std::string& accuser) {
    raw.send_gossip(kSecret, {MemberState::kSuspect, 1, "x", loopback(9), accuser}, node.address());
  };
  // 5 live members: min = 4 x max(1, log10 5) x 60 s, max = 6 x min, k = 3.
  const int64_t min = 4 * 60000, max = 6 * min;
  EXPECT_EQ(timeout(), -1);
  accuse("a");
  ASSERT_TRUE(eventually([&] { return timeout() == max; }));
  accuse("a");
  accuse("b");
  ASSERT_TRUE(eventually([&] { return timeout() < max; }));
  EXPECT_EQ(timeout(), Suspicion::timeout_ms(1, 3, min, max));
  accuse("b");
  accuse("d");
  ASSERT_TRUE(eventually([&] { return timeout() == Suspicion::timeout_ms(2, 3, min, max); }));
  accuse("solo-friend");
  ASSERT_TRUE(eventually([&] { return timeout() == min; }));
  accuse("yet-another");
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(timeout(), min);  // never below min
  EXPECT_TRUE(node.sees("x", MemberState::kSuspect));
  raw.send_gossip(kSecret, {MemberState::kAlive, 2, "x", loopback(9), {}}, node.address());
  EXPECT_TRUE(eventually([&] { return timeout() == -1 && node.sees("x", MemberState::kAlive); }));
}

// Buddy system: with piggybacked gossip off and no state exchange after the join, the only way
// n1 can hear that it is suspected is the suspicion n0 attaches to its next ping.
TEST(Membership, ProbedSuspectHearsOfItsSuspicionFromThePingAndRefutes) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (int i = 0; i < 2; ++i) {
    MembershipConfig c = test_config("n" + std::to_string(i));
    c.retransmit_mult = 0;
    c.push_pull_interval_ms = 60000;
    c.rejoin_interval_ms = 60000;
    c.suspicion_mult = 20;  // time for the buddy ping before n0 gives up on n1
    if (i > 0) c.seeds = {nodes[0]->address()};
    nodes.push_back(std::make_unique<TestNode>(c));
  }
  ASSERT_TRUE(eventually([&] { return all_alive(nodes); }));
  nodes[1]->set_filter([](bool outgoing, const net::SocketAddress&, MessageType type) {
    return outgoing && type == MessageType::kAck;
  });
  ASSERT_TRUE(eventually([&] { return nodes[0]->saw_event("n1", MemberEvent::kSuspected); }));
  EXPECT_TRUE(eventually([&] { return nodes[1]->stats().refutations > 0; }));
  EXPECT_GT(nodes[1]->member("n1")->incarnation, 0u);
}

// Ten members die; each rejoin interval pushes our state to at most rejoin_dead_per_tick (3)
// of them, continuing where the last one stopped, so all ten keep hearing from us.
TEST(Membership, RejoinContactsAFewDeadMembersPerTickInRotation) {
  MembershipConfig c = test_config("solo");
  c.awareness_max = 1;       // probe the ten at full speed
  c.suspicion_max_mult = 1;  // and let them die fast
  TestNode node(c);
  std::vector<std::unique_ptr<RawPeer>> dead;  // bound, never answering
  std::set<uint16_t> dead_ports;
  RawPeer raw;
  for (int i = 0; i < 10; ++i) {
    dead.push_back(std::make_unique<RawPeer>());
    dead_ports.insert(dead.back()->port());
    raw.send_gossip(
        kSecret,
        {MemberState::kAlive, 1, "x" + std::to_string(i), loopback(dead.back()->port()), {}},
        node.address());
  }
  ASSERT_TRUE(eventually([&] {
    auto members = node.members();
    return members.size() == 11 &&
           std::all_of(members.begin(), members.end(), [](const MemberInfo& m) {
             return m.node_id == "solo" || m.state == MemberState::kDead;
           });
  }));
  std::mutex mutex;
  std::vector<std::pair<std::chrono::steady_clock::time_point, uint16_t>> joins;
  node.set_filter([&](bool outgoing, const net::SocketAddress& peer, MessageType type) {
    if (outgoing && type == MessageType::kJoin && dead_ports.count(peer.port())) {
      std::lock_guard lock(mutex);
      joins.emplace_back(std::chrono::steady_clock::now(), peer.port());
    }
    return false;
  });
  auto contacted = [&] {
    std::lock_guard lock(mutex);
    std::set<uint16_t> ports;
    for (auto& [when, port] : joins) ports.insert(port);
    return ports.size();
  };
  EXPECT_TRUE(eventually([&] { return contacted() == 10; }));
  node.set_filter(nullptr);
  // A tick's pushes leave back to back; ticks are 300 ms apart. Group by gaps of 100 ms.
  std::lock_guard lock(mutex);
  ASSERT_FALSE(joins.empty());
  std::vector<int> per_tick = {1};
  for (size_t i = 1; i < joins.size(); ++i) {
    if (joins[i].first - joins[i - 1].first > 100ms)
      per_tick.push_back(1);
    else
      per_tick.back()++;
  }
  EXPECT_GE(per_tick.size(), 4u);  // 10 members, 3 a tick
  for (int n : per_tick) EXPECT_LE(n, 3);
}

// ---- Codec ---------------------------------------------------------------------------------

SwimMessage sample_message(MessageType type) {
  SwimMessage m;
  m.type = type;
  m.flags = type == MessageType::kJoin ? kFlagWantsReply : 0;
  m.seq = 0xA1B2C3D4;
  m.sender = "node-a";
  if (type == MessageType::kPing || type == MessageType::kPingReq) m.target = "node-b";
  if (type == MessageType::kPingReq) m.target_address = loopback(7946);
  net::SocketAddress v6;
  std::string error;
  net::SocketAddress::parse("[::1]:7000", &v6, &error);
  m.updates = {{MemberState::kAlive, 7, "node-c", loopback(1), {}},
               {MemberState::kSuspect, 0, "d", v6, "node-a"},
               {MemberState::kSuspect, 1, "g", loopback(3), {}},  // accuser unknown: the sender
               {MemberState::kDead, 0xFFFFFFFF, std::string(kMaxNodeId, 'e'), loopback(65535), {}},
               {MemberState::kLeft, 3, "f", loopback(2), {}}};
  return m;
}

std::string encode(const SwimMessage& m, const std::string& secret = kSecret) {
  PacketWriter writer(secret);
  EXPECT_TRUE(writer.begin(m));
  for (const auto& u : m.updates) EXPECT_TRUE(writer.add_update(u));
  return std::string(writer.finish());
}

TEST(SwimCodec, RoundTripsEveryMessageType) {
  for (auto type : {MessageType::kPing, MessageType::kPingReq, MessageType::kAck,
                    MessageType::kJoin, MessageType::kJoinAck, MessageType::kGossip}) {
    SwimMessage in = sample_message(type), out;
    ASSERT_EQ(decode_packet(encode(in), kSecret, &out), DecodeStatus::kOk)
        << message_type_name(type);
    EXPECT_EQ(out.type, in.type);
    EXPECT_EQ(out.flags, in.flags);
    EXPECT_EQ(out.seq, in.seq);
    EXPECT_EQ(out.sender, in.sender);
    EXPECT_EQ(out.target, in.target);
    EXPECT_EQ(out.target_address.to_string(), in.target_address.to_string());
    ASSERT_EQ(out.updates.size(), in.updates.size());
    for (size_t i = 0; i < in.updates.size(); ++i) {
      EXPECT_EQ(out.updates[i].state, in.updates[i].state);
      EXPECT_EQ(out.updates[i].incarnation, in.updates[i].incarnation);
      EXPECT_EQ(out.updates[i].node_id, in.updates[i].node_id);
      EXPECT_EQ(out.updates[i].address.to_string(), in.updates[i].address.to_string());
      EXPECT_EQ(out.updates[i].accuser, in.updates[i].accuser);
    }
  }
}

TEST(SwimCodec, WrongSecretOrAnyFlippedBitIsABadTag) {
  std::string packet = encode(sample_message(MessageType::kPing));
  SwimMessage out;
  EXPECT_EQ(decode_packet(packet, "other", &out), DecodeStatus::kBadTag);
  for (size_t i = 0; i < packet.size(); ++i) {
    std::string flipped = packet;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x10);
    EXPECT_EQ(decode_packet(flipped, kSecret, &out), DecodeStatus::kBadTag) << i;
  }
}

TEST(SwimCodec, TruncationAtEveryByteIsRejected) {
  for (auto type : {MessageType::kPingReq, MessageType::kJoin}) {
    std::string packet = encode(sample_message(type));
    std::string body = packet.substr(0, packet.size() - kTagBytes);
    for (size_t n = 0; n < packet.size(); ++n) {
      SwimMessage out;
      EXPECT_NE(decode_packet(packet.substr(0, n), kSecret, &out), DecodeStatus::kOk) << n;
    }
    // The body itself, cut anywhere (as a peer holding the secret might send it), never parses.
    for (size_t n = 0; n < body.size(); ++n) {
      SwimMessage out;
      EXPECT_FALSE(parse_body(body.substr(0, n), &out)) << n;
    }
    std::string longer = body + "x";
    SwimMessage out;
    EXPECT_FALSE(parse_body(longer, &out));
  }
}

TEST(SwimCodec, RandomBytesNeverParse) {
  std::mt19937 rng(42);
  std::string base = encode(sample_message(MessageType::kGossip));
  std::string body = base.substr(0, base.size() - kTagBytes);
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    SwimMessage out;
    EXPECT_NE(decode_packet(junk, kSecret, &out), DecodeStatus::kOk);
    // Mutations of a valid body exercise the parser past the header.
    std::string mutated = body;
    for (int k = 0; k < 3; ++k) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    parsed += parse_body(mutated, &out) ? 1 : 0;  // may parse; must not crash or over-read
  }
  SUCCEED() << parsed << " mutated bodies still parsed";
}

TEST(SwimCodec, WriterKeepsPacketsUnderMaxPacket) {
  PacketWriter writer(kSecret);
  SwimMessage header;
  header.type = MessageType::kJoinAck;
  header.sender = "n";
  ASSERT_TRUE(writer.begin(header));
  MemberUpdate u{MemberState::kAlive, 1, std::string(kMaxNodeId, 'z'), loopback(1), {}};
  size_t added = 0;
  while (writer.add_update(u)) ++added;
  EXPECT_GT(added, 10u);
  std::string packet(writer.finish());
  EXPECT_LE(packet.size(), kMaxPacket);
  SwimMessage out;
  ASSERT_EQ(decode_packet(packet, kSecret, &out), DecodeStatus::kOk);
  EXPECT_EQ(out.updates.size(), added);
  header.sender = "";
  EXPECT_FALSE(writer.begin(header));
}

// A stream message holds a whole state in one piece: past 255 updates and kMaxPacket bytes.
TEST(SwimCodec, StreamMessageCarriesAWholeStateInOnePiece) {
  PacketWriter writer(kSecret);
  SwimMessage header;
  header.type = MessageType::kJoin;
  header.flags = kFlagWantsReply | kFlagStream;
  header.sender = "n";
  ASSERT_TRUE(writer.begin(header));
  for (int i = 0; i < 1000; ++i) {
    MemberUpdate u{MemberState::kSuspect, 7, "node-" + std::to_string(i), loopback(1), "a"};
    ASSERT_TRUE(writer.add_update(u)) << i;
  }
  std::string message(writer.finish());
  EXPECT_GT(message.size(), kMaxPacket);
  SwimMessage out;
  EXPECT_EQ(decode_packet(message, kSecret, &out), DecodeStatus::kMalformed);  // a datagram's bound
  ASSERT_EQ(decode_packet(message, kSecret, &out, kMaxStreamMessage), DecodeStatus::kOk);
  EXPECT_EQ(out.flags, header.flags);
  ASSERT_EQ(out.updates.size(), 1000u);
  EXPECT_EQ(out.updates[999].node_id, "node-999");
  EXPECT_EQ(out.updates[999].accuser, "a");
  std::string body = message.substr(0, message.size() - kTagBytes);
  EXPECT_FALSE(parse_body(body.substr(0, body.size() - 1), &out));
}

}  // namespace
}  // namespace weir::cluster
