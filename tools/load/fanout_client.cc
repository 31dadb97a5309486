// tools/load/fanout_client.cc — room members, publishers, the per-thread pacing, and the
// resume drill (--resume-every).
#include "tools/load/fanout_client.h"

#include <algorithm>
#include <cmath>

#include "core/clock.h"
#include "tools/load/echo_run.h"

namespace weir::load {

// ---------------------------------------------------------------- FanoutClient

FanoutClient::FanoutClient(FanoutWorker& worker, const FanoutClientSpec& spec)
    : worker_(worker), spec_(spec), room_id_(worker.room_id(spec.room)) {
  deadline_timer_.set_callback([this] { on_deadline(); });
  resume_timer_.set_callback([this] { drop(); });
}

FanoutClient::~FanoutClient() = default;

void FanoutClient::connect() {
  worker_.counters().connects_started++;
  open_connection();
  worker_.reactor().schedule(deadline_timer_, worker_.options().connect_timeout_ms);
}

// The first connection and every reconnect of a resume.
void FanoutClient::open_connection() {
  const Options& o = worker_.options();
  // --also-url: client i on node i mod n (a resume reconnects to the same node)
  size_t node = static_cast<size_t>(spec_.index) % (o.also_addresses.size() + 1);
  const net::SocketAddress& address = node == 0 ? o.url.address : o.also_addresses[node - 1];
  worker_.connector().connect(address, nullptr, o.connect_timeout_ms,
                              [this](net::Connection* conn, std::string_view error) {
                                if (conn == nullptr) {
                                  if (state_ == State::kResuming)
                                    return resume_failed("reconnect failed: " + std::string(error));
                                  worker_.counters().connect_failures++;
                                  worker_.errors().report("connect failed: " + std::string(error));
                                  return;
                                }
                                auto client = std::make_unique<WsClient>(*conn, worker_.config(),
                                                                         &worker_.context(), this);
                                client_ = client.get();
                                conn->set_handler(std::move(client));
                                if (worker_.closing()) client_->abort("run complete");
                              });
}

void FanoutClient::close() {
  deadline_timer_.cancel();
  resume_timer_.cancel();
  if (client_) client_->close(ws::kCloseNormal, "run complete");
}

void FanoutClient::abort_if_unjoined() {
  if (client_ && !joined()) client_->abort("no room_joined within --connect-timeout");
}

void FanoutClient::on_deadline() {
  if (state_ == State::kJoining) return abort_if_unjoined();
  // A connect still pending ends by its own timeout and reports the failure.
  if (state_ == State::kResuming && client_) client_->abort("no resumed within --connect-timeout");
}

void FanoutClient::on_open(WsClient&) {}  // the session envelope comes first

void FanoutClient::on_message_data(WsClient&, std::span<const char> data, bool last) {
  // Frames after an abort in the same read are the dropped connection's, not ours.
  if (state_ == State::kDropped || state_ == State::kGone) return;
  std::string_view text;
  if (assembler_.feed(data, last, &text)) on_envelope(text);
}

void FanoutClient::on_envelope(std::string_view text) {
  RoomEnvelope e = parse_room_envelope(text);
  LoadCounters& c = worker_.counters();
  switch (e.type) {
    case RoomEvent::kSession:
      on_session(e);
      break;
    case RoomEvent::kJoined:
      if (state_ == State::kJoining) {
        deadline_timer_.cancel();
        state_ = State::kLive;
        c.connections_opened++;
        c.connections_open++;
        offsets_.joined(e.offset, e.epoch);
      }
      if (spec_.publisher >= 0 && worker_.sending() && worker_.ack_paced()) fill();
      break;
    case RoomEvent::kResumed:
      on_resumed(e);
      break;
    case RoomEvent::kMessage:
      on_delivery(e);
      break;
    case RoomEvent::kLagged:
      offsets_.on_lagged(e.from, e.to);
      if (e.to >= e.from) c.skipped += e.to - e.from + 1;
      break;
    case RoomEvent::kError:
    case RoomEvent::kMalformed:
      c.protocol_errors++;
      worker_.errors().report("server said: " + std::string(text.substr(0, 200)));
      if (state_ == State::kResuming) resume_failed("resume of " + room_id_ + " refused");
      break;
    default:
      break;
  }
}

// The first session is the one a resume will name. On a reconnect the server first opens a
// fresh session (which we ignore), then answers our resume with the resumed one.
void FanoutClient::on_session(const RoomEnvelope& e) {
  if (!client_) return;
  if (state_ == State::kJoining) {
    token_ = std::string(e.token);
    client_->send(ws::Opcode::kText, join_envelope(room_id_));
  } else if (state_ == State::kResuming && !resume_sent_) {
    resume_sent_ = true;
    client_->send(ws::Opcode::kText,
                  resume_envelope(token_, room_id_, offsets_.last_offset(), offsets_.epoch()));
  } else if (state_ == State::kResuming && !e.token.empty()) {
    token_ = std::string(e.token);
  }
}

void FanoutClient::on_resumed(const RoomEnvelope& e) {
  LoadCounters& c = worker_.counters();
  if (state_ != State::kResuming || e.room != room_id_) {
    c.protocol_errors++;
    worker_.errors().report("unexpected resumed for " + std::string(e.room));
    return;
  }
  deadline_timer_.cancel();
  state_ = State::kLive;
  c.connections_open++;
  c.resumes++;
  int64_t latency = core::monotonic_ns() - drop_ns_;
  worker_.resume_latency().record(latency > 0 ? static_cast<uint64_t>(latency) : 0);
  replay_last_ = e.offset;
  if (e.recovered) {
    c.resumes_recovered++;
    return;
  }
  worker_.errors().report("room " + room_id_ + ": resume from offset " +
                          std::to_string(offsets_.last_offset()) + " epoch " +
                          std::to_string(offsets_.epoch()) + " not recovered (room at " +
                          std::to_string(e.offset) + " epoch " + std::to_string(e.epoch) + ")");
}

void FanoutClient::on_delivery(const RoomEnvelope& e) {
  LoadCounters& c = worker_.counters();
  uint64_t previous = offsets_.last_offset();
  if (offsets_.on_message(e.offset, e.epoch) != OffsetTracker::Arrival::kInOrder) {
    c.order_violations++;
    worker_.errors().report("room " + room_id_ + ": offset " + std::to_string(e.offset) +
                            " after " + std::to_string(previous));
  }
  c.messages_received++;
  c.bytes_received += e.content.size();
  // A replay's latency is the outage's, reported as the resume latency instead.
  bool replayed = e.offset <= replay_last_;
  if (replayed) c.replayed++;
  ContentStamp stamp;
  if (!parse_content_stamp(e.content, &stamp)) return;  // someone else's message
  int64_t latency = core::monotonic_ns() - stamp.send_ns;
  if (!replayed) worker_.latency().record(latency > 0 ? static_cast<uint64_t>(latency) : 0);
  if (spec_.publisher < 0 || stamp.publisher != static_cast<uint32_t>(spec_.publisher)) return;
  c.acks++;
  if (in_flight_ > 0) in_flight_--;
  if (worker_.ack_paced()) fill();
}

void FanoutClient::start_resume_drill(int64_t first_ms) {
  worker_.reactor().schedule(resume_timer_, first_ms);
}

// The drill: cut the connection as a network failure would (RST, unread data lost); the
// reconnect starts when the end is reported (on_closed).
void FanoutClient::drop() {
  if (!worker_.sending()) return;
  worker_.reactor().schedule(resume_timer_, worker_.next_resume_ms());
  if (state_ != State::kLive || !client_) return;  // still resuming, or gone: skip this one
  state_ = State::kDropped;
  drop_ns_ = core::monotonic_ns();
  worker_.counters().resumes_started++;
  client_->abort("resume drill");
}

void FanoutClient::resume_failed(const std::string& why) {
  deadline_timer_.cancel();
  state_ = State::kGone;
  worker_.counters().resume_failures++;
  worker_.errors().report("member of " + room_id_ + ": " + why);
  if (client_) client_->abort(why);
}

void FanoutClient::fill() {
  while (worker_.sending() && joined() && in_flight_ < worker_.options().depth)
    if (!send_message()) return;
}

bool FanoutClient::publish_one() {
  if (!client_ || !joined()) return false;
  if (client_->connection().queued_bytes() > kMaxQueued) {
    worker_.counters().publish_held_back++;
    return false;
  }
  return send_message();
}

bool FanoutClient::send_message() {
  if (!client_) return false;
  const Options& o = worker_.options();
  ContentStamp stamp{core::monotonic_ns(), static_cast<uint32_t>(spec_.publisher), next_seq_};
  size_t len = message_envelope_size(room_id_, o.size, stamp);
  size_t n = write_message_envelope(client_->prepare(len), room_id_, o.size, stamp);
  if (!client_->send_prepared(ws::Opcode::kText, n)) return false;
  next_seq_++;
  in_flight_++;
  worker_.counters().messages_sent++;
  worker_.counters().bytes_sent += o.size;
  return true;
}

void FanoutClient::on_closed(WsClient&, const WsClientEnd& end) {
  client_ = nullptr;
  LoadCounters& c = worker_.counters();
  switch (state_) {
    case State::kJoining:
      deadline_timer_.cancel();
      c.connect_failures++;
      worker_.errors().report("did not join " + room_id_ + ": " + end.reason);
      return;
    case State::kLive:
      c.connections_open--;
      if (worker_.closing()) return;
      c.unexpected_closes++;
      worker_.errors().report("member of " + room_id_ + " closed during the run: " + end.reason +
                              " (code " + std::to_string(end.code) + ")");
      return;
    case State::kDropped:
      c.connections_open--;
      state_ = State::kResuming;
      resume_sent_ = false;
      assembler_.reset();
      worker_.reactor().schedule(deadline_timer_, worker_.options().connect_timeout_ms);
      return open_connection();
    case State::kResuming:
      return resume_failed("connection ended before resumed: " + end.reason);
    case State::kGone:
      return;
  }
}

// ---------------------------------------------------------------- FanoutWorker

FanoutWorker::FanoutWorker(core::Reactor& reactor, const Options& options, std::string room_prefix,
                           std::vector<FanoutClientSpec> specs, double rate, int64_t epoch_ns,
                           ErrorLog* errors)
    : reactor_(reactor),
      options_(options),
      room_prefix_(std::move(room_prefix)),
      specs_(std::move(specs)),
      rate_(rate),
      errors_(errors),
      context_(0xBF58476D1CE4E5B9ull ^ static_cast<uint64_t>(epoch_ns) ^
               (specs_.empty() ? 0 : static_cast<uint64_t>(specs_[0].index) << 20)),
      connector_(reactor, client_connection_options()) {
  config_.host_header = options.url.host_header();
  config_.target = options.url.target;
  tick_timer_.set_callback([this] { tick(); });
}

FanoutWorker::~FanoutWorker() {
  tick_timer_.cancel();
}

void FanoutWorker::start() {
  clients_.reserve(specs_.size());
  for (const FanoutClientSpec& spec : specs_) {
    clients_.push_back(std::make_unique<FanoutClient>(*this, spec));
    if (spec.publisher >= 0) publishers_.push_back(clients_.back().get());
    clients_.back()->connect();
  }
}

void FanoutWorker::sample(Sample* out) {
  out->counters = counters_;
  out->latency = latency_;
  out->resume_latency = resume_latency_;
  latency_.reset();
  resume_latency_.reset();
}

// Members that only receive are numbered 0 .. rooms x members - 1 over all threads; member s
// first drops at (s + 1) / count of an interval, so the drops are spread evenly.
void FanoutWorker::start_sending() {
  sending_ = true;
  if (options_.resume_every_ms > 0) {
    double members = static_cast<double>(options_.rooms) * options_.members;
    for (auto& c : clients_) {
      if (c->spec().publisher >= 0) continue;
      double s = c->spec().index - options_.publishers;
      c->start_resume_drill(static_cast<int64_t>(options_.resume_every_ms * (s + 1) / members));
    }
  }
  if (publishers_.empty()) return;
  if (ack_paced()) {
    for (FanoutClient* p : publishers_) p->fill();
    return;
  }
  send_start_ms_ = reactor_.now_ms();
  tick();
}

void FanoutWorker::stop_sending() {
  sending_ = false;
  tick_timer_.cancel();
  for (auto& c : clients_) c->stop_resume_drill();
}

int64_t FanoutWorker::next_resume_ms() {
  double u = static_cast<double>(context_.next_random() >> 11) / static_cast<double>(1ull << 53);
  return std::max<int64_t>(1, std::llround(options_.resume_every_ms * (0.9 + 0.2 * u)));
}

// Sends what the rate makes due by now; a publisher that cannot take one is passed over, and
// the message is not made up later (held back, not queued).
void FanoutWorker::tick() {
  if (!sending_) return;
  double elapsed = static_cast<double>(reactor_.now_ms() - send_start_ms_) / 1000.0;
  uint64_t due_total = static_cast<uint64_t>(std::floor(rate_ * elapsed)) + 1;
  for (; due_ < due_total; ++due_) {
    FanoutClient* p = publishers_[next_publisher_++ % publishers_.size()];
    p->publish_one();
  }
  reactor_.schedule(tick_timer_, 10);
}

void FanoutWorker::close_all() {
  stop_sending();
  closing_ = true;
  for (auto& c : clients_) c->close();
}

void FanoutWorker::abort_unjoined() {
  for (auto& c : clients_) c->abort_if_unjoined();
}

void FanoutWorker::collect(std::vector<FanoutClientResult>* out) const {
  for (const auto& c : clients_) {
    FanoutClientResult& r = (*out)[c->spec().index];
    r.room = c->spec().room;
    r.publisher = c->spec().publisher >= 0;
    r.joined = c->joined();
    r.offsets = c->offsets();
  }
}

}  // namespace weir::load
