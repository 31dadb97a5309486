// cluster/peer_link.cc — dialling, accepting, the hello exchange, framing and resets of the
// cluster's node-to-node links.
#include "cluster/peer_link.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "core/buffer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/socket_ops.h"

namespace weir::cluster {
namespace {

constexpr size_t kFrameHeader = 5;            // u32 length of (type + payload), u8 type
constexpr uint32_t kHelloMagic = 0x57504C4B;  // "WPLK"
constexpr uint8_t kHelloVersion = 1;
constexpr size_t kMaxIdBytes = 64;
constexpr size_t kNonceBytes = 16;
constexpr size_t kHelloTagBytes = 32;
// The longest hello's length field: type, magic, version, two ids, nonce, tag. Before the
// hello only this much is ever buffered, so a stranger cannot make us hold max_frame bytes.
constexpr uint32_t kMaxHelloLength =
    1 + 4 + 1 + 2 * (1 + kMaxIdBytes) + kNonceBytes + kHelloTagBytes;
// A partial-frame buffer bigger than this is freed once its frame is delivered.
constexpr size_t kKeepPartialBytes = 64 << 10;
constexpr int kListenBacklog = 128;
// Bound on the peers remembered as "TLS failure logged" (a stranger may come from anywhere).
constexpr size_t kMaxTlsFailuresLogged = 1024;

const char* const kHelp = "cluster peer link resets, by reason";
core::Counter g_resets[kLinkResetCount] = {
    {"weir_cluster_link_resets_total", kHelp, "reason=\"overflow\""},
    {"weir_cluster_link_resets_total", kHelp, "reason=\"frame_too_large\""},
    {"weir_cluster_link_resets_total", kHelp, "reason=\"bad_hello\""},
    {"weir_cluster_link_resets_total", kHelp, "reason=\"hello_timeout\""},
    {"weir_cluster_link_resets_total", kHelp, "reason=\"unknown_peer\""},
    {"weir_cluster_link_resets_total", kHelp, "reason=\"malformed\""},
    {"weir_cluster_link_resets_total", kHelp, "reason=\"closed\""},
    {"weir_cluster_link_resets_total", kHelp, "reason=\"tls\""},
};
core::Gauge g_links("weir_cluster_links", "cluster peer links that are up");
core::Gauge g_backlog("weir_cluster_link_backlog_bytes",
                      "bytes queued on cluster peer links, all links (sampled)");
core::Counter g_bytes_in("weir_cluster_link_bytes_total", "bytes on cluster peer links",
                         "direction=\"in\"");
core::Counter g_bytes_out("weir_cluster_link_bytes_total", "bytes on cluster peer links",
                          "direction=\"out\"");
core::Counter g_frames_in("weir_cluster_link_frames_total",
                          "frames on cluster peer links (hellos not counted)", "direction=\"in\"");
core::Counter g_frames_out("weir_cluster_link_frames_total",
                           "frames on cluster peer links (hellos not counted)",
                           "direction=\"out\"");
core::Counter g_dials_ok("weir_cluster_link_dials_total", "cluster peer link connects, by result",
                         "result=\"ok\"");
core::Counter g_dials_failed("weir_cluster_link_dials_total",
                             "cluster peer link connects, by result", "result=\"failed\"");

uint32_t load_u32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | uint32_t{u[3]};
}

void store_u32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

// ---- hello codec ---------------------------------------------------------------------------

struct Hello {
  std::string_view sender, receiver, nonce, tag;
  std::string_view signed_bytes;  // everything before the tag
};

void put_str(std::string& out, std::string_view s) {
  out.push_back(static_cast<char>(s.size()));
  out.append(s);
}

bool take_str(std::string_view& in, std::string_view* out) {
  if (in.empty()) return false;
  size_t n = static_cast<uint8_t>(in[0]);
  if (n == 0 || n > kMaxIdBytes || in.size() < 1 + n) return false;
  *out = in.substr(1, n);
  in.remove_prefix(1 + n);
  return true;
}

// HMAC-SHA256(secret, signed_bytes + extra); `extra` is the dialer's nonce in an answer.
void hello_tag(std::string_view secret, std::string_view signed_bytes, std::string_view extra,
               unsigned char* tag) {
  char buf[kMaxHelloLength + kNonceBytes];
  std::memcpy(buf, signed_bytes.data(), signed_bytes.size());
  if (!extra.empty()) std::memcpy(buf + signed_bytes.size(), extra.data(), extra.size());
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(buf), signed_bytes.size() + extra.size(), tag, &len);
}

