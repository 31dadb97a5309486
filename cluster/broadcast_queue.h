// cluster/broadcast_queue.h — the updates a Membership piggybacks on its pings and acks
// (memberlist's TransmitLimitedQueue).
//
// At most one update per member: a newer one replaces the queued one, whatever its
// transmits. Packets take the least-transmitted updates first, newest first among equals; an
// update is retired once sent `limit` times. The queue is ordered by (transmits, age), so
// filling a packet looks only at the updates it takes (plus a few that did not fit), and
// queueing is a map insert and a hash lookup: at 1000 members a join or a false suspicion
// queues hundreds of updates, and every datagram used to sort all of them.
//
// Thread-safety: a plain value; owned by one Membership, used on its reactor thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/swim_codec.h"

namespace weir::cluster {

class BroadcastQueue {
 public:
  // Queues `update`, replacing any queued update about the same member.
  void push(MemberUpdate update);
  // Appends the least-transmitted updates that fit to `writer`; retires those now sent
  // `limit` times. Does nothing when limit is 0 (gossip off).
  void fill(PacketWriter& writer, int limit);
  size_t size() const { return queue_.size(); }
  // The queued update about `node_id`, or nullptr.
  const MemberUpdate* find(const std::string& node_id) const;

 private:
  struct Key {
    int transmits;
    uint64_t order;  // larger: queued later
    bool operator<(const Key& o) const {
      return transmits != o.transmits ? transmits < o.transmits : order > o.order;
    }
  };

  std::map<Key, MemberUpdate> queue_;
  std::unordered_map<std::string, Key> by_member_;
  uint64_t next_order_ = 0;
  std::vector<Key> sent_;  // scratch for fill(), kept to avoid an allocation per packet
};

}  // namespace weir::cluster
