// tools/load/options.cc — the flag table, value parsing and per-subcommand validation.
#include "tools/load/options.h"

#include <charconv>
#include <cmath>
#include <functional>
#include <vector>

#include "core/units.h"

namespace weir::load {
namespace {

constexpr unsigned bit(Command c) {
  return 1u << static_cast<unsigned>(c);
}
constexpr unsigned kEcho = bit(Command::kEcho);
constexpr unsigned kTcp = bit(Command::kTcpEcho);
constexpr unsigned kHold = bit(Command::kHold);
constexpr unsigned kFanout = bit(Command::kFanout);
constexpr unsigned kSlow = bit(Command::kSlow);
constexpr unsigned kRelay = bit(Command::kRelay);
constexpr unsigned kLoad = kEcho | kTcp | kHold;  // the connection-count commands
constexpr unsigned kWs = kEcho | kHold | kFanout | kSlow;
constexpr unsigned kAll = kLoad | kFanout | kSlow | kRelay;

using Setter = std::function<bool(Options&, std::string_view, std::string*)>;

struct Flag {
  const char* name;
  const char* value;  // placeholder in usage; nullptr for a switch without a value
  const char* help;
  const char* default_text;
  unsigned commands;
  Setter set;
};

bool parse_int(std::string_view text, int lo, int hi, int* out, std::string* error) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
    *error = "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
             ", got '" + std::string(text) + "'";
    return false;
  }
  *out = v;
  return true;
}

bool parse_duration(std::string_view text, int64_t lo, int64_t* out, std::string* error) {
  int64_t ms = 0;
  if (!core::parse_duration_ms(text, &ms) || ms < lo || ms > 24 * 3600 * 1000LL) {
    *error = "expected a duration such as 10s, 500ms or 2m, got '" + std::string(text) + "'";
    return false;
  }
  *out = ms;
  return true;
}

// "500/s" or "500": events per second (zero only when `allow_zero`).
bool parse_rate(std::string_view text, double* out, std::string* error, bool allow_zero = false) {
  std::string_view number = text;
  if (number.size() > 2 && number.substr(number.size() - 2) == "/s") number.remove_suffix(2);
  double v = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  bool in_range = allow_zero ? v >= 0 : v > 0;
  if (ec != std::errc() || end != number.data() + number.size() || !in_range || v > 1e7) {
    *error = "expected a rate such as 500/s, got '" + std::string(text) + "'";
    return false;
  }
  *out = v;
  return true;
}

// Milliseconds as a bare integer ("50") or a duration with a unit ("50ms", "1s").
bool parse_ms(std::string_view text, int64_t* out, std::string* error) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && end == text.data() + text.size() && v >= 0 && v <= 3600000) {
    *out = v;
    return true;
  }
  if (!text.empty() && !(text.back() >= '0' && text.back() <= '9'))
    return parse_duration(text, 0, out, error);
  *error = "expected milliseconds (0..3600000) or a duration such as 50ms, got '" +
           std::string(text) + "'";
  return false;
}

// "8080" (on 127.0.0.1) or "HOST:PORT".
bool parse_listen(std::string_view text, net::SocketAddress* out, std::string* error) {
  bool bare_port = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  std::string hostport = bare_port ? "127.0.0.1:" + std::string(text) : std::string(text);
  return net::SocketAddress::parse(hostport, out, error);
}

