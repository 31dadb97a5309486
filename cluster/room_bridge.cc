// cluster/room_bridge.cc — membership views, link events and rooms frames to the shards.
#include "cluster/room_bridge.h"

#include <algorithm>

#include "cluster/room_wire.h"
#include "core/log.h"
#include "core/metrics.h"

namespace weir::cluster {
namespace {

core::Counter g_malformed("weir_cluster_room_frames_malformed_total",
                          "Rooms frames from peer links that failed to decode (dropped)");
core::Gauge g_view_nodes("weir_cluster_view_nodes",
                         "Members that own rooms in this node's view (alive and suspect)");

}  // namespace

RoomBridge::RoomBridge(core::Reactor& reactor, RoomService& service, PeerLinks& links)
    : service_(service),
      links_(links),
      view_(std::make_shared<ClusterView>()),
      reactor_(reactor),
      report_timer_([this] { report(); }),
      rooms_owned_(std::make_shared<RoomsOwned>(service)) {
  links_.set_frame_callback([this](const std::string& node, uint8_t type,
                                   std::string_view payload) { on_frame(node, type, payload); });
  links_.set_link_callback([this](const std::string& node, bool up) { on_link(node, up); });
  reactor_.schedule(report_timer_, kReportMs);
}

void RoomBridge::report() {
  std::string payload = encode_rooms_owned(static_cast<uint64_t>(service_.rooms_ordered()));
  for (const std::string& node : links_.up_nodes()) links_.send(node, kWireRoomsOwned, payload);
  reactor_.schedule(report_timer_, kReportMs);
}

std::map<std::string, uint64_t> RoomBridge::RoomsOwned::snapshot() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, uint64_t> owned = reported_;
  if (!self_.empty()) owned[self_] = static_cast<uint64_t>(service_.rooms_ordered());
  return owned;
}

void RoomBridge::update(const std::string& self, const std::vector<MemberInfo>& members) {
  auto view = std::make_shared<ClusterView>();
  view->self = self;
  std::vector<std::pair<std::string, net::SocketAddress>> peers;
  // A member back from dead (a partition healed, or it restarted): while we thought it dead it
  // thought the same of us, and each side ordered rooms the other owns. Every room we go on
  // ordering is fenced: continued from the store (sync) or in a new epoch, announced.
  bool fence = false;
  for (const MemberInfo& m : members) {
    MemberState& before = states_[m.node_id];
    bool gone = before == MemberState::kDead || before == MemberState::kLeft;
    bool back = m.state == MemberState::kAlive || m.state == MemberState::kSuspect;
    if (gone && back && m.node_id != self) fence = true;
    before = m.state;
  }
  for (const MemberInfo& m : members) {
    if (m.state != MemberState::kAlive && m.state != MemberState::kSuspect) continue;
    view->nodes.push_back(m.node_id);
    if (m.node_id != self) peers.emplace_back(m.node_id, m.address);  // TCP on the gossip port
  }
  if (std::find(view->nodes.begin(), view->nodes.end(), self) == view->nodes.end())
    view->nodes.push_back(self);
  std::sort(view->nodes.begin(), view->nodes.end());
  links_.set_peers(peers);
  {  // a member that is gone owns nothing; it reports again when it is back
    std::lock_guard lock(rooms_owned_->mutex_);
    rooms_owned_->self_ = self;
    std::erase_if(rooms_owned_->reported_,
                  [&view](const auto& entry) { return !view->contains(entry.first); });
  }
  if (view->nodes == view_->nodes && view_->self == self && !fence) return;  // incarnations
  if (fence) log_info("cluster: a member came back from dead: rooms this node orders are fenced");
  view->version = view_->version + 1;
  view_ = view;
  g_view_nodes.add(static_cast<int64_t>(view->nodes.size()) -
                   static_cast<int64_t>(view_nodes_counted_));
  view_nodes_counted_ = view->nodes.size();
  ShardMessage m{ShardMessage::Kind::kView};
  m.view = view_;
  m.status = fence ? 1 : 0;
  service_.shard(0).route(std::move(m));
}

void RoomBridge::fence() {
  log_info("cluster: this node was declared dead by others: rooms it orders are fenced");
  ShardMessage m{ShardMessage::Kind::kView};
  m.view = view_;
  m.status = 1;
  service_.shard(0).route(std::move(m));
}

void RoomBridge::on_link(const std::string& node, bool up) {
  ShardMessage m{ShardMessage::Kind::kLink};
  m.node = node;
  m.status = up ? 1 : 0;
  service_.shard(0).route(std::move(m));
}

void RoomBridge::on_frame(const std::string& node, uint8_t type, std::string_view payload) {
  if (type == kLinkFrameSwim) {
    if (stream_handler_) stream_handler_(node, payload);
    return;
  }
  if (type == kWireRoomsOwned) {
    uint64_t count = 0;
    if (decode_rooms_owned(payload, &count)) {
      std::lock_guard lock(rooms_owned_->mutex_);
      if (view_->contains(node)) rooms_owned_->reported_[node] = count;
      return;
    }
  }
  RoomWireMessage wire;
  if (!decode_room_wire(type, payload, &wire)) {
    if (malformed_++ % 1000 == 0)
      log_warn("cluster: malformed rooms frame (type %u, %zu bytes) from %s, dropped", type,
               payload.size(), node.c_str());
    g_malformed.inc();
    return;
  }
  using K = ShardMessage::Kind;
  K kind = K::kNodeInterest;
  switch (wire.type) {
    case RoomWireType::kInterest:
      kind = K::kNodeInterest;
      break;
    case RoomWireType::kUninterest:
      kind = K::kNodeUninterest;
      break;
    case RoomWireType::kPublish:
      kind = K::kNodePublish;
      break;
    case RoomWireType::kInterestAck:
      kind = K::kNodeInterestAck;
      break;
    case RoomWireType::kPublishResult:
      kind = K::kNodePublishResult;
      break;
    case RoomWireType::kDeliver:
      kind = K::kNodeDeliver;
      break;
  }
  ShardMessage m{kind};
  m.node = node;
  m.room_id = wire.room;
  m.epoch = wire.epoch;
  m.offset = wire.offset;
  m.request_id = wire.request;
  m.status = wire.status;
  m.delta = wire.retry_ms;
  if (kind == K::kNodePublish) {
    m.status = wire.flags;
    m.client_message_id = wire.flags & kWireClientMessageId;
    m.content = wire.content;
    m.message_id = wire.message_id;
    m.sent_at = wire.sent_at;
    m.sender = wire.sender;
    m.traceparent = wire.traceparent;
    m.tracestate = wire.tracestate;
  } else if (kind == K::kNodeDeliver) {
    m.frame = RoomShard::frame_for_envelope(wire.envelope, wire.offset);
  }
  service_.shard(0).route(std::move(m));
}

}  // namespace weir::cluster
