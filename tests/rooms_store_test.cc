// tests/rooms_store_test.cc — the rooms with a store behind them, over real sockets: session
// tokens, resume with replay (exact, with publishers running on another thread during the
// resume), recovered: false when history or the epoch does not reach, rooms that continue
// their stored epoch and offsets, sync durability (nothing delivered that the store did not
// commit), message-id deduplication across threads, and the GCRA rate limits. Also the Gcra
// and SessionTokens units.
#include "cluster/session_token.h"
#include "core/gcra.h"
#include "store/memory_backend.h"
#include "store/redis_backend.h"
#include "store/store.h"
#include "tests/redis_server.h"
#include "tests/rooms_harness.h"

namespace weir {
namespace {

using harness::ReadStatus;
using std::chrono::milliseconds;

// A memory backend whose batches can be made to fail, as a store whose server went away.
class FlakyBackend : public store::MemoryBackend {
 public:
  explicit FlakyBackend(std::shared_ptr<std::atomic<bool>> failing)
      : failing_(std::move(failing)) {}
  store::Status commit_batch() override {
    return failing_->load() ? store::Status::kUnavailable : store::Status::kOk;
  }
  store::Status append(const store::StoredMessage& m) override {
    if (failing_->load()) return store::Status::kUnavailable;
    return MemoryBackend::append(m);
  }

 private:
  std::shared_ptr<std::atomic<bool>> failing_;
};

// A rooms server with its own memory store (or a flaky one).
struct StoredRooms {
  explicit StoredRooms(int threads, cluster::RoomsConfig config = {})
      : StoredRooms(threads, config, nullptr) {}
  // Over `backend` (a Redis one, say) instead of the flaky memory one.
  StoredRooms(int threads, cluster::RoomsConfig config, std::unique_ptr<store::Backend> backend)
      : failing(std::make_shared<std::atomic<bool>>(false)),
        store(backend ? std::move(backend) : std::make_unique<FlakyBackend>(failing)),
        server(threads, config, kApiKey, &store) {}
  ~StoredRooms() { store.stop(); }  // after the server: it stops first (declared last)
  std::shared_ptr<std::atomic<bool>> failing;
  store::Store store;
  RoomsServer server;
};

std::string message_json(const std::string& room, const std::string& content,
                         const std::string& id = {}) {
  std::string json = R"({"message":{"target":")" + room + R"(","content":")" + content + '"';
  if (!id.empty()) json += R"(,"message_id":")" + id + '"';
  return json + "}}";
}

std::string resume_json(const std::string& token, const std::string& room, uint64_t offset,
                        uint64_t epoch) {
  return R"({"resume":{"token":")" + token + R"(","rooms":{")" + room + R"(":{"offset":)" +
         std::to_string(offset) + R"(,"epoch":)" + std::to_string(epoch) + "}}}}";
}

// Reads messages until one with offset `last` arrived; returns their offsets.
std::vector<uint64_t> offsets_until(WsConn& c, uint64_t last, std::vector<Env>* others = nullptr) {
  std::vector<uint64_t> offsets;
  Env e;
  while (c.recv(&e, 3000) == ReadStatus::kOk) {
    if (e.type != "message") {
      if (others) others->push_back(e);
      continue;
    }
    offsets.push_back(e.n("offset"));
    if (e.n("offset") >= last) break;
  }
  return offsets;
}

// ---------------------------------------------------------------- units

TEST(Gcra, LetsTheBurstThroughThenOnePerInterval) {
  core::Gcra g(10, 3);  // 10/s, 3 at once
  int64_t now = 1'000'000'000, retry = 0;
  EXPECT_TRUE(g.take(now, &retry));
  EXPECT_TRUE(g.take(now, &retry));
  EXPECT_TRUE(g.take(now, &retry));
  EXPECT_FALSE(g.take(now, &retry));
  EXPECT_EQ(retry, 100'000'000);  // one interval
  EXPECT_FALSE(g.take(now + 99'999'999, &retry));
  EXPECT_EQ(retry, 1);
  EXPECT_TRUE(g.take(now + 100'000'000, &retry));
  // A long pause refills the burst, never more.
  now += 10'000'000'000;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(g.take(now, &retry)) << i;
  EXPECT_FALSE(g.take(now, &retry));
}

