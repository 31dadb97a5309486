// cluster/member.h — one /ws connection in the rooms protocol: decodes envelopes, joins and
// leaves rooms, publishes, receives the room's shared frames, and applies the slow-consumer
// policy to itself.
//
// The first frame it sends is `session {token, member_id, rooms}`. Bad input is answered with
// `error {code, message, ref}` and the connection stays open (codes in docs/protocol.md).
//
// Sessions: the token is HMAC-signed (cluster/session_token.h) and the session's rooms and
// offsets are kept in the store (on open, join, leave and close). `resume {token, rooms}` or
// /ws?resume=TOKEN rejoins those rooms: the owner answers with the room's delivered offset L,
// the member reads the missed messages (offset, L] from the store while it holds the room's
// live frames (> L), then sends `resumed`, the replay, and the held frames: no gap, no
// duplicate.
//
// Authentication (--auth, cluster/authenticator.h): a member admitted with a token is named by
// its `sub`, joins and publishes only where the token's room ACL allows (else `error
// {code: "forbidden"}`), may replace its token with `refresh {token}` (same sub; answered
// `refreshed {exp}`), and is closed with 1008 "token expired" when exp (plus the leeway)
// passes without a refresh: one timer per member on the reactor's wheel.
//
// Thread-safety: none; a member lives on its connection's reactor thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/authenticator.h"
#include "cluster/room_shard.h"
#include "cluster/room_types.h"
#include "core/gcra.h"
#include "core/timer_wheel.h"
#include "store/backend.h"
#include "ws/envelope.h"
#include "ws/websocket_session.h"

namespace weir::cluster {

class RoomService;

class Member : public ws::WebSocketHandler {
 public:
  // `resume_token`: from /ws?resume=TOKEN, resumed before anything else is sent. `identity`:
  // what the handshake's token proved (anonymous with every right by default); `auth` (null
  // under --auth=off) verifies refreshes.
  Member(RoomService& service, ws::WebSocketSession& session, std::string resume_token = {},
         Identity identity = {}, const Authenticator* auth = nullptr);
  ~Member() override;

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  ws::WebSocketSession& session() { return *session_; }

  // ws::WebSocketHandler
  void on_open(ws::WebSocketSession& session) override;
  void on_message(ws::WebSocketSession& session, ws::Opcode opcode,
                  std::string_view payload) override;
  void on_backpressure(ws::WebSocketSession& session, bool above_high) override;
  void on_close(ws::WebSocketSession& session, uint16_t code, std::string_view reason) override;

  // Called by the shard.
  void joined(LocalRoom& room, uint64_t offset, uint64_t epoch);
  void join_refused(std::string_view room_id, std::string_view code, std::string_view message);
  void deliver(LocalRoom& room, const FrameBatch& batch);
  bool is_joining(std::string_view room_id) const;
  bool in_room(std::string_view room_id) const;
  const std::vector<std::string>& joining() const { return joining_; }
  std::vector<std::string> room_ids() const;
  void forget_room(std::string_view room_id);  // the shard removed us from it
  void pause_reading_for_room();               // backpressure policy: our room is paused
  void resume_reading_for_room();
  // Backpressure policy: one of our publishes to the room will not come back (no such room).
  void publish_returned(std::string_view room_id, uint64_t bytes);
  // The owner did not deliver one of our publishes (ShardMessage kPublished, request_id 0):
  // no room, duplicate, room rate limit, store failure.
  void publish_refused(const ShardMessage& answer);
  // Cluster: the room's owner node moved and the room goes on in a new epoch (or, in the
  // same epoch, offsets from..to never reached this node): told as resumed{recovered:false}
  // or lagged, so the member sees no silent gap.
  void room_restarted(std::string_view room_id, uint64_t offset, uint64_t epoch);
  void room_gap(std::string_view room_id, uint64_t from_offset, uint64_t to_offset);

 private:
  struct Joined {
    std::string room_id;
    bool skipping = false;  // skip policy: deliveries being skipped
    uint64_t skipped_from = 0;
    uint64_t skipped_to = 0;
    uint32_t in_flight = 0;  // backpressure policy: our publishes not yet delivered back to us
    uint64_t in_flight_bytes = 0;
    uint64_t epoch = 0;
    uint64_t joined_offset = 0;  // room_joined's (or resumed's) offset
    // Resume: the missed messages are being read from the store; live frames wait here.
    bool replaying = false;
    uint64_t replay_from = 0;  // the offset the client had
    // Read from the store, sent as the connection drains (below --high-watermark).
    std::vector<store::StoredMessage> replay;
    size_t replay_next = 0;
    bool replay_loaded = false;
    std::vector<Frame> held;
    uint64_t held_bytes = 0;
  };
  // A room a resume is rejoining: the client's last offset and epoch in it.
  struct ResumeRoom {
    std::string room_id;
    uint64_t offset = 0;
    uint64_t epoch = 0;
  };

