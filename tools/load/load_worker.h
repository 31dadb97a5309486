// tools/load/load_worker.h — the reactor threads of a run and how the main thread talks to them.
//
// Each thread owns one core::Reactor and one Worker (the subcommand's per-thread part: its
// connections, counters and latency histogram). Nothing is shared: the main thread reaches a
// worker only by posting a task to its reactor and waiting for the answer (Seastar's
// submit_to), so the hot path needs no atomics and no locks.
//
// Thread-safety: WorkerThreads is used from the main thread only; Worker methods run on the
// worker's own reactor thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "core/reactor.h"
#include "tools/load/histogram.h"

namespace weir::load {

// Cumulative counters of one worker (or, summed, of the run). Gauges say so.
struct LoadCounters {
  uint64_t connects_started = 0;
  uint64_t connections_opened = 0;  // TCP connected (and upgraded, for WebSocket)
  uint64_t connections_open = 0;    // gauge: open right now
  uint64_t connect_failures = 0;    // refused, timed out, or upgrade failed
  uint64_t unexpected_closes = 0;   // an open connection ended before the run let it go
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_sent = 0;      // payload bytes
  uint64_t bytes_received = 0;  // payload bytes
  uint64_t mismatches = 0;      // echoes that differ from what was sent
  uint64_t protocol_errors = 0;
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t pongs_missed = 0;         // a ping still unanswered when the next one was due
  uint64_t deflate_connections = 0;  // opened with permessage-deflate negotiated
  // Rooms (fanout): deliveries are messages_received, publishes messages_sent.
  uint64_t acks = 0;               // a publisher's own message came back
  uint64_t order_violations = 0;   // an offset that was not the previous one plus one
  uint64_t skipped = 0;            // offsets announced as skipped by lagged notices
  uint64_t publish_held_back = 0;  // publishes not queued: the publisher's socket was full
  // fanout --resume-every: connections dropped on purpose, and how their resumes went.
  uint64_t resumes_started = 0;    // dropped, to reconnect and resume
  uint64_t resumes = 0;            // `resumed` arrived
  uint64_t resumes_recovered = 0;  // ... with recovered:true
  uint64_t resume_failures = 0;    // no `resumed`: reconnect failed, an error, or a timeout
  uint64_t replayed = 0;           // deliveries up to the `resumed` offset, after it

  uint64_t resumes_pending() const { return resumes_started - resumes - resume_failures; }

  void add(const LoadCounters& other);
  uint64_t errors() const {
    return connect_failures + unexpected_closes + mismatches + protocol_errors;
  }
  uint64_t in_flight() const { return messages_sent - messages_received; }
};

struct Sample {
  LoadCounters counters;
  Histogram latency;         // nanoseconds, recorded since the previous sample
  Histogram resume_latency;  // fanout --resume-every: drop to `resumed`, likewise
};

class Worker {
 public:
  virtual ~Worker() = default;
  // Called once on the worker's thread before its loop starts.
  virtual void start() = 0;
  // Fills `out` with cumulative counters and moves the latency recorded since the last call.
  virtual void sample(Sample* out) = 0;
};

class WorkerThreads {
 public:
  // Builds the worker of thread `index` on that thread, around that thread's reactor.
  using Factory = std::function<std::unique_ptr<Worker>(core::Reactor& reactor, int index)>;

  explicit WorkerThreads(int count) : count_(count) {}
  ~WorkerThreads() { stop(); }
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;

  // Starts the threads; returns once every worker's start() has run.
  void start(const Factory& factory);
  // Runs `task` on every worker's thread and waits until all have run it.
  void run_on_each(const std::function<void(Worker&)>& task);
  // Sum of every worker's sample (counters added, histograms merged).
  Sample sample();
  // Stops the loops and joins; workers are destroyed on their own threads.
  void stop();
  int count() const { return count_; }

 private:
  struct Slot {
    std::unique_ptr<core::Reactor> reactor;  // built on the thread, destroyed after the join
    Worker* worker = nullptr;
    std::thread thread;
  };

  int count_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<Sample> scratch_;  // per-thread sample landing area, reused
};

}  // namespace weir::load
