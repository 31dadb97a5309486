// tools/load/options.h — the command line of `weir-load`: subcommands, their flags with
// defaults and units, validation, and the usage text printed for bad arguments (exit 2).
//
// Flags live in one table (options.cc) naming the subcommands that accept each, so a new
// subcommand (fanout, slow, relay) adds an enum value, its rows and its run function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/address.h"
#include "tools/load/target.h"

namespace weir::load {

enum class Command : uint8_t { kEcho, kTcpEcho, kHold };
inline constexpr int kCommandCount = 3;

std::string_view command_name(Command command);
std::optional<Command> parse_command(std::string_view name);

// Every message starts with a 16-byte header (sequence number and send time), so no echo
// message can be shorter.
inline constexpr uint64_t kMinMessageSize = 16;
inline constexpr uint64_t kMaxMessageSize = 64u << 20;

struct Options {
  Command command = Command::kEcho;
  WsUrl url;                // echo, hold
  net::SocketAddress addr;  // tcp-echo
  std::string target_text;  // the URL or address as given, for reports
  int connections = 1;
  int depth = 1;
  uint64_t size = 32;
  int64_t seconds_ms = 10000;
  int64_t warmup_ms = 0;
  bool binary = false;
  bool deflate = false;
  int threads = 1;
  double rate = 1000;  // hold: connections opened per second
  int64_t ping_interval_ms = 5000;
  int64_t connect_timeout_ms = 5000;
  std::string csv_path;
  std::string plot_path;
  bool quiet = false;  // no progress line
};

enum class ParseStatus : uint8_t { kOk, kHelp, kError };

// Parses `argv[1]` (the subcommand) and its flags (`--flag value` or `--flag=value`). On
// kError `error` says what was wrong; on kHelp the caller prints usage and exits 0.
// Thread-safe: pure function.
ParseStatus parse_command_line(int argc, const char* const* argv, Options* out, std::string* error);

// Usage for one subcommand (its flags, defaults and help), or the overview without one.
std::string usage(std::optional<Command> command);

}  // namespace weir::load
