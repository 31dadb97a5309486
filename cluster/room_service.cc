// cluster/room_service.cc — shards, ownership and epochs.
#include "cluster/room_service.h"

#include <cassert>

#include "core/clock.h"

namespace weir::cluster {
namespace {
thread_local RoomShard* t_shard = nullptr;

// FNV-1a: stable across runs and builds, unlike std::hash, so a room's owner thread is a
// property of its name (the cluster layer hashes the same way to pick owner nodes).
uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

RoomService::RoomService(RoomsConfig config, int threads)
    : config_(config), shards_(threads), ready_(threads) {}

RoomService::~RoomService() = default;

void RoomService::attach(core::Reactor& reactor) {
  int index = reactor.index();
  assert(index >= 0 && index < threads() && !shards_[index]);
  shards_[index] = std::make_unique<RoomShard>(*this, reactor, index);
  t_shard = shards_[index].get();
  ready_.arrive_and_wait();  // every shard exists before any connection is served
}

RoomShard& RoomService::local() {
  assert(t_shard);
  return *t_shard;
}

int RoomService::owner_of(std::string_view room_id) const {
  return static_cast<int>(fnv1a(room_id) % shards_.size());
}

// Milliseconds since the epoch in the high bits, a counter in the low 12: unique within the
// process, increasing, and below 2^53 so JSON clients read it exactly.
uint64_t RoomService::new_epoch() {
  uint64_t counter = epoch_counter_.fetch_add(1, std::memory_order_relaxed) & 0xfff;
  return (static_cast<uint64_t>(core::wall_ms()) << 12 | counter) & ((1ull << 53) - 1);
}

}  // namespace weir::cluster
