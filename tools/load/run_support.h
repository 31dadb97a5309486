// tools/load/run_support.h — what every subcommand's main-thread driver needs around its
// reactor threads: the file descriptor limit, a hard deadline, Ctrl-C, pacing, and error
// lines that cannot flood the terminal.
//
// Thread-safety: stated per function.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace weir::load {

// Raises RLIMIT_NOFILE's soft limit to `wanted` (at most the hard limit). Returns the limit now
// in force and says on stderr when it is below `wanted`. Main thread, before connecting.
uint64_t raise_fd_limit(uint64_t wanted);

// Installs a SIGINT/SIGTERM handler that only sets a flag (the driver then ends the run early
// and still reports), and ignores SIGPIPE. Main thread, once.
void install_signal_handlers();
// True after SIGINT or SIGTERM. Any thread.
bool interrupted();

// Sleeps until the monotonic clock reaches `deadline_ms` or an interrupt arrives, in steps of
// at most 50 ms. Returns false when interrupted. Any thread.
bool sleep_until_ms(int64_t deadline_ms);

// Ends the process with status 1 if the run is still going `limit_ms` from now: the bound that
// makes "every run stops by itself" hold even if a peer or a bug wedges the normal shutdown.
// Destroying the watchdog disarms it. Thread-safe.
class Watchdog {
 public:
  Watchdog(int64_t limit_ms, std::string what);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;
};

// Prints the first few errors of a kind on stderr and counts the rest, so 10,000 refused
// connections make three lines and a total. Thread-safe.
class ErrorLog {
 public:
  explicit ErrorLog(int max_lines = 5) : max_lines_(max_lines) {}
  void report(const std::string& line);
  uint64_t suppressed() const { return suppressed_.load(std::memory_order_relaxed); }

 private:
  int max_lines_;
  std::atomic<int> printed_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace weir::load