TEST(Gcra, ZeroRateNeverLimits) {
  core::Gcra g;
  EXPECT_FALSE(g.limited());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(g.take(0, nullptr));
}

TEST(SessionTokens, VerifyTheirOwnAndRefuseForgedTamperedAndExpired) {
  cluster::SessionTokens tokens("key-one-0123456789"), other("key-two-0123456789");
  std::string token = tokens.issue("m42", 5000), member;
  EXPECT_EQ(tokens.verify(token, 4999, &member), cluster::SessionTokens::Check::kOk);
  EXPECT_EQ(member, "m42");
  EXPECT_EQ(tokens.verify(token, 5000, &member), cluster::SessionTokens::Check::kExpired);
  EXPECT_EQ(other.verify(token, 0, &member), cluster::SessionTokens::Check::kInvalid);
  std::string longer = token;
  longer.replace(0, 3, "m43");  // another member under the same mac
  EXPECT_EQ(tokens.verify(longer, 0, &member), cluster::SessionTokens::Check::kInvalid);
  std::string later = tokens.issue("m42", 5000);
  later.replace(later.find('.') + 1, 4, "9999");  // a later expiry under the same mac
  EXPECT_EQ(tokens.verify(later, 0, &member), cluster::SessionTokens::Check::kInvalid);
  for (const char* junk : {"", ".", "..", "a.b.c", "m1.1.", ".1.abc", "m1.x.00"})
    EXPECT_EQ(tokens.verify(junk, 0, &member), cluster::SessionTokens::Check::kInvalid) << junk;
}

TEST(SessionTokens, KeyFileIsCreatedOnceAndThenReused) {
  std::string path = ::testing::TempDir() + "weir-session-key-" + std::to_string(::getpid());
  std::filesystem::remove(path);
  std::string first, second, error;
  ASSERT_TRUE(cluster::SessionTokens::load_key(path, &first, &error)) << error;
  ASSERT_TRUE(cluster::SessionTokens::load_key(path, &second, &error)) << error;
  EXPECT_EQ(first, second);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  std::filesystem::remove(path);
}

// ---------------------------------------------------------------- resume and replay

// The member that resumes lives on one thread, the room's publisher on the other, and keeps
// publishing while the resume reads history: whatever the interleaving, the resumed member
// gets every offset after its own exactly once, in order.
TEST(RoomsStore, ResumeReplaysExactlyWhatWasMissedWhilePublishingGoesOn) {
  cluster::RoomsConfig config;
  config.replay_limit = 100000;  // however far the publisher got, all of it is replayed
  StoredRooms s(2, config);
  ASSERT_TRUE(s.server.started());
  WsConn pub(s.server.port());
  ASSERT_TRUE(pub.ok());
  pub.ignore_messages = true;
  Env joined = pub.join("live");
  uint64_t epoch = joined.n("epoch");
  std::string token;
  uint64_t had = 0;
  {
    WsConn a(s.server.port());
    ASSERT_TRUE(a.ok());
    token = a.session().s("token");
    a.join("live");
    for (int i = 1; i <= 20; ++i) pub.send(message_json("live", "m" + std::to_string(i)));
    std::vector<uint64_t> got = offsets_until(a, 20);
    ASSERT_TRUE(contiguous(got, 1));
    had = 12;  // the client processed up to 12 before it went away
  }
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    for (int i = 21; !stop.load() && i <= 2000; ++i) {
      pub.send(message_json("live", "m" + std::to_string(i)));
      if (i % 50 == 0) std::this_thread::sleep_for(milliseconds(1));
    }
  });
  std::this_thread::sleep_for(milliseconds(5));
  WsConn b(s.server.port());
  ASSERT_TRUE(b.ok());
  b.send(resume_json(token, "live", had, epoch));
  Env session = b.expect("session");
  EXPECT_EQ(session.s("token"), token);
  EXPECT_EQ(session.s("member_id"), token.substr(0, token.find('.')));
  Env resumed = b.expect("resumed");
  EXPECT_EQ(resumed.b("recovered"), "true") << resumed.raw;
  EXPECT_EQ(resumed.n("epoch"), epoch);
  EXPECT_GE(resumed.n("offset"), 20u);
  std::this_thread::sleep_for(milliseconds(50));
  stop = true;
  publisher.join();
  pub.send(message_json("live", "last"));
  Env e;
  uint64_t last = 0;
  std::vector<uint64_t> offsets;
  std::vector<std::string> contents;
  while (b.recv(&e, 3000) == ReadStatus::kOk) {
    if (e.type != "message") continue;
    offsets.push_back(e.n("offset"));
    contents.push_back(e.s("content"));
    if (e.s("content") == "last") break;
  }
  ASSERT_FALSE(offsets.empty());
  last = offsets.back();
  EXPECT_TRUE(contiguous(offsets, had + 1)) << "through " << last;
  EXPECT_EQ(contents.front(), "m" + std::to_string(had + 1));
}

