// cluster/room_service.h — the rooms of one node: a RoomShard per reactor thread, the rule
// that names a room's owner thread, and the configuration every shard shares.
//
// Thread-safety: attach() runs once on each reactor thread at start and returns only when
// every shard exists, so shards may post to each other from their first connection on.
// shard(), owner_of() and config() are then safe from any thread (immutable); local() gives
// the calling reactor thread's shard.
#pragma once

#include <atomic>
#include <functional>
#include <latch>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/room_shard.h"
#include "cluster/room_types.h"
#include "cluster/session_token.h"
#include "core/reactor.h"
#include "store/store.h"

namespace weir::cluster {

class RoomService {
 public:
  RoomService(RoomsConfig config, int threads);
  ~RoomService();

  // Before the reactors start: where history, sessions and idempotency keys go, and the key
  // that signs session tokens. Without a store, resume and replay answer store_unavailable.
  void set_store(store::Store* store) { store_ = store; }
  void set_session_key(std::string key) { tokens_ = SessionTokens(std::move(key)); }
  store::Store* store() const { return store_; }
  // Before the reactors start, when the node is part of a cluster: rooms then have owner
  // nodes (the views arrive as kView messages), and `sender` puts frames on the peer links
  // (called on thread 0 only; false when the link to `node` is not up).
  using NodeSender = std::function<bool(const std::string& node, uint8_t type,
                                        std::span<const std::string_view> parts)>;
  void set_node_sender(NodeSender sender) { node_sender_ = std::move(sender); }
  bool send_to_node(const std::string& node, uint8_t type,
                    std::span<const std::string_view> parts) const {
    return node_sender_ && node_sender_(node, type, parts);
  }
  const SessionTokens& tokens() const { return tokens_; }

  void attach(core::Reactor& reactor);
  RoomShard& shard(int index) { return *shards_[index]; }
  RoomShard& local();
  int threads() const { return static_cast<int>(shards_.size()); }
  int owner_of(std::string_view room_id) const;
  const RoomsConfig& config() const { return config_; }
  // A process-unique epoch for a new room incarnation (fits a JSON number exactly).
  uint64_t new_epoch();
  // Rooms this node orders (in a cluster: owns; mirrors are not counted). Any thread.
  int64_t rooms_ordered() const { return rooms_ordered_.load(std::memory_order_relaxed); }
  void count_ordered(int64_t delta) { rooms_ordered_.fetch_add(delta, std::memory_order_relaxed); }

 private:
  RoomsConfig config_;
  std::vector<std::unique_ptr<RoomShard>> shards_;
  std::latch ready_;
  std::atomic<uint64_t> epoch_counter_{0};
  std::atomic<int64_t> rooms_ordered_{0};
  store::Store* store_ = nullptr;
  NodeSender node_sender_;
  SessionTokens tokens_{std::string()};
};

}  // namespace weir::cluster
