// server/main.cc — weir's entry point: flags, signals, and which service to run.
#include <signal.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <string>

#include "core/clock.h"
#include "core/log.h"
#include "net/tcp_echo.h"
#include "net/tcp_server.h"
#include "server/flags.h"
#include "server/http_service.h"

namespace {

using namespace weir;

// Signals are blocked in every thread (the reactors inherit the mask) and taken here with
// sigwait, so no handler ever runs inside a reactor.
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

// Returns on SIGINT/SIGTERM; SIGHUP runs `on_reload` and keeps waiting.
void wait_for_shutdown(const sigset_t& set, const std::function<void()>& on_reload) {
  for (;;) {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGHUP) {
      log_info("received SIGHUP, reloading");
      if (on_reload) on_reload();
      continue;
    }
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return;
  }
}

// During the drain: waits up to `ms` for another SIGINT/SIGTERM, which cuts the drain short
// (the impatient second Ctrl-C). A SIGHUP meanwhile is taken and ignored.
bool stop_signal_within(const sigset_t& set, int64_t ms) {
  const int64_t until = core::monotonic_ms() + ms;
  for (int64_t left = ms; left > 0; left = until - core::monotonic_ms()) {
    struct timespec wait = {static_cast<time_t>(left / 1000),
                            static_cast<long>(left % 1000) * 1000000};
    int sig = sigtimedwait(&set, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) {
      log_info("received %s again: ending the drain now", sig == SIGINT ? "SIGINT" : "SIGTERM");
      return true;
    }
    if (sig < 0 && errno != EINTR && errno != EAGAIN) return false;
  }
  return false;
}

net::TcpServerOptions server_options(const server::Flags& flags, const std::string& listen,
                                     std::string* error, bool* ok) {
  net::TcpServerOptions o;
  *ok = net::SocketAddress::parse(listen, &o.listen, error);
  o.threads = flags.threads;
  o.max_connections = flags.max_connections;
  o.connection.high_watermark = flags.high_watermark;
  o.connection.low_watermark = flags.low_watermark;
  o.connection.max_buffer = flags.max_buffer;
  o.connection.tcp_nodelay = flags.tcp_nodelay;
  o.connection.linger_ms = flags.linger_ms;
  return o;
}

int run_tcp_echo(const server::Flags& flags, const sigset_t& signals) {
  std::string error;
  bool ok;
  net::TcpServerOptions o = server_options(flags, flags.tcp_echo, &error, &ok);
  if (!ok) {
    std::fprintf(stderr, "weir: --tcp-echo: %s\n", error.c_str());
    return 2;
  }
  o.connection.write_mode = flags.write_mode;
  o.connection.read_mode = flags.read_mode;
  o.connection.keep_open_on_peer_closed = true;  // echo everything back, then close
  net::TcpServer server(o, [](net::Connection& conn) { return net::make_echo_handler(conn); });
  if (!server.start(&error)) {
    std::fprintf(stderr, "weir: %s\n", error.c_str());
    return 1;
  }
  log_info("tcp echo on %s port %u, %d threads", o.listen.host().c_str(), server.port(),
           server.threads());
  wait_for_shutdown(signals, nullptr);
  server.stop();
  return 0;
}

// Many connections need many descriptors: lift the soft limit to the hard one, as servers do.
void raise_descriptor_limit() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0)
    log_info("descriptor limit raised from %llu to %llu", static_cast<unsigned long long>(before),
             static_cast<unsigned long long>(limit.rlim_max));
}

}  // namespace

int main(int argc, char** argv) {
  server::Flags flags;
  std::string error;
  if (!server::parse_flags(argc, argv, &flags, &error)) {
    std::fprintf(stderr, "weir: %s\n", error.c_str());
    return 2;
  }
  if (flags.help) {
    std::fputs(server::flags_help().c_str(), stdout);
    return 0;
  }
  core::LogLevel level;
  core::parse_log_level(flags.log_level, &level);
  core::set_log_level(level);
  core::LogFormat format;
  core::parse_log_format(flags.log_format, &format);
  core::set_log_format(format);
  raise_descriptor_limit();
  sigset_t signals = block_signals();
  if (!flags.tcp_echo.empty()) return run_tcp_echo(flags, signals);
  // SIGTERM and SIGINT both drain (server/drain.h); a second one ends the drain at once. The
  // raw TCP echo service above stops at once.
  return server::run_http_service(
      flags, [&](const std::function<void()>& on_reload) { wait_for_shutdown(signals, on_reload); },
      [&](int64_t ms) { return stop_signal_within(signals, ms); });
}
