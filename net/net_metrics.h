// net/net_metrics.h — the TCP counters shared by the connection's plain and TLS paths.
#pragma once

#include "core/metrics.h"

namespace weir::net::metrics {

extern core::Counter bytes_received;  // bytes read from sockets (ciphertext under TLS)
extern core::Counter bytes_sent;      // bytes written to sockets
extern core::Counter read_calls;
extern core::Counter write_calls;

}  // namespace weir::net::metrics
