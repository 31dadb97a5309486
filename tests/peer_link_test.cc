// tests/peer_link_test.cc — cluster peer links over real TCP sockets on 127.0.0.1, each node on
// its own reactor thread; plus raw sockets that speak (or garble) the hello by hand.
#include "cluster/peer_link.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics.h"
#include "core/reactor.h"
#include "net/socket_ops.h"
#include "net/tls_context.h"
#include "tests/cluster_test_util.h"
#include "tests/test_certs.h"

namespace weir::cluster {
namespace {

using namespace std::chrono_literals;
using Peers = std::vector<std::pair<std::string, net::SocketAddress>>;

using namespace test_util;

PeerLinksConfig test_config(const std::string& id, uint16_t port = 0) {
  PeerLinksConfig c;
  c.node_id = id;
  c.bind = loopback(port);
  c.secret = kSecret;
  c.reconnect_initial_ms = 20;
  c.reconnect_max_ms = 200;
  c.hello_timeout_ms = 2000;
  return c;
}

std::string pattern(size_t size, int seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed * 7) & 0xff);
  return s;
}

struct Frame {
  std::string node;
  uint8_t type;
  std::string payload;
};

// One PeerLinks on its own reactor thread. Every call into it goes through the loop.
class TestNode {
 public:
  explicit TestNode(PeerLinksConfig config) : thread_([this] { reactor_.run(); }) {
    call([&] {
      links_ = std::make_unique<PeerLinks>(reactor_, std::move(config));
      links_->set_link_callback([this](const std::string& node, bool up) {
        std::lock_guard lock(mutex_);
        events_.emplace_back(node, up);
      });
      links_->set_frame_callback([this](const std::string& node, uint8_t type, std::string_view p) {
        std::lock_guard lock(mutex_);
        frames_.push_back({node, type, std::string(p)});
      });
      links_->set_writable_callback([this](const std::string&) {
        std::lock_guard lock(mutex_);
        writable_events_++;
      });
      std::string error;
      EXPECT_TRUE(links_->start(&error)) << error;
    });
  }
  ~TestNode() { kill(); }

  template <typename Fn>
  auto call(Fn fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    reactor_.post([&task] { task(); });
    return result.get();
  }

  // Abrupt: connections aborted, loop stopped.
  void kill() {
    if (!thread_.joinable()) return;
    resume();
    call([&] { links_->stop(); });
    reactor_.stop();
    thread_.join();
    links_.reset();
  }

  // Blocks the reactor thread (it reads nothing) until resume().
  void pause() {
    paused_ = std::make_unique<std::promise<void>>();
    std::promise<void> entered;
    reactor_.post([&entered, gate = paused_->get_future().share()] {
      entered.set_value();
      gate.wait();
    });
    entered.get_future().wait();
  }
  void resume() {
    if (paused_) paused_->set_value();
    paused_.reset();
  }

  void set_peers(const Peers& peers) {
    call([&] { links_->set_peers(peers); });
  }
  bool is_up(const std::string& node) {
    return call([&] { return links_->is_up(node); });
  }
  size_t connections() {
    return call([&] { return links_->connection_count(); });
  }
  PeerLinkStats stats() {
    return call([&] { return links_->stats(); });
  }
  net::SocketAddress address() {
    return call([&] { return links_->address(); });
  }
  bool send(const std::string& node, uint8_t type, std::string_view payload) {
    return call([&] { return links_->send(node, type, payload); });
  }
  std::vector<std::pair<std::string, bool>> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<Frame> frames() {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  size_t frame_count() {
    std::lock_guard lock(mutex_);
    return frames_.size();
  }
  int writable_events() {
    std::lock_guard lock(mutex_);
    return writable_events_;
  }
  PeerLinks& links() { return *links_; }

 private:
  core::Reactor reactor_;
  std::unique_ptr<PeerLinks> links_;
  std::thread thread_;
  std::unique_ptr<std::promise<void>> paused_;
  std::mutex mutex_;
  std::vector<std::pair<std::string, bool>> events_;
  std::vector<Frame> frames_;
  int writable_events_ = 0;
};

Peers peers_of(std::initializer_list<TestNode*> nodes, std::initializer_list<std::string> ids) {
  Peers peers;
  auto id = ids.begin();
  for (TestNode* node : nodes) peers.emplace_back(*id++, node->address());
  return peers;
}

// Links every pair among `nodes` (ids "a", "b", ...) and waits until all are up.
void link_all(std::vector<std::unique_ptr<TestNode>>& nodes) {
  Peers peers;
  for (size_t i = 0; i < nodes.size(); ++i)
    peers.emplace_back(std::string(1, static_cast<char>('a' + i)), nodes[i]->address());
  // Acceptors first (largest id first), so no dial meets a node that does not know it yet.
  for (size_t i = nodes.size(); i-- > 0;) nodes[i]->set_peers(peers);
  ASSERT_TRUE(eventually([&] {
    for (size_t i = 0; i < nodes.size(); ++i)
      for (size_t j = 0; j < nodes.size(); ++j)
        if (i != j && !nodes[i]->is_up(peers[j].first)) return false;
    return true;
  }));
}

std::vector<std::unique_ptr<TestNode>> start_nodes(size_t n) {
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (size_t i = 0; i < n; ++i)
    nodes.push_back(std::make_unique<TestNode>(test_config(std::string(1, 'a' + i))));
  return nodes;
}

// ---- the hello, written independently of the implementation, from the header's spec -------

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

std::string frame_of(uint8_t type, std::string_view payload) {
  std::string out;
  put_u32(out, static_cast<uint32_t>(payload.size() + 1));
  out.push_back(static_cast<char>(type));
  out.append(payload);
  return out;
}

std::string hello_frame(const std::string& sender, const std::string& receiver,
                        const std::string& nonce, const std::string& secret,
                        const std::string& extra = {}) {
  std::string body;
  put_u32(body, 0x57504C4B);
  body.push_back(1);
  body.push_back(static_cast<char>(sender.size()));
  body += sender;
  body.push_back(static_cast<char>(receiver.size()));
  body += receiver;
  body += nonce;
  std::string signed_bytes = body + extra;
  unsigned char tag[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_bytes.data()), signed_bytes.size(), tag, &len);
  body.append(reinterpret_cast<char*>(tag), 32);
  return frame_of(0, body);
}