const std::vector<Flag>& flags();
const std::vector<Flag>& more_flags();

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      {"url", "ws://HOST:PORT/PATH",
       "WebSocket endpoint to load (slow: /stream?rate=N&size=S, or /ws with --room)", "required",
       kWs,
       [](Options& o, std::string_view v, std::string* e) {
         o.target_text = std::string(v);
         return parse_ws_url(v, &o.url, e);
       }},
      {"addr", "HOST:PORT", "raw TCP echo server (weir --tcp-echo)", "required", kTcp,
       [](Options& o, std::string_view v, std::string* e) {
         o.target_text = std::string(v);
         return net::SocketAddress::parse(v, &o.addr, e);
       }},
      {"connections", "N", "connections to open", "1; hold: 100", kLoad,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 1000000, &o.connections, e);
       }},
      {"depth", "D", "messages in flight per connection when --rate is 0 (fanout: per publisher)",
       "1", kEcho | kTcp | kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 65536, &o.depth, e);
       }},
      {"size", "BYTES",
       "message size (16B..64MiB; k, KiB, M, MiB units); fanout, slow: room message content",
       "32B; slow: 1000B", kEcho | kTcp | kFanout | kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         if (core::parse_bytes(v, &o.size) && o.size >= kMinMessageSize &&
             o.size <= kMaxMessageSize)
           return true;
         *e = "expected a size from 16B to 64MiB, got '" + std::string(v) + "'";
         return false;
       }},
      {"seconds", "DURATION", "measured run time (hold: whole run); a bare number is seconds",
       "10s", kAll,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_duration(v, 1, &o.seconds_ms, e);
       }},
      {"warmup-seconds", "DURATION", "load before measuring starts", "0s", kEcho | kTcp | kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_duration(v, 0, &o.warmup_ms, e);
       }},
      {"binary", nullptr, "send binary messages instead of text", "text", kEcho,
       [](Options& o, std::string_view, std::string*) { return o.binary = true; }},
      {"deflate", nullptr, "offer permessage-deflate and compress every message", "off", kEcho,
       [](Options& o, std::string_view, std::string*) { return o.deflate = true; }},
      {"threads", "N", "reactor threads, connections spread round-robin", "1", kWs | kTcp,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 256, &o.threads, e);
       }},
      {"rate", "R/s", "connections opened per second", "1000/s", kHold,
       [](Options& o, std::string_view v, std::string* e) { return parse_rate(v, &o.rate, e); }},
      {"rate", "R/s",
       "messages per second over all connections, on a schedule: each round trip counts from "
       "its message's scheduled time, and a message whose connection holds over 1MiB unsent is "
       "held back, not queued; --depth is then no limit. 0 = as fast as --depth allows",
       "0", kEcho,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_rate(v, &o.message_rate, e, true);
       }},
      {"ping-interval", "DURATION", "ping each held connection this often", "5s", kHold,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_duration(v, 10, &o.ping_interval_ms, e);
       }},
      {"connect-timeout", "DURATION", "time allowed for TCP connect plus upgrade", "5s", kWs | kTcp,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_duration(v, 1, &o.connect_timeout_ms, e);
       }},
      {"csv", "FILE", "write one row per second to FILE", "none", kAll,
       [](Options& o, std::string_view v, std::string*) {
         o.csv_path = std::string(v);
         return true;
       }},
      {"plot", "FILE.svg", "draw the per-second rates as an SVG chart", "none", kAll,
       [](Options& o, std::string_view v, std::string*) {
         o.plot_path = std::string(v);
         return true;
       }},
      {"quiet", nullptr, "no progress line on stderr", "off", kAll,
       [](Options& o, std::string_view, std::string*) { return o.quiet = true; }},
  };
  return table;
}