TEST(RoomsStore, ResumeByQueryParameterRejoinsTheSessionsRooms) {
  StoredRooms s(2);
  ASSERT_TRUE(s.server.started());
  WsConn pub(s.server.port());
  ASSERT_TRUE(pub.ok());
  pub.ignore_messages = true;
  pub.join("q1");
  pub.join("q2");
  std::string token;
  {
    WsConn a(s.server.port());
    ASSERT_TRUE(a.ok());
    token = a.session().s("token");
    a.join("q1");
    a.join("q2");
    pub.send(message_json("q1", "one"));
    pub.send(message_json("q2", "two"));
    offsets_until(a, 1);
    offsets_until(a, 1);
  }
  // The server records the session's offsets when the connection ends; wait until it did.
  std::this_thread::sleep_for(milliseconds(100));
  pub.send(message_json("q1", "missed"));
  WsConn b(s.server.port(), {}, 0, "/ws?resume=" + token);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.session().s("token"), token);
  EXPECT_EQ(b.session().arrays.at("rooms"), 2u) << b.session().raw;
  std::map<std::string, Env> resumed;
  std::vector<std::string> contents;
  Env e;
  while (b.recv(&e, 1000) == ReadStatus::kOk) {
    if (e.type == "resumed") resumed[e.s("room_id")] = e;
    if (e.type == "message") contents.push_back(e.s("content"));
    if (resumed.size() == 2 && !contents.empty()) break;
  }
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(resumed["q1"].b("recovered"), "true") << resumed["q1"].raw;
  EXPECT_EQ(resumed["q1"].n("offset"), 2u);
  EXPECT_EQ(resumed["q2"].b("recovered"), "true") << resumed["q2"].raw;
  EXPECT_EQ(contents, std::vector<std::string>{"missed"});
}

TEST(RoomsStore, ResumeIsNotRecoveredAcrossEpochsOrPastTheReplayLimit) {
  cluster::RoomsConfig config;
  config.replay_limit = 5;
  StoredRooms s(1, config);
  ASSERT_TRUE(s.server.started());
  WsConn pub(s.server.port());
  ASSERT_TRUE(pub.ok());
  pub.ignore_messages = true;
  uint64_t epoch = pub.join("lim").n("epoch");
  std::string token = pub.session().s("token");
  for (int i = 1; i <= 12; ++i) pub.send(message_json("lim", "x" + std::to_string(i)));
  WsConn probe(s.server.port());
  ASSERT_TRUE(probe.ok());
  probe.join("lim");  // on one thread the probe's join follows the 12 publishes
  {
    WsConn b(s.server.port());
    ASSERT_TRUE(b.ok());
    b.send(resume_json(token, "lim", 2, epoch));  // 10 missed, 5 replayed: the newest
    b.expect("session");
    Env resumed = b.expect("resumed");
    EXPECT_EQ(resumed.b("recovered"), "false") << resumed.raw;
    EXPECT_EQ(resumed.n("offset"), 12u);
    EXPECT_TRUE(contiguous(offsets_until(b, 12), 8));
  }
  {
    WsConn b(s.server.port());
    ASSERT_TRUE(b.ok());
    b.send(resume_json(token, "lim", 2, epoch + 1));  // another incarnation of the room
    b.expect("session");
    Env resumed = b.expect("resumed");
    EXPECT_EQ(resumed.b("recovered"), "false") << resumed.raw;
    EXPECT_EQ(resumed.n("epoch"), epoch);
    EXPECT_TRUE(b.quiet_for(100));  // nothing replayed
  }
}

