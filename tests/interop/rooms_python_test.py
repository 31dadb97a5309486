#!/usr/bin/env python3
"""The rooms protocol with Python `websockets` clients against the weir binary.

Usage: rooms_python_test.py BUILD_DIR

Starts BUILD_DIR/weir (--threads 2) on a free port and checks, over real sockets: the session
frame, weir.v1 chosen when offered and plain JSON without a subprotocol (a GoAkt client), every
envelope and every error code (each leaving the connection open), the HTTP API (publish, inspect,
401/403/404/400), one gap-free total order per room with publishers and members spread over both
reactor threads (members joining mid-stream, leaving and rejoining), and thousands of
connect/join/disconnect cycles after which the room gauges are back to 0 and no descriptor
leaked. Each server is stopped by its PID. Prints one line per check; exits 1 on any failure.
"""
import asyncio
import json
import re
import sys
import time

from weir_harness import (Weir, build_dir, check, connect, expect, finish, join, message,
                          quiet, recv, run_tests, websockets)
import weir_harness

API_KEY = "interop-key-42"
LIMIT_FLAGS = ["--max-rooms-per-connection", "3", "--max-room-id-bytes", "16",
               "--max-content-bytes", "64"]


def bearer(key=API_KEY):
    return weir_harness.bearer(key)


# ---------------------------------------------------------------- envelopes


async def test_session_and_subprotocols(weir):
    v1, s1 = await connect(weir, subprotocols=["weir.v1"])
    plain, s2 = await connect(weir)  # a GoAkt client offers no subprotocol
    check(v1.subprotocol == "weir.v1", f"weir.v1 chosen when offered: {v1.subprotocol!r}")
    check(plain.subprotocol is None, f"no subprotocol when none offered: {plain.subprotocol!r}")
    for s in (s1, s2):
        check(re.fullmatch(re.escape(s["member_id"]) + r"\.[0-9]+\.[0-9a-f]{64}", s["token"]),
              f"a signed token <member_id>.<expires_ms>.<hmac>: {s}")
        check(s["member_id"] and s["rooms"] == [], f"member_id and no rooms: {s}")
    check(s1["member_id"] != s2["member_id"] and s1["token"] != s2["token"], "sessions differ")
    for ws in (v1, plain):
        await join(ws, "py-proto")
    await plain.send(message("py-proto", "from-plain"))
    await v1.send(message("py-proto", "from-v1"))
    # Two connections may sit on different threads, so the server may order the two
    # publishes either way; what it must do is give both members the same order.
    seen = []
    for ws in (v1, plain):
        seen.append([(await expect(ws, "message"))["content"] for _ in range(2)])
    check(sorted(seen[0]) == ["from-plain", "from-v1"], f"both clients see both: {seen}")
    check(seen[0] == seen[1], f"both clients see one order: {seen}")
    await v1.close()
    await plain.close()


async def test_join_message_leave(weir):
    a, sa = await connect(weir)
    b, _ = await connect(weir)
    ja = await join(a, "py-env")
    check(ja["offset"] == 0 and 0 < ja["epoch"] < 2**53, f"room_joined offset 0, an epoch: {ja}")
    jb = await join(b, "py-env")
    check(jb["epoch"] == ja["epoch"], "one epoch per room incarnation")
    await a.send(message("py-env", "hello"))
    for ws in (a, b):  # the sender gets its own message too
        m = await expect(ws, "message")
        check(m["target"] == "py-env" and m["content"] == "hello" and m["offset"] == 1
              and m["epoch"] == ja["epoch"] and m["sender"] == sa["member_id"], f"message: {m}")
        rfc3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
        check(m["message_id"] and re.fullmatch(rfc3339, m["sent_at"]),
              f"message_id and sent_at filled in: {m}")
        check("traceparent" not in m and "tracestate" not in m, f"no trace context invented: {m}")
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ts = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    await b.send(message("py-env", "traced", message_id="client-1", sent_at="2020-02-02T02:02:02Z",
                         traceparent=tp, tracestate=ts))
    for ws in (a, b):
        m = await expect(ws, "message")
        check(m["message_id"] == "client-1" and m["sent_at"] == "2020-02-02T02:02:02Z",
              f"given message_id and sent_at kept: {m}")
        check(m["traceparent"] == tp and m["tracestate"] == ts, f"trace context untouched: {m}")
    await b.send(json.dumps({"leave_room": {"room_id": "py-env"}}))
    check((await expect(b, "room_left")) == {"room_id": "py-env"}, "room_left")
    await a.send(message("py-env", "after"))
    check((await expect(a, "message"))["offset"] == 3, "the room goes on")
    check(await quiet(b) is None, "a member that left receives nothing more")
    c, _ = await connect(weir)
    check((await join(c, "py-env"))["offset"] == 3, "a late joiner learns the last offset")
    for ws in (a, b, c):
        await ws.close()


