// cluster/room_wire.h — the rooms traffic between nodes, carried as peer-link frames
// (cluster/peer_link.h: [u32 length][u8 type][payload]). Binary, big-endian, every length
// checked before it is read; decoding gives views into the frame.
//
//   kInterest      room, u64 epoch, u64 offset     a node has members: register with the owner;
//                                                  epoch/offset: the last it delivered (0: none),
//                                                  so an owner that fell behind fences itself
//   kInterestAck   room, u64 epoch, u64 offset,    the owner's answer: the room's epoch and
//                  u8 status                       delivered offset (status kNotOwner: ask again)
//   kUninterest    room                            the node's last member left
//   kPublish       room, u64 request, u8 flags,    a message published on a non-owner node
//                  lstr content, str message_id, str sent_at, str sender,
//                  str traceparent, str tracestate
//   kPublishResult room, u64 request, u16 status,  the owner's answer when the message was not
//                  u64 offset, u64 epoch, i64 retry_ms           delivered (or for the HTTP API)
//   kDeliver       room, u64 epoch, u64 offset,    an ordered message, encoded once by the owner;
//                  u64 request, rest: envelope     `request` names the origin's publish (0: none)
//
//   room, str = u16 length + bytes;  lstr = u32 length + bytes
//
// Thread-safety: free functions; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace weir::cluster {

enum class RoomWireType : uint8_t {
  kInterest = 16,
  kInterestAck = 17,
  kUninterest = 18,
  kPublish = 19,
  kPublishResult = 20,
  kDeliver = 21,
};

// Not a room's frame: every second each node tells the nodes it links to how many rooms it
// orders (u64), for GET /cluster. Payload: u64 count.
inline constexpr uint8_t kWireRoomsOwned = 22;
std::string encode_rooms_owned(uint64_t count);
bool decode_rooms_owned(std::string_view payload, uint64_t* count);

inline constexpr uint8_t kWireClientMessageId = 1;  // kPublish flags
inline constexpr uint8_t kWireWantsResult = 2;      // ... answer even on success (HTTP API)
inline constexpr uint8_t kWireOk = 0, kWireNotOwner = 1;

struct RoomWireMessage {
  RoomWireType type = RoomWireType::kInterest;
  std::string_view room;
  uint64_t epoch = 0, offset = 0, request = 0;
  int status = 0;
  int64_t retry_ms = 0;
  uint8_t flags = 0;
  std::string_view content, message_id, sent_at, sender, traceparent, tracestate;
  std::string_view envelope;  // kDeliver: the JSON members receive
};

bool is_room_wire_type(uint8_t type);

// Appends the payload of `m` (without the link's length and type) to `out`. kDeliver's
// envelope is not appended: the link sends it as a second part, from the shared frame.
void encode_room_wire(std::string* out, const RoomWireMessage& m);

// False when the payload is malformed (truncated, lengths past the end, trailing bytes).
bool decode_room_wire(uint8_t type, std::string_view payload, RoomWireMessage* out);

}  // namespace weir::cluster