TEST(RoomsStore, BadTokensAreRefusedWithTheirOwnCodes) {
  StoredRooms s(1);
  ASSERT_TRUE(s.server.started());
  WsConn a(s.server.port());
  ASSERT_TRUE(a.ok());
  cluster::SessionTokens stranger("another-key-0123456789");
  cluster::SessionTokens ours("rooms-test-session-key");  // the harness's key
  struct Case {
    std::string token, code;
  } cases[] = {
      {"nonsense", "invalid_token"},
      {stranger.issue("m1", core::wall_ms() + 60000), "invalid_token"},
      {ours.issue("m1", core::wall_ms() - 1), "session_expired"},
      {ours.issue("m-never-saved", core::wall_ms() + 60000), "session_not_found"},
  };
  for (const Case& c : cases) {
    a.send(resume_json(c.token, "r", 0, 0));
    Env e = a.expect("error");
    EXPECT_EQ(e.s("code"), c.code) << c.token;
    EXPECT_EQ(e.s("ref"), "resume");
  }
  // A bad token in the URL still gets a session (a fresh one), then the error.
  WsConn b(s.server.port(), {}, 0, "/ws?resume=nonsense");
  ASSERT_TRUE(b.ok());
  EXPECT_NE(b.session().s("token"), "nonsense");
  EXPECT_EQ(b.expect("error").s("code"), "invalid_token");
}

// ---------------------------------------------------------------- rooms persist

TEST(RoomsStore, ARoomContinuesItsStoredEpochAndOffsetsAfterItsLastMemberLeft) {
  StoredRooms s(2);
  ASSERT_TRUE(s.server.started());
  uint64_t epoch = 0;
  {
    WsConn a(s.server.port());
    ASSERT_TRUE(a.ok());
    epoch = a.join("keep").n("epoch");
    for (int i = 0; i < 3; ++i) a.publish("keep", "k");
    EXPECT_TRUE(contiguous(offsets_until(a, 3), 1));
  }
  // Read on each shard's own thread (room_state() does): the maps are theirs.
  ASSERT_TRUE(eventually([&] { return s.server.room_state() == 0; }))
      << "the room outlived its members";
  WsConn b(s.server.port());
  ASSERT_TRUE(b.ok());
  Env joined = b.join("keep");
  EXPECT_EQ(joined.n("epoch"), epoch);
  EXPECT_EQ(joined.n("offset"), 3u);
  b.publish("keep", "next");
  EXPECT_EQ(offsets_until(b, 4), std::vector<uint64_t>{4});
}

// ---------------------------------------------------------------- durability