  // Backpressure policy: a publisher waits (reading suspended) while this many of its
  // messages, or bytes of content, to one room have not come back to it. Every member also
  // receives what it publishes, so the room's delivery to us is the acknowledgement; the
  // cap bounds what a publisher can push past a pause still travelling between threads.
  static constexpr uint32_t kMaxInFlight = 32;
  static constexpr uint64_t kMaxInFlightBytes = 32 * 1024;

  void send_session(std::span<const std::string_view> rooms);
  void save_session();
  void start_resume(std::string token, std::vector<ResumeRoom> rooms, bool at_open);
  void finish_resume(store::Status status, store::Session session, std::string token,
                     std::vector<ResumeRoom> rooms, bool at_open);
  void begin_replay(Joined& joined, const ResumeRoom& want, uint64_t offset, uint64_t epoch);
  void end_replay(const std::string& room_id, store::Status status,
                  std::vector<store::StoredMessage>& messages, uint64_t after, uint64_t offset);
  void pump_replay(Joined& joined);
  bool hold_while_replaying(LocalRoom& room, const FrameBatch& batch);
  bool over_rate_limit(std::string_view ref);
  void handle_join(std::string_view room_id);
  void handle_leave(std::string_view room_id);
  void handle_message(const ws::InboundEnvelope& envelope);
  void handle_refresh(std::string_view token);
  bool may_resume_as(std::string_view member_id) const;
  void arm_expiry_timer();
  void on_token_expiry();
  void send_error(std::string_view code, std::string_view message, std::string_view ref);
  void send_text(const std::string& json);
  Joined* find(std::string_view room_id);
  void deliver_one(LocalRoom& room, const Frame& frame);
  bool takes_whole(LocalRoom& room, const FrameBatch& batch);
  void disconnect_slow(const char* why);
  void send_lagged_notices();
  void on_grace_timer();
  void note_own_frames(LocalRoom& room, std::span<const Frame> frames);
  void update_reading();
  void count_in_flight(std::string_view room_id, uint64_t bytes);
  void publish_now(std::string_view room_id, std::string_view content, std::string_view message_id,
                   bool client_id, std::string_view sent_at, std::string_view traceparent,
                   std::string_view tracestate);
  void release_held();
  void dispatch(std::string_view payload);
  void wait_for_join(std::string_view payload);
  void resume_if_acked();

  RoomService& service_;
  RoomShard& shard_;
  ws::WebSocketSession* session_;
  uint64_t id_;
  std::string name_;
  std::string token_;
  int64_t expires_ms_ = 0;
  std::string resume_at_open_;
  // Store completions reach us through this; it is cleared when the member goes away.
  std::shared_ptr<Member*> self_;
  std::vector<Joined> rooms_;
  std::vector<ResumeRoom> resumes_;  // joins in flight that a resume asked for
  int replaying_ = 0;                // rooms in rooms_ with replaying set
  bool paused_for_resume_ = false;   // reading waits for the session lookup
  bool refusing_ = false;            // closed for abuse: nothing more is read
  core::Gcra rate_;                  // --rate-limit
  core::Gcra strikes_;               // rejected messages: past its burst, close 1008
  std::vector<std::string> joining_;
  bool closed_ = false;
  bool blocked_ = false;          // above the high watermark
  bool paused_for_room_ = false;  // backpressure policy: reading suspended for a paused room
  bool paused_for_acks_ = false;  // ... or for too many of our publishes in flight
  bool reading_suspended_ = false;
  bool paused_for_join_ = false;  // ... or for a message waiting on its room's join
  std::deque<std::string> held_;  // envelopes parsed while reading was suspended
  uint64_t message_counter_ = 0;  // for generated message ids
  core::Timer grace_timer_;
  Identity identity_;
  const Authenticator* auth_;
  core::Timer expiry_timer_;  // the token's exp + leeway
  std::string scratch_;
};

}  // namespace weir::cluster