// The whole hello frame, header included.
std::string encode_hello(std::string_view sender, std::string_view receiver, std::string_view nonce,
                         std::string_view secret, std::string_view extra) {
  std::string out(kFrameHeader, '\0');
  char magic[4];
  store_u32(magic, kHelloMagic);
  out.append(magic, 4);
  out.push_back(static_cast<char>(kHelloVersion));
  put_str(out, sender);
  put_str(out, receiver);
  out.append(nonce);
  unsigned char tag[EVP_MAX_MD_SIZE];
  hello_tag(secret, std::string_view(out).substr(kFrameHeader), extra, tag);
  out.append(reinterpret_cast<const char*>(tag), kHelloTagBytes);
  store_u32(out.data(), static_cast<uint32_t>(out.size() - 4));
  out[4] = static_cast<char>(PeerLinks::kHelloType);
  return out;
}

bool parse_hello(std::string_view payload, Hello* out) {
  std::string_view in = payload;
  if (in.size() < 5 || load_u32(in.data()) != kHelloMagic ||
      static_cast<uint8_t>(in[4]) != kHelloVersion)
    return false;
  in.remove_prefix(5);
  if (!take_str(in, &out->sender) || !take_str(in, &out->receiver)) return false;
  if (in.size() != kNonceBytes + kHelloTagBytes) return false;
  out->nonce = in.substr(0, kNonceBytes);
  out->tag = in.substr(kNonceBytes);
  out->signed_bytes = payload.substr(0, payload.size() - kHelloTagBytes);
  return true;
}

// A peer that vanished without a RST (power loss, partition) would leave an idle link up
// forever; keepalive probes find it: idle_s, then 3 probes idle_s / 3 apart.
void set_keepalive(int fd, int idle_s) {
  if (idle_s <= 0) return;
  int on = 1, interval = std::max(1, idle_s / 3), count = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

bool verify_hello(std::string_view secret, const Hello& hello, std::string_view extra) {
  unsigned char tag[EVP_MAX_MD_SIZE];
  hello_tag(secret, hello.signed_bytes, extra, tag);
  return CRYPTO_memcmp(tag, hello.tag.data(), kHelloTagBytes) == 0;
}

// OpenSSL reported a failure, or the connection ended before its handshake did (a plaintext
// peer answers a ClientHello by closing; a peer that refused our certificate hangs up).
bool tls_failed(const net::Connection& conn) {
  return conn.tls() && (!conn.tls_error().empty() || !conn.tls_established());
}

}  // namespace

const char* link_reset_name(LinkReset reason) {
  switch (reason) {
    case LinkReset::kOverflow:
      return "overflow";
    case LinkReset::kFrameTooLarge:
      return "frame_too_large";
    case LinkReset::kBadHello:
      return "bad_hello";
    case LinkReset::kHelloTimeout:
      return "hello_timeout";
    case LinkReset::kUnknownPeer:
      return "unknown_peer";
    case LinkReset::kMalformed:
      return "malformed";
    case LinkReset::kClosed:
      return "closed";
    case LinkReset::kTls:
      return "tls";
  }
  return "?";
}

// ---- Session: one connection's handler (and owner, so a detached one never calls back) ----

class PeerLinks::Session final : public net::ConnectionHandler, public net::ConnectionOwner {
 public:
  enum class State { kHello, kUp, kClosed };

