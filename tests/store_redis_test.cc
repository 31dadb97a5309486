// tests/store_redis_test.cc — the Redis backend against a real redis-server: the shared
// conformance suite, then what only Redis has: spec parsing, outages (a stopped server, a
// frozen one) behind the circuit breaker, recovery without a restart, GCRA limits that hold
// across nodes, scripts flushed from the server, and batches sent twice.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "store/backend.h"
#include "store/redis_backend.h"
#include "tests/redis_server.h"
#include "tests/store_conformance.h"

namespace weir::store {
namespace {

using harness::RedisServer;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------- the conformance suite

struct RedisFactory {
  static std::unique_ptr<Backend> make() {
    if (!RedisServer::installed()) return nullptr;  // skipped
    std::string error;
    RedisServer* server = harness::shared_redis_server(&error);
    if (!server) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    auto backend = open_redis_backend(server->spec(), &error);
    EXPECT_NE(backend, nullptr) << error;
    return backend;
  }
  // Sessions and message ids expire by PEXPIREAT / PX on the server's clock.
  static constexpr bool kExpiryByServerTtl = true;
};

}  // namespace

namespace conformance {
using RedisFactories = ::testing::Types<RedisFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(Redis, BackendConformance, RedisFactories);
}  // namespace conformance

namespace {

// ---------------------------------------------------------------- helpers

#define REQUIRE_REDIS_SERVER() \
  if (!RedisServer::installed()) GTEST_SKIP() << harness::kRedisServerPath << " missing"

// A test's own server, for tests that stop or freeze it.
std::unique_ptr<RedisServer> start_own_server() {
  auto server = std::make_unique<RedisServer>();
  std::string error;
  EXPECT_TRUE(server->start(&error)) << error;
  return server;
}

std::unique_ptr<Backend> open_or_fail(const std::string& spec) {
  std::string error;
  auto backend = open_redis_backend(spec, &error);
  EXPECT_NE(backend, nullptr) << error;
  return backend;
}

StoredMessage message(const std::string& room, uint64_t epoch, uint64_t offset) {
  return StoredMessage{room, epoch, offset, "payload " + std::to_string(offset), core::wall_ms()};
}

int64_t elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - since).count();
}

// Appends until one succeeds or `budget` passes; how long it took, or -1.
int64_t ms_until_append_succeeds(Backend& backend, const std::string& room, milliseconds budget) {
  Clock::time_point start = Clock::now();
  for (uint64_t offset = 1000; Clock::now() - start < budget; ++offset) {
    if (backend.append(message(room, 1, offset)) == Status::kOk) return elapsed_ms(start);
    std::this_thread::sleep_for(milliseconds(10));
  }
  return -1;
}

// The connect timeout plus one command timeout (200 ms each), with room for a loaded machine:
// what matters is that a call never waits on a dead server for long.
constexpr int64_t kCallBudgetMs = 1000;

// ---------------------------------------------------------------- the spec

TEST(RedisStoreSpec, ParsesHostPortAndDatabase) {
  RedisOptions options;
  std::string error;
  ASSERT_TRUE(parse_redis_spec("redis://127.0.0.1:6380", &options, &error)) << error;
  EXPECT_EQ(options.host, "127.0.0.1");
  EXPECT_EQ(options.port, 6380);
  EXPECT_EQ(options.db, 0);
  ASSERT_TRUE(parse_redis_spec("redis://cache.internal:7000/3", &options, &error)) << error;
  EXPECT_EQ(options.host, "cache.internal");
  EXPECT_EQ(options.port, 7000);
  EXPECT_EQ(options.db, 3);
  ASSERT_TRUE(parse_redis_spec("redis://[::1]:6379/1", &options, &error)) << error;
  EXPECT_EQ(options.host, "::1");
  EXPECT_EQ(options.db, 1);
  ASSERT_TRUE(parse_redis_spec("redis://localhost", &options, &error)) << error;
  EXPECT_EQ(options.port, 6379);
}

