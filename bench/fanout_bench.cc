// bench/fanout_bench.cc — the room fanout path without sockets: one published message encoded
// once (envelope + WebSocket header into one SharedBuffer, as RoomShard::encode does) and
// queued on N connections' BufferChains, against the naive way (encode and copy per
// recipient); and a burst of k frames for one room joined once and queued as one slice (as
// RoomShard::flush_room does) against k separate appends per recipient.
//
// Items are deliveries (one message to one recipient). Each chain is drained after the
// appends, as a writev would, so the queues stay small and the cost of sending the slices
// from the queue is counted too. Args: N recipients, content bytes (64 is the load runs' size;
// 1024 makes the frame larger than BufferChain::kCopyThreshold, so it is queued by reference).
#include <benchmark/benchmark.h>
#include <sys/uio.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "ws/envelope_encoder.h"
#include "ws/frame_encoder.h"

namespace weir {
namespace {

constexpr size_t kHeaderRoom = 10;  // the largest unmasked header, reserved in front of the JSON
constexpr int kBurst = 16;          // frames per room per loop iteration in the batch benches

struct EncodedFrame {
  core::SharedBuffer buffer;
  size_t offset = 0;
  size_t length = 0;
};

// A message like the load runs publish: weir-load's content of `size` bytes, ids as weir
// fills them in.
struct MessageFixture {
  std::string content;
  ws::OutboundMessage out;

  explicit MessageFixture(size_t size) : content(size, 'x') {
    out.target = "room-0";
    out.content = content;
    out.message_id = "m-3f1c9a7e-000042";
    out.sent_at = "2026-11-22T03:12:55.123Z";
    out.sender = "member-17";
    out.offset = 1;
    out.epoch = 1;
  }
};

// As RoomShard::encode: exact-size block, JSON after the header room, header right before it.
EncodedFrame encode_shared(const ws::OutboundMessage& m) {
  size_t bound = ws::message_encoded_bound(m);
  EncodedFrame f;
  f.buffer = core::SharedBuffer::allocate(kHeaderRoom + bound);
  char* json = f.buffer.mutable_data() + kHeaderRoom;
  size_t len = ws::encode_message_to(json, m);
  size_t header = ws::frame_header_size(len, false);
  ws::encode_frame_header(json - header, ws::Opcode::kText, true, false, len, nullptr);
  f.buffer.set_size(kHeaderRoom + len);
  f.offset = kHeaderRoom - header;
  f.length = header + len;
  return f;
}

// What a writev of the whole queue would do: gather the iovecs, then drop the bytes.
size_t drain(std::vector<core::BufferChain>& chains) {
  struct iovec iov[64];
  size_t iovecs = 0;
  for (auto& chain : chains) {
    iovecs += static_cast<size_t>(chain.fill_iovecs(iov, 64));
    benchmark::DoNotOptimize(iov[0].iov_base);
    chain.consume(chain.bytes());
  }
  return iovecs;
}

void set_counters(benchmark::State& state, size_t deliveries_per_iter, size_t iovecs,
                  size_t frame_length) {
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(deliveries_per_iter));
  state.counters["frame_bytes"] = static_cast<double>(frame_length);
  state.counters["iovecs_per_send"] = static_cast<double>(iovecs) /
                                      static_cast<double>(state.iterations()) /
                                      static_cast<double>(state.range(0));
}

// One encode, N appends of the same frame (by reference above kCopyThreshold, else corked).
void BM_FanoutEncodeOnce(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  MessageFixture fx(static_cast<size_t>(state.range(1)));
  std::vector<core::BufferChain> chains(n);
  size_t iovecs = 0, frame_length = 0;
  for (auto _ : state) {
    fx.out.offset++;
    EncodedFrame f = encode_shared(fx.out);
    frame_length = f.length;
    for (auto& chain : chains) chain.append_shared(f.buffer, f.offset, f.length);
    iovecs += drain(chains);
  }
  set_counters(state, n, iovecs, frame_length);
}

// The baseline: every recipient gets its own encode (JSON + header) and copy.
void BM_FanoutEncodePerRecipient(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  MessageFixture fx(static_cast<size_t>(state.range(1)));
  std::vector<core::BufferChain> chains(n);
  std::string scratch;
  size_t iovecs = 0, frame_length = 0;
  for (auto _ : state) {
    fx.out.offset++;
    for (auto& chain : chains) {
      scratch.assign(kHeaderRoom, '\0');
      ws::encode_message(&scratch, fx.out);
      size_t len = scratch.size() - kHeaderRoom;
      size_t header = ws::frame_header_size(len, false);
      char* start = scratch.data() + kHeaderRoom - header;
      ws::encode_frame_header(start, ws::Opcode::kText, true, false, len, nullptr);
      frame_length = header + len;
      chain.append_copy(start, frame_length);
    }
    iovecs += drain(chains);
  }
  set_counters(state, n, iovecs, frame_length);
}

// A burst of kBurst frames for one room: joined into one block once, then one slice per
// recipient (RoomShard::flush_room).
void BM_FanoutBurstJoined(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  MessageFixture fx(static_cast<size_t>(state.range(1)));
  std::vector<core::BufferChain> chains(n);
  std::vector<EncodedFrame> frames(kBurst);
  size_t iovecs = 0;
  for (auto _ : state) {
    size_t total = 0;
    for (auto& f : frames) {
      fx.out.offset++;
      f = encode_shared(fx.out);
      total += f.length;
    }
    core::SharedBuffer joined = core::SharedBuffer::allocate(total);
    char* out = joined.mutable_data();
    for (const auto& f : frames) {
      std::memcpy(out, f.buffer.data() + f.offset, f.length);
      out += f.length;
    }
    joined.set_size(total);
    for (auto& chain : chains) chain.append_shared(joined, 0, total);
    iovecs += drain(chains);
  }
  set_counters(state, n * kBurst, iovecs, frames[0].length);
}

// The same burst appended frame by frame to every recipient.
void BM_FanoutBurstSeparate(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  MessageFixture fx(static_cast<size_t>(state.range(1)));
  std::vector<core::BufferChain> chains(n);
  std::vector<EncodedFrame> frames(kBurst);
  size_t iovecs = 0;
  for (auto _ : state) {
    for (auto& f : frames) {
      fx.out.offset++;
      f = encode_shared(fx.out);
    }
    for (auto& chain : chains)
      for (const auto& f : frames) chain.append_shared(f.buffer, f.offset, f.length);
    iovecs += drain(chains);
  }
  set_counters(state, n * kBurst, iovecs, frames[0].length);
}

void fanout_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "content"});
  for (int64_t content : {64, 1024})
    for (int64_t n : {10, 100, 1000}) b->Args({n, content});
}
BENCHMARK(BM_FanoutEncodeOnce)->Apply(fanout_args);
BENCHMARK(BM_FanoutEncodePerRecipient)->Apply(fanout_args);
BENCHMARK(BM_FanoutBurstJoined)->Apply(fanout_args);
BENCHMARK(BM_FanoutBurstSeparate)->Apply(fanout_args);

}  // namespace
}  // namespace weir
