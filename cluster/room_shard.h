// cluster/room_shard.h — one reactor thread's part of the rooms: the rooms this thread owns
// (offsets, epoch, which threads have members) and this thread's members of any room.
//
// Ownership: a room belongs to the thread hash(room_id) % threads. Its owner assigns every
// offset and encodes each message once; the encoded frame goes by reference to the local
// members and, through one batched mailbox post per destination thread and iteration, to the
// threads that have members. Each thread gathers a room's frames of one iteration and fans
// them out at its end (an early reactor hook, before the connections flush): the frames are
// copied once into one buffer, and each member queues the lot as one slice, so a member costs
// one touch, one queue append and one writev per iteration however many messages arrived.
// Joins and leaves fan out what is pending first, so membership still changes between two
// offsets exactly. Mailbox order per (owner, thread) pair is FIFO, and join replies
// travel the same queue as deliveries, so every member sees one gap-free total order per room
// from the offset its room_joined announced.
//
// Threads only exchange ShardMessages (Seastar-style): no room or member is touched from
// another thread, and no lock is taken.
//
// Thread-safety: every method runs on the shard's own reactor thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster/room_types.h"
#include "cluster/room_wire.h"
#include "core/gcra.h"
#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "store/backend.h"

namespace weir::cluster {

class Member;
class RoomService;

// This thread's view of a room it has members in.
struct LocalRoom {
  std::string id;
  uint64_t key = 0;  // the owner thread's Room::key: names the incarnation across threads
  std::vector<Member*> members;
  std::vector<Frame> pending;               // arrived this iteration, fanned out at its end
  uint64_t last_offset = 0;                 // of the last frame fanned out here
  bool paused = false;                      // backpressure policy: a member somewhere is slow
  std::vector<uint64_t> paused_publishers;  // members whose reading we suspended
};

// A room's frames of one iteration as members take them: `buffer` holds them back to back
// (offset, length: the whole run), so a member with room for all of them queues one slice.
// `frames` are the same frames one by one, for a member that must take them singly (its
// slow-consumer policy stops part way).
struct FrameBatch {
  const core::SharedBuffer* buffer = nullptr;
  uint32_t offset = 0;
  uint32_t length = 0;
  std::span<const Frame> frames;
  uint64_t text_bytes = 0;  // the frames' payloads (envelopes) in all, for the metrics
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class RoomShard : public core::IterationHook {
 public:
  static constexpr uint64_t kTransitCap = 64 * 1024;
  static constexpr size_t kFrameHeaderRoom = 10;  // the largest unmasked text frame header

  // status: 200, 404 (no room), 409 (duplicate: offset is the original), 429 (room rate limit:
  // offset is the retry delay in ms), 503 (room paused), 507 (sync durability: the store failed).
  using PublishDone = std::function<void(int status, uint64_t offset, uint64_t epoch)>;
  using InspectDone =
      std::function<void(int status, uint64_t members, uint64_t offset, uint64_t epoch)>;

  RoomShard(RoomService& service, core::Reactor& reactor, int index);
  int index() const { return index_; }
  core::Reactor& reactor() { return reactor_; }

  // ---- members on this thread ----
  void add_member(Member& member);
  void remove_member(Member& member);  // leaves every room the member is in or joining
  void join(Member& member, std::string_view room_id);
  void leave(Member& member, std::string_view room_id);
  // Publishes to a room the member has joined; fields are copied only when the owner is
  // another thread.
  // `client_id`: the message_id came from the client, so the room deduplicates it.
  void publish(Member& member, std::string_view room_id, std::string_view content,
               std::string_view message_id, bool client_id, std::string_view sent_at,
               std::string_view traceparent, std::string_view tracestate);
  // Backpressure policy: a member crossed its high (true) or low (false) watermark.
  void member_blocked(Member& member, bool blocked);
  LocalRoom* local_room(std::string_view room_id);

  // ---- the HTTP API (answers come back on this thread) ----
  void api_publish(std::string room_id, std::string content, std::string message_id, bool client_id,
                   std::string traceparent, std::string tracestate, PublishDone done);
  void api_inspect(std::string room_id, InspectDone done);

  // ---- between shards ----
  void receive(std::vector<ShardMessage>& batch);
  void on_end_of_iteration() override;  // fans out the rooms' pending frames, posts the outboxes

  // ---- between nodes (cluster/room_bridge.h, on thread 0) ----
  // A message from another node: goes to the room's owner thread (kView and kLink to every
  // thread), in arrival order.
  void route(ShardMessage&& message);
  // A frame whose envelope starts kFrameHeaderRoom bytes into its buffer (as every room frame
  // does), and that envelope.
  static Frame frame_for_envelope(std::string_view json, uint64_t offset);
  static std::string_view envelope_of(const Frame& frame);

  // Shard thread only, like everything here (tests read them through the reactor).
  size_t owned_rooms() const { return owned_.size(); }
  size_t local_rooms() const { return local_.size(); }

 private:
  struct Room {
    std::string id;
    uint64_t incarnation = 0;  // this shard's name for this Room object (stale completions)
    // Names the room to this node's threads (LocalRoom::key): unique in the process, unlike
    // the epoch, which another node may have chosen.
    uint64_t key = 0;
    uint64_t epoch = 0;
    uint64_t last_offset = 0;  // assigned
    uint64_t delivered = 0;    // handed to the members' threads (sync: committed first)
    // With a store, a new Room first reads the stored epoch and last offset; what arrives for
    // it meanwhile waits here, in order.
    bool loading = false;
    std::vector<ShardMessage> waiting;
    core::Gcra rate;  // --room-rate-limit (also the fallback when Redis cannot answer)
    // --room-rate-limit with Redis: publishes waiting, in order, for the shared GCRA's answer.
    std::deque<ShardMessage> rate_waiting;
    // --dedupe-window: client message ids seen, with their offset, oldest first for expiry.
    std::unordered_map<std::string, uint64_t> seen;
    std::deque<std::pair<int64_t, std::string>> seen_order;
    uint64_t members = 0;
    int64_t blocked = 0;             // members above their high watermark (backpressure policy)
    std::vector<uint32_t> interest;  // members per thread
    // Backpressure policy: frame bytes sent to each other thread and not yet fanned out
    // there. Past kTransitCap the room holds itself paused (one more count in `blocked`), so
    // a thread that lags behind its mailbox cannot be handed an unbounded backlog.
    std::vector<uint64_t> transit;
    bool transit_hold = false;
    // In a cluster (cluster/cluster_view.h): the node that orders the room. Empty: this node
    // does, and `nodes` are the other nodes with members, which it forwards every message to.
    // Otherwise this Room mirrors that node's: it forwards publishes there and hands what
    // comes back to this node's threads; `registered` once the owner acknowledged interest.
    std::string owner_node;
    std::vector<std::string> nodes;
    bool registered = false;
    // Set by a fence (see fence()): the furthest position anyone is known to have delivered.
    // A stored state behind it is stale, and a new epoch starts above floor_epoch.
    uint64_t floor_epoch = 0, floor_offset = 0;
    bool counted_ordering = false;  // in RoomService::rooms_ordered (see recount())
  };

  void send(int thread, ShardMessage&& message);
  void handle(ShardMessage& message);
  void owner_join(ShardMessage& m);
  void owner_leave(ShardMessage& m);
  void owner_publish(ShardMessage& m);
  Room& create_room(const std::string& id);
  // The room a message needs, made if missing; null when it is loading (the message then
  // waits in its queue and comes back through handle()).
  Room* room_for(ShardMessage& m);
  void room_loaded(const std::string& id, uint64_t incarnation, store::Status status,
                   const store::RoomState& state);
  bool is_duplicate(Room& room, const ShardMessage& m, uint64_t* offset);
  void load_recent_ids(Room& room);
  void seed_seen_ids(Room& room, const std::vector<store::StoredMessage>& messages);
  void finish_loading(Room& room);
  bool shared_rate_limit() const;
  void on_rate_decision(const std::string& id, uint64_t incarnation, store::Status status,
                        store::RateDecision decision);
  // `origin`: who published it (a node's publish is named in that node's copy).
  struct PublishOrigin;
  void deliver_published(Room& room, const Frame& frame, const PublishOrigin* origin);
  void remember_closed(const Room& room);  // an emptied room's epoch and offset, for its return
  using RoomMap = std::unordered_map<std::string, Room, StringHash, std::equal_to<>>;
  void erase_room(RoomMap::iterator it);
  void persist(const Room& room, const Frame& frame);
  void submit_appends();  // this iteration's appends, as one store request
  void on_committed(store::Status status);
  // Who waits for a publish's outcome: the HTTP API (request_id) or a member.
  struct PublishOrigin {
    int thread = -1;
    uint64_t request_id = 0, member_id = 0;
    uint64_t bytes = 0;  // content size, which a member counted as in flight
    std::string room_id, message_id;
    std::string node;           // another node's publish: request_id is that node's
    bool wants_result = false;  // ... and it waits for the answer even on success (HTTP API)
  };
  static PublishOrigin origin_of(const ShardMessage& m);
  void answer_publish(const PublishOrigin& to, int status, uint64_t offset, uint64_t epoch,
                      int64_t retry_ms = 0);
  void owner_block(ShardMessage& m);
  void owner_fanned_out(ShardMessage& m);
  void apply_block(Room& room, int64_t delta);
  void count_transit(Room& room, const Frame& frame);
  void release_transit_hold(Room& room);
  void owner_inspect(ShardMessage& m);
  void on_joined(ShardMessage& m);
  void on_deliver(ShardMessage& m);
  void flush_room(LocalRoom& room);  // hands the room's pending frames to its members
  void on_paused(ShardMessage& m, bool paused);
  void on_api_answer(ShardMessage& m);
  Frame encode(const Room& room, const ShardMessage& m, uint64_t offset);
  void broadcast(const Room& room, ShardMessage::Kind kind, const Frame* frame);
  void leave_local(Member& member, LocalRoom& room);
  int owner_of(std::string_view room_id) const;
  // ---- cluster (room_shard_cluster.cc) ----
  bool mirrors(const Room& room) const { return !room.owner_node.empty(); }
  void recount(Room& room);  // after the room started or stopped ordering
  const std::string* owner_node_of(std::string_view room_id) const;  // null: this node
  void send_to_node(const std::string& node, const RoomWireMessage& wire,
                    const Frame* envelope = nullptr);
  void handle_cluster(ShardMessage& m);
  void node_interest(ShardMessage& m);
  void node_uninterest(ShardMessage& m);
  void node_interest_ack(ShardMessage& m);
  void node_publish_result(ShardMessage& m);
  void node_deliver(ShardMessage& m);
  void forward_publish(const std::string& owner, ShardMessage& m);
  void forward_to_nodes(const Room& room, const Frame& frame, const PublishOrigin* origin);
  void register_interest(Room& room);
  void on_view(ShardMessage& m);
  void on_link(ShardMessage& m);
  void retry_registrations();
  void become_mirror(const std::string& id, const std::string& owner);
  void become_owner(Room& room);
  // This node orders `room` but another node ordered it too meanwhile (a pause or partition
  // outlived failure detection): continue from the store (sync) or in a new epoch beyond
  // the furthest position known, (epoch, offset) or the room's own, and tell the members.
  void fence(Room& room, uint64_t epoch, uint64_t offset, const char* why);
  uint64_t epoch_after(uint64_t floor);  // a new epoch, above `floor`
  void continue_room(Room& room, uint64_t epoch, uint64_t offset);
  void on_rekey(ShardMessage& m);
  void fail_forwarded(const std::string& node, bool moved_only);
  bool close_if_unused(const std::string& id);  // erases a room nobody here or elsewhere uses

  RoomService& service_;
  core::Reactor& reactor_;
  int index_;
  RoomMap owned_;
  std::unordered_map<std::string, LocalRoom, StringHash, std::equal_to<>> local_;
  std::unordered_map<uint64_t, LocalRoom*> local_by_key_;
  std::unordered_map<uint64_t, Member*> members_;
  std::vector<std::vector<ShardMessage>> outbox_;  // per destination thread
  std::vector<uint64_t> pending_rooms_;            // keys of local rooms with pending frames
  uint64_t erased_rooms_ = 0;                      // local rooms erased so far (see flush_room)
  std::unordered_map<uint64_t, PublishDone> pending_publish_;
  std::unordered_map<uint64_t, InspectDone> pending_inspect_;
  uint64_t next_request_ = 1;
  uint64_t next_incarnation_ = 1;
  // Appends of this iteration, submitted as one store request at its end (or before a join is
  // answered, so a resume's read finds them). Under sync durability each one's delivery
  // waits for that request's completion: `committing_` holds them, batch after batch.
  struct Committing {
    Frame frame;
    std::string room_id;
    uint64_t incarnation = 0, epoch = 0;
    PublishOrigin origin;
    bool dedupe = false;
  };
  // Rooms this shard owned that emptied, newest last: a room that comes back continues its
  // epoch and offsets from here without asking the store (and so does a room that never had a
  // message, which the store knows nothing of). At most kMaxClosedRooms.
  struct ClosedRoom {
    store::RoomState state;
    uint64_t seq = 0;  // its entry in closed_order_ (a room may close many times)
  };
  std::unordered_map<std::string, ClosedRoom> closed_rooms_;
  std::deque<std::pair<std::string, uint64_t>> closed_order_;
  uint64_t closed_seq_ = 0;
  std::vector<store::StoredMessage> appends_;
  std::vector<Committing> to_commit_;               // this iteration's, in offset order
  std::deque<std::vector<Committing>> committing_;  // submitted, oldest first
  // Cluster: the alive members (null: a single node), this node's publishes waiting for
  // another node's answer (by request id), and a retry for registrations the owner refused.
  std::shared_ptr<const ClusterView> view_;
  struct Forwarded {
    PublishOrigin origin;
    std::string owner_node;
  };
  std::unordered_map<uint64_t, Forwarded> forwarded_;
  core::Timer registration_timer_;
  std::string wire_scratch_;
};

}  // namespace weir::cluster
