// cluster/room_shard_cluster.cc — rooms across nodes: the RoomShard methods that register
// interest with a room's owner node, forward publishes to it, hand its ordered messages to
// this node's threads, and move rooms when the membership changes.
//
// A room's owner thread on every node with members holds its Room. On the room's owner node
// (cluster/cluster_view.h) the Room orders: it assigns offsets as on a single node and also
// forwards each message, encoded once, to every node that registered interest. Elsewhere the
// Room mirrors: it registers with the owner (kInterest; joins wait until the owner answered
// with its epoch and offset), forwards publishes, and hands the owner's messages to this
// node's threads as if it had ordered them. Every message arrives with its offset, so a
// mirror that sees a gap (a link reset) or another epoch (the owner moved) tells its members
// with `lagged` or `resumed{recovered:false}`: never a silent gap.
#include <algorithm>
#include <cstring>

#include "cluster/member.h"
#include "cluster/room_service.h"
#include "cluster/room_shard.h"
#include "core/log.h"
#include "core/metrics.h"
#include "ws/frame_encoder.h"

namespace weir::cluster {
namespace {

core::Counter g_forwarded("weir_cluster_room_messages_total",
                          "Room messages between nodes, by direction", "direction=\"out\"");
core::Counter g_received("weir_cluster_room_messages_total",
                         "Room messages between nodes, by direction", "direction=\"in\"");
core::Counter g_gaps("weir_cluster_room_discontinuities_total",
                     "Mirrored rooms whose owner's offsets or epoch jumped, announced to members");
core::Counter g_moves("weir_cluster_room_moves_total",
                      "Rooms whose owner node changed while this node had members in them");
constexpr char kFencesHelp[] =
    "Rooms this node ordered while another node ordered them too, by what revealed it";
core::Counter g_fences_interest("weir_cluster_room_fences_total", kFencesHelp,
                                "reason=\"interest\"");
core::Counter g_fences_store("weir_cluster_room_fences_total", kFencesHelp,
                             "reason=\"store_conflict\"");
core::Counter g_fences_view("weir_cluster_room_fences_total", kFencesHelp, "reason=\"view\"");

constexpr int64_t kRegistrationRetryMs = 250;

}  // namespace

const std::string* RoomShard::owner_node_of(std::string_view room_id) const {
  if (!view_) return nullptr;
  const std::string& owner = view_->owner_of(room_id);
  return owner == view_->self ? nullptr : &owner;
}

void RoomShard::route(ShardMessage&& message) {
  if (message.kind == ShardMessage::Kind::kView || message.kind == ShardMessage::Kind::kLink) {
    for (int t = 0; t < service_.threads(); ++t) {
      ShardMessage copy{message.kind};
      copy.node = message.node;
      copy.status = message.status;
      copy.view = message.view;
      send(t, std::move(copy));
    }
    return;
  }
  int thread = owner_of(message.room_id);
  send(thread, std::move(message));
}

// Frames leave through thread 0, which owns the peer links; the header is encoded here, on
// the room's thread, and a kDeliver's envelope goes by reference to the shared frame.
void RoomShard::send_to_node(const std::string& node, const RoomWireMessage& wire,
                             const Frame* envelope) {
  ShardMessage m{ShardMessage::Kind::kToNode};
  m.node = node;
  m.status = static_cast<int>(wire.type);
  m.room_id = wire.room;
  m.request_id = wire.request;
  encode_room_wire(&m.content, wire);
  if (envelope) m.frame = *envelope;
  send(0, std::move(m));
}

Frame RoomShard::frame_for_envelope(std::string_view json, uint64_t offset) {
  core::SharedBuffer buffer = core::SharedBuffer::allocate(kFrameHeaderRoom + json.size());
  char* out = buffer.mutable_data() + kFrameHeaderRoom;
  std::memcpy(out, json.data(), json.size());
  size_t header = ws::frame_header_size(json.size(), false);
  ws::encode_frame_header(out - header, ws::Opcode::kText, true, false, json.size(), nullptr);
  buffer.set_size(kFrameHeaderRoom + json.size());
  Frame frame;
  frame.buffer = std::move(buffer);
  frame.offset = static_cast<uint32_t>(kFrameHeaderRoom - header);
  frame.length = static_cast<uint32_t>(header + json.size());
  frame.room_offset = offset;
  return frame;
}

std::string_view RoomShard::envelope_of(const Frame& frame) {
  return std::string_view(frame.buffer.data() + kFrameHeaderRoom,
                          frame.length - (kFrameHeaderRoom - frame.offset));
}

void RoomShard::handle_cluster(ShardMessage& m) {
  using K = ShardMessage::Kind;
  switch (m.kind) {
    case K::kNodeInterest:
      return node_interest(m);
    case K::kNodeUninterest:
      return node_uninterest(m);
    case K::kNodePublish:
      return owner_publish(m);
    case K::kNodeInterestAck:
      return node_interest_ack(m);
    case K::kNodePublishResult:
      return node_publish_result(m);
    case K::kNodeDeliver:
      return node_deliver(m);
    case K::kView:
      return on_view(m);
    case K::kLink:
      return on_link(m);
    case K::kRekey:
      return on_rekey(m);
    case K::kToNode: {
      std::string_view parts[2] = {m.content, {}};
      size_t count = 1;
      if (m.frame.length) parts[count++] = envelope_of(m.frame);
      if (service_.send_to_node(m.node, static_cast<uint8_t>(m.status),
                                std::span<const std::string_view>(parts, count))) {
        if (m.status == static_cast<int>(RoomWireType::kDeliver)) g_forwarded.inc();
        return;
      }
      // The link is down: a publish fails at once (its sender hears 503) and a registration
      // waits for the link; whatever else was lost is caught by offsets on re-registration.
      if (m.status == static_cast<int>(RoomWireType::kPublish)) {
        ShardMessage failed{K::kNodePublishResult};
        failed.node = m.node;
        failed.room_id = std::move(m.room_id);
        failed.request_id = m.request_id;
        failed.status = 503;
        route(std::move(failed));
      } else if (m.status == static_cast<int>(RoomWireType::kInterest)) {
        ShardMessage refused{K::kNodeInterestAck};
        refused.node = m.node;
        refused.room_id = std::move(m.room_id);
        refused.status = kWireNotOwner;
        route(std::move(refused));
      }
      return;
    }
    default:
      return;
  }
}

// ---------------------------------------------------------------- the owner node's side

void RoomShard::node_interest(ShardMessage& m) {
  RoomWireMessage ack;
  ack.type = RoomWireType::kInterestAck;
  ack.room = m.room_id;
  auto it = owned_.find(m.room_id);
  if (owner_node_of(m.room_id) || (it != owned_.end() && mirrors(it->second))) {
    ack.status = kWireNotOwner;  // our views differ for now: the sender asks again
    return send_to_node(m.node, ack);
  }
  Room* found = room_for(m);
  if (!found) return;
  Room& room = *found;
  // The node saw a position this room never reached here: someone else ordered it while we
  // could not be heard (paused, partitioned). Epochs grow with every new owner (epoch_after),
  // so a later epoch, or more of ours, means our ordering is stale.
  if (m.epoch > room.epoch || (m.epoch == room.epoch && m.offset > room.delivered)) {
    fence(room, m.epoch, m.offset, "interest");
    if (room.loading) {
      room.waiting.push_back(std::move(m));  // answered from the reloaded state
      return;
    }
  }
  if (std::find(room.nodes.begin(), room.nodes.end(), m.node) == room.nodes.end())
    room.nodes.push_back(m.node);
  ack.epoch = room.epoch;
  ack.offset = room.delivered;  // what is still committing (sync) follows the ack
  send_to_node(m.node, ack);
}

void RoomShard::node_uninterest(ShardMessage& m) {
  auto it = owned_.find(m.room_id);
  if (it == owned_.end() || mirrors(it->second)) return;
  auto& nodes = it->second.nodes;
  nodes.erase(std::remove(nodes.begin(), nodes.end(), m.node), nodes.end());
  close_if_unused(m.room_id);
}

// Each node with members gets the message once; its own publish carries its request id, so
// it can credit the sender (the backpressure policy's in-flight count) and answer the API.
void RoomShard::forward_to_nodes(const Room& room, const Frame& frame,
                                 const PublishOrigin* origin) {
  if (room.nodes.empty()) return;
  RoomWireMessage wire;
  wire.type = RoomWireType::kDeliver;
  wire.room = room.id;
  wire.epoch = room.epoch;
  wire.offset = frame.room_offset;
  for (const std::string& node : room.nodes) {
    wire.request = origin && origin->node == node ? origin->request_id : 0;
    send_to_node(node, wire, &frame);
  }
}

// ---------------------------------------------------------------- a mirroring node's side

void RoomShard::register_interest(Room& room) {
  room.registered = false;
  RoomWireMessage wire;
  wire.type = RoomWireType::kInterest;
  wire.room = room.id;
  if (!room.loading) {  // a new mirror knows nothing yet; an old one tells where it is
    wire.epoch = room.epoch;
    wire.offset = room.delivered;
  }
  send_to_node(room.owner_node, wire);
}

void RoomShard::forward_publish(const std::string& owner, ShardMessage& m) {
  uint64_t request = next_request_++;
  Forwarded& f = forwarded_[request];
  f.origin = origin_of(m);
  f.origin.room_id = m.room_id;  // an API publish's answer finds its way back by room
  f.owner_node = owner;
  RoomWireMessage wire;
  wire.type = RoomWireType::kPublish;
  wire.room = m.room_id;
  wire.request = request;
  wire.flags =
      (m.client_message_id ? kWireClientMessageId : 0) | (m.request_id ? kWireWantsResult : 0);
  wire.content = m.content;
  wire.message_id = m.message_id;
  wire.sent_at = m.sent_at;
  wire.sender = m.sender;
  wire.traceparent = m.traceparent;
  wire.tracestate = m.tracestate;
  send_to_node(owner, wire);
}

void RoomShard::node_interest_ack(ShardMessage& m) {
  auto it = owned_.find(m.room_id);
  if (it == owned_.end() || !mirrors(it->second) || it->second.owner_node != m.node) return;
  Room& room = it->second;
  if (m.status == kWireNotOwner) {
    if (!registration_timer_.pending())
      reactor_.schedule(registration_timer_, kRegistrationRetryMs);
    return;
  }
  room.registered = true;
  if (room.loading) {
    room.epoch = m.epoch;
    room.last_offset = room.delivered = m.offset;
    return finish_loading(room);
  }
  continue_room(room, m.epoch, m.offset);
}

void RoomShard::node_publish_result(ShardMessage& m) {
  auto it = forwarded_.find(m.request_id);
  if (it == forwarded_.end()) return;
  PublishOrigin origin = std::move(it->second.origin);
  forwarded_.erase(it);
  answer_publish(origin, m.status, m.offset, m.epoch, m.delta);
}

void RoomShard::node_deliver(ShardMessage& m) {
  auto it = owned_.find(m.room_id);
  if (it == owned_.end()) return;  // our last member left meanwhile
  Room& room = it->second;
  if (!mirrors(room) || room.owner_node != m.node || !room.registered) return;  // a past owner
  g_received.inc();
  if (m.epoch == room.epoch && m.offset <= room.delivered) return;  // already had it
  if (m.epoch != room.epoch || m.offset != room.delivered + 1)
    continue_room(room, m.epoch, m.offset - 1);
  Frame& frame = m.frame;
  frame.room_offset = m.offset;
  if (m.request_id) {
    if (auto f = forwarded_.find(m.request_id); f != forwarded_.end()) {
      frame.sender = f->second.origin.member_id;
      frame.sender_bytes = static_cast<uint32_t>(f->second.origin.bytes);
      if (!f->second.origin.wants_result) forwarded_.erase(f);  // a member hears by its copy
    }
  }
  room.last_offset = m.offset;
  deliver_published(room, frame, nullptr);
}

// The owner's offsets or epoch no longer follow ours: every thread with members hears it
// (after the frames it already has), and its members are told what they missed.
void RoomShard::continue_room(Room& room, uint64_t epoch, uint64_t offset) {
  if (room.epoch != 0 && (epoch != room.epoch || offset != room.delivered)) {
    g_gaps.inc();
    log_info("room %s: continues at epoch %llu offset %llu (was epoch %llu offset %llu)",
             room.id.c_str(), static_cast<unsigned long long>(epoch),
             static_cast<unsigned long long>(offset), static_cast<unsigned long long>(room.epoch),
             static_cast<unsigned long long>(room.delivered));
    for (int t = 0; t < static_cast<int>(room.interest.size()); ++t) {
      if (room.interest[t] == 0) continue;
      ShardMessage rekey{ShardMessage::Kind::kRekey};
      rekey.room_key = room.key;
      rekey.epoch = epoch;
      rekey.offset = offset;
      rekey.delta = static_cast<int64_t>(room.delivered);
      rekey.status = epoch != room.epoch || offset < room.delivered ? 1 : 0;
      send(t, std::move(rekey));
    }
  }
  room.epoch = epoch;
  room.last_offset = room.delivered = offset;
}

void RoomShard::on_rekey(ShardMessage& m) {
  auto it = local_by_key_.find(m.room_key);
  if (it == local_by_key_.end()) return;
  flush_room(*it->second);  // what arrived before the break goes out first
  it = local_by_key_.find(m.room_key);
  if (it == local_by_key_.end()) return;
  LocalRoom& room = *it->second;
  room.last_offset = m.offset;
  std::vector<Member*> members = room.members;  // a notice may close a slow member
  const std::string id = room.id;
  for (Member* member : members) {
    if (m.status == 1)
      member->room_restarted(id, m.offset, m.epoch);
    else
      member->room_gap(id, static_cast<uint64_t>(m.delta) + 1, m.offset);
  }
}

// Publishes forwarded to `node` (all of them, or those whose room it no longer owns) are
// answered 503: the node is gone, or its answer would never reach us. They may have been
// delivered all the same; a sender that retries with the same message_id is deduplicated.
void RoomShard::fail_forwarded(const std::string& node, bool moved_only) {
  for (auto it = forwarded_.begin(); it != forwarded_.end();) {
    const std::string* owner = moved_only ? owner_node_of(it->second.origin.room_id) : nullptr;
    if (it->second.owner_node != node || (moved_only && owner && *owner == node)) {
      ++it;
      continue;
    }
    PublishOrigin origin = std::move(it->second.origin);
    it = forwarded_.erase(it);
    answer_publish(origin, 503, 0, 0);
  }
}

// ---------------------------------------------------------------- membership changes

void RoomShard::on_view(ShardMessage& m) {
  view_ = m.view;
  closed_rooms_.clear();  // another node may have ordered them since
  closed_order_.clear();
  std::vector<std::string> ids;
  ids.reserve(owned_.size());
  for (const auto& [id, room] : owned_) ids.push_back(id);
  std::vector<std::string> owners;
  for (const auto& [request, f] : forwarded_) owners.push_back(f.owner_node);
  std::sort(owners.begin(), owners.end());
  owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
  for (const std::string& node : owners) fail_forwarded(node, /*moved_only=*/true);
  for (const std::string& id : ids) {
    auto it = owned_.find(id);
    if (it == owned_.end()) continue;
    Room& room = it->second;
    const std::string* owner = owner_node_of(id);
    if (!mirrors(room)) {
      if (owner) {
        become_mirror(id, *owner);
        continue;
      }
      auto gone = [&](const std::string& node) { return !view_->contains(node); };
      room.nodes.erase(std::remove_if(room.nodes.begin(), room.nodes.end(), gone),
                       room.nodes.end());
      if (close_if_unused(id)) continue;
      if (m.status == 1) fence(room, 0, 0, "view");  // see RoomBridge::update
    } else if (!owner) {
      become_owner(room);
    } else if (*owner != room.owner_node) {
      g_moves.inc();
      room.owner_node = *owner;
      register_interest(room);
    }
  }
}

void RoomShard::become_mirror(const std::string& id, const std::string& owner) {
  Room& room = owned_.at(id);
  g_moves.inc();
  for (ShardMessage& waiting : room.rate_waiting) answer_publish(origin_of(waiting), 503, 0, 0);
  room.rate_waiting.clear();
  room.nodes.clear();
  room.owner_node = owner;
  recount(room);
  if (room.members == 0 && !room.loading) {
    erase_room(owned_.find(id));
    return;
  }
  register_interest(room);  // a loading room keeps waiting: now for the owner's answer
}

// A room this node mirrored until now: it orders it from here on.
void RoomShard::become_owner(Room& room) {
  g_moves.inc();
  room.owner_node.clear();
  room.registered = false;
  recount(room);
  bool waited = room.loading;  // for the old owner's answer, which will not come now
  room.loading = false;
  fence(room, 0, 0, nullptr);
  if (waited && !room.loading) finish_loading(room);
}

// Under sync durability with a store, everything delivered was committed first, so the stored
// offsets continue the room exactly (room_loaded); otherwise the last messages may be missing
// from the store and the room starts a new epoch (members hear resumed{recovered:false}).
// Either way the room's epoch never goes back below `floor` (what another node ordered).
void RoomShard::fence(Room& room, uint64_t epoch, uint64_t offset, const char* why) {
  if (why) {
    if (std::strcmp(why, "interest") == 0) g_fences_interest.inc();
    if (std::strcmp(why, "store_conflict") == 0) g_fences_store.inc();
    if (std::strcmp(why, "view") == 0) g_fences_view.inc();
    log_warn("room %s: fenced (%s) at epoch %llu offset %llu: another node ordered it too",
             room.id.c_str(), why, static_cast<unsigned long long>(room.epoch),
             static_cast<unsigned long long>(room.delivered));
  }
  auto raise_floor = [&room](uint64_t e, uint64_t o) {
    if (e > room.floor_epoch || (e == room.floor_epoch && o > room.floor_offset)) {
      room.floor_epoch = e;
      room.floor_offset = o;
    }
  };
  raise_floor(room.epoch, room.delivered);
  raise_floor(epoch, offset);
  if (room.loading) return;  // a load is under way: it honours the floor
  store::Store* store = service_.store();
  if (store && service_.config().durability == Durability::kSync) {
    room.loading = true;
    submit_appends();  // this iteration's appends complete before the state is read
    store->room_state(room.id, [this, id = room.id, incarnation = room.incarnation](
                                   store::Status status, store::RoomState state) {
      room_loaded(id, incarnation, status, state);
    });
    return;
  }
  continue_room(room, epoch_after(room.floor_epoch), 0);
}

uint64_t RoomShard::epoch_after(uint64_t floor) {
  return std::max(service_.new_epoch(), floor + 1);
}

void RoomShard::on_link(ShardMessage& m) {
  if (m.status == 1) return retry_registrations();
  fail_forwarded(m.node, /*moved_only=*/false);
  std::vector<std::string> unused;
  for (auto& [id, room] : owned_) {
    if (mirrors(room)) {
      if (room.owner_node == m.node) room.registered = false;
      continue;
    }
    auto& nodes = room.nodes;
    nodes.erase(std::remove(nodes.begin(), nodes.end(), m.node), nodes.end());
    if (nodes.empty() && room.members == 0) unused.push_back(id);
  }
  for (const std::string& id : unused) close_if_unused(id);
  if (!registration_timer_.pending()) reactor_.schedule(registration_timer_, 1000);
}

void RoomShard::retry_registrations() {
  std::vector<std::string> ids;
  for (const auto& [id, room] : owned_)
    if (mirrors(room) && !room.registered) ids.push_back(id);
  for (const std::string& id : ids) {
    auto it = owned_.find(id);
    if (it == owned_.end()) continue;
    const std::string* owner = owner_node_of(id);
    if (!owner) {
      become_owner(it->second);
      continue;
    }
    it->second.owner_node = *owner;
    register_interest(it->second);
  }
}

bool RoomShard::close_if_unused(const std::string& id) {
  auto it = owned_.find(id);
  if (it == owned_.end()) return false;
  Room& room = it->second;
  if (room.members > 0 || !room.nodes.empty() || room.loading) return false;
  if (mirrors(room)) {
    RoomWireMessage wire;
    wire.type = RoomWireType::kUninterest;
    wire.room = room.id;
    send_to_node(room.owner_node, wire);
  } else {
    remember_closed(room);
    for (ShardMessage& waiting : room.rate_waiting)  // nobody left to deliver them to
      answer_publish(origin_of(waiting), 404, 0, 0);
  }
  erase_room(it);
  return true;
}

}  // namespace weir::cluster
