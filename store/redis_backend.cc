// store/redis_backend.cc — the Redis Backend: weir's data model as Redis keys (see
// store/redis_backend.h), and batches as pipelines.
#include "store/redis_backend.h"

#include <charconv>
#include <climits>
#include <limits>
#include <utility>

#include "store/redis_connection.h"
#include "store/redis_scripts.h"

namespace weir::store {

namespace {

constexpr char kRoomsKey[] = "weir:rooms";

std::string history_prefix(std::string_view room) {
  return "weir:history:" + std::string(room) + ":";
}
std::string history_key(std::string_view room, uint64_t epoch) {
  return history_prefix(room) + std::to_string(epoch);
}
std::string room_key(std::string_view room) {
  return "weir:room:" + std::string(room);
}
std::string epochs_key(std::string_view room) {
  return "weir:epochs:" + std::string(room);
}
std::string session_key(std::string_view token) {
  return "weir:session:" + std::string(token);
}
std::string rate_key(std::string_view key) {
  return "weir:rate:" + std::string(key);
}
// The room's length first, so that no (room, id) pair can spell another's key.
std::string dedupe_key(std::string_view room, std::string_view id) {
  return "weir:dedupe:" + std::to_string(room.size()) + ":" + std::string(room) + ":" +
         std::string(id);
}

const RedisScript& append_script() {
  static const RedisScript script(lua::kAppend);
  return script;
}
const RedisScript& purge_room_script() {
  static const RedisScript script(lua::kPurgeRoom);
  return script;
}
const RedisScript& remember_script() {
  static const RedisScript script(lua::kRemember);
  return script;
}
const RedisScript& rate_take_script() {
  static const RedisScript script(lua::kRateTake);
  return script;
}

template <typename T>
bool parse_number(std::string_view text, T* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

std::string format_double(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, ec == std::errc() ? end : buffer);
}

// A stream entry ID "<offset>-1" to the offset.
bool parse_entry_id(std::string_view id, uint64_t* offset) {
  size_t dash = id.find('-');
  return dash != std::string_view::npos && parse_number(id.substr(0, dash), offset);
}

// A stream entry [ID, [field, value, ...]] to the offset, payload and stored_ms of *out.
bool parse_entry(const redisReply* entry, StoredMessage* out) {
  if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
      entry->element[1]->type != REDIS_REPLY_ARRAY ||
      !parse_entry_id(reply_text(entry->element[0]), &out->offset)) {
    return false;
  }
  const redisReply* fields = entry->element[1];
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string_view field = reply_text(fields->element[i]);
    std::string_view value = reply_text(fields->element[i + 1]);
    if (field == "p") out->payload = std::string(value);
    if (field == "t" && !parse_number(value, &out->stored_ms)) return false;
  }
  return true;
}

// A session's rooms in one hash field: "<len>:<room_id> <epoch> <offset>\n" per room.
std::string encode_rooms(const std::vector<SessionRoom>& rooms) {
  std::string out;
  for (const SessionRoom& room : rooms) {
    out += std::to_string(room.room_id.size()) + ":" + room.room_id + " " +
           std::to_string(room.epoch) + " " + std::to_string(room.offset) + "\n";
  }
  return out;
}

bool decode_rooms(std::string_view text, std::vector<SessionRoom>* rooms) {
  rooms->clear();
  while (!text.empty()) {
    size_t colon = text.find(':');
    size_t length = 0;
    if (colon == std::string_view::npos || !parse_number(text.substr(0, colon), &length))
      return false;
    text.remove_prefix(colon + 1);
    if (text.size() < length + 1 || text[length] != ' ') return false;
    SessionRoom room;
    room.room_id = std::string(text.substr(0, length));
    text.remove_prefix(length + 1);
    size_t space = text.find(' '), newline = text.find('\n');
    if (space == std::string_view::npos || newline == std::string_view::npos || newline < space ||
        !parse_number(text.substr(0, space), &room.epoch) ||
        !parse_number(text.substr(space + 1, newline - space - 1), &room.offset)) {
      return false;
    }
    text.remove_prefix(newline + 1);
    rooms->push_back(std::move(room));
  }
  return true;
}

class RedisBackend final : public Backend {
 public:
  explicit RedisBackend(const RedisOptions& options)
      : connection_(options, {&append_script(), &purge_room_script(), &remember_script(),
                              &rate_take_script()}) {
    connection_.connect_if_closed();  // early, so that last_error() says how it went
  }

  const char* name() const override { return "redis"; }
  const std::string& last_error() const override { return connection_.last_error(); }