// The flags of fanout, slow and relay.
const std::vector<Flag>& more_flags() {
  static const std::vector<Flag> table = {
      {"also-url", "ws://HOST:PORT/PATH",
       "another node of the same cluster (repeatable): connections go round-robin over --url "
       "and these, so a room's members and publishers sit on different nodes",
       "none", kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         WsUrl url;
         if (!parse_ws_url(v, &url, e)) return false;
         o.also_addresses.push_back(url.address);
         return true;
       }},
      {"rooms", "K", "rooms, each with --members members", "1", kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 100000, &o.rooms, e);
       }},
      {"members", "M", "members per room (connections that only receive)", "10", kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 0, 1000000, &o.members, e);
       }},
      {"publishers", "P", "publishing connections, spread over the rooms (each is a member too)",
       "1", kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 100000, &o.publishers, e);
       }},
      {"rate", "R/s",
       "messages published per second in total; 0 = as fast as acks allow (a publisher's own "
       "message coming back), --depth in flight each",
       "0", kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_rate(v, &o.publish_rate, e, true);
       }},
      {"resume-every", "DURATION",
       "each member that only receives drops its TCP connection (RST, no close frame) this "
       "often, reconnects and resumes its session from the last offset it processed; the drops "
       "are spread over the members. 0 = off",
       "off", kFanout,
       [](Options& o, std::string_view v, std::string* e) {
         int64_t ms = 0;
         if (!parse_duration(v, 0, &ms, e)) return false;
         if (ms > 0 && ms < 100) {
           *e = "expected 0 (off) or at least 100ms, got '" + std::string(v) + "'";
           return false;
         }
         o.resume_every_ms = ms;
         return true;
       }},
      {"clients", "N", "slow clients (each pauses reading for its delay per message)", "1", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 0, 100000, &o.clients, e);
       }},
      {"delay-ms", "MS", "time a slow client spends on each message (scenario 1)", "50", kSlow,
       [](Options& o, std::string_view v, std::string* e) { return parse_ms(v, &o.delay_ms, e); }},
      {"delay-base-ms", "MS",
       "scenario 3: each slow client's delay is base + random(0..range) (replaces --delay-ms)",
       "unset", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_ms(v, &o.delay_base_ms, e);
       }},
      {"delay-range-ms", "MS", "width of the random part of the delay (with --delay-base-ms)", "0",
       kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_ms(v, &o.delay_range_ms, e);
       }},
      {"fast-clients", "F", "clients that read as fast as they can, to show they are unaffected",
       "0", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 0, 100000, &o.fast_clients, e);
       }},
      {"seed", "N", "seed of the random delays (same seed, same delays)", "1", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         int seed = 0;
         if (!parse_int(v, 0, 2147483647, &seed, e)) return false;
         o.seed = static_cast<uint64_t>(seed);
         return true;
       }},
      {"room", "ROOM",
       "join this room of the rooms protocol (--url ws://H:P/ws) instead of /stream", "none", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         if (v.empty() || v.size() > 128) {
           *e = "expected a room id of 1..128 bytes";
           return false;
         }
         o.room = std::string(v);
         return true;
       }},
      {"publish-rate", "R/s", "with --room: messages the tool publishes into the room per second",
       "100/s", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_rate(v, &o.publish_rate, e);
       }},
      {"metrics-url", "http://HOST:PORT/metrics", "the server's metrics, sampled every second",
       "the --url's host:port", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         o.metrics_given = true;
         return parse_http_url(v, &o.metrics_url, e);
       }},
      {"via-relay", "B/s",
       "slow clients connect through an in-process relay of this bandwidth "
       "(scenario 2; 0 = unlimited); stdin and signals change it as for relay",
       "off", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_bandwidth(v, &o.via_relay, e);
       }},
      {"rcvbuf", "BYTES", "SO_RCVBUF of each slow client (smaller: backpressure sooner)",
       "kernel's", kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         if (core::parse_bytes(v, &o.receive_buffer) && o.receive_buffer <= (256u << 20))
           return true;
         *e = "expected a size up to 256MiB, got '" + std::string(v) + "'";
         return false;
       }},
      {"listen", "[HOST:]PORT", "where the relay accepts clients (a bare port: on 127.0.0.1)",
       "required", kRelay,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_listen(v, &o.listen, e);
       }},
      {"target", "HOST:PORT", "where the relay forwards each connection", "required", kRelay,
       [](Options& o, std::string_view v, std::string* e) {
         o.target_text = std::string(v);
         return net::SocketAddress::parse(v, &o.addr, e);
       }},
      {"bandwidth", "B/s",
       "bytes per second per direction of each connection (0 = unlimited); while running, "
       "stdin 'bandwidth N' sets it, SIGUSR1 halves it, SIGUSR2 doubles it",
       "0", kRelay,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_bandwidth(v, &o.bandwidth, e);
       }},
      {"bandwidth-schedule", "T:B,...",
       "bandwidth changes at times since the start, e.g. 0s:1000,20s:0,40s:3000", "none",
       kRelay | kSlow,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_bandwidth_schedule(v, &o.bandwidth_schedule, e);
       }},
  };
  return table;
}

