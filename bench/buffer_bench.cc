// bench/buffer_bench.cc — costs of the output path's building blocks: pooled block allocation
// against malloc, handle copies (the refcount), corking small frames, and fanning one
// encoded message out to many connections' queues.
#include <benchmark/benchmark.h>
#include <sys/uio.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/buffer.h"

namespace weir::core {
namespace {

void BM_SharedBufferAllocateFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    SharedBuffer block = SharedBuffer::allocate(size);
    benchmark::DoNotOptimize(block.mutable_data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedBufferAllocateFree)->Arg(64)->Arg(1024)->Arg(16 * 1024)->Arg(256 * 1024);

void BM_MallocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::malloc(size);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFree)->Arg(64)->Arg(1024)->Arg(16 * 1024)->Arg(256 * 1024);

// 64 blocks alive at once, freed in allocation order: closer to a burst of queued frames.
void BM_SharedBufferAllocateFreeBurst(benchmark::State& state) {
  std::vector<SharedBuffer> live(64);
  for (auto _ : state) {
    for (auto& block : live) block = SharedBuffer::allocate(1024);
    for (auto& block : live) block = SharedBuffer();
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_SharedBufferAllocateFreeBurst);

void BM_MallocFreeBurst(benchmark::State& state) {
  std::vector<void*> live(64);
  for (auto _ : state) {
    for (auto& p : live) p = std::malloc(1024);
    benchmark::DoNotOptimize(live.data());
    for (auto& p : live) std::free(p);
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_MallocFreeBurst);

void BM_SharedBufferCopyHandle(benchmark::State& state) {
  SharedBuffer block = SharedBuffer::copy_of("a room message");
  for (auto _ : state) {
    SharedBuffer copy = block;  // atomic increment, then decrement on scope exit
    benchmark::DoNotOptimize(copy);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedBufferCopyHandle);

// The same block's refcount hit from two threads: the cache-line bounce a broadcast to
// connections on several reactors pays.
SharedBuffer g_contended;
void BM_SharedBufferCopyHandleContended(benchmark::State& state) {
  if (state.thread_index() == 0) g_contended = SharedBuffer::copy_of("a room message");
  for (auto _ : state) {
    SharedBuffer copy = g_contended;
    benchmark::DoNotOptimize(copy);
  }
  if (state.thread_index() == 0) g_contended = SharedBuffer();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedBufferCopyHandleContended)->Threads(2)->UseRealTime();

// 16 echo frames of 34 bytes corked into the tail block, sent as one writev, consumed.
void BM_BufferChainCork16x34(benchmark::State& state) {
  BufferChain chain;
  char frame[34];
  for (size_t i = 0; i < sizeof frame; ++i) frame[i] = static_cast<char>('a' + i);
  struct iovec iov[64];
  for (auto _ : state) {
    for (int i = 0; i < 16; ++i) chain.append_copy(frame, sizeof frame);
    int n = chain.fill_iovecs(iov, 64);
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(iov[0].iov_base);
    chain.consume(chain.bytes());
  }
  state.SetItemsProcessed(state.iterations() * 16);
  state.SetBytesProcessed(state.iterations() * 16 * static_cast<int64_t>(sizeof frame));
}
BENCHMARK(BM_BufferChainCork16x34);

// Same, but the chain keeps a partially sent tail between rounds (a slow reader): every
// append goes into an existing block, no allocation.
void BM_BufferChainCork16x34PartialSend(benchmark::State& state) {
  BufferChain chain;
  char frame[34] = {};
  struct iovec iov[64];
  for (auto _ : state) {
    for (int i = 0; i < 16; ++i) chain.append_copy(frame, sizeof frame);
    int n = chain.fill_iovecs(iov, 64);
    benchmark::DoNotOptimize(n);
    chain.consume(chain.bytes() - 7);  // the kernel took all but 7 bytes
  }
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK(BM_BufferChainCork16x34PartialSend);

// One encoded message queued on 1000 connections by reference, then sent by each.
void BM_BufferChainAppendSharedTo1000Chains(benchmark::State& state) {
  std::vector<BufferChain> chains(1000);
  SharedBuffer message = SharedBuffer::copy_of(std::string(state.range(0), 'x'));
  for (auto _ : state) {
    for (auto& chain : chains) chain.append_shared(message);
    for (auto& chain : chains) chain.consume(chain.bytes());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_BufferChainAppendSharedTo1000Chains)->Arg(64)->Arg(1024)->Arg(16 * 1024);

// The baseline fan-out saves: copying the message into each connection's queue.
void BM_BufferChainAppendCopyTo1000Chains(benchmark::State& state) {
  std::vector<BufferChain> chains(1000);
  std::string message(state.range(0), 'x');
  for (auto _ : state) {
    for (auto& chain : chains) chain.append_copy(message.data(), message.size());
    for (auto& chain : chains) chain.consume(chain.bytes());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_BufferChainAppendCopyTo1000Chains)->Arg(64)->Arg(1024)->Arg(16 * 1024);

}  // namespace
}  // namespace weir::core
