// permessage-deflate throughput: compress and inflate 32 B and 4 KiB chat-like JSON messages,
// without context takeover (--deflate shared) and with it (dedicated), at zlib levels 1 and 6.
// Throughput counts uncompressed bytes; "ratio" is compressed / uncompressed.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ws/deflate_codec.h"
#include "ws/deflate_workspace.h"

namespace weir::ws {
namespace {

constexpr size_t kMessages = 256;  // distinct messages, so takeover cannot just repeat one

std::string json_message(size_t size, std::mt19937& rng) {
  if (size <= 32) {
    std::string m = "{\"op\":\"pub\",\"ch\":" + std::to_string(rng() % 90 + 10) + ",\"d\":\"hi" +
                    std::to_string(rng() % 90 + 10) + "\"}";
    m.resize(size, ' ');
    return m;
  }
  std::string m = "[";
  while (m.size() < size) {
    m += "{\"type\":\"chat\",\"room\":\"lobby-" + std::to_string(rng() % 16) + "\",\"user\":\"u" +
         std::to_string(rng() % 5000) + "\",\"seq\":" + std::to_string(rng() % 1000000) +
         ",\"ts\":17000" + std::to_string(rng() % 100000) + ",\"text\":\"message number " +
         std::to_string(rng() % 1000) + " says hello\"},";
  }
  m.resize(size);
  return m;
}

std::vector<std::string> json_messages(size_t size) {
  std::mt19937 rng(42);
  std::vector<std::string> out;
  for (size_t i = 0; i < kMessages; ++i) out.push_back(json_message(size, rng));
  return out;
}

// Args: message size, context takeover (0/1), zlib level.
void BM_Compress(benchmark::State& state) {
  const auto messages = json_messages(state.range(0));
  DeflateWorkspaceOptions options;
  options.level = static_cast<int>(state.range(2));
  DeflateWorkspace ws(options);
  MessageCompressor c(&ws, {15, state.range(1) != 0});
  std::string out;
  size_t i = 0, in_bytes = 0, out_bytes = 0;
  for (auto _ : state) {
    const std::string& m = messages[i++ % kMessages];
    out.clear();
    c.compress(m, &out);
    benchmark::DoNotOptimize(out.data());
    in_bytes += m.size();
    out_bytes += out.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(in_bytes));
  state.counters["ratio"] = static_cast<double>(out_bytes) / static_cast<double>(in_bytes);
}

void BM_Decompress(benchmark::State& state) {
  const auto messages = json_messages(state.range(0));
  const bool takeover = state.range(1) != 0;
  DeflateWorkspaceOptions options;
  options.level = static_cast<int>(state.range(2));
  DeflateWorkspace ws(options);
  std::vector<std::string> payloads;
  {
    MessageCompressor c(&ws, {15, takeover});
    for (const std::string& m : messages) {
      payloads.emplace_back();
      c.compress(m, &payloads.back());
    }
  }
  // With takeover the payloads form one chain: start a fresh inflater at every wrap.
  auto d = std::make_unique<MessageDecompressor>(&ws, DecompressorConfig{15, takeover});
  std::string out;
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    if (takeover && i % kMessages == 0) {
      d = std::make_unique<MessageDecompressor>(&ws, DecompressorConfig{15, takeover});
    }
    const std::string& p = payloads[i++ % kMessages];
    out.clear();
    if (!d->feed({p.data(), p.size()}, true, &out).ok()) state.SkipWithError("inflate failed");
    benchmark::DoNotOptimize(out.data());
    bytes += out.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void message_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bytes", "takeover", "level"});
  for (int64_t level : {1, 6}) {
    for (int64_t takeover : {0, 1}) {
      for (int64_t size : {32, 4096}) b->Args({size, takeover, level});
    }
  }
}

BENCHMARK(BM_Compress)->Apply(message_args);
BENCHMARK(BM_Decompress)->Apply(message_args);

}  // namespace
}  // namespace weir::ws