  Status begin_batch() override;
  Status commit_batch() override;
  Status append(const StoredMessage& message) override;
  Status read_room(std::string_view room_id, uint64_t epoch, uint64_t after, size_t limit,
                   std::vector<StoredMessage>* out, uint64_t* first_offset) override;
  Status room_state(std::string_view room_id, RoomState* out) override;
  Status put_session(const Session& session) override;
  Status get_session(std::string_view token, int64_t now_ms, Session* out) override;
  Status delete_session(std::string_view token) override;
  Status remember_message_id(std::string_view room_id, std::string_view message_id, uint64_t offset,
                             int64_t window_ms, int64_t now_ms, IdempotencyResult* out) override;
  Status rate_take(std::string_view key, const RateLimit& limit, double cost, int64_t now_ms,
                   RateDecision* out) override;
  Status purge(const Retention& retention, int64_t now_ms) override;

 private:
  Status write(std::vector<RedisCommand> commands);
  Status write(RedisCommand command);
  Status run(std::vector<RedisCommand> commands, std::vector<RedisReply>* replies);
  Status call(RedisCommand command, RedisReply* reply);
  Status flush_batch();
  Status check(const std::vector<RedisReply>& replies);
  Status malformed(std::string_view what);
  Status purge_rooms(const std::vector<std::string>& rooms, const Retention& retention,
                     int64_t now_ms);

  RedisConnection connection_;
  bool batching_ = false;
  Status batch_status_ = Status::kOk;  // the first failure of the batch's queued writes
};

// A batch is a pipeline: its writes are queued in the connection's output buffer and their
// replies read at commit (or before a read that needs its own answer in between).
Status RedisBackend::begin_batch() {
  if (connection_.pending() > 0) flush_batch();  // an abandoned batch: send it anyway
  batching_ = true;
  batch_status_ = connection_.connect_if_closed();
  return batch_status_;
}

Status RedisBackend::commit_batch() {
  flush_batch();
  batching_ = false;
  return std::exchange(batch_status_, Status::kOk);
}

Status RedisBackend::flush_batch() {
  std::vector<RedisReply> replies;
  Status s = connection_.exchange(&replies);
  if (s == Status::kOk) s = check(replies);
  if (batch_status_ == Status::kOk) batch_status_ = s;
  return s;
}

// Writes go into the pipeline in a batch, and out at once otherwise.
Status RedisBackend::write(std::vector<RedisCommand> commands) {
  if (!batching_) {
    std::vector<RedisReply> replies;
    return run(std::move(commands), &replies);
  }
  for (RedisCommand& command : commands) {
    if (Status s = connection_.send(std::move(command)); s != Status::kOk) {
      if (batch_status_ == Status::kOk) batch_status_ = s;
      return s;
    }
  }
  return Status::kOk;
}

Status RedisBackend::write(RedisCommand command) {
  std::vector<RedisCommand> commands;
  commands.push_back(std::move(command));
  return write(std::move(commands));
}

Status RedisBackend::call(RedisCommand command, RedisReply* reply) {
  std::vector<RedisCommand> commands;
  commands.push_back(std::move(command));
  std::vector<RedisReply> replies;
  if (Status s = run(std::move(commands), &replies); s != Status::kOk) return s;
  *reply = std::move(replies[0]);
  return Status::kOk;
}

// Sends `commands` (after what the batch queued) and reads their replies.
Status RedisBackend::run(std::vector<RedisCommand> commands, std::vector<RedisReply>* replies) {
  if (batching_ && connection_.pending() > 0) flush_batch();
  for (RedisCommand& command : commands) {
    if (Status s = connection_.send(std::move(command)); s != Status::kOk) return s;
  }
  if (Status s = connection_.exchange(replies); s != Status::kOk) return s;
  return check(*replies);
}

// kError when a reply (or an element of an EXEC reply) is a Redis error; kConflict for the
// append script's WEIRCONFLICT.
Status RedisBackend::check(const std::vector<RedisReply>& replies) {
  for (const RedisReply& reply : replies) {
    const redisReply* bad = is_error(reply.get()) ? reply.get() : nullptr;
    for (size_t i = 0; !bad && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; ++i) {
      if (is_error(reply->element[i])) bad = reply->element[i];
    }
    if (bad) {
      std::string_view text = reply_text(bad);
      connection_.set_error("redis: " + std::string(text));
      return text.starts_with("WEIRCONFLICT") ? Status::kConflict : Status::kError;
    }
  }
  return Status::kOk;
}