TEST(RedisStoreSpec, RejectsMalformedSpecsWithAReason) {
  for (const char* spec :
       {"redis:/h:1", "http://h:1", "redis://", "redis://:6379", "redis://h:", "redis://h:0",
        "redis://h:65536", "redis://h:12ab", "redis://h:1/", "redis://h:1/x", "redis://h:1/-1",
        "redis://h:1/2/3", "redis://user:pw@h:1", "redis://h:1?db=2", "redis://[::1",
        "redis://[::1]x", "redis://a:b:1"}) {
    std::string error;
    EXPECT_EQ(open_redis_backend(spec, &error), nullptr) << spec;
    EXPECT_NE(error.find("redis://HOST:PORT"), std::string::npos) << spec << ": " << error;
  }
}

TEST(RedisStoreSpec, OpenBackendBuildsARedisBackend) {
  std::string error;
  auto backend = open_backend("redis://127.0.0.1:1/0", &error);  // nothing listens on port 1
  ASSERT_NE(backend, nullptr) << error;
  EXPECT_STREQ(backend->name(), "redis");
  EXPECT_EQ(open_backend("redis://h:x", &error), nullptr);
}

// ---------------------------------------------------------------- outages

TEST(RedisStoreOutage, UnreachableServerAnswersUnavailableAtOnceWithAReason) {
  auto backend = open_or_fail("redis://127.0.0.1:1/0");
  ASSERT_NE(backend, nullptr);
  for (int i = 0; i < 20; ++i) {
    Clock::time_point start = Clock::now();
    RoomState state;
    EXPECT_EQ(backend->room_state("room", &state), Status::kUnavailable);
    EXPECT_LT(elapsed_ms(start), kCallBudgetMs);
  }
  EXPECT_NE(backend->last_error().find("127.0.0.1:1"), std::string::npos) << backend->last_error();
  EXPECT_NE(backend->last_error().find("refused"), std::string::npos) << backend->last_error();
}