  Session(PeerLinks& links, std::string dialled_node)
      : links_(&links), node_(std::move(dialled_node)), dialled_(!node_.empty()) {
    RAND_bytes(nonce_, kNonceBytes);
    hello_timer_.set_callback([this] {
      if (!links_) return;
      std::string within = std::to_string(links_->config_.hello_timeout_ms) + " ms";
      if (conn_->tls() && !conn_->tls_established())
        links_->reset(*this, LinkReset::kTls, "TLS handshake not finished within " + within);
      else
        links_->reset(*this, LinkReset::kHelloTimeout, within + " without a hello");
    });
  }

  void on_data(net::Connection&, char* data, size_t len) override;
  void on_closed(net::Connection&, net::CloseReason, std::string_view detail) override {
    if (links_) links_->on_session_closed(*this, detail);
  }
  void on_low_watermark(net::Connection&) override {
    if (links_) links_->on_low_watermark(*this);
  }
  void on_connection_finished(net::Connection& conn) override {
    if (links_) links_->on_connection_finished(conn);
  }

  bool alive() const { return links_ != nullptr && state_ != State::kClosed; }
  bool up() const { return links_ != nullptr && state_ == State::kUp; }
  std::string label() const { return node_.empty() ? conn_->peer().to_string() : node_; }
  // stop(): the session forgets its PeerLinks, which may be gone before the connection is.
  void detach() {
    links_ = nullptr;
    state_ = State::kClosed;
    announced_ = false;
    hello_timer_.cancel();
  }

  PeerLinks* links_;
  net::Connection* conn_ = nullptr;
  std::string node_;  // the dialled node, or the sender of a valid hello
  bool dialled_;
  State state_ = State::kHello;
  bool announced_ = false;  // on_link(node_, true) was called, on_link(false) not yet
  unsigned char nonce_[kNonceBytes];
  unsigned char peer_nonce_[kNonceBytes] = {};
  core::Timer hello_timer_;

 private:
  bool take_partial(std::string_view& in);
  bool check_length(uint32_t length);
  void handle_frame(uint8_t type, std::string_view payload);

  core::ByteBuffer partial_;  // the frame begun by an earlier read, nothing else
};

// Whole frames are handed over straight from the read span; only a frame split across reads
// is copied, into this link's partial buffer (sized once its header is known).
void PeerLinks::Session::on_data(net::Connection&, char* data, size_t len) {
  if (!alive()) return;
  links_->stats_.bytes_in += len;
  g_bytes_in.inc(len);
  std::string_view in(data, len);
  if (!partial_.empty() && !take_partial(in)) return;
  while (!in.empty() && alive()) {
    if (in.size() < 4) {
      partial_.append(in.data(), in.size());
      return;
    }
    uint32_t length = load_u32(in.data());
    if (!check_length(length)) return;
    if (in.size() - 4 < length) {
      partial_.prepare(4 + length);
      partial_.append(in.data(), in.size());
      return;
    }
    handle_frame(static_cast<uint8_t>(in[4]), in.substr(kFrameHeader, length - 1));
    in.remove_prefix(4 + length);
  }
}

// Completes the frame begun in an earlier read. False when `in` ran out or the link closed.
bool PeerLinks::Session::take_partial(std::string_view& in) {
  if (partial_.readable() < 4) {
    size_t take = std::min(4 - partial_.readable(), in.size());
    partial_.append(in.data(), take);
    in.remove_prefix(take);
    if (partial_.readable() < 4 || !check_length(load_u32(partial_.peek()))) return false;
  }
  uint32_t length = load_u32(partial_.peek());
  size_t need = 4 + length - partial_.readable();
  size_t take = std::min(need, in.size());
  partial_.prepare(need);
  partial_.append(in.data(), take);
  in.remove_prefix(take);
  if (take < need) return false;
  const char* frame = partial_.peek();
  handle_frame(static_cast<uint8_t>(frame[4]), std::string_view(frame + kFrameHeader, length - 1));
  partial_.retrieve_all();
  if (partial_.capacity() > kKeepPartialBytes) partial_.shrink_if_empty();
  return alive();
}

