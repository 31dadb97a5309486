// tools/load/load_worker.cc — reactor threads, cross-thread calls and sampling.
#include "tools/load/load_worker.h"

#include <latch>

namespace weir::load {

void LoadCounters::add(const LoadCounters& o) {
  connects_started += o.connects_started;
  connections_opened += o.connections_opened;
  connections_open += o.connections_open;
  connect_failures += o.connect_failures;
  unexpected_closes += o.unexpected_closes;
  messages_sent += o.messages_sent;
  messages_received += o.messages_received;
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  mismatches += o.mismatches;
  protocol_errors += o.protocol_errors;
  pings_sent += o.pings_sent;
  pongs_received += o.pongs_received;
  pongs_missed += o.pongs_missed;
  deflate_connections += o.deflate_connections;
  acks += o.acks;
  order_violations += o.order_violations;
  skipped += o.skipped;
  publish_held_back += o.publish_held_back;
  resumes_started += o.resumes_started;
  resumes += o.resumes;
  resumes_recovered += o.resumes_recovered;
  resume_failures += o.resume_failures;
  replayed += o.replayed;
}

// The reactor is built on its own thread and start() is posted as the first task, so by the
// time the main thread sees the latch every later post() happens after run() bound the loop.
// The reactor outlives its thread: stop() may still be inside Reactor::stop() (posting the
// wake-up) when the loop returns, so it is destroyed by the main thread after the join.
void WorkerThreads::start(const Factory& factory) {
  std::latch ready(count_);
  for (int i = 0; i < count_; ++i) {
    auto slot = std::make_unique<Slot>();
    Slot* s = slot.get();
    slots_.push_back(std::move(slot));
    s->thread = std::thread([s, i, &factory, &ready] {
      s->reactor = std::make_unique<core::Reactor>(i, 10);
      core::Reactor& reactor = *s->reactor;
      std::unique_ptr<Worker> worker = factory(reactor, i);
      s->worker = worker.get();
      reactor.post([&] {
        worker->start();
        ready.count_down();
      });
      reactor.run();
      worker.reset();  // connections close while their reactor still exists
    });
  }
  ready.wait();
}

void WorkerThreads::run_on_each(const std::function<void(Worker&)>& task) {
  std::latch done(static_cast<std::ptrdiff_t>(slots_.size()));
  for (auto& slot : slots_) {
    Worker* w = slot->worker;
    slot->reactor->post([w, &task, &done] {
      task(*w);
      done.count_down();
    });
  }
  done.wait();
}

Sample WorkerThreads::sample() {
  Sample total;
  if (!scratch_) scratch_ = std::make_unique<Sample>();
  for (auto& slot : slots_) {
    std::latch done(1);
    Worker* w = slot->worker;
    Sample* out = scratch_.get();
    slot->reactor->post([w, out, &done] {
      w->sample(out);
      done.count_down();
    });
    done.wait();
    total.counters.add(out->counters);
    total.latency.merge(out->latency);
    total.resume_latency.merge(out->resume_latency);
  }
  return total;
}

void WorkerThreads::stop() {
  for (auto& slot : slots_)
    if (slot->reactor) slot->reactor->stop();
  for (auto& slot : slots_)
    if (slot->thread.joinable()) slot->thread.join();
  slots_.clear();  // the reactors, now that no thread touches them
}

}  // namespace weir::load
