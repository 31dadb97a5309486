// tests/store_conformance.h — one behavioural suite every store::Backend must pass: room
// history (order, limit, after-offset, epochs, retention and first_offset), room_state,
// sessions, idempotency keys, GCRA rate limits, purge, and batches.
//
// Instantiate it once per backend with a factory type:
//
//   struct RedisFactory {
//     // A backend over empty (or at least unrelated) storage; nullptr skips the test
//     // (its server is unavailable).
//     static std::unique_ptr<store::Backend> make();
//     // Optional: runs after each test, once the backend was destroyed.
//     static void tear_down();
//     // Optional: true when expired sessions / idempotency keys vanish only by a server-side
//     // TTL on the real clock, so purge() at a simulated later now_ms cannot be observed.
//     static constexpr bool kExpiryByServerTtl = true;
//   };
//   using RedisFactories = ::testing::Types<RedisFactory>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(Redis, BackendConformance, RedisFactories);
//
// Time is simulated: every call gets an explicit now_ms starting at the real wall clock (so
// server-side TTLs derived from it are sane) and moving forward only by what the test adds;
// nothing sleeps. Backends must therefore judge expiry and windows by the now_ms they are
// given, not only by their server's clock. Names are unique per test run (test name + a
// nonce), so tests do not see each other's data even on a shared server.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "store/backend.h"

namespace weir::store::conformance {

template <typename Factory>
class BackendConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = Factory::make();
    if (!backend_) GTEST_SKIP() << "backend unavailable";
    static std::atomic<uint64_t> counter{0};
    prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
              std::to_string(core::monotonic_ns()) + "-" + std::to_string(counter++) + "-";
    t0_ = core::wall_ms();
  }

  void TearDown() override {
    backend_.reset();
    if constexpr (requires { Factory::tear_down(); }) Factory::tear_down();
  }

  static constexpr bool expiry_by_server_ttl() {
    if constexpr (requires { Factory::kExpiryByServerTtl; }) return Factory::kExpiryByServerTtl;
    return false;
  }

  std::string name(const std::string& base) const { return prefix_ + base; }

  static std::string payload_for(uint64_t epoch, uint64_t offset) {
    return R"({"type":"message","epoch":)" + std::to_string(epoch) + R"(,"offset":)" +
           std::to_string(offset) + R"(,"text":"h\u00e9llo \"q\" \\ é"})";
  }

  Status append(const std::string& room, uint64_t epoch, uint64_t offset, int64_t stored_ms) {
    StoredMessage m;
    m.room_id = room;
    m.epoch = epoch;
    m.offset = offset;
    m.payload = payload_for(epoch, offset);
    m.stored_ms = stored_ms;
    return backend_->append(m);
  }

  // Appends offsets [from, to] of one epoch, all stored at `stored_ms`.
  void append_range(const std::string& room, uint64_t epoch, uint64_t from, uint64_t to,
                    int64_t stored_ms) {
    for (uint64_t o = from; o <= to; ++o) ASSERT_EQ(append(room, epoch, o, stored_ms), Status::kOk);
  }

  // The offsets read_room returns, checking each message's room, epoch and payload.
  std::vector<uint64_t> read_offsets(const std::string& room, uint64_t epoch, uint64_t after,
                                     size_t limit, uint64_t* first_offset = nullptr) {
    std::vector<StoredMessage> out;
    uint64_t first = 12345;
    Status s = backend_->read_room(room, epoch, after, limit, &out, &first);
    EXPECT_EQ(s, Status::kOk) << backend_->last_error();
    if (first_offset) *first_offset = first;
    std::vector<uint64_t> offsets;
    for (const StoredMessage& m : out) {
      EXPECT_EQ(m.room_id, room);
      EXPECT_EQ(m.epoch, epoch);
      EXPECT_EQ(m.payload, payload_for(epoch, m.offset));
      offsets.push_back(m.offset);
    }
    return offsets;
  }

  static std::vector<uint64_t> range(uint64_t from, uint64_t to) {
    std::vector<uint64_t> v;
    for (uint64_t o = from; o <= to; ++o) v.push_back(o);
    return v;
  }

  Session make_session(const std::string& token, int64_t expires_ms) {
    Session s;
    s.token = token;
    s.member_id = "member-" + token;
    s.rooms = {{name("r1"), 3, 17}, {name("r2"), 1, 0}, {name("r3"), 9, 123456789012ULL}};
    s.expires_ms = expires_ms;
    return s;
  }

  IdempotencyResult remember(const std::string& room, const std::string& id, uint64_t offset,
                             int64_t window_ms, int64_t now_ms) {
    IdempotencyResult r;
    r.duplicate = true;
    r.offset = 999999;
    EXPECT_EQ(backend_->remember_message_id(room, id, offset, window_ms, now_ms, &r), Status::kOk)
        << backend_->last_error();
    return r;
  }

  RateDecision take(const std::string& key, const RateLimit& limit, double cost, int64_t now_ms) {
    RateDecision d;
    EXPECT_EQ(backend_->rate_take(key, limit, cost, now_ms, &d), Status::kOk)
        << backend_->last_error();
    return d;
  }

  std::unique_ptr<Backend> backend_;
  std::string prefix_;
  int64_t t0_ = 0;
};

