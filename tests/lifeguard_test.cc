// tests/lifeguard_test.cc — the pieces of Lifeguard and of dissemination that are plain values:
// the local health score, the suspicion timeout's shrinking, and the broadcast queue.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "cluster/awareness.h"
#include "cluster/broadcast_queue.h"
#include "cluster/suspicion.h"
#include "cluster/swim_codec.h"

namespace weir::cluster {
namespace {

TEST(Awareness, ScoreRisesAndFallsWithinZeroAndMaxMinusOne) {
  Awareness a(8);
  EXPECT_EQ(a.score(), 0);
  EXPECT_EQ(a.scale(1000), 1000);
  a.apply_delta(-1);
  EXPECT_EQ(a.score(), 0);
  a.apply_delta(1);
  a.apply_delta(1);
  EXPECT_EQ(a.score(), 2);
  EXPECT_EQ(a.scale(1000), 3000);
  a.apply_delta(100);
  EXPECT_EQ(a.score(), 7);
  EXPECT_EQ(a.scale(500), 4000);  // at most 8 x
  a.apply_delta(-1);
  EXPECT_EQ(a.score(), 6);
}

TEST(Awareness, MaxOfOneTurnsTheMultiplierOff) {
  Awareness a(1);
  a.apply_delta(5);
  EXPECT_EQ(a.score(), 0);
  EXPECT_EQ(a.scale(1000), 1000);
}

TEST(Suspicion, TimeoutShrinksLogarithmicallyFromMaxToMinOverKConfirmations) {
  // max - (max - min) * log(n + 1) / log(k + 1), min 1 s, max 6 s, k 3.
  EXPECT_EQ(Suspicion::timeout_ms(0, 3, 1000, 6000), 6000);
  EXPECT_EQ(Suspicion::timeout_ms(1, 3, 1000, 6000), 3500);  // log 2 / log 4 = 1/2
  EXPECT_EQ(Suspicion::timeout_ms(2, 3, 1000, 6000), 2037);  // 6000 - 5000 x 0.7925
  EXPECT_EQ(Suspicion::timeout_ms(3, 3, 1000, 6000), 1000);
  EXPECT_EQ(Suspicion::timeout_ms(9, 3, 1000, 6000), 1000);  // never below min
  EXPECT_EQ(Suspicion::timeout_ms(0, 0, 1000, 6000), 1000);  // no confirmations expected
}

TEST(Suspicion, CountsEachAccuserOnceAndNotTheFirst) {
  Suspicion s("a", 3, 1000, 6000, 500);
  EXPECT_EQ(s.deadline_ms(), 6500);
  EXPECT_FALSE(s.confirm("a"));  // it started the suspicion
  EXPECT_TRUE(s.confirm("b"));
  EXPECT_FALSE(s.confirm("b"));
  EXPECT_EQ(s.confirmations(), 1);
  EXPECT_EQ(s.deadline_ms(), 500 + 3500);
  EXPECT_TRUE(s.confirm("c"));
  EXPECT_TRUE(s.confirm("d"));
  EXPECT_FALSE(s.confirm("e"));  // k reached
  EXPECT_EQ(s.deadline_ms(), 1500);
}

MemberUpdate update(const std::string& id, MemberState state, uint32_t incarnation) {
  return MemberUpdate{state, incarnation, id, net::SocketAddress(), {}};
}

std::vector<MemberUpdate> fill(BroadcastQueue& q, int limit) {
  PacketWriter writer("k");
  SwimMessage header;
  header.type = MessageType::kGossip;
  header.sender = "me";
  writer.begin(header);
  q.fill(writer, limit);
  SwimMessage out;
  EXPECT_EQ(decode_packet(writer.finish(), "k", &out), DecodeStatus::kOk);
  return out.updates;
}

TEST(BroadcastQueue, NewerUpdateAboutAMemberReplacesTheQueuedOne) {
  BroadcastQueue q;
  q.push(update("a", MemberState::kAlive, 1));
  q.push(update("b", MemberState::kAlive, 1));
  q.push(update("a", MemberState::kSuspect, 1));
  EXPECT_EQ(q.size(), 2u);
  ASSERT_NE(q.find("a"), nullptr);
  EXPECT_EQ(q.find("a")->state, MemberState::kSuspect);
  auto sent = fill(q, 5);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].node_id, "a");  // newest first among equals
}

TEST(BroadcastQueue, LeastTransmittedFirstAndRetiredAfterTheLimit) {
  BroadcastQueue q;
  q.push(update("a", MemberState::kAlive, 1));
  EXPECT_EQ(fill(q, 2).size(), 1u);
  q.push(update("b", MemberState::kAlive, 1));
  auto sent = fill(q, 2);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].node_id, "b");  // sent 0 times before "a"'s once
  EXPECT_EQ(q.size(), 1u);          // "a" sent twice: retired
  EXPECT_EQ(fill(q, 2).size(), 1u);
  EXPECT_EQ(q.size(), 0u);
  q.push(update("c", MemberState::kAlive, 1));
  EXPECT_TRUE(fill(q, 0).empty());  // gossip off
  EXPECT_EQ(q.size(), 1u);
}

TEST(BroadcastQueue, FillsOnePacketAndKeepsTheRestForTheNext) {
  BroadcastQueue q;
  for (int i = 0; i < 1000; ++i)
    q.push(update("member-" + std::to_string(i), MemberState::kAlive, 1));
  std::set<std::string> seen;
  size_t packets = 0;
  while (seen.size() < 1000 && packets < 100) {
    auto sent = fill(q, 3);
    EXPECT_GT(sent.size(), 10u);
    for (auto& u : sent) seen.insert(u.node_id);
    packets++;
  }
  EXPECT_EQ(seen.size(), 1000u);  // each packet took ones not yet sent
  EXPECT_LT(packets, 100u);
}

}  // namespace
}  // namespace weir::cluster