bool PeerLinks::Session::check_length(uint32_t length) {
  if (state_ == State::kHello && (length == 0 || length > kMaxHelloLength)) {
    links_->reset(*this, LinkReset::kBadHello,
                  "malformed hello (frame length " + std::to_string(length) + ")");
    return false;
  }
  if (length == 0) {
    links_->reset(*this, LinkReset::kMalformed, "frame of length 0");
    return false;
  }
  if (length > links_->config_.max_frame) {
    links_->reset(*this, LinkReset::kFrameTooLarge,
                  "frame of " + std::to_string(length) + " bytes > max_frame " +
                      std::to_string(links_->config_.max_frame));
    return false;
  }
  return true;
}

void PeerLinks::Session::handle_frame(uint8_t type, std::string_view payload) {
  if (state_ == State::kUp) {
    links_->deliver(*this, type, payload);
  } else if (type != kHelloType) {
    links_->reset(*this, LinkReset::kBadHello,
                  "frame of type " + std::to_string(type) + " before the hello");
  } else {
    links_->on_hello(*this, payload);
  }
}

// ---- Dial: one connect in progress ---------------------------------------------------------

class PeerLinks::Dial final : public core::IoHandler, public core::Retirable {
 public:
  Dial(PeerLinks& links, std::string node, int fd)
      : links_(links), node_(std::move(node)), fd_(fd) {
    timeout_.set_callback([this] { fail("connect timeout"); });
  }
  ~Dial() override { cancel(); }

  bool arm(int64_t timeout_ms) {
    if (!links_.reactor_.add(fd_, this)) return false;
    links_.reactor_.schedule(timeout_, timeout_ms);
    return true;
  }

  void on_io(uint32_t events) override {
    if (fd_ < 0) return;
    int err = net::socket_error(fd_);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      fail(std::strerror(err != 0 ? err : ECONNRESET));
    } else if (events & EPOLLOUT) {
      int fd = fd_;
      links_.reactor_.remove(fd_);
      fd_ = -1;  // the connection takes it
      timeout_.cancel();
      links_.on_dial_done(node_, fd, {});  // retires this object: nothing after
    }
  }

  void cancel() {
    timeout_.cancel();
    if (fd_ < 0) return;
    links_.reactor_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  void fail(const char* error) {
    cancel();
    links_.on_dial_done(node_, -1, error);  // retires this object: nothing after
  }

  PeerLinks& links_;
  std::string node_;
  int fd_;
  core::Timer timeout_;
};

// ---- PeerLinks -----------------------------------------------------------------------------

PeerLinks::PeerLinks(core::Reactor& reactor, PeerLinksConfig config)
    : reactor_(reactor), config_(std::move(config)), rng_(std::random_device{}()) {
  sample_timer_.set_callback([this] {
    sample_backlog();
    reactor_.schedule(sample_timer_, config_.backlog_sample_ms);
  });
}

PeerLinks::~PeerLinks() {
  stop();
}

bool PeerLinks::start(std::string* error) {
  if (config_.node_id.empty() || config_.node_id.size() > kMaxIdBytes) {
    *error = "node id must be 1..64 bytes";
    return false;
  }
  if (config_.tls && !config_.tls->mutual()) {
    *error = "peer link TLS needs a mutual context (a CA to verify peers against)";
    return false;
  }
  listener_ = std::make_unique<net::Listener>(reactor_, [this](int fd) { on_accept(fd); });
  if (!listener_->listen(config_.bind, false, kListenBacklog, error)) {
    *error = "peer link listener: " + *error;
    return false;
  }
  address_ = config_.bind;
  address_.set_port(listener_->port());
  running_ = true;
  reactor_.schedule(sample_timer_, config_.backlog_sample_ms);
  for (auto& [node, link] : links_) start_dial(*link);
  log_info("cluster: peer links for %s on %s%s", config_.node_id.c_str(),
           address_.to_string().c_str(), config_.tls ? " (mutual TLS)" : "");
  return true;
}

