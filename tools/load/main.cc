// tools/load/main.cc — `weir-load`: picks the subcommand, prints usage for bad arguments
// (exit 2) and runs it.
#include <cstdio>
#include <string>

#include "tools/load/commands.h"
#include "tools/load/options.h"

int main(int argc, char** argv) {
  using namespace weir::load;
  Options options;
  std::string error;
  switch (parse_command_line(argc, argv, &options, &error)) {
    case ParseStatus::kHelp: {
      std::optional<Command> command = argc > 1 ? parse_command(argv[1]) : std::nullopt;
      std::fputs(usage(command).c_str(), stdout);
      return 0;
    }
    case ParseStatus::kError: {
      std::optional<Command> command = argc > 1 ? parse_command(argv[1]) : std::nullopt;
      std::fprintf(stderr, "weir-load: %s\n\n%s", error.c_str(), usage(command).c_str());
      return 2;
    }
    case ParseStatus::kOk:
      break;
  }
  switch (options.command) {
    case Command::kEcho:
      return run_echo(options);
    case Command::kTcpEcho:
      return run_tcp_echo(options);
    case Command::kHold:
      return run_hold(options);
    case Command::kFanout:
      return run_fanout(options);
    case Command::kSlow:
      return run_slow(options);
    case Command::kRelay:
      return run_relay(options);
  }
  return 2;
}