// A blocking TCP socket (reads time out) for hand-made bytes.
class RawSocket {
 public:
  explicit RawSocket(int fd) : fd_(fd) {
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  static RawSocket dial(const net::SocketAddress& to) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(fd, to.sockaddr(), to.length()), 0);
    return RawSocket(fd);
  }
  RawSocket(RawSocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  void write(std::string_view bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // Reads one whole frame; false on EOF, reset or timeout.
  bool read_frame(uint8_t* type, std::string* payload) {
    std::string header;
    if (!read_exact(5, &header)) return false;
    uint32_t len = 0;
    for (int i = 0; i < 4; ++i) len = len << 8 | static_cast<uint8_t>(header[i]);
    *type = static_cast<uint8_t>(header[4]);
    return read_exact(len - 1, payload);
  }
  // True when the peer closed (EOF or reset) within the read timeout.
  bool closed_by_peer() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  bool read_exact(size_t n, std::string* out) {
    out->resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, out->data() + got, n - got, 0);
      if (r <= 0) return false;
      got += r;
    }
    return true;
  }
  int fd_;
};

// Authenticates as `sender` to `node` (id `receiver`) and checks the answer.
RawSocket raw_hello(TestNode& node, const std::string& sender, const std::string& receiver) {
  RawSocket raw = RawSocket::dial(node.address());
  std::string nonce = pattern(16, 42);
  raw.write(hello_frame(sender, receiver, nonce, kSecret));
  uint8_t type = 0xff;
  std::string answer;
  EXPECT_TRUE(raw.read_frame(&type, &answer));
  EXPECT_EQ(type, 0);
  std::string expected =
      hello_frame(receiver, sender, answer.substr(answer.size() - 48, 16), kSecret, nonce);
  EXPECT_EQ(frame_of(0, answer), expected) << "answer tag must cover the dialer's nonce";
  return raw;
}

// ---- linking -------------------------------------------------------------------------------

TEST(PeerLink, TwoNodesLinkUpOverOneConnection) {
  auto nodes = start_nodes(2);
  link_all(nodes);
  TestNode& a = *nodes[0];
  TestNode& b = *nodes[1];
  EXPECT_TRUE(eventually([&] { return !a.events().empty() && !b.events().empty(); }));
  EXPECT_EQ(a.events(), (std::vector<std::pair<std::string, bool>>{{"b", true}}));
  EXPECT_EQ(b.events(), (std::vector<std::pair<std::string, bool>>{{"a", true}}));
  EXPECT_EQ(a.connections(), 1u);
  EXPECT_EQ(b.connections(), 1u);
  EXPECT_EQ(a.stats().accepted, 0u);  // the smaller id dials, the other only accepts
  EXPECT_EQ(b.stats().dials, 0u);
  EXPECT_EQ(b.stats().accepted, 1u);
  EXPECT_EQ(a.call([&] { return a.links().up_nodes(); }), std::vector<std::string>{"b"});
  double links = 0;
  ASSERT_TRUE(core::find_metric_value("weir_cluster_links", "", &links));
  EXPECT_EQ(links, 2);
}

