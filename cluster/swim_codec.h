// cluster/swim_codec.h — the SWIM membership wire format: one authenticated message per UDP
// datagram (or per peer-link frame, for a whole state), binary, big-endian, every length checked
// before it is read.
//
//   0   u8   magic 0x57 ('W')
//   1   u8   version (2)
//   2   u8   type (MessageType)
//   3   u8   flags (kFlagWantsReply: a join that asks for the receiver's state; kFlagStream:
//            the message travels whole over a peer link, its update count is a u32)
//   4   u32  seq (probe sequence number; 0 when unused)
//   8   str  sender node id
//       type-specific: ping: str target id; ping-req: str target id, addr target address
//   .   u8   update count (u32 with kFlagStream), then per update: u8 state, u32 incarnation, str
//   node id, addr,
//            and for a suspect update: str0 accuser (who suspects it; Lifeguard counts distinct
//            accusers to shorten the suspicion timeout)
//   .   16   tag: HMAC-SHA256(secret, every byte before it), truncated to 16 bytes
//
//   str  = u8 length (1..64) + bytes;  str0 = the same with length 0 allowed;  addr = u8 family
//   (4|6) + 4|16 address bytes + u16 port
//
// A datagram never exceeds kMaxPacket bytes, so it passes any path MTU without fragmenting;
// updates that do not fit wait for the next packet (piggybacking) or go in another one (state).
// A stream message (kFlagStream) carries a whole state in one piece, up to kMaxStreamMessage
// bytes, in a peer-link frame of type kLinkFrameSwim; same tag, same checks.
// Version 2 added the accuser of suspect updates; a version 1 node cannot read version 2.
//
// Thread-safety: free functions and PacketWriter instances are independent; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.h"

namespace weir::cluster {

enum class MessageType : uint8_t {
  kPing = 1,     // probe: the target answers with an ack of the same seq
  kPingReq = 2,  // ask the receiver to ping `target` for us and forward the ack
  kAck = 3,
  kJoin = 4,     // push of the sender's whole state; kFlagWantsReply asks for the receiver's
  kJoinAck = 5,  // the receiver's whole state, answering a join
  kGossip = 6,   // updates only (a leave broadcast)
};

enum class MemberState : uint8_t { kAlive = 0, kSuspect = 1, kDead = 2, kLeft = 3 };

const char* member_state_name(MemberState state);
const char* message_type_name(MessageType type);

// What one node claims about another (or itself): state at an incarnation.
struct MemberUpdate {
  MemberState state = MemberState::kAlive;
  uint32_t incarnation = 0;
  std::string node_id;
  net::SocketAddress address;
  std::string accuser;  // kSuspect only: the member whose probe failed; empty: the sender
};

struct SwimMessage {
  MessageType type = MessageType::kPing;
  uint8_t flags = 0;
  uint32_t seq = 0;
  std::string sender;
  std::string target;                 // kPing, kPingReq
  net::SocketAddress target_address;  // kPingReq
  std::vector<MemberUpdate> updates;
};

constexpr uint8_t kSwimMagic = 0x57;
constexpr uint8_t kSwimVersion = 2;
constexpr uint8_t kFlagWantsReply = 1;
constexpr uint8_t kFlagStream = 2;
constexpr size_t kMaxPacket = 1400;
// A whole state over a peer link: about 45000 members with 64-byte ids; bigger is refused.
constexpr size_t kMaxStreamMessage = 4 << 20;
// The peer-link frame type (cluster/peer_link.h) of a stream message; the rooms use 16..22.
constexpr uint8_t kLinkFrameSwim = 32;
constexpr size_t kTagBytes = 16;
constexpr size_t kMaxNodeId = 64;

enum class DecodeStatus { kOk, kBadTag, kMalformed };

// Verifies the tag (constant time), then parses. Never reads outside `packet`. A packet longer
// than `max_size` (kMaxStreamMessage for a peer-link frame) is malformed.
DecodeStatus decode_packet(std::string_view packet, std::string_view secret, SwimMessage* out,
                           size_t max_size = kMaxPacket);
// Parses an unauthenticated body (everything before the tag). Exposed for tests and fuzzing.
bool parse_body(std::string_view body, SwimMessage* out);
// The bytes `update` takes on the wire.
size_t encoded_size(const MemberUpdate& update);

// Builds one message: begin() writes the header, add_update() appends updates while they fit
// (kMaxPacket, or kMaxStreamMessage when the header has kFlagStream), finish() signs it.
// Reusable: begin() starts over without freeing the buffer.
class PacketWriter {
 public:
  explicit PacketWriter(std::string secret) : secret_(std::move(secret)) {}
  // False when an id is empty or longer than kMaxNodeId (a programming error upstream).
  bool begin(const SwimMessage& header);
  // False (and nothing written) when the update would push the message past its size limit.
  bool add_update(const MemberUpdate& update);
  size_t update_count() const { return count_; }
  // Signs and returns the datagram; valid until the next begin().
  std::string_view finish();

 private:
  std::string secret_;
  std::string buf_;
  size_t count_pos_ = 0;
  size_t count_ = 0;
  bool stream_ = false;
};

}  // namespace weir::cluster
