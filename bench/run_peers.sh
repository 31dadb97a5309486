#!/usr/bin/env bash
# bench/run_peers.sh — weir side by side with uWebSockets.js and Node ws, in one command:
#
#   bash bench/run_peers.sh --scenarios echo-32,echo-4k --rounds 3 --seconds 10
#
# Installs the peers' npm packages (bench/peers) when missing, brings $BUILD/weir and
# $BUILD/weir-load up to date with make (BUILD=build by default; WEIR_BENCH_NO_BUILD=1 skips
# this and uses whatever binaries are there), then hands over to bench/run_peers.py, which
# starts and stops every server by its PID and rewrites the peers section of
# docs/benchmarks.md. `bash bench/run_peers.sh --help` lists the flags and scenarios.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
NODE=${NODE:-/usr/bin/node}

for tool in taskset "$NODE" npm; do
  command -v "$tool" >/dev/null || { echo "run_peers.sh: $tool is missing" >&2; exit 2; }
done

if [[ ! -d bench/peers/node_modules/ws || ! -d bench/peers/node_modules/@trufflesuite/uws-js-unofficial ]]; then
  echo "run_peers.sh: installing the peers' npm packages in bench/peers" >&2
  if [[ -f bench/peers/package-lock.json ]]; then
    (cd bench/peers && npm ci --no-audit --no-fund)
  else
    (cd bench/peers && npm install --no-audit --no-fund)
  fi
fi

if [[ "${WEIR_BENCH_NO_BUILD:-0}" != 1 ]]; then
  make -s BUILD="$BUILD" -j"$(nproc)" "$BUILD/weir" "$BUILD/weir-load" >&2
fi

# The command as the reader should retype it, for docs/benchmarks.md.
prefix=""
[[ "$BUILD" != build ]] && prefix="BUILD=$BUILD "
export WEIR_BENCH_COMMAND="${prefix}bash bench/run_peers.sh${*:+ $*}"
exec /usr/bin/python3 bench/run_peers.py --weir "$BUILD/weir" --load "$BUILD/weir-load" --node "$NODE" "$@"