TEST(PeerLink, ThreeNodesLinkEveryPairOnce) {
  auto nodes = start_nodes(3);
  link_all(nodes);
  for (auto& node : nodes) {
    EXPECT_EQ(node->connections(), 2u);
    EXPECT_EQ(node->call([&] { return node->links().up_nodes().size(); }), 2u);
    EXPECT_TRUE(eventually([&] { return node->events().size() == 2; }));
  }
  EXPECT_EQ(nodes[0]->stats().accepted, 0u);
  EXPECT_EQ(nodes[1]->stats().accepted, 1u);
  EXPECT_EQ(nodes[2]->stats().accepted, 2u);
}

// ---- frames --------------------------------------------------------------------------------

TEST(PeerLink, FramesOfManySizesArriveIntactAndInOrder) {
  auto nodes = start_nodes(2);
  link_all(nodes);
  std::vector<size_t> sizes = {0, 1, 2, 3, 4, 5, 100, 65530, 65536, 1 << 20, 3 << 20, 7};
  std::vector<std::string> sent;
  for (size_t i = 0; i < sizes.size(); ++i) {
    sent.push_back(pattern(sizes[i], static_cast<int>(i)));
    // Both directions; a sends whole payloads, b sends each as header + body parts.
    ASSERT_TRUE(nodes[0]->send("b", static_cast<uint8_t>(i), sent.back()));
    ASSERT_TRUE(nodes[1]->call([&] {
      std::string_view whole = sent.back();
      std::string_view parts[] = {whole.substr(0, whole.size() / 3),
                                  whole.substr(whole.size() / 3)};
      return nodes[1]->links().send("a", static_cast<uint8_t>(i), parts);
    }));
  }
  for (TestNode* receiver : {nodes[1].get(), nodes[0].get()}) {
    ASSERT_TRUE(eventually([&] { return receiver->frame_count() == sizes.size(); }));
    auto frames = receiver->frames();
    for (size_t i = 0; i < sizes.size(); ++i) {
      EXPECT_EQ(frames[i].type, i);
      EXPECT_EQ(frames[i].payload.size(), sizes[i]);
      EXPECT_TRUE(frames[i].payload == sent[i]) << "frame " << i << " corrupted";
    }
  }
  PeerLinkStats a = nodes[0]->stats(), b = nodes[1]->stats();
  EXPECT_EQ(a.frames_out, sizes.size());
  EXPECT_EQ(b.frames_in, sizes.size());
  EXPECT_EQ(a.bytes_out, b.bytes_in);
}

TEST(PeerLink, FramesSplitAcrossReadsAndManyPerReadAreReassembled) {
  TestNode b(test_config("b"));
  b.set_peers({{"a", loopback(1)}});
  RawSocket raw = raw_hello(b, "a", "b");
  ASSERT_TRUE(eventually([&] { return b.is_up("a"); }));
  std::string stream;
  std::vector<std::string> sent;
  for (int i = 0; i < 20; ++i) {
    sent.push_back(pattern(static_cast<size_t>(i * 37 % 300), i));
    stream += frame_of(static_cast<uint8_t>(i), sent.back());
  }
  // Dribbled: headers and bodies split at every offset of the first frames.
  size_t dribble = 400;
  for (size_t i = 0; i < dribble; ++i) {
    raw.write(stream.substr(i, 1));
    if (i % 16 == 0) std::this_thread::sleep_for(1ms);
  }
  // The rest in one write: many frames per read.
  raw.write(stream.substr(dribble));
  ASSERT_TRUE(eventually([&] { return b.frame_count() == sent.size(); }));
  auto frames = b.frames();
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(frames[i].node, "a");
    EXPECT_EQ(frames[i].type, i);
    EXPECT_EQ(frames[i].payload, sent[i]);
  }
}

TEST(PeerLink, FramesQueuedInOneIterationLeaveInFewWrites) {
  auto nodes = start_nodes(2);
  link_all(nodes);
  constexpr int kFrames = 5000;
  double before = 0, after = 0;
  core::find_metric_value("weir_write_syscalls_total", "", &before);
  uint64_t queued = nodes[0]->call([&] {
    for (int i = 0; i < kFrames; ++i) {
      char payload[8];
      std::memcpy(payload, &i, sizeof i);
      std::memcpy(payload + 4, &i, sizeof i);
      EXPECT_TRUE(nodes[0]->links().send("b", 7, std::string_view(payload, 8)));
    }
    return nodes[0]->links().backlog("b");
  });
  EXPECT_EQ(queued, kFrames * 13u);  // all still queued: nothing leaves mid-iteration
  ASSERT_TRUE(eventually([&] { return nodes[1]->frame_count() == kFrames; }));
  core::find_metric_value("weir_write_syscalls_total", "", &after);
  EXPECT_LE(after - before, 10) << "65 KB of small frames should leave in a few writevs";
  auto frames = nodes[1]->frames();
  for (int i = 0; i < kFrames; ++i) {
    int got = -1;
    std::memcpy(&got, frames[i].payload.data(), sizeof got);
    ASSERT_EQ(got, i);
  }
}

