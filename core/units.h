// core/units.h — parsing of sizes ("4MiB", "64k") and durations ("30s", "250ms") in flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace weir::core {

// Bytes: a number with an optional unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB (all powers of 1024:
// a buffer size is never meant in powers of ten). False on junk or overflow.
bool parse_bytes(std::string_view text, uint64_t* out);
// Milliseconds: a number with unit ms, s, m or h; a bare number means seconds.
bool parse_duration_ms(std::string_view text, int64_t* out);
// Formats bytes compactly for help and logs ("4MiB", "256KiB", "100B").
std::string format_bytes(uint64_t bytes);
std::string format_duration_ms(int64_t ms);

}  // namespace weir::core