TEST(RedisStoreOutage, StoppedServerFailsFastAndTheBackendRecoversAfterRestart) {
  REQUIRE_REDIS_SERVER();
  auto server = start_own_server();
  auto backend = open_or_fail(server->spec());
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ(backend->append(message("room", 1, 1)), Status::kOk) << backend->last_error();

  server->stop();
  // Every call answers within the budget, and once the circuit is open, without waiting.
  Clock::time_point outage = Clock::now();
  int calls = 0, instant = 0;
  while (Clock::now() - outage < milliseconds(1500)) {
    Clock::time_point start = Clock::now();
    EXPECT_EQ(backend->append(message("room", 1, 2)), Status::kUnavailable);
    int64_t took = elapsed_ms(start);
    EXPECT_LT(took, kCallBudgetMs);
    ++calls;
    if (took < 20) ++instant;
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_GT(instant, calls * 3 / 4) << "the circuit should answer most calls without I/O";
  EXPECT_NE(backend->last_error(), "");

  std::string error;
  ASSERT_TRUE(server->start(&error)) << error;
  // The backoff is at most 5 s by default: the same backend comes back by itself.
  int64_t took = ms_until_append_succeeds(*backend, "room", milliseconds(8000));
  ASSERT_GE(took, 0) << backend->last_error();
  EXPECT_LT(took, 5500);
  RoomState state;
  EXPECT_EQ(backend->room_state("room", &state), Status::kOk);
}

TEST(RedisStoreOutage, FrozenServerTimesOutInsteadOfHanging) {
  REQUIRE_REDIS_SERVER();
  auto server = start_own_server();
  auto backend = open_or_fail(server->spec());
  ASSERT_NE(backend, nullptr);
  RateDecision decision;
  ASSERT_EQ(backend->rate_take("k", {10, 5}, 1, core::wall_ms(), &decision), Status::kOk);

  server->pause();
  Clock::time_point start = Clock::now();
  EXPECT_EQ(backend->rate_take("k", {10, 5}, 1, core::wall_ms(), &decision), Status::kUnavailable);
  int64_t took = elapsed_ms(start);
  EXPECT_GE(took, 150);            // it did wait for the command timeout ...
  EXPECT_LT(took, kCallBudgetMs);  // ... and no longer
  EXPECT_NE(backend->last_error().find("no answer within"), std::string::npos)
      << backend->last_error();
  // Reconnecting to a frozen server (the kernel still accepts) also costs at most a budget.
  for (int i = 0; i < 5; ++i) {
    start = Clock::now();
    std::vector<StoredMessage> out;
    uint64_t first = 0;
    EXPECT_EQ(backend->read_room("room", 1, 0, 10, &out, &first), Status::kUnavailable);
    EXPECT_LT(elapsed_ms(start), kCallBudgetMs);
    std::this_thread::sleep_for(milliseconds(60));
  }

  server->resume();
  ASSERT_GE(ms_until_append_succeeds(*backend, "room", milliseconds(8000)), 0)
      << backend->last_error();
}

TEST(RedisStoreOutage, BatchAgainstAStoppedServerReportsUnavailableAtCommit) {
  REQUIRE_REDIS_SERVER();
  auto server = start_own_server();
  auto backend = open_or_fail(server->spec());
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ(backend->append(message("room", 1, 1)), Status::kOk);
  server->stop();
  Clock::time_point start = Clock::now();
  backend->begin_batch();
  for (uint64_t offset = 2; offset < 50; ++offset) backend->append(message("room", 1, offset));
  EXPECT_EQ(backend->commit_batch(), Status::kUnavailable);
  EXPECT_LT(elapsed_ms(start), kCallBudgetMs);
  // The next batch is refused at once while the circuit is open.
  EXPECT_EQ(backend->begin_batch(), Status::kUnavailable);
  EXPECT_EQ(backend->append(message("room", 1, 2)), Status::kUnavailable);
  EXPECT_EQ(backend->commit_batch(), Status::kUnavailable);
}

TEST(RedisStoreOutage, ServerDownAtOpenIsAnOutageNotAnError) {
  REQUIRE_REDIS_SERVER();
  RedisServer server;
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  std::string spec = server.spec();
  server.stop();
  auto backend = open_or_fail(spec);
  ASSERT_NE(backend, nullptr);
  RoomState state;
  EXPECT_EQ(backend->room_state("room", &state), Status::kUnavailable);
  ASSERT_TRUE(server.start(&error)) << error;
  ASSERT_GE(ms_until_append_succeeds(*backend, "room", milliseconds(8000)), 0)
      << backend->last_error();
}

// ---------------------------------------------------------------- shared state and scripts

class RedisStoreShared : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_REDIS_SERVER();
    std::string error;
    server_ = harness::shared_redis_server(&error);
    ASSERT_NE(server_, nullptr) << error;
    prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
              std::to_string(core::monotonic_ns()) + "-";
  }
  RedisServer* server_ = nullptr;
  std::string prefix_;
};

TEST_F(RedisStoreShared, GcraLimitHoldsAcrossNodes) {
  auto node_a = open_or_fail(server_->spec());
  auto node_b = open_or_fail(server_->spec());
  ASSERT_TRUE(node_a && node_b);
  std::string key = prefix_ + "member";
  RateLimit limit{10, 5};  // one every 100 ms, five at once, for the whole cluster
  int64_t now = core::wall_ms();
  RateDecision d;
  for (int i = 0; i < 5; ++i) {
    Backend& node = i % 2 ? *node_b : *node_a;
    ASSERT_EQ(node.rate_take(key, limit, 1, now, &d), Status::kOk);
    EXPECT_TRUE(d.allowed) << i;
  }
  for (Backend* node : {node_a.get(), node_b.get()}) {
    ASSERT_EQ(node->rate_take(key, limit, 1, now, &d), Status::kOk);
    EXPECT_FALSE(d.allowed);
    EXPECT_NEAR(static_cast<double>(d.retry_after_ms), 100.0, 2.0);
  }
  ASSERT_EQ(node_b->rate_take(key, limit, 1, now + 100, &d), Status::kOk);
  EXPECT_TRUE(d.allowed);
  ASSERT_EQ(node_a->rate_take(key, limit, 1, now + 100, &d), Status::kOk);
  EXPECT_FALSE(d.allowed);
}

