// server/http_service.h — the HTTP/WebSocket service: routes, endpoints, and their wiring.
#pragma once

#include <functional>

#include "server/drain.h"
#include "server/flags.h"

namespace weir::server {

// Called by the service with what to do on SIGHUP; returns on SIGINT/SIGTERM.
using WaitForShutdown = std::function<void(const std::function<void()>& on_reload)>;

// Starts the service on flags.listen, waits, then drains (server/drain.h; `interrupted` waits
// for a second stop signal that cuts the drain short) and shuts down. Returns the exit code.
int run_http_service(const Flags& flags, const WaitForShutdown& wait,
                     const Interrupted& interrupted);

}  // namespace weir::server