TYPED_TEST_SUITE_P(BackendConformance);

TYPED_TEST_P(BackendConformance, HasANameAndStartsCleanBatches) {
  EXPECT_NE(std::string(this->backend_->name()), "");
  EXPECT_EQ(this->backend_->begin_batch(), Status::kOk);
  EXPECT_EQ(this->backend_->commit_batch(), Status::kOk);
}

TYPED_TEST_P(BackendConformance, ReadsAppendedMessagesOldestFirstWithAllFields) {
  std::string room = this->name("room");
  this->append_range(room, 1, 1, 5, this->t0_);
  std::vector<StoredMessage> out;
  uint64_t first = 0;
  ASSERT_EQ(this->backend_->read_room(room, 1, 0, 100, &out, &first), Status::kOk);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(first, 1u);
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].room_id, room);
    EXPECT_EQ(out[i].epoch, 1u);
    EXPECT_EQ(out[i].offset, i + 1);
    EXPECT_EQ(out[i].payload, this->payload_for(1, i + 1));
    EXPECT_EQ(out[i].stored_ms, this->t0_);
  }
}

TYPED_TEST_P(BackendConformance, ReadRespectsLimitAndAfterOffset) {
  std::string room = this->name("room");
  this->append_range(room, 1, 1, 10, this->t0_);
  EXPECT_EQ(this->read_offsets(room, 1, 0, 3), this->range(1, 3));
  EXPECT_EQ(this->read_offsets(room, 1, 5, 100), this->range(6, 10));
  EXPECT_EQ(this->read_offsets(room, 1, 5, 2), this->range(6, 7));
  EXPECT_TRUE(this->read_offsets(room, 1, 10, 100).empty());
  EXPECT_TRUE(this->read_offsets(room, 1, 50, 100).empty());
}

TYPED_TEST_P(BackendConformance, ReadOfUnknownRoomIsEmptyWithFirstOffsetZero) {
  uint64_t first = 77;
  EXPECT_TRUE(this->read_offsets(this->name("nobody"), 1, 0, 10, &first).empty());
  EXPECT_EQ(first, 0u);
}

TYPED_TEST_P(BackendConformance, KeepsEpochsAndRoomsApart) {
  std::string room = this->name("room"), other = this->name("other");
  this->append_range(room, 1, 1, 3, this->t0_);
  this->append_range(room, 2, 1, 2, this->t0_);
  this->append_range(other, 1, 1, 7, this->t0_);
  uint64_t first = 0;
  EXPECT_EQ(this->read_offsets(room, 1, 0, 100, &first), this->range(1, 3));
  EXPECT_EQ(first, 1u);
  EXPECT_EQ(this->read_offsets(room, 2, 0, 100, &first), this->range(1, 2));
  EXPECT_EQ(first, 1u);
  EXPECT_TRUE(this->read_offsets(room, 3, 0, 100, &first).empty());
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(this->read_offsets(other, 1, 0, 100), this->range(1, 7));
}

