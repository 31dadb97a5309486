#!/usr/bin/env bash
# tests/interop/node_ws_test.sh BUILD_DIR — interop of weir's /echo with Node's `ws` package.
#
# Starts BUILD_DIR/weir once per server mode (--deflate off, shared, dedicated, and dedicated
# over TLS when weir has --tls-cert) on a port it picks itself, runs node_ws_client.js against it
# (text and binary echo from 0 B to 16 MiB, fragmented sends, pings, every client close code,
# with the client's permessage-deflate off, `true`, and compressing every message), and stops
# each weir by PID. Exit status is non-zero on any failure.
set -u
BUILD=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
weir=$(realpath -m "$BUILD/weir")

if [ ! -x "$weir" ]; then
  echo "node_ws_test: $weir is not an executable"
  exit 2
fi
if ! command -v node >/dev/null || [ ! -d "$here/node_modules/ws" ]; then
  echo "node_ws_test: needs node and tests/interop/node_modules/ws (run: make deps)"
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weir-nodews-XXXXXX")
pid=""  # the weir we started and have not yet reaped; one at a time
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=""
# start_weir NAME FLAGS...: starts weir, sets $port and $pid once it listens.
start_weir() {
  local name=$1
  shift
  "$weir" --listen 127.0.0.1:0 --threads 1 "$@" >"$tmp/$name.log" 2>&1 &
  pid=$!
  port=""
  for _ in $(seq 500); do
    port=$(grep -oP 'listening on \S+ port \K[0-9]+' "$tmp/$name.log" 2>/dev/null | head -1)
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.02
  done
  echo "node_ws_test: weir ($name) did not start:"
  cat "$tmp/$name.log"
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=""
  return 1
}

# stop_weir NAME: SIGTERM; a clean shutdown exits 0 (under ASan, also leak-free).
stop_weir() {
  kill "$pid" 2>/dev/null
  local status=0
  wait "$pid" 2>/dev/null || status=$?
  pid=""
  if [ "$status" -ne 0 ]; then
    echo "FAIL weir ($1) exited with status $status on SIGTERM:"
    tail -20 "$tmp/$1.log"
    return 1
  fi
}

modes=("off|no|" "shared|yes|--deflate shared" "dedicated|yes|--deflate dedicated")
if "$weir" --help | grep -q -- '--tls-cert'; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1
  modes+=("dedicated-tls|yes|--deflate dedicated --tls-cert $tmp/cert.pem --tls-key $tmp/key.pem")
else
  echo "skip wss://: weir has no --tls-cert flag yet"
fi

failures=0
for mode in "${modes[@]}"; do
  IFS='|' read -r name deflates flags <<<"$mode"
  # shellcheck disable=SC2086  # flags are words on purpose
  if ! start_weir "$name" $flags; then
    failures=$((failures + 1))
    continue
  fi
  scheme=ws
  ca=()
  case "$flags" in *--tls-cert*) scheme=wss; ca=("$tmp/cert.pem") ;; esac
  if ! timeout 110 node "$here/node_ws_client.js" "$scheme://127.0.0.1:$port/echo" "$deflates" "${ca[@]}"; then
    failures=$((failures + 1))
    echo "--- weir ($name) log tail:"
    tail -20 "$tmp/$name.log"
  fi
  stop_weir "$name" || failures=$((failures + 1))
done

if [ "$failures" -ne 0 ]; then
  echo "node ws interop: $failures server mode(s) failed"
  exit 1
fi
echo "node ws interop: all ${#modes[@]} server modes passed"