const Flag* find_flag(std::string_view name, Command command) {
  for (const auto* table : {&flags(), &more_flags()})
    for (const Flag& f : *table)
      if (name == f.name && (f.commands & bit(command))) return &f;
  return nullptr;
}

bool validate_slow(Options& o, std::string* error) {
  if (o.clients + o.fast_clients == 0) {
    *error = "--clients and --fast-clients are both 0: nobody to measure";
    return false;
  }
  if (o.delay_base_ms < 0 && o.delay_range_ms > 0) {
    *error = "--delay-range-ms needs --delay-base-ms";
    return false;
  }
  if (o.via_relay >= 0 && o.clients == 0) {
    *error = "--via-relay throttles the slow clients, but --clients is 0";
    return false;
  }
  if (!o.bandwidth_schedule.empty() && o.via_relay < 0) {
    *error = "--bandwidth-schedule needs --via-relay";
    return false;
  }
  if (!o.metrics_given) {
    std::string why;
    parse_http_url("http://" + o.url.host_header() + "/metrics", &o.metrics_url, &why);
  }
  return true;
}

bool validate(Options& o, std::string* error) {
  if (o.target_text.empty()) {
    bool needs_addr = o.command == Command::kTcpEcho || o.command == Command::kRelay;
    *error = needs_addr
                 ? (o.command == Command::kRelay ? "--target is required" : "--addr is required")
                 : "--url is required";
    return false;
  }
  if (o.command == Command::kRelay && o.listen.port() == 0) {
    *error = "--listen is required";
    return false;
  }
  if (o.command == Command::kSlow) return validate_slow(o, error);
  if (o.command == Command::kFanout) {
    if (static_cast<double>(o.rooms) * o.members + o.publishers > 1e6) {
      *error = "--rooms x --members + --publishers exceeds 1,000,000 connections";
      return false;
    }
    if (o.resume_every_ms > 0 && o.members == 0) {
      *error = "--resume-every drops the members that only receive, but --members is 0";
      return false;
    }
    return true;
  }
  if (o.command == Command::kRelay) return true;
  // In-flight bytes are held by both ends; more than this is a typo, not a test.
  constexpr double kMaxInFlight = 2.0 * (1u << 30);
  if (o.command != Command::kHold &&
      static_cast<double>(o.connections) * o.depth * static_cast<double>(o.size) > kMaxInFlight) {
    *error = "--connections x --depth x --size exceeds 2GiB in flight";
    return false;
  }
  return true;
}

void apply_command_defaults(Options* o) {
  if (o->command == Command::kHold) o->connections = 100;
  if (o->command == Command::kSlow) o->size = 1000;
  if (o->command == Command::kSlow) o->publish_rate = 100;
}

}  // namespace

std::string_view command_name(Command command) {
  switch (command) {
    case Command::kEcho:
      return "echo";
    case Command::kTcpEcho:
      return "tcp-echo";
    case Command::kHold:
      return "hold";
    case Command::kFanout:
      return "fanout";
    case Command::kSlow:
      return "slow";
    case Command::kRelay:
      return "relay";
  }
  return "?";
}

std::optional<Command> parse_command(std::string_view name) {
  for (int i = 0; i < kCommandCount; ++i)
    if (command_name(static_cast<Command>(i)) == name) return static_cast<Command>(i);
  return std::nullopt;
}