TYPED_TEST_P(BackendConformance, FirstOffsetIsTheOldestHeldForTheEpoch) {
  std::string room = this->name("room");
  this->append_range(room, 4, 20, 25, this->t0_);
  uint64_t first = 0;
  EXPECT_EQ(this->read_offsets(room, 4, 22, 100, &first), this->range(23, 25));
  EXPECT_EQ(first, 20u);
}

TYPED_TEST_P(BackendConformance, RoomStateIsNewestEpochAndHighestOffset) {
  std::string room = this->name("room");
  RoomState state;
  EXPECT_EQ(this->backend_->room_state(room, &state), Status::kNotFound);
  this->append_range(room, 1, 1, 9, this->t0_);
  ASSERT_EQ(this->backend_->room_state(room, &state), Status::kOk);
  EXPECT_EQ(state.epoch, 1u);
  EXPECT_EQ(state.last_offset, 9u);
  this->append_range(room, 2, 1, 4, this->t0_);
  ASSERT_EQ(this->backend_->room_state(room, &state), Status::kOk);
  EXPECT_EQ(state.epoch, 2u);
  EXPECT_EQ(state.last_offset, 4u);
  EXPECT_EQ(this->backend_->room_state(this->name("other"), &state), Status::kNotFound);
}

TYPED_TEST_P(BackendConformance, PurgeByCountKeepsTheNewestAndMovesFirstOffset) {
  std::string room = this->name("room"), small = this->name("small");
  this->append_range(room, 1, 1, 10, this->t0_);
  this->append_range(small, 1, 1, 2, this->t0_);
  Retention retention;
  retention.max_messages_per_room = 4;
  retention.max_age_ms = 0;
  ASSERT_EQ(this->backend_->purge(retention, this->t0_), Status::kOk);
  uint64_t first = 0;
  EXPECT_EQ(this->read_offsets(room, 1, 0, 100, &first), this->range(7, 10));
  EXPECT_EQ(first, 7u);
  // A reader that wanted offset 3 onwards can tell history no longer reaches back that far.
  EXPECT_EQ(this->read_offsets(room, 1, 2, 100, &first), this->range(7, 10));
  EXPECT_LT(2u + 1, first);
  EXPECT_EQ(this->read_offsets(small, 1, 0, 100, &first), this->range(1, 2));
  EXPECT_EQ(first, 1u);
  RoomState state;
  ASSERT_EQ(this->backend_->room_state(room, &state), Status::kOk);
  EXPECT_EQ(state.last_offset, 10u);
}

TYPED_TEST_P(BackendConformance, PurgeByAgeDropsOldMessagesOnly) {
  std::string room = this->name("room");
  for (uint64_t o = 1; o <= 5; ++o)
    ASSERT_EQ(this->append(room, 1, o, this->t0_ + static_cast<int64_t>(o) * 1000), Status::kOk);
  Retention retention;
  retention.max_messages_per_room = 0;
  retention.max_age_ms = 2500;
  // Cutoff t0 + 2500: offsets 1 and 2 (stored at t0 + 1000, t0 + 2000) are too old.
  ASSERT_EQ(this->backend_->purge(retention, this->t0_ + 5000), Status::kOk);
  uint64_t first = 0;
  EXPECT_EQ(this->read_offsets(room, 1, 0, 100, &first), this->range(3, 5));
  EXPECT_EQ(first, 3u);
}

TYPED_TEST_P(BackendConformance, PurgeWithoutLimitsKeepsEverything) {
  std::string room = this->name("room");
  this->append_range(room, 1, 1, 20, this->t0_);
  Retention retention;
  retention.max_messages_per_room = 0;
  retention.max_age_ms = 0;
  ASSERT_EQ(this->backend_->purge(retention, this->t0_ + 100LL * 24 * 3600 * 1000), Status::kOk);
  EXPECT_EQ(this->read_offsets(room, 1, 0, 100), this->range(1, 20));
}

