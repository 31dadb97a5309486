// cluster/peer_link.h — one TCP connection per pair of weir nodes, carrying length-prefixed
// binary frames between them (room forwarding rides on these).
//
//   frame = [u32 big-endian length of (type + payload)][u8 type][payload]
//
// Who dials: of two nodes, the one whose id compares smaller dials and the other only
// accepts, so a pair never races two connections. The acceptor keeps the *newest*
// authenticated connection of a pair: the dialer only dials again once it believes its
// previous connection dead (it restarted, or saw a reset), so the newest is the live one and
// the older is closed. An accepted connection from a node whose id is not smaller than ours,
// or from a node not in set_peers, is closed after its hello (counted, logged). A dialled
// peer that is not up is dialled again with a doubling, jittered backoff until set_peers
// drops it.
//
// Hello: the first frame each way (type 0) is
//   u32 magic 'WPLK', u8 version 1, str sender id, str receiver id, 16 bytes nonce,
//   32 bytes HMAC-SHA256(secret, every byte before it [+ the dialer's nonce])
// (str = u8 length 1..64 + bytes). The dialer speaks first; the acceptor answers once the
// dialer's hello checked out, and its tag also covers the dialer's nonce, so an answer cannot
// be replayed from an earlier connection. Tags are compared in constant time. A bad tag, a
// wrong receiver id, a malformed hello or no hello within hello_timeout_ms closes the
// connection; nothing that arrives before a valid hello reaches the frame callback. Note the
// hello authenticates the peer only; later frames are not tagged (use TLS for that).
//
// TLS (optional, config.tls): every link is mutual TLS, through net/'s Connection TLS mode.
// The dialer is the TLS client and presents its certificate; the acceptor is the TLS server and
// requires one; each verifies the other's chain against the cluster CA. No host name is
// checked: nodes are addressed by IP, the CA is the trust boundary, and the hello, which still
// runs (inside TLS, unchanged), binds the node id. A handshake that fails (another CA, no
// client certificate, a plaintext peer) closes the connection, counts reason "tls", is logged
// at warn once per peer until that peer links up, and the dialer redials with its backoff.
// Frames, watermarks and batching are the connection's, so they hold under TLS unchanged:
// plaintext queued in one iteration is encrypted into full records at its end.
//
// Writes use the connection's ACK mode: every frame queued during one reactor iteration goes
// to the kernel in one writev at the end of it. The backlog is the connection's queue.
//
// Callbacks: on_link(node, true) once a connection to `node` finished its hello exchange;
// on_link(node, false) once for each such up link that ends, for whatever reason. Callbacks
// fire from reactor events only, never from inside a PeerLinks method the caller is running
// (a reset decided inside send() turns is_up() false at once; on_link(false) follows at the
// end of the iteration). stop() and the destructor call nothing back.
//
// Lifetime: closed connections and connects are retired to the reactor, never deleted in
// place, so stop() and set_peers() are safe from inside any callback or I/O event.
//
// Thread-safety: none. A PeerLinks belongs to one reactor; construct, use and destroy it on
// that reactor's thread (or while the reactor is not running). The destructor must not run
// inside one of this object's own callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "net/address.h"
#include "net/connection.h"
#include "net/listener.h"
#include "net/tls_context.h"

namespace weir::cluster {

struct PeerLinksConfig {
  std::string node_id;      // this node's id (same as membership's), 1..64 bytes
  net::SocketAddress bind;  // TCP address to listen on (port 0: pick a free one)
  std::string secret;       // shared cluster secret: authenticates the hello (HMAC-SHA256);
                            // may be empty (hellos are then tagged with an empty key)
  uint64_t high_watermark = 1 << 20;   // backlog at which writable() turns false
  uint64_t low_watermark = 256 << 10;  // backlog at which on_writable fires again
  uint64_t max_backlog = 64 << 20;     // a send that would pass this resets the link
  uint32_t max_frame = 16 << 20;       // bound on a frame's length field (type + payload)
  int64_t reconnect_initial_ms = 100, reconnect_max_ms = 5000;  // dial backoff, doubling, jittered
  int64_t hello_timeout_ms = 5000;   // connect + hello exchange must finish within this
  int64_t backlog_sample_ms = 1000;  // how often weir_cluster_link_backlog_bytes is refreshed
  int keepalive_idle_s = 15;  // TCP keepalive: an idle link's peer is probed after this (0: off)
  // Set: mutual TLS on every link (see above); must be a mutual context (created with a CA).
  // Shared: it outlives connections made from it, and the caller may reload() it.
  std::shared_ptr<net::TlsContext> tls;
};

// Why a link (or a connection that was still in its hello) was reset; each has a counter,
// weir_cluster_link_resets_total{reason=...}.
enum class LinkReset {
  kOverflow,       // the backlog would have passed max_backlog
  kFrameTooLarge,  // an incoming frame's length passed max_frame
  kBadHello,       // bad tag, wrong receiver id, wrong dial direction, malformed hello
  kHelloTimeout,   // no hello exchange within hello_timeout_ms
  kUnknownPeer,    // a valid hello from a node not in set_peers
  kMalformed,      // a frame of length 0 after the hello
  kClosed,         // the peer closed, the socket failed, or a newer connection replaced it
  kTls,  // the TLS handshake failed or did not finish (another CA, no certificate, a plaintext
         // peer), or TLS failed on an up link
};
inline constexpr int kLinkResetCount = 8;
const char* link_reset_name(LinkReset reason);

// This instance's counts (the process-wide metrics sum every instance; tests read these).
struct PeerLinkStats {
  uint64_t resets[kLinkResetCount] = {};
  uint64_t links_up = 0;       // up transitions
  uint64_t dials = 0;          // connects started
  uint64_t dial_failures = 0;  // connects refused or timed out
  uint64_t accepted = 0;       // connections accepted
  uint64_t bytes_in = 0, bytes_out = 0;
  uint64_t frames_in = 0, frames_out = 0;  // frames after the hello, hellos not counted
  uint64_t reset(LinkReset reason) const { return resets[static_cast<int>(reason)]; }
};

class PeerLinks {
 public:
  // One frame from an up link, in the order sent. `payload` is valid during the call only.
  using FrameCallback =
      std::function<void(const std::string& node, uint8_t type, std::string_view payload)>;
  // up after the hello exchange; down on any loss or reset of an up link.
  using LinkCallback = std::function<void(const std::string& node, bool up)>;
  // The backlog fell to the low watermark after reaching the high one.
  using WritableCallback = std::function<void(const std::string& node)>;