TEST_F(RedisStoreShared, HistoryWrittenByOneNodeIsReadByAnother) {
  auto node_a = open_or_fail(server_->spec());
  auto node_b = open_or_fail(server_->spec());
  ASSERT_TRUE(node_a && node_b);
  std::string room = prefix_ + "room";
  for (uint64_t offset = 1; offset <= 3; ++offset)
    ASSERT_EQ(node_a->append(message(room, 7, offset)), Status::kOk);
  std::vector<StoredMessage> out;
  uint64_t first = 0;
  ASSERT_EQ(node_b->read_room(room, 7, 1, 10, &out, &first), Status::kOk);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].payload, "payload 2");
  EXPECT_EQ(first, 1u);
  IdempotencyResult r;
  ASSERT_EQ(node_a->remember_message_id(room, "m", 3, 10000, core::wall_ms(), &r), Status::kOk);
  ASSERT_EQ(node_b->remember_message_id(room, "m", 4, 10000, core::wall_ms(), &r), Status::kOk);
  EXPECT_TRUE(r.duplicate);
  EXPECT_EQ(r.offset, 3u);
}

TEST_F(RedisStoreShared, DatabasesAreSeparate) {
  auto db0 = open_or_fail(server_->spec(0));
  auto db1 = open_or_fail(server_->spec(1));
  ASSERT_TRUE(db0 && db1);
  std::string room = prefix_ + "room";
  ASSERT_EQ(db1->append(message(room, 1, 1)), Status::kOk) << db1->last_error();
  RoomState state;
  EXPECT_EQ(db1->room_state(room, &state), Status::kOk);
  EXPECT_EQ(db0->room_state(room, &state), Status::kNotFound);
}

TEST_F(RedisStoreShared, ScriptsFlushedFromTheServerRunAgainFromSource) {
  auto backend = open_or_fail(server_->spec());
  ASSERT_NE(backend, nullptr);
  std::string room = prefix_ + "room";
  ASSERT_EQ(server_->command({"SCRIPT", "FLUSH"}), "OK");
  RateDecision d;
  ASSERT_EQ(backend->rate_take(prefix_ + "k", {10, 5}, 1, core::wall_ms(), &d), Status::kOk)
      << backend->last_error();
  EXPECT_TRUE(d.allowed);
  ASSERT_EQ(server_->command({"SCRIPT", "FLUSH"}), "OK");
  ASSERT_EQ(backend->begin_batch(), Status::kOk);
  for (uint64_t offset = 1; offset <= 20; ++offset)
    ASSERT_EQ(backend->append(message(room, 1, offset)), Status::kOk);
  ASSERT_EQ(backend->commit_batch(), Status::kOk) << backend->last_error();
  RoomState state;
  ASSERT_EQ(backend->room_state(room, &state), Status::kOk);
  EXPECT_EQ(state.last_offset, 20u);
}

