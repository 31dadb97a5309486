// server/drain.cc — quiesce, lame-duck closes in slices, flush until the deadline.
#include "server/drain.h"

#include <algorithm>
#include <random>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/units.h"
#include "ws/frame.h"
#include "ws/http_connection.h"
#include "ws/websocket_session.h"

namespace weir::server {
namespace {

core::Gauge g_draining("weir_draining", "1 while the server drains after SIGTERM, else 0");

// Each reactor thread jitters with its own generator: no lock, no shared state.
int64_t jitter_ms(int64_t window_ms) {
  thread_local std::minstd_rand engine(std::random_device{}());
  return std::uniform_int_distribution<int64_t>(0, window_ms)(engine);
}

}  // namespace

std::string reconnect_hint(int64_t reconnect_after_ms) {
  std::string hint = "{\"reason\":\"server draining\",\"reconnect_after_ms\":" +
                     std::to_string(reconnect_after_ms) + "}";
  return hint.size() <= ws::kMaxCloseReason ? hint : hint.substr(0, ws::kMaxCloseReason);
}

size_t closes_due(size_t sessions, int slice, int slices) {
  if (slices <= 0 || slice + 1 >= slices) return sessions;
  return (sessions * static_cast<size_t>(slice + 1) + static_cast<size_t>(slices) - 1) /
         static_cast<size_t>(slices);
}

size_t Drain::run(const Interrupted& interrupted) {
  const int64_t started = core::monotonic_ms();
  const int64_t deadline = started + options_.timeout_ms;
  g_draining.inc();
  log_info("draining %zu connections: closing WebSocket sessions over %s, flushing for up to %s",
           server_.open_connections(), core::format_duration_ms(options_.spread_ms).c_str(),
           core::format_duration_ms(options_.timeout_ms).c_str());
  server_.stop_accepting();
  quiesce();
  size_t sessions = 0;
  for (size_t n : sessions_) sessions += n;
  // Without sessions there is nothing to spread: idle HTTP connections close at once.
  const int slices = sessions == 0
                         ? 1
                         : static_cast<int>(std::max<int64_t>(
                               1, options_.spread_ms / std::max<int64_t>(1, options_.slice_ms)));
  bool cut_short = !close_in_slices(slices, deadline, interrupted);
  while (!cut_short && server_.open_connections() > 0) {
    int64_t left = deadline - core::monotonic_ms();
    if (left <= 0) break;
    cut_short = interrupted(std::min<int64_t>(left, 20));
  }
  size_t open = server_.open_connections();
  size_t closed = 0;
  for (size_t n : closed_) closed += n;
  log_info("drain done in %lld ms: %zu WebSocket sessions closed with 1001, %zu connections left%s",
           static_cast<long long>(core::monotonic_ms() - started), closed, open,
           open ? " (aborted)" : "");
  return open;
}

// Step 2: no new work from here on, and what was taken before reaches every queue.
void Drain::quiesce() {
  const size_t threads = static_cast<size_t>(server_.threads());
  sessions_.assign(threads, 0);
  closed_.assign(threads, 0);
  server_.run_on_every_thread(
      [this](core::Reactor& reactor, const std::vector<net::Connection*>& connections) {
        for (net::Connection* conn : connections) {
          net::ConnectionHandler* handler = conn->handler();
          if (auto* session = dynamic_cast<ws::WebSocketSession*>(handler)) {
            session->stop_taking_messages();
            if (session->is_open()) sessions_[static_cast<size_t>(reactor.index())]++;
          } else if (auto* http = dynamic_cast<ws::HttpConnection*>(handler)) {
            http->drain();
          }
        }
      });
  // A publish read before the pass above is posted to its room's owner by the end of that
  // iteration; the next pass runs behind it on every thread and the owner's fanout leaves
  // at the end of that one; the third pass runs behind the fanout on the members' threads.
  auto nothing = [](core::Reactor&, const std::vector<net::Connection*>&) {};
  server_.run_on_every_thread(nothing);
  server_.run_on_every_thread(nothing);
}

// Step 3: every thread closes its due share of sessions each slice; the last slice closes
// what is left. False when interrupted.
bool Drain::close_in_slices(int slices, int64_t deadline_ms, const Interrupted& interrupted) {
  const int64_t window_ms = std::max<int64_t>(1000, options_.spread_ms);
  const int64_t start = core::monotonic_ms();
  for (int slice = 0; slice < slices; ++slice) {
    int64_t due_at = start + options_.spread_ms * slice / slices;
    int64_t wait = due_at - core::monotonic_ms();
    if (wait > 0 && interrupted(wait)) return false;
    server_.run_on_every_thread(
        [&](core::Reactor& reactor, const std::vector<net::Connection*>& connections) {
          size_t t = static_cast<size_t>(reactor.index());
          size_t due = closes_due(sessions_[t], slice, slices);
          bool last = slice + 1 == slices;
          for (net::Connection* conn : connections) {
            net::ConnectionHandler* handler = conn->handler();
            if (auto* http = dynamic_cast<ws::HttpConnection*>(handler); http && last) {
              http->finish_drain();
              continue;
            }
            if (closed_[t] >= due && !last) continue;
            auto* session = dynamic_cast<ws::WebSocketSession*>(handler);
            if (!session || !session->is_open()) continue;
            session->go_away(reconnect_hint(jitter_ms(window_ms)), deadline_ms);
            closed_[t]++;
          }
        });
  }
  return true;
}

}  // namespace weir::server
