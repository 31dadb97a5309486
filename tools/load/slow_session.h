// tools/load/slow_session.h — the clients of `weir-load slow`: consumers that spend a fixed time
// on each message (the seed's WSClient with its sleep), against /stream or a room, and the
// publisher that feeds the room.
//
// Pacing: a slow client models a single-threaded reader that takes `delay_ms` per message.
// Messages that have arrived wait in a backlog; while it is not empty the client does not read
// its socket (net::Connection::suspend_reading), so the kernel buffers fill and TCP pushes
// back on the server, exactly as a blocked onMessage() would. A client's receive rate is the
// rate it *processes* messages. A delay of 0 makes a fast client.
//
// Each /stream message says when the server sent it (ts_us, the shared monotonic clock), so a
// client also bins the server's sends to it by send time (10 ms bins): after the run these
// give the server's send rate to each client, second by second, even for messages that sat in
// buffers for a long time.
//
// Thread-safety: a SlowWorker and its sessions live on one reactor thread; the main thread
// reaches them through WorkerThreads::run_on_each.
#pragma once

#include <cmath>
#include <cstdint>
#include <deque>
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

struct SlowClientSpec {
  int index = 0;     // over all threads; slow clients first, then fast ones
  std::string name;  // "slow1", "fast2"
  bool slow = false;
  int64_t delay_ms = 0;  // per message
  bool via_relay = false;
};

// One client's cumulative numbers, copied to the main thread each second.
struct SlowClientStats {
  bool open = false;       // upgraded (stream) or joined (room)
  bool dropped = false;    // ended during the run
  std::string end_reason;  // why it was dropped
  uint64_t arrived = 0;    // complete messages read off the socket
  uint64_t processed = 0;  // ... and processed: the client's receive count
  uint64_t bytes = 0;
  uint64_t backlog_peak = 0;   // most messages waiting at once
  uint64_t stream_gaps = 0;    // /stream sequence numbers never received (dropped by the server)
  uint64_t last_deferred = 0;  // /stream: the server's deferred count for this client, last seen
  int64_t last_sent_ns = 0;    // send time of the last message that arrived
  double last_age_ms = NAN;    // age of the last processed message (processed - sent)
  double max_age_ms = 0;
  bool clock_shared = true;  // the server's send times are on our clock (same machine)
  OffsetTracker offsets;     // room mode
};

class SlowWorker;

class SlowSession final : public WsClientListener {
 public:
  static constexpr int64_t kBinNs = 10'000'000;
  static constexpr int64_t kPingMs = 15000;  // keeps the server's idle timeout away

  SlowSession(SlowWorker& worker, const SlowClientSpec& spec);
  ~SlowSession() override;

  void connect();
  void close();
  void abort_if_unopened();
  // From now on every message is processed as it arrives (the drain at the end of a run).
  void unpace();

  const SlowClientSpec& spec() const { return spec_; }
  const SlowClientStats& stats() const { return stats_; }
  const std::vector<uint32_t>& sent_bins() const { return sent_bins_; }

  // WsClientListener
  void on_open(WsClient& client) override;
  void on_message_data(WsClient& client, std::span<const char> data, bool last) override;
  void on_closed(WsClient& client, const WsClientEnd& end) override;

 private:
  void on_stream_message(std::string_view text, int64_t now_ns);
  void on_room_envelope(std::string_view text, int64_t now_ns);
  void arrived(int64_t sent_ns, int64_t now_ns);
  void process_due();
  void processed(int64_t sent_ns, int64_t now_ns);
  void send_ping();

  SlowWorker& worker_;
  SlowClientSpec spec_;
  WsClient* client_ = nullptr;  // owned by its connection; cleared when it ends
  MessageAssembler assembler_;
  SlowClientStats stats_;
  std::deque<int64_t> backlog_;  // send times of messages waiting to be processed
  int64_t busy_until_ns_ = 0;    // when the message being processed is done
  bool paced_ = true;
  uint64_t next_seq_ = 0;
  std::vector<uint32_t> sent_bins_;
  core::Timer process_timer_;
  core::Timer ping_timer_;
  core::Timer upgrade_timer_;
};

