// cluster/broadcast_queue.cc — picking piggybacked updates by fewest transmits.
#include "cluster/broadcast_queue.h"

namespace weir::cluster {
namespace {

// Updates differ in size (IPv6 addresses, long ids): after one does not fit, try a few more
// before calling the packet full, rather than walking the whole queue.
constexpr int kMissesBeforeFull = 4;

}  // namespace

void BroadcastQueue::push(MemberUpdate update) {
  auto found = by_member_.find(update.node_id);
  if (found != by_member_.end()) {
    queue_.erase(found->second);
    by_member_.erase(found);
  }
  Key key{0, next_order_++};
  std::string id = update.node_id;
  queue_.emplace(key, std::move(update));
  by_member_.emplace(std::move(id), key);
}

void BroadcastQueue::fill(PacketWriter& writer, int limit) {
  if (limit <= 0 || queue_.empty()) return;
  sent_.clear();
  int misses = 0;
  for (auto& [key, update] : queue_) {
    if (writer.add_update(update)) {
      sent_.push_back(key);
    } else if (++misses >= kMissesBeforeFull) {
      break;
    }
  }
  for (const Key& key : sent_) {
    auto node = queue_.extract(key);
    Key& entry = by_member_[node.mapped().node_id];
    if (key.transmits + 1 >= limit) {
      by_member_.erase(node.mapped().node_id);
      continue;
    }
    node.key().transmits++;
    entry = node.key();
    queue_.insert(std::move(node));
  }
}

const MemberUpdate* BroadcastQueue::find(const std::string& node_id) const {
  auto found = by_member_.find(node_id);
  return found == by_member_.end() ? nullptr : &queue_.at(found->second);
}

}  // namespace weir::cluster
