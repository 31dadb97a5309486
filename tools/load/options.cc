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
constexpr unsigned kAll = kEcho | kTcp | kHold;

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

// "500/s" or "500": connections per second.
bool parse_rate(std::string_view text, double* out, std::string* error) {
  std::string_view number = text;
  if (number.size() > 2 && number.substr(number.size() - 2) == "/s") number.remove_suffix(2);
  double v = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  if (ec != std::errc() || end != number.data() + number.size() || !(v > 0) || v > 1e7) {
    *error = "expected a rate such as 500/s, got '" + std::string(text) + "'";
    return false;
  }
  *out = v;
  return true;
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      {"url", "ws://HOST:PORT/PATH", "WebSocket endpoint to load", "required", kEcho | kHold,
       [](Options& o, std::string_view v, std::string* e) {
         o.target_text = std::string(v);
         return parse_ws_url(v, &o.url, e);
       }},
      {"addr", "HOST:PORT", "raw TCP echo server (weir --tcp-echo)", "required", kTcp,
       [](Options& o, std::string_view v, std::string* e) {
         o.target_text = std::string(v);
         return net::SocketAddress::parse(v, &o.addr, e);
       }},
      {"connections", "N", "connections to open", "1; hold: 100", kAll,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 1000000, &o.connections, e);
       }},
      {"depth", "D", "messages in flight per connection", "1", kEcho | kTcp,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 65536, &o.depth, e);
       }},
      {"size", "BYTES", "message size (16B..64MiB; k, KiB, M, MiB units)", "32B", kEcho | kTcp,
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
      {"warmup-seconds", "DURATION", "load before measuring starts", "0s", kEcho | kTcp,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_duration(v, 0, &o.warmup_ms, e);
       }},
      {"binary", nullptr, "send binary messages instead of text", "text", kEcho,
       [](Options& o, std::string_view, std::string*) { return o.binary = true; }},
      {"deflate", nullptr, "offer permessage-deflate and compress every message", "off", kEcho,
       [](Options& o, std::string_view, std::string*) { return o.deflate = true; }},
      {"threads", "N", "reactor threads, connections spread round-robin", "1", kAll,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_int(v, 1, 256, &o.threads, e);
       }},
      {"rate", "R/s", "connections opened per second", "1000/s", kHold,
       [](Options& o, std::string_view v, std::string* e) { return parse_rate(v, &o.rate, e); }},
      {"ping-interval", "DURATION", "ping each held connection this often", "5s", kHold,
       [](Options& o, std::string_view v, std::string* e) {
         return parse_duration(v, 10, &o.ping_interval_ms, e);
       }},
      {"connect-timeout", "DURATION", "time allowed for TCP connect plus upgrade", "5s", kAll,
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

const Flag* find_flag(std::string_view name, Command command) {
  for (const Flag& f : flags())
    if (name == f.name && (f.commands & bit(command))) return &f;
  return nullptr;
}

bool validate(const Options& o, std::string* error) {
  if (o.target_text.empty()) {
    bool needs_url = o.command == Command::kEcho || o.command == Command::kHold;
    *error = needs_url ? "--url is required" : "--addr is required";
    return false;
  }
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

std::string usage(std::optional<Command> command) {
  std::string out =
      "weir-load — load, latency and endurance tool for weir\n\n"
      "usage: weir-load COMMAND [--flag value | --flag=value]...\n\n"
      "commands:\n"
      "  echo      N WebSocket connections keep D messages in flight; every echo verified\n"
      "  tcp-echo  the same over raw TCP with fixed-size messages (weir --tcp-echo baseline)\n"
      "  hold      open N idle WebSocket connections at a bounded rate, ping them, count "
      "survivors\n\n"
      "Every run prints a progress line each second on stderr and a JSON summary on stdout,\n"
      "and exits 0 when nothing failed, 1 on errors, 2 on bad arguments.\n";
  if (!command) return out + "\n'weir-load COMMAND --help' lists a command's flags.\n";
  out += "\nflags of " + std::string(command_name(*command)) + ":\n";
  for (const Flag& f : flags()) {
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
