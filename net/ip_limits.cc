// net/ip_limits.cc — per-address connection counts and rates.
#include "net/ip_limits.h"

#include <algorithm>
#include <cstring>

namespace weir::net {
namespace {

constexpr size_t kMaxEntriesPerStripe = 65536;
constexpr size_t kSweepAbove = 1024;  // small tables are not worth a sweep
constexpr int64_t kSweepIntervalNs = 1'000'000'000;

}  // namespace

IpKey IpKey::of(const SocketAddress& address, int v6_prefix) {
  IpKey key;
  if (address.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address.sockaddr());
    key.bytes[10] = key.bytes[11] = 0xff;
    std::memcpy(key.bytes.data() + 12, &in->sin_addr, 4);
  } else if (address.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr());
    std::memcpy(key.bytes.data(), &in6->sin6_addr, 16);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return key;  // already ::ffff:a.b.c.d
    int bits = std::clamp(v6_prefix, 0, 128);
    if (bits % 8) key.bytes[bits / 8] &= static_cast<uint8_t>(0xff00 >> (bits % 8));
    for (int i = (bits + 7) / 8; i < 16; ++i) key.bytes[i] = 0;
  }
  return key;
}

// FNV-1a over the 16 bytes, then a MurmurHash3 finalizer so the high bits (which pick the
// stripe) depend on every byte: addresses that differ only in their last byte spread out.
size_t IpKeyHash::operator()(const IpKey& key) const {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : key.bytes) h = (h ^ b) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return static_cast<size_t>(h);
}

// ---------------------------------------------------------------- connections

ConnectionsPerIp::Stripe& ConnectionsPerIp::stripe(const IpKey& key) {
  return stripes_[(IpKeyHash()(key) >> 56) % stripes_.size()];
}

bool ConnectionsPerIp::try_acquire(const SocketAddress& peer) {
  IpKey key = IpKey::of(peer, v6_prefix_);
  Stripe& s = stripe(key);
  std::lock_guard lock(s.mutex);
  uint32_t& open = s.open[key];
  if (open >= limit_) {
    if (open == 0) s.open.erase(key);  // limit 0 never admits; leave no empty entry
    return false;
  }
  open++;
  return true;
}

void ConnectionsPerIp::release(const SocketAddress& peer) {
  IpKey key = IpKey::of(peer, v6_prefix_);
  Stripe& s = stripe(key);
  std::lock_guard lock(s.mutex);
  auto it = s.open.find(key);
  if (it == s.open.end()) return;
  if (--it->second == 0) s.open.erase(it);
}

uint32_t ConnectionsPerIp::count(const SocketAddress& peer) {
  IpKey key = IpKey::of(peer, v6_prefix_);
  Stripe& s = stripe(key);
  std::lock_guard lock(s.mutex);
  auto it = s.open.find(key);
  return it == s.open.end() ? 0 : it->second;
}

// ---------------------------------------------------------------- rates

RatePerIp::RatePerIp(double rate, double burst, int v6_prefix)
    : rate_(rate),
      burst_(burst < 1 ? 1 : burst),
      idle_ns_(static_cast<int64_t>((burst_ + 1) / rate * 1e9)),
      v6_prefix_(v6_prefix) {}

bool RatePerIp::take(const SocketAddress& peer, int64_t now_ns, int64_t* retry_after_ns) {
  IpKey key = IpKey::of(peer, v6_prefix_);
  Stripe& s = stripes_[(IpKeyHash()(key) >> 56) % stripes_.size()];
  std::lock_guard lock(s.mutex);
  if (s.entries.size() > kSweepAbove) sweep(s, now_ns);
  auto it = s.entries.find(key);
  if (it == s.entries.end())
    it = s.entries.emplace(key, Entry{core::Gcra(rate_, burst_), now_ns}).first;
  it->second.last_ns = now_ns;
  return it->second.gcra.take(now_ns, retry_after_ns);
}

// Drops entries that have refilled (they would admit a full burst anyway); clears the stripe
// when a flood from many addresses keeps it full.
void RatePerIp::sweep(Stripe& s, int64_t now_ns) {
  if (now_ns - s.last_sweep_ns < kSweepIntervalNs && s.entries.size() < kMaxEntriesPerStripe)
    return;
  s.last_sweep_ns = now_ns;
  std::erase_if(s.entries,
                [&](const auto& item) { return now_ns - item.second.last_ns > idle_ns_; });
  if (s.entries.size() >= kMaxEntriesPerStripe) s.entries.clear();
}

size_t RatePerIp::tracked() {
  size_t n = 0;
  for (Stripe& s : stripes_) {
    std::lock_guard lock(s.mutex);
    n += s.entries.size();
  }
  return n;
}

}  // namespace weir::net
