// tools/load/options.h — the command line of `weir-load`: subcommands, their flags with
// defaults and units, validation, and the usage text printed for bad arguments (exit 2).
//
// Flags live in one table (options.cc) naming the subcommands that accept each, so a new
// subcommand adds an enum value, its rows and its run function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.h"
#include "tools/load/server_metrics.h"
#include "tools/load/target.h"

namespace weir::load {

enum class Command : uint8_t { kEcho, kTcpEcho, kHold, kFanout, kSlow, kRelay };
inline constexpr int kCommandCount = 6;

std::string_view command_name(Command command);
std::optional<Command> parse_command(std::string_view name);

// Every message starts with a 16-byte header (sequence number and send time), so no echo
// message can be shorter.
inline constexpr uint64_t kMinMessageSize = 16;
inline constexpr uint64_t kMaxMessageSize = 64u << 20;

// A relay's bandwidth from `at_ms` after the start of the run on (--bandwidth-schedule).
struct BandwidthStep {
  int64_t at_ms = 0;
  double bytes_per_sec = 0;  // 0: unlimited
};

struct Options {
  Command command = Command::kEcho;
  WsUrl url;                // echo, hold, fanout, slow
  net::SocketAddress addr;  // tcp-echo; relay: --target
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
  double message_rate = 0;  // echo: messages/s over all connections; 0 = as fast as --depth allows
  // fanout
  int rooms = 1;
  int members = 10;  // per room
  int publishers = 1;
  double publish_rate = 0;  // messages/s; fanout: in total, 0 = as fast as acks allow
  std::vector<net::SocketAddress> also_addresses;  // fanout: more nodes (--also-url)
  int64_t resume_every_ms = 0;  // fanout: each receiving member drops and resumes this often
  // slow
  int clients = 1;             // slow clients
  int64_t delay_ms = 50;       // per message, when no base/range is given
  int64_t delay_base_ms = -1;  // >= 0: each slow client's delay is base + random(0..range)
  int64_t delay_range_ms = 0;
  int fast_clients = 0;
  uint64_t seed = 1;  // for the random delays
  std::string room;   // slow against a room of the rooms protocol (/ws)
  bool metrics_given = false;
  HttpUrl metrics_url;          // default: http://<url's host:port>/metrics
  double via_relay = -1;        // slow clients connect through an in-process relay at B/s (>= 0)
  uint64_t receive_buffer = 0;  // SO_RCVBUF of the slow clients (0: the kernel's)
  // relay (and slow --via-relay)
  net::SocketAddress listen;
  double bandwidth = 0;  // bytes/s per direction of each connection; 0 = unlimited
  std::vector<BandwidthStep> bandwidth_schedule;
  std::string csv_path;
  std::string plot_path;
  bool quiet = false;  // no progress line
};

enum class ParseStatus : uint8_t { kOk, kHelp, kError };

// Parses `argv[1]` (the subcommand) and its flags (`--flag value` or `--flag=value`). On
// kError `error` says what was wrong; on kHelp the caller prints usage and exits 0.
// Thread-safe: pure function.
ParseStatus parse_command_line(int argc, const char* const* argv, Options* out, std::string* error);

// "1000", "1000/s", "2KiB/s" (powers of 1024, as --size): bytes per second, 0 = unlimited.
// Thread-safe: pure function.
bool parse_bandwidth(std::string_view text, double* out, std::string* error);
// "0s:1000,20s:0,40s:3000": the bandwidth from each time on; times strictly increasing.
bool parse_bandwidth_schedule(std::string_view text, std::vector<BandwidthStep>* out,
                              std::string* error);

// Usage for one subcommand (its flags, defaults and help), or the overview without one.
std::string usage(std::optional<Command> command);

}  // namespace weir::load