// Nothing is deleted in place (we may be inside an I/O event of what we close): connections
// and connects are retired to the reactor, their sessions detached so they never call back.
void PeerLinks::stop() {
  running_ = false;
  sample_timer_.cancel();
  if (listener_) listener_->close();
  for (auto& [node, link] : links_) {
    link->retry_timer.cancel();
    link->session = nullptr;
    if (link->dial) {
      link->dial->cancel();
      reactor_.retire(std::move(link->dial));
    }
  }
  for (auto& [raw, conn] : connections_) {
    static_cast<Session*>(raw->handler())->detach();
    raw->abort();
    reactor_.retire(std::move(conn));
  }
  connections_.clear();
  g_links.add(-static_cast<int64_t>(announced_.size()));
  announced_.clear();
  g_backlog.add(-reported_backlog_);
  reported_backlog_ = 0;
}

void PeerLinks::set_peers(const std::vector<std::pair<std::string, net::SocketAddress>>& peers) {
  std::unordered_set<std::string> listed;
  for (const auto& [node, address] : peers) {
    if (node.empty() || node == config_.node_id) continue;
    listed.insert(node);
    std::unique_ptr<Link>& link = links_[node];
    if (link) {
      link->address = address;  // used by the next dial
      continue;
    }
    link = std::make_unique<Link>();
    link->node = node;
    link->address = address;
    link->dialer = config_.node_id < node;
    link->backoff_ms = config_.reconnect_initial_ms;
    Link* raw = link.get();
    link->retry_timer.set_callback([this, raw] { start_dial(*raw); });
    start_dial(*link);
  }
  for (auto it = links_.begin(); it != links_.end();) {
    if (listed.count(it->first)) {
      ++it;
      continue;
    }
    remove_link(*it->second);
    it = links_.erase(it);
  }
}

void PeerLinks::remove_link(Link& link) {
  link.retry_timer.cancel();
  if (link.dial) {
    link.dial->cancel();
    reactor_.retire(std::move(link.dial));
  }
  if (Session* s = link.session) {
    link.session = nullptr;
    log_info("cluster: peer link %s closed: no longer a peer", link.node.c_str());
    close_session(*s);
  }
}

// ---- connections ---------------------------------------------------------------------------

void PeerLinks::on_accept(int fd) {
  if (!running_) {
    ::close(fd);
    return;
  }
  stats_.accepted++;
  adopt(fd, {});
}

PeerLinks::Session& PeerLinks::adopt(int fd, std::string dialled_node) {
  net::ConnectionOptions options;
  options.write_mode = net::WriteMode::kAck;
  options.high_watermark = config_.high_watermark;
  options.low_watermark = config_.low_watermark;
  options.max_buffer = 0;  // max_backlog is enforced in send(), as a reset we count
  if (config_.tls) {
    options.tls = config_.tls.get();
    options.tls_client = !dialled_node.empty();  // the dialer is the TLS client
    options.tls_handshake_timeout_ms = config_.hello_timeout_ms;
  }
  set_keepalive(fd, config_.keepalive_idle_s);
  auto session = std::make_unique<Session>(*this, std::move(dialled_node));
  Session* s = session.get();
  auto conn = std::make_unique<net::Connection>(reactor_, fd, options, s);
  s->conn_ = conn.get();
  conn->set_handler(std::move(session));
  connections_.emplace(s->conn_, std::move(conn));
  reactor_.schedule(s->hello_timer_, config_.hello_timeout_ms);
  return *s;
}

void PeerLinks::on_connection_finished(net::Connection& conn) {
  auto it = connections_.find(&conn);
  if (it == connections_.end()) return;
  reactor_.retire(std::move(it->second));
  connections_.erase(it);
}

void PeerLinks::start_dial(Link& link) {
  if (!running_ || !link.dialer || link.session || link.dial) return;
  stats_.dials++;
  std::string error;
  int fd = net::connect_nonblocking(link.address, &error);
  if (fd >= 0) {
    link.dial = std::make_unique<Dial>(*this, link.node, fd);
    if (link.dial->arm(config_.hello_timeout_ms)) return;
    error = std::string("epoll: ") + std::strerror(errno);
    link.dial.reset();
  }
  on_dial_done(link.node, -1, error);
}

