// store/store.cc — the store thread: requests in through its mailbox, one backend batch per
// loop iteration, completions out to each origin reactor.
#include "store/store.h"

#include <algorithm>
#include <utility>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

namespace weir::store {
namespace {

// The store thread's metrics shard: clear of the reactor threads', which count from 0.
constexpr int kStoreShard = core::kMetricShards - 1;

core::Counter g_batches("weir_store_batches_total", "Store batches run (one transaction each)");
core::Counter g_ops("weir_store_ops_total", "Store requests run");
core::Counter g_errors("weir_store_errors_total", "Store requests that did not succeed");
core::Histogram g_batch_size("weir_store_batch_size", "Requests per store batch",
                             core::Histogram::exponential(1, 4, 7));
// 1 while the backend answers, 0 from a failed request until one succeeds again.
std::atomic<int> g_up_value{1};
core::Gauge g_up("weir_store_up",
                 "1 while the store answers; 0 from a failed request until one succeeds", "",
                 [] { return static_cast<double>(g_up_value.load(std::memory_order_relaxed)); });
core::Counter g_appends("weir_store_appends_total", "Room messages appended to the store");
core::Histogram g_batch_seconds("weir_store_batch_seconds", "Time to run one store batch",
                                core::Histogram::exponential(0.0001, 4, 9));

}  // namespace

Store::Store(std::unique_ptr<Backend> backend)
    : backend_(std::move(backend)), backend_name_(backend_->name()), loop_(kStoreShard) {
  thread_ = std::thread([this] { loop_.run(); });
  loop_.post([this] { start_probe(); });
}

Store::~Store() {
  stop();
}

void Store::start_purge(Retention retention, int64_t interval_ms) {
  loop_.post([this, retention, interval_ms] {
    retention_ = retention;
    purge_interval_ms_ = interval_ms;
    purge_timer_.set_callback([this] {
      // Queued like any request, so it runs inside the next batch.
      pending_.push_back(
          Request{nullptr, [this](Backend& b) { return b.purge(retention_, core::wall_ms()); },
                  [](Status) {}});
      loop_.on_end_of_iteration(this);
      loop_.schedule(purge_timer_, purge_interval_ms_);
    });
    loop_.schedule(purge_timer_, purge_interval_ms_);
  });
}

// An idle store is still watched: after a second without a batch, a cheap read tells whether
// the backend answers, so /readyz and weir_store_up follow an outage (and its end) even when no
// traffic would have noticed.
void Store::start_probe() {
  probe_timer_.set_callback([this] {
    if (batches_.load(std::memory_order_relaxed) == probed_at_batches_) {
      auto state = std::make_shared<RoomState>();
      pending_.push_back(
          Request{nullptr,
                  [state](Backend& b) { return b.room_state("weir-health-probe", state.get()); },
                  {}});
      loop_.on_end_of_iteration(this);
    }
    probed_at_batches_ = batches_.load(std::memory_order_relaxed);
    loop_.schedule(probe_timer_, kProbeIntervalMs);
  });
  loop_.schedule(probe_timer_, kProbeIntervalMs);
}

void Store::stop() {
  if (stopped_.exchange(true)) return;
  // Every post that passed the stopped_ check is in the mailbox before the loop is told to
  // stop, so run()'s final drain and hook passes complete it.
  while (submitting_.load() > 0) std::this_thread::yield();
  loop_.stop();
  if (thread_.joinable()) thread_.join();
}

void Store::submit(std::function<Status(Backend&)> execute, std::function<void(Status)> complete) {
  core::Reactor* caller = complete ? core::Reactor::current() : nullptr;
  Request request{caller ? caller->gate() : nullptr, std::move(execute), std::move(complete)};
  submitting_.fetch_add(1);
  if (stopped_.load()) {
    submitting_.fetch_sub(1);
    request.status = Status::kUnavailable;
    std::vector<Request> failed;
    failed.push_back(std::move(request));
    deliver(failed);
    return;
  }
  loop_.post([this, request = std::move(request)]() mutable {
    pending_.push_back(std::move(request));
    loop_.on_end_of_iteration(this);
  });
  submitting_.fetch_sub(1);
}

void Store::on_end_of_iteration() {
  std::vector<Request> batch;
  batch.swap(pending_);
  run_batch(batch);
  deliver(batch);
}

void Store::run_batch(std::vector<Request>& batch) {
  int64_t start_ns = core::monotonic_ns();
  Status begin = backend_->begin_batch();
  for (Request& request : batch)
    request.status = begin == Status::kOk ? request.execute(*backend_) : begin;
  Status commit = backend_->commit_batch();
  uint64_t errors = 0;
  for (Request& request : batch) {
    if (request.status == Status::kOk) request.status = commit;
    // kNotFound is an answer, and kConflict another node's doing: neither is a failure.
    if (request.status != Status::kOk && request.status != Status::kNotFound &&
        request.status != Status::kConflict)
      ++errors;
  }
  bool up =
      errors == 0 && begin == Status::kOk && (commit == Status::kOk || commit == Status::kConflict);
  if (up != healthy_.load(std::memory_order_relaxed)) {
    healthy_.store(up, std::memory_order_relaxed);
    g_up_value.store(up ? 1 : 0, std::memory_order_relaxed);
    if (up)
      log_info("store %s: answering again", backend_name_);
    else
      log_warn("store %s: failing (%s); durability degraded until it answers", backend_name_,
               backend_->last_error().c_str());
  }
  batches_.fetch_add(1, std::memory_order_relaxed);
  g_batches.inc();
  g_ops.inc(batch.size());
  if (errors) g_errors.inc(errors);
  g_batch_size.observe(static_cast<double>(batch.size()));
  g_batch_seconds.observe(static_cast<double>(core::monotonic_ns() - start_ns) / 1e9);
}

// Groups completions by origin, keeping request order within each, one post per origin.
void Store::deliver(std::vector<Request>& batch) {
  std::vector<std::pair<core::ReactorGate*, std::vector<Request>>> by_origin;
  for (Request& request : batch) {
    auto it = std::find_if(by_origin.begin(), by_origin.end(),
                           [&](const auto& group) { return group.first == request.origin.get(); });
    if (it == by_origin.end()) it = by_origin.insert(by_origin.end(), {request.origin.get(), {}});
    it->second.push_back(std::move(request));
  }
  for (auto& [origin, requests] : by_origin) {
    auto run = [requests = std::move(requests)]() {
      for (const Request& request : requests)
        if (request.complete) request.complete(request.status);
    };
    if (origin) {
      origin->post(std::move(run));  // dropped when the reactor is gone
    } else {
      run();
    }
  }
}

void Store::append(StoredMessage message, Done done) {
  g_appends.inc();
  submit([message = std::move(message)](Backend& b) { return b.append(message); }, std::move(done));
}

void Store::append_batch(std::vector<StoredMessage> messages, Done done) {
  g_appends.inc(messages.size());
  submit(
      [messages = std::move(messages)](Backend& b) {
        for (const StoredMessage& m : messages)
          if (Status s = b.append(m); s != Status::kOk) return s;
        return Status::kOk;
      },
      std::move(done));
}

void Store::read_room(std::string room_id, uint64_t epoch, uint64_t after, size_t limit,
                      ReadDone done) {
  struct Result {
    std::vector<StoredMessage> messages;
    uint64_t first_offset = 0;
  };
  auto result = std::make_shared<Result>();
  submit(
      [=, room_id = std::move(room_id)](Backend& b) {
        return b.read_room(room_id, epoch, after, limit, &result->messages, &result->first_offset);
      },
      [result, done = std::move(done)](Status s) {
        done(s, std::move(result->messages), result->first_offset);
      });
}

void Store::room_state(std::string room_id, RoomStateDone done) {
  auto result = std::make_shared<RoomState>();
  submit([result,
          room_id = std::move(room_id)](Backend& b) { return b.room_state(room_id, result.get()); },
         [result, done = std::move(done)](Status s) { done(s, *result); });
}

void Store::put_session(Session session, Done done) {
  submit([session = std::move(session)](Backend& b) { return b.put_session(session); },
         std::move(done));
}

void Store::get_session(std::string token, int64_t now_ms, SessionDone done) {
  auto result = std::make_shared<Session>();
  submit([result, now_ms, token = std::move(token)](
             Backend& b) { return b.get_session(token, now_ms, result.get()); },
         [result, done = std::move(done)](Status s) { done(s, std::move(*result)); });
}

void Store::delete_session(std::string token, Done done) {
  submit([token = std::move(token)](Backend& b) { return b.delete_session(token); },
         std::move(done));
}

void Store::remember_message_id(std::string room_id, std::string message_id, uint64_t offset,
                                int64_t window_ms, int64_t now_ms, IdempotencyDone done) {
  auto result = std::make_shared<IdempotencyResult>();
  submit(
      [=, room_id = std::move(room_id), message_id = std::move(message_id)](Backend& b) {
        return b.remember_message_id(room_id, message_id, offset, window_ms, now_ms, result.get());
      },
      [result, done = std::move(done)](Status s) { done(s, *result); });
}

void Store::rate_take(std::string key, RateLimit limit, double cost, int64_t now_ms,
                      RateDone done) {
  auto result = std::make_shared<RateDecision>();
  submit([=, key = std::move(key)](
             Backend& b) { return b.rate_take(key, limit, cost, now_ms, result.get()); },
         [result, done = std::move(done)](Status s) { done(s, *result); });
}

void Store::purge(Retention retention, int64_t now_ms, Done done) {
  submit([=](Backend& b) { return b.purge(retention, now_ms); }, std::move(done));
}

}  // namespace weir::store