Status RedisBackend::malformed(std::string_view what) {
  connection_.set_error("redis: unexpected reply to " + std::string(what));
  return Status::kError;
}

Status RedisBackend::append(const StoredMessage& message) {
  RedisCommand command = RedisCommand::script(append_script(), 4);
  command.arg(history_key(message.room_id, message.epoch))
      .arg(room_key(message.room_id))
      .arg(epochs_key(message.room_id))
      .arg(kRoomsKey)
      .arg(message.offset)
      .arg(message.epoch)
      .arg(message.payload)
      .arg(message.stored_ms)
      .arg(message.room_id);
  return write(std::move(command));
}

Status RedisBackend::read_room(std::string_view room_id, uint64_t epoch, uint64_t after,
                               size_t limit, std::vector<StoredMessage>* out,
                               uint64_t* first_offset) {
  out->clear();
  *first_offset = 0;
  std::string key = history_key(room_id, epoch);
  std::vector<RedisCommand> commands;
  commands.push_back(RedisCommand{"XRANGE", key, "-", "+", "COUNT", "1"});
  bool want_range = after != UINT64_MAX && limit > 0;
  if (want_range) {
    size_t count = std::min<size_t>(limit, static_cast<size_t>(LLONG_MAX));
    commands.push_back(RedisCommand{"XRANGE", key, std::to_string(after + 1), "+", "COUNT",
                                    std::to_string(count)});
  }
  std::vector<RedisReply> replies;
  if (Status s = run(std::move(commands), &replies); s != Status::kOk) return s;
  const redisReply* oldest = replies[0].get();
  if (oldest->type != REDIS_REPLY_ARRAY) return malformed("XRANGE");
  StoredMessage message;
  if (oldest->elements > 0) {
    if (!parse_entry(oldest->element[0], &message)) return malformed("XRANGE");
    *first_offset = message.offset;
  }
  if (!want_range) return Status::kOk;
  const redisReply* range = replies[1].get();
  if (range->type != REDIS_REPLY_ARRAY) return malformed("XRANGE");
  out->reserve(range->elements);
  for (size_t i = 0; i < range->elements; ++i) {
    message.room_id = std::string(room_id);
    message.epoch = epoch;
    if (!parse_entry(range->element[i], &message)) return malformed("XRANGE");
    out->push_back(std::move(message));
  }
  return Status::kOk;
}

Status RedisBackend::room_state(std::string_view room_id, RoomState* out) {
  RedisReply owned;
  if (Status s = call(RedisCommand{"HMGET", room_key(room_id), "epoch", "last"}, &owned);
      s != Status::kOk) {
    return s;
  }
  const redisReply* reply = owned.get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) return malformed("HMGET");
  if (reply->element[0]->type == REDIS_REPLY_NIL) return Status::kNotFound;
  if (!parse_number(reply_text(reply->element[0]), &out->epoch) ||
      !parse_number(reply_text(reply->element[1]), &out->last_offset)) {
    return malformed("HMGET");
  }
  return Status::kOk;
}

// One transaction, so that the hash never lives without its expiry.
Status RedisBackend::put_session(const Session& session) {
  std::string key = session_key(session.token);
  std::vector<RedisCommand> commands;
  commands.push_back(RedisCommand{"MULTI"});
  commands.push_back(RedisCommand{"HSET", key, "member", session.member_id, "rooms",
                                  encode_rooms(session.rooms), "expires",
                                  std::to_string(session.expires_ms)});
  commands.push_back(RedisCommand{"PEXPIREAT", key, std::to_string(session.expires_ms)});
  commands.push_back(RedisCommand{"EXEC"});
  return write(std::move(commands));
}

Status RedisBackend::get_session(std::string_view token, int64_t now_ms, Session* out) {
  RedisReply owned;
  RedisCommand command{"HMGET", session_key(token), "member", "rooms", "expires"};
  if (Status s = call(std::move(command), &owned); s != Status::kOk) return s;
  const redisReply* reply = owned.get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return malformed("HMGET");
  if (reply->element[0]->type == REDIS_REPLY_NIL) return Status::kNotFound;
  int64_t expires_ms = 0;
  if (!parse_number(reply_text(reply->element[2]), &expires_ms)) return malformed("HMGET");
  if (expires_ms <= now_ms) return Status::kNotFound;
  Session session;
  if (!decode_rooms(reply_text(reply->element[1]), &session.rooms)) return malformed("HMGET");
  session.token = std::string(token);
  session.member_id = std::string(reply_text(reply->element[0]));
  session.expires_ms = expires_ms;
  *out = std::move(session);
  return Status::kOk;
}

