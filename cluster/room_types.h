// cluster/room_types.h — vocabulary shared by the rooms layer: configuration, the slow-consumer
// policies, a shared encoded frame, and the messages room shards exchange between threads.
#pragma once

#include <cstdint>
#include <string>

#include "core/buffer.h"

namespace weir::cluster {

enum class SlowConsumerPolicy : uint8_t {
  kDisconnect,    // past max-buffer (or slow-grace above high): close 1008 "slow consumer"
  kSkip,          // above high: deliveries skipped; under low: a `lagged` notice with the range
  kBackpressure,  // lossless: while a member is above high, the room's publishers are paused
};
bool parse_slow_consumer_policy(std::string_view text, SlowConsumerPolicy* out);
const char* slow_consumer_policy_name(SlowConsumerPolicy policy);

struct RoomsConfig {
  size_t max_rooms_per_connection = 100;
  size_t max_room_id_bytes = 128;
  size_t max_content_bytes = 64 * 1024;
  SlowConsumerPolicy policy = SlowConsumerPolicy::kDisconnect;
  int64_t slow_grace_ms = 30000;
  size_t high_watermark = 1 << 20;
  size_t low_watermark = 256 << 10;
  size_t max_buffer = 4 << 20;
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
    kPublished,  // request_id, offset, epoch, status (HTTP API answer); with request_id 0,
                 // a member's publish that found no room: member_id, room_id, offset = bytes
    kInspected,  // request_id, offset, epoch, members, status
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
  std::string room_id;
  std::string content, message_id, sent_at, sender, traceparent, tracestate;
  Frame frame;
};

// Room ids: 1..max bytes of [A-Za-z0-9._:@/-]. Returns an error code or nullptr when valid.
const char* check_room_id(std::string_view room_id, size_t max_bytes);

}  // namespace weir::cluster
