// tools/load/commands.h — one entry point per `weir-load` subcommand; each returns the exit
// status (0 nothing failed, 1 errors or nothing measured).
#pragma once

#include "tools/load/options.h"

namespace weir::load {

int run_echo(const Options& options);      // echo.cc
int run_tcp_echo(const Options& options);  // tcp_echo.cc
int run_hold(const Options& options);      // hold.cc
int run_fanout(const Options& options);    // fanout.cc
int run_slow(const Options& options);      // slow.cc
int run_relay(const Options& options);     // relay_run.cc

}  // namespace weir::load