Status RedisBackend::delete_session(std::string_view token) {
  return write(RedisCommand{"DEL", session_key(token)});
}

Status RedisBackend::remember_message_id(std::string_view room_id, std::string_view message_id,
                                         uint64_t offset, int64_t window_ms, int64_t now_ms,
                                         IdempotencyResult* out) {
  *out = IdempotencyResult{};
  if (window_ms <= 0) return Status::kOk;  // no window: nothing is a duplicate
  RedisCommand command = RedisCommand::script(remember_script(), 1);
  command.arg(dedupe_key(room_id, message_id)).arg(offset).arg(now_ms).arg(window_ms);
  RedisReply owned;
  if (Status s = call(std::move(command), &owned); s != Status::kOk) return s;
  const redisReply* reply = owned.get();
  if (reply->type == REDIS_REPLY_NIL) return Status::kOk;
  if (reply->type != REDIS_REPLY_STRING || !parse_number(reply_text(reply), &out->offset)) {
    return malformed("the dedupe script");
  }
  out->duplicate = true;
  return Status::kOk;
}

Status RedisBackend::rate_take(std::string_view key, const RateLimit& limit, double cost,
                               int64_t now_ms, RateDecision* out) {
  *out = RateDecision{};
  if (limit.per_second <= 0) return Status::kOk;  // no limit
  RedisCommand command = RedisCommand::script(rate_take_script(), 1);
  command.arg(rate_key(key))
      .arg(now_ms)
      .arg(format_double(1000.0 / limit.per_second))
      .arg(format_double(limit.burst))
      .arg(format_double(cost));
  RedisReply owned;
  if (Status s = call(std::move(command), &owned); s != Status::kOk) return s;
  const redisReply* reply = owned.get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[0]->type != REDIS_REPLY_INTEGER ||
      reply->element[1]->type != REDIS_REPLY_INTEGER) {
    return malformed("the GCRA script");
  }
  out->allowed = reply->element[0]->integer == 1;
  out->retry_after_ms = reply->element[1]->integer;
  return Status::kOk;
}

// History only: sessions and idempotency keys carry their own expiry, and Redis drops them.
// Walks the set of rooms with SSCAN, a page at a time, one pipelined script per room.
Status RedisBackend::purge(const Retention& retention, int64_t now_ms) {
  if (retention.max_messages_per_room == 0 && retention.max_age_ms <= 0) return Status::kOk;
  std::string cursor = "0";
  do {
    RedisReply owned;
    if (Status s = call(RedisCommand{"SSCAN", kRoomsKey, cursor, "COUNT", "100"}, &owned);
        s != Status::kOk) {
      return s;
    }
    const redisReply* page = owned.get();
    if (page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
        page->element[1]->type != REDIS_REPLY_ARRAY) {
      return malformed("SSCAN");
    }
    cursor = std::string(reply_text(page->element[0]));
    std::vector<std::string> rooms;
    for (size_t i = 0; i < page->element[1]->elements; ++i) {
      rooms.emplace_back(reply_text(page->element[1]->element[i]));
    }
    if (Status s = purge_rooms(rooms, retention, now_ms); s != Status::kOk) return s;
  } while (cursor != "0");
  return Status::kOk;
}

Status RedisBackend::purge_rooms(const std::vector<std::string>& rooms, const Retention& retention,
                                 int64_t now_ms) {
  if (rooms.empty()) return Status::kOk;
  std::string cutoff =
      retention.max_age_ms > 0 ? std::to_string(now_ms - retention.max_age_ms) : "";
  std::vector<RedisCommand> commands;
  for (const std::string& room : rooms) {
    RedisCommand command = RedisCommand::script(purge_room_script(), 3);
    command.arg(epochs_key(room))
        .arg(room_key(room))
        .arg(kRoomsKey)
        .arg(room)
        .arg(history_prefix(room))
        .arg(retention.max_messages_per_room)
        .arg(cutoff);
    commands.push_back(std::move(command));
  }
  std::vector<RedisReply> replies;
  return run(std::move(commands), &replies);
}

}  // namespace

std::unique_ptr<Backend> open_redis_backend(const RedisOptions& options, std::string*) {
  return std::make_unique<RedisBackend>(options);
}

std::unique_ptr<Backend> open_redis_backend(std::string_view spec, std::string* error) {
  RedisOptions options;
  if (!parse_redis_spec(spec, &options, error)) return nullptr;
  return open_redis_backend(options, error);
}

}  // namespace weir::store