// ---- authentication and hostile bytes ------------------------------------------------------

TEST(PeerLink, WrongSecretNeverComesUpAndIsCounted) {
  PeerLinksConfig ca = test_config("a");
  ca.secret = "another-secret";
  TestNode a(ca);
  TestNode b(test_config("b"));
  a.set_peers(peers_of({&b}, {"b"}));
  b.set_peers(peers_of({&a}, {"a"}));
  ASSERT_TRUE(eventually([&] { return b.stats().reset(LinkReset::kBadHello) >= 3; }));
  EXPECT_FALSE(a.is_up("b"));
  EXPECT_FALSE(b.is_up("a"));
  EXPECT_TRUE(a.events().empty());
  EXPECT_TRUE(b.events().empty());
  EXPECT_GE(a.stats().dials, 3u);  // keeps retrying
  double counted = 0;
  ASSERT_TRUE(
      core::find_metric_value("weir_cluster_link_resets_total", "reason=\"bad_hello\"", &counted));
  EXPECT_GE(counted, 3);
}

TEST(PeerLink, GarbageBeforeTheHelloIsClosedAndCounted) {
  TestNode b(test_config("b"));
  b.set_peers({{"a", loopback(1)}});
  const std::string garbage[] = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",             // a huge length
      frame_of(0, "not a hello at all, but short"),    // malformed hello
      frame_of(9, "a frame before any hello"),         // wrong type
      std::string("\0\0\0\0", 4),                      // length 0
      hello_frame("a", "c", pattern(16, 1), kSecret),  // addressed to another node
      hello_frame("z", "b", pattern(16, 1), kSecret),  // a larger id must not dial
  };
  for (const std::string& bytes : garbage) {
    RawSocket raw = RawSocket::dial(b.address());
    raw.write(bytes);
    EXPECT_TRUE(raw.closed_by_peer()) << bytes;
  }
  EXPECT_TRUE(eventually([&] { return b.stats().reset(LinkReset::kBadHello) == 6; }));
  EXPECT_EQ(b.frame_count(), 0u);
  EXPECT_TRUE(b.events().empty());
  EXPECT_TRUE(eventually([&] { return b.connections() == 0; }));
}

TEST(PeerLink, ValidHelloFromANodeNotInThePeerSetIsRefused) {
  TestNode b(test_config("b"));
  RawSocket raw = RawSocket::dial(b.address());
  raw.write(hello_frame("a", "b", pattern(16, 1), kSecret));
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_EQ(b.stats().reset(LinkReset::kUnknownPeer), 1u);
  EXPECT_TRUE(b.events().empty());
}

TEST(PeerLink, SilentConnectionIsClosedAtHelloTimeout) {
  PeerLinksConfig cb = test_config("b");
  cb.hello_timeout_ms = 200;
  TestNode b(cb);
  RawSocket raw = RawSocket::dial(b.address());
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_EQ(b.stats().reset(LinkReset::kHelloTimeout), 1u);
}

TEST(PeerLink, OversizeFrameResetsTheLink) {
  PeerLinksConfig cb = test_config("b");
  cb.max_frame = 1024;
  TestNode a(test_config("a"));
  TestNode b(cb);
  a.set_peers(peers_of({&b}, {"b"}));
  b.set_peers(peers_of({&a}, {"a"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));
  ASSERT_TRUE(a.send("b", 1, pattern(1023, 1)));  // length 1024: the limit itself passes
  ASSERT_TRUE(a.send("b", 1, pattern(1024, 1)));  // length 1025: b resets
  ASSERT_TRUE(eventually([&] { return b.stats().reset(LinkReset::kFrameTooLarge) == 1; }));
  EXPECT_TRUE(eventually([&] {
    auto events = b.events();
    return events.size() >= 2 && events[1] == std::make_pair(std::string("a"), false);
  }));
  EXPECT_EQ(b.frame_count(), 1u);
  // a redials and the pair comes back.
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));
  // Our own limit is checked before sending: nothing is queued, the link stays.
  EXPECT_FALSE(b.call([&] { return b.links().send("a", 1, pattern(1024, 1)); }));
  EXPECT_TRUE(b.is_up("a"));
}

// ---- backpressure --------------------------------------------------------------------------