void PeerLinks::on_dial_done(const std::string& node, int fd, std::string_view error) {
  auto it = links_.find(node);
  Link* link = it == links_.end() ? nullptr : it->second.get();
  if (link && link->dial) reactor_.retire(std::move(link->dial));
  if (!link || !running_) {
    if (fd >= 0) ::close(fd);
    return;
  }
  if (fd < 0) {
    stats_.dial_failures++;
    g_dials_failed.inc();
    // The first failure in a row is news; the retries every few seconds after it are not.
    if (link->backoff_ms == config_.reconnect_initial_ms)
      log_info("cluster: peer link to %s (%s): %.*s; retrying", node.c_str(),
               link->address.to_string().c_str(), static_cast<int>(error.size()), error.data());
    schedule_redial(*link);
    return;
  }
  g_dials_ok.inc();
  Session& s = adopt(fd, node);
  link->session = &s;
  send_hello(s);
}

void PeerLinks::schedule_redial(Link& link) {
  if (!running_ || !link.dialer) return;
  reactor_.schedule(link.retry_timer, jitter(link.backoff_ms));
  link.backoff_ms = std::min(link.backoff_ms * 2, config_.reconnect_max_ms);
}

// Uniform in [ms/2, ms], so nodes that lost each other at the same moment do not redial in step.
int64_t PeerLinks::jitter(int64_t ms) {
  ms = std::max<int64_t>(ms, 2);
  return std::uniform_int_distribution<int64_t>(ms / 2, ms)(rng_);
}

// ---- hello ---------------------------------------------------------------------------------

// The dialer opens; the acceptor answers with a tag that also covers the dialer's nonce.
void PeerLinks::send_hello(Session& s) {
  std::string_view nonce(reinterpret_cast<const char*>(s.nonce_), kNonceBytes);
  std::string_view extra;
  if (!s.dialled_)
    extra = std::string_view(reinterpret_cast<const char*>(s.peer_nonce_), kNonceBytes);
  std::string frame = encode_hello(config_.node_id, s.node_, nonce, config_.secret, extra);
  stats_.bytes_out += frame.size();
  g_bytes_out.inc(frame.size());
  s.conn_->write(frame);
}

void PeerLinks::on_hello(Session& s, std::string_view payload) {
  Hello hello;
  if (!parse_hello(payload, &hello)) return reset(s, LinkReset::kBadHello, "malformed hello");
  std::string_view extra;
  if (s.dialled_) extra = std::string_view(reinterpret_cast<const char*>(s.nonce_), kNonceBytes);
  if (!verify_hello(config_.secret, hello, extra))
    return reset(s, LinkReset::kBadHello, "bad hello tag (secret mismatch?)");
  if (hello.receiver != config_.node_id)
    return reset(s, LinkReset::kBadHello, "hello addressed to " + std::string(hello.receiver));
  if (!check_hello_peer(s, std::string(hello.sender))) return;
  if (!s.dialled_) {
    std::memcpy(s.peer_nonce_, hello.nonce.data(), kNonceBytes);
    send_hello(s);
  }
  link_up(s);
}

// Applies the one-connection-per-pair rules to an authenticated hello; false when `s` was reset.
bool PeerLinks::check_hello_peer(Session& s, const std::string& sender) {
  if (s.dialled_) {
    if (sender == s.node_) return true;
    reset(s, LinkReset::kBadHello, "dialled " + s.node_ + " but " + sender + " answered");
    return false;
  }
  if (!(sender < config_.node_id)) {
    reset(s, LinkReset::kBadHello, sender + " dialled, but the smaller id dials");
    return false;
  }
  auto it = links_.find(sender);
  if (it == links_.end()) {
    reset(s, LinkReset::kUnknownPeer, sender + " is not a peer (yet)");
    return false;
  }
  Link& link = *it->second;
  if (link.session && link.session != &s)
    reset(*link.session, LinkReset::kClosed, "replaced by a newer connection");
  s.node_ = sender;
  link.session = &s;
  return true;
}

// ---- up and down ---------------------------------------------------------------------------

