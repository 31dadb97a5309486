// bench/envelope_bench.cc — the rooms protocol's codec on its hot paths: decoding a typical
// ~100-byte client message envelope (envelopes/s) and encoding one outbound message into a
// buffer sized by message_encoded_bound (the fanout path encodes once per published message).
#include <benchmark/benchmark.h>

#include <string>

#include "ws/envelope.h"

namespace weir::ws {
namespace {

// 104 bytes: what a chat client typically sends.
constexpr std::string_view kTypicalMessage =
    R"({"message":{"target":"room-42","content":"hello everyone, how is it going?",)"
    R"("message_id":"3f1c9a7e-0001"}})";

void BM_DecodeMessageEnvelope(benchmark::State& state) {
  EnvelopeDecoder decoder;
  InboundEnvelope env;
  EnvelopeError err;
  for (auto _ : state) {
    if (!decoder.decode(kTypicalMessage, &env, &err)) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(env.content.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kTypicalMessage.size()));
  state.counters["bytes"] = static_cast<double>(kTypicalMessage.size());
}
BENCHMARK(BM_DecodeMessageEnvelope);

void BM_DecodeJoinRoomEnvelope(benchmark::State& state) {
  constexpr std::string_view kJoin = R"({"join_room":{"room_id":"room-42"}})";
  EnvelopeDecoder decoder;
  InboundEnvelope env;
  EnvelopeError err;
  for (auto _ : state) {
    if (!decoder.decode(kJoin, &env, &err)) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(env.room_id.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeJoinRoomEnvelope);

// The error path: a well-formed envelope with a wrong-typed field.
void BM_DecodeInvalidFieldEnvelope(benchmark::State& state) {
  constexpr std::string_view kBad =
      R"({"message":{"target":"room-42","content":12345,"message_id":"3f1c9a7e-0001"}})";
  EnvelopeDecoder decoder;
  InboundEnvelope env;
  EnvelopeError err;
  for (auto _ : state) {
    if (decoder.decode(kBad, &env, &err)) state.SkipWithError("decode succeeded");
    benchmark::DoNotOptimize(err.message.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeInvalidFieldEnvelope);

OutboundMessage typical_outbound(const std::string& content) {
  return OutboundMessage{.target = "room-42",
                         .content = content,
                         .message_id = "3f1c9a7e-0001",
                         .sent_at = "2024-05-01T12:00:00.123Z",
                         .sender = "member-1234",
                         .traceparent = {},
                         .tracestate = {},
                         .offset = 1234567,
                         .epoch = 3};
}

// Bound + write, as the fanout path does (size the shared buffer, then fill it once).
void BM_EncodeMessageTo(benchmark::State& state) {
  const std::string content(static_cast<size_t>(state.range(0)), 'x');
  const OutboundMessage m = typical_outbound(content);
  std::string buffer(message_encoded_bound(m), '\0');
  for (auto _ : state) {
    const size_t bound = message_encoded_bound(m);
    benchmark::DoNotOptimize(encode_message_to(buffer.data(), m) == bound);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(buffer.size()));
}
BENCHMARK(BM_EncodeMessageTo)->Arg(64)->Arg(1024);

// Worst case for the escaper: content that is all control characters (6 output bytes each).
void BM_EncodeMessageToAllControlChars(benchmark::State& state) {
  const std::string content(64, '\x01');
  const OutboundMessage m = typical_outbound(content);
  std::string buffer(message_encoded_bound(m), '\0');
  for (auto _ : state) {
    const size_t bound = message_encoded_bound(m);
    benchmark::DoNotOptimize(encode_message_to(buffer.data(), m) == bound);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeMessageToAllControlChars);

}  // namespace
}  // namespace weir::ws
