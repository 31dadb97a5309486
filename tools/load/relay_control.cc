// tools/load/relay_control.cc — console lines, signals and the schedule.
#include "tools/load/relay_control.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>

namespace weir::load {
namespace {

std::atomic<RelayControl*> g_signal_control{nullptr};

void on_usr_signal(int signo) {
  RelayControl* c = g_signal_control.load(std::memory_order_relaxed);
  if (c == nullptr) return;
  if (signo == SIGUSR1)
    c->halve();
  else
    c->double_rate();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string describe(double bps) {
  return bps == 0 ? std::string("unlimited") : std::to_string(static_cast<uint64_t>(bps)) + " B/s";
}

}  // namespace

RelayControl::RelayControl(double bytes_per_sec, std::vector<BandwidthStep> schedule)
    : bps_(static_cast<uint64_t>(bytes_per_sec)), schedule_(std::move(schedule)) {}

RelayControl::~RelayControl() {
  stop_console();
  RelayControl* self = this;
  g_signal_control.compare_exchange_strong(self, nullptr);
}

void RelayControl::set(double bytes_per_sec) {
  bps_.store(static_cast<uint64_t>(bytes_per_sec < 0 ? 0 : bytes_per_sec),
             std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
}

void RelayControl::halve() {
  uint64_t v = bps_.load(std::memory_order_relaxed);
  if (v == 0) return;
  while (!bps_.compare_exchange_weak(v, v > 1 ? v / 2 : 1, std::memory_order_relaxed)) {
  }
  generation_.fetch_add(1, std::memory_order_release);
}

void RelayControl::double_rate() {
  uint64_t v = bps_.load(std::memory_order_relaxed);
  if (v == 0) return;
  while (!bps_.compare_exchange_weak(v, v < (uint64_t{1} << 40) ? v * 2 : v,
                                     std::memory_order_relaxed)) {
  }
  generation_.fetch_add(1, std::memory_order_release);
}

bool RelayControl::apply_schedule(int64_t elapsed_ms) {
  bool changed = false;
  while (next_step_ < schedule_.size() && schedule_[next_step_].at_ms <= elapsed_ms) {
    set(schedule_[next_step_++].bytes_per_sec);
    changed = true;
  }
  return changed;
}

bool RelayControl::apply_line(std::string_view line, std::string* answer) {
  line = trim(line);
  if (line.substr(0, 4) == "set ") line = trim(line.substr(4));
  if (line == "show" || line == "show bandwidth" || line == "sh") {
    *answer = "bandwidth " + describe(bandwidth());
    return true;
  }
  if (line.substr(0, 10) != "bandwidth ") {
    *answer = "commands: 'bandwidth N' (bytes/s, 0 = unlimited), 'show'";
    return false;
  }
  double bps = 0;
  std::string error;
  if (!parse_bandwidth(trim(line.substr(10)), &bps, &error)) {
    *answer = error;
    return false;
  }
  set(bps);
  *answer = "bandwidth " + describe(bps);
  return true;
}

// poll() with a timeout, so the thread notices stop_console() even when stdin stays silent.
void RelayControl::start_console() {
  console_ = std::thread([this] {
    std::string pending;
    char buf[512];
    while (!console_stop_.load(std::memory_order_relaxed)) {
      struct pollfd p {
        STDIN_FILENO, POLLIN, 0
      };
      int n = ::poll(&p, 1, 100);
      if (n <= 0) continue;
      ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
      if (got <= 0) return;  // EOF (or /dev/null): no console
      pending.append(buf, static_cast<size_t>(got));
      for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
        std::string line = pending.substr(0, eol);
        pending.erase(0, eol + 1);
        if (trim(line).empty()) continue;
        std::string answer;
        apply_line(line, &answer);
        std::fprintf(stderr, "relay: %s\n", answer.c_str());
      }
    }
  });
}

void RelayControl::stop_console() {
  console_stop_.store(true, std::memory_order_relaxed);
  if (console_.joinable()) console_.join();
}

void RelayControl::install_signals() {
  g_signal_control.store(this, std::memory_order_relaxed);
  struct sigaction sa {};
  sa.sa_handler = on_usr_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGUSR1, &sa, nullptr);
  ::sigaction(SIGUSR2, &sa, nullptr);
}

}  // namespace weir::load