  static constexpr uint8_t kHelloType = 0;

  PeerLinks(core::Reactor& reactor, PeerLinksConfig config);
  ~PeerLinks();
  PeerLinks(const PeerLinks&) = delete;
  PeerLinks& operator=(const PeerLinks&) = delete;

  // Binds and listens, then dials the peers already set. False with a reason in `error`.
  bool start(std::string* error);
  // Closes every connection and the listener, cancels every timer; nothing is called back.
  void stop();
  // The bound address (port resolved once started).
  const net::SocketAddress& address() const { return address_; }

  // The nodes to keep links to, with their link addresses (the membership's alive members).
  // Links to nodes no longer listed are closed (on_link(false) follows for an up one); new
  // ones are dialled (when our id is the smaller). Our own id is ignored.
  void set_peers(const std::vector<std::pair<std::string, net::SocketAddress>>& peers);

  // Queues one frame whose payload is `parts` concatenated. False (nothing queued) when the
  // link is not up, the frame is longer than max_frame, or it would push the backlog past
  // max_backlog (then the link is reset: on_link(false) follows).
  bool send(const std::string& node, uint8_t type, std::span<const std::string_view> parts);
  bool send(const std::string& node, uint8_t type, std::string_view payload);

  bool is_up(const std::string& node) const;
  // Up and not above the high watermark: false from the moment the backlog reaches the high
  // watermark until it drains to the low one (when on_writable fires).
  bool writable(const std::string& node) const;
  uint64_t backlog(const std::string& node) const;  // 0 when not up
  std::vector<std::string> up_nodes() const;        // sorted

  void set_frame_callback(FrameCallback cb) { on_frame_ = std::move(cb); }
  void set_link_callback(LinkCallback cb) { on_link_ = std::move(cb); }
  void set_writable_callback(WritableCallback cb) { on_writable_ = std::move(cb); }

  const PeerLinkStats& stats() const { return stats_; }
  const PeerLinksConfig& config() const { return config_; }
  // Connections open, in hello or up (tests check there is one per pair).
  size_t connection_count() const { return connections_.size(); }

 private:
  class Session;
  class Dial;
  struct Link {
    std::string node;
    net::SocketAddress address;
    bool dialer = false;         // our id is the smaller: we dial
    Session* session = nullptr;  // this pair's connection (hello or up); owned by connections_
    std::unique_ptr<Dial> dial;  // connect in progress
    core::Timer retry_timer;
    int64_t backoff_ms = 0;
  };

  // Connections.
  void on_accept(int fd);
  Session& adopt(int fd, std::string dialled_node);
  void start_dial(Link& link);
  void on_dial_done(const std::string& node, int fd, std::string_view error);
  void schedule_redial(Link& link);
  void remove_link(Link& link);
  void on_connection_finished(net::Connection& conn);
  // Hello.
  void send_hello(Session& s);
  void on_hello(Session& s, std::string_view payload);
  bool check_hello_peer(Session& s, const std::string& sender);
  // Up and down.
  void link_up(Session& s);
  void announce_down(Session& s);
  void reset(Session& s, LinkReset reason, std::string_view why);
  void close_session(Session& s);
  void unlink(Session& s);
  void on_session_closed(Session& s, std::string_view detail);
  void count_reset(LinkReset reason);
  void log_tls_failure(Session& s, std::string_view why);
  // Frames.
  void deliver(Session& s, uint8_t type, std::string_view payload);
  void on_low_watermark(Session& s);
  Session* up_session(const std::string& node) const;
  void sample_backlog();
  int64_t jitter(int64_t ms);

  core::Reactor& reactor_;
  PeerLinksConfig config_;
  net::SocketAddress address_;
  std::unique_ptr<net::Listener> listener_;
  bool running_ = false;

  std::map<std::string, std::unique_ptr<Link>> links_;
  std::unordered_map<net::Connection*, std::unique_ptr<net::Connection>> connections_;
  std::map<std::string, Session*> announced_;  // nodes told up and not yet told down
  // Peers whose TLS failure was logged at warn (node dialled, or address accepted from).
  std::unordered_set<std::string> tls_failures_logged_;

  core::Timer sample_timer_;
  int64_t reported_backlog_ = 0;  // this instance's share of the backlog gauge
  std::mt19937 rng_;
  PeerLinkStats stats_;
  FrameCallback on_frame_;
  LinkCallback on_link_;
  WritableCallback on_writable_;
};

}  // namespace weir::cluster
