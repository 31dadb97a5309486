// ws/message_metrics.h — WebSocket messages and payload bytes by direction and type:
// weir_ws_messages_total{direction,type} and weir_ws_payload_bytes_total{direction,type}.
//
// type is the opcode: text and binary count whole messages (however many fragments), ping,
// pong and close count control frames. Bytes are payload bytes without frame headers, as the
// application sees them (after inflating, before compressing). The unlabelled totals
// weir_ws_messages_{received,sent}_total and weir_ws_payload_bytes_{received,sent}_total are
// the text and binary series summed at scrape time.
//
// The counters are resolved at static initialisation: counting is an array index and two
// relaxed adds on the calling thread's shard, no lookup and no allocation.
//
// Thread-safety: count from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/metrics.h"
#include "ws/frame.h"

namespace weir::ws::metrics {

enum Direction : uint8_t { kIn, kOut };
inline constexpr int kMessageTypes = 5;  // text, binary, ping, pong, close

constexpr int message_type(Opcode opcode) {
  switch (opcode) {
    case Opcode::kBinary:
      return 1;
    case Opcode::kPing:
      return 2;
    case Opcode::kPong:
      return 3;
    case Opcode::kClose:
      return 4;
    default:
      return 0;  // text (a continuation never starts a message)
  }
}

extern core::Counter messages[2][kMessageTypes];
extern core::Counter payload_bytes[2][kMessageTypes];

inline void count_message(Direction direction, Opcode opcode, uint64_t bytes) {
  int type = message_type(opcode);
  messages[direction][type].inc();
  payload_bytes[direction][type].inc(bytes);
}

// Counts `count` whole unmasked frames laid back to back in `frames` (a shared slice sent to
// one more recipient) by their own headers.
void count_shared_frames_sent(const char* frames, size_t length, uint32_t count);

}  // namespace weir::ws::metrics