ERROR_CASES = [
    ("not json", "invalid_json"),
    ('{"join_room":{"room_id":"x"}', "invalid_json"),
    ('{"a":{},"b":{}}', "invalid_json"),
    ('{"shout":{"room_id":"x"}}', "unknown_envelope"),
    ('{"join_room":{}}', "missing_field"),
    ('{"message":{"target":"py-err"}}', "missing_field"),
    ('{"join_room":{"room_id":42}}', "invalid_field"),
    ('{"message":{"target":"py-err","content":["x"]}}', "invalid_field"),
    ('{"message":{"target":"elsewhere","content":"x"}}', "not_member"),
    ('{"leave_room":{"room_id":"elsewhere"}}', "not_member"),
    ('{"join_room":{"room_id":"sp ace"}}', "invalid_room_id"),
    ('{"join_room":{"room_id":"' + "r" * 17 + '"}}', "room_id_too_long"),
    ('{"message":{"target":"py-err","content":"' + "c" * 65 + '"}}', "content_too_large"),
    ('{"join_room":{"room_id":"py-err"}}', "already_member"),
    (b"\x00\x01binary", "unsupported_frame"),
    ('{"resume":{"token":"abc","rooms":{"py-err":{"offset":"3","epoch":"9"}}}}',
     "invalid_token"),
]


async def test_every_error_code_leaves_the_connection_open(weir):
    ws, _ = await connect(weir, subprotocols=["weir.v1"])
    await join(ws, "py-err")
    offset = 0
    for frame, code in ERROR_CASES:
        await ws.send(frame)
        err = await expect(ws, "error")
        check(err["code"] == code and err["message"] and "ref" in err,
              f"{frame!r} -> {code}: {err}")
        await ws.send(message("py-err", "still open"))
        offset += 1
        check((await expect(ws, "message"))["offset"] == offset, f"open after {code}")
    await join(ws, "r" * 16)  # exactly the limit
    await join(ws, "py-err-2")  # 3 rooms now
    await ws.send(json.dumps({"join_room": {"room_id": "py-err-3"}}))
    err = await expect(ws, "error")
    check(err["code"] == "too_many_rooms" and err["ref"] == "py-err-3", f"too_many_rooms: {err}")
    await ws.send(message("py-err", "c" * 64))
    check((await expect(ws, "message"))["content"] == "c" * 64, "content at the limit goes through")
    await ws.close()


