// Fuzzes the rooms traffic between nodes (cluster/room_wire.h) with arbitrary bytes: the first
// byte picks the frame type, the rest is the payload. Must never crash or read outside the
// input; every payload that decodes, encoded again (kDeliver: plus its envelope), must decode
// to the same fields and give back the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cluster/room_wire.h"

namespace {

using namespace weir::cluster;

void check(bool ok) {
  if (!ok) abort();
}

bool same(const RoomWireMessage& a, const RoomWireMessage& b) {
  return a.type == b.type && a.room == b.room && a.epoch == b.epoch && a.offset == b.offset &&
         a.request == b.request && a.status == b.status && a.retry_ms == b.retry_ms &&
         a.flags == b.flags && a.content == b.content && a.message_id == b.message_id &&
         a.sent_at == b.sent_at && a.sender == b.sender && a.traceparent == b.traceparent &&
         a.tracestate == b.tracestate && a.envelope == b.envelope;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  RoomWireMessage m;
  if (!decode_room_wire(data[0], payload, &m)) return 0;
  std::string again;
  encode_room_wire(&again, m);
  if (m.type == RoomWireType::kDeliver) again.append(m.envelope);
  check(again == payload);
  RoomWireMessage back;
  check(decode_room_wire(data[0], again, &back));
  check(same(m, back));
  return 0;
}
