// server/http_service.cc — placeholder wiring until the ws/ layer lands (see issue 3).
#include "server/http_service.h"

#include <cstdio>

namespace weir::server {

int run_http_service(const Flags&, const std::function<void()>&) {
  std::fprintf(stderr, "weir: the HTTP/WebSocket service is not built yet; use --tcp-echo HOST:PORT\n");
  return 2;
}

}  // namespace weir::server
