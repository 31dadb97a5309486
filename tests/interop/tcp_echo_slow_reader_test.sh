#!/usr/bin/env bash
# tests/interop/tcp_echo_slow_reader_test.sh BUILD — end-to-end backpressure of the raw TCP echo.
#
# Starts `weir --tcp-echo --max-buffer 4MiB --threads 1` three times in parallel (ACK, NACK with
# suspending, pull reading). Each gets a client that sends 256 MiB of a pattern as fast as the
# server takes it and reads the echo at 8 MiB/s, checking every byte. Meanwhile each server's
# VmRSS is sampled every 200 ms: backpressure must hold it under 64 MiB, so the bytes wait in
# the client's socket, not in the server. Bounded to about a minute.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
WEIR=$BUILD/weir
TOTAL=$((256 << 20))
RATE=$((8 << 20))
RSS_LIMIT_KB=$((64 << 10))
CLIENT_TIMEOUT=55 # 256 MiB at 8 MiB/s is 32 s

if [ ! -x "$WEIR" ]; then
  echo "no $WEIR: build it first"
  exit 1
fi

modes=(ack nack-suspend pull)
declare -A server_pid client_pid port max_rss
tmp=$(mktemp -d)

cleanup() {
  for mode in "${modes[@]}"; do
    [ -n "${client_pid[$mode]:-}" ] && kill "${client_pid[$mode]}" 2>/dev/null
    [ -n "${server_pid[$mode]:-}" ] && kill "${server_pid[$mode]}" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Running and not a zombie (a crashed child stays visible to kill -0 until it is reaped).
alive() {
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

mode_flags() {
  case $1 in
    ack) echo "--write-mode ack --read-mode push" ;;
    nack-suspend) echo "--write-mode nack-suspend --read-mode push" ;;
    pull) echo "--write-mode ack --read-mode pull" ;;
  esac
}

for mode in "${modes[@]}"; do
  port[$mode]=$(free_port)
  # shellcheck disable=SC2046  # the mode's flags are separate words
  "$WEIR" --tcp-echo "127.0.0.1:${port[$mode]}" --max-buffer 4MiB --threads 1 $(mode_flags "$mode") \
    >"$tmp/$mode.server.log" 2>&1 &
  server_pid[$mode]=$!
  max_rss[$mode]=0
done
for mode in "${modes[@]}"; do
  timeout "$CLIENT_TIMEOUT" python3 tests/interop/slow_echo_client.py --port "${port[$mode]}" \
    --bytes "$TOTAL" --rate "$RATE" --label "$mode" >"$tmp/$mode.client.log" 2>&1 &
  client_pid[$mode]=$!
done

# Sample every server's resident memory while any client runs.
while :; do
  running=0
  for mode in "${modes[@]}"; do
    alive "${client_pid[$mode]}" && running=1
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${server_pid[$mode]}/status" 2>/dev/null)
    if [ -n "$rss" ] && [ "$rss" -gt "${max_rss[$mode]}" ]; then max_rss[$mode]=$rss; fi
  done
  [ "$running" -eq 0 ] && break
  sleep 0.2
done

failed=0
for mode in "${modes[@]}"; do
  wait "${client_pid[$mode]}"
  rc=$?
  client_line=$(tail -n 1 "$tmp/$mode.client.log" 2>/dev/null)
  [ "$rc" -eq 124 ] && client_line="$mode: FAIL client timed out after ${CLIENT_TIMEOUT}s"
  verdict=ok
  if [ "$rc" -ne 0 ]; then verdict=FAIL; fi
  if [ "${max_rss[$mode]}" -ge "$RSS_LIMIT_KB" ]; then verdict=FAIL; fi
  if ! alive "${server_pid[$mode]}"; then
    verdict=FAIL
    client_line="$client_line; server exited early"
  fi
  printf '%-13s %-4s max VmRSS %6d KiB (limit %d)  client: %s\n' "$mode" "$verdict" \
    "${max_rss[$mode]}" "$RSS_LIMIT_KB" "$client_line"
  if [ "$verdict" != ok ]; then
    failed=1
    sed 's/^/    server: /' "$tmp/$mode.server.log" | tail -n 5
  fi
done

# Stop the servers by PID; a clean exit (status 0) on SIGTERM is part of the check.
for mode in "${modes[@]}"; do
  kill -TERM "${server_pid[$mode]}" 2>/dev/null
  for _ in $(seq 50); do
    alive "${server_pid[$mode]}" || break
    sleep 0.1
  done
  if alive "${server_pid[$mode]}"; then
    echo "$mode: server did not exit on SIGTERM"
    kill -KILL "${server_pid[$mode]}" 2>/dev/null
    failed=1
  fi
  wait "${server_pid[$mode]}" 2>/dev/null
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "$mode: server exited with status $rc after SIGTERM"
    failed=1
  fi
  server_pid[$mode]=
done

if [ "$failed" -ne 0 ]; then
  echo "tcp echo slow reader: FAIL"
  exit 1
fi
echo "tcp echo slow reader: ok"
