// bench/store_bench.cc — how fast the store layer takes room history, per backend (memory,
// SQLite, Redis): appends of 200 B messages in batches of 1, 16 and 256 driven on the Backend
// directly (begin_batch, appends, commit_batch: one SQLite transaction, one Redis pipeline),
// and the same appends through the asynchronous store::Store front, where a caller submits N
// and waits for the last completion, to show how many requests its store thread gathers into
// one batch.
//
// Items are appended messages, per second of wall clock; they go to 1 room or take turns over 100
// (rooms:100, as a server with many busy rooms: each SQLite commit then touches a B-tree page per
// room). SQLite runs on a fresh file in a temporary directory ($TMPDIR or /tmp; the label names its
// filesystem, since every commit is an fsync: WAL with synchronous=FULL). Redis runs against a
// redis-server started here on a free loopback port (tests/redis_server.h: persistence off, stopped
// by PID at exit), moved off the benchmark's cores when there are others (`make bench` pins to core
// 0: Redis gets core 1); without /usr/bin/redis-server those benchmarks are skipped. History is
// trimmed to 10000 messages every 64Ki appends, outside the timing, so long runs do not grow
// without bound.
#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "store/backend.h"
#include "store/store.h"
#include "tests/redis_server.h"

namespace weir {
namespace {

using store::Status;

enum class Kind { kMemory, kSqlite, kRedis };

constexpr size_t kPayloadBytes = 200;
constexpr uint64_t kPurgeEvery = 1 << 16;  // appends between two trims
constexpr store::Retention kTrim{10000, 0};

// A temporary directory for the benchmarks' SQLite files, removed at exit.
class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/weir-store-bench-XXXXXX";
    if (::mkdtemp(pattern.data())) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TempDir& temp_dir() {
  static TempDir dir;
  return dir;
}

// The filesystem under `path`, for the label: SQLite's commits cost what its fsync costs.
std::string filesystem_name(const std::string& path) {
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0) return "?";
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794C7630:
      return "overlayfs";
    default: {
      char other[32];
      snprintf(other, sizeof other, "fs 0x%lx", static_cast<unsigned long>(fs.f_type));
      return other;
    }
  }
}

// Moves the redis-server to the cores this process may not use (under `taskset -c 0`: the
// other core), so that it does not take the benchmark's core, as on a deployment where Redis
// has its own machine. Returns the cores it got ("" when it shares ours).
std::string keep_redis_off_our_cores(pid_t pid) {
  cpu_set_t ours, others;
  CPU_ZERO(&others);
  if (::sched_getaffinity(0, sizeof ours, &ours) != 0) return "";
  std::string cores;
  for (long cpu = 0, n = ::sysconf(_SC_NPROCESSORS_ONLN); cpu < n && cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &ours)) continue;
    CPU_SET(cpu, &others);
    cores += (cores.empty() ? "" : ",") + std::to_string(cpu);
  }
  if (cores.empty() || ::sched_setaffinity(pid, sizeof others, &others) != 0) return "";
  return cores;
}

// An empty backend of one kind, and for SQLite the file it removes when done.
struct FreshBackend {
  std::unique_ptr<store::Backend> backend;
  std::string sqlite_path;
  std::string label;

  ~FreshBackend() {
    backend.reset();
    if (sqlite_path.empty()) return;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
      ::unlink((sqlite_path + suffix).c_str());
  }
};

// Opens an empty backend; false with *error when it cannot (the benchmark is then skipped).
bool open_fresh(Kind kind, FreshBackend* out, std::string* error) {
  std::string spec;
  switch (kind) {
    case Kind::kMemory:
      spec = "memory";
      break;
    case Kind::kSqlite: {
      static int files = 0;
      if (temp_dir().path().empty()) {
        *error = "cannot create a temporary directory";
        return false;
      }
      out->sqlite_path = temp_dir().path() + "/store-" + std::to_string(++files) + ".db";
      out->label = filesystem_name(temp_dir().path()) + ", synchronous=FULL";
      spec = "sqlite:" + out->sqlite_path;
      break;
    }
    case Kind::kRedis: {
      harness::RedisServer* server = harness::shared_redis_server(error);
      if (!server) return false;
      if (server->command({"FLUSHALL"}) != "OK") {
        *error = "redis-server on port " + std::to_string(server->port()) + " does not answer";
        return false;
      }
      static const std::string cores = keep_redis_off_our_cores(server->pid());
      out->label = "redis-server on loopback, no persistence, " +
                   (cores.empty() ? std::string("sharing our cores") : "on core " + cores);
      spec = server->spec();
      break;
    }
  }
  out->backend = store::open_backend(spec, error);
  if (!out->backend) return false;
  // One empty batch: a backend that cannot reach its server says so here, not mid-run.
  Status begin = out->backend->begin_batch();
  Status commit = out->backend->commit_batch();
  if (begin != Status::kOk || commit != Status::kOk) {
    *error = spec + ": " + out->backend->last_error();
    return false;
  }
  return true;
}

