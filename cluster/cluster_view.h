// cluster/cluster_view.h — which node owns a room: rendezvous (highest random weight) hashing
// over the alive members.
//
// Every node computes the owner from its own view of the membership, so two nodes agree as
// soon as their views agree. Rendezvous hashing moves only the rooms of a node that joins or
// goes (about 1/n of them), and needs no ring or virtual nodes to balance.
//
// Thread-safety: a ClusterView is immutable once published; shards share it by shared_ptr.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace weir::cluster {

struct ClusterView {
  std::string self;                // this node's id
  std::vector<std::string> nodes;  // alive members, self included, sorted
  uint64_t version = 0;            // increases with every view this node publishes

  // The owner of `room_id`: one of `nodes` (self when the view is empty).
  const std::string& owner_of(std::string_view room_id) const;
  bool owns(std::string_view room_id) const { return owner_of(room_id) == self; }
  bool contains(std::string_view node) const;
};

// The weight of (node, room): the highest weight wins. Stable across runs and builds.
uint64_t rendezvous_weight(std::string_view node, std::string_view room_id);

}  // namespace weir::cluster
