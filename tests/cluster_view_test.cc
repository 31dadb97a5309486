// Room ownership by rendezvous hashing (cluster/cluster_view.h) and the rooms traffic codec
// between nodes (cluster/room_wire.h).
#include "cluster/cluster_view.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>

#include "cluster/room_wire.h"

namespace weir::cluster {
namespace {

ClusterView view_of(std::vector<std::string> nodes, std::string self = "n1") {
  ClusterView v;
  v.self = std::move(self);
  v.nodes = std::move(nodes);
  std::sort(v.nodes.begin(), v.nodes.end());
  return v;
}

TEST(ClusterView, EmptyViewOwnsEverythingItself) {
  ClusterView v;
  v.self = "solo";
  EXPECT_EQ(v.owner_of("lobby"), "solo");
  EXPECT_TRUE(v.owns("anything"));
}

TEST(ClusterView, OwnersSpreadEvenly) {
  ClusterView v = view_of({"n1", "n2", "n3", "n4", "n5"});
  std::map<std::string, int> count;
  const int rooms = 50000;
  for (int i = 0; i < rooms; ++i) count[v.owner_of("room-" + std::to_string(i))]++;
  ASSERT_EQ(count.size(), 5u);
  for (const auto& [node, n] : count) {  // 10,000 expected each; 4% is > 9 standard deviations
    EXPECT_GT(n, rooms / 5 * 96 / 100) << node;
    EXPECT_LT(n, rooms / 5 * 104 / 100) << node;
  }
}

// A node joining takes about 1/n of the rooms, each from whoever had it; a node leaving hands
// only its own rooms over. Nothing else moves.
TEST(ClusterView, OnlyTheChangedNodesRoomsMove) {
  ClusterView before = view_of({"n1", "n2", "n3", "n4"});
  ClusterView after = view_of({"n1", "n2", "n3", "n4", "n5"});
  int moved = 0;
  const int rooms = 20000;
  for (int i = 0; i < rooms; ++i) {
    std::string room = "r" + std::to_string(i);
    const std::string& a = before.owner_of(room);
    const std::string& b = after.owner_of(room);
    if (a != b) {
      ++moved;
      EXPECT_EQ(b, "n5") << room << " moved between two old nodes";
    }
  }
  EXPECT_NEAR(moved, rooms / 5, rooms / 50);
  ClusterView gone = view_of({"n1", "n2", "n4"});
  for (int i = 0; i < rooms; ++i) {
    std::string room = "r" + std::to_string(i);
    if (before.owner_of(room) != "n3") {
      EXPECT_EQ(gone.owner_of(room), before.owner_of(room));
    }
  }
}

// Every node computes the same owner from the same members, whatever its own id.
TEST(ClusterView, OwnerIndependentOfSelf) {
  ClusterView a = view_of({"n1", "n2", "n3"}, "n1");
  ClusterView c = view_of({"n1", "n2", "n3"}, "n3");
  for (int i = 0; i < 1000; ++i) {
    std::string room = "x" + std::to_string(i);
    EXPECT_EQ(a.owner_of(room), c.owner_of(room));
  }
  EXPECT_TRUE(a.contains("n2"));
  EXPECT_FALSE(a.contains("n4"));
}

// The weights are part of the protocol between versions (and the interop test recomputes
// them in Python): pinned.
TEST(ClusterView, WeightsAreStable) {
  EXPECT_EQ(rendezvous_weight("n1", "lobby"), rendezvous_weight("n1", "lobby"));
  EXPECT_NE(rendezvous_weight("ab", "c"), rendezvous_weight("a", "bc"));
  EXPECT_NE(rendezvous_weight("n1", "lobby"), rendezvous_weight("n2", "lobby"));
}

// The decoded message's views point into the encoded bytes, kept here for the test's run.
RoomWireMessage round_trip(const RoomWireMessage& m, std::string_view envelope = {}) {
  static std::deque<std::string> kept;
  std::string& bytes = kept.emplace_back();
  encode_room_wire(&bytes, m);
  bytes.append(envelope);
  RoomWireMessage back;
  EXPECT_TRUE(decode_room_wire(static_cast<uint8_t>(m.type), bytes, &back));
  // Every strict prefix is refused (truncation never decodes to something else).
  for (size_t n = 0; n < bytes.size(); ++n) {
    RoomWireMessage cut;
    if (m.type == RoomWireType::kDeliver && n > bytes.size() - envelope.size()) continue;
    EXPECT_FALSE(decode_room_wire(static_cast<uint8_t>(m.type), bytes.substr(0, n), &cut)) << n;
  }
  return back;
}

TEST(RoomWire, EveryTypeRoundTrips) {
  RoomWireMessage interest;
  interest.type = RoomWireType::kInterest;
  interest.room = "lobby";
  interest.epoch = 7353576072339457;
  interest.offset = 9;
  RoomWireMessage i = round_trip(interest);
  EXPECT_EQ(i.room, "lobby");
  EXPECT_EQ(i.epoch, interest.epoch);
  EXPECT_EQ(i.offset, 9u);

  RoomWireMessage ack;
  ack.type = RoomWireType::kInterestAck;
  ack.room = "lobby";
  ack.epoch = 7353576072339456;
  ack.offset = 42;
  ack.status = kWireNotOwner;
  RoomWireMessage a = round_trip(ack);
  EXPECT_EQ(a.epoch, ack.epoch);
  EXPECT_EQ(a.offset, 42u);
  EXPECT_EQ(a.status, kWireNotOwner);

  RoomWireMessage pub;
  pub.type = RoomWireType::kPublish;
  pub.room = "chat.general";
  pub.request = 99;
  pub.flags = kWireClientMessageId | kWireWantsResult;
  pub.content = std::string_view("hello\0world", 11);
  pub.message_id = "m-1";
  pub.sent_at = "2026-12-07T10:00:00.000Z";
  pub.sender = "alice";
  pub.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  RoomWireMessage p = round_trip(pub);
  EXPECT_EQ(p.request, 99u);
  EXPECT_EQ(p.flags, pub.flags);
  EXPECT_EQ(p.content, pub.content);
  EXPECT_EQ(p.message_id, "m-1");
  EXPECT_EQ(p.sender, "alice");
  EXPECT_EQ(p.traceparent, pub.traceparent);
  EXPECT_EQ(p.tracestate, "");

  RoomWireMessage result;
  result.type = RoomWireType::kPublishResult;
  result.room = "lobby";
  result.request = 5;
  result.status = 429;
  result.retry_ms = 120;
  RoomWireMessage r = round_trip(result);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_ms, 120);

