// cluster/cluster_view.cc — rendezvous hashing.
#include "cluster/cluster_view.h"

#include <algorithm>

namespace weir::cluster {
namespace {

// FNV-1a over the bytes, then splitmix64's finaliser: FNV alone clusters for names that differ
// in their last bytes only ("node-1", "node-2"), the finaliser spreads them over 64 bits.
uint64_t mix(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

uint64_t fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

uint64_t rendezvous_weight(std::string_view node, std::string_view room_id) {
  uint64_t h = fnv1a(1469598103934665603ull, node);
  h = fnv1a(h ^ 0xff, room_id);  // 0xff separates ("ab","c") from ("a","bc")
  return mix(h);
}

const std::string& ClusterView::owner_of(std::string_view room_id) const {
  if (nodes.empty()) return self;
  const std::string* best = &nodes[0];
  uint64_t best_weight = rendezvous_weight(nodes[0], room_id);
  for (size_t i = 1; i < nodes.size(); ++i) {
    uint64_t w = rendezvous_weight(nodes[i], room_id);
    if (w > best_weight || (w == best_weight && nodes[i] < *best)) {
      best = &nodes[i];
      best_weight = w;
    }
  }
  return *best;
}

bool ClusterView::contains(std::string_view node) const {
  return std::binary_search(nodes.begin(), nodes.end(), node);
}

}  // namespace weir::cluster