TEST_F(RedisStoreShared, ABatchSentTwiceStoresEachMessageOnce) {
  auto backend = open_or_fail(server_->spec());
  ASSERT_NE(backend, nullptr);
  std::string room = prefix_ + "room";
  for (int round = 0; round < 2; ++round) {
    ASSERT_EQ(backend->begin_batch(), Status::kOk);
    for (uint64_t offset = 1; offset <= 5; ++offset)
      ASSERT_EQ(backend->append(message(room, 1, offset)), Status::kOk);
    ASSERT_EQ(backend->commit_batch(), Status::kOk) << backend->last_error();
  }
  std::vector<StoredMessage> out;
  uint64_t first = 0;
  ASSERT_EQ(backend->read_room(room, 1, 0, 100, &out, &first), Status::kOk);
  EXPECT_EQ(out.size(), 5u);
  // An offset below the newest that was never stored: another node appended past it.
  ASSERT_EQ(backend->append(message(room, 1, 10)), Status::kOk);
  EXPECT_EQ(backend->append(message(room, 1, 7)), Status::kConflict);
  EXPECT_NE(backend->last_error().find("WEIRCONFLICT"), std::string::npos) << backend->last_error();
}

// Two owners of one room (a pause or a partition outlived failure detection) append to the
// same epoch: whoever comes second learns it and fences, instead of being told its message
// was stored when another one holds its offset.
TEST_F(RedisStoreShared, AnotherMessageAtTheOffsetIsAConflict) {
  auto a = open_or_fail(server_->spec());
  auto b = open_or_fail(server_->spec());
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::string room = prefix_ + "room";
  for (uint64_t offset = 1; offset <= 3; ++offset)
    ASSERT_EQ(a->append(message(room, 1, offset)), Status::kOk) << a->last_error();
  StoredMessage other = message(room, 1, 3);
  other.payload = "another owner's message 3";
  EXPECT_EQ(b->append(other), Status::kConflict);
  // In a batch too, where the failure comes with the commit.
  ASSERT_EQ(b->begin_batch(), Status::kOk);
  ASSERT_EQ(b->append(other), Status::kOk);  // queued
  EXPECT_EQ(b->commit_batch(), Status::kConflict);
  // The same message again is a retry, not a conflict; the history keeps the first.
  EXPECT_EQ(b->append(message(room, 1, 3)), Status::kOk);
  std::vector<StoredMessage> out;
  uint64_t first = 0;
  ASSERT_EQ(a->read_room(room, 1, 2, 10, &out, &first), Status::kOk);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload, "payload 3");
  // Past the newest offset the epoch goes on, whoever appends.
  EXPECT_EQ(b->append(message(room, 1, 4)), Status::kOk) << b->last_error();
}

TEST_F(RedisStoreShared, CountRetentionSpansEpochsNewestFirst) {
  auto backend = open_or_fail(server_->spec());
  ASSERT_NE(backend, nullptr);
  std::string room = prefix_ + "room";
  for (uint64_t offset = 1; offset <= 5; ++offset)
    ASSERT_EQ(backend->append(message(room, 1, offset)), Status::kOk);
  for (uint64_t offset = 1; offset <= 3; ++offset)
    ASSERT_EQ(backend->append(message(room, 2, offset)), Status::kOk);
  Retention retention;
  retention.max_messages_per_room = 4;
  retention.max_age_ms = 0;
  ASSERT_EQ(backend->purge(retention, core::wall_ms()), Status::kOk) << backend->last_error();
  std::vector<StoredMessage> out;
  uint64_t first = 0;
  ASSERT_EQ(backend->read_room(room, 1, 0, 100, &out, &first), Status::kOk);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(first, 5u);
  ASSERT_EQ(backend->read_room(room, 2, 0, 100, &out, &first), Status::kOk);
  EXPECT_EQ(out.size(), 3u);
  // Age retention that empties the room forgets it, as the other backends do.
  retention.max_messages_per_room = 0;
  retention.max_age_ms = 1;
  ASSERT_EQ(backend->purge(retention, core::wall_ms() + 60000), Status::kOk);
  RoomState state;
  EXPECT_EQ(backend->room_state(room, &state), Status::kNotFound);
  EXPECT_EQ(server_->command({"SISMEMBER", "weir:rooms", room}), "0");
}

}  // namespace
}  // namespace weir::store