TEST(PeerLink, StalledPeerTurnsLinkUnwritableThenWritableAgain) {
  PeerLinksConfig ca = test_config("a");
  ca.high_watermark = 256 << 10;
  ca.low_watermark = 64 << 10;
  ca.backlog_sample_ms = 20;
  TestNode a(ca);
  TestNode b(test_config("b"));
  a.set_peers(peers_of({&b}, {"b"}));
  b.set_peers(peers_of({&a}, {"a"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));
  b.pause();
  std::string chunk = pattern(64 << 10, 3);
  int sent = 0;
  // Until the kernel's buffers are full too: unwritable even after the flushes that followed.
  ASSERT_TRUE(eventually([&] {
    a.call([&] {
      for (int i = 0; i < 8 && a.links().writable("b"); ++i, ++sent)
        EXPECT_TRUE(a.links().send("b", 2, chunk));
    });
    std::this_thread::sleep_for(20ms);
    return a.call([&] { return !a.links().writable("b"); });
  }));
  // Stays unwritable until the backlog drains to the low watermark, not merely below high.
  EXPECT_GT(a.call([&] { return a.links().backlog("b"); }), ca.low_watermark);
  EXPECT_TRUE(a.is_up("b"));
  EXPECT_TRUE(eventually([&] {
    double gauge = 0;
    core::find_metric_value("weir_cluster_link_backlog_bytes", "", &gauge);
    return gauge > ca.low_watermark;
  }));
  int before = a.writable_events();
  b.resume();
  ASSERT_TRUE(eventually([&] { return a.writable_events() == before + 1; }));
  EXPECT_TRUE(a.call([&] { return a.links().writable("b"); }));
  EXPECT_LE(a.call([&] { return a.links().backlog("b"); }), ca.low_watermark);
  ASSERT_TRUE(eventually([&] { return b.frame_count() == static_cast<size_t>(sent); }));
}

TEST(PeerLink, BacklogPastMaxBacklogResetsTheLink) {
  PeerLinksConfig ca = test_config("a");
  ca.high_watermark = 256 << 10;
  ca.low_watermark = 64 << 10;
  ca.max_backlog = 2 << 20;
  TestNode a(ca);
  TestNode b(test_config("b"));
  a.set_peers(peers_of({&b}, {"b"}));
  b.set_peers(peers_of({&a}, {"a"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));
  b.pause();
  std::string chunk = pattern(256 << 10, 4);
  bool refused = false;
  ASSERT_TRUE(eventually([&] {
    refused = !a.call([&] { return a.links().send("b", 2, chunk); });
    return refused;
  }));
  EXPECT_FALSE(a.is_up("b"));  // at once, inside the same call
  EXPECT_EQ(a.stats().reset(LinkReset::kOverflow), 1u);
  EXPECT_TRUE(eventually([&] {
    auto events = a.events();
    return events.size() == 2 && events[1] == std::make_pair(std::string("b"), false);
  }));
  b.resume();
  EXPECT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));  // redialled
}

// ---- membership changes --------------------------------------------------------------------

