// cluster/member.cc — the rooms protocol for one connection.
#include "cluster/member.h"

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "cluster/room_service.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

namespace weir::cluster {
namespace {

core::Counter g_disconnects("weir_slow_consumer_actions_total",
                            "Slow-consumer policy actions, by action", "action=\"disconnect\"");
core::Counter g_skipped("weir_slow_consumer_actions_total",
                        "Slow-consumer policy actions, by action", "action=\"skip\"");
core::Counter g_lagged("weir_slow_consumer_actions_total",
                       "Slow-consumer policy actions, by action", "action=\"lagged_notice\"");
core::Counter g_paused("weir_slow_consumer_actions_total",
                       "Slow-consumer policy actions, by action", "action=\"pause_publisher\"");
core::Counter g_in_flight_pauses(
    "weir_publisher_in_flight_pauses_total",
    "Backpressure policy: publishers paused for too many messages in flight");
core::Counter g_errors("weir_protocol_errors_total", "Error envelopes sent to clients");
core::Gauge g_members("weir_members", "Connections speaking the rooms protocol");
// Sampled, not observed per delivery: every 64th room delivery on a thread records the queue
// it joins, which costs a branch per delivery and shows how deep members' queues run.
core::Histogram g_queued_bytes("weir_member_queued_bytes",
                               "Bytes queued on a member's connection when a room delivery "
                               "reaches it (every 64th delivery per thread)",
                               {0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216});
thread_local uint32_t t_deliveries = 0;

// Room for a close frame after the limit: the disconnect policy stops short of max-buffer so
// its "slow consumer" close can still be queued.
constexpr size_t kCloseReserve = 256;

std::atomic<uint64_t> g_next_member{1};
// One per reactor thread, made on first use and freed when the thread exits.
ws::EnvelopeDecoder& decoder() {
  thread_local ws::EnvelopeDecoder t_decoder;
  return t_decoder;
}

// Member ids outlive the process in stored sessions, so they are random, not a counter.
std::string random_member_name() {
  unsigned char bytes[8];
  RAND_bytes(bytes, sizeof bytes);
  char hex[18] = "m";
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 1 + 2 * i, 3, "%02x", bytes[i]);
  return std::string(hex, 17);
}

core::Counter g_resumes("weir_session_resumes_total", "Session resumes, by result",
                        "result=\"ok\"");
core::Counter g_resume_failures("weir_session_resumes_total", "Session resumes, by result",
                                "result=\"refused\"");
core::Counter g_replayed("weir_replayed_messages_total", "Messages replayed to resuming members");
core::Counter g_rate_limited("weir_rate_limited_total", "Messages refused by --rate-limit");
constexpr const char* kAclHelp = "Joins and publishes refused by the token's room ACL, by action";
core::Counter g_acl_join("weir_acl_denied_total", kAclHelp, "action=\"join\"");
core::Counter g_acl_publish("weir_acl_denied_total", kAclHelp, "action=\"publish\"");
core::Counter g_rooms_limit("weir_limit_refusals_total", "Requests refused by a limit, by limit",
                            "limit=\"rooms_per_connection\"");
core::Counter g_refreshes("weir_auth_refreshes_total", "Token refreshes, by result",
                          "result=\"ok\"");
core::Counter g_refresh_failures("weir_auth_refreshes_total", "Token refreshes, by result",
                                 "result=\"refused\"");
core::Counter g_expired_closes("weir_auth_expired_closes_total",
                               "Members closed (1008) because their token expired unrefreshed");

// The names random_member_name() gives: "m" and 16 hex digits.
bool is_random_member_name(std::string_view name) {
  if (name.size() != 17 || name[0] != 'm') return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

Member::Member(RoomService& service, ws::WebSocketSession& session, std::string resume_token,
               Identity identity, const Authenticator* auth)
    : service_(service),
      shard_(service.local()),
      session_(&session),
      id_(g_next_member.fetch_add(1, std::memory_order_relaxed)),
      name_(identity.authenticated ? identity.sub : random_member_name()),
      resume_at_open_(std::move(resume_token)),
      self_(std::make_shared<Member*>(this)),
      rate_(service.config().rate_limit, service.config().rate_burst),
      strikes_(1, 20),
      identity_(std::move(identity)),
      auth_(auth) {
  expires_ms_ = core::wall_ms() + service.config().session_ttl_ms;
  token_ = service.tokens().issue(name_, expires_ms_);
  shard_.add_member(*this);
  grace_timer_.set_callback([this] { on_grace_timer(); });
  expiry_timer_.set_callback([this] { on_token_expiry(); });
  g_members.inc();
}

Member::~Member() {
  *self_ = nullptr;
  if (!closed_) {
    save_session();
    closed_ = true;
    shard_.remove_member(*this);
  }
  g_members.dec();
}

void Member::on_open(ws::WebSocketSession&) {
  arm_expiry_timer();
  if (!resume_at_open_.empty()) return start_resume(std::move(resume_at_open_), {}, true);
  send_session({});
  save_session();
}

void Member::send_session(std::span<const std::string_view> rooms) {
  scratch_.clear();
  ws::encode_session(&scratch_, token_, name_, rooms);
  send_text(scratch_);
}

// The session as a later resume will find it: its rooms, each at the offset of the last
// message handed to this connection (frames still queued in the socket when it died count as
// handed: a client that tracks its offsets and resumes with them loses nothing).
void Member::save_session() {
  store::Store* store = service_.store();
  if (!store) return;
  store::Session s;
  s.token = token_;
  s.member_id = name_;
  s.expires_ms = expires_ms_;
  for (const Joined& j : rooms_) {
    uint64_t offset = j.joined_offset;
    if (j.replaying) {
      offset = j.replay_from;
    } else if (j.skipping) {
      offset = j.skipped_from - 1;
    } else if (LocalRoom* room = shard_.local_room(j.room_id)) {
      offset = std::max(offset, room->last_offset);
    }
    s.rooms.push_back(store::SessionRoom{j.room_id, j.epoch, offset});
  }
  store->put_session(std::move(s), nullptr);  // fire and forget
}

void Member::send_text(const std::string& json) {
  session_->send(ws::Opcode::kText, json);
}

void Member::send_error(std::string_view code, std::string_view message, std::string_view ref) {
  g_errors.inc();
  scratch_.clear();
  ws::encode_error(&scratch_, code, message, ref);
  send_text(scratch_);
}

void Member::on_message(ws::WebSocketSession&, ws::Opcode opcode, std::string_view payload) {
  if (closed_ || refusing_) return;
  if (opcode != ws::Opcode::kText) {
    send_error("unsupported_frame", "the rooms protocol is JSON in text frames", "binary");
    return;
  }
  // While reading is suspended the rest of the last read is still parsed: those envelopes wait
  // here, in order, and run when reading resumes (see release_held).
  if (reading_suspended_ || !held_.empty()) {
    held_.emplace_back(payload);
    return;
  }
  dispatch(payload);
}

void Member::dispatch(std::string_view payload) {
  // Per thread and reused: views into the decoder stay valid until the next decode, and the
  // envelope's vectors keep their capacity.
  static thread_local ws::InboundEnvelope envelope;
  static thread_local ws::EnvelopeError error;
  if (!decoder().decode(payload, &envelope, &error)) {
    send_error(error.code, error.message, error.ref);
    return;
  }
  switch (envelope.type) {
    case ws::EnvelopeType::kJoinRoom:
      return handle_join(envelope.room_id);
    case ws::EnvelopeType::kLeaveRoom:
      return handle_leave(envelope.room_id);
    case ws::EnvelopeType::kMessage:
      if (!in_room(envelope.room_id) && is_joining(envelope.room_id)) return wait_for_join(payload);
      return handle_message(envelope);
    case ws::EnvelopeType::kResume: {
      std::vector<ResumeRoom> rooms;
      for (const ws::ResumeRoom& r : envelope.resume_rooms)
        rooms.push_back(ResumeRoom{std::string(r.room_id), r.offset, r.epoch});
      return start_resume(std::string(envelope.token), std::move(rooms), false);
    }
    case ws::EnvelopeType::kRefresh:
      return handle_refresh(envelope.token);
  }
}

// ---------------------------------------------------------------- sessions and resume

void Member::start_resume(std::string token, std::vector<ResumeRoom> rooms, bool at_open) {
  auto refuse = [&](std::string_view code, std::string_view message) {
    g_resume_failures.inc();
    if (at_open) {  // the client still gets a session, a fresh one
      send_session({});
      save_session();
    }
    send_error(code, message, "resume");
  };
  store::Store* store = service_.store();
  if (!store) return refuse("store_unavailable", "session resume needs a store (--store)");
  std::string member_id;
  switch (service_.tokens().verify(token, core::wall_ms(), &member_id)) {
    case SessionTokens::Check::kInvalid:
      return refuse("invalid_token", "the session token is malformed or not signed by this server");
    case SessionTokens::Check::kExpired:
      return refuse("session_expired", "the session expired (--session-ttl)");
    case SessionTokens::Check::kOk:
      break;
  }
  // What the client sends after `resume` waits for it (a publish to a resumed room, say).
  paused_for_resume_ = true;
  update_reading();
  std::string key = token;
  store->get_session(std::move(key), core::wall_ms(),
                     [self = self_, token = std::move(token), rooms = std::move(rooms), at_open](
                         store::Status status, store::Session session) mutable {
                       if (Member* member = *self)
                         member->finish_resume(status, std::move(session), std::move(token),
                                               std::move(rooms), at_open);
                     });
}

void Member::finish_resume(store::Status status, store::Session session, std::string token,
                           std::vector<ResumeRoom> rooms, bool at_open) {
  if (closed_) return;
  paused_for_resume_ = false;
  if (status != store::Status::kOk) {
    g_resume_failures.inc();
    if (at_open) {
      send_session({});
      save_session();
    }
    if (status == store::Status::kNotFound)
      send_error("session_not_found", "no such session (expired, purged, or never saved)",
                 "resume");
    else
      send_error("store_unavailable", "the store cannot be read now; try again", "resume");
    return update_reading();
  }
  if (!may_resume_as(session.member_id)) {
    g_resume_failures.inc();
    if (at_open) {
      send_session({});
      save_session();
    }
    send_error("forbidden",
               identity_.authenticated ? "the session belongs to another sub than the token's"
                                       : "the session belongs to an authenticated member",
               "resume");
    return update_reading();
  }
  g_resumes.inc();
  name_ = std::move(session.member_id);
  token_ = std::move(token);
  expires_ms_ = session.expires_ms;
  if (rooms.empty())
    for (const store::SessionRoom& r : session.rooms)
      rooms.push_back(ResumeRoom{r.room_id, r.offset, r.epoch});
  std::vector<std::string_view> ids;
  for (const ResumeRoom& r : rooms) ids.push_back(r.room_id);
  send_session(ids);
  const RoomsConfig& config = service_.config();
  for (ResumeRoom& r : rooms) {
    if (check_room_id(r.room_id, config.max_room_id_bytes)) {
      send_error("invalid_room_id", "resume names a room id that is not valid", r.room_id);
      continue;
    }
    if (!identity_.acl.may_join(r.room_id)) {
      g_acl_join.inc();
      send_error("forbidden", "the token does not allow joining this room", r.room_id);
      continue;
    }
    if (in_room(r.room_id) || is_joining(r.room_id)) {
      send_error("already_member", "this connection already joined (or is joining) the room",
                 r.room_id);
      continue;
    }
    if (rooms_.size() + joining_.size() >= config.max_rooms_per_connection) {
      g_rooms_limit.inc();
      send_error("too_many_rooms", "resume names more rooms than --max-rooms-per-connection",
                 r.room_id);
      continue;
    }
    joining_.push_back(r.room_id);
    std::string id = r.room_id;
    resumes_.push_back(std::move(r));
    shard_.join(*this, id);
  }
  update_reading();
}

// The owner answered the resume's join with the room's delivered offset: what the client
// missed is (want.offset, offset].
void Member::begin_replay(Joined& j, const ResumeRoom& want, uint64_t offset, uint64_t epoch) {
  const RoomsConfig& config = service_.config();
  store::Store* store = service_.store();
  bool same = want.epoch == epoch && want.offset <= offset;
  if (!same || want.offset == offset || !store || config.durability == Durability::kNone ||
      config.replay_limit == 0) {
    scratch_.clear();
    ws::encode_resumed(&scratch_, j.room_id, same && want.offset == offset, offset, epoch);
    return send_text(scratch_);
  }
  uint64_t after = want.offset;
  if (offset - after > config.replay_limit) after = offset - config.replay_limit;
  j.replaying = true;
  j.replay_from = want.offset;
  ++replaying_;
  store->read_room(j.room_id, epoch, after, offset - after,
                   [self = self_, room_id = j.room_id, after, offset](
                       store::Status status, std::vector<store::StoredMessage> messages, uint64_t) {
                     if (Member* member = *self)
                       member->end_replay(room_id, status, messages, after, offset);
                   });
}

void Member::end_replay(const std::string& room_id, store::Status status,
                        std::vector<store::StoredMessage>& messages, uint64_t after,
                        uint64_t offset) {
  Joined* j = find(room_id);
  if (closed_ || !j || !j->replaying) return;  // left the room meanwhile
  bool complete = status == store::Status::kOk && messages.size() == offset - after &&
                  !messages.empty() && messages.front().offset == after + 1 &&
                  messages.back().offset == offset;
  scratch_.clear();
  ws::encode_resumed(&scratch_, room_id, complete && after == j->replay_from, offset, j->epoch);
  send_text(scratch_);
  messages.erase(std::remove_if(messages.begin(), messages.end(),
                                [&](const store::StoredMessage& m) {
                                  return m.offset <= after || m.offset > offset;
                                }),
                 messages.end());
  j->replay = std::move(messages);
  j->replay_next = 0;
  j->replay_loaded = true;
  pump_replay(*j);
}

// Sends the replay while the connection is under its high watermark, and the live frames held
// meanwhile once the replay is out; on_backpressure picks it up again below the low one. A
// replay of --replay-limit large messages never has to fit in --max-buffer at once.
void Member::pump_replay(Joined& j) {
  const size_t high = service_.config().high_watermark;
  while (j.replay_next < j.replay.size()) {
    if (closed_ || session_->queued_bytes() >= high) return;
    session_->send(ws::Opcode::kText, j.replay[j.replay_next++].payload);
    g_replayed.inc();
  }
  std::string room_id = j.room_id;
  j.replay.clear();
  j.replay.shrink_to_fit();
  j.replaying = false;
  j.replay_loaded = false;
  --replaying_;
  std::vector<Frame> held;
  held.swap(j.held);
  j.held_bytes = 0;
  LocalRoom* room = shard_.local_room(room_id);
  for (const Frame& f : held) {
    if (closed_ || !room) break;
    deliver_one(*room, f);
  }
}

// Live frames of a room being replayed wait (by reference) until the replay is out.
bool Member::hold_while_replaying(LocalRoom& room, const FrameBatch& batch) {
  Joined* j = find(room.id);
  if (!j || !j->replaying) return false;
  for (const Frame& f : batch.frames) {
    j->held.push_back(f);
    j->held_bytes += f.length;
  }
  const size_t limit = service_.config().max_buffer;
  if (limit && j->held_bytes > limit)
    disconnect_slow("live messages held during its replay passed --max-buffer");
  return true;
}

// A message sent right behind its join_room (pipelined, as clients do) waits for the join's
// answer instead of failing with not_member; everything after it waits too, so order holds.
void Member::wait_for_join(std::string_view payload) {
  held_.emplace_front(payload);
  paused_for_join_ = true;
  update_reading();
}

void Member::release_held() {
  while (!held_.empty() && !reading_suspended_ && !closed_ && !refusing_) {
    std::string payload = std::move(held_.front());
    held_.pop_front();
    dispatch(payload);
  }
}

Member::Joined* Member::find(std::string_view room_id) {
  for (Joined& j : rooms_)
    if (j.room_id == room_id) return &j;
  return nullptr;
}

bool Member::in_room(std::string_view room_id) const {
  return std::any_of(rooms_.begin(), rooms_.end(),
                     [&](const Joined& j) { return j.room_id == room_id; });
}

bool Member::is_joining(std::string_view room_id) const {
  return std::find(joining_.begin(), joining_.end(), room_id) != joining_.end();
}

std::vector<std::string> Member::room_ids() const {
  std::vector<std::string> ids;
  ids.reserve(rooms_.size());
  for (const Joined& j : rooms_) ids.push_back(j.room_id);
  return ids;
}

void Member::handle_join(std::string_view room_id) {
  const RoomsConfig& config = service_.config();
  if (const char* code = check_room_id(room_id, config.max_room_id_bytes)) {
    std::string message =
        std::string(code) == "room_id_too_long"
            ? "room_id is longer than " + std::to_string(config.max_room_id_bytes) + " bytes"
            : "room_id must be 1 or more of A-Z a-z 0-9 . _ : @ / -";
    return send_error(code, message, room_id.substr(0, config.max_room_id_bytes));
  }
  if (!identity_.acl.may_join(room_id)) {
    g_acl_join.inc();
    return send_error("forbidden", "the token does not allow joining this room", room_id);
  }
  if (in_room(room_id) || is_joining(room_id))
    return send_error("already_member", "this connection already joined (or is joining) the room",
                      room_id);
  if (rooms_.size() + joining_.size() >= config.max_rooms_per_connection) {
    g_rooms_limit.inc();
    return send_error("too_many_rooms",
                      "a connection may be in at most " +
                          std::to_string(config.max_rooms_per_connection) + " rooms",
                      room_id);
  }
  joining_.emplace_back(room_id);
  shard_.join(*this, room_id);
}

void Member::joined(LocalRoom& room, uint64_t offset, uint64_t epoch) {
  joining_.erase(std::find(joining_.begin(), joining_.end(), room.id));
  Joined j;
  j.room_id = room.id;
  j.epoch = epoch;
  j.joined_offset = offset;
  rooms_.push_back(std::move(j));
  auto want = std::find_if(resumes_.begin(), resumes_.end(),
                           [&](const ResumeRoom& r) { return r.room_id == room.id; });
  if (want != resumes_.end()) {
    ResumeRoom r = std::move(*want);
    resumes_.erase(want);
    begin_replay(rooms_.back(), r, offset, epoch);
  } else {
    scratch_.clear();
    ws::encode_room_joined(&scratch_, room.id, offset, epoch);
    send_text(scratch_);
  }
  save_session();
  if (paused_for_join_) {  // a held message may have waited for this room
    paused_for_join_ = false;
    update_reading();
  }
}

void Member::handle_leave(std::string_view room_id) {
  if (!in_room(room_id)) {
    auto pending = std::find(joining_.begin(), joining_.end(), room_id);
    if (pending == joining_.end())
      return send_error("not_member", "this connection is not in the room", room_id);
    joining_.erase(pending);  // the owner's answer will find us not joining and undo the count
    resumes_.erase(std::remove_if(resumes_.begin(), resumes_.end(),
                                  [&](const ResumeRoom& r) { return r.room_id == room_id; }),
                   resumes_.end());
  } else {
    shard_.leave(*this, room_id);
  }
  scratch_.clear();
  ws::encode_room_left(&scratch_, room_id);
  send_text(scratch_);
  save_session();
}

void Member::forget_room(std::string_view room_id) {
  if (Joined* j = find(room_id); j && j->replaying) --replaying_;
  rooms_.erase(std::remove_if(rooms_.begin(), rooms_.end(),
                              [&](const Joined& j) { return j.room_id == room_id; }),
               rooms_.end());
  resume_if_acked();  // what was in flight to that room never comes back
}

// --rate-limit: a refused message is answered with the wait; a client that keeps sending into
// the limit (more than 20 refusals beyond one a second) is closed with 1008.
bool Member::over_rate_limit(std::string_view ref) {
  if (!rate_.limited()) return false;
  int64_t now = core::monotonic_ns(), retry_ns = 0;
  if (rate_.take(now, &retry_ns)) return false;
  g_rate_limited.inc();
  if (!strikes_.take(now, nullptr)) {
    log_info("member %s (%s): closing, it kept sending over --rate-limit", name_.c_str(),
             session_->connection().peer().to_string().c_str());
    session_->close(ws::kClosePolicyViolation, "rate limit exceeded");
    refusing_ = true;  // what is left of its last read is dropped
    return true;
  }
  g_errors.inc();
  scratch_.clear();
  ws::encode_error(&scratch_, "rate_limited", "over --rate-limit: this message was not sent", ref,
                   "retry_after_ms", static_cast<uint64_t>(retry_ns / 1'000'000 + 1));
  send_text(scratch_);
  return true;
}

void Member::handle_message(const ws::InboundEnvelope& m) {
  std::string_view ref = m.message_id.empty() ? m.room_id : m.message_id;
  if (over_rate_limit(ref)) return;
  if (!identity_.acl.may_publish(m.room_id)) {
    g_acl_publish.inc();
    return send_error("forbidden", "the token does not allow publishing to this room", ref);
  }
  if (!in_room(m.room_id))
    return send_error("not_member", "join the room before sending to it", ref);
  const RoomsConfig& config = service_.config();
  if (m.content.size() > config.max_content_bytes)
    return send_error(
        "content_too_large",
        "content is longer than " + std::to_string(config.max_content_bytes) + " bytes", ref);
  char generated_id[64];
  std::string_view message_id = m.message_id;
  if (message_id.empty()) {
    int n = std::snprintf(generated_id, sizeof generated_id, "%s-%llu", name_.c_str(),
                          static_cast<unsigned long long>(++message_counter_));
    message_id = std::string_view(generated_id, n);
  }
  char now[40];
  std::string_view sent_at = m.sent_at;
  if (sent_at.empty()) {
    sent_at = std::string_view(now, core::format_rfc3339_ms(core::wall_ms(), now, sizeof now));
  }
  publish_now(m.room_id, m.content, message_id, !m.message_id.empty(), sent_at, m.traceparent,
              m.tracestate);
}

void Member::publish_now(std::string_view room_id, std::string_view content,
                         std::string_view message_id, bool client_id, std::string_view sent_at,
                         std::string_view traceparent, std::string_view tracestate) {
  LocalRoom* room = shard_.local_room(room_id);
  if (room && room->paused) {  // lossless rooms: the message goes, then this publisher waits
    if (std::find(room->paused_publishers.begin(), room->paused_publishers.end(), id_) ==
        room->paused_publishers.end())
      room->paused_publishers.push_back(id_);
    pause_reading_for_room();
  }
  if (service_.config().policy == SlowConsumerPolicy::kBackpressure)
    count_in_flight(room_id, content.size());
  shard_.publish(*this, room_id, content, message_id, client_id, sent_at, traceparent, tracestate);
}

void Member::pause_reading_for_room() {
  if (paused_for_room_) return;
  paused_for_room_ = true;
  g_paused.inc();
  update_reading();
}

void Member::resume_reading_for_room() {
  if (!paused_for_room_) return;
  paused_for_room_ = false;
  update_reading();
}

void Member::update_reading() {
  if (closed_) return;
  if (paused_for_room_ || paused_for_acks_ || paused_for_join_ || paused_for_resume_) {
    if (!reading_suspended_) session_->suspend_reading();
    reading_suspended_ = true;
    return;
  }
  if (!reading_suspended_) return;
  reading_suspended_ = false;
  release_held();  // may suspend again
  if (!reading_suspended_) session_->resume_reading();
}

void Member::count_in_flight(std::string_view room_id, uint64_t bytes) {
  Joined* j = find(room_id);
  if (!j) return;
  j->in_flight++;
  j->in_flight_bytes += bytes;
  if (!paused_for_acks_ &&
      (j->in_flight >= kMaxInFlight || j->in_flight_bytes >= kMaxInFlightBytes)) {
    paused_for_acks_ = true;
    g_in_flight_pauses.inc();
    update_reading();
  }
}

// Resumes at half the cap, not just under it: one wake-up per several acks, not one per ack.
void Member::resume_if_acked() {
  if (!paused_for_acks_) return;
  for (const Joined& j : rooms_)
    if (j.in_flight > kMaxInFlight / 2 || j.in_flight_bytes > kMaxInFlightBytes / 2) return;
  paused_for_acks_ = false;
  update_reading();
}

void Member::publish_returned(std::string_view room_id, uint64_t bytes) {
  if (Joined* j = find(room_id); j && j->in_flight > 0) {
    j->in_flight--;
    j->in_flight_bytes -= std::min(j->in_flight_bytes, bytes);
  }
  resume_if_acked();
}

void Member::publish_refused(const ShardMessage& answer) {
  publish_returned(answer.room_id, answer.members);
  if (closed_) return;
  switch (answer.status) {
    case 409:
      g_errors.inc();
      scratch_.clear();
      ws::encode_error(&scratch_, "duplicate",
                       "this message_id was already published in the room within --dedupe-window; "
                       "not delivered again",
                       answer.message_id, "offset", answer.offset);
      return send_text(scratch_);
    case 429:
      g_errors.inc();
      scratch_.clear();
      ws::encode_error(&scratch_, "rate_limited", "the room is over --room-rate-limit",
                       answer.message_id, "retry_after_ms", static_cast<uint64_t>(answer.delta));
      return send_text(scratch_);
    case 507:
      return send_error("store_unavailable",
                        "the store did not commit the message (sync durability): not delivered",
                        answer.message_id);
    case 503:
      return send_error("unavailable",
                        "the room's owner node could not be reached: the message may not have "
                        "been delivered; send it again with the same message_id",
                        answer.message_id);
    default:  // 404: we left the room while the message travelled
      return;
  }
}

void Member::room_restarted(std::string_view room_id, uint64_t offset, uint64_t epoch) {
  Joined* j = find(room_id);
  if (!j || closed_) return;
  j->epoch = epoch;
  j->joined_offset = offset;
  scratch_.clear();
  ws::encode_resumed(&scratch_, room_id, false, offset, epoch);
  send_text(scratch_);
  save_session();
}

void Member::room_gap(std::string_view room_id, uint64_t from_offset, uint64_t to_offset) {
  if (!find(room_id) || closed_) return;
  g_lagged.inc();
  scratch_.clear();
  ws::encode_lagged(&scratch_, room_id, from_offset, to_offset);
  send_text(scratch_);
}

void Member::note_own_frames(LocalRoom& room, std::span<const Frame> frames) {
  for (const Frame& f : frames)
    if (f.sender == id_) publish_returned(room.id, f.sender_bytes);
}

// ---------------------------------------------------------------- delivery and slow consumers

// A batch goes as one slice when the policy would have let every one of its frames through
// one by one: below max-buffer after the last, and (skip) below the high watermark before
// the last. Otherwise frame by frame, exactly as if they had come singly.
void Member::deliver(LocalRoom& room, const FrameBatch& batch) {
  if (closed_) return;
  if ((++t_deliveries & 63) == 0)
    g_queued_bytes.observe(static_cast<double>(session_->queued_bytes()));
  if (service_.config().policy == SlowConsumerPolicy::kBackpressure)
    note_own_frames(room, batch.frames);
  if (replaying_ > 0 && hold_while_replaying(room, batch)) return;
  if (batch.frames.size() == 1 || !takes_whole(room, batch)) {
    for (const Frame& frame : batch.frames) deliver_one(room, frame);
    return;
  }
  session_->send_frame(*batch.buffer, batch.offset, batch.length,
                       static_cast<uint32_t>(batch.frames.size()), batch.text_bytes);
}

bool Member::takes_whole(LocalRoom& room, const FrameBatch& batch) {
  const RoomsConfig& config = service_.config();
  size_t queued = session_->queued_bytes();
  if (config.max_buffer && queued + batch.length + kCloseReserve > config.max_buffer) return false;
  if (config.policy != SlowConsumerPolicy::kSkip) return true;
  const Joined* j = find(room.id);
  return !j || (!j->skipping &&
                queued + batch.length - batch.frames.back().length < config.high_watermark);
}

void Member::deliver_one(LocalRoom& room, const Frame& frame) {
  if (closed_) return;
  const RoomsConfig& config = service_.config();
  size_t queued = session_->queued_bytes();
  bool over_max = config.max_buffer && queued + frame.length + kCloseReserve > config.max_buffer;
  switch (config.policy) {
    case SlowConsumerPolicy::kSkip: {
      Joined* j = find(room.id);
      if (j && (j->skipping || queued >= config.high_watermark || over_max)) {
        if (!j->skipping) {
          j->skipping = true;
          j->skipped_from = frame.room_offset;
        }
        j->skipped_to = frame.room_offset;
        g_skipped.inc();
        return;
      }
      break;
    }
    case SlowConsumerPolicy::kDisconnect:
    case SlowConsumerPolicy::kBackpressure:
      if (over_max) return disconnect_slow("its queue would pass --max-buffer");
      break;
  }
  session_->send_frame(frame.buffer, frame.offset, frame.length, 1,
                       RoomShard::envelope_of(frame).size());
}

void Member::on_backpressure(ws::WebSocketSession&, bool above_high) {
  if (closed_) return;
  const RoomsConfig& config = service_.config();
  blocked_ = above_high;
  if (above_high) {
    if (config.slow_grace_ms > 0)
      session_->connection().reactor().schedule(grace_timer_, config.slow_grace_ms);
  } else {
    grace_timer_.cancel();
  }
  if (config.policy == SlowConsumerPolicy::kBackpressure) shard_.member_blocked(*this, above_high);
  if (!above_high && config.policy == SlowConsumerPolicy::kSkip) send_lagged_notices();
  if (!above_high && replaying_ > 0) {
    // By index and id: pumping may close us, and the held frames may go out of rooms_.
    for (size_t i = 0; i < rooms_.size() && !closed_; ++i)
      if (rooms_[i].replay_loaded) pump_replay(rooms_[i]);
  }
}

void Member::send_lagged_notices() {
  for (Joined& j : rooms_) {
    if (!j.skipping) continue;
    j.skipping = false;
    g_lagged.inc();
    scratch_.clear();
    ws::encode_lagged(&scratch_, j.room_id, j.skipped_from, j.skipped_to);
    send_text(scratch_);
  }
}

void Member::on_grace_timer() {
  if (blocked_ && !closed_)
    disconnect_slow("it stayed above --high-watermark longer than --slow-grace");
}

void Member::disconnect_slow(const char* why) {
  g_disconnects.inc();
  log_info("member %s (%s): slow consumer, disconnecting: %s (%zu bytes queued)", name_.c_str(),
           session_->connection().peer().to_string().c_str(), why, session_->queued_bytes());
  session_->close(ws::kClosePolicyViolation, "slow consumer");
}

void Member::on_close(ws::WebSocketSession&, uint16_t, std::string_view) {
  if (closed_) return;
  save_session();
  grace_timer_.cancel();
  expiry_timer_.cancel();
  if (blocked_ && service_.config().policy == SlowConsumerPolicy::kBackpressure)
    shard_.member_blocked(*this, false);  // never leave a room paused by a member that is gone
  closed_ = true;
  shard_.remove_member(*this);
}

// ---------------------------------------------------------------- authentication

// With --auth on, a session is resumed only by its own member: an authenticated connection
// resumes sessions of its sub, an anonymous one only anonymous sessions (random names), so a
// leaked session token never lends an anonymous client a token holder's name.
bool Member::may_resume_as(std::string_view member_id) const {
  if (!auth_ || auth_->mode() == AuthMode::kOff) return true;
  return identity_.authenticated ? member_id == identity_.sub : is_random_member_name(member_id);
}

void Member::handle_refresh(std::string_view token) {
  if (!identity_.authenticated || !auth_) {
    g_refresh_failures.inc();
    return send_error("not_authenticated", "only a connection opened with a token can refresh it",
                      "refresh");
  }
  AuthOutcome outcome = auth_->verify(token, core::wall_ms() / 1000);
  if (!outcome.ok) {
    g_refresh_failures.inc();
    return send_error("invalid_token", outcome.code + ": " + outcome.message, "refresh");
  }
  if (outcome.identity.sub != identity_.sub) {
    g_refresh_failures.inc();
    return send_error("forbidden", "a refresh must carry the same sub as the connection's token",
                      "refresh");
  }
  g_refreshes.inc();
  identity_ = std::move(outcome.identity);
  arm_expiry_timer();
  scratch_.clear();
  ws::encode_refreshed(&scratch_, static_cast<uint64_t>(identity_.exp_s));
  send_text(scratch_);
}

// Fires when the token stops verifying: exp plus the leeway the handshake allowed.
void Member::arm_expiry_timer() {
  if (!identity_.authenticated) return;
  int64_t deadline_ms = (identity_.exp_s + auth_->leeway_s()) * 1000;
  int64_t delay_ms = std::max<int64_t>(1, deadline_ms - core::wall_ms());
  session_->connection().reactor().schedule(expiry_timer_, delay_ms);
}

void Member::on_token_expiry() {
  if (closed_ || refusing_) return;
  if ((identity_.exp_s + auth_->leeway_s()) * 1000 > core::wall_ms())
    return arm_expiry_timer();  // the wheel rounds; not due yet
  g_expired_closes.inc();
  log_info("member %s (%s): closing, its token expired without a refresh", name_.c_str(),
           session_->connection().peer().to_string().c_str());
  session_->close(ws::kClosePolicyViolation, "token expired");
  refusing_ = true;
}

}  // namespace weir::cluster
