// Frame layer throughput: parsing masked client frames, header encoding, unmasking and UTF-8
// validation. Run pinned to one core: taskset -c 0 build/weir-bench --benchmark_filter=Framer
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include "ws/frame_encoder.h"
#include "ws/frame_parser.h"
#include "ws/mask.h"
#include "ws/utf8.h"

namespace weir::ws {
namespace {

class CountingHandler : public FrameHandler {
 public:
  uint64_t messages = 0;
  uint64_t bytes = 0;
  void on_message_begin(Opcode, bool) override {}
  void on_message_data(std::span<const char> d, bool complete) override {
    bytes += d.size();
    messages += complete;
  }
  void on_ping(std::span<const char>) override {}
  void on_pong(std::span<const char>) override {}
  void on_close(bool, uint16_t, std::string_view) override {}
};

// About 64 KiB of back-to-back masked frames. The key bytes are zero so unmasking in place
// leaves the buffer reusable (and text still valid) while doing exactly the same work.
std::string masked_stream(Opcode op, size_t payload, size_t* frames) {
  const uint32_t key = 0;
  std::string body(payload, 'a');
  for (size_t i = 0; i < payload; ++i) body[i] = static_cast<char>('a' + i % 26);
  std::string out;
  *frames = 0;
  while (out.size() < 64 * 1024) {
    char h[kMaxFrameHeaderSize];
    out.append(h, encode_frame_header(h, op, true, false, payload, &key));
    out += body;
    ++*frames;
  }
  return out;
}

void run_parse(benchmark::State& state, Opcode op, size_t read_size) {
  size_t frames = 0;
  std::string stream = masked_stream(op, static_cast<size_t>(state.range(0)), &frames);
  CountingHandler handler;
  FrameParser parser({}, &handler);
  for (auto _ : state) {
    for (size_t off = 0; off < stream.size(); off += read_size) {
      const size_t n = std::min(read_size, stream.size() - off);
      if (!parser.consume(stream.data() + off, n).ok()) state.SkipWithError("parse error");
    }
  }
  benchmark::DoNotOptimize(handler.bytes);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * frames));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
}

void BM_FramerParseBinary(benchmark::State& state) {
  run_parse(state, Opcode::kBinary, SIZE_MAX);
}
BENCHMARK(BM_FramerParseBinary)->Arg(32)->Arg(4096);

void BM_FramerParseText(benchmark::State& state) {
  run_parse(state, Opcode::kText, SIZE_MAX);
}
BENCHMARK(BM_FramerParseText)->Arg(32)->Arg(4096);

// Reads of one TCP segment, so frames straddle reads and headers go through the spill path.
void BM_FramerParseBinaryIn1448ByteReads(benchmark::State& state) {
  run_parse(state, Opcode::kBinary, 1448);
}
BENCHMARK(BM_FramerParseBinaryIn1448ByteReads)->Arg(32)->Arg(4096);

void BM_FramerEncodeHeader(benchmark::State& state) {
  const bool masked = state.range(1) != 0;
  const uint32_t key = 0x12345678;
  char out[kMaxFrameHeaderSize];
  uint64_t len = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(len);
    size_t n = encode_frame_header(out, Opcode::kBinary, true, false, len, masked ? &key : nullptr);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_FramerEncodeHeader)->Args({32, 0})->Args({4096, 0})->Args({1 << 20, 0})->Args({32, 1});

void BM_FramerUnmask(benchmark::State& state) {
  std::string buf(static_cast<size_t>(state.range(0)), 'x');
  uint32_t key;
  std::memcpy(&key, "\x37\xfa\x21\x3d", 4);
  for (auto _ : state) {
    apply_mask(buf.data(), buf.size(), key, 1);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
}
BENCHMARK(BM_FramerUnmask)->Arg(32)->Arg(4096)->Arg(64 * 1024);

std::string repeat_to_64k(std::string_view unit) {
  std::string s;
  while (s.size() + unit.size() <= 64 * 1024) s += unit;
  return s;
}

void run_utf8(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    Utf8Validator v;
    bool ok = v.feed(text.data(), text.size()) && v.complete();
    benchmark::DoNotOptimize(ok);
    if (!ok) state.SkipWithError("invalid");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

void BM_FramerUtf8Ascii(benchmark::State& state) {
  run_utf8(state,
           repeat_to_64k("{\"room\":\"lobby\",\"text\":\"hello everyone, how is it going?\"}\n"));
}
BENCHMARK(BM_FramerUtf8Ascii);

// Chat-like mix: Latin with accents, Greek, CJK and emoji between ASCII (~45% non-ASCII bytes).
void BM_FramerUtf8Mixed(benchmark::State& state) {
  run_utf8(state,
           repeat_to_64k("Hello caf\xc3\xa9, \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 "
                         "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 ok; "));
}
BENCHMARK(BM_FramerUtf8Mixed);

void BM_FramerUtf8Cjk(benchmark::State& state) {
  run_utf8(state, repeat_to_64k("\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c\xe3\x81\x93"));
}
BENCHMARK(BM_FramerUtf8Cjk);

}  // namespace
}  // namespace weir::ws