TYPED_TEST_P(BackendConformance, SessionPutGetRoundTrips) {
  std::string token = this->name("tok");
  Session in = this->make_session(token, this->t0_ + 60000);
  ASSERT_EQ(this->backend_->put_session(in), Status::kOk);
  Session out;
  ASSERT_EQ(this->backend_->get_session(token, this->t0_, &out), Status::kOk);
  EXPECT_EQ(out.token, token);
  EXPECT_EQ(out.member_id, in.member_id);
  EXPECT_EQ(out.expires_ms, in.expires_ms);
  ASSERT_EQ(out.rooms.size(), in.rooms.size());
  for (size_t i = 0; i < in.rooms.size(); ++i) {
    EXPECT_EQ(out.rooms[i].room_id, in.rooms[i].room_id);
    EXPECT_EQ(out.rooms[i].epoch, in.rooms[i].epoch);
    EXPECT_EQ(out.rooms[i].offset, in.rooms[i].offset);
  }
  Session missing;
  EXPECT_EQ(this->backend_->get_session(this->name("nope"), this->t0_, &missing),
            Status::kNotFound);
}

TYPED_TEST_P(BackendConformance, SessionPutReplacesRooms) {
  std::string token = this->name("tok");
  ASSERT_EQ(this->backend_->put_session(this->make_session(token, this->t0_ + 60000)), Status::kOk);
  Session updated;
  updated.token = token;
  updated.member_id = "someone-else";
  updated.rooms = {{this->name("only"), 2, 44}};
  updated.expires_ms = this->t0_ + 90000;
  ASSERT_EQ(this->backend_->put_session(updated), Status::kOk);
  Session out;
  ASSERT_EQ(this->backend_->get_session(token, this->t0_, &out), Status::kOk);
  EXPECT_EQ(out.member_id, "someone-else");
  EXPECT_EQ(out.expires_ms, this->t0_ + 90000);
  ASSERT_EQ(out.rooms.size(), 1u);
  EXPECT_EQ(out.rooms[0].room_id, this->name("only"));
  EXPECT_EQ(out.rooms[0].epoch, 2u);
  EXPECT_EQ(out.rooms[0].offset, 44u);
}

TYPED_TEST_P(BackendConformance, SessionExpiresAtItsDeadline) {
  std::string token = this->name("tok");
  int64_t expires = this->t0_ + 30000;
  ASSERT_EQ(this->backend_->put_session(this->make_session(token, expires)), Status::kOk);
  Session out;
  EXPECT_EQ(this->backend_->get_session(token, expires - 1, &out), Status::kOk);
  EXPECT_EQ(this->backend_->get_session(token, expires + 1, &out), Status::kNotFound);
}

TYPED_TEST_P(BackendConformance, SessionDeleteRemovesIt) {
  std::string token = this->name("tok"), kept = this->name("kept");
  ASSERT_EQ(this->backend_->put_session(this->make_session(token, this->t0_ + 60000)), Status::kOk);
  ASSERT_EQ(this->backend_->put_session(this->make_session(kept, this->t0_ + 60000)), Status::kOk);
  ASSERT_EQ(this->backend_->delete_session(token), Status::kOk);
  Session out;
  EXPECT_EQ(this->backend_->get_session(token, this->t0_, &out), Status::kNotFound);
  EXPECT_EQ(this->backend_->get_session(kept, this->t0_, &out), Status::kOk);
}

TYPED_TEST_P(BackendConformance, PurgeDropsExpiredSessions) {
  if (this->expiry_by_server_ttl()) GTEST_SKIP() << "expiry follows the server's own clock";
  std::string old_token = this->name("old"), live = this->name("live");
  ASSERT_EQ(this->backend_->put_session(this->make_session(old_token, this->t0_ + 1000)),
            Status::kOk);
  ASSERT_EQ(this->backend_->put_session(this->make_session(live, this->t0_ + 60000)), Status::kOk);
  Retention retention;
  ASSERT_EQ(this->backend_->purge(retention, this->t0_ + 2000), Status::kOk);
  // Asked at a time when it had not expired yet: only a purge can explain its absence.
  Session out;
  EXPECT_EQ(this->backend_->get_session(old_token, this->t0_, &out), Status::kNotFound);
  EXPECT_EQ(this->backend_->get_session(live, this->t0_ + 2000, &out), Status::kOk);
}

