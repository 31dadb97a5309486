#!/usr/bin/env bash
# tests/interop/load_tool_test.sh — drives build/weir-load end to end: argument errors (exit 2),
# tcp-echo against `weir --tcp-echo`, echo/hold against a Python `websockets` echo server
# (text, binary, permessage-deflate), error detection (corrupted echoes, refused and silent
# servers), valid CSV and SVG output, echo (also at a fixed --rate) and hold against weir's
# own /echo, and fanout --resume-every against weir's /ws (members drop and resume; nothing
# lost, repeated or reordered).
#
# Usage: tests/interop/load_tool_test.sh [BUILD_DIR]   (default: build)
# Everything started here is stopped by PID; every run is bounded by `timeout`.
# shellcheck disable=SC2015  # pass() never fails, so `cond && pass .. || fail ..` is an if/else
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
LOAD="$BUILD/weir-load"
WEIR="$BUILD/weir"
TMP=$(mktemp -d)
PIDS=()
failures=0

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT

pass() { echo "ok   $1"; }
fail() {
  echo "FAIL $1"
  failures=$((failures + 1))
}

[ -x "$LOAD" ] || { echo "FAIL $LOAD not built"; exit 1; }

# The system python has python3-websockets; a pyenv shim may shadow it.
PY=python3
for cand in /usr/bin/python3 python3; do
  if "$cand" -c 'import websockets' 2>/dev/null; then PY=$cand; break; fi