TEST(RoomsStore, SyncDurabilityDeliversNothingTheStoreDidNotCommit) {
  cluster::RoomsConfig config;
  config.durability = cluster::Durability::kSync;
  StoredRooms s(2, config);
  ASSERT_TRUE(s.server.started());
  WsConn a(s.server.port()), b(s.server.port());
  ASSERT_TRUE(a.ok() && b.ok());
  uint64_t epoch = a.join("dur").n("epoch");
  b.join("dur");
  a.send(message_json("dur", "kept", "k1"));
  EXPECT_EQ(offsets_until(b, 1), std::vector<uint64_t>{1});
  EXPECT_EQ(offsets_until(a, 1), std::vector<uint64_t>{1});
  s.failing->store(true);
  a.send(message_json("dur", "lost", "k2"));
  Env e = a.expect("error");
  EXPECT_EQ(e.s("code"), "store_unavailable");
  EXPECT_EQ(e.s("ref"), "k2");
  EXPECT_TRUE(b.quiet_for(100)) << "a member got a message the store refused";
  ASSERT_TRUE(eventually([&] { return !s.store.healthy(); }));
  harness::Response ready = http(s.server.port(), "GET", "/readyz");
  EXPECT_EQ(ready.status, 200);  // live traffic still flows in async mode: stay in rotation
  EXPECT_NE(ready.body.find("\"durability\":\"degraded\""), std::string::npos) << ready.body;
  s.failing->store(false);
  a.send(message_json("dur", "after", "k2"));  // the refused id is not held against a retry
  std::vector<uint64_t> after = offsets_until(b, 3);
  EXPECT_EQ(after, std::vector<uint64_t>{3});  // offset 2 was never delivered to anyone
  EXPECT_NE(http(s.server.port(), "GET", "/readyz").body.find("\"durability\":\"ok\""),
            std::string::npos);
  // The history holds exactly what was delivered: 1 and 3 (so the resume says not recovered,
  // as it cannot tell the hole from a loss).
  WsConn c(s.server.port());
  ASSERT_TRUE(c.ok());
  c.send(resume_json(a.session().s("token"), "dur", 0, epoch));
  c.expect("session");
  EXPECT_EQ(c.expect("resumed").n("offset"), 3u);
  EXPECT_EQ(offsets_until(c, 3), (std::vector<uint64_t>{1, 3}));
}

TEST(RoomsStore, AsyncDurabilityKeepsDeliveringWhileTheStoreFails) {
  StoredRooms s(1);
  ASSERT_TRUE(s.server.started());
  WsConn a(s.server.port());
  ASSERT_TRUE(a.ok());
  a.join("on");
  s.failing->store(true);
  for (int i = 0; i < 5; ++i) a.publish("on", "x");
  EXPECT_TRUE(contiguous(offsets_until(a, 5), 1));
  EXPECT_TRUE(eventually([&] { return !s.store.healthy(); }));
  EXPECT_EQ(metric(s.server.port(), "weir_store_up"), 0);
  s.failing->store(false);
  a.publish("on", "y");
  offsets_until(a, 6);
  EXPECT_TRUE(eventually([&] { return s.store.healthy(); }));
  EXPECT_EQ(metric(s.server.port(), "weir_store_up"), 1);
}

// ---------------------------------------------------------------- dedupe and rate limits

TEST(RoomsStore, AMessageIdIsDeliveredOnceAndTheSenderLearnsTheOriginalOffset) {
  StoredRooms s(2);
  ASSERT_TRUE(s.server.started());
  WsConn a(s.server.port()), b(s.server.port());  // one per thread
  ASSERT_TRUE(a.ok() && b.ok());
  a.join("dd");
  b.join("dd");
  a.send(message_json("dd", "first", "same-id"));
  EXPECT_EQ(offsets_until(b, 1), std::vector<uint64_t>{1});
  b.send(message_json("dd", "again", "same-id"));
  Env e = b.expect("error");
  EXPECT_EQ(e.s("code"), "duplicate");
  EXPECT_EQ(e.s("ref"), "same-id");
  EXPECT_EQ(e.n("offset"), 1u);
  b.send(message_json("dd", "other", "other-id"));
  EXPECT_EQ(offsets_until(a, 2), (std::vector<uint64_t>{1, 2}));
  // The HTTP API says so in its answer.
  harness::Response r =
      api_publish(s.server.port(), "dd", R"({"content":"c","message_id":"same-id"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"duplicate\":true"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"offset\":1"), std::string::npos) << r.body;
}