// Messages with a 200 B payload shaped like an envelope, taking turns over `rooms` rooms,
// each with its own rising offsets (as a server's rooms publish side by side).
class MessageSource {
 public:
  explicit MessageSource(size_t rooms) : rooms_(rooms) {
    std::string head =
        R"({"message":{"target":"bench-room","sender":"member-17","sent_at":"2026-12-07T05:00:00.000Z","content":")";
    std::string tail = R"(","offset":0}})";
    std::string payload = head + std::string(kPayloadBytes - head.size() - tail.size(), 'x') + tail;
    for (size_t k = 0; k < rooms; ++k) {
      rooms_[k].room_id = "bench-room-" + std::to_string(k);
      rooms_[k].epoch = 1;
      rooms_[k].payload = payload;
    }
  }
  const store::StoredMessage& next() {
    store::StoredMessage& message = rooms_[appended_++ % rooms_.size()];
    message.offset++;
    message.stored_ms = core::wall_ms();
    return message;
  }
  uint64_t appended() const { return appended_; }

 private:
  std::vector<store::StoredMessage> rooms_;
  uint64_t appended_ = 0;
};

bool should_trim(uint64_t before, uint64_t after) {
  return before / kPurgeEvery != after / kPurgeEvery;
}

// Begin, `batch` appends, commit, per iteration: the store thread's work for one batch.
void BM_BackendAppend(benchmark::State& state, Kind kind) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const size_t rooms = static_cast<size_t>(state.range(1));
  FreshBackend fresh;
  std::string error;
  if (!open_fresh(kind, &fresh, &error)) {
    state.SkipWithError(error.c_str());
    return;
  }
  store::Backend& backend = *fresh.backend;
  MessageSource source(rooms);
  uint64_t failures = 0;
  for (auto _ : state) {
    uint64_t before = source.appended();
    if (backend.begin_batch() != Status::kOk) ++failures;
    for (size_t i = 0; i < batch; ++i) {
      if (backend.append(source.next()) != Status::kOk) ++failures;
    }
    if (backend.commit_batch() != Status::kOk) ++failures;
    if (should_trim(before, source.appended())) {
      state.PauseTiming();
      backend.purge(kTrim, core::wall_ms());
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch));
  state.SetLabel(fresh.label);
  if (failures) {
    error = std::to_string(failures) + " failed calls: " + backend.last_error();
    state.SkipWithError(error.c_str());
  }
}

// Completions that arrive on the store thread; the benchmark thread waits for a target count.
class Completions {
 public:
  store::Store::Done counter() {
    return [this](Status s) {
      if (s != Status::kOk) failures_.fetch_add(1, std::memory_order_relaxed);
      done_.fetch_add(1, std::memory_order_release);
    };
  }
  // The callback for the last request of a round: counts, then wakes the waiter.
  store::Store::Done last() {
    return [this](Status s) {
      if (s != Status::kOk) failures_.fetch_add(1, std::memory_order_relaxed);
      done_.fetch_add(1, std::memory_order_release);
      done_.notify_one();
    };
  }
  void wait_for(uint64_t target) {
    for (uint64_t seen = done_.load(std::memory_order_acquire); seen < target;
         seen = done_.load(std::memory_order_acquire)) {
      done_.wait(seen, std::memory_order_acquire);
    }
  }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> failures_{0};
};

// N appends submitted to store::Store at once, then a wait for the last completion. The
// submitting thread is not a reactor, so completions run on the store thread.
void BM_StoreAppend(benchmark::State& state, Kind kind) {
  const size_t n = static_cast<size_t>(state.range(0));
  const size_t rooms = static_cast<size_t>(state.range(1));
  FreshBackend fresh;  // outlives the Store, which owns the backend
  std::string error;
  if (!open_fresh(kind, &fresh, &error)) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::string label = fresh.label;
  store::Store store(std::move(fresh.backend));
  MessageSource source(rooms);
  Completions completions;
  uint64_t submitted = 0;
  uint64_t batches_before = store.batches();
  for (auto _ : state) {
    for (size_t i = 0; i + 1 < n; ++i) store.append(source.next(), completions.counter());
    store.append(source.next(), completions.last());
    submitted += n;
    completions.wait_for(submitted);
    if (should_trim(submitted - n, submitted)) {
      state.PauseTiming();
      store.purge(kTrim, core::wall_ms(), completions.last());
      completions.wait_for(++submitted);
      state.ResumeTiming();
    }
  }
  uint64_t batches = store.batches() - batches_before;
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
  state.counters["appends_per_batch"] = batches ? static_cast<double>(state.iterations()) *
                                                      static_cast<double>(n) /
                                                      static_cast<double>(batches)
                                                : 0.0;
  state.SetLabel(label);
  store.stop();
  if (completions.failures()) {
    error = std::to_string(completions.failures()) + " appends failed";
    state.SkipWithError(error.c_str());
  }
}

void batch_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "rooms"})->UseRealTime();
  for (int64_t rooms : {1, 100})
    for (int64_t batch : {1, 16, 256}) b->Args({batch, rooms});
}
void submit_counts(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "rooms"})->UseRealTime();
  for (int64_t rooms : {1, 100})
    for (int64_t n : {1, 16, 256}) b->Args({n, rooms});
}

BENCHMARK_CAPTURE(BM_BackendAppend, memory, Kind::kMemory)->Apply(batch_sizes);
BENCHMARK_CAPTURE(BM_BackendAppend, sqlite, Kind::kSqlite)->Apply(batch_sizes);
BENCHMARK_CAPTURE(BM_BackendAppend, redis, Kind::kRedis)->Apply(batch_sizes);
BENCHMARK_CAPTURE(BM_StoreAppend, memory, Kind::kMemory)->Apply(submit_counts);
BENCHMARK_CAPTURE(BM_StoreAppend, sqlite, Kind::kSqlite)->Apply(submit_counts);
BENCHMARK_CAPTURE(BM_StoreAppend, redis, Kind::kRedis)->Apply(submit_counts);

}  // namespace
}  // namespace weir
