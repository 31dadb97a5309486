// cluster/room_bridge.h — joins the rooms to the cluster: it turns membership changes into
// the rooms' view of who owns what (cluster/cluster_view.h), keeps a peer link to every alive
// member, and carries the rooms' traffic between the links and the room shards.
//
// Outgoing frames are encoded on each room's owner thread and reach the links through shard
// 0's mailbox (RoomService::set_node_sender); incoming ones are decoded here, a kDeliver's
// envelope copied once into a frame that every member on this node shares, and routed to the
// room's owner thread in arrival order. Link ups and downs and view changes travel the same
// way, so a thread sees them in order with the frames around them. Membership state syncs
// (frame type kLinkFrameSwim) share the links and go to the stream handler, not the rooms.
//
// Thread-safety: a RoomBridge lives on reactor 0 with the membership and the links; every
// method runs there, except rooms_owned().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/membership.h"
#include "cluster/peer_link.h"
#include "cluster/room_service.h"

namespace weir::cluster {

class RoomBridge {
 public:
  RoomBridge(core::Reactor& reactor, RoomService& service, PeerLinks& links);
  RoomBridge(const RoomBridge&) = delete;
  RoomBridge& operator=(const RoomBridge&) = delete;

  // The membership changed: alive and suspect members own rooms (a suspect may yet refute, and
  // moving its rooms twice costs more than waiting for the verdict); links follow them.
  void update(const std::string& self, const std::vector<MemberInfo>& members);
  // Others declared this node dead (it refuted): they may have ordered our rooms meanwhile, so
  // every room this node orders is fenced (see update()).
  void fence();
  // Receives the kLinkFrameSwim frames (the membership's handle_stream); unset: dropped.
  using StreamHandler = std::function<void(const std::string& node, std::string_view message)>;
  void set_stream_handler(StreamHandler handler) { stream_handler_ = std::move(handler); }

  // Rooms each member orders: this node's own count now, the others' as they last reported it
  // (every kReportMs over the link; absent until a first report). Shared, so a reader on
  // another thread may outlive the bridge.
  class RoomsOwned {
   public:
    explicit RoomsOwned(const RoomService& service) : service_(service) {}
    std::map<std::string, uint64_t> snapshot() const;  // any thread

   private:
    friend class RoomBridge;
    const RoomService& service_;
    mutable std::mutex mutex_;
    std::map<std::string, uint64_t> reported_;  // node -> rooms it orders, as it said
    std::string self_;
  };
  std::shared_ptr<const RoomsOwned> rooms_owned() const { return rooms_owned_; }
  static constexpr int64_t kReportMs = 1000;

 private:
  void report();
  void on_frame(const std::string& node, uint8_t type, std::string_view payload);
  void on_link(const std::string& node, bool up);

  RoomService& service_;
  PeerLinks& links_;
  std::shared_ptr<const ClusterView> view_;
  std::map<std::string, MemberState> states_;  // as last seen, to notice returns from dead
  uint64_t malformed_ = 0;                     // frames dropped, for the log's rate limit
  size_t view_nodes_counted_ = 0;              // this bridge's share of the gauge
  core::Reactor& reactor_;
  core::Timer report_timer_;
  std::shared_ptr<RoomsOwned> rooms_owned_;
  StreamHandler stream_handler_;
};

}  // namespace weir::cluster
