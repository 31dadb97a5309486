// ws/connection_state.cc — the weir_connections{state} gauges.
#include "ws/connection_state.h"

#include "core/metrics.h"

namespace weir::ws {
namespace {

constexpr char kHelp[] = "Connections of the HTTP server, by state";
core::Gauge g_states[] = {
    {"weir_connections", kHelp, "state=\"handshaking\""},
    {"weir_connections", kHelp, "state=\"open\""},
    {"weir_connections", kHelp, "state=\"closing\""},
};
static_assert(sizeof g_states / sizeof g_states[0] ==
              static_cast<size_t>(ConnectionState::State::kNone));

}  // namespace

void ConnectionState::set(State state) {
  if (state == state_) return;
  if (state_ != State::kNone) g_states[static_cast<int>(state_)].dec();
  if (state != State::kNone) g_states[static_cast<int>(state)].inc();
  state_ = state;
}

}  // namespace weir::ws
