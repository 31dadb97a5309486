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

// Room for a close frame after the limit: the disconnect policy stops short of max-buffer so
// its "slow consumer" close can still be queued.
constexpr size_t kCloseReserve = 256;

std::atomic<uint64_t> g_next_member{1};
// One per reactor thread, made on first use and freed when the thread exits.
ws::EnvelopeDecoder& decoder() {
  thread_local ws::EnvelopeDecoder t_decoder;
  return t_decoder;
}

std::string random_token() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  char hex[33];
  for (int i = 0; i < 16; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return std::string(hex, 32);
}

}  // namespace

Member::Member(RoomService& service, ws::WebSocketSession& session)
    : service_(service),
      shard_(service.local()),
      session_(&session),
      id_(g_next_member.fetch_add(1, std::memory_order_relaxed)),
      name_("m" + std::to_string(id_)),
      token_(random_token()) {
  shard_.add_member(*this);
  grace_timer_.set_callback([this] { on_grace_timer(); });
  g_members.inc();
}

Member::~Member() {
  if (!closed_) {
    closed_ = true;
    shard_.remove_member(*this);
  }
  g_members.dec();
}

void Member::on_open(ws::WebSocketSession&) {
  scratch_.clear();
  ws::encode_session(&scratch_, token_, name_, {});
  send_text(scratch_);
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
  if (closed_) return;
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
    case ws::EnvelopeType::kResume:
      return send_error("resume_unavailable",
                        "session resume needs a store; this server runs without one", "resume");
  }
}

// A message sent right behind its join_room (pipelined, as clients do) waits for the join's
// answer instead of failing with not_member; everything after it waits too, so order holds.
void Member::wait_for_join(std::string_view payload) {
  held_.emplace_front(payload);
  paused_for_join_ = true;
  update_reading();
}

void Member::release_held() {
  while (!held_.empty() && !reading_suspended_ && !closed_) {
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
  if (in_room(room_id) || is_joining(room_id))
    return send_error("already_member", "this connection already joined (or is joining) the room",
                      room_id);
  if (rooms_.size() + joining_.size() >= config.max_rooms_per_connection)
    return send_error("too_many_rooms",
                      "a connection may be in at most " +
                          std::to_string(config.max_rooms_per_connection) + " rooms",
                      room_id);
  joining_.emplace_back(room_id);
  shard_.join(*this, room_id);
}

void Member::joined(LocalRoom& room, uint64_t offset, uint64_t epoch) {
  joining_.erase(std::find(joining_.begin(), joining_.end(), room.id));
  rooms_.push_back(Joined{room.id});
  scratch_.clear();
  ws::encode_room_joined(&scratch_, room.id, offset, epoch);
  send_text(scratch_);
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
  } else {
    shard_.leave(*this, room_id);
  }
  scratch_.clear();
  ws::encode_room_left(&scratch_, room_id);
  send_text(scratch_);
}

void Member::forget_room(std::string_view room_id) {
  rooms_.erase(std::remove_if(rooms_.begin(), rooms_.end(),
                              [&](const Joined& j) { return j.room_id == room_id; }),
               rooms_.end());
  resume_if_acked();  // what was in flight to that room never comes back
}

void Member::handle_message(const ws::InboundEnvelope& m) {
  std::string_view ref = m.message_id.empty() ? m.room_id : m.message_id;
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
  publish_now(m.room_id, m.content, message_id, sent_at, m.traceparent, m.tracestate);
}

void Member::publish_now(std::string_view room_id, std::string_view content,
                         std::string_view message_id, std::string_view sent_at,
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
  shard_.publish(*this, room_id, content, message_id, sent_at, traceparent, tracestate);
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
  if (paused_for_room_ || paused_for_acks_ || paused_for_join_) {
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
  if (service_.config().policy == SlowConsumerPolicy::kBackpressure)
    note_own_frames(room, batch.frames);
  if (batch.frames.size() == 1 || !takes_whole(room, batch)) {
    for (const Frame& frame : batch.frames) deliver_one(room, frame);
    return;
  }
  session_->send_frame(*batch.buffer, batch.offset, batch.length,
                       static_cast<uint32_t>(batch.frames.size()));
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
  session_->send_frame(frame.buffer, frame.offset, frame.length);
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
  grace_timer_.cancel();
  if (blocked_ && service_.config().policy == SlowConsumerPolicy::kBackpressure)
    shard_.member_blocked(*this, false);  // never leave a room paused by a member that is gone
  closed_ = true;
  shard_.remove_member(*this);
}

}  // namespace weir::cluster