TEST(RoomsStore, RateLimitAnswersRetryAfterAndClosesASustainedFlooder) {
  cluster::RoomsConfig config;
  config.rate_limit = 5;
  config.rate_burst = 5;
  StoredRooms s(1, config);
  ASSERT_TRUE(s.server.started());
  WsConn a(s.server.port()), watcher(s.server.port());
  ASSERT_TRUE(a.ok() && watcher.ok());
  a.join("rl");
  watcher.join("rl");
  for (int i = 0; i < 8; ++i) a.send(message_json("rl", "m", "id" + std::to_string(i)));
  EXPECT_TRUE(contiguous(offsets_until(watcher, 5), 1));
  EXPECT_TRUE(watcher.quiet_for(100)) << "more than the burst was delivered";
  Env e;
  int limited = 0;
  while (a.recv(&e, 300) == ReadStatus::kOk)
    if (e.type == "error") {
      EXPECT_EQ(e.s("code"), "rate_limited") << e.raw;
      EXPECT_GT(e.n("retry_after_ms"), 0u);
      EXPECT_LE(e.n("retry_after_ms"), 200u);
      ++limited;
    }
  EXPECT_EQ(limited, 3);
  // Keeps hammering: closed with 1008.
  for (int i = 0; i < 100; ++i) a.send(message_json("rl", "flood"));
  bool closed = false;
  while (a.recv(&e, 2000) == ReadStatus::kOk)
    if (e.type == "close") {
      EXPECT_EQ(e.close_code, 1008);
      EXPECT_EQ(e.close_reason, "rate limit exceeded");
      closed = true;
      break;
    }
  EXPECT_TRUE(closed);
  // The other member was never affected: it still publishes.
  watcher.publish("rl", "fine");
  EXPECT_EQ(offsets_until(watcher, 6), std::vector<uint64_t>{6});
}

