// bench/mailbox_bench.cc — cross-thread task throughput: the raw MPSC queue on one thread,
// and producers feeding a Reactor running on its own thread (tasks/s).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/mailbox.h"
#include "core/reactor.h"

namespace weir::core {
namespace {

// Post a batch, then drain it, on one thread: the queue's own cost (node allocation, the
// exchange, one eventfd write per batch) without any cross-core traffic.
void BM_MailboxPostDrainSingleThread(benchmark::State& state) {
  const int64_t batch = state.range(0);
  Mailbox mailbox;
  uint64_t ran = 0;
  for (auto _ : state) {
    for (int64_t i = 0; i < batch; ++i) mailbox.post([&ran] { ran++; });
    mailbox.drain(SIZE_MAX);
  }
  benchmark::DoNotOptimize(ran);
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_MailboxPostDrainSingleThread)->Arg(1)->Arg(64)->Arg(1024);

// `producers` threads post tasks to a Reactor whose loop runs on its own thread; an
// iteration ends when the loop has run every task of the round.
void BM_ReactorCrossThreadThroughput(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  constexpr int64_t kPerProducer = 20'000;
  Reactor reactor;
  std::atomic<uint64_t> done{0};
  std::thread loop([&] { reactor.run(); });
  uint64_t target = 0;
  for (auto _ : state) {
    target += producers * kPerProducer;
    std::vector<std::thread> threads;
    for (int p = 1; p < producers; ++p) {
      threads.emplace_back([&] {
        for (int64_t i = 0; i < kPerProducer; ++i)
          reactor.post([&done] { done.fetch_add(1, std::memory_order_relaxed); });
      });
    }
    for (int64_t i = 0; i < kPerProducer; ++i)
      reactor.post([&done] { done.fetch_add(1, std::memory_order_relaxed); });
    for (auto& t : threads) t.join();
    while (done.load(std::memory_order_relaxed) < target) std::this_thread::yield();
  }
  reactor.stop();
  loop.join();
  state.SetItemsProcessed(state.iterations() * producers * kPerProducer);
}
BENCHMARK(BM_ReactorCrossThreadThroughput)->Arg(1)->Arg(2)->UseRealTime()->MinTime(0.5);

// Round trip: post to the loop, the loop answers by flipping a flag; latency per task.
void BM_ReactorCrossThreadRoundTrip(benchmark::State& state) {
  Reactor reactor;
  std::thread loop([&] { reactor.run(); });
  std::atomic<uint64_t> answered{0};
  uint64_t sent = 0;
  for (auto _ : state) {
    ++sent;
    reactor.post([&answered] { answered.fetch_add(1, std::memory_order_release); });
    while (answered.load(std::memory_order_acquire) < sent) std::this_thread::yield();
  }
  reactor.stop();
  loop.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReactorCrossThreadRoundTrip)->UseRealTime();

}  // namespace
}  // namespace weir::core