ParseStatus parse_command_line(int argc, const char* const* argv, Options* out,
                               std::string* error) {
  if (argc < 2) {
    *error = "missing command";
    return ParseStatus::kError;
  }
  std::string_view first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") return ParseStatus::kHelp;
  std::optional<Command> command = parse_command(first);
  if (!command) {
    *error = "unknown command '" + std::string(first) + "'";
    return ParseStatus::kError;
  }
  Options o;
  o.command = *command;
  apply_command_defaults(&o);
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *out = o;
      return ParseStatus::kHelp;
    }
    if (arg.substr(0, 2) != "--") {
      *error = "unexpected argument '" + std::string(arg) + "'";
      return ParseStatus::kError;
    }
    std::string_view name = arg.substr(2);
    std::optional<std::string_view> value;
    if (size_t eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Flag* flag = find_flag(name, o.command);
    if (flag == nullptr) {
      *error =
          "unknown flag --" + std::string(name) + " for " + std::string(command_name(o.command));
      return ParseStatus::kError;
    }
    if (flag->value == nullptr && value) {
      *error = "--" + std::string(name) + " takes no value";
      return ParseStatus::kError;
    }
    if (flag->value != nullptr && !value) {
      if (i + 1 >= argc) {
        *error = "--" + std::string(name) + " needs a value (" + flag->value + ")";
        return ParseStatus::kError;
      }
      value = argv[++i];
    }
    std::string why;
    if (!flag->set(o, value.value_or(""), &why)) {
      *error = "--" + std::string(name) + ": " + why;
      return ParseStatus::kError;
    }
  }
  if (!validate(o, error)) return ParseStatus::kError;
  *out = std::move(o);
  return ParseStatus::kOk;
}

bool parse_bandwidth(std::string_view text, double* out, std::string* error) {
  std::string_view number = text;
  if (number.size() > 2 && number.substr(number.size() - 2) == "/s") number.remove_suffix(2);
  uint64_t bytes = 0;
  if (!core::parse_bytes(number, &bytes) || bytes > (uint64_t{1} << 40)) {
    *error = "expected bytes per second such as 1000, 1000/s or 64KiB/s, got '" +
             std::string(text) + "'";
    return false;
  }
  *out = static_cast<double>(bytes);
  return true;
}

bool parse_bandwidth_schedule(std::string_view text, std::vector<BandwidthStep>* out,
                              std::string* error) {
  std::vector<BandwidthStep> steps;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    size_t colon = item.find(':');
    BandwidthStep step;
    if (colon == std::string_view::npos ||
        !parse_duration(item.substr(0, colon), 0, &step.at_ms, error) ||
        !parse_bandwidth(item.substr(colon + 1), &step.bytes_per_sec, error)) {
      if (colon == std::string_view::npos)
        *error = "expected TIME:BYTES_PER_SEC items, got '" + std::string(item) + "'";
      return false;
    }
    if (!steps.empty() && step.at_ms <= steps.back().at_ms) {
      *error = "schedule times must increase";
      return false;
    }
    steps.push_back(step);
  }
  if (steps.empty()) {
    *error = "empty schedule";
    return false;
  }
  *out = std::move(steps);
  return true;
}

std::string usage(std::optional<Command> command) {
  std::string out =
      "weir-load — load, latency and endurance tool for weir\n\n"
      "usage: weir-load COMMAND [--flag value | --flag=value]...\n\n"
      "commands:\n"
      "  echo      N WebSocket connections keep D messages in flight; every echo verified\n"
      "  tcp-echo  the same over raw TCP with fixed-size messages (weir --tcp-echo baseline)\n"
      "  hold      open N idle WebSocket connections at a bounded rate, ping them, count "
      "survivors\n"
      "  fanout    members in K rooms, P publishers: deliveries/s, loss, order, latency\n"
      "  slow      slow clients against /stream or a room, sampling the server's /metrics:\n"
      "            when does backpressure hold the server back (--plot shades it)\n"
      "  relay     a throttling TCP relay whose bandwidth can change while it runs\n\n"
      "Every run prints a progress line each second on stderr and a JSON summary on stdout,\n"
      "and exits 0 when nothing failed, 1 on errors, 2 on bad arguments.\n";
  if (!command) return out + "\n'weir-load COMMAND --help' lists a command's flags.\n";
  out += "\nflags of " + std::string(command_name(*command)) + ":\n";
  for (const auto* table : {&flags(), &more_flags()})
    for (const Flag& f : *table) {
      if (!(f.commands & bit(*command))) continue;
      std::string left = "  --" + std::string(f.name) + (f.value ? " " + std::string(f.value) : "");
      if (left.size() < 34)
        left.resize(34, ' ');
      else
        left += "  ";
      out += left + f.help + " (default: " + f.default_text + ")\n";
    }
  return out;
}

}  // namespace weir::load