TYPED_TEST_P(BackendConformance, FirstMessageIdIsNotADuplicate) {
  IdempotencyResult r = this->remember(this->name("room"), "m-1", 5, 10000, this->t0_);
  EXPECT_FALSE(r.duplicate);
}

TYPED_TEST_P(BackendConformance, RepeatWithinWindowIsDuplicateWithOriginalOffset) {
  std::string room = this->name("room");
  ASSERT_FALSE(this->remember(room, "m-1", 5, 10000, this->t0_).duplicate);
  IdempotencyResult r = this->remember(room, "m-1", 9, 10000, this->t0_ + 5000);
  EXPECT_TRUE(r.duplicate);
  EXPECT_EQ(r.offset, 5u);
  // The same id in another room, or another id in this room, is new.
  EXPECT_FALSE(this->remember(this->name("other"), "m-1", 1, 10000, this->t0_ + 5000).duplicate);
  EXPECT_FALSE(this->remember(room, "m-2", 10, 10000, this->t0_ + 5000).duplicate);
}

TYPED_TEST_P(BackendConformance, RepeatAfterWindowIsNewAndRecordsTheNewOffset) {
  std::string room = this->name("room");
  ASSERT_FALSE(this->remember(room, "m-1", 5, 1000, this->t0_).duplicate);
  EXPECT_FALSE(this->remember(room, "m-1", 12, 1000, this->t0_ + 1500).duplicate);
  IdempotencyResult r = this->remember(room, "m-1", 20, 1000, this->t0_ + 1800);
  EXPECT_TRUE(r.duplicate);
  EXPECT_EQ(r.offset, 12u);
}

TYPED_TEST_P(BackendConformance, PurgeDropsExpiredMessageIds) {
  if (this->expiry_by_server_ttl()) GTEST_SKIP() << "expiry follows the server's own clock";
  std::string room = this->name("room");
  ASSERT_FALSE(this->remember(room, "old", 1, 1000, this->t0_).duplicate);
  ASSERT_FALSE(this->remember(room, "live", 2, 60000, this->t0_).duplicate);
  Retention retention;
  ASSERT_EQ(this->backend_->purge(retention, this->t0_ + 5000), Status::kOk);
  // Asked inside the old key's window: only a purge can explain that it is new again.
  EXPECT_FALSE(this->remember(room, "old", 3, 1000, this->t0_ + 10).duplicate);
  IdempotencyResult r = this->remember(room, "live", 4, 60000, this->t0_ + 5000);
  EXPECT_TRUE(r.duplicate);
  EXPECT_EQ(r.offset, 2u);
}

TYPED_TEST_P(BackendConformance, RateAllowsBurstThenDeniesWithRetryAfterOneInterval) {
  std::string key = this->name("conn");
  RateLimit limit{10, 5};  // one every 100 ms, five at once
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(this->take(key, limit, 1, this->t0_).allowed) << i;
  RateDecision denied = this->take(key, limit, 1, this->t0_);
  EXPECT_FALSE(denied.allowed);
  EXPECT_NEAR(static_cast<double>(denied.retry_after_ms), 100.0, 2.0);
  // A denial takes nothing: waiting the advertised time is enough, and then one passes.
  EXPECT_FALSE(this->take(key, limit, 1, this->t0_ + 50).allowed);
  int64_t retry_at = this->t0_ + denied.retry_after_ms;
  EXPECT_TRUE(this->take(key, limit, 1, retry_at).allowed);
  EXPECT_FALSE(this->take(key, limit, 1, retry_at).allowed);
}

