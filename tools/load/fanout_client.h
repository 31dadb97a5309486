// tools/load/fanout_client.h — the connections of `weir-load fanout` and their per-thread worker.
//
// Every connection is a member of one room: it waits for the session envelope, joins, and from
// then on checks each delivery against the room's offsets (OffsetTracker) and records its
// latency from the send time stamped at the start of the content. Publishers are members too
// (the room delivers to the sender as well), so a publisher's own message coming back is its
// acknowledgement:
//   - --rate 0: each publisher keeps --depth messages in flight and sends the next on each ack;
//   - --rate R: a 10 ms timer per thread sends what R makes due, round-robin over the thread's
//     publishers; a publisher whose socket holds more than 1 MiB unsent skips (counted as
//     held back) instead of queueing without bound.
//
// With --resume-every, each member that only receives drops its connection (RST, no close
// frame) on a timer, connects again and sends `resume` with the session token it was given and
// the last offset and epoch it processed; after `resumed` the replayed messages and then the
// live ones go through the same OffsetTracker, so a resume that loses, repeats or reorders
// anything shows as loss, a duplicate or an order violation. The first drops are spread evenly
// over one interval across all members, later ones come every interval +-10% (random).
//
// Thread-safety: a FanoutWorker and its clients live on one reactor thread; the main thread
// reaches them through WorkerThreads::run_on_each.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "tools/load/connector.h"
#include "tools/load/histogram.h"
#include "tools/load/load_worker.h"
#include "tools/load/options.h"
#include "tools/load/room_offsets.h"
#include "tools/load/room_protocol.h"
#include "tools/load/run_support.h"
#include "tools/load/ws_client.h"

namespace weir::load {

struct FanoutClientSpec {
  int index = 0;       // over all threads: publishers first, then members
  int room = 0;        // 0 .. --rooms - 1
  int publisher = -1;  // publisher number (0 .. P-1), or -1 for a member that only receives
};

// What the main thread reads back after the drain.
struct FanoutClientResult {
  int room = 0;
  bool publisher = false;
  bool joined = false;
  OffsetTracker offsets;
};

class FanoutWorker;

class FanoutClient final : public WsClientListener {
 public:
  static constexpr size_t kMaxQueued = 1 << 20;

  FanoutClient(FanoutWorker& worker, const FanoutClientSpec& spec);
  ~FanoutClient() override;

  void connect();
  void close();
  void abort_if_unjoined();
  // --resume-every: the first drop `first_ms` from now, then one every interval (about).
  void start_resume_drill(int64_t first_ms);
  void stop_resume_drill() { resume_timer_.cancel(); }
  // Ack-paced publishing: send until --depth are in flight.
  void fill();
  // Rate-paced publishing: one message now, unless the socket is full (then false).
  bool publish_one();

  const FanoutClientSpec& spec() const { return spec_; }
  bool joined() const { return offsets_.is_joined(); }
  const OffsetTracker& offsets() const { return offsets_; }

  void on_open(WsClient& client) override;
  void on_message_data(WsClient& client, std::span<const char> data, bool last) override;
  void on_closed(WsClient& client, const WsClientEnd& end) override;

 private:
  // A receiving member with --resume-every goes kLive -> kDropped -> kResuming -> kLive.
  enum class State : uint8_t {
    kJoining,   // first connection: waiting for the session, then for room_joined
    kLive,      // in the room, checking deliveries
    kDropped,   // cut by the resume drill; connects again once the end is reported
    kResuming,  // the new connection: its session, then our resume, then `resumed`
    kGone,      // the resume failed: what the member misses from here on is counted as loss
  };

  void open_connection();
  void on_deadline();
  void on_envelope(std::string_view text);
  void on_session(const RoomEnvelope& e);
  void on_resumed(const RoomEnvelope& e);
  void on_delivery(const RoomEnvelope& e);
  void drop();
  void resume_failed(const std::string& why);
  bool send_message();

  FanoutWorker& worker_;
  FanoutClientSpec spec_;
  std::string room_id_;
  State state_ = State::kJoining;
  WsClient* client_ = nullptr;  // owned by its connection; cleared when it ends
  MessageAssembler assembler_;
  OffsetTracker offsets_;
  uint64_t next_seq_ = 0;
  int64_t in_flight_ = 0;
  std::string token_;           // the session to resume
  bool resume_sent_ = false;    // on the current connection
  int64_t drop_ns_ = 0;         // when the drill cut the connection
  uint64_t replay_last_ = 0;    // the last `resumed` offset: deliveries up to it are replays
  core::Timer deadline_timer_;  // room_joined or resumed within --connect-timeout
  core::Timer resume_timer_;
};

class FanoutWorker final : public Worker {
 public:
  FanoutWorker(core::Reactor& reactor, const Options& options, std::string room_prefix,
               std::vector<FanoutClientSpec> specs, double rate, int64_t epoch_ns,
               ErrorLog* errors);
  ~FanoutWorker() override;

  void start() override;
  void sample(Sample* out) override;

  void start_sending();
  void stop_sending();
  void close_all();
  void abort_unjoined();
  // Writes each client's result into (*out)[spec.index].
  void collect(std::vector<FanoutClientResult>* out) const;

  std::string room_id(int room) const { return room_prefix_ + std::to_string(room); }
  const Options& options() const { return options_; }
  core::Reactor& reactor() { return reactor_; }
  ClientContext& context() { return context_; }
  Connector& connector() { return connector_; }
  LoadCounters& counters() { return counters_; }
  Histogram& latency() { return latency_; }
  Histogram& resume_latency() { return resume_latency_; }
  // The time to the next drop of a member: --resume-every, +-10% at random.
  int64_t next_resume_ms();
  ErrorLog& errors() { return *errors_; }
  const WsClientConfig& config() const { return config_; }
  bool sending() const { return sending_; }
  bool closing() const { return closing_; }
  bool ack_paced() const { return rate_ == 0; }

 private:
  void tick();

  core::Reactor& reactor_;
  const Options& options_;
  std::string room_prefix_;
  std::vector<FanoutClientSpec> specs_;
  double rate_;  // this thread's share, messages/s; 0 = ack-paced
  ErrorLog* errors_;
  WsClientConfig config_;
  ClientContext context_;
  LoadCounters counters_;
  Histogram latency_;
  Histogram resume_latency_;
  bool sending_ = false;
  bool closing_ = false;
  int64_t send_start_ms_ = 0;
  uint64_t due_ = 0;
  size_t next_publisher_ = 0;
  core::Timer tick_timer_;
  std::vector<std::unique_ptr<FanoutClient>> clients_;
  std::vector<FanoutClient*> publishers_;
  Connector connector_;  // after the clients: connections (and their handlers) go first
};

}  // namespace weir::load
