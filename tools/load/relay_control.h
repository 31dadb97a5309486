// tools/load/relay_control.h — how a running relay's bandwidth is changed from outside its
// reactor thread, the way ip_relay's console does it:
//   - stdin lines: `bandwidth N` (or `set bandwidth N`, N in bytes/s, units as --bandwidth,
//     0 = unlimited) and `show`; answers go to stderr;
//   - signals: SIGUSR1 halves the bandwidth, SIGUSR2 doubles it (no effect while unlimited;
//     never below 1 B/s);
//   - a schedule (--bandwidth-schedule) applied by the main thread as the run's clock passes
//     each step.
// The relay's reactor polls generation() and re-reads bandwidth() when it changed.
//
// Thread-safety: bandwidth(), generation(), set(), halve() and double_rate() are lock-free
// atomics, safe from any thread and from a signal handler; the rest is main thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "tools/load/options.h"

namespace weir::load {

class RelayControl {
 public:
  RelayControl(double bytes_per_sec, std::vector<BandwidthStep> schedule);
  ~RelayControl();
  RelayControl(const RelayControl&) = delete;
  RelayControl& operator=(const RelayControl&) = delete;

  double bandwidth() const { return static_cast<double>(bps_.load(std::memory_order_relaxed)); }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  void set(double bytes_per_sec);
  void halve();
  void double_rate();

  // Applies the schedule's steps due `elapsed_ms` after the start; returns true when one was.
  bool apply_schedule(int64_t elapsed_ms);
  // Applies one console line; false (with a reason) when it is not a command.
  bool apply_line(std::string_view line, std::string* answer);

  // Reads console lines from stdin on a helper thread until stop_console() or EOF.
  void start_console();
  void stop_console();
  // Routes SIGUSR1/SIGUSR2 to this control (one control per process).
  void install_signals();

 private:
  std::atomic<uint64_t> bps_;
  std::atomic<uint64_t> generation_{0};
  std::vector<BandwidthStep> schedule_;
  size_t next_step_ = 0;
  std::atomic<bool> console_stop_{false};
  std::thread console_;
};

}  // namespace weir::load
