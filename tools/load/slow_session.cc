// tools/load/slow_session.cc — paced consumers, the room feeder, and their worker.
#include "tools/load/slow_session.h"

#include <algorithm>

#include "core/clock.h"
#include "tools/load/echo_run.h"
#include "tools/load/json_scan.h"

namespace weir::load {
namespace {

// A server on another machine has its own monotonic clock: send times then say nothing about
// ours. On one machine a message is never older than this when it first arrives.
constexpr int64_t kMaxFirstAgeNs = 10'000'000'000;

void schedule_ns(core::Reactor& reactor, core::Timer& timer, int64_t ns) {
  reactor.schedule(timer, std::max<int64_t>(1, (ns + 999'999) / 1'000'000));
}

}  // namespace

// ---------------------------------------------------------------- SlowSession

SlowSession::SlowSession(SlowWorker& worker, const SlowClientSpec& spec)
    : worker_(worker), spec_(spec), sent_bins_(static_cast<size_t>(worker.bins()), 0) {
  process_timer_.set_callback([this] { process_due(); });
  ping_timer_.set_callback([this] { send_ping(); });
  upgrade_timer_.set_callback([this] { abort_if_unopened(); });
}

SlowSession::~SlowSession() = default;

void SlowSession::connect() {
  const Options& o = worker_.options();
  int rcvbuf = spec_.slow ? static_cast<int>(o.receive_buffer) : 0;
  worker_.counters().connects_started++;
  worker_.connector().connect(
      worker_.address(spec_.via_relay), nullptr, o.connect_timeout_ms,
      [this](net::Connection* conn, std::string_view error) {
        if (conn == nullptr) {
          worker_.counters().connect_failures++;
          worker_.errors().report(spec_.name + ": connect failed: " + std::string(error));
          return;
        }
        auto client = std::make_unique<WsClient>(*conn, worker_.config(), &worker_.context(), this);
        client_ = client.get();
        conn->set_handler(std::move(client));
      },
      rcvbuf);
  worker_.reactor().schedule(upgrade_timer_, o.connect_timeout_ms);
}

void SlowSession::close() {
  process_timer_.cancel();
  ping_timer_.cancel();
  upgrade_timer_.cancel();
  if (client_) client_->close(ws::kCloseNormal, "run complete");
}

void SlowSession::abort_if_unopened() {
  if (client_ && !stats_.open) client_->abort("not open within --connect-timeout");
}

void SlowSession::unpace() {
  paced_ = false;
  process_timer_.cancel();
  int64_t now = core::monotonic_ns();
  while (!backlog_.empty()) {
    processed(backlog_.front(), now);
    backlog_.pop_front();
  }
  if (client_) client_->connection().resume_reading();
}

void SlowSession::on_open(WsClient& client) {
  worker_.reactor().schedule(ping_timer_, kPingMs);
  if (worker_.room_mode()) {
    client.send(ws::Opcode::kText, join_envelope(worker_.options().room));
    return;  // open once the room confirms the join
  }
  upgrade_timer_.cancel();
  stats_.open = true;
  worker_.counters().connections_opened++;
  worker_.counters().connections_open++;
}

void SlowSession::on_message_data(WsClient&, std::span<const char> data, bool last) {
  std::string_view text;
  if (!assembler_.feed(data, last, &text)) return;
  int64_t now = core::monotonic_ns();
  if (worker_.room_mode())
    on_room_envelope(text, now);
  else
    on_stream_message(text, now);
}

void SlowSession::on_stream_message(std::string_view text, int64_t now_ns) {
  uint64_t seq = 0, ts_us = 0, deferred = 0;
  if (!json_find_uint(text, "seq", &seq) || !json_find_uint(text, "ts_us", &ts_us)) {
    worker_.counters().protocol_errors++;
    worker_.errors().report(spec_.name +
                            ": not a /stream message: " + std::string(text.substr(0, 80)));
    return;
  }
  if (json_find_uint(text, "deferred", &deferred)) stats_.last_deferred = deferred;
  if (seq > next_seq_) stats_.stream_gaps += seq - next_seq_;
  next_seq_ = std::max(next_seq_, seq + 1);
  stats_.bytes += text.size();
  int64_t sent_ns = static_cast<int64_t>(ts_us) * 1000;
  if (stats_.arrived == 0 && (now_ns < sent_ns || now_ns - sent_ns > kMaxFirstAgeNs))
    stats_.clock_shared = false;
  if (stats_.clock_shared) {
    int64_t bin = (sent_ns - worker_.epoch_ns()) / kBinNs;
    if (bin >= 0 && bin < static_cast<int64_t>(sent_bins_.size())) sent_bins_[bin]++;
  }
  arrived(stats_.clock_shared ? sent_ns : now_ns, now_ns);
}

void SlowSession::on_room_envelope(std::string_view text, int64_t now_ns) {
  RoomEnvelope e = parse_room_envelope(text);
  switch (e.type) {
    case RoomEvent::kJoined:
      stats_.offsets.joined(e.offset, e.epoch);
      if (!stats_.open) {
        upgrade_timer_.cancel();
        stats_.open = true;
        worker_.counters().connections_opened++;
        worker_.counters().connections_open++;
      }
      break;
    case RoomEvent::kMessage: {
      stats_.offsets.on_message(e.offset, e.epoch);
      stats_.bytes += e.content.size();
      ContentStamp stamp;
      bool stamped = parse_content_stamp(e.content, &stamp);
      arrived(stamped ? stamp.send_ns : now_ns, now_ns);
      break;
    }
    case RoomEvent::kLagged:
      stats_.offsets.on_lagged(e.from, e.to);
      break;
    case RoomEvent::kError:
    case RoomEvent::kMalformed:
      worker_.counters().protocol_errors++;
      worker_.errors().report(spec_.name + ": " + std::string(text.substr(0, 160)));
      break;
    default:
      break;
  }
}

// A message is done `delay` after the reader got to it: right away when idle, else after the
// one before it. Reading stays suspended while any message waits.
void SlowSession::arrived(int64_t sent_ns, int64_t now_ns) {
  stats_.arrived++;
  stats_.last_sent_ns = sent_ns;
  if (!paced_ || spec_.delay_ms == 0) {
    processed(sent_ns, now_ns);
    return;
  }
  if (backlog_.empty()) {
    busy_until_ns_ = now_ns + spec_.delay_ms * 1'000'000;
    schedule_ns(worker_.reactor(), process_timer_, busy_until_ns_ - now_ns);
    if (client_) client_->connection().suspend_reading();
  }
  backlog_.push_back(sent_ns);
  stats_.backlog_peak = std::max<uint64_t>(stats_.backlog_peak, backlog_.size());
}

// Timer ticks are 10 ms, so a late tick finishes every message whose time has come: the
// average rate stays exactly one per delay.
void SlowSession::process_due() {
  int64_t now = core::monotonic_ns();
  while (!backlog_.empty() && busy_until_ns_ <= now) {
    processed(backlog_.front(), now);
    backlog_.pop_front();
    if (!backlog_.empty()) busy_until_ns_ += spec_.delay_ms * 1'000'000;
  }
  if (!backlog_.empty()) {
    schedule_ns(worker_.reactor(), process_timer_, busy_until_ns_ - now);
  } else if (client_) {
    client_->connection().resume_reading();
  }
}

void SlowSession::processed(int64_t sent_ns, int64_t now_ns) {
  stats_.processed++;
  worker_.counters().messages_received++;
  double age_ms = static_cast<double>(now_ns - sent_ns) / 1e6;
  stats_.last_age_ms = age_ms;
  stats_.max_age_ms = std::max(stats_.max_age_ms, age_ms);
  if (!spec_.slow) worker_.fast_latency().record(now_ns > sent_ns ? now_ns - sent_ns : 0);
}

void SlowSession::send_ping() {
  if (!client_) return;
  client_->ping("weir-load");
  worker_.reactor().schedule(ping_timer_, kPingMs);
}

void SlowSession::on_closed(WsClient&, const WsClientEnd& end) {
  client_ = nullptr;
  process_timer_.cancel();
  ping_timer_.cancel();
  upgrade_timer_.cancel();
  LoadCounters& c = worker_.counters();
  if (!stats_.open) {
    c.connect_failures++;
    worker_.errors().report(spec_.name + ": did not open: " + end.reason);
    return;
  }
  c.connections_open--;
  if (worker_.closing()) return;
  c.unexpected_closes++;
  stats_.dropped = true;
  stats_.end_reason = end.reason + " (code " + std::to_string(end.code) + ")";
  worker_.errors().report(spec_.name + ": closed during the run: " + stats_.end_reason);
}

// ---------------------------------------------------------------- RoomFeeder

RoomFeeder::RoomFeeder(SlowWorker& worker) : worker_(worker) {
  timer_.set_callback([this] { tick(); });
}

RoomFeeder::~RoomFeeder() = default;

void RoomFeeder::connect() {
  worker_.counters().connects_started++;
  worker_.connector().connect(
      worker_.address(false), nullptr, worker_.options().connect_timeout_ms,
      [this](net::Connection* conn, std::string_view error) {
        if (conn == nullptr) {
          worker_.counters().connect_failures++;
          worker_.errors().report("publisher: connect failed: " + std::string(error));
          return;
        }
        auto client = std::make_unique<WsClient>(*conn, worker_.config(), &worker_.context(), this);
        client_ = client.get();
        conn->set_handler(std::move(client));
      });
}

void RoomFeeder::start() {
  running_ = true;
  start_ms_ = worker_.reactor().now_ms();
  tick();
}

void RoomFeeder::stop() {
  running_ = false;
  timer_.cancel();
}

void RoomFeeder::close() {
  stop();
  if (client_) client_->close(ws::kCloseNormal, "run complete");
}

void RoomFeeder::tick() {
  if (!running_ || !client_) return;
  const Options& o = worker_.options();
  double elapsed = static_cast<double>(worker_.reactor().now_ms() - start_ms_) / 1000.0;
  uint64_t due_total = static_cast<uint64_t>(o.publish_rate * elapsed) + 1;
  for (; due_ < due_total; ++due_) {
    if (client_->connection().queued_bytes() > kMaxQueued) {
      held_back_++;
      continue;
    }
    ContentStamp stamp{core::monotonic_ns(), 0, sent_};
    size_t len = message_envelope_size(o.room, o.size, stamp);
    size_t n = write_message_envelope(client_->prepare(len), o.room, o.size, stamp);
    if (!client_->send_prepared(ws::Opcode::kText, n)) break;
    sent_++;
    worker_.counters().messages_sent++;
  }
  worker_.reactor().schedule(timer_, 10);
}

void RoomFeeder::on_open(WsClient& client) {
  client.send(ws::Opcode::kText, join_envelope(worker_.options().room));
}

void RoomFeeder::on_message_data(WsClient&, std::span<const char> data, bool last) {
  std::string_view text;
  if (!assembler_.feed(data, last, &text)) return;
  RoomEnvelope e = parse_room_envelope(text);
  if (e.type == RoomEvent::kJoined) {
    if (!offsets_.is_joined()) {
      worker_.counters().connections_opened++;
      worker_.counters().connections_open++;
    }
    offsets_.joined(e.offset, e.epoch);
  } else if (e.type == RoomEvent::kMessage) {
    offsets_.on_message(e.offset, e.epoch);
  } else if (e.type == RoomEvent::kLagged) {
    offsets_.on_lagged(e.from, e.to);
  } else if (e.type == RoomEvent::kError || e.type == RoomEvent::kMalformed) {
    worker_.counters().protocol_errors++;
    worker_.errors().report("publisher: " + std::string(text.substr(0, 160)));
  }
}

void RoomFeeder::on_closed(WsClient&, const WsClientEnd& end) {
  client_ = nullptr;
  timer_.cancel();
  if (!offsets_.is_joined()) {
    worker_.counters().connect_failures++;
    worker_.errors().report("publisher: did not join: " + end.reason);
    return;
  }
  worker_.counters().connections_open--;
  if (worker_.closing()) return;
  dropped_ = true;
  worker_.counters().unexpected_closes++;
  worker_.errors().report("publisher: closed during the run: " + end.reason);
}

// ---------------------------------------------------------------- SlowWorker

SlowWorker::SlowWorker(core::Reactor& reactor, const Options& options,
                       std::vector<SlowClientSpec> specs, bool feeder, int64_t epoch_ns,
                       int64_t bins, const net::SocketAddress* relay, ErrorLog* errors)
    : reactor_(reactor),
      options_(options),
      specs_(std::move(specs)),
      epoch_ns_(epoch_ns),
      bins_(bins),
      has_relay_(relay != nullptr),
      errors_(errors),
      context_(0xA24BAED4963EE407ull ^ static_cast<uint64_t>(epoch_ns) ^
               (specs_.empty() ? 0 : static_cast<uint64_t>(specs_[0].index))),
      connector_(reactor, client_connection_options()) {
  if (relay) relay_ = *relay;
  config_.host_header = options.url.host_header();
  config_.target = options.url.target;
  if (feeder) feeder_ = std::make_unique<RoomFeeder>(*this);
}

SlowWorker::~SlowWorker() = default;

const net::SocketAddress& SlowWorker::address(bool via_relay) const {
  return via_relay && has_relay_ ? relay_ : options_.url.address;
}

void SlowWorker::start() {
  if (feeder_) feeder_->connect();
  sessions_.reserve(specs_.size());
  for (const SlowClientSpec& spec : specs_) {
    sessions_.push_back(std::make_unique<SlowSession>(*this, spec));
    sessions_.back()->connect();
  }
}

void SlowWorker::sample(Sample* out) {
  out->counters = counters_;
  out->latency = fast_latency_;
  fast_latency_.reset();
}

void SlowWorker::collect(std::vector<SlowClientStats>* out) const {
  for (const auto& s : sessions_) (*out)[s->spec().index] = s->stats();
}

void SlowWorker::collect_bins(std::vector<std::vector<uint32_t>>* out) const {
  for (const auto& s : sessions_) (*out)[s->spec().index] = s->sent_bins();
}

bool SlowWorker::feeder_counts(FeederCounts* out) const {
  if (!feeder_) return false;
  out->sent = feeder_->sent();
  out->held_back = feeder_->held_back();
  out->last_offset = feeder_->offsets().last_offset();
  out->received = feeder_->offsets().received();
  return true;
}

void SlowWorker::start_publishing() {
  if (feeder_) feeder_->start();
}

void SlowWorker::stop_publishing() {
  if (feeder_) feeder_->stop();
}

void SlowWorker::unpace_all() {
  for (auto& s : sessions_) s->unpace();
}

void SlowWorker::close_all() {
  closing_ = true;
  if (feeder_) feeder_->close();
  for (auto& s : sessions_) s->close();
}

void SlowWorker::abort_unopened() {
  for (auto& s : sessions_) s->abort_if_unopened();
}

}  // namespace weir::load