async def test_http_api(weir):
    a, _ = await connect(weir)
    b, _ = await connect(weir)
    epoch = (await join(a, "py-api"))["epoch"]
    await join(b, "py-api")
    body = json.dumps({"content": "from the backend", "message_id": "be-1"})
    status, _, text = weir.http("POST", "/api/rooms/py-api/messages", body, bearer())
    check(status == 200 and json.loads(text) == {"offset": 1, "epoch": epoch},
          f"publish: {status} {text}")
    for ws in (a, b):
        m = await expect(ws, "message")
        check(m["content"] == "from the backend" and m["message_id"] == "be-1" and m["offset"] == 1,
              f"members receive the API's message: {m}")
    status, _, text = weir.http("POST", "/api/rooms/py-api/messages", json.dumps({"content": "2"}),
                                {"X-API-Key": API_KEY})
    check(status == 200 and json.loads(text)["offset"] == 2, f"X-API-Key works: {status} {text}")
    for ws in (a, b):
        check((await expect(ws, "message"))["message_id"], "a message_id is generated")
    status, _, text = weir.http("GET", "/api/rooms/py-api", headers=bearer())
    info = json.loads(text) if status == 200 else {}
    check(info.get("members") == 2 and info.get("last_offset") == 2 and info.get("epoch") == epoch,
          f"GET room: {status} {text}")
    for headers in ({}, bearer("wrong"), bearer(API_KEY[:-1] + "x"), {"X-API-Key": "nope"}):
        status, hdrs, _ = weir.http("POST", "/api/rooms/py-api/messages", '{"content":"x"}',
                                    headers)
        check(status == 401 and "WWW-Authenticate" in hdrs, f"401 with {headers}: {status}")
        check(weir.http("GET", "/api/rooms/py-api", headers=headers)[0] == 401,
              f"GET 401 with {headers}")
    check(weir.http("POST", "/api/rooms/py-nobody/messages", '{"content":"x"}', bearer())[0] == 404,
          "404 publishing to a room without members")
    check(weir.http("GET", "/api/rooms/py-nobody", headers=bearer())[0] == 404,
          "404 inspecting one")
    for bad in ("nope", '{"content":1}', "{}", '{"content":"x"'):
        status = weir.http("POST", "/api/rooms/py-api/messages", bad, bearer())[0]
        check(status == 400, f"400 for body {bad!r}: {status}")
    for path in ("/api/rooms/sp%20ace/messages", "/api/rooms/" + "r" * 17 + "/messages"):
        status = weir.http("POST", path, '{"content":"x"}', bearer())[0]
        check(status == 400, f"400 for {path}: {status}")
    check(await quiet(a) is None, "refused requests published nothing")
    await a.close()
    await b.close()
    bare = Weir(weir.build, "--threads", "1")
    try:
        ws, _ = await connect(bare)
        await join(ws, "py-api")
        status = bare.http("POST", "/api/rooms/py-api/messages", '{"content":"x"}', bearer())[0]
        check(status == 403, f"403 when weir runs without --api-key: {status}")
        check(bare.http("GET", "/api/rooms/py-api", headers=bearer())[0] == 403, "GET 403 too")
        await ws.close()
    finally:
        status = bare.stop()
    check(status == 0, f"the second weir exited with {status}: {bare.output()[-2000:]}")


# ---------------------------------------------------------------- total order


class Reader:
    """A member that records (room, offset, content) and room_joined/room_left, until it has
    seen `ends` messages whose content starts with 'end'."""

    def __init__(self, ws, ends):
        self.ws, self.ends, self.log = ws, ends, []

    async def run(self):
        seen = 0
        while seen < self.ends:
            env = await recv(self.ws, timeout=10)
            kind, body = next(iter(env.items()))
            if kind == "message":
                self.log.append(("message", body["target"], body["offset"], body["content"]))
                seen += body["content"].startswith("end")
            else:
                self.log.append((kind, body.get("room_id"), body.get("offset"), None))

    def offsets(self, room):
        return [o for kind, r, o, _ in self.log if kind == "message" and r == room]


def contiguous(offsets, first):
    return offsets == list(range(first, first + len(offsets)))


