#!/usr/bin/env bash
# tests/interop/store_redis_outage_test.sh — weir on a Redis store (--durability async) keeps
# delivering live through a Redis outage. A fanout runs at a fixed rate for about 20 s; at
# ~5 s redis-server is stopped (SIGTERM by PID), at ~15 s started again on the same port.
# While Redis is down /readyz says "durability":"degraded" and /metrics weir_store_up 0; the
# fanout loses nothing, sees no disorder and gets deliveries in every second of the outage;
# after the restart /readyz says "durability":"ok" and weir_store_up 1 again within a bounded
# wait, and the last message of every room, published after the recovery, is in the room's
# Redis stream (weir:history:<room>:<epoch>, entry "<offset>-1"; weir:room:<room> {epoch, last}),
# with every message since the recovery before it (the restarted Redis, without persistence,
# holds nothing older).
#
# The fanout runs 24 s, not 20: weir_store_up returns to 1 only when a store batch succeeds,
# so appends must still flow when the backend's reconnect backoff (at most 5 s) runs out.
#
# Usage: tests/interop/store_redis_outage_test.sh [BUILD_DIR]   (default: build)
# Skips (exit 0) without /usr/bin/redis-server or redis-cli. Everything started here is
# stopped by PID in the EXIT trap; every wait is bounded.
# shellcheck disable=SC2015  # pass() never fails, so `cond && pass .. || fail ..` is an if/else
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
LOAD="$BUILD/weir-load"
WEIR="$BUILD/weir"
REDIS_SERVER=/usr/bin/redis-server
REDIS_CLI=$(command -v redis-cli || true)
TMP=$(mktemp -d)
PIDS=()
redis_pid=
failures=0

cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  [ -n "$redis_pid" ] && wait "$redis_pid" 2>/dev/null
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
[ -x "$WEIR" ] || { echo "FAIL $WEIR not built"; exit 1; }
if [ ! -x "$REDIS_SERVER" ] || [ -z "$REDIS_CLI" ]; then
  echo "ok   skipped: needs $REDIS_SERVER and redis-cli (make deps)"
  exit 0
fi

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }  # ms as seconds, one decimal
gone() { ! kill -0 "$1" 2>/dev/null; }

# wait_until TIMEOUT_S COMMAND...: runs COMMAND every 0.1 s until it succeeds or time is up.
wait_until() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@"; do
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

# sleep_until MS: sleeps until the wall clock reaches MS (now_ms units); at once when past.
sleep_until() {
  local left=$(($1 - $(now_ms)))
  [ "$left" -gt 0 ] && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
  return 0
}

# http_get PATH: the body of http://127.0.0.1:$port/PATH whatever its status, "" when unreachable.
http_get() { curl -s --max-time 2 "http://127.0.0.1:$port$1"; }

redis() { timeout 5 "$REDIS_CLI" -p "$rport" "$@" 2>/dev/null; }
redis_answers() { [ "$(redis PING)" = "PONG" ]; }

start_redis() {
  "$REDIS_SERVER" --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$TMP" --logfile "$TMP/redis.log" &
  redis_pid=$!
  wait_until 5 redis_answers
}

stop_redis() {  # SIGTERM by PID, SIGKILL after 5 s
  kill -TERM "$redis_pid" 2>/dev/null
  wait_until 5 gone "$redis_pid" || kill -KILL "$redis_pid" 2>/dev/null
  wait "$redis_pid" 2>/dev/null
  redis_pid=
}

readyz_says() { http_get /readyz | grep -q "\"durability\":\"$1\""; }
store_up_is() { http_get /metrics | grep -Eq "^weir_store_up $1(\\.0*)?\$"; }
durability_and_up() { readyz_says "$1" && store_up_is "$2"; }

# ranges FILE: "a-b c-d ..." for a file of stream entry IDs "<offset>-1", one a line.
ranges() {
  "$PY" - "$1" <<'EOF'
import sys
offsets = sorted(int(line.split("-")[0]) for line in open(sys.argv[1]) if line.strip())
spans, start = [], None
for i, o in enumerate(offsets):
    if start is None:
        start = o
    if i + 1 == len(offsets) or offsets[i + 1] != o + 1:
        spans.append(f"{start}-{o}")
        start = None
print(" ".join(spans) or "none")
EOF
}

