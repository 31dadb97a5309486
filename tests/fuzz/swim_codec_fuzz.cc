// Fuzzes the SWIM membership codec with arbitrary bytes, as a signed datagram and as a bare
// body. Must never crash or read outside the input; every body that parses, written again with
// PacketWriter and decoded with the key, must give back the same message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cluster/swim_codec.h"

namespace {

using namespace weir::cluster;

void check(bool ok) {
  if (!ok) abort();
}

bool same(const SwimMessage& a, const SwimMessage& b) {
  if (a.type != b.type || a.flags != b.flags || a.seq != b.seq || a.sender != b.sender ||
      a.target != b.target || a.updates.size() != b.updates.size())
    return false;
  if (a.type == MessageType::kPingReq &&
      a.target_address.to_string() != b.target_address.to_string())
    return false;
  for (size_t i = 0; i < a.updates.size(); ++i) {
    const MemberUpdate &x = a.updates[i], &y = b.updates[i];
    if (x.state != y.state || x.incarnation != y.incarnation || x.node_id != y.node_id ||
        x.address.to_string() != y.address.to_string())
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  SwimMessage message;
  decode_packet(input, "fuzz-secret", &message);  // almost always kBadTag: must not crash
  SwimMessage body;
  if (!parse_body(input, &body)) return 0;
  if (input.size() + kTagBytes > kMaxPacket) return 0;  // no writer would have made it
  PacketWriter writer("fuzz-secret");
  check(writer.begin(body));
  for (const MemberUpdate& u : body.updates) check(writer.add_update(u));
  std::string packet(writer.finish());
  check(packet.size() <= kMaxPacket);
  SwimMessage again;
  check(decode_packet(packet, "fuzz-secret", &again) == DecodeStatus::kOk);
  check(same(body, again));
  check(decode_packet(packet, "other-secret", &again) == DecodeStatus::kBadTag);
  return 0;
}
