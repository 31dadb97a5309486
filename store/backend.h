// store/backend.h — what weir keeps beyond one connection's life, as one synchronous
// interface that every backend implements: room history with offsets, sessions,
// idempotency keys, rate-limit buckets, and the purge of what expired.
//
// A Backend is driven by one store thread only (store/store.h puts it behind queues, so no
// reactor ever calls it or waits on it). Calls between begin_batch() and commit_batch() form
// one unit: one SQLite transaction, one Redis pipeline. A backend that cannot reach its server
// answers kUnavailable quickly instead of blocking.
//
// Thread-safety: none; one store thread owns a backend.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir::store {

enum class Status : uint8_t {
  kOk,
  kNotFound,     // no such session / room
  kUnavailable,  // the backend's server is down or the circuit is open: try again later
  kError,        // anything else; `Backend::last_error()` says what
  // An append found another message at its offset, or newer offsets in its epoch: another
  // node orders the room too (a pause or partition), so this one must fence (redis only).
  kConflict,
};

const char* to_string(Status status);

// One room message as stored: the envelope JSON exactly as members received it.
struct StoredMessage {
  std::string room_id;
  uint64_t epoch = 0;
  uint64_t offset = 0;
  std::string payload;
  int64_t stored_ms = 0;  // wall clock, for retention by age
};

// Where a room's history stands: the epoch of its newest message and the highest offset.
struct RoomState {
  uint64_t epoch = 0;
  uint64_t last_offset = 0;
};

// A resumable session: the token a client presents, the member it names, and its rooms with
// the last offset delivered in each (epoch included).
struct SessionRoom {
  std::string room_id;
  uint64_t epoch = 0;
  uint64_t offset = 0;
};

struct Session {
  std::string token;
  std::string member_id;
  std::vector<SessionRoom> rooms;
  int64_t expires_ms = 0;  // wall clock
};

// A message_id seen in a room within the dedupe window, and the offset it got.
struct IdempotencyResult {
  bool duplicate = false;
  uint64_t offset = 0;  // the original offset when duplicate
};

// GCRA: `allowed`, or how long until `cost` would be.
struct RateDecision {
  bool allowed = true;
  int64_t retry_after_ms = 0;
};

struct RateLimit {
  double per_second = 0;  // emission rate
  double burst = 1;       // how many may come at once
};

struct Retention {
  uint64_t max_messages_per_room = 10000;  // 0: no count limit
  int64_t max_age_ms = 24 * 3600 * 1000;   // 0: no age limit
};

class Backend {
 public:
  virtual ~Backend() = default;

  // A short name for logs and metrics: "memory", "sqlite", "redis".
  virtual const char* name() const = 0;
  // The reason of the last kError / kUnavailable.
  virtual const std::string& last_error() const = 0;

  virtual Status begin_batch() { return Status::kOk; }
  virtual Status commit_batch() { return Status::kOk; }

  // ---- room history ----
  // Appends one message; offsets of a (room, epoch) arrive strictly increasing.
  virtual Status append(const StoredMessage& message) = 0;
  // Messages of `room_id` in `epoch` with offset > after, oldest first, at most `limit`.
  // `*first_offset` is the oldest offset still held for that epoch (0 when none): a reader
  // asking for after + 1 < *first_offset knows the history no longer reaches back that far.
  virtual Status read_room(std::string_view room_id, uint64_t epoch, uint64_t after, size_t limit,
                           std::vector<StoredMessage>* out, uint64_t* first_offset) = 0;
  // The newest epoch with history for the room and its highest offset; kNotFound when none.
  virtual Status room_state(std::string_view room_id, RoomState* out) = 0;

  // ---- sessions ----
  virtual Status put_session(const Session& session) = 0;
  // kNotFound when absent or expired at `now_ms`.
  virtual Status get_session(std::string_view token, int64_t now_ms, Session* out) = 0;
  virtual Status delete_session(std::string_view token) = 0;

  // ---- idempotency ----
  // Records `message_id` for the room with `offset` unless it was seen within `window_ms`
  // before `now_ms` (then: duplicate, with the original offset). SET NX with an expiry.
  virtual Status remember_message_id(std::string_view room_id, std::string_view message_id,
                                     uint64_t offset, int64_t window_ms, int64_t now_ms,
                                     IdempotencyResult* out) = 0;

  // ---- rate limits ----
  // GCRA over `key`: takes `cost` if the limit allows it at `now_ms`.
  virtual Status rate_take(std::string_view key, const RateLimit& limit, double cost,
                           int64_t now_ms, RateDecision* out) = 0;

  // ---- retention and GC ----
  // Trims history by count and age, and drops expired sessions and idempotency keys.
  virtual Status purge(const Retention& retention, int64_t now_ms) = 0;
};

// Builds the backend a --store value names: "memory", "sqlite:PATH", "redis://HOST:PORT[/DB]".
// Returns nullptr and fills *error when the value is malformed or the backend cannot start.
std::unique_ptr<Backend> open_backend(std::string_view spec, std::string* error);

}  // namespace weir::store