TYPED_TEST_P(BackendConformance, RateRefillsOverTimeAndKeysAreIndependent) {
  std::string key = this->name("conn"), other = this->name("other");
  RateLimit limit{10, 5};
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(this->take(key, limit, 1, this->t0_).allowed);
  EXPECT_FALSE(this->take(key, limit, 1, this->t0_).allowed);
  EXPECT_TRUE(this->take(other, limit, 1, this->t0_).allowed);
  // After a full second the whole burst is back, and no more.
  int64_t later = this->t0_ + 1000;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(this->take(key, limit, 1, later).allowed) << i;
  EXPECT_FALSE(this->take(key, limit, 1, later).allowed);
}

TYPED_TEST_P(BackendConformance, RateCostCountsAsSeveralTakes) {
  std::string key = this->name("conn");
  RateLimit limit{10, 5};
  EXPECT_TRUE(this->take(key, limit, 3, this->t0_).allowed);
  RateDecision denied = this->take(key, limit, 3, this->t0_);
  EXPECT_FALSE(denied.allowed);
  EXPECT_NEAR(static_cast<double>(denied.retry_after_ms), 100.0, 2.0);  // one interval short
  EXPECT_TRUE(this->take(key, limit, 2, this->t0_).allowed);
}

TYPED_TEST_P(BackendConformance, BatchGroupsManyWritesThatAllLand) {
  std::string room = this->name("room"), token = this->name("tok");
  ASSERT_EQ(this->backend_->begin_batch(), Status::kOk);
  this->append_range(room, 1, 1, 300, this->t0_);
  ASSERT_EQ(this->backend_->put_session(this->make_session(token, this->t0_ + 60000)), Status::kOk);
  EXPECT_FALSE(this->remember(room, "m-1", 7, 10000, this->t0_).duplicate);
  ASSERT_EQ(this->backend_->commit_batch(), Status::kOk);
  EXPECT_EQ(this->read_offsets(room, 1, 0, 1000), this->range(1, 300));
  Session out;
  EXPECT_EQ(this->backend_->get_session(token, this->t0_, &out), Status::kOk);
  EXPECT_TRUE(this->remember(room, "m-1", 8, 10000, this->t0_ + 1).duplicate);
  // The next batch continues where the first ended.
  ASSERT_EQ(this->backend_->begin_batch(), Status::kOk);
  this->append_range(room, 1, 301, 310, this->t0_);
  ASSERT_EQ(this->backend_->commit_batch(), Status::kOk);
  RoomState state;
  ASSERT_EQ(this->backend_->room_state(room, &state), Status::kOk);
  EXPECT_EQ(state.last_offset, 310u);
}

REGISTER_TYPED_TEST_SUITE_P(
    BackendConformance, HasANameAndStartsCleanBatches,
    ReadsAppendedMessagesOldestFirstWithAllFields, ReadRespectsLimitAndAfterOffset,
    ReadOfUnknownRoomIsEmptyWithFirstOffsetZero, KeepsEpochsAndRoomsApart,
    FirstOffsetIsTheOldestHeldForTheEpoch, RoomStateIsNewestEpochAndHighestOffset,
    PurgeByCountKeepsTheNewestAndMovesFirstOffset, PurgeByAgeDropsOldMessagesOnly,
    PurgeWithoutLimitsKeepsEverything, SessionPutGetRoundTrips, SessionPutReplacesRooms,
    SessionExpiresAtItsDeadline, SessionDeleteRemovesIt, PurgeDropsExpiredSessions,
    FirstMessageIdIsNotADuplicate, RepeatWithinWindowIsDuplicateWithOriginalOffset,
    RepeatAfterWindowIsNewAndRecordsTheNewOffset, PurgeDropsExpiredMessageIds,
    RateAllowsBurstThenDeniesWithRetryAfterOneInterval, RateRefillsOverTimeAndKeysAreIndependent,
    RateCostCountsAsSeveralTakes, BatchGroupsManyWritesThatAllLand);

}  // namespace weir::store::conformance