json() { "$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# ------------------------------------------------------------------ redis-server and weir
rport=$(free_port)
start_redis && pass "redis-server answers on port $rport" ||
  { fail "redis-server did not start: $(tail -3 "$TMP/redis.log" 2>/dev/null)"; exit 1; }

port=$(free_port)
"$WEIR" --listen "127.0.0.1:$port" --threads 1 --log-level info \
  --store "redis://127.0.0.1:$rport" --durability async >"$TMP/weir.log" 2>&1 &
PIDS+=($!)
wait_until 10 readyz_says ok && pass "weir on the Redis store is ready, durability ok" ||
  { fail "weir not ready with durability ok: $(http_get /readyz) $(tail -3 "$TMP/weir.log")"; exit 1; }
http_get /readyz | grep -q '"store":"redis"' && pass "/readyz names the redis store" ||
  fail "/readyz does not name the store: $(http_get /readyz)"
store_up_is 1 && pass "weir_store_up 1 at start" || fail "weir_store_up at start: $(http_get /metrics | grep weir_store_up)"

# ------------------------------------------------------------------ the fanout and the outage
# 2 rooms x 5 members + 2 publishers at 200 messages/s in total: 1200 deliveries/s.
start_ms=$(now_ms)
timeout -k 2 60 "$LOAD" fanout --url "ws://127.0.0.1:$port/ws" --rooms 2 --members 5 --publishers 2 \
  --rate 200/s --size 100 --seconds 24 --csv "$TMP/fanout.csv" --quiet >"$TMP/fanout.json" 2>"$TMP/fanout.err" &
load_pid=$!
PIDS+=("$load_pid")

sleep_until $((start_ms + 5000))
down_ms=$(now_ms)
stop_redis
redis_answers && fail "redis-server still answers after SIGTERM" || pass "redis-server stopped $(secs $((down_ms - start_ms))) s into the fanout"

# Both signals must show while Redis is still down (it comes back at 15 s).
if wait_until 8 readyz_says degraded; then
  pass "/readyz says durability degraded $(($(now_ms) - down_ms)) ms after the stop"
else
  fail "/readyz while Redis is down: $(http_get /readyz)"
fi
wait_until 2 store_up_is 0 && pass "weir_store_up 0 while Redis is down" ||
  fail "weir_store_up while Redis is down: $(http_get /metrics | grep weir_store_up)"
[ "$(now_ms)" -lt $((start_ms + 15000)) ] || fail "the degraded checks ran past the restart time"
http_get /healthz | grep -q ok && pass "weir stays healthy while Redis is down" || fail "/healthz while Redis is down"

sleep_until $((start_ms + 15000))
up_ms=$(now_ms)
start_redis && pass "redis-server started again on port $rport" ||
  fail "redis-server did not restart on port $rport: $(tail -3 "$TMP/redis.log")"
if wait_until 10 durability_and_up ok 1; then
  recovered_ms=$(now_ms)
  pass "durability ok and weir_store_up 1 again $((recovered_ms - up_ms)) ms after the restart"
else
  recovered_ms=
  fail "no recovery within 10 s of the restart: $(http_get /readyz) $(http_get /metrics | grep weir_store_up)"
fi

# ------------------------------------------------------------------ what the fanout saw
if wait_until 40 gone "$load_pid"; then
  wait "$load_pid"
  rc=$?
else
  rc=timeout
fi
end_ms=$(now_ms)
[ "$rc" = 0 ] && pass "fanout exits 0" || fail "fanout exit $rc: $(tail -5 "$TMP/fanout.err")"
if [ "$(json "$TMP/fanout.json" "j['lost'] == 0 and j['order_violations'] == 0 and j['errors']['total'] == 0 and j['joined'] == 12")" = True ]; then
  pass "fanout: no loss, no order violation, no error ($(json "$TMP/fanout.json" "j['deliveries']") deliveries)"
else
  fail "fanout: $(head -c 900 "$TMP/fanout.json")"
fi
expect_rate=$(json "$TMP/fanout.json" "150 <= j['published_per_sec'] <= 220 and 900 <= j['deliveries_per_sec'] <= 1320")
[ "$expect_rate" = True ] && pass "fanout held about 200 published/s and 1200 deliveries/s" ||
  fail "fanout rates: $(json "$TMP/fanout.json" "(j['published_per_sec'], j['deliveries_per_sec'])")"
# Live delivery through the outage: every progress row well inside it has deliveries, and
# together at least half the scheduled 1200/s (a stalled machine may shift some to later rows).
outage_rows=$("$PY" - "$TMP/fanout.csv" $(((down_ms - start_ms) / 1000 + 1)) $(((up_ms - start_ms) / 1000 - 1)) <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
lo, hi = float(sys.argv[2]), float(sys.argv[3])
inside = [float(r["deliveries_per_sec"]) for r in rows if lo <= float(r["t"]) <= hi]
ok = len(inside) >= 5 and min(inside) > 0 and sum(inside) >= 0.5 * 1200 * len(inside)
print("yes" if ok else "no", len(inside), " ".join("%.0f" % v for v in inside))
EOF
)
read -r live n_rows rates <<<"${outage_rows:-no 0}"
[ "$live" = yes ] && pass "deliveries went on during the outage ($n_rows rows: $rates /s)" ||
  fail "deliveries during the outage: $n_rows rows: ${rates:-none} (CSV: $(head -3 "$TMP/fanout.csv" | tr '\n' ' '))"

# ------------------------------------------------------------------ Redis after the recovery
# The last message of each room went out at the end of the run, after the recovery: it must
# be the newest entry of the room's stream, and the room hash must point at it.
if [ -n "$recovered_ms" ] && [ "$recovered_ms" -lt "$end_ms" ]; then
  rooms=$(json "$TMP/fanout.json" "' '.join(r['room'] + ':' + str(r['last_offset']) for r in j['per_room'])")
  [ -n "$rooms" ] || fail "no per_room in the fanout summary"
  for entry in $rooms; do
    room=${entry%:*}
    last=${entry##*:}
    state=$(redis HMGET "weir:room:$room" epoch last | tr '\n' ' ')
    read -r epoch stored_last <<<"$state"
    newest=$(redis XREVRANGE "weir:history:$room:${epoch:-0}" + - COUNT 1 | head -1)
    length=$(redis XLEN "weir:history:$room:${epoch:-0}")
    redis XRANGE "weir:history:$room:${epoch:-0}" - + | grep -E '^[0-9]+-1$' >"$TMP/ids-$room"
    spans=$(ranges "$TMP/ids-$room")
    if [ "${stored_last:-}" = "$last" ] && [ "$newest" = "$last-1" ]; then
      pass "room $room: its last message (offset $last, after the recovery) is in Redis"
    else
      fail "room $room: last offset $last, weir:room {epoch last} = '$state', newest stream entry '$newest'"
    fi
    # The restarted Redis starts empty (no persistence): what it holds is what came after the
    # recovery, and none of that may be missing.
    if [[ "$spans" =~ ^([0-9]+)-$last$ ]] && [ "$length" -ge 100 ]; then
      pass "room $room: every message since the recovery is stored (offsets $spans)"
    else
      fail "room $room: stored offsets $spans, wanted one run ending at $last"
    fi
  done
else
  fail "no recovery before the fanout ended: nothing published after it to look for in Redis"
fi

grep -q "store redis: failing" "$TMP/weir.log" && grep -q "store redis: answering again" "$TMP/weir.log" &&
  pass "weir logged the outage and the recovery" ||
  echo "note weir's log has no outage/recovery lines: $(grep -i store "$TMP/weir.log" | tail -3)"

echo "$failures failures"
[ "$failures" -eq 0 ]
