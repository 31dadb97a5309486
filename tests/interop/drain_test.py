#!/usr/bin/env python3
"""Graceful drain on SIGTERM with real rooms clients (Debian's Python `websockets`).

Usage: drain_test.py BUILD_DIR

Starts BUILD_DIR/weir (--threads 2, --store memory, --drain-spread 2s, --drain-timeout 10s),
connects 50 members into 5 rooms and one publisher joined to all of them, which publishes with
its own message_ids and counts a message acknowledged when its own copy comes back (docs/
protocol.md: the sender's copy is its acknowledgement). While it publishes, SIGTERM. Checks:

- /readyz answers 503 during the drain (over a keep-alive connection opened before, which the
  drain keeps open until its response and then closes: Connection: close);
- new connections are refused while the drain goes on;
- every client, publisher included, gets close code 1001 with a JSON reason carrying a
  reconnect_after_ms hint, and the hints differ (jitter);
- the closes are spread over the drain spread (not all at once);
- every message acknowledged to the publisher was received by every member of its room, each
  member's offsets gap-free and without duplicates (nothing acknowledged is lost);
- the process exits 0 within drain-timeout + a margin, and logs the drain.

A second scenario checks that a drain with no WebSocket session is immediate, and a third that
--log-format json writes one JSON object per line with the session lifecycle (open, close with
code, reason, duration, bytes).

Prints one line per check; exits 1 on any failure.
"""
import asyncio
import http.client
import json
import os
import signal
import socket
import sys
import time

from weir_harness import (Checks, Weir, build_dir, connect, finish, join, message, note,
                          run_tests, websockets)

ROOMS = 5
MEMBERS_PER_ROOM = 10
SPREAD_S = 2.0
TIMEOUT_S = 10.0


class Client:
    """A rooms client that records every message, and its close code, reason and time."""

    def __init__(self, ws, session, name):
        self.ws, self.name = ws, name
        self.member_id = session["member_id"]
        self.received = {}  # room -> [(offset, message_id)]
        self.close_code = self.close_reason = self.closed_at = None
        self.task = None

    async def read(self, on_message=None):
        try:
            async for raw in self.ws:
                env = json.loads(raw)
                if "message" in env:
                    m = env["message"]
                    self.received.setdefault(m["target"], []).append((m["offset"], m["message_id"]))
                    if on_message:
                        on_message(m)
        except websockets.ConnectionClosed:
            pass
        self.closed_at = time.monotonic()
        self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason


def refused(port):
    """True when a TCP connect to the port is refused."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def readyz_over(conn):
    """(status, Connection header) of GET /readyz over an open keep-alive connection."""
    conn.request("GET", "/readyz")
    r = conn.getresponse()
    r.read()
    return r.status, (r.getheader("Connection") or "").lower()


async def test_drain_closes_everyone_with_1001_and_loses_nothing(build):
    weir = Weir(build, "--threads", "2", "--drain-spread", f"{SPREAD_S}s",
                "--drain-timeout", f"{TIMEOUT_S}s")
    c = Checks("drain")
    rooms = [f"drain-{r}" for r in range(ROOMS)]
    members = []
    for r, room in enumerate(rooms):
        for i in range(MEMBERS_PER_ROOM):
            ws, session = await connect(weir)
            await join(ws, room)
            members.append((room, Client(ws, session, f"{room}/{i}")))
    pws, psession = await connect(weir)
    publisher = Client(pws, psession, "publisher")
    for room in rooms:
        await join(pws, room)
    acked = {room: set() for room in rooms}

    def on_own_copy(m):
        if m["sender"] == publisher.member_id:
            acked[m["target"]].add(m["message_id"])

    for _, client in members:
        client.task = asyncio.create_task(client.read())
    publisher.task = asyncio.create_task(publisher.read(on_own_copy))

    probe = http.client.HTTPConnection("127.0.0.1", weir.port, timeout=5)
    c.check(readyz_over(probe)[0] == 200, "/readyz is 200 before the drain")

    sent = 0
    signalled_at = None
    sent_at_signal = None

    async def publish():
        nonlocal sent
        while True:
            room = rooms[sent % ROOMS]
            try:
                await pws.send(message(room, f"m{sent}", message_id=f"pub-{sent}"))
            except websockets.ConnectionClosed:
                return
            sent += 1
            await asyncio.sleep(0.004)

    publishing = asyncio.create_task(publish())
    await asyncio.sleep(0.6)
    os.kill(weir.pid, signal.SIGTERM)
    signalled_at = time.monotonic()
    sent_at_signal = sent
    await asyncio.sleep(0.2)

    status, connection = readyz_over(probe)
    c.check(status == 503 and connection == "close",
            f"/readyz is 503 during the drain, with Connection: close ({status}, {connection!r})")
    probe.close()
    c.check(refused(weir.port), "a new connection is refused during the drain")

    await asyncio.wait_for(publishing, TIMEOUT_S)
    everyone = [client for _, client in members] + [publisher]
    await asyncio.wait_for(asyncio.gather(*(cl.task for cl in everyone)), TIMEOUT_S)
    try:
        weir.proc.wait(TIMEOUT_S + 5)
    except Exception:
        pass
    exited_after = time.monotonic() - signalled_at
    c.check(weir.proc.returncode == 0,
            f"exit code 0 ({weir.proc.returncode}) after {exited_after:.1f}s")
    c.check(exited_after < TIMEOUT_S + 3, f"exits within drain-timeout + 3s ({exited_after:.1f}s)")

    # 1001 with the hint, for everyone.
    wrong = [(cl.name, cl.close_code, cl.close_reason) for cl in everyone if cl.close_code != 1001]
    c.check(not wrong, f"all {len(everyone)} clients closed with 1001 (others: {wrong[:5]})")
    hints = []
    for cl in everyone:
        try:
            reason = json.loads(cl.close_reason or "")
            hints.append(int(reason["reconnect_after_ms"]))
        except (ValueError, KeyError, TypeError):
            hints.append(None)
    bad = [cl.close_reason for cl, h in zip(everyone, hints) if h is None]
    c.check(not bad, f"every close reason is JSON with reconnect_after_ms (bad: {bad[:3]})")
    good = [h for h in hints if h is not None]
    c.check(good and all(0 <= h <= max(1000, SPREAD_S * 1000) for h in good)
            and len(set(good)) > len(good) // 2,
            f"hints within [0, spread] and jittered ({len(set(good))} distinct of {len(good)})")

    # Spread: closes over the drain spread, in many slices, none before the signal.
    offsets = sorted(cl.closed_at - signalled_at for cl in everyone)
    span = offsets[-1] - offsets[0]
    slots = {int(t * 10) for t in offsets}  # 100 ms slots
    note(f"closes from {offsets[0]:.2f}s to {offsets[-1]:.2f}s after SIGTERM, "
         f"in {len(slots)} slots of 100 ms")
    c.check(span >= 0.6 * SPREAD_S and offsets[-1] <= SPREAD_S + 1.5,
            f"closes spread over the drain spread ({span:.2f}s of {SPREAD_S}s)")
    c.check(len(slots) >= 8, f"closes in at least 8 distinct 100 ms slots ({len(slots)})")
    first_tenth = sum(1 for t in offsets if t - offsets[0] < SPREAD_S / 10)
    c.check(first_tenth <= len(offsets) // 4,
            f"not all at once: {first_tenth} of {len(offsets)} in the first tenth of the spread")

    # Nothing acknowledged is lost.
    total_acked = sum(len(a) for a in acked.values())
    note(f"sent {sent} ({sent_at_signal} before SIGTERM), acknowledged {total_acked}")
    c.check(total_acked >= 50, f"the publisher saw at least 50 acknowledgements ({total_acked})")
    lost, disorder = [], []
    for room, client in members:
        got = client.received.get(room, [])
        ids = {mid for _, mid in got}
        missing = acked[room] - ids
        if missing:
            lost.append((client.name, len(missing), sorted(missing)[:3]))
        offs = [o for o, _ in got]
        if offs and offs != list(range(offs[0], offs[0] + len(offs))):
            disorder.append((client.name, offs[:10]))
    c.check(not lost, f"every acknowledged message reached every member of its room "
                      f"(lost: {lost[:5]})")
    c.check(not disorder, f"every member's offsets are gap-free, no duplicate ({disorder[:3]})")

    log = weir.output()
    c.check("draining" in log and "drain done" in log, "the drain is logged")
    assert c.failed == 0, f"{c.failed} checks failed"


async def test_drain_without_sessions_is_immediate(build):
    weir = Weir(build, "--threads", "2", "--drain-spread", "5s", "--drain-timeout", "30s")
    assert weir.http("GET", "/healthz")[0] == 200
    started = time.monotonic()
    status = weir.stop(timeout=10)
    took = time.monotonic() - started
    assert status == 0, f"exit code {status}"
    assert took < 1.5, f"a drain with nothing to close took {took:.2f}s"


async def test_json_logs_have_one_object_per_lifecycle_event(build):
    weir = Weir(build, "--threads", "1", "--log-format", "json", "--drain-spread", "200ms")
    async with websockets.connect(weir.url("/echo"), ping_interval=None) as ws:
        for i in range(20):  # nothing per message at info
            await ws.send(f"m{i}")
            await ws.recv()
    await asyncio.sleep(0.2)
    assert weir.stop() == 0
    lines = [line for line in weir.output().splitlines() if line.strip()]
    objects = []
    for line in lines:
        try:
            objects.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not one JSON object per line: {line!r}")
    for o in objects:
        assert {"ts", "level", "msg"} <= o.keys(), f"ts, level and msg in every line: {o}"
    opens = [o for o in objects if o["msg"] == "ws open"]
    closes = [o for o in objects if o["msg"] == "ws close"]
    assert len(opens) == 1 and len(closes) == 1, f"one open and one close line: {objects}"
    o, cl = opens[0], closes[0]
    assert o["path"] == "/echo" and o["peer"].startswith("127.0.0.1:") and o["conn"] > 0, o
    assert cl["conn"] == o["conn"] and cl["code"] == 1000 and cl["closed_by"] == "peer", cl
    for key in ("reason", "duration_ms", "bytes_in", "bytes_out", "messages_in", "messages_out"):
        assert key in cl, f"{key} in the close line: {cl}"
    assert cl["messages_in"] == 20 and cl["messages_out"] == 20, cl
    assert len(objects) <= 8, f"no line per message: {len(objects)} lines"


if __name__ == "__main__":
    build = build_dir(__doc__)
    tests = [test_drain_closes_everyone_with_1001_and_loses_nothing,
             test_drain_without_sessions_is_immediate,
             test_json_logs_have_one_object_per_lifecycle_event]
    sys.exit(finish(len(tests), run_tests(tests, build, timeout=90)))
