// tests/ip_limits_test.cc — per-address connection counts and rates, the shared accept rate,
// and the drain's slicing and reconnect hint.
#include "net/ip_limits.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "net/accept_rate.h"
#include "server/drain.h"
#include "ws/frame.h"

namespace weir::net {
namespace {

SocketAddress addr(const std::string& text) {
  SocketAddress a;
  std::string error;
  EXPECT_TRUE(SocketAddress::parse(text, &a, &error)) << error;
  return a;
}

constexpr int64_t kSecond = 1'000'000'000;

TEST(ConnectionsPerIp, AdmitsUpToTheLimitPerAddressWhateverThePort) {
  ConnectionsPerIp table(2);
  EXPECT_TRUE(table.try_acquire(addr("10.0.0.1:1000")));
  EXPECT_TRUE(table.try_acquire(addr("10.0.0.1:1001")));
  EXPECT_FALSE(table.try_acquire(addr("10.0.0.1:1002")));
  EXPECT_TRUE(table.try_acquire(addr("10.0.0.2:1000"))) << "another address has its own count";
  EXPECT_EQ(table.count(addr("10.0.0.1:9")), 2u);
  table.release(addr("10.0.0.1:1000"));
  EXPECT_TRUE(table.try_acquire(addr("10.0.0.1:1003"))) << "a release frees a slot";
}

TEST(ConnectionsPerIp, Ipv4MappedIpv6IsTheSameAddress) {
  ConnectionsPerIp table(1);
  EXPECT_TRUE(table.try_acquire(addr("192.0.2.7:80")));
  EXPECT_FALSE(table.try_acquire(addr("[::ffff:192.0.2.7]:81")));
  EXPECT_TRUE(table.try_acquire(addr("[2001:db8::7]:80")));
}

TEST(ConnectionsPerIp, ReleasedAddressesLeaveNoEntryBehind) {
  ConnectionsPerIp table(3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(table.try_acquire(addr("10.1.1.1:5")));
  for (int i = 0; i < 5; ++i) table.release(addr("10.1.1.1:5"));  // extra releases are no-ops
  EXPECT_EQ(table.count(addr("10.1.1.1:5")), 0u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(table.try_acquire(addr("10.1.1.1:5")));
}

// Several threads racing on one address never let more than the limit through.
TEST(ConnectionsPerIp, HoldsTheLimitAcrossThreads) {
  ConnectionsPerIp table(100);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (table.try_acquire(addr("10.9.9.9:1"))) admitted++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 100);
}

TEST(IpKey, KeysIpv6ByItsPrefixAndIpv4ByItsAddress) {
  EXPECT_EQ(IpKey::of(addr("[2001:db8:1:2:aaaa::1]:1")), IpKey::of(addr("[2001:db8:1:2::9]:2")));
  EXPECT_NE(IpKey::of(addr("[2001:db8:1:2::1]:1")), IpKey::of(addr("[2001:db8:1:3::1]:1")));
  EXPECT_EQ(IpKey::of(addr("[::ffff:198.51.100.4]:1")), IpKey::of(addr("198.51.100.4:2")));
  EXPECT_NE(IpKey::of(addr("[::ffff:198.51.100.4]:1")), IpKey::of(addr("198.51.100.5:2")))
      << "a mapped address is not cut to /64";
  EXPECT_NE(IpKey::of(addr("[::1]:1")), IpKey::of(addr("0.0.0.1:1")));
  EXPECT_NE(IpKey::of(addr("[2001:db8::1]:1"), 128), IpKey::of(addr("[2001:db8::2]:1"), 128));
  // A prefix that is not a whole number of bytes: /60 keeps the top nibble of byte 7.
  EXPECT_EQ(IpKey::of(addr("[2001:db8:0:10::]:1"), 60), IpKey::of(addr("[2001:db8:0:1f::]:1"), 60));
  EXPECT_NE(IpKey::of(addr("[2001:db8:0:10::]:1"), 60), IpKey::of(addr("[2001:db8:0:20::]:1"), 60));
}

TEST(ConnectionsPerIp, AddressesOfOneIpv6Slash64ShareTheBudget) {
  ConnectionsPerIp table(2);  // the default prefix, 64
  EXPECT_TRUE(table.try_acquire(addr("[2001:db8:a:b::1]:1000")));
  EXPECT_TRUE(table.try_acquire(addr("[2001:db8:a:b:ffff:ffff:ffff:ffff]:1000")));
  EXPECT_FALSE(table.try_acquire(addr("[2001:db8:a:b:1234::77]:1000")))
      << "a third address of the same /64 is the same client";
  EXPECT_EQ(table.count(addr("[2001:db8:a:b::42]:5")), 2u);
  EXPECT_TRUE(table.try_acquire(addr("[2001:db8:a:c::1]:1000"))) << "another /64 has its own";
  table.release(addr("[2001:db8:a:b::1]:1000"));
  EXPECT_TRUE(table.try_acquire(addr("[2001:db8:a:b::2]:1000"))) << "a release frees the /64";
}

TEST(ConnectionsPerIp, MappedIpv4IsCountedAsIpv4NotAsAnIpv6Prefix) {
  ConnectionsPerIp table(1);
  EXPECT_TRUE(table.try_acquire(addr("[::ffff:192.0.2.7]:80")));
  EXPECT_FALSE(table.try_acquire(addr("192.0.2.7:81")));
  EXPECT_TRUE(table.try_acquire(addr("[::ffff:192.0.2.8]:80")))
      << "its neighbour is another client";
}

TEST(ConnectionsPerIp, Prefix128CountsEachIpv6AddressAlone) {
  ConnectionsPerIp table(1, 128);
  EXPECT_TRUE(table.try_acquire(addr("[2001:db8:a:b::1]:1")));
  EXPECT_TRUE(table.try_acquire(addr("[2001:db8:a:b::2]:1")));
  EXPECT_FALSE(table.try_acquire(addr("[2001:db8:a:b::1]:2")));
}

TEST(RatePerIp, AddressesOfOneIpv6Slash64ShareTheRate) {
  RatePerIp rate(10, 2);
  int64_t now = 5 * kSecond, retry = 0;
  EXPECT_TRUE(rate.take(addr("[2001:db8:5:6::1]:1"), now, &retry));
  EXPECT_TRUE(rate.take(addr("[2001:db8:5:6::2]:1"), now, &retry));
  EXPECT_FALSE(rate.take(addr("[2001:db8:5:6::3]:1"), now, &retry)) << "the /64's burst is spent";
  EXPECT_TRUE(rate.take(addr("[2001:db8:5:7::3]:1"), now, &retry));
  EXPECT_EQ(rate.tracked(), 2u);

  RatePerIp per_address(10, 1, 128);
  EXPECT_TRUE(per_address.take(addr("[2001:db8:5:6::1]:1"), now, &retry));
  EXPECT_TRUE(per_address.take(addr("[2001:db8:5:6::2]:1"), now, &retry));
  EXPECT_FALSE(per_address.take(addr("[2001:db8:5:6::1]:1"), now, &retry));
}

TEST(RatePerIp, AllowsTheBurstThenOnePerInterval) {
  RatePerIp rate(10, 3);  // 10/s, 3 at once
  SocketAddress a = addr("10.0.0.1:1");
  int64_t now = 5 * kSecond, retry = 0;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rate.take(a, now, &retry)) << i;
  EXPECT_FALSE(rate.take(a, now, &retry));
  EXPECT_EQ(retry, kSecond / 10);
  EXPECT_TRUE(rate.take(addr("10.0.0.2:1"), now, &retry)) << "addresses are independent";
  EXPECT_TRUE(rate.take(a, now + kSecond / 10, &retry));
  EXPECT_FALSE(rate.take(a, now + kSecond / 10, &retry));
}

TEST(RatePerIp, ForgetsAddressesThatRefilled) {
  RatePerIp rate(100, 1);
  int64_t now = kSecond;
  int64_t retry;
  for (int i = 0; i < 20000; ++i)
    rate.take(addr("10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) +
                   "." + std::to_string(i & 255) + ":1"),
              now, &retry);
  EXPECT_EQ(rate.tracked(), 20000u);
  // Long after, traffic from one address sweeps the idle entries of its stripe.
  now += 10 * kSecond;
  for (int i = 0; i < 256; ++i)
    rate.take(addr("172.16.0." + std::to_string(i) + ":1"), now, &retry);
  EXPECT_LT(rate.tracked(), 20000u);
}

TEST(AcceptRate, ReadyDoesNotSpendTheBudget) {
  AcceptRate rate(10, 2);
  int64_t now = kSecond;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(rate.ready(now), 0) << "asking is free";
  rate.consume(now);
  rate.consume(now);
  EXPECT_EQ(rate.ready(now), kSecond / 10) << "the burst of 2 is spent";
  EXPECT_EQ(rate.ready(now + kSecond / 10), 0);
}

TEST(AcceptRate, LongRunRateIsTheConfiguredOne) {
  AcceptRate rate(50, 1);
  int64_t now = kSecond;
  int accepted = 0;
  for (int64_t t = now; t < now + 2 * kSecond; t += kSecond / 1000) {
    if (rate.ready(t) == 0) {
      rate.consume(t);
      accepted++;
    }
  }
  EXPECT_NEAR(accepted, 100, 2);
}

TEST(Drain, ClosesAreDueInEvenSlicesAndTheLastTakesTheRest) {
  using server::closes_due;
  EXPECT_EQ(closes_due(100, 0, 50), 2u);
  EXPECT_EQ(closes_due(100, 24, 50), 50u);
  EXPECT_EQ(closes_due(100, 49, 50), 100u);
  EXPECT_EQ(closes_due(3, 0, 50), 1u) << "few sessions: one in each early slice";
  EXPECT_EQ(closes_due(3, 15, 50), 1u);
  EXPECT_EQ(closes_due(3, 16, 50), 2u);
  EXPECT_EQ(closes_due(7, 0, 1), 7u) << "one slice closes everything";
  size_t previous = 0;
  for (int s = 0; s < 20; ++s) {
    size_t due = closes_due(1000, s, 20);
    EXPECT_GE(due, previous);
    EXPECT_LE(due - previous, 50u);
    previous = due;
  }
}

TEST(Drain, ReconnectHintIsJsonThatFitsACloseFrame) {
  EXPECT_EQ(server::reconnect_hint(1234),
            "{\"reason\":\"server draining\",\"reconnect_after_ms\":1234}");
  EXPECT_LE(server::reconnect_hint(INT64_MAX).size(), ws::kMaxCloseReason);
}

}  // namespace
}  // namespace weir::net