// Publishes into the room at --publish-rate (room mode): a member itself, it joins, then sends
// on a 10 ms timer what the rate makes due. While its own connection holds more than 256 KiB
// unsent (the server stopped reading it: backpressure reached the publisher) it does not
// queue more; those messages are counted as held back.
class RoomFeeder final : public WsClientListener {
 public:
  static constexpr size_t kMaxQueued = 256 * 1024;

  explicit RoomFeeder(SlowWorker& worker);
  ~RoomFeeder() override;
  void connect();
  void start();
  void stop();
  void close();

  bool joined() const { return offsets_.is_joined(); }
  bool dropped() const { return dropped_; }
  uint64_t sent() const { return sent_; }
  uint64_t held_back() const { return held_back_; }
  const OffsetTracker& offsets() const { return offsets_; }

  void on_open(WsClient& client) override;
  void on_message_data(WsClient& client, std::span<const char> data, bool last) override;
  void on_closed(WsClient& client, const WsClientEnd& end) override;

 private:
  void tick();

  SlowWorker& worker_;
  WsClient* client_ = nullptr;
  MessageAssembler assembler_;
  OffsetTracker offsets_;
  int64_t start_ms_ = 0;
  uint64_t due_ = 0;
  uint64_t sent_ = 0;
  uint64_t held_back_ = 0;
  bool running_ = false;
  bool dropped_ = false;
  core::Timer timer_;
};

class SlowWorker final : public Worker {
 public:
  // `relay`: where clients with via_relay connect instead of the URL (nullptr: none).
  SlowWorker(core::Reactor& reactor, const Options& options, std::vector<SlowClientSpec> specs,
             bool feeder, int64_t epoch_ns, int64_t bins, const net::SocketAddress* relay,
             ErrorLog* errors);
  ~SlowWorker() override;

  void start() override;
  void sample(Sample* out) override;

  // Copies each session's stats into (*out)[spec.index].
  void collect(std::vector<SlowClientStats>* out) const;
  void collect_bins(std::vector<std::vector<uint32_t>>* out) const;
  // The feeder's counters; false on workers without it.
  struct FeederCounts {
    uint64_t sent = 0, held_back = 0;
    uint64_t last_offset = 0;  // the highest offset of the room the feeder has seen
    uint64_t received = 0;     // room messages back at the feeder (its own included)
  };
  bool feeder_counts(FeederCounts* out) const;
  void start_publishing();
  void stop_publishing();
  void unpace_all();
  void close_all();
  void abort_unopened();

  const Options& options() const { return options_; }
  core::Reactor& reactor() { return reactor_; }
  ClientContext& context() { return context_; }
  Connector& connector() { return connector_; }
  LoadCounters& counters() { return counters_; }
  Histogram& fast_latency() { return fast_latency_; }
  ErrorLog& errors() { return *errors_; }
  const WsClientConfig& config() const { return config_; }
  const net::SocketAddress& address(bool via_relay) const;
  bool room_mode() const { return !options_.room.empty(); }
  bool closing() const { return closing_; }
  int64_t epoch_ns() const { return epoch_ns_; }
  int64_t bins() const { return bins_; }

 private:
  core::Reactor& reactor_;
  const Options& options_;
  std::vector<SlowClientSpec> specs_;
  int64_t epoch_ns_;
  int64_t bins_;
  net::SocketAddress relay_;
  bool has_relay_;
  ErrorLog* errors_;
  WsClientConfig config_;
  ClientContext context_;
  LoadCounters counters_;
  Histogram fast_latency_;
  bool closing_ = false;
  std::vector<std::unique_ptr<SlowSession>> sessions_;
  std::unique_ptr<RoomFeeder> feeder_;
  Connector connector_;  // after the sessions: connections (and their clients) go first
};

}  // namespace weir::load
