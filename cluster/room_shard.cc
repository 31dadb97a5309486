// cluster/room_shard.cc — room ownership, offsets, fanout, and the cross-thread protocol.
#include "cluster/room_shard.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>

#include "cluster/member.h"
#include "cluster/room_service.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "ws/envelope.h"
#include "ws/frame_encoder.h"

namespace weir::cluster {
namespace {

core::Counter g_published("weir_room_messages_total",
                          "Messages published to rooms (offsets assigned)");
core::Counter g_deliveries("weir_room_deliveries_total",
                           "Room messages handed to members' connections");
core::Counter g_batches("weir_room_cross_thread_batches_total",
                        "Mailbox posts carrying batched room traffic");
core::Counter g_joins("weir_room_joins_total", "Room joins confirmed");
core::Gauge g_rooms("weir_rooms", "Rooms with at least one member (owned, summed over threads)");
core::Gauge g_memberships("weir_room_memberships", "Members summed over rooms");

constexpr size_t kMaxSeenIds = 100000;     // message ids a room remembers at most
constexpr size_t kMaxClosedRooms = 65536;  // emptied rooms whose epoch and offsets are kept
constexpr uint64_t kSeedMessages = 10000;  // recent messages whose ids a loading room reads

// --otlp-endpoint: a publish's span runs from the member's message to its offset, in the trace
// the message's traceparent names (API and other nodes' publishes start at the offset).
void trace_publish(const ShardMessage& m, uint64_t offset) {
  core::Span span;
  span.start("room.publish", core::Span::Kind::kServer, m.traceparent, m.tracestate,
             m.trace_start_ns);
  span.add("weir.room.id", m.room_id);
  span.add("weir.room.offset", static_cast<int64_t>(offset));
  span.add("weir.message.bytes", static_cast<int64_t>(m.content.size()));
  span.end();
}

}  // namespace

RoomShard::RoomShard(RoomService& service, core::Reactor& reactor, int index)
    : service_(service), reactor_(reactor), index_(index), outbox_(service.threads()) {
  registration_timer_.set_callback([this] { retry_registrations(); });
}

int RoomShard::owner_of(std::string_view room_id) const {
  return service_.owner_of(room_id);
}

LocalRoom* RoomShard::local_room(std::string_view room_id) {
  auto it = local_.find(room_id);
  return it == local_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------- transport between shards

// Messages to this thread are handled at once; to others they wait in the outbox so one
// mailbox post per destination carries a whole iteration's traffic, in order.
void RoomShard::send(int thread, ShardMessage&& message) {
  if (thread == index_) {
    handle(message);
    return;
  }
  if (outbox_[thread].empty()) reactor_.on_end_of_iteration(this, /*early=*/true);
  outbox_[thread].push_back(std::move(message));
}

void RoomShard::on_end_of_iteration() {
  submit_appends();  // before the outboxes: a join answered below must find them stored
  // By index: fanning out can make a member leave (a slow-consumer disconnect), which flushes
  // and never appends; anything appended all the same is flushed in this loop too.
  for (size_t i = 0; i < pending_rooms_.size(); ++i) {
    auto it = local_by_key_.find(pending_rooms_[i]);
    if (it != local_by_key_.end()) flush_room(*it->second);
  }
  pending_rooms_.clear();
  for (int t = 0; t < static_cast<int>(outbox_.size()); ++t) {
    if (outbox_[t].empty()) continue;
    auto batch = std::make_shared<std::vector<ShardMessage>>(std::move(outbox_[t]));
    outbox_[t].clear();
    RoomShard* target = &service_.shard(t);
    g_batches.inc();
    target->reactor().post([target, batch] { target->receive(*batch); });
  }
}

void RoomShard::receive(std::vector<ShardMessage>& batch) {
  for (ShardMessage& m : batch) handle(m);
}

void RoomShard::handle(ShardMessage& m) {
  using K = ShardMessage::Kind;
  switch (m.kind) {  // a room still reading its state from the store takes its traffic later
    case K::kJoin:
    case K::kLeave:
    case K::kPublish:
    case K::kBlock:
    case K::kFannedOut:
    case K::kInspect:
    case K::kNodeInterest:
    case K::kNodeUninterest:
    case K::kNodePublish:
      if (auto it = owned_.find(m.room_id); it != owned_.end() && it->second.loading) {
        it->second.waiting.push_back(std::move(m));
        return;
      }
      break;
    default:
      break;
  }
  switch (m.kind) {
    case K::kJoin:
      return owner_join(m);
    case K::kLeave:
      return owner_leave(m);
    case K::kPublish:
      return owner_publish(m);
    case K::kBlock:
      return owner_block(m);
    case K::kFannedOut:
      return owner_fanned_out(m);
    case K::kInspect:
      return owner_inspect(m);
    case K::kJoined:
      return on_joined(m);
    case K::kDeliver:
      return on_deliver(m);
    case K::kPaused:
      return on_paused(m, true);
    case K::kResumed:
      return on_paused(m, false);
    case K::kPublished:
    case K::kInspected:
      return on_api_answer(m);
    default:
      return handle_cluster(m);
  }
}

// ---------------------------------------------------------------- owner side

RoomShard::Room& RoomShard::create_room(const std::string& id) {
  const RoomsConfig& config = service_.config();
  Room room;
  room.id = id;
  room.incarnation = next_incarnation_++;
  room.key = service_.new_epoch();
  room.interest.assign(service_.threads(), 0);
  room.transit.assign(service_.threads(), 0);
  room.rate = core::Gcra(config.room_rate_limit, config.room_rate_burst);
  // With history in a store the room continues its stored epoch and offsets (after a restart,
  // or after its last member left) and remembers the message ids of its recent history; the
  // first join waits for both.
  store::Store* store = service_.store();
  if (const std::string* owner = owner_node_of(id)) {  // another node orders it: ask there
    room.owner_node = *owner;
    room.loading = true;
    Room& mirror = owned_.emplace(id, std::move(room)).first->second;
    g_rooms.inc();
    recount(mirror);
    register_interest(mirror);
    return mirror;
  }
  room.loading = store && config.durability != Durability::kNone;
  bool known = false;
  if (auto closed = closed_rooms_.find(id); closed != closed_rooms_.end()) {
    if (store) {  // without a store a room's history ends with it (docs/protocol.md)
      room.epoch = closed->second.state.epoch;
      room.last_offset = room.delivered = closed->second.state.last_offset;
      known = true;
    }
    closed_rooms_.erase(closed);  // its entry in closed_order_ goes when it comes up
  }
  if (!room.loading && room.epoch == 0) room.epoch = service_.new_epoch();
  Room& created = owned_.emplace(id, std::move(room)).first->second;
  g_rooms.inc();
  recount(created);
  if (created.loading && known) {
    load_recent_ids(created);
  } else if (created.loading) {
    store->room_state(id, [this, id, incarnation = created.incarnation](store::Status status,
                                                                        store::RoomState state) {
      room_loaded(id, incarnation, status, state);
    });
  }
  return created;
}

void RoomShard::room_loaded(const std::string& id, uint64_t incarnation, store::Status status,
                            const store::RoomState& state) {
  auto it = owned_.find(id);
  if (it == owned_.end() || it->second.incarnation != incarnation) return;
  Room& room = it->second;
  if (mirrors(room)) return;  // it moved to another node meanwhile: that node answers now
  uint64_t epoch = 0, offset = 0;
  // A state behind the fence's floor (see fence()) is not the room's latest: start above it.
  bool current = state.epoch > room.floor_epoch ||
                 (state.epoch == room.floor_epoch && state.last_offset >= room.floor_offset);
  if (status == store::Status::kOk && state.epoch != 0 && current) {
    epoch = state.epoch;
    offset = state.last_offset;
  } else {
    epoch = epoch_after(room.floor_epoch);
    if (status != store::Status::kOk && status != store::Status::kNotFound)
      log_warn("room %s: store unavailable (%s), starting a new epoch", id.c_str(),
               store::to_string(status));
  }
  continue_room(room, epoch, offset);  // a room this node mirrored until now tells its members
  load_recent_ids(room);
}

// --dedupe-window across restarts and emptied rooms: the message ids of the room's recent
// history (at most kSeedMessages, those stored within the window) go back into `seen`.
void RoomShard::load_recent_ids(Room& room) {
  const int64_t window = service_.config().dedupe_window_ms;
  if (window <= 0 || room.last_offset == 0) return finish_loading(room);
  uint64_t count = std::min<uint64_t>(room.last_offset, kSeedMessages);
  service_.store()->read_room(
      room.id, room.epoch, room.last_offset - count, count,
      [this, id = room.id, incarnation = room.incarnation](
          store::Status status, std::vector<store::StoredMessage> messages, uint64_t) {
        auto it = owned_.find(id);
        if (it == owned_.end() || it->second.incarnation != incarnation) return;
        if (mirrors(it->second)) return;
        if (status == store::Status::kOk) seed_seen_ids(it->second, messages);
        finish_loading(it->second);
      });
}

void RoomShard::seed_seen_ids(Room& room, const std::vector<store::StoredMessage>& messages) {
  static thread_local simdjson::dom::parser parser;
  const int64_t window = service_.config().dedupe_window_ms;
  const int64_t wall = core::wall_ms(), mono = core::monotonic_ms();
  for (const store::StoredMessage& m : messages) {
    int64_t left = m.stored_ms + window - wall;
    if (left <= 0) continue;
    std::string_view message_id;
    simdjson::dom::element doc;
    if (parser.parse(m.payload).get(doc) ||
        doc["message"]["message_id"].get_string().get(message_id))
      continue;
    auto [it, fresh] = room.seen.try_emplace(std::string(message_id), m.offset);
    if (fresh) room.seen_order.emplace_back(mono + left, it->first);
  }
}

void RoomShard::finish_loading(Room& room) {
  room.loading = false;
  std::vector<ShardMessage> waiting;
  waiting.swap(room.waiting);
  if (waiting.empty()) return;  // loaded at once for the join that created it: it counts next
  std::string id = room.id;
  for (ShardMessage& m : waiting) handle(m);  // `room` may be gone after any of these
  close_if_unused(id);                        // loaded for traffic that needed nobody here
}

RoomShard::Room* RoomShard::room_for(ShardMessage& m) {
  if (auto it = owned_.find(m.room_id); it != owned_.end()) return &it->second;
  Room& created = create_room(m.room_id);
  if (!created.loading) return &created;
  created.waiting.push_back(std::move(m));
  return nullptr;
}

void RoomShard::owner_join(ShardMessage& m) {
  Room* found = room_for(m);
  if (!found) return;
  Room& room = *found;
  submit_appends();  // what the joiner's offset covers is in the store before it can read
  room.interest[m.from_thread]++;
  room.members++;
  g_memberships.inc();
  ShardMessage reply{ShardMessage::Kind::kJoined};
  reply.room_id = room.id;
  reply.room_key = room.key;
  reply.epoch = room.epoch;
  reply.offset = room.delivered;  // sync: what is still being committed reaches it after this
  reply.member_id = m.member_id;
  // A member joining a paused room must learn it; kJoined then kPaused keep that order.
  bool paused = room.blocked > 0;
  send(m.from_thread, std::move(reply));
  if (paused) {
    ShardMessage pause{ShardMessage::Kind::kPaused};
    pause.room_key = room.key;
    send(m.from_thread, std::move(pause));
  }
}

void RoomShard::owner_leave(ShardMessage& m) {
  auto it = owned_.find(m.room_id);
  if (it == owned_.end()) return;
  Room& room = it->second;
  if (room.interest[m.from_thread] > 0) room.interest[m.from_thread]--;
  if (room.interest[m.from_thread] == 0 && !room.transit.empty()) {
    room.transit[m.from_thread] = 0;  // no members there: what is in transit is dropped there
    release_transit_hold(room);
  }
  if (room.members > 0) room.members--;
  g_memberships.dec();
  close_if_unused(m.room_id);  // no empty room lingers; with a store, the next join continues it
}

void RoomShard::remember_closed(const Room& room) {
  if (!service_.store() || room.loading) return;
  closed_rooms_[room.id] = ClosedRoom{{room.epoch, room.last_offset}, ++closed_seq_};
  closed_order_.emplace_back(room.id, closed_seq_);
  while (closed_order_.size() > kMaxClosedRooms) {
    auto& [id, seq] = closed_order_.front();
    auto oldest = closed_rooms_.find(id);
    if (oldest != closed_rooms_.end() && oldest->second.seq == seq) closed_rooms_.erase(oldest);
    closed_order_.pop_front();
  }
}

void RoomShard::erase_room(RoomMap::iterator it) {
  if (it->second.counted_ordering) service_.count_ordered(-1);
  owned_.erase(it);
  g_rooms.dec();
}

void RoomShard::recount(Room& room) {
  bool ordering = !mirrors(room);
  if (ordering == room.counted_ordering) return;
  room.counted_ordering = ordering;
  service_.count_ordered(ordering ? 1 : -1);
}

RoomShard::PublishOrigin RoomShard::origin_of(const ShardMessage& m) {
  PublishOrigin o;
  o.thread = m.from_thread;
  o.request_id = m.request_id;
  o.member_id = m.member_id;
  o.bytes = m.content.size();
  if (m.kind == ShardMessage::Kind::kNodePublish) {  // another node's: answered over the link
    o.node = m.node;
    o.room_id = m.room_id;
    o.wants_result = m.status & kWireWantsResult;
    return o;
  }
  if (!m.request_id) {  // a member names the message in its error
    o.room_id = m.room_id;
    o.message_id = m.message_id;
  }
  return o;
}

void RoomShard::answer_publish(const PublishOrigin& to, int status, uint64_t offset, uint64_t epoch,
                               int64_t retry_ms) {
  if (!to.node.empty()) {
    if (status == 200 && !to.wants_result) return;  // its kDeliver carried the request id
    RoomWireMessage wire;
    wire.type = RoomWireType::kPublishResult;
    wire.room = to.room_id;
    wire.request = to.request_id;
    wire.status = status;
    wire.offset = offset;
    wire.epoch = epoch;
    wire.retry_ms = retry_ms;
    return send_to_node(to.node, wire);
  }
  if (!to.request_id && status == 200) return;  // a member hears of success by its own copy
  ShardMessage answer{ShardMessage::Kind::kPublished};
  answer.request_id = to.request_id;
  answer.member_id = to.member_id;
  answer.room_id = to.room_id;
  answer.message_id = to.message_id;
  answer.members = to.bytes;
  answer.status = status;
  answer.offset = offset;
  answer.epoch = epoch;
  answer.delta = retry_ms;
  send(to.thread, std::move(answer));
}

// Assigns the next offset, encodes once, and hands the one frame to every thread with members
// (with sync durability, once the store committed it).
void RoomShard::owner_publish(ShardMessage& m) {
  auto it = owned_.find(m.room_id);
  const bool from_node = m.kind == ShardMessage::Kind::kNodePublish;
  if (it == owned_.end()) {
    // The HTTP API published to a room with no members here: another node may order it.
    if (const std::string* owner = owner_node_of(m.room_id); owner && !from_node)
      return forward_publish(*owner, m);
    // The HTTP API published to a room nobody is in, or a member's publish crossed the room's
    // end: either way the sender hears of it (a member counts it as no longer in flight).
    return answer_publish(origin_of(m), 404, 0, 0);
  }
  Room& room = it->second;
  if (mirrors(room)) {  // another node orders the room
    // Not registered (the owner moved, or its link dropped): the owner would not send our
    // copy here, so the sender hears 503 now and sends it again once we are registered.
    if (from_node || !room.registered) return answer_publish(origin_of(m), 503, 0, 0);
    return forward_publish(room.owner_node, m);
  }
  if (m.request_id && room.blocked > 0)  // backpressure: API publishers wait too
    return answer_publish(origin_of(m), 503, 0, 0);
  if (room.rate.limited() && !m.rate_checked) {
    if (shared_rate_limit()) {  // the limit holds across nodes: ask Redis, in order
      const RoomsConfig& config = service_.config();
      room.rate_waiting.push_back(std::move(m));
      service_.store()->rate_take("room:" + room.id,
                                  store::RateLimit{config.room_rate_limit, config.room_rate_burst},
                                  1, core::wall_ms(),
                                  [this, id = room.id, incarnation = room.incarnation](
                                      store::Status status, store::RateDecision decision) {
                                    on_rate_decision(id, incarnation, status, decision);
                                  });
      return;
    }
    int64_t retry_ns = 0;
    if (!room.rate.take(core::monotonic_ns(), &retry_ns))
      return answer_publish(origin_of(m), 429, 0, room.epoch, retry_ns / 1'000'000 + 1);
  }
  uint64_t original = 0;
  if (is_duplicate(room, m, &original))
    return answer_publish(origin_of(m), 409, original, room.epoch);
  uint64_t offset = ++room.last_offset;
  g_published.inc();
  if (core::tracing_enabled()) trace_publish(m, offset);
  Frame frame = encode(room, m, offset);
  const Durability durability = service_.config().durability;
  if (durability == Durability::kSync && service_.store()) {
    persist(room, frame);
    to_commit_.push_back(Committing{std::move(frame), room.id, room.incarnation, room.epoch,
                                    origin_of(m), m.client_message_id});
    return;
  }
  PublishOrigin origin = origin_of(m);
  deliver_published(room, frame, &origin);
  if (durability == Durability::kAsync && service_.store()) persist(room, frame);
  answer_publish(origin, 200, offset, room.epoch);
}

// Sync durability: a batch of this shard's appends committed (or not); completions arrive in
// submission order, one per batch.
void RoomShard::on_committed(store::Status status) {
  if (committing_.empty()) return;
  std::vector<Committing> batch = std::move(committing_.front());
  committing_.pop_front();
  std::vector<std::string> conflicted;
  for (Committing& c : batch) {
    auto found = owned_.find(c.room_id);
    Room* r = found != owned_.end() && found->second.incarnation == c.incarnation ? &found->second
                                                                                  : nullptr;
    // A fenced room (loading again) delivers nothing it ordered before the fence: the reload
    // tells its members what the store holds, this message included if it was stored.
    bool fenced = r && r->loading;
    if (status != store::Status::kOk || fenced) {  // never delivered: the offset stays unused
      if (r && c.dedupe) r->seen.erase(c.origin.message_id);  // the reload reads stored ids
      bool moved = status == store::Status::kConflict || (status == store::Status::kOk && fenced);
      answer_publish(c.origin, moved ? 503 : 507, 0, c.epoch);
      if (status == store::Status::kConflict && r && !r->loading && !mirrors(*r))
        conflicted.push_back(c.room_id);
      continue;
    }
    if (r) deliver_published(*r, c.frame, &c.origin);
    answer_publish(c.origin, 200, c.frame.room_offset, c.epoch);
  }
  // A batch fails as a whole: each of its rooms reloads, and those nobody else wrote to just
  // continue where they were.
  for (const std::string& id : conflicted) {
    auto it = owned_.find(id);
    if (it != owned_.end() && !it->second.loading) fence(it->second, 0, 0, "store_conflict");
  }
}

void RoomShard::submit_appends() {
  if (appends_.empty()) return;
  store::Store* store = service_.store();
  if (to_commit_.empty()) {
    store->append_batch(std::move(appends_), nullptr);  // async: nothing waits for it
  } else {
    committing_.push_back(std::move(to_commit_));
    to_commit_.clear();
    store->append_batch(std::move(appends_), [this](store::Status s) { on_committed(s); });
  }
  appends_.clear();
}

void RoomShard::deliver_published(Room& room, const Frame& frame, const PublishOrigin* origin) {
  room.delivered = frame.room_offset;
  broadcast(room, ShardMessage::Kind::kDeliver, &frame);
  forward_to_nodes(room, frame, origin);
  if (service_.config().policy == SlowConsumerPolicy::kBackpressure) count_transit(room, frame);
}

// The envelope exactly as members receive it, without the frame header; submitted with the
// rest of this iteration's appends.
void RoomShard::persist(const Room& room, const Frame& frame) {
  store::StoredMessage& stored = appends_.emplace_back();
  if (appends_.size() == 1) reactor_.on_end_of_iteration(this, /*early=*/true);
  stored.room_id = room.id;
  stored.epoch = room.epoch;
  stored.offset = frame.room_offset;
  stored.payload.assign(envelope_of(frame));
  stored.stored_ms = core::wall_ms();
}

bool RoomShard::shared_rate_limit() const {
  store::Store* store = service_.store();
  return store && std::strcmp(store->backend_name(), "redis") == 0;
}

// Decisions come back in request order, so each is the oldest waiting publish's. When Redis
// cannot answer, the local GCRA decides: the limit then holds per node until it returns.
void RoomShard::on_rate_decision(const std::string& id, uint64_t incarnation, store::Status status,
                                 store::RateDecision decision) {
  auto it = owned_.find(id);
  if (it == owned_.end() || it->second.incarnation != incarnation) return;
  Room& room = it->second;
  if (room.rate_waiting.empty() || mirrors(room)) return;
  ShardMessage m = std::move(room.rate_waiting.front());
  room.rate_waiting.pop_front();
  int64_t retry_ms = decision.retry_after_ms;
  bool allowed = decision.allowed;
  if (status != store::Status::kOk) {
    int64_t retry_ns = 0;
    allowed = room.rate.take(core::monotonic_ns(), &retry_ns);
    retry_ms = retry_ns / 1'000'000;
  }
  if (!allowed)
    return answer_publish(origin_of(m), 429, 0, room.epoch, std::max<int64_t>(1, retry_ms));
  m.rate_checked = true;
  owner_publish(m);
}

// --dedupe-window over client-given message ids: the room's owner is the one place that sees
// every publish to it, so a map here is exact for this node.
bool RoomShard::is_duplicate(Room& room, const ShardMessage& m, uint64_t* offset) {
  const int64_t window = service_.config().dedupe_window_ms;
  if (!m.client_message_id || window <= 0) return false;
  const int64_t now = core::monotonic_ms();
  while (!room.seen_order.empty() &&
         (room.seen_order.front().first <= now || room.seen_order.size() > kMaxSeenIds)) {
    auto expired = room.seen.find(room.seen_order.front().second);
    if (expired != room.seen.end()) room.seen.erase(expired);
    room.seen_order.pop_front();
  }
  auto [it, fresh] = room.seen.try_emplace(m.message_id, room.last_offset + 1);
  if (!fresh) {
    *offset = it->second;
    return true;
  }
  room.seen_order.emplace_back(now + window, m.message_id);
  return false;
}

Frame RoomShard::encode(const Room& room, const ShardMessage& m, uint64_t offset) {
  ws::OutboundMessage out;
  out.target = room.id;
  out.content = m.content;
  out.message_id = m.message_id;
  out.sent_at = m.sent_at;
  out.sender = m.sender;
  out.traceparent = m.traceparent;
  out.tracestate = m.tracestate;
  out.offset = offset;
  out.epoch = room.epoch;
  size_t bound = ws::message_encoded_bound(out);
  core::SharedBuffer buffer = core::SharedBuffer::allocate(kFrameHeaderRoom + bound);
  char* json = buffer.mutable_data() + kFrameHeaderRoom;
  size_t len = ws::encode_message_to(json, out);
  size_t header = ws::frame_header_size(len, false);
  ws::encode_frame_header(json - header, ws::Opcode::kText, true, false, len, nullptr);
  buffer.set_size(kFrameHeaderRoom + len);
  Frame frame;
  frame.buffer = std::move(buffer);
  frame.offset = static_cast<uint32_t>(kFrameHeaderRoom - header);
  frame.length = static_cast<uint32_t>(header + len);
  frame.room_offset = offset;
  frame.sender = m.member_id;
  frame.sender_bytes = static_cast<uint32_t>(m.content.size());
  return frame;
}

void RoomShard::broadcast(const Room& room, ShardMessage::Kind kind, const Frame* frame) {
  for (int t = 0; t < static_cast<int>(room.interest.size()); ++t) {
    if (room.interest[t] == 0) continue;
    ShardMessage out{kind};
    out.room_key = room.key;
    if (frame) out.frame = *frame;  // a reference, not a copy of the bytes
    send(t, std::move(out));
  }
}

void RoomShard::owner_block(ShardMessage& m) {
  auto it = owned_.find(m.room_id);
  if (it != owned_.end()) apply_block(it->second, m.delta);
}

void RoomShard::apply_block(Room& room, int64_t delta) {
  int64_t before = room.blocked;
  room.blocked = std::max<int64_t>(0, room.blocked + delta);
  if (before == 0 && room.blocked > 0) broadcast(room, ShardMessage::Kind::kPaused, nullptr);
  if (before > 0 && room.blocked == 0) broadcast(room, ShardMessage::Kind::kResumed, nullptr);
}

// Backpressure policy: what other threads have not yet fanned out counts against the room.
void RoomShard::count_transit(Room& room, const Frame& frame) {
  for (int t = 0; t < static_cast<int>(room.interest.size()); ++t)
    if (t != index_ && room.interest[t] > 0) room.transit[t] += frame.length;
  if (room.transit_hold) return;
  for (uint64_t bytes : room.transit) {
    if (bytes <= kTransitCap) continue;
    room.transit_hold = true;
    apply_block(room, 1);
    return;
  }
}

// Releases the transit hold at half the cap, so a busy room is not paused and resumed on
// every fan-out.
void RoomShard::owner_fanned_out(ShardMessage& m) {
  auto it = owned_.find(m.room_id);
  if (it == owned_.end()) return;
  Room& room = it->second;
  uint64_t& bytes = room.transit[m.from_thread];
  bytes -= std::min<uint64_t>(bytes, static_cast<uint64_t>(m.delta));
  release_transit_hold(room);
}

void RoomShard::release_transit_hold(Room& room) {
  if (!room.transit_hold) return;
  for (uint64_t b : room.transit)
    if (b > kTransitCap / 2) return;
  room.transit_hold = false;
  apply_block(room, -1);
}

void RoomShard::owner_inspect(ShardMessage& m) {
  ShardMessage answer{ShardMessage::Kind::kInspected};
  answer.request_id = m.request_id;
  auto it = owned_.find(m.room_id);
  if (it == owned_.end()) {
    answer.status = 404;
  } else {
    answer.status = 200;
    answer.members = it->second.members;
    answer.offset = it->second.delivered;
    answer.epoch = it->second.epoch;
  }
  send(m.from_thread, std::move(answer));
}

// ---------------------------------------------------------------- member side

void RoomShard::add_member(Member& member) {
  members_[member.id()] = &member;
}

void RoomShard::remove_member(Member& member) {
  for (const std::string& room_id : member.room_ids()) {
    if (LocalRoom* room = local_room(room_id)) leave_local(member, *room);
  }
  members_.erase(member.id());  // joins still in flight are undone when their answer arrives
}

void RoomShard::join(Member& member, std::string_view room_id) {
  ShardMessage m{ShardMessage::Kind::kJoin};
  m.room_id = room_id;
  m.member_id = member.id();
  m.from_thread = index_;
  send(owner_of(room_id), std::move(m));
}

void RoomShard::on_joined(ShardMessage& m) {
  auto member_it = members_.find(m.member_id);
  if (member_it == members_.end() || !member_it->second->is_joining(m.room_id)) {
    // The member left or went away while the join travelled: undo the owner's count.
    ShardMessage undo{ShardMessage::Kind::kLeave};
    undo.room_id = m.room_id;
    undo.from_thread = index_;
    send(owner_of(m.room_id), std::move(undo));
    return;
  }
  auto [it, created] = local_.try_emplace(m.room_id);
  LocalRoom& room = it->second;
  // Frames still pending were assigned offsets before this join: the room's members take them
  // now, and the new member starts after m.offset as its room_joined will say.
  if (!created) flush_room(room);
  if (created) {
    room.id = m.room_id;
    room.key = m.room_key;
    local_by_key_[room.key] = &room;
  }
  room.members.push_back(member_it->second);
  g_joins.inc();
  // Backpressure policy: a member already above its high watermark holds its new room too, so
  // the release it later sends to every room it is in has a matching hold here. Read before
  // joined(): if room_joined itself crosses the watermark, on_backpressure counts this room.
  Member& member = *member_it->second;
  bool holds = service_.config().policy == SlowConsumerPolicy::kBackpressure &&
               member.session().above_high_watermark();
  member.joined(room, m.offset, m.epoch);
  if (holds) {
    ShardMessage hold{ShardMessage::Kind::kBlock};
    hold.room_id = m.room_id;
    hold.delta = 1;
    send(owner_of(m.room_id), std::move(hold));
  }
}

// Backpressure policy: a member above its high watermark holds the room paused; leaving must
// release that hold (before the leave reaches the owner), or the room's publishers stay paused
// for good. A closing member releases its holds in Member::on_close instead.
void RoomShard::leave(Member& member, std::string_view room_id) {
  LocalRoom* room = local_room(room_id);
  if (!room) return;
  // What arrived before the leave goes out first; it may push the member over its watermark,
  // so the hold is read after it.
  flush_room(*room);
  room = local_room(room_id);
  if (!room) return;
  auto& members = room->members;
  if (std::find(members.begin(), members.end(), &member) == members.end()) return;
  if (service_.config().policy == SlowConsumerPolicy::kBackpressure &&
      member.session().above_high_watermark()) {
    ShardMessage release{ShardMessage::Kind::kBlock};
    release.room_id = room->id;
    release.delta = -1;
    send(owner_of(room_id), std::move(release));
  }
  leave_local(member, *room);
}

void RoomShard::leave_local(Member& member, LocalRoom& local) {
  uint64_t key = local.key;
  flush_room(local);  // a member that fanning out disconnects comes back here first
  auto found = local_by_key_.find(key);
  if (found == local_by_key_.end()) return;
  LocalRoom& room = *found->second;
  auto& v = room.members;
  auto pos = std::find(v.begin(), v.end(), &member);
  if (pos == v.end()) return;
  *pos = v.back();
  v.pop_back();
  member.forget_room(room.id);
  ShardMessage m{ShardMessage::Kind::kLeave};
  m.room_id = room.id;
  m.from_thread = index_;
  std::string id = room.id;
  if (v.empty()) {
    ++erased_rooms_;
    local_by_key_.erase(room.key);
    local_.erase(room.id);  // `room` is gone from here on
  }
  send(owner_of(id), std::move(m));
}

void RoomShard::publish(Member& member, std::string_view room_id, std::string_view content,
                        std::string_view message_id, bool client_id, std::string_view sent_at,
                        std::string_view traceparent, std::string_view tracestate) {
  ShardMessage m{ShardMessage::Kind::kPublish};
  m.room_id = room_id;
  m.content = content;
  m.message_id = message_id;
  m.client_message_id = client_id;
  m.sent_at = sent_at;
  m.sender = member.name();
  m.traceparent = traceparent;
  m.tracestate = tracestate;
  m.member_id = member.id();
  m.from_thread = index_;
  if (core::tracing_enabled()) m.trace_start_ns = core::wall_ns();
  send(owner_of(room_id), std::move(m));
}

// Gathers the room's frames until the end of the iteration (see the header).
void RoomShard::on_deliver(ShardMessage& m) {
  auto it = local_by_key_.find(m.room_key);
  if (it == local_by_key_.end()) return;  // the last local member left meanwhile
  LocalRoom& room = *it->second;
  if (room.pending.empty()) {
    pending_rooms_.push_back(room.key);
    reactor_.on_end_of_iteration(this, /*early=*/true);
  }
  room.pending.push_back(std::move(m.frame));
}

// In membership order. A member that the slow-consumer policy disconnects removes itself
// during the loop (its slot then holds the member that was last, which is visited next), and
// may empty and erase the room.
void RoomShard::flush_room(LocalRoom& room) {
  if (room.pending.empty()) return;
  std::vector<Frame> frames;
  frames.swap(room.pending);
  core::Span span;  // --otlp-endpoint: one per room per pass
  const bool traced = core::tracing_enabled();
  if (traced) {
    span.start("room.fanout", core::Span::Kind::kInternal);
    span.add("weir.room.id", room.id);
  }
  FrameBatch batch;
  batch.frames = frames;
  for (const Frame& f : frames) batch.text_bytes += envelope_of(f).size();
  core::SharedBuffer joined;
  if (frames.size() == 1) {
    batch.buffer = &frames[0].buffer;
    batch.offset = frames[0].offset;
    batch.length = frames[0].length;
  } else {
    size_t total = 0;
    for (const Frame& f : frames) total += f.length;
    joined = core::SharedBuffer::allocate(total);
    char* out = joined.mutable_data();
    for (const Frame& f : frames) {
      std::memcpy(out, f.buffer.data() + f.offset, f.length);
      out += f.length;
    }
    joined.set_size(total);
    batch.buffer = &joined;
    batch.length = static_cast<uint32_t>(total);
  }
  const uint64_t key = room.key;
  // Backpressure policy: the owner counts these bytes as in transit until told otherwise.
  const bool report =
      service_.config().policy == SlowConsumerPolicy::kBackpressure && owner_of(room.id) != index_;
  const std::string room_id = report ? room.id : std::string();
  LocalRoom* r = &room;
  uint64_t handed = 0;
  uint64_t erased_before = erased_rooms_;
  for (size_t i = 0; i < r->members.size();) {
    Member* member = r->members[i];
    if (i + 1 < r->members.size()) __builtin_prefetch(r->members[i + 1]);
    member->deliver(*r, batch);
    ++handed;
    if (erased_rooms_ != erased_before) {  // a disconnect emptied some room: is it this one?
      auto still = local_by_key_.find(key);
      if (still == local_by_key_.end()) break;
      r = still->second;
      erased_before = erased_rooms_;
    }
    if (i < r->members.size() && r->members[i] == member) ++i;
  }
  g_deliveries.inc(handed * frames.size());
  if (traced) {
    span.add("weir.room.members", static_cast<int64_t>(handed));
    span.add("weir.room.frames", static_cast<int64_t>(frames.size()));
    span.end();
  }
  if (auto still = local_by_key_.find(key); still != local_by_key_.end()) {
    LocalRoom& room_after = *still->second;
    room_after.last_offset = frames.back().room_offset;
    if (room_after.pending.empty()) {  // the vector goes back, capacity and all
      frames.clear();
      room_after.pending.swap(frames);
    }
  }
  if (report) {  // after the deliveries: a member they pushed over its watermark is counted first
    ShardMessage done{ShardMessage::Kind::kFannedOut};
    done.room_id = room_id;
    done.delta = batch.length;
    done.from_thread = index_;
    send(owner_of(room_id), std::move(done));
  }
}

void RoomShard::member_blocked(Member& member, bool blocked) {
  for (const std::string& room_id : member.room_ids()) {
    ShardMessage m{ShardMessage::Kind::kBlock};
    m.room_id = room_id;
    m.delta = blocked ? 1 : -1;
    send(owner_of(room_id), std::move(m));
  }
}

void RoomShard::on_paused(ShardMessage& m, bool paused) {
  auto it = local_by_key_.find(m.room_key);
  if (it == local_by_key_.end()) return;
  LocalRoom& room = *it->second;
  room.paused = paused;
  if (paused) return;
  std::vector<uint64_t> publishers;
  publishers.swap(room.paused_publishers);
  for (uint64_t id : publishers) {
    auto member = members_.find(id);
    if (member != members_.end()) member->second->resume_reading_for_room();
  }
}

// ---------------------------------------------------------------- HTTP API

void RoomShard::api_publish(std::string room_id, std::string content, std::string message_id,
                            bool client_id, std::string traceparent, std::string tracestate,
                            PublishDone done) {
  uint64_t request = next_request_++;
  pending_publish_[request] = std::move(done);
  ShardMessage m{ShardMessage::Kind::kPublish};
  m.client_message_id = client_id;
  m.room_id = std::move(room_id);
  m.content = std::move(content);
  m.message_id = std::move(message_id);
  char now[40];
  m.sent_at.assign(now, core::format_rfc3339_ms(core::wall_ms(), now, sizeof now));
  m.sender = "api";
  m.traceparent = std::move(traceparent);
  m.tracestate = std::move(tracestate);
  m.request_id = request;
  m.from_thread = index_;
  int owner = owner_of(m.room_id);
  send(owner, std::move(m));
}

void RoomShard::api_inspect(std::string room_id, InspectDone done) {
  uint64_t request = next_request_++;
  pending_inspect_[request] = std::move(done);
  ShardMessage m{ShardMessage::Kind::kInspect};
  m.room_id = std::move(room_id);
  m.request_id = request;
  m.from_thread = index_;
  int owner = owner_of(m.room_id);
  send(owner, std::move(m));
}

void RoomShard::on_api_answer(ShardMessage& m) {
  if (m.kind == ShardMessage::Kind::kPublished && m.request_id == 0) {  // not delivered
    auto member = members_.find(m.member_id);
    if (member != members_.end()) member->second->publish_refused(m);
    return;
  }
  if (m.kind == ShardMessage::Kind::kPublished) {
    auto it = pending_publish_.find(m.request_id);
    if (it == pending_publish_.end()) return;
    PublishDone done = std::move(it->second);
    pending_publish_.erase(it);
    done(m.status, m.status == 429 ? static_cast<uint64_t>(m.delta) : m.offset, m.epoch);
    return;
  }
  auto it = pending_inspect_.find(m.request_id);
  if (it == pending_inspect_.end()) return;
  InspectDone done = std::move(it->second);
  pending_inspect_.erase(it);
  done(m.status, m.members, m.offset, m.epoch);
}

}  // namespace weir::cluster
