// net/ip_limits.h — abuse limits per client IP address, shared by every reactor thread: how
// many connections one address holds open, and how often it may do something (a GCRA rate,
// e.g. WebSocket handshakes per second).
//
// Why shared and not per thread: SO_REUSEPORT spreads one client's connections over all the
// listeners by a hash of the 4-tuple (source port included), so a table per reactor would see
// about 1/N of them and let N times the limit through. The tables are striped over 16 mutexes
// by address hash, so threads rarely meet on one; each check is one lock and one hash lookup,
// paid per accept, close or handshake, never per message.
//
// An IPv4 client is keyed by its address (IPv4-mapped IPv6, ::ffff:a.b.c.d, counts as the IPv4
// address); an IPv6 client by its first `v6_prefix` bits (--ip-limit-v6-prefix, 64 by default),
// because one host is commonly handed a whole /64 and could otherwise take a fresh address for
// every connection. 128 keys IPv6 per address. Rate entries idle long enough to have refilled are
// forgotten, so the table holds only addresses active in the last few seconds; at 65,536 per stripe
// it is cleared (the limit fails open rather than grow without bound under a flood from many
// addresses).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "core/gcra.h"
#include "net/address.h"

namespace weir::net {

constexpr int kDefaultV6Prefix = 64;

// Whom a limit counts: 16 bytes, IPv4 as ::ffff:a.b.c.d, IPv6 cut to its first `v6_prefix`
// bits (the rest zero). A cut IPv6 key never equals an IPv4 one: ::ffff:0:0/96 is IPv4.
struct IpKey {
  std::array<uint8_t, 16> bytes{};
  static IpKey of(const SocketAddress& address, int v6_prefix = kDefaultV6Prefix);
  bool operator==(const IpKey&) const = default;
};

struct IpKeyHash {
  size_t operator()(const IpKey& key) const;
};

// Open connections per address (per IpKey), at most `limit` each.
class ConnectionsPerIp {
 public:
  explicit ConnectionsPerIp(uint32_t limit, int v6_prefix = kDefaultV6Prefix)
      : limit_(limit), v6_prefix_(v6_prefix) {}
  // Takes a slot for `peer`; false (nothing taken) when it already holds `limit`.
  bool try_acquire(const SocketAddress& peer);
  // Gives back a slot taken by try_acquire.
  void release(const SocketAddress& peer);
  uint32_t count(const SocketAddress& peer);
  uint32_t limit() const { return limit_; }

 private:
  struct Stripe {
    std::mutex mutex;
    std::unordered_map<IpKey, uint32_t, IpKeyHash> open;
  };
  Stripe& stripe(const IpKey& key);

  uint32_t limit_;
  int v6_prefix_;
  std::array<Stripe, 16> stripes_;
};

// A GCRA rate per address (per IpKey): `rate` per second, `burst` at once.
class RatePerIp {
 public:
  RatePerIp(double rate, double burst, int v6_prefix = kDefaultV6Prefix);
  // True when one more fits for `peer` at `now_ns` (and takes it); else false with the wait in
  // *retry_after_ns.
  bool take(const SocketAddress& peer, int64_t now_ns, int64_t* retry_after_ns);
  // Addresses currently tracked (tests).
  size_t tracked();

 private:
  struct Entry {
    core::Gcra gcra;
    int64_t last_ns;
  };
  struct Stripe {
    std::mutex mutex;
    std::unordered_map<IpKey, Entry, IpKeyHash> entries;
    int64_t last_sweep_ns = 0;
  };
  void sweep(Stripe& s, int64_t now_ns);

  double rate_, burst_;
  int64_t idle_ns_;  // an entry unused this long is as good as new
  int v6_prefix_;
  std::array<Stripe, 16> stripes_;
};

}  // namespace weir::net
