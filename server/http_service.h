// server/http_service.h — the HTTP/WebSocket service: routes, endpoints, and their wiring.
#pragma once

#include <functional>

#include "server/flags.h"

namespace weir::server {

// Starts the service on flags.listen, calls `wait` (which returns on SIGINT/SIGTERM), then
// shuts down. Returns the process exit code.
int run_http_service(const Flags& flags, const std::function<void()>& wait);

}  // namespace weir::server
