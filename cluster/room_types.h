// cluster/room_types.h — vocabulary shared by the rooms layer: configuration, the slow-consumer
// policies, a shared encoded frame, and the messages room shards exchange between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cluster/cluster_view.h"
#include "core/buffer.h"

namespace weir::cluster {

enum class SlowConsumerPolicy : uint8_t {
  kDisconnect,    // past max-buffer (or slow-grace above high): close 1008 "slow consumer"
  kSkip,          // above high: deliveries skipped; under low: a `lagged` notice with the range
  kBackpressure,  // lossless: while a member is above high, the room's publishers are paused
};
bool parse_slow_consumer_policy(std::string_view text, SlowConsumerPolicy* out);
const char* slow_consumer_policy_name(SlowConsumerPolicy policy);

// What a room message's delivery waits for (see docs/protocol.md for each one's loss window).
enum class Durability : uint8_t {
  kNone,   // nothing stored: no replay, no resume of history
  kAsync,  // delivered at once, appended to the store behind
  kSync,   // delivered (and acknowledged) only once the store committed it
};
bool parse_durability(std::string_view text, Durability* out);

struct RoomsConfig {
  size_t max_rooms_per_connection = 100;
  size_t max_room_id_bytes = 128;
  size_t max_content_bytes = 64 * 1024;
  SlowConsumerPolicy policy = SlowConsumerPolicy::kDisconnect;
  int64_t slow_grace_ms = 30000;
  size_t high_watermark = 1 << 20;
  size_t low_watermark = 256 << 10;
  size_t max_buffer = 4 << 20;
  // Store-backed behaviour
  Durability durability = Durability::kAsync;
  size_t replay_limit = 1000;
  int64_t session_ttl_ms = 24 * 3600 * 1000;
  int64_t dedupe_window_ms = 5 * 60 * 1000;  // 0: off
  double rate_limit = 0, rate_burst = 0;     // per connection (0: off)
  double room_rate_limit = 0, room_rate_burst = 0;
};

// One encoded WebSocket frame, shared by reference among every recipient on every thread.
struct Frame {
  core::SharedBuffer buffer;
  uint32_t offset = 0;  // where the frame starts in the buffer
  uint32_t length = 0;
  uint64_t room_offset = 0;
  uint64_t sender = 0;        // the publishing member's id (0: the HTTP API)
  uint32_t sender_bytes = 0;  // its content size, which the sender counted as in flight
};

// What shards post to each other, batched per destination thread and iteration. One struct
// for every kind keeps a batch one vector; fields unused by a kind stay empty.
struct ShardMessage {
  enum class Kind : uint8_t {
    // to the room's owner
    kJoin,       // room_id, member_id, from_thread
    kLeave,      // room_id, from_thread
    kPublish,    // room_id, content..., member_id (0: the HTTP API), from_thread, request_id
    kBlock,      // room_id, delta (+1/-1): a member of the room is above/below its watermarks
    kFannedOut,  // room_id, delta = bytes, from_thread: deliveries the thread has queued to its
                 // members (backpressure policy: the owner's count of bytes in transit drops)
    kInspect,    // room_id, from_thread, request_id: members and last offset for the HTTP API
    // from the owner
    kJoined,     // room_id, room_key, offset, epoch, member_id
    kDeliver,    // room_key, frame
    kPaused,     // room_key
    kResumed,    // room_key
    kPublished,  // request_id, offset, epoch, status (HTTP API answer: 200, 409 duplicate with
    // the original offset, 404, 429 with delta = retry ms, 503 paused, 507 store failed); with
    // request_id 0,
    // a member's publish that was not delivered: member_id, room_id, message_id,
    // status (404 no room, 409 duplicate: offset, 429 rate: delta = retry ms, 507
    // store failed), members = content bytes
    kInspected,  // request_id, offset, epoch, members, status
    // between nodes (cluster/room_bridge.h carries them over the peer links; `node` names the
    // other node). To the room's owner thread on this node:
    kNodeInterest,       // room_id: `node` has members in a room this node owns
    kNodeUninterest,     // room_id
    kNodePublish,        // like kPublish; request_id is the origin node's
    kNodeInterestAck,    // room_id, epoch, offset, status (kWireNotOwner: ask again later)
    kNodePublishResult,  // room_id, request_id, status, offset, epoch, delta = retry ms
    kNodeDeliver,        // room_id, epoch, offset, request_id, frame (encoded on this node)
    // to every thread
    kView,  // view: the alive members changed; status 1: fence the rooms this node orders
    kLink,  // node, status 1 (link up) or 0 (down)
    // to thread 0, which owns the links: send frame `status` (a RoomWireType) to `node`,
    // `content` its header and `frame`, when set, the envelope that follows
    kToNode,
    // from a room's owner thread to the threads with its members: the room's continuity broke
    kRekey,  // room_key (old), epoch (new), offset: the owner's delivered offset; status 1: a new
             // epoch (members get resumed{recovered:false}), 0: same epoch, a gap before offset
  };
  explicit ShardMessage(Kind k) : kind(k) {}
  Kind kind;
  int from_thread = -1;
  int64_t delta = 0;
  uint64_t member_id = 0;
  uint64_t room_key = 0;
  uint64_t offset = 0;
  uint64_t epoch = 0;
  uint64_t request_id = 0;
  uint64_t members = 0;
  int status = 0;
  bool client_message_id = false;  // kPublish: the id came from the client (deduplicated)
  bool rate_checked = false;       // kPublish: the room's shared rate limit already let it in
  int64_t trace_start_ns = 0;      // kPublish, --otlp-endpoint: when the member sent it
  std::string room_id;
  std::string content, message_id, sent_at, sender, traceparent, tracestate;
  std::string node;  // kNode*, kLink, kToNode: the other node
  Frame frame;
  std::shared_ptr<const ClusterView> view;  // kView
};

// Room ids: 1..max bytes of [A-Za-z0-9._:@/-]. Returns an error code or nullptr when valid.
const char* check_room_id(std::string_view room_id, size_t max_bytes);

}  // namespace weir::cluster
