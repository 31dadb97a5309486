// tests/cluster_test_util.h — what the cluster tests (membership, peer links) share: a loopback
// address, the test secret, and a wait for a condition.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "net/address.h"

namespace weir::cluster::test_util {

using namespace std::chrono_literals;

inline constexpr auto kEventually = 10s;
inline const std::string kSecret = "test-cluster-secret";

inline net::SocketAddress loopback(uint16_t port) {
  net::SocketAddress addr;
  std::string error;
  net::SocketAddress::parse("127.0.0.1:" + std::to_string(port), &addr, &error);
  return addr;
}

// Polls `pred` every 10 ms until it holds or `limit` passed; its last answer.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = kEventually) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

}  // namespace weir::cluster::test_util