void PeerLinks::link_up(Session& s) {
  s.state_ = Session::State::kUp;
  s.hello_timer_.cancel();
  auto it = links_.find(s.node_);
  if (it != links_.end()) it->second->backoff_ms = config_.reconnect_initial_ms;
  // A replaced connection's down is told before the new one's up, never after.
  auto old = announced_.find(s.node_);
  if (old != announced_.end() && old->second != &s) announce_down(*old->second);
  if (!s.up()) return;  // that callback stopped us or dropped the node
  announced_[s.node_] = &s;
  s.announced_ = true;
  stats_.links_up++;
  g_links.inc();
  tls_failures_logged_.erase(s.node_);
  tls_failures_logged_.erase(s.conn_->peer().host());
  std::string tls = s.conn_->tls() ? ", TLS peer " + s.conn_->tls_peer_subject() : "";
  log_info("cluster: peer link %s up (%s, %s%s)", s.node_.c_str(),
           s.dialled_ ? "dialled" : "accepted", s.conn_->peer().to_string().c_str(), tls.c_str());
  if (on_link_) on_link_(s.node_, true);
}

void PeerLinks::announce_down(Session& s) {
  if (!s.announced_) return;
  s.announced_ = false;
  auto it = announced_.find(s.node_);
  if (it != announced_.end() && it->second == &s) announced_.erase(it);
  g_links.dec();
  log_info("cluster: peer link %s down", s.node_.c_str());
  if (on_link_) on_link_(s.node_, false);
}

void PeerLinks::reset(Session& s, LinkReset reason, std::string_view why) {
  if (!s.alive()) return;
  count_reset(reason);
  if (reason == LinkReset::kTls)
    log_tls_failure(s, why);
  else
    log_warn("cluster: peer link %s reset (%s): %.*s", s.label().c_str(), link_reset_name(reason),
             static_cast<int>(why.size()), why.data());
  close_session(s);
}

void PeerLinks::count_reset(LinkReset reason) {
  stats_.resets[static_cast<int>(reason)]++;
  g_resets[static_cast<int>(reason)].inc();
}

// A misconfigured peer fails every redial the same way: its first failure is news (at warn,
// with OpenSSL's reason), the retries every backoff after it are not, until it links up. The
// peer is the node we dialled, or the address a connection came from (no hello yet: no id).
void PeerLinks::log_tls_failure(Session& s, std::string_view why) {
  std::string peer = s.dialled_ ? s.node_ : s.conn_->peer().host();
  if (tls_failures_logged_.size() >= kMaxTlsFailuresLogged) tls_failures_logged_.clear();
  if (tls_failures_logged_.insert(peer).second)
    log_warn("cluster: peer link %s (%s): TLS failed: %.*s (logged once until it links up)",
             peer.c_str(), s.conn_->peer().to_string().c_str(), static_cast<int>(why.size()),
             why.data());
  else
    log_debug("cluster: peer link %s (%s): TLS failed: %.*s", peer.c_str(),
              s.conn_->peer().to_string().c_str(), static_cast<int>(why.size()), why.data());
}

// Ends the session now: is_up() turns false; on_link(false) follows from on_closed.
void PeerLinks::close_session(Session& s) {
  s.state_ = Session::State::kClosed;
  s.hello_timer_.cancel();
  s.conn_->abort();
  unlink(s);
}

void PeerLinks::unlink(Session& s) {
  auto it = links_.find(s.node_);
  if (it == links_.end() || it->second->session != &s) return;
  it->second->session = nullptr;
  schedule_redial(*it->second);
}

void PeerLinks::on_session_closed(Session& s, std::string_view detail) {
  if (s.state_ != Session::State::kClosed) {  // the peer or the socket ended it, not us
    if (tls_failed(*s.conn_)) {
      count_reset(LinkReset::kTls);
      std::string_view error = s.conn_->tls_error();
      log_tls_failure(s, !error.empty()
                             ? std::string(error)
                             : std::string(detail) + " before the TLS handshake finished");
    } else {
      count_reset(LinkReset::kClosed);
    }
    // An up link's loss is news; a redial that died in its hello (counted) is not, each time.
    if (s.announced_)
      log_info("cluster: peer link %s closed: %.*s", s.label().c_str(),
               static_cast<int>(detail.size()), detail.data());
    else
      log_debug("cluster: peer link %s closed in its hello: %.*s", s.label().c_str(),
                static_cast<int>(detail.size()), detail.data());
    s.state_ = Session::State::kClosed;
    s.hello_timer_.cancel();
    unlink(s);
  }
  announce_down(s);
}