TEST(PeerLink, ReconnectsAfterThePeerRestartsOnTheSamePort) {
  TestNode a(test_config("a"));
  auto b = std::make_unique<TestNode>(test_config("b"));
  uint16_t port = b->address().port();
  a.set_peers(peers_of({b.get()}, {"b"}));
  b->set_peers(peers_of({&a}, {"a"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b"); }));
  b.reset();
  ASSERT_TRUE(eventually([&] { return !a.is_up("b"); }));
  EXPECT_TRUE(eventually([&] { return a.events().size() == 2; }));
  std::this_thread::sleep_for(300ms);  // a few refused redials
  b = std::make_unique<TestNode>(test_config("b", port));
  b->set_peers(peers_of({&a}, {"a"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b->is_up("a"); }));
  EXPECT_EQ(a.events(),
            (std::vector<std::pair<std::string, bool>>{{"b", true}, {"b", false}, {"b", true}}));
  EXPECT_GE(a.stats().dial_failures, 1u);
  EXPECT_TRUE(a.send("b", 5, "after restart"));
  EXPECT_TRUE(eventually([&] { return b->frame_count() == 1; }));
}

TEST(PeerLink, SetPeersRemovingANodeClosesItsLink) {
  auto nodes = start_nodes(3);
  link_all(nodes);
  TestNode& a = *nodes[0];
  TestNode& c = *nodes[2];
  uint64_t dials = a.stats().dials;
  // The dialer drops c: closed at once, not redialled.
  EXPECT_TRUE(a.call([&] {
    a.links().set_peers({{"b", nodes[1]->address()}});
    return !a.links().is_up("c");
  }));
  EXPECT_TRUE(
      eventually([&] { return a.events().back() == std::make_pair(std::string("c"), false); }));
  EXPECT_TRUE(eventually([&] { return !c.is_up("a"); }));
  EXPECT_TRUE(a.is_up("b"));
  EXPECT_TRUE(eventually([&] { return a.connections() == 1; }));
  // The acceptor drops b: b's link to c closes and c refuses b's redials.
  c.set_peers({{"a", a.address()}});
  EXPECT_TRUE(eventually([&] { return !nodes[1]->is_up("c"); }));
  EXPECT_TRUE(eventually([&] { return c.stats().reset(LinkReset::kUnknownPeer) >= 2; }));
  EXPECT_FALSE(nodes[1]->is_up("c"));
  EXPECT_EQ(a.stats().dials, dials);  // c was never redialled
}

TEST(PeerLink, NewerConnectionForAPairReplacesTheOlder) {
  TestNode b(test_config("b"));
  b.set_peers({{"a", loopback(1)}});
  RawSocket first = raw_hello(b, "a", "b");
  ASSERT_TRUE(eventually([&] { return b.is_up("a"); }));
  RawSocket second = raw_hello(b, "a", "b");
  EXPECT_TRUE(first.closed_by_peer());
  EXPECT_TRUE(b.is_up("a"));
  EXPECT_EQ(b.events(),
            (std::vector<std::pair<std::string, bool>>{{"a", true}, {"a", false}, {"a", true}}));
  second.write(frame_of(3, "via the second"));
  ASSERT_TRUE(eventually([&] { return b.frame_count() == 1; }));
  EXPECT_EQ(b.frames()[0].payload, "via the second");
  EXPECT_TRUE(eventually([&] { return b.connections() == 1; }));
}

TEST(PeerLink, StopInsideACallbackIsSafe) {
  auto nodes = start_nodes(2);
  link_all(nodes);
  nodes[1]->call([&] {
    nodes[1]->links().set_frame_callback(
        [&](const std::string&, uint8_t, std::string_view) { nodes[1]->links().stop(); });
  });
  ASSERT_TRUE(nodes[0]->call([&] {
    nodes[0]->links().send("b", 1, "one");
    return nodes[0]->links().send("b", 1, "two");
  }));
  EXPECT_TRUE(eventually([&] { return !nodes[0]->is_up("b"); }));
  EXPECT_FALSE(nodes[1]->is_up("a"));
  EXPECT_EQ(nodes[1]->connections(), 0u);
}

// ---- mutual TLS ----------------------------------------------------------------------------

double metric(const char* name, const std::string& labels) {
  double v = 0;
  core::find_metric_value(name, labels, &v);
  return v;
}

// The cluster CA with a certificate for each of a, b, c; and a rogue: a certificate for b from
// another CA, with the cluster CA trusted (so only the other side's check can refuse it).
class PeerLinkTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test_certs::TempDir;
    test_certs::CertificateAuthority cluster_ca("weir cluster CA");
    test_certs::CertificateAuthority other_ca("some other CA");
    ASSERT_TRUE(cluster_ca.ok() && other_ca.ok());
    ASSERT_TRUE(cluster_ca.write_certificate(dir_->file("ca.pem")));
    long serial = 100;
    for (const char* node : {"a", "b", "c"})
      ASSERT_TRUE(cluster_ca.issue(dir_->file(std::string(node) + ".pem"),
                                   dir_->file(std::string(node) + ".key"), node, serial++));
    ASSERT_TRUE(other_ca.issue(dir_->file("rogue.pem"), dir_->file("rogue.key"), "b", 7));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::shared_ptr<net::TlsContext> context(const std::string& cert) {
    std::string error;
    std::shared_ptr<net::TlsContext> tls = net::TlsContext::create(
        net::TlsConfig{dir_->file(cert + ".pem"), dir_->file(cert + ".key"), dir_->file("ca.pem")},
        &error);
    EXPECT_TRUE(tls) << error;
    return tls;
  }
  // Node `id` presenting the certificate `cert` (its own by default).
  static PeerLinksConfig tls_config(const std::string& id, const std::string& cert = {}) {
    PeerLinksConfig c = test_config(id);
    c.tls = context(cert.empty() ? id : cert);
    return c;
  }

  static test_certs::TempDir* dir_;
};
test_certs::TempDir* PeerLinkTls::dir_ = nullptr;

TEST_F(PeerLinkTls, NodesLinkOverMutualTlsAndFramesArriveIntactBothWays) {
  double handshakes = metric("weir_tls_handshakes_total", "result=\"ok\"");
  TestNode a(tls_config("a"));
  TestNode b(tls_config("b"));
  b.set_peers(peers_of({&a}, {"a"}));
  a.set_peers(peers_of({&b}, {"b"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));
  EXPECT_EQ(a.connections(), 1u);
  EXPECT_EQ(b.connections(), 1u);
  EXPECT_GE(metric("weir_tls_handshakes_total", "result=\"ok\"") - handshakes, 2);
  std::vector<size_t> sizes = {0, 1, 5, 100, 16383, 16384, 16385, 65536, 1 << 20, 3 << 20, 7};
  std::vector<std::string> sent;
  for (size_t i = 0; i < sizes.size(); ++i) {
    sent.push_back(pattern(sizes[i], static_cast<int>(i)));
    ASSERT_TRUE(a.send("b", static_cast<uint8_t>(i), sent.back()));
    ASSERT_TRUE(b.send("a", static_cast<uint8_t>(i), sent.back()));
  }
  for (TestNode* receiver : {&a, &b}) {
    ASSERT_TRUE(eventually([&] { return receiver->frame_count() == sizes.size(); }));
    auto frames = receiver->frames();
    for (size_t i = 0; i < sizes.size(); ++i) {
      EXPECT_EQ(frames[i].type, i);
      EXPECT_TRUE(frames[i].payload == sent[i]) << "frame " << i << " corrupted";
    }
  }
  EXPECT_EQ(a.stats().bytes_out, b.stats().bytes_in);  // plaintext counted, not ciphertext
  for (int r = 0; r < kLinkResetCount; ++r) EXPECT_EQ(a.stats().resets[r], 0u) << r;
}

TEST_F(PeerLinkTls, FramesQueuedInOneIterationLeaveInFewWritesUnderTls) {
  TestNode a(tls_config("a"));
  TestNode b(tls_config("b"));
  b.set_peers(peers_of({&a}, {"a"}));
  a.set_peers(peers_of({&b}, {"b"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));
  constexpr int kFrames = 5000;
  double before = metric("weir_write_syscalls_total", "");
  a.call([&] {
    for (int i = 0; i < kFrames; ++i) {
      char payload[8];
      std::memcpy(payload, &i, sizeof i);
      std::memcpy(payload + 4, &i, sizeof i);
      EXPECT_TRUE(a.links().send("b", 7, std::string_view(payload, 8)));
    }
  });
  ASSERT_TRUE(eventually([&] { return b.frame_count() == kFrames; }));
  EXPECT_LE(metric("weir_write_syscalls_total", "") - before, 10)
      << "65 KB of small frames should be encrypted into a few records and leave in few writes";
  auto frames = b.frames();
  for (int i = 0; i < kFrames; ++i) {
    int got = -1;
    std::memcpy(&got, frames[i].payload.data(), sizeof got);
    ASSERT_EQ(got, i);
  }
}

TEST_F(PeerLinkTls, BurstPastTheHighWatermarkTurnsUnwritableThenWritableAgain) {
  PeerLinksConfig ca = tls_config("a");
  ca.high_watermark = 256 << 10;
  ca.low_watermark = 64 << 10;
  TestNode a(ca);
  TestNode b(tls_config("b"));
  b.set_peers(peers_of({&a}, {"a"}));
  a.set_peers(peers_of({&b}, {"b"}));
  ASSERT_TRUE(eventually([&] { return a.is_up("b") && b.is_up("a"); }));
  b.pause();
  std::string chunk = pattern(64 << 10, 3);
  int sent = 0;
  ASSERT_TRUE(eventually([&] {
    a.call([&] {
      for (int i = 0; i < 8 && a.links().writable("b"); ++i, ++sent)
        EXPECT_TRUE(a.links().send("b", 2, chunk));
    });
    std::this_thread::sleep_for(20ms);
    return a.call([&] { return !a.links().writable("b"); });
  }));
  EXPECT_GT(a.call([&] { return a.links().backlog("b"); }), ca.low_watermark);
  EXPECT_TRUE(a.is_up("b"));
  int before = a.writable_events();
  b.resume();
  ASSERT_TRUE(eventually([&] { return a.writable_events() == before + 1; }));
  EXPECT_TRUE(a.call([&] { return a.links().writable("b"); }));
  ASSERT_TRUE(eventually([&] { return b.frame_count() == static_cast<size_t>(sent); }));
  for (const Frame& f : b.frames()) ASSERT_TRUE(f.payload == chunk);
  EXPECT_EQ(a.stats().reset(LinkReset::kOverflow), 0u);
}

// The rogue b sits between a (which dials it: a, the TLS client, refuses b's certificate) and
// c (which b dials: c, the TLS server, refuses b's client certificate). a and c link as usual.
TEST_F(PeerLinkTls, CertificateFromAnotherCaNeverLinksAndIsCountedEitherWay) {
  double counted = metric("weir_cluster_link_resets_total", "reason=\"tls\"");
  TestNode a(tls_config("a"));
  TestNode b(tls_config("b", "rogue"));
  TestNode c(tls_config("c"));
  Peers all = peers_of({&a, &b, &c}, {"a", "b", "c"});
  for (TestNode* node : {&c, &b, &a}) node->set_peers(all);
  ASSERT_TRUE(eventually([&] { return a.is_up("c") && c.is_up("a"); }));
  ASSERT_TRUE(eventually([&] {
    return a.stats().reset(LinkReset::kTls) >= 3 && c.stats().reset(LinkReset::kTls) >= 3;
  }));
  EXPECT_FALSE(a.is_up("b"));
  EXPECT_FALSE(c.is_up("b"));
  EXPECT_TRUE(b.call([&] { return b.links().up_nodes().empty(); }));
  EXPECT_TRUE(b.events().empty());
  EXPECT_EQ(b.frame_count(), 0u);
  EXPECT_GE(a.stats().dials, 4u);  // b is redialled with the backoff
  EXPECT_GE(b.stats().dials, 3u);  // and b keeps redialling c
  EXPECT_GE(metric("weir_cluster_link_resets_total", "reason=\"tls\"") - counted, 6);
  EXPECT_TRUE(a.send("c", 1, "still fine"));
  EXPECT_TRUE(eventually([&] { return c.frame_count() == 1; }));
}

// b speaks plaintext between two TLS nodes: a's ClientHello is a malformed hello to b, and b's
// plaintext hello is not a ClientHello to c. Neither pair links; a and c do.
TEST_F(PeerLinkTls, PlaintextAndTlsNodesNeverLink) {
  TestNode a(tls_config("a"));
  TestNode b(test_config("b"));
  TestNode c(tls_config("c"));
  Peers all = peers_of({&a, &b, &c}, {"a", "b", "c"});
  for (TestNode* node : {&c, &b, &a}) node->set_peers(all);
  ASSERT_TRUE(eventually([&] { return a.is_up("c") && c.is_up("a"); }));
  ASSERT_TRUE(eventually([&] {
    return a.stats().reset(LinkReset::kTls) >= 2 && b.stats().reset(LinkReset::kBadHello) >= 2 &&
           c.stats().reset(LinkReset::kTls) >= 2;
  }));
  EXPECT_FALSE(a.is_up("b"));
  EXPECT_FALSE(c.is_up("b"));
  EXPECT_TRUE(b.events().empty());
  // A valid plaintext hello by hand is refused too, before any frame is looked at.
  RawSocket raw = RawSocket::dial(c.address());
  raw.write(hello_frame("a", "c", pattern(16, 1), kSecret));
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_TRUE(c.is_up("a"));  // the real a's link is untouched
}

TEST_F(PeerLinkTls, ClientWithoutACertificateIsRefusedAndCounted) {
  TestNode b(tls_config("b"));
  b.set_peers({{"a", loopback(1)}});
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx, dir_->file("ca.pem").c_str(), nullptr), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);  // b's certificate is fine
  RawSocket raw = RawSocket::dial(b.address());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, raw.fd());
  // TLS 1.3: the client finishes its side before the server judged it; the refusal comes as
  // an alert on the first read.
  if (SSL_connect(ssl) == 1) {
    std::string hello = hello_frame("a", "b", pattern(16, 1), kSecret);
    SSL_write(ssl, hello.data(), static_cast<int>(hello.size()));
    char buf[64];
    EXPECT_LE(SSL_read(ssl, buf, sizeof buf), 0);
  }
  EXPECT_TRUE(eventually([&] { return b.stats().reset(LinkReset::kTls) == 1; }));
  EXPECT_FALSE(b.is_up("a"));
  EXPECT_TRUE(eventually([&] { return b.connections() == 0; }));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
}

TEST_F(PeerLinkTls, ContextWithoutACaIsRefusedAtStart) {
  std::string error;
  std::shared_ptr<net::TlsContext> server_only =
      net::TlsContext::create(dir_->file("a.pem"), dir_->file("a.key"), &error);
  ASSERT_TRUE(server_only) << error;
  core::Reactor reactor;
  PeerLinksConfig config = test_config("a");
  config.tls = server_only;
  PeerLinks links(reactor, config);
  EXPECT_FALSE(links.start(&error));
  EXPECT_NE(error.find("CA"), std::string::npos) << error;
}

TEST(PeerLink, WithoutTlsNoHandshakeIsMade) {
  double ok = metric("weir_tls_handshakes_total", "result=\"ok\"");
  double failed = metric("weir_tls_handshakes_total", "result=\"failed\"");
  auto nodes = start_nodes(2);
  link_all(nodes);
  ASSERT_TRUE(nodes[0]->send("b", 1, "plain"));
  ASSERT_TRUE(eventually([&] { return nodes[1]->frame_count() == 1; }));
  EXPECT_EQ(metric("weir_tls_handshakes_total", "result=\"ok\""), ok);
  EXPECT_EQ(metric("weir_tls_handshakes_total", "result=\"failed\""), failed);
}

}  // namespace
}  // namespace weir::cluster
