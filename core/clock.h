// core/clock.h — monotonic and wall time in the units the server uses.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace weir::core {

// Milliseconds on the monotonic clock. Thread-safe.
inline int64_t monotonic_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// Nanoseconds on the monotonic clock, for latency measurements. Thread-safe.
inline int64_t monotonic_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

// Milliseconds since the Unix epoch (wall clock), for timestamps sent to peers. Thread-safe.
inline int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// RFC 3339 UTC with milliseconds ("2026-11-21T23:22:37.123Z") into `out` (>= 25 bytes);
// returns the length. Thread-safe.
size_t format_rfc3339_ms(int64_t wall_ms, char* out, size_t cap);

}  // namespace weir::core