// ---- frames --------------------------------------------------------------------------------

void PeerLinks::deliver(Session& s, uint8_t type, std::string_view payload) {
  stats_.frames_in++;
  g_frames_in.inc();
  if (on_frame_) on_frame_(s.node_, type, payload);
}

void PeerLinks::on_low_watermark(Session& s) {
  if (s.up() && on_writable_) on_writable_(s.node_);
}

bool PeerLinks::send(const std::string& node, uint8_t type, std::string_view payload) {
  return send(node, type, std::span<const std::string_view>(&payload, 1));
}

bool PeerLinks::send(const std::string& node, uint8_t type,
                     std::span<const std::string_view> parts) {
  Session* s = up_session(node);
  if (!s) return false;
  uint64_t payload = 0;
  for (std::string_view part : parts) payload += part.size();
  if (payload + 1 > config_.max_frame) {
    log_warn("cluster: peer link %s: frame of %llu bytes > max_frame %u not sent", node.c_str(),
             static_cast<unsigned long long>(payload + 1), config_.max_frame);
    return false;
  }
  uint64_t frame = kFrameHeader + payload;
  if (s->conn_->queued_bytes() + frame > config_.max_backlog) {
    reset(*s, LinkReset::kOverflow,
          "backlog " + std::to_string(s->conn_->queued_bytes()) + " + frame " +
              std::to_string(frame) + " > max_backlog " + std::to_string(config_.max_backlog));
    return false;
  }
  char header[kFrameHeader];
  store_u32(header, static_cast<uint32_t>(payload + 1));
  header[4] = static_cast<char>(type);
  constexpr size_t kInlineParts = 8;
  net::WritePart inline_parts[kInlineParts];
  std::vector<net::WritePart> many;
  net::WritePart* out = inline_parts;
  if (parts.size() + 1 > kInlineParts) {
    many.resize(parts.size() + 1);
    out = many.data();
  }
  size_t count = 0;
  out[count++] = net::WritePart::copy(std::string_view(header, kFrameHeader));
  for (std::string_view part : parts)
    if (!part.empty()) out[count++] = net::WritePart::copy(part);
  if (s->conn_->write(std::span<const net::WritePart>(out, count)) != net::WriteResult::kAccepted)
    return false;
  stats_.frames_out++;
  stats_.bytes_out += frame;
  g_frames_out.inc();
  g_bytes_out.inc(frame);
  return true;
}

PeerLinks::Session* PeerLinks::up_session(const std::string& node) const {
  auto it = links_.find(node);
  if (it == links_.end() || !it->second->session || !it->second->session->up()) return nullptr;
  return it->second->session;
}

bool PeerLinks::is_up(const std::string& node) const {
  return up_session(node) != nullptr;
}

bool PeerLinks::writable(const std::string& node) const {
  Session* s = up_session(node);
  return s && !s->conn_->above_high_watermark();
}

uint64_t PeerLinks::backlog(const std::string& node) const {
  Session* s = up_session(node);
  return s ? s->conn_->queued_bytes() : 0;
}

std::vector<std::string> PeerLinks::up_nodes() const {
  std::vector<std::string> out;
  for (const auto& [node, link] : links_)
    if (link->session && link->session->up()) out.push_back(node);
  return out;
}

// The gauge is refreshed on a timer rather than per write: a scrape runs on another thread
// and must not read connection queues; this instance adds the change since its last sample.
void PeerLinks::sample_backlog() {
  int64_t total = 0;
  for (const auto& [raw, conn] : connections_) total += static_cast<int64_t>(raw->queued_bytes());
  g_backlog.add(total - reported_backlog_);
  reported_backlog_ = total;
}

}  // namespace weir::cluster
