// tools/load/run_support.cc — limits, signals, pacing and the watchdog.
#include "tools/load/run_support.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/clock.h"

namespace weir::load {
namespace {

std::atomic<bool> g_interrupted{false};

void on_signal(int) {
  g_interrupted.store(true, std::memory_order_relaxed);
}

}  // namespace

uint64_t raise_fd_limit(uint64_t wanted) {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur >= wanted) return rl.rlim_cur;
  rlim_t target = rl.rlim_max == RLIM_INFINITY ? wanted : std::min<rlim_t>(wanted, rl.rlim_max);
  struct rlimit raised = rl;
  raised.rlim_cur = target;
  if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
    std::fprintf(stderr, "weir-load: raised the open file limit from %llu to %llu\n",
                 static_cast<unsigned long long>(rl.rlim_cur),
                 static_cast<unsigned long long>(target));
    rl.rlim_cur = target;
  }
  if (rl.rlim_cur < wanted)
    std::fprintf(stderr,
                 "weir-load: open file limit is %llu (hard limit %llu) but the run needs %llu; "
                 "raise it with 'ulimit -Hn' as root, or expect connects to fail with EMFILE\n",
                 static_cast<unsigned long long>(rl.rlim_cur),
                 static_cast<unsigned long long>(rl.rlim_max),
                 static_cast<unsigned long long>(wanted));
  return rl.rlim_cur;
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() {
  return g_interrupted.load(std::memory_order_relaxed);
}

bool sleep_until_ms(int64_t deadline_ms) {
  for (;;) {
    if (interrupted()) return false;
    int64_t left = deadline_ms - core::monotonic_ms();
    if (left <= 0) return true;
    ::usleep(static_cast<useconds_t>(std::min<int64_t>(left, 50) * 1000));
  }
}

Watchdog::Watchdog(int64_t limit_ms, std::string what) {
  thread_ = std::thread([this, limit_ms, what = std::move(what)] {
    std::unique_lock<std::mutex> lock(mutex_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(limit_ms), [this] { return disarmed_; }))
      return;
    std::fprintf(stderr, "weir-load: %s did not finish within its hard limit of %lld ms; exiting\n",
                 what.c_str(), static_cast<long long>(limit_ms));
    std::fflush(stderr);
    ::_exit(1);
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    disarmed_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ErrorLog::report(const std::string& line) {
  if (printed_.fetch_add(1, std::memory_order_relaxed) < max_lines_)
    std::fprintf(stderr, "weir-load: %s\n", line.c_str());
  else
    suppressed_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace weir::load
