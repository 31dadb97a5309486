// tests/store_test.cc — the backend conformance suite (tests/store_conformance.h) over the
// memory and SQLite backends, plus what is particular to each: open_backend()'s specs, and
// SQLite's file on disk (schema on open, history kept across reopen, directory created).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "store/memory_backend.h"
#include "store/sqlite_backend.h"
#include "tests/store_conformance.h"

namespace weir::store {
namespace {

const std::filesystem::path kTempRoot = "/tmp/store-a";

// A fresh directory under /tmp/store-a per test, removed afterwards.
std::filesystem::path temp_dir() {
  static int counter = 0;
  return kTempRoot / ("t-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
}

struct MemoryFactory {
  static std::unique_ptr<Backend> make() { return std::make_unique<MemoryBackend>(); }
};

struct SqliteFactory {
  static inline std::filesystem::path dir;
  static std::unique_ptr<Backend> make() {
    dir = temp_dir();
    std::string error;
    auto backend = SqliteBackend::open((dir / "sub" / "weir.db").string(), &error);
    EXPECT_NE(backend, nullptr) << error;
    return backend;
  }
  static void tear_down() { std::filesystem::remove_all(dir); }
};

}  // namespace

namespace conformance {
using Factories = ::testing::Types<MemoryFactory, SqliteFactory>;
INSTANTIATE_TYPED_TEST_SUITE_P(Local, BackendConformance, Factories);
}  // namespace conformance

namespace {

TEST(StoreOpenBackend, NamesEveryBackendAndRejectsUnknownSpecs) {
  std::string error;
  auto memory = open_backend("memory", &error);
  ASSERT_NE(memory, nullptr);
  EXPECT_STREQ(memory->name(), "memory");
  EXPECT_EQ(open_backend("postgres://x", &error), nullptr);
  EXPECT_NE(error.find("unknown store"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(open_backend("sqlite:", &error), nullptr);
  EXPECT_FALSE(error.empty());
  EXPECT_STREQ(to_string(Status::kOk), "ok");
  EXPECT_STREQ(to_string(Status::kNotFound), "not_found");
  EXPECT_STREQ(to_string(Status::kUnavailable), "unavailable");
  EXPECT_STREQ(to_string(Status::kError), "error");
  EXPECT_STREQ(to_string(Status::kConflict), "conflict");
}

TEST(StoreOpenBackend, RedisSpecNeedsTheRedisBackend) {
  std::string error;
  auto redis = open_backend("redis://127.0.0.1:1/0", &error);
#if !__has_include("store/redis_backend.h")
  EXPECT_EQ(redis, nullptr);
  EXPECT_EQ(error, "redis backend not built");
#endif
}

TEST(SqliteBackend, CreatesDirectoryAndKeepsHistoryAcrossReopen) {
  std::filesystem::path dir = temp_dir();
  std::string spec = "sqlite:" + (dir / "a" / "b" / "weir.db").string(), error;
  {
    auto backend = open_backend(spec, &error);
    ASSERT_NE(backend, nullptr) << error;
    EXPECT_STREQ(backend->name(), "sqlite");
    ASSERT_EQ(backend->begin_batch(), Status::kOk);
    for (uint64_t o = 1; o <= 3; ++o)
      ASSERT_EQ(backend->append({"room", 2, o, "p" + std::to_string(o), 1000}), Status::kOk);
    ASSERT_EQ(backend->put_session({"tok", "alice", {{"room", 2, 3}}, 5000}), Status::kOk);
    ASSERT_EQ(backend->commit_batch(), Status::kOk);
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "a" / "b" / "weir.db"));
  auto reopened = open_backend(spec, &error);
  ASSERT_NE(reopened, nullptr) << error;
  std::vector<StoredMessage> out;
  uint64_t first = 0;
  ASSERT_EQ(reopened->read_room("room", 2, 1, 10, &out, &first), Status::kOk);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].payload, "p3");
  EXPECT_EQ(first, 1u);
  Session session;
  ASSERT_EQ(reopened->get_session("tok", 0, &session), Status::kOk);
  EXPECT_EQ(session.member_id, "alice");
  ASSERT_EQ(session.rooms.size(), 1u);
  reopened.reset();
  std::filesystem::remove_all(dir);
}

TEST(SqliteBackend, UnwritablePathFailsWithAReason) {
  std::string error;
  EXPECT_EQ(open_backend("sqlite:/proc/weir-cannot/weir.db", &error), nullptr);
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace weir::store