async def publish(ws, room, tag, count, gates):
    """Sends `count` messages in len(gates) + 1 parts, waiting for each gate between parts."""
    parts = len(gates) + 1
    for i in range(count):
        if i and i % (count // parts) == 0 and i // (count // parts) <= len(gates):
            await gates[i // (count // parts) - 1].wait()
        await ws.send(message(room, f"{tag}-{i}"))
        if i % 10 == 9:
            await asyncio.sleep(0.002)
    await ws.send(message(room, f"end-{tag}"))


async def test_total_order_across_threads(weir):
    rooms, per_room, publishers, count = ["py-order-a", "py-order-b"], 10, 3, 300
    members = {r: [] for r in rooms}
    for r in rooms:
        for _ in range(per_room):
            ws, _ = await connect(weir)
            check((await join(ws, r))["offset"] == 0, "joined before any message")
            members[r].append(ws)
    readers = {r: [Reader(ws, publishers) for ws in members[r]] for r in rooms}
    tasks = [asyncio.create_task(rd.run()) for r in rooms for rd in readers[r]]
    # Publishers are members too, spread over connections (and so over both threads). Their
    # second and third parts wait for the late joiners and for the leavers: both mid-stream.
    gates = [asyncio.Event(), asyncio.Event()]
    pubs = [asyncio.create_task(publish(members[r][i], r, f"{r}-p{i}", count, gates))
            for r in rooms for i in range(publishers)]
    await asyncio.sleep(0.05)
    late = []
    for r in rooms:
        for _ in range(3):
            ws, _ = await connect(weir)
            joined = await join(ws, r)
            rd = Reader(ws, publishers)
            late.append((r, joined["offset"], rd))
            tasks.append(asyncio.create_task(rd.run()))
    gates[0].set()
    leavers = {}
    for r in rooms:  # joins, gets a message or two, leaves, rejoins
        ws, _ = await connect(weir)
        first = await join(ws, r)
        before = []
        try:
            before.append((await expect(ws, "message", timeout=0.3))["offset"])
        except asyncio.TimeoutError:
            pass
        await ws.send(json.dumps({"leave_room": {"room_id": r}}))
        while True:
            kind, body = next(iter((await recv(ws)).items()))
            if kind == "room_left":
                break
            before.append(body["offset"])
        again = await join(ws, r)
        rd = Reader(ws, publishers)
        leavers[r] = (first["offset"], before, again["offset"], rd)
        tasks.append(asyncio.create_task(rd.run()))
    gates[1].set()
    await asyncio.wait_for(asyncio.gather(*pubs), 30)
    all_readers = [rd for r in rooms for rd in readers[r]]
    all_readers += [rd for _, _, rd in late] + [v[3] for v in leavers.values()]
    done, pending = await asyncio.wait(tasks, timeout=15)
    late_at = [j for _, j, _ in late]
    check(not pending, f"{len(pending)} members never saw every publisher's end; late joins at "
          f"{late_at}, leavers {[(v[0], len(v[1]), v[2]) for v in leavers.values()]}")
    failed = [(i, t.exception(), len(rd.log)) for i, (t, rd) in enumerate(zip(tasks, all_readers))
              if t.exception()]
    check(not failed, f"members that stopped short: {failed[:5]}; late joins at {late_at}")

    total = publishers * (count + 1)
    for r in rooms:
        ref = [(o, c) for kind, rr, o, c in readers[r][0].log if kind == "message"]
        check(len(ref) == total and contiguous([o for o, _ in ref], 1), f"{r}: offsets 1..{total}")
        for rd in readers[r]:
            got = [(o, c) for kind, rr, o, c in rd.log if kind == "message"]
            check(got == ref, f"{r}: every member sees the same sequence")
        for i in range(publishers):  # each publisher's own order is kept
            tag = f"{r}-p{i}-"
            mine = [int(c[len(tag):]) for _, c in ref if c.startswith(tag)]
            check(mine == list(range(count)), f"{r}: publisher {i}'s messages in its order")
        for rr, j, rd in late:
            if rr != r:
                continue
            got = rd.offsets(r)
            check(0 < j < total - publishers, f"{r}: a late joiner joined mid-stream (offset {j})")
            check(got == list(range(j + 1, total + 1)),
                  f"{r}: a late joiner gets {j + 1}.. with no gap")
        j1, before, j2, rd = leavers[r]
        check(contiguous(before, j1 + 1), f"{r}: before leaving, {j1 + 1}.. with no gap")
        check(j2 >= j1 + len(before), f"{r}: rejoined at {j2}, after what it got")
        check(rd.offsets(r) == list(range(j2 + 1, total + 1)),
              f"{r}: after rejoining, {j2 + 1}.. no gap")
    for r in rooms:
        for ws in members[r]:
            await ws.close()
    for _, _, rd in late:
        await rd.ws.close()
    for *_, rd in leavers.values():
        await rd.ws.close()


# ---------------------------------------------------------------- churn


async def churn_cycle(weir, i, epochs):
    ws, _ = await connect(weir)
    room = f"py-churn-{i % 10}"
    kind = i % 4
    if kind == 0:  # join, then the close handshake
        j = await join(ws, room, True)
        await ws.close()
    elif kind == 1:  # join, leave, rejoin, then TCP close without a close frame
        await join(ws, room, True)
        await ws.send(json.dumps({"leave_room": {"room_id": room}}))
        while "room_left" not in await recv(ws):
            pass
        j = await join(ws, room, True)
        ws.transport.abort()
    elif kind == 2:  # the join still in flight when the connection drops
        await ws.send(json.dumps({"join_room": {"room_id": room}}))
        ws.transport.abort()
        j = None
    else:  # several rooms and a message, then a drop
        j = await join(ws, room, True)
        await join(ws, f"py-churn-x{i % 3}", True)
        await ws.send(message(room, "bye"))
        ws.transport.abort()
    if j and room == "py-churn-0":
        epochs.add(j["epoch"])


async def test_churn_leaves_nothing_behind(weir):
    fds_before = weir.descriptors()
    epochs, cycles, parallel = set(), 3000, 24
    sem = asyncio.Semaphore(parallel)

    async def one(i):
        async with sem:
            try:
                await churn_cycle(weir, i, epochs)
            except (websockets.ConnectionClosed, asyncio.TimeoutError):
                pass  # another member's "bye" can race our own frames; the cycle still ran

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(cycles)))
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = (weir.metric("weir_rooms"), weir.metric("weir_room_memberships"),
                 weir.descriptors())
        if state[0] == 0 and state[1] == 0 and state[2] <= fds_before:
            break
        await asyncio.sleep(0.1)
    check(state[0] == 0,
          f"weir_rooms back to 0 after {cycles} cycles in {elapsed:.1f}s: {state[0]}")
    check(state[1] == 0, f"weir_room_memberships back to 0: {state[1]}")
    check(state[2] <= fds_before, f"no descriptor leak: {state[2]} open, {fds_before} before")
    check(epochs, "py-churn-0 was joined")
    ws, _ = await connect(weir)
    j = await join(ws, "py-churn-0")
    # With a store (the default) a room keeps its epoch and offsets while it empties and fills.
    check(len(set(epochs)) == 1 and j["epoch"] in epochs,
          f"the room kept one epoch through the churn and after it: {j}, {sorted(set(epochs))}")
    await ws.close()


TESTS = [test_session_and_subprotocols, test_join_message_leave,
         test_every_error_code_leaves_the_connection_open, test_http_api,
         test_total_order_across_threads, test_churn_leaves_nothing_behind]


def main():
    build = build_dir(__doc__)
    weir = Weir(build, "--threads", "2", "--api-key", API_KEY, *LIMIT_FLAGS)
    try:
        failed = run_tests(TESTS, weir, timeout=60)
    finally:
        status = weir.stop()
    if status != 0:
        failed += 1
        print(f"FAIL weir exited with status {status} after SIGTERM")
    if failed:
        print(weir.output()[-3000:])
    return finish(len(TESTS), failed)


if __name__ == "__main__":
    sys.exit(main())