TEST(RoomsStore, RoomRateLimitHoldsAcrossPublishers) {
  cluster::RoomsConfig config;
  config.room_rate_limit = 2;
  config.room_rate_burst = 3;
  StoredRooms s(2, config);
  ASSERT_TRUE(s.server.started());
  WsConn a(s.server.port()), b(s.server.port());
  ASSERT_TRUE(a.ok() && b.ok());
  a.join("rr");
  b.join("rr");
  for (int i = 0; i < 3; ++i) {
    a.publish("rr", "a");
    b.publish("rr", "b");
  }
  std::vector<Env> early;  // errors that came before a's third message
  EXPECT_TRUE(contiguous(offsets_until(a, 3, &early), 1));
  int limited = 0;
  for (const Env& x : early)
    if (x.type == "error" && x.s("code") == "rate_limited") ++limited;
  Env e;
  for (WsConn* c : {&a, &b})
    while (c->recv(&e, 300) == ReadStatus::kOk)
      if (e.type == "error" && e.s("code") == "rate_limited") ++limited;
  EXPECT_EQ(limited, 3);
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// A replay far larger than --max-buffer goes out as the client reads it, never all at once:
// 300 messages of 8 KiB through a 256 KiB limit.
TEST(RoomsStore, AReplayLargerThanMaxBufferIsPacedByTheConnection) {
  cluster::RoomsConfig config;
  config.high_watermark = 64 << 10;
  config.low_watermark = 16 << 10;
  config.max_buffer = 256 << 10;
  config.max_content_bytes = 16 << 10;
  StoredRooms s(1, config);
  ASSERT_TRUE(s.server.started());
  WsConn pub(s.server.port());
  ASSERT_TRUE(pub.ok());
  uint64_t epoch = pub.join("big").n("epoch");
  const std::string body(8 << 10, 'b');
  for (int i = 1; i <= 300; ++i) {
    pub.publish("big", body);
    if (i % 20 == 0) offsets_until(pub, i);  // the publisher keeps up with its own copies
  }
  offsets_until(pub, 300);
  WsConn b(s.server.port());
  ASSERT_TRUE(b.ok());
  b.send(resume_json(pub.session().s("token"), "big", 0, epoch));
  b.expect("session");
  Env resumed = b.expect("resumed");
  EXPECT_EQ(resumed.b("recovered"), "true") << resumed.raw;
  pub.publish("big", "after");
  std::vector<uint64_t> offsets = offsets_until(b, 301);
  EXPECT_TRUE(contiguous(offsets, 1));
  EXPECT_EQ(offsets.size(), 301u);
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// Nobody publishes, yet the store's health follows its backend both ways (an idle probe).
TEST(RoomsStore, AnIdleStoreStillNoticesAnOutageAndItsEnd) {
  StoredRooms s(1);
  ASSERT_TRUE(s.server.started());
  EXPECT_TRUE(s.store.healthy());
  s.failing->store(true);
  EXPECT_TRUE(eventually([&] { return !s.store.healthy(); }, 5000));
  EXPECT_EQ(metric(s.server.port(), "weir_store_up"), 0);
  s.failing->store(false);
  EXPECT_TRUE(eventually([&] { return s.store.healthy(); }, 5000));
  EXPECT_EQ(metric(s.server.port(), "weir_store_up"), 1);
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// Two nodes (two servers in this process) over one Redis: --room-rate-limit holds for the room
// as a whole, whichever node its publishers are on.
TEST(RoomsStore, RoomRateLimitHoldsAcrossNodesThroughRedis) {
  if (!harness::RedisServer::installed()) GTEST_SKIP() << "redis-server missing";
  harness::RedisServer redis;
  std::string error;
  ASSERT_TRUE(redis.start(&error)) << error;
  cluster::RoomsConfig config;
  config.room_rate_limit = 1;
  config.room_rate_burst = 4;
  StoredRooms a(1, config, store::open_redis_backend(redis.spec(), &error));
  StoredRooms b(1, config, store::open_redis_backend(redis.spec(), &error));
  ASSERT_TRUE(a.server.started() && b.server.started()) << error;
  WsConn on_a(a.server.port()), on_b(b.server.port());
  ASSERT_TRUE(on_a.ok() && on_b.ok());
  on_a.join("shared");
  on_b.join("shared");
  for (int i = 0; i < 3; ++i) {
    on_a.send(message_json("shared", "a" + std::to_string(i)));
    on_b.send(message_json("shared", "b" + std::to_string(i)));
  }
  int delivered = 0, limited = 0;
  Env e;
  for (WsConn* c : {&on_a, &on_b})
    while (c->recv(&e, 500) == ReadStatus::kOk) {
      if (e.type == "message") ++delivered;
      if (e.type == "error" && e.s("code") == "rate_limited") ++limited;
    }
  // Each node delivers to its own member only (no cluster yet), so a message counts once here.
  EXPECT_EQ(delivered, 4) << "the burst of 4 is the room's, not each node's";
  EXPECT_EQ(limited, 2);
}

}  // namespace
}  // namespace weir

namespace weir {
namespace {

// --dedupe-window holds across a restart (a new server over the same SQLite file) and across
// the room emptying: the room reads its recent ids back when it comes to life.
TEST(RoomsStore, DedupeOutlivesARestartAndTheRoomEmptying) {
  std::string path = ::testing::TempDir() + "weir-dedupe-" + std::to_string(::getpid()) + ".db";
  std::filesystem::remove(path);
  std::string error;
  uint64_t epoch = 0;
  {
    StoredRooms first(1, {}, store::open_backend("sqlite:" + path, &error));
    ASSERT_TRUE(first.server.started()) << error;
    WsConn a(first.server.port());
    ASSERT_TRUE(a.ok());
    epoch = a.join("idem").n("epoch");
    a.send(message_json("idem", "once", "pay-42"));
    EXPECT_EQ(offsets_until(a, 1), std::vector<uint64_t>{1});
    a.send(R"({"leave_room":{"room_id":"idem"}})");
    a.expect("room_left");
    a.join("idem");  // the room came back from empty
    a.send(message_json("idem", "twice", "pay-42"));
    Env e = a.expect("error");
    EXPECT_EQ(e.s("code"), "duplicate") << e.raw;
  }
  StoredRooms second(1, {}, store::open_backend("sqlite:" + path, &error));
  ASSERT_TRUE(second.server.started()) << error;
  WsConn b(second.server.port());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.join("idem").n("epoch"), epoch);
  b.send(message_json("idem", "after restart", "pay-42"));
  Env e = b.expect("error");
  EXPECT_EQ(e.s("code"), "duplicate") << e.raw;
  EXPECT_EQ(e.n("offset"), 1u);
  b.send(message_json("idem", "new", "pay-43"));
  EXPECT_EQ(offsets_until(b, 2), std::vector<uint64_t>{2});
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
}

}  // namespace
}  // namespace weir