  RoomWireMessage deliver;
  deliver.type = RoomWireType::kDeliver;
  deliver.room = "lobby";
  deliver.epoch = 3;
  deliver.offset = 43;
  deliver.request = 5;
  RoomWireMessage d = round_trip(deliver, R"({"message":{"target":"lobby"}})");
  EXPECT_EQ(d.offset, 43u);
  EXPECT_EQ(d.envelope, R"({"message":{"target":"lobby"}})");
}

TEST(RoomWire, MalformedIsRefused) {
  RoomWireMessage m;
  EXPECT_FALSE(decode_room_wire(3, "", &m));                             // not a rooms type
  EXPECT_FALSE(decode_room_wire(16, std::string("\0\0", 2), &m));        // empty room id
  EXPECT_FALSE(decode_room_wire(16, std::string("\0\5lobbyX", 8), &m));  // trailing byte
  EXPECT_FALSE(decode_room_wire(16, std::string("\xff\xff", 2), &m));    // length past the end
  std::string deliver;
  RoomWireMessage d;
  d.type = RoomWireType::kDeliver;
  d.room = "r";
  encode_room_wire(&deliver, d);
  EXPECT_FALSE(decode_room_wire(21, deliver, &m));  // a delivery without its envelope
}

}  // namespace
}  // namespace weir::cluster