done
HAVE_WEBSOCKETS=0
"$PY" -c 'import websockets' 2>/dev/null && HAVE_WEBSOCKETS=1

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {  # port: waits up to 5 s for a listener
  for _ in $(seq 1 100); do
    "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# json FILE EXPR: evaluates a Python expression over the summary `j` and prints it.
json() { "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# expect NAME FILE EXPR: passes when the Python expression over `j` is true.
expect() {
  if [ "$(json "$2" "bool($3)")" = "True" ]; then pass "$1"; else
    fail "$1: expected $3 in $(head -c 600 "$2" 2>/dev/null)"
  fi
}

valid_outputs() {  # name csv svg
  if "$PY" - "$2" "$3" <<'EOF'; then pass "$1: CSV and SVG are well formed"; else fail "$1: bad CSV or SVG"; fi
import csv, sys, xml.dom.minidom
rows = list(csv.reader(open(sys.argv[1])))
assert rows[0][:2] == ["t", "phase"], rows[0]
assert len(rows) >= 3, rows
assert all(len(r) == len(rows[0]) for r in rows), "ragged CSV"
doc = xml.dom.minidom.parse(sys.argv[2])
assert doc.documentElement.tagName == "svg"
assert doc.getElementsByTagName("polyline"), "no lines drawn"
EOF
}

# run_load NAME LIMIT_S ARGS...: runs weir-load with a hard timeout; output in $TMP/NAME.*
run_load() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout -k 2 "$limit" "$LOAD" "$@" >"$TMP/$name.json" 2>"$TMP/$name.err"
  RC=$?
  ELAPSED=$((SECONDS - start))
  if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then fail "$name: did not stop within ${limit}s"; fi
}

# ------------------------------------------------------------------ argument errors
for args in "" "flood" "echo" "echo --url ws://127.0.0.1:1/echo --size 3" "tcp-echo --addr nowhere" \
  "hold --url ws://127.0.0.1:1/echo --depth 2" "echo --url wss://127.0.0.1:1/echo" \
  "fanout --url ws://127.0.0.1:1/ws --resume-every 50ms" "fanout --url ws://127.0.0.1:1/ws --members 0 --resume-every 1s"; do
  # shellcheck disable=SC2086
  timeout 5 "$LOAD" $args >/dev/null 2>"$TMP/usage.err"
  rc=$?
  if [ "$rc" -eq 2 ] && grep -q "usage: weir-load" "$TMP/usage.err"; then
    pass "bad arguments '$args' exit 2 with usage"
  else
    fail "bad arguments '$args': exit $rc, stderr: $(head -c 300 "$TMP/usage.err")"
  fi
done
if timeout 5 "$LOAD" echo --help | grep -q -- "--depth"; then pass "echo --help lists its flags"; else fail "echo --help"; fi
if timeout 5 "$LOAD" fanout --help | grep -q -- "--resume-every DURATION"; then pass "fanout --help lists --resume-every"; else fail "fanout --help"; fi

# ------------------------------------------------------------------ tcp-echo vs weir --tcp-echo
if [ -x "$WEIR" ]; then
  port=$(free_port)
  "$WEIR" --tcp-echo "127.0.0.1:$port" --threads 1 --log-level warn >"$TMP/weir-tcp.log" 2>&1 &
  PIDS+=($!)
  if wait_port "$port"; then
    run_load tcp 30 tcp-echo --addr "127.0.0.1:$port" --connections 8 --depth 4 --size 64 --seconds 2 \
      --csv "$TMP/tcp.csv" --plot "$TMP/tcp.svg"
    [ "$RC" -eq 0 ] && pass "tcp-echo exits 0" || fail "tcp-echo exit $RC: $(tail -3 "$TMP/tcp.err")"
    expect "tcp-echo verified every echo" "$TMP/tcp.json" "j['messages'] > 1000 and j['errors']['total'] == 0 and j['unanswered'] == 0"
    expect "tcp-echo reports latency percentiles" "$TMP/tcp.json" "0 < j['latency_ms']['p50'] <= j['latency_ms']['p99'] <= j['latency_ms']['max']"
    valid_outputs "tcp-echo" "$TMP/tcp.csv" "$TMP/tcp.svg"
    grep -q "measure" "$TMP/tcp.err" && pass "tcp-echo prints progress lines" || fail "no progress line"
  else
    fail "weir --tcp-echo did not start: $(tail -3 "$TMP/weir-tcp.log")"
  fi
else
  echo "skip tcp-echo: $WEIR not built"
fi

# ------------------------------------------------------------------ failures end the run, non-zero
port=$(free_port)  # nothing listens here
run_load refused 20 echo --url "ws://127.0.0.1:$port/echo" --connections 4 --seconds 1 --quiet
expect "refused connects are counted" "$TMP/refused.json" "j['errors']['connect_failures'] == 4"
[ "$RC" -eq 1 ] && pass "refused server exits 1" || fail "refused server exit $RC"

cat >"$TMP/silent.py" <<'EOF'
# Accepts TCP connections and never answers: the upgrade must time out.
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
held = []
while True:
    c, _ = s.accept(); held.append(c)
EOF
port=$(free_port)
"$PY" "$TMP/silent.py" "$port" &
PIDS+=($!)
if wait_port "$port"; then
  run_load silent 20 echo --url "ws://127.0.0.1:$port/echo" --connections 3 --seconds 1 --connect-timeout 1s --quiet
  [ "$RC" -eq 1 ] && [ "$ELAPSED" -le 10 ] && pass "silent server: exit 1 after ${ELAPSED}s" ||
    fail "silent server: exit $RC after ${ELAPSED}s"
  expect "silent server: upgrades time out" "$TMP/silent.json" "j['errors']['connect_failures'] == 3"
fi

# ------------------------------------------------------------------ against a Python echo server
if [ "$HAVE_WEBSOCKETS" -eq 1 ]; then
  cat >"$TMP/echo_server.py" <<'EOF'
# Echo server for the load tool's tests: port [--corrupt-every N] [--close-after N] [--deflate]
import argparse, asyncio, websockets
ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--corrupt-every", type=int, default=0)
ap.add_argument("--close-after", type=int, default=0)
ap.add_argument("--deflate", action="store_true")
a = ap.parse_args()
async def handler(ws, path=None):
    n = 0
    async for m in ws:
        n += 1
        if a.close_after and n > a.close_after:
            await ws.close(1011, "test server gives up")
            return
        if a.corrupt_every and n % a.corrupt_every == 0:
            last = m[-1:]
            m = m[:-1] + (("#" if last != "#" else "$") if isinstance(m, str) else bytes([m[-1] ^ 1]))
        await ws.send(m)
async def main():
    comp = "deflate" if a.deflate else None
    async with websockets.serve(handler, "127.0.0.1", a.port, max_size=None, compression=comp):
        await asyncio.Future()
asyncio.run(main())
EOF
  port=$(free_port)
  "$PY" "$TMP/echo_server.py" "$port" --deflate 2>"$TMP/pyecho.log" &
  PIDS+=($!)
  bad_port=$(free_port)
  "$PY" "$TMP/echo_server.py" "$bad_port" --corrupt-every 50 2>"$TMP/pybad.log" &
  PIDS+=($!)
  drop_port=$(free_port)
  "$PY" "$TMP/echo_server.py" "$drop_port" --close-after 200 2>"$TMP/pydrop.log" &
  PIDS+=($!)
  if wait_port "$port" && wait_port "$bad_port" && wait_port "$drop_port"; then
    url="ws://127.0.0.1:$port/echo"
    run_load py_text 30 echo --url "$url" --connections 4 --depth 4 --size 100 --seconds 2 --warmup-seconds 1 \
      --csv "$TMP/py.csv" --plot "$TMP/py.svg"
    [ "$RC" -eq 0 ] && pass "echo (text) vs Python exits 0" || fail "echo text exit $RC: $(tail -3 "$TMP/py_text.err")"
    expect "echo (text) verified every echo" "$TMP/py_text.json" "j['messages'] > 100 and j['errors']['total'] == 0"
    expect "warm-up is not measured" "$TMP/py_text.json" "j['echoed_total'] > j['messages'] and 1.5 < j['seconds'] < 3"
    valid_outputs "echo" "$TMP/py.csv" "$TMP/py.svg"
    grep -q ",warmup," "$TMP/py.csv" && pass "CSV rows carry the phase" || fail "CSV lacks warmup rows"

    run_load py_deflate 30 echo --url "$url" --connections 2 --depth 2 --size 3000 --seconds 1 --binary --deflate --threads 2 --quiet
    [ "$RC" -eq 0 ] && pass "echo (binary, deflate, 2 threads) exits 0" || fail "deflate exit $RC: $(tail -3 "$TMP/py_deflate.err")"
    expect "permessage-deflate negotiated on every connection" "$TMP/py_deflate.json" "j['deflate_connections'] == 2 and j['errors']['total'] == 0 and j['messages'] > 10"

    run_load py_bad 30 echo --url "ws://127.0.0.1:$bad_port/echo" --connections 2 --depth 2 --size 64 --seconds 1 --quiet
    [ "$RC" -eq 1 ] && pass "corrupted echoes exit 1" || fail "corrupted echoes exit $RC"
    expect "corrupted echoes are counted as mismatches" "$TMP/py_bad.json" "j['errors']['mismatches'] > 0"

    run_load py_drop 30 echo --url "ws://127.0.0.1:$drop_port/echo" --connections 2 --depth 2 --size 64 --seconds 1 --quiet
    [ "$RC" -eq 1 ] && pass "connections dropped mid-run exit 1" || fail "dropped connections exit $RC"
    expect "mid-run closes are counted" "$TMP/py_drop.json" "j['errors']['unexpected_closes'] == 2"

    run_load py_hold 30 hold --url "$url" --connections 60 --rate 200/s --seconds 2 --ping-interval 300ms \
      --csv "$TMP/hold.csv" --plot "$TMP/hold.svg"
    [ "$RC" -eq 0 ] && pass "hold vs Python exits 0" || fail "hold exit $RC: $(tail -3 "$TMP/py_hold.err")"
    expect "hold kept every connection and got pongs" "$TMP/py_hold.json" "j['up_at_end'] == 60 and j['pongs_received'] > 60 and j['pongs_missed'] == 0"
    valid_outputs "hold" "$TMP/hold.csv" "$TMP/hold.svg"
  else
    fail "Python echo server did not start: $(tail -3 "$TMP/pyecho.log")"
  fi
else
  echo "skip Python echo tests: the websockets package is not installed (apt-get install python3-websockets)"
fi

# ------------------------------------------------------------------ against weir's /echo
if [ -x "$WEIR" ]; then
  port=$(free_port)
  "$WEIR" --listen "127.0.0.1:$port" --threads 1 --log-level warn >"$TMP/weir-http.log" 2>&1 &
  PIDS+=($!)
  if ! wait_port "$port"; then
    echo "skip weir /echo: weir has no HTTP service yet ($(tail -1 "$TMP/weir-http.log"))"
  else
    run_load probe 20 echo --url "ws://127.0.0.1:$port/echo" --connections 1 --seconds 1 --quiet
    if grep -q "upgrade refused\|connect failed" "$TMP/probe.err"; then
      echo "skip weir /echo: weir does not serve /echo yet ($(grep -m1 "weir-load:" "$TMP/probe.err"))"
    else
      url="ws://127.0.0.1:$port/echo"
      run_load weir_echo 30 echo --url "$url" --connections 16 --depth 8 --size 32 --seconds 2 --quiet
      [ "$RC" -eq 0 ] && pass "echo vs weir /echo exits 0" || fail "weir echo exit $RC: $(tail -3 "$TMP/weir_echo.err")"
      expect "weir echoed every message intact" "$TMP/weir_echo.json" "j['messages'] > 1000 and j['errors']['total'] == 0"
      # --rate: the schedule holds (achieved within 10%), every echo intact, latency from the
      # scheduled time still in order.
      run_load weir_rate 30 echo --url "$url" --connections 8 --rate 2000 --size 32 --seconds 2 \
        --warmup-seconds 1 --quiet
      [ "$RC" -eq 0 ] && pass "echo --rate vs weir /echo exits 0" || fail "weir echo --rate exit $RC: $(tail -3 "$TMP/weir_rate.err")"
      expect "echo --rate 2000 achieves 2000 msg/s within 10%" "$TMP/weir_rate.json" \
        "j['rate'] == 2000 and abs(j['sent_per_sec'] - 2000) <= 200 and abs(j['messages_per_sec'] - 2000) <= 200"
      expect "echo --rate echoes every message intact" "$TMP/weir_rate.json" \
        "j['errors']['mismatches'] == 0 and j['errors']['total'] == 0 and j['held_back'] == 0"
      expect "echo --rate reports latency from the schedule" "$TMP/weir_rate.json" \
        "0 < j['latency_ms']['p50'] <= j['latency_ms']['p99'] <= j['latency_ms']['max']"
      run_load weir_big 30 echo --url "$url" --connections 4 --depth 2 --size 256KiB --seconds 1 --binary --quiet
      expect "weir echoes 256 KiB binary messages" "$TMP/weir_big.json" "j['messages'] > 4 and j['errors']['total'] == 0"
      run_load weir_hold 30 hold --url "$url" --connections 500 --rate 1000/s --seconds 2 --ping-interval 500ms --quiet
      expect "weir held 500 connections from many source addresses" "$TMP/weir_hold.json" "j['up_at_end'] == 500 and j['pongs_missed'] == 0"
    fi
  fi
fi

# ------------------------------------------------------------------ fanout --resume-every vs weir /ws
# Every receiving member drops its connection (RST) about once a second, reconnects and resumes
# its session from the last offset it processed, while publishers keep the rooms busy: every
# resume must be recovered, and every member must still get every offset exactly once, in order.
if [ -x "$WEIR" ]; then
  port=$(free_port)
  "$WEIR" --listen "127.0.0.1:$port" --threads 2 --log-level warn >"$TMP/weir-resume.log" 2>&1 &
  PIDS+=($!)
  if wait_port "$port"; then
    run_load resume 40 fanout --url "ws://127.0.0.1:$port/ws" --rooms 2 --members 5 --publishers 2 \
      --rate 0 --depth 4 --size 64 --warmup-seconds 1 --seconds 3 --resume-every 1s --threads 2 \
      --csv "$TMP/resume.csv"
    [ "$RC" -eq 0 ] && pass "fanout --resume-every exits 0" || fail "fanout --resume-every exit $RC: $(tail -5 "$TMP/resume.err")"
    expect "fanout --resume-every: members dropped and resumed" "$TMP/resume.json" \
      "j['resumes']['done'] >= 10 and j['resumes']['done'] == j['resumes']['started'] and j['resumes']['failed'] == 0"
    expect "fanout --resume-every: every resume recovered, with replays" "$TMP/resume.json" \
      "j['resumes']['recovered'] == j['resumes']['done'] and j['resumes']['not_recovered'] == 0 and j['resumes']['replayed'] > 0"
    expect "fanout --resume-every: no loss, no order violation, no duplicate" "$TMP/resume.json" \
      "j['deliveries'] > 1000 and j['lost'] == 0 and j['order_violations'] == 0 and j['duplicates'] == 0 and j['expected_deliveries'] == j['received_deliveries'] and j['errors']['total'] == 0"
    expect "fanout --resume-every: resume latency percentiles are ordered" "$TMP/resume.json" \
      "0 < j['resumes']['latency_ms']['p50'] <= j['resumes']['latency_ms']['p99'] <= j['resumes']['latency_ms']['max']"
    grep -q "resumes [1-9][0-9]* ([1-9][0-9]* recovered, 0 failed)" "$TMP/resume.err" &&
      pass "fanout --resume-every: the progress line counts resumes" || fail "no resumes in the progress line"
    head -1 "$TMP/resume.csv" | grep -q ",resumes,resumes_recovered,replayed,resume_p99_ms" &&
      pass "fanout --resume-every: CSV has the resume columns" || fail "CSV lacks the resume columns"
  else
    fail "weir (fanout --resume-every) did not start: $(tail -3 "$TMP/weir-resume.log")"
  fi
fi

echo "$failures failures"
[ "$failures" -eq 0 ]
