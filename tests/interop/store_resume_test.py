#!/usr/bin/env python3
"""Session resume, replay, durability, dedupe and rate limits, end to end against the weir binary.

Usage: store_resume_test.py [BUILD_DIR]   (default: build)

Each test starts its own BUILD_DIR/weir on a free port (stores and key files in a temporary
folder) and stops it by its PID: SIGTERM, or SIGKILL where the test is about a crash.
- resume after a disconnect mid-stream (memory store): with a `resume` frame naming the room's
  offset and epoch, with `/ws?resume=TOKEN`, and with a `resume` frame naming no rooms: the
  session comes back (same token and member_id), then `resumed` (recovered, the room's last
  offset L, its epoch), then exactly the messages after the client's offset up to L, then live
  ones: no gap, no duplicate, same contents, while a publisher keeps publishing; a replay of the
  default --replay-limit larger than --max-buffer arrives whole (paced, not dropped);
- a room keeps its epoch and last offset when its last member leaves (with and without
  messages);
- a SIGTERM restart with `--store sqlite:` keeps the history, the room's epoch and offsets and
  the session (a fixed --session-secret-file): the old client gets exactly what it missed;
- SIGKILL with `--durability sync`: every message whose sender got its own copy back is replayed
  after the restart, in order, none twice; with async durability what is replayed is an in-order,
  duplicate-free prefix of what was acknowledged, and what is lost was acknowledged within the
  last second before the kill (the number lost is printed);
- recovered:false when the epoch differs, when retention trimmed the history (memory and sqlite),
  and when --replay-limit cut the replay (then the newest messages are replayed);
- dedupe of a client-given message_id (over /ws, across senders, and over the HTTP API);
- --rate-limit: a burst past it is refused with rate_limited and retry_after_ms, nobody else is
  affected, and a flood is closed with 1008 "rate limit exceeded"; --room-rate-limit counts
  every publisher of the room and no other room;
- sync durability with the store down (a redis-server stopped by PID): nothing unstored is
  delivered, the sender gets store_unavailable, the API 503, /readyz and /metrics say so, and
  delivery resumes when the store is back;
- tokens: garbage, tampered, signed with another server's key -> invalid_token; a restart of a
  memory store -> session_not_found; past --session-ttl -> session_expired.
Prints one line per test; exits 1 on any failure. The contract: /work/spec/store_spec.md.
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

from weir_harness import (RedisServer, Weir, bearer, brief, build_dir, check, collect, connect,
                          expect, finish, frames_until_closed, join, message, note, quiet, recv,
                          run_tests, websockets)

BUILD = "build"
TMP = None  # a temporary folder for the stores and key files of this run
API_KEY = "store-key"


# ---------------------------------------------------------------- helpers


def resume_frame(token, rooms=None):
    """A resume envelope; rooms maps a room id to (offset, epoch); None leaves `rooms` out."""
    body = {"token": token}
    if rooms is not None:
        body["rooms"] = {r: {"offset": o, "epoch": e} for r, (o, e) in rooms.items()}
    return json.dumps({"resume": body})


def path(name):
    return os.path.join(TMP, name)


def ids(bodies):
    return [m["message_id"] for m in bodies]


def offsets(bodies):
    return [m["offset"] for m in bodies]


def content(message_id, pad=0):
    return f"{message_id}:{'x' * pad}" if pad else message_id


def stopped_cleanly(weir):
    status = weir.stop()
    check(status == 0, f"weir exits 0 on SIGTERM: {status}")


class Publisher:
    """A member that sends messages whose message_id is "<tag>-<n>" (n from 1) and content the
    same (padded with `pad` bytes), and records its own copies as they come back: the
    acknowledgements, with their arrival times."""

    def __init__(self, ws, room, tag, pad=0):
        self.ws, self.room, self.tag, self.pad = ws, room, tag, pad
        self.sent = []  # message ids, in sending order
        self.acks = []  # (offset, message_id, epoch, monotonic time)
        self.others = []  # every other envelope
        self.progress = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                env = json.loads(raw)
                m = env.get("message")
                if m and m["target"] == self.room and m["message_id"].startswith(self.tag + "-"):
                    self.acks.append((m["offset"], m["message_id"], m["epoch"], time.monotonic()))
                else:
                    self.others.append(env)
                self.progress.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.progress.set()

    def acked(self):
        return [(o, i) for o, i, _, _ in self.acks]

    async def send(self, count, gap=0.0):
        for _ in range(count):
            mid = f"{self.tag}-{len(self.sent) + 1}"
            self.sent.append(mid)
            await self.ws.send(message(self.room, content(mid, self.pad), message_id=mid))
            if gap:
                await asyncio.sleep(gap)

    async def wait_acked(self, count, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.acks) < count:
            self.progress.clear()
            if len(self.acks) >= count:
                break
            left = deadline - time.monotonic()
            check(left > 0 and not self.reader.done(),
                  f"{self.tag}: {len(self.acks)} of {count} acknowledged after {timeout}s "
                  f"(sent {len(self.sent)}; other frames {self.others[-3:]})")
            try:
                await asyncio.wait_for(self.progress.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def flood(self, window, stop):
        """Sends as fast as its copies come back (at most `window` unacknowledged) until `stop`
        is set or the connection ends."""
        try:
            while not stop.is_set() and not self.reader.done():
                self.progress.clear()
                if len(self.sent) - len(self.acks) < window:
                    await self.send(1)
                    continue
                try:
                    await asyncio.wait_for(self.progress.wait(), 1)
                except asyncio.TimeoutError:
                    pass
        except websockets.ConnectionClosed:
            pass


async def read_resume(ws, rooms, timeout=3, settle=0.0):
    """What answers a resume: the session frame, then per room `resumed` and its replay. `rooms`
    maps each room to the offset the client resumes from. Returns (session, {room: resumed},
    {room: [message bodies]}, [other envelopes]) once every room has its `resumed` and every
    recovered room's messages reached the resumed offset; then reads on until nothing arrived for
    `settle` seconds. An error envelope ends it early (the caller checks)."""
    env = await recv(ws, timeout, "the session frame answering the resume")
    check("session" in env, f"a resume is answered by a session frame first: got {env}")
    session, resumed, msgs, others = env["session"], {}, {r: [] for r in rooms}, []

    def pending():
        out = []
        for r, k in rooms.items():
            res = resumed.get(r)
            if res is None:
                out.append(r)
            elif res.get("recovered") and res["offset"] > k and (
                    not msgs[r] or msgs[r][-1]["offset"] < res["offset"]):
                out.append(r)
        return out

    def waiting():
        return "; ".join(f"{r}: resumed {resumed.get(r)}, got {brief(msgs[r])}"
                         for r in pending())

    def take(env):
        if "resumed" in env:
            r = env["resumed"].get("room_id")
            check(r in rooms and r not in resumed, f"an unexpected resumed frame: {env} "
                  f"(resuming {list(rooms)}, have {list(resumed)})")
            resumed[r] = env["resumed"]
        elif "message" in env:
            r = env["message"]["target"]
            check(r in resumed, f"a message of {r} before its resumed frame: {env}")
            msgs[r].append(env["message"])
        else:
            others.append(env)

    while pending():
        env = await recv(ws, timeout, lambda: f"the resume's answer ({waiting()})")
        take(env)
        if "error" in env:
            return session, resumed, msgs, others
    while settle:
        raw = await quiet(ws, settle)
        if raw is None:
            break
        take(json.loads(raw))
    return session, resumed, msgs, others


def check_resumed(res, room, recovered, offset, epoch):
    want = {"room_id": room, "recovered": recovered, "offset": offset, "epoch": epoch}
    got = {k: res.get(k) for k in want} if res else None
    check(got == want, f"resumed for {room}: expected {want}, got {res}")


def check_exact(bodies, first, want_ids, what):
    """bodies are the messages with offsets first, first+1, ... and exactly the ids want_ids."""
    got = list(zip(offsets(bodies), ids(bodies)))
    want = list(zip(range(first, first + len(want_ids)), want_ids))
    if got != want:
        diff = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got),
                                                                                 len(want)))
        raise AssertionError(
            f"{what}: expected {len(want)} messages {want[:1]}..{want[-1:]}, got {len(got)}; "
            f"first difference at #{diff}: got {got[diff:diff + 3]}, expected "
            f"{want[diff:diff + 3]}")
    for m in bodies:
        check(m["content"].split(":")[0] == m["message_id"], f"{what}: content kept: {m}")


async def read_until_id(ws, last_id, room, timeout=5):
    """The messages of `room` until the one with message_id last_id (included)."""
    got = []
    while not got or got[-1]["message_id"] != last_id:
        env = await recv(ws, timeout, lambda: f"{last_id} (got {brief(got)})")
        if "message" not in env or env["message"]["target"] != room:
            raise AssertionError(f"only messages of {room}, got {env} after {brief(got)}")
        got.append(env["message"])
    return got


async def wait_members(weir, room, count, timeout=3):
    """Waits until the HTTP API counts `count` members in `room` (0: the room is gone or empty),
    so a dropped connection has been noticed."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = weir.http("GET", f"/api/rooms/{room}", headers=bearer(API_KEY))
        members = json.loads(body).get("members", 0) if status == 200 else 0
        if members == count:
            return
        check(time.monotonic() < deadline, f"{room} still has {members} members, not {count}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- a, b: resume after a disconnect


async def test_a_resume_frame_after_disconnect_mid_stream():
    with Weir(BUILD, "--threads", "2") as weir:
        room, k, total = "ra", 4, 200
        a, sa = await connect(weir)
        ja = await join(a, room)
        p, _ = await connect(weir)
        await join(p, room)
        pub = Publisher(p, room, "ra")
        await pub.send(10)
        check_exact(await collect(a, k), ja["offset"] + 1, pub.sent[:k], "A before leaving")
        await a.close()  # with 6 more already on their way to it
        # The publisher goes on at ~400/s, before, during and after A comes back.
        publishing = asyncio.create_task(pub.send(total - 10, gap=0.0025))
        await pub.wait_acked(40)
        a2, s2 = await connect(weir)
        check(s2["token"] != sa["token"], "a new connection starts a new session")
        await a2.send(resume_frame(sa["token"], {room: (ja["offset"] + k, ja["epoch"])}))
        session, resumed, msgs, others = await read_resume(a2, {room: ja["offset"] + k})
        check(not others, f"nothing but the session, resumed and messages: {others}")
        check(session["token"] == sa["token"] and session["member_id"] == sa["member_id"],
              f"the session frame carries the resumed token and member_id: sent resume for "
              f"{sa}, got {session}")
        res = resumed[room]
        check(ja["offset"] + 40 <= res["offset"] <= ja["offset"] + total,
              f"resumed at the room's last offset (>= the 40 acknowledged): {res}")
        check_resumed(res, room, True, res["offset"], ja["epoch"])
        await asyncio.wait_for(publishing, 10)
        got = msgs[room] + await read_until_id(a2, pub.sent[-1], room)
        check_exact(got, ja["offset"] + k + 1, pub.sent[k:],
                    f"after resuming from {ja['offset'] + k} (resumed at {res['offset']})")
        extra = await quiet(a2, 0.3)
        check(extra is None, f"nothing after the last message: {extra}")
        await pub.wait_acked(total)
        check_exact([{"offset": o, "message_id": i, "content": i} for o, i in pub.acked()],
                    ja["offset"] + 1, pub.sent, "the publisher's own copies")
        for ws in (a2, p):
            await ws.close()
        stopped_cleanly(weir)


async def test_b_resume_by_query_string():
    with Weir(BUILD, "--threads", "2", "--api-key", API_KEY) as weir:
        rooms = ["rb1", "rb2"]
        a, sa = await connect(weir)
        joined = {r: await join(a, r) for r in rooms}
        pubs = {}
        for r in rooms:  # a publisher per room
            ws, _ = await connect(weir)
            await join(ws, r)
            pubs[r] = Publisher(ws, r, r)
            await pubs[r].send(5)
        got = await collect(a, 10)
        for r in rooms:
            check_exact([m for m in got if m["target"] == r], joined[r]["offset"] + 1,
                        pubs[r].sent, f"A in {r} before dropping")
            await pubs[r].wait_acked(5)
        a.transport.abort()  # TCP gone without a close frame, with nothing unread
        for r in rooms:
            await wait_members(weir, r, 1)  # the server noticed
            await pubs[r].send(5)
            await pubs[r].wait_acked(10)
        a2, session = await connect(weir, path=f"/ws?resume={sa['token']}")
        check(session["token"] == sa["token"] and session["member_id"] == sa["member_id"],
              f"/ws?resume=TOKEN: the first frame is the resumed session: had {sa}, "
              f"got {session}")
        # The rooms and offsets are the server's record: what it had sent A when A dropped.
        resumed, msgs = {}, {r: [] for r in rooms}
        while len(resumed) < 2 or any(len(msgs[r]) < 5 for r in rooms):
            env = await recv(a2, 3, lambda: f"resumed + 5 replayed per room (have "
                             f"{list(resumed)}, { {r: brief(msgs[r]) for r in rooms} })")
            check("resumed" in env or "message" in env, f"expected resumed or message: {env}")
            if "resumed" in env:
                resumed[env["resumed"]["room_id"]] = env["resumed"]
            else:
                r = env["message"]["target"]
                check(r in resumed, f"a message of {r} before its resumed frame: {env}")
                msgs[r].append(env["message"])
        for r in rooms:
            k = joined[r]["offset"] + 5
            check_resumed(resumed.get(r), r, True, k + 5, joined[r]["epoch"])
            check_exact(msgs[r], k + 1, pubs[r].sent[5:10], f"{r} replayed")
        for r in rooms:
            await pubs[r].send(1)
        live = await collect(a2, 2)
        for r in rooms:
            check_exact([m for m in live if m["target"] == r], joined[r]["offset"] + 11,
                        pubs[r].sent[10:], f"{r} live")
        extra = await quiet(a2, 0.3)
        check(extra is None, f"nothing more: {extra}")
        await a2.close()
        stopped_cleanly(weir)


async def test_b_resume_frame_without_rooms():
    with Weir(BUILD, "--api-key", API_KEY) as weir:
        room = "rb3"
        a, sa = await connect(weir)
        ja = await join(a, room)
        p, _ = await connect(weir)
        await join(p, room)
        pub = Publisher(p, room, "rb3")
        await pub.send(3)
        check_exact(await collect(a, 3), ja["offset"] + 1, pub.sent, "A before leaving")
        await a.close()
        await wait_members(weir, room, 1)
        await pub.send(4)
        await pub.wait_acked(7)
        a2, _ = await connect(weir)
        await a2.send(resume_frame(sa["token"]))  # no rooms: the server's record of them
        session, resumed, msgs, others = await read_resume(a2, {room: ja["offset"] + 3})
        check(session["member_id"] == sa["member_id"] and not others,
              f"resumed session {session}, other frames {others}")
        check_resumed(resumed[room], room, True, ja["offset"] + 7, ja["epoch"])
        check_exact(msgs[room], ja["offset"] + 4, pub.sent[3:], "replayed")
        await pub.send(1)
        check_exact(await collect(a2, 1), ja["offset"] + 8, pub.sent[7:], "live")
        await a2.close()
        stopped_cleanly(weir)


async def test_a_replay_larger_than_max_buffer():
    # With the default flags, a replay of --replay-limit (1000) messages of 5 KiB is more than
    # --max-buffer (4 MiB): it has to be paced by what the connection drains, not dropped.
    with Weir(BUILD) as weir:
        room = "rm"
        a, sa = await connect(weir)
        ja = await join(a, room)
        p, _ = await connect(weir)
        await join(p, room)
        await a.close()
        pub = Publisher(p, room, "rm", pad=5000)
        for n in range(50, 1001, 50):  # the publisher reads its copies as it goes: not slow
            await pub.send(50)
            await pub.wait_acked(n)
        a2, _ = await connect(weir)
        await a2.send(resume_frame(sa["token"], {room: (ja["offset"], ja["epoch"])}))
        try:
            session, resumed, msgs, others = await read_resume(a2, {room: ja["offset"]})
        except websockets.ConnectionClosed as e:
            raise AssertionError(f"resuming 1000 messages of 5 KiB (default flags): the "
                                 f"connection was dropped ({e}): "
                                 f"{weir.output().splitlines()[-1:]}") from None
        check(not others, f"other frames: {others}")
        check_resumed(resumed[room], room, True, ja["offset"] + 1000, ja["epoch"])
        check_exact(msgs[room], ja["offset"] + 1, pub.sent, "replayed")
        for ws in (a2, p):
            await ws.close()
        stopped_cleanly(weir)


async def rejoin_after_last_member_left(messages):
    with Weir(BUILD) as weir:
        room = f"rl{messages}"
        a, sa = await connect(weir)
        ja = await join(a, room)
        for i in range(messages):
            await a.send(message(room, f"rl-{i}"))
        await collect(a, messages)
        await a.send(json.dumps({"leave_room": {"room_id": room}}))
        check((await expect(a, "room_left")) == {"room_id": room}, "room_left")
        b, _ = await connect(weir)
        jb = await join(b, room)
        check(jb["epoch"] == ja["epoch"] and jb["offset"] == ja["offset"] + messages,
              f"after {messages} messages and the last member leaving, a join continues the "
              f"room: before {ja}, after {jb}")
        await b.send(message(room, "after"))
        m = await expect(b, "message")
        check(m["offset"] == ja["offset"] + messages + 1 and m["epoch"] == ja["epoch"],
              f"and its offsets: {m}")
        await a.send(resume_frame(sa["token"], {room: (ja["offset"] + messages, ja["epoch"])}))
        session, resumed, msgs, others = await read_resume(a, {room: ja["offset"] + messages})
        check(not others, f"other frames: {others}")
        check_resumed(resumed[room], room, True, m["offset"], ja["epoch"])
        check(offsets(msgs[room]) == [m["offset"]], f"replayed: {brief(msgs[room])}")
        for ws in (a, b):
            await ws.close()
        stopped_cleanly(weir)


async def test_room_keeps_epoch_and_offset_after_its_last_member_left():
    await rejoin_after_last_member_left(3)


async def test_room_without_messages_keeps_its_epoch_after_its_last_member_left():
    await rejoin_after_last_member_left(0)


# ---------------------------------------------------------------- c, d, e: restarts


async def test_c_sigterm_restart_keeps_history_sqlite():
    flags = ["--store", f"sqlite:{path('c.db')}", "--session-secret-file", path("c.key")]
    with Weir(BUILD, *flags) as weir:
        room = "rc"
        a, sa = await connect(weir)
        ja = await join(a, room)
        p, _ = await connect(weir)
        await join(p, room)
        pub = Publisher(p, room, "rc")
        await pub.send(5)
        await pub.wait_acked(5)
        check_exact(await collect(a, 3), ja["offset"] + 1, pub.sent[:3], "A before the restart")
        k = ja["offset"] + 3  # A has processed 3 of the 5
        status = weir.restart()  # SIGTERM, then the same flags again
        check(status == 0, f"weir exits 0 on SIGTERM: {status}")
        p2, _ = await connect(weir)
        j2 = await join(p2, room)
        check(j2["epoch"] == ja["epoch"] and j2["offset"] == ja["offset"] + 5,
              f"the room keeps its epoch and last offset over a restart: before {ja} + 5 "
              f"messages, after {j2}")
        pub2 = Publisher(p2, room, "rc2")
        await pub2.send(5)
        await pub2.wait_acked(5)
        check([(o, e) for o, _, e, _ in pub2.acks] ==
              [(ja["offset"] + 5 + i, ja["epoch"]) for i in range(1, 6)],
              f"offsets go on after the restart in the same epoch: {pub2.acks}")
        a2, _ = await connect(weir)
        await a2.send(resume_frame(sa["token"], {room: (k, ja["epoch"])}))
        session, resumed, msgs, others = await read_resume(a2, {room: k})
        check(not others, f"resume answered with {others}")
        check(session["token"] == sa["token"] and session["member_id"] == sa["member_id"],
              f"the session survives the restart: had {sa}, got {session}")
        check_resumed(resumed[room], room, True, ja["offset"] + 10, ja["epoch"])
        check_exact(msgs[room], k + 1, pub.sent[3:] + pub2.sent, "replayed across the restart")
        extra = await quiet(a2, 0.3)
        check(extra is None, f"nothing after the replay: {extra}")
        for ws in (a2, p2):
            await ws.close()
        stopped_cleanly(weir)


async def flood_then_kill(weir, room, tag, window, seconds):
    """A publisher floods `room` (window in flight) for `seconds`; weir is SIGKILLed mid-stream.
    Returns (the publisher, its join, the kill's monotonic time)."""
    p, _ = await connect(weir)
    joined = await join(p, room)
    pub = Publisher(p, room, tag)
    stop = asyncio.Event()
    flooding = asyncio.create_task(pub.flood(window, stop))
    await asyncio.sleep(seconds)
    check(len(pub.acks) > 50 and not flooding.done(),
          f"the publisher is mid-stream: {len(pub.acks)} acknowledged, other frames "
          f"{pub.others[-3:]}")
    killed_at = time.monotonic()  # acks read after it had arrived before it
    status = weir.kill()
    check(status == -9, f"killed by SIGKILL: {status}")
    await asyncio.wait_for(flooding, 5)
    await asyncio.wait_for(pub.reader, 5)
    stop.set()
    return pub, joined, killed_at


async def join_and_resume(weir, room, joined_before, replay_timeout=10):
    """After a restart: a fresh member joins `room` (the room continues the stored epoch and
    offsets), leaves, and a new connection resumes its session from the offset of
    `joined_before`. Returns (the join after the restart, resumed, replayed bodies)."""
    c1, s1 = await connect(weir)
    j1 = await join(c1, room)
    await c1.close()
    c2, _ = await connect(weir)
    await c2.send(resume_frame(s1["token"], {room: (joined_before["offset"],
                                                    joined_before["epoch"])}))
    session, resumed, msgs, others = await read_resume(c2, {room: joined_before["offset"]},
                                                       timeout=replay_timeout)
    check(not others and room in resumed,
          f"resuming {s1} from {joined_before}: resumed {resumed}, other frames {others}")
    await c2.close()
    return j1, resumed[room], msgs[room]


def check_replay_prefix(replay, acked, sent, what):
    """The replay is in order, duplicate-free, and equal to the acknowledged messages followed
    by unacknowledged ones in sending order, cut anywhere. Returns how many acked it holds."""
    got_ids = ids(replay)
    check(len(set(got_ids)) == len(got_ids), f"{what}: a message replayed twice")
    offs = offsets(replay)
    check(all(x < y for x, y in zip(offs, offs[1:])), f"{what}: offsets not increasing")
    n = min(len(replay), len(acked))
    pairs = list(zip(offs, got_ids))
    if pairs[:n] != acked[:n]:
        diff = next(i for i in range(n) if pairs[i] != acked[i])
        raise AssertionError(f"{what}: replay #{diff} is {pairs[diff:diff + 3]}, acknowledged "
                             f"{acked[diff:diff + 3]}")
    tail = got_ids[len(acked):]
    check(tail == sent[len(acked):len(acked) + len(tail)],
          f"{what}: after the {len(acked)} acknowledged, unacknowledged ones in sending order: "
          f"{tail[:5]} vs sent {sent[len(acked):len(acked) + 5]}")
    return n


async def test_d_kill9_sync_replays_every_acknowledged_message():
    flags = ["--store", f"sqlite:{path('d.db')}", "--durability", "sync",
             "--session-secret-file", path("d.key"), "--replay-limit", "1000000",
             "--max-buffer", "256MiB"]  # the whole replay at once (see the max-buffer test)
    with Weir(BUILD, "--threads", "2", *flags) as weir:
        room = "rd"
        pub, joined, _ = await flood_then_kill(weir, room, "rd", 16, 1.5)
        acked = pub.acked()
        weir.start()
        j1, res, replay = await join_and_resume(weir, room, joined)
        check(j1["epoch"] == joined["epoch"] and j1["offset"] >= acked[-1][0],
              f"after the restart the room continues epoch {joined['epoch']} at or past the last "
              f"acknowledged offset {acked[-1][0]}: {j1}")
        check_resumed(res, room, True, j1["offset"], joined["epoch"])
        held = check_replay_prefix(replay, acked, pub.sent, "sync replay")
        check(held == len(acked), f"every acknowledged message is replayed: {held} of "
              f"{len(acked)} (replay {brief(replay)})")
        note(f"d: {len(acked)} acknowledged before the kill, all replayed; "
             f"{len(replay) - held} more were stored but not yet acknowledged")
        stopped_cleanly(weir)


async def test_e_kill9_async_loses_at_most_the_last_second():
    flags = ["--store", f"sqlite:{path('e.db')}", "--durability", "async",
             "--session-secret-file", path("e.key"), "--replay-limit", "1000000",
             "--max-buffer", "256MiB"]  # the whole replay at once (see the max-buffer test)
    with Weir(BUILD, "--threads", "2", *flags) as weir:
        room = "re"
        pub, joined, killed_at = await flood_then_kill(weir, room, "re", 64, 1.5)
        acked = pub.acked()
        weir.start()
        j1, res, replay = await join_and_resume(weir, room, joined)
        check(j1["epoch"] == joined["epoch"],
              f"after the restart the room continues epoch {joined['epoch']}: {j1}")
        check_resumed(res, room, True, j1["offset"], joined["epoch"])
        held = check_replay_prefix(replay, acked, pub.sent, "async replay")
        lost = len(acked) - held
        recent = sum(1 for *_, t in pub.acks if t >= killed_at - 1.0)
        window = f", the oldest read {max(0, killed_at - pub.acks[held][3]) * 1000:.0f} ms " \
            f"before the kill" if lost else ""
        note(f"e: {lost} of {len(acked)} acknowledged messages lost{window} "
             f"({recent} were acknowledged in the last second before the kill)")
        check(lost <= recent, f"lost {lost}, more than the {recent} acknowledged in the last "
              f"second before the kill")
        stopped_cleanly(weir)


# ---------------------------------------------------------------- f: recovered false


async def publish_and_leave(weir, room, count):
    """A member joins and leaves after reading one message; a publisher sends `count`. Returns
    (the member's session, its join, the publisher)."""
    a, sa = await connect(weir)
    ja = await join(a, room)
    p, _ = await connect(weir)
    await join(p, room)
    pub = Publisher(p, room, room)
    await pub.send(count)
    await pub.wait_acked(count)
    check_exact(await collect(a, 1), ja["offset"] + 1, pub.sent[:1], "the member's first")
    await a.close()
    return sa, ja, pub


async def resume_not_recovered(weir, sa, room, offset, epoch, ja, pub):
    """Resumes and expects recovered:false at the room's last offset; what is replayed must be
    a gap-free tail ending there, and the next live message follows it. Returns the replay."""
    a2, _ = await connect(weir)
    await a2.send(resume_frame(sa["token"], {room: (offset, epoch)}))
    session, resumed, msgs, others = await read_resume(a2, {room: offset}, settle=0.3)
    check(not others and room in resumed,
          f"sent resume {room}@{offset} epoch {epoch}: resumed {resumed}, other frames {others}")
    last = ja["offset"] + len(pub.sent)
    check_resumed(resumed[room], room, False, last, ja["epoch"])
    replay = msgs[room]
    if replay:
        check_exact(replay, last - len(replay) + 1, pub.sent[len(pub.sent) - len(replay):],
                    "what is replayed is the newest messages")
    await pub.send(1)
    check_exact(await collect(a2, 1), last + 1, pub.sent[-1:], "then live")
    await a2.close()
    return replay


async def test_f_not_recovered_when_the_epoch_differs():
    with Weir(BUILD) as weir:
        sa, ja, pub = await publish_and_leave(weir, "rf1", 3)
        replay = await resume_not_recovered(weir, sa, "rf1", ja["offset"] + 1, ja["epoch"] + 1,
                                            ja, pub)
        note(f"f: epoch differs: {len(replay)} messages replayed")
        stopped_cleanly(weir)


async def trimmed(store):
    flags = ["--store", store, "--retention-messages", "5", "--purge-interval", "200ms"]
    with Weir(BUILD, *flags) as weir:
        sa, ja, pub = await publish_and_leave(weir, "rf2", 20)
        await asyncio.sleep(0.7)  # three purges
        replay = await resume_not_recovered(weir, sa, "rf2", ja["offset"] + 1, ja["epoch"],
                                            ja, pub)
        check(len(replay) <= 5, f"at most the 5 retained are replayed: {brief(replay)}")
        note(f"f: trimmed ({store.split(':')[0]}): {len(replay)} messages replayed")
        stopped_cleanly(weir)


async def test_f_not_recovered_when_retention_trimmed_memory():
    await trimmed("memory")


async def test_f_not_recovered_when_retention_trimmed_sqlite():
    await trimmed(f"sqlite:{path('f.db')}")


async def test_f_not_recovered_when_the_replay_limit_cuts():
    with Weir(BUILD, "--replay-limit", "5") as weir:
        sa, ja, pub = await publish_and_leave(weir, "rf3", 20)
        replay = await resume_not_recovered(weir, sa, "rf3", ja["offset"], ja["epoch"], ja, pub)
        check(len(replay) == 5, f"the newest 5 are replayed: {brief(replay)}")
        stopped_cleanly(weir)


# ---------------------------------------------------------------- g: dedupe


async def test_g_duplicate_message_id_delivered_once():
    with Weir(BUILD, "--threads", "2") as weir:
        room = "rg"
        a, _ = await connect(weir)
        b, _ = await connect(weir)
        ja = await join(a, room)
        await join(b, room)
        await a.send(message(room, "first", message_id="g-1"))
        first = [await expect(ws, "message") for ws in (a, b)]
        n = ja["offset"] + 1
        check(all(m["offset"] == n and m["content"] == "first" for m in first),
              f"g-1 delivered at {n}: {first}")
        await a.send(message(room, "second", message_id="g-1"))
        env = await recv(a, 3, "the duplicate error")
        err = env.get("error", {})
        check(err.get("code") == "duplicate" and err.get("ref") == "g-1"
              and err.get("offset") == n and err.get("message"),
              f"sent g-1 again: expected error duplicate ref g-1 offset {n}, got {env}")
        extra = await quiet(b, 0.3)
        check(extra is None, f"the other member does not get the duplicate: {extra}")
        await b.send(message(room, "third", message_id="g-1"))  # another sender, same id
        env = await recv(b, 3, "the duplicate error for the second sender")
        check(env.get("error", {}).get("code") == "duplicate"
              and env["error"].get("offset") == n,
              f"b sent g-1 (already in the room): expected duplicate offset {n}, got {env}")
        extra = await quiet(a, 0.3)
        check(extra is None, f"nor does a: {extra}")
        await a.send(message(room, "fourth", message_id="g-2"))
        for ws in (a, b):
            m = await expect(ws, "message")
            check(m["message_id"] == "g-2" and m["offset"] == n + 1,
                  f"the next message takes the next offset: {m}")
        for ws in (a, b):
            await ws.close()
        stopped_cleanly(weir)


async def test_g_duplicate_over_http_api():
    with Weir(BUILD, "--api-key", "k") as weir:
        room = "rg-api"
        a, _ = await connect(weir)
        ja = await join(a, room)
        body = json.dumps({"content": "api", "message_id": "g-api-1"})
        status, _, text = weir.http("POST", f"/api/rooms/{room}/messages", body, bearer("k"))
        n = ja["offset"] + 1
        check(status == 200 and json.loads(text) == {"offset": n, "epoch": ja["epoch"]},
              f"first POST: {status} {text}")
        check((await expect(a, "message"))["message_id"] == "g-api-1", "delivered")
        status, _, text = weir.http("POST", f"/api/rooms/{room}/messages", body, bearer("k"))
        want = {"offset": n, "epoch": ja["epoch"], "duplicate": True}
        check(status == 200 and json.loads(text) == want,
              f"the same POST again: expected 200 {want}, got {status} {text}")
        extra = await quiet(a, 0.3)
        check(extra is None, f"delivered once: {extra}")
        await a.send(message(room, "ws", message_id="g-api-1"))
        env = await recv(a, 3, "the duplicate error")
        check(env.get("error", {}).get("code") == "duplicate"
              and env["error"].get("offset") == n,
              f"the API's message_id over /ws: expected duplicate offset {n}, got {env}")
        await a.close()
        stopped_cleanly(weir)


# ---------------------------------------------------------------- h: rate limits


async def test_h_rate_limit_burst_then_flood_closes_1008():
    with Weir(BUILD, "--rate-limit", "5:5") as weir:
        room = "rh"
        a, _ = await connect(weir)
        b, _ = await connect(weir)
        ja = await join(a, room)
        await join(b, room)
        burst = [f"h-{i}" for i in range(10)]
        for mid in burst:
            await a.send(message(room, mid, message_id=mid))
        frames = [await recv(a, 3, f"10 answers to a burst of 10 (have {i})") for i in range(10)]
        delivered = [f["message"] for f in frames if "message" in f]
        errors = [f["error"] for f in frames if "error" in f]
        check_exact(delivered, ja["offset"] + 1, burst[:5], "the burst's first 5 go through")
        check(len(errors) == 5 and all(
            e["code"] == "rate_limited" and e.get("retry_after_ms", 0) > 0 and e.get("message")
            for e in errors) and [e.get("ref") for e in errors] == burst[5:],
            f"the other 5: rate_limited with retry_after_ms > 0 and ref = message_id: {errors}")
        check_exact(await collect(b, 5), ja["offset"] + 1, burst[:5], "the other member")
        extra = await quiet(b, 0.2)
        check(extra is None, f"the other member gets only those: {extra}")
        flood = [f"hf-{i}" for i in range(200)]
        try:
            for mid in flood:
                await a.send(message(room, mid, message_id=mid))
        except websockets.ConnectionClosed:
            pass
        frames, code, reason = await frames_until_closed(a, 5)
        check(code == 1008 and reason == "rate limit exceeded",
              f"a flood of 200 is closed with 1008 \"rate limit exceeded\": got {code} "
              f"{reason!r} after {len(frames)} frames")
        # Time has passed since the burst: a refill of a token or two may let the flood's first
        # messages through (a may be closed before its own copies reach it).
        seen_by_a = [f["message"]["message_id"] for f in frames if "message" in f]
        got = []
        while (raw := await quiet(b, 0.3)) is not None:
            got.append(json.loads(raw))
        check(all("message" in g for g in got), f"b gets only messages: {got}")
        through = [g["message"] for g in got]
        check(len(through) <= 3 and set(seen_by_a) <= set(ids(through)),
              f"the flood got at most a refill's worth through: b got {brief(through)}, a saw "
              f"{seen_by_a}")
        check_exact(through, ja["offset"] + 6, flood[:len(through)], "the flood's first")
        await b.send(message(room, "b still here", message_id="hb-1"))
        m = await expect(b, "message")
        check(m["message_id"] == "hb-1", f"the other member is unaffected: {m}")
        await b.close()
        stopped_cleanly(weir)


async def test_room_rate_limit_counts_every_publisher():
    with Weir(BUILD, "--threads", "2", "--room-rate-limit", "5:5") as weir:
        room, other = "rr", "rr-other"
        a, _ = await connect(weir)
        b, _ = await connect(weir)
        ja = await join(a, room)
        await join(b, room)
        sent = {a: [f"ra-{i}" for i in range(4)], b: [f"rb-{i}" for i in range(4)]}
        for ws in (a, b):
            for mid in sent[ws]:
                await ws.send(message(room, mid, message_id=mid))
        # Which 3 are refused depends on the order the two connections' frames reach the room.
        seen, refused = {}, {}
        for ws in (a, b):
            seen[ws], refused[ws] = [], []
            while True:
                raw = await quiet(ws, 0.5)
                if raw is None:
                    break
                env = json.loads(raw)
                if "message" in env:
                    seen[ws].append(env["message"])
                    continue
                err = env.get("error", {})
                check(err.get("code") == "rate_limited" and err.get("retry_after_ms", 0) > 0
                      and err.get("ref") in sent[ws], f"a refusal of this sender's: {env}")
                refused[ws].append(err["ref"])
        check(len(seen[a]) == 5 and ids(seen[a]) == ids(seen[b]),
              f"5 of the 8 go through, in one order: {brief(seen[a])} {brief(seen[b])}")
        check_exact(seen[a], ja["offset"] + 1, ids(seen[a]), "the room's offsets")
        everything = sorted(ids(seen[a]) + refused[a] + refused[b])
        check(everything == sorted(sent[a] + sent[b]),
              f"each of the 8 delivered once or refused to its sender: delivered "
              f"{ids(seen[a])}, refused {refused[a]} {refused[b]}")
        await join(a, other)
        await a.send(message(other, "elsewhere", message_id="ro-1"))
        m = await expect(a, "message")
        check(m["message_id"] == "ro-1", f"another room is not limited: {m}")
        for ws in (a, b):
            await ws.close()
        stopped_cleanly(weir)


# ---------------------------------------------------------------- sync durability, store down


def readyz(weir):
    status, _, body = weir.http("GET", "/readyz")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def store_metrics(weir):
    return [line for line in weir.http("GET", "/metrics")[2].splitlines()
            if line.startswith("weir_store_") and "_bucket" not in line]


async def until(what, probe, timeout=10):
    """Polls probe() until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        check(time.monotonic() < deadline, f"{what} within {timeout}s")
        await asyncio.sleep(0.05)
    return value


async def test_sync_store_down_delivers_nothing_unstored():
    if not shutil.which("redis-server"):
        note("no redis-server: the store-down test is skipped")
        return
    redis = RedisServer(TMP)
    try:
        with Weir(BUILD, "--store", f"redis://127.0.0.1:{redis.port}", "--durability", "sync",
                  "--api-key", API_KEY) as weir:
            room = "rs"
            a, _ = await connect(weir)
            b, _ = await connect(weir)
            ja = await join(a, room)
            await join(b, room)
            status, ready = readyz(weir)
            check(status == 200 and isinstance(ready, dict) and ready.get("store") == "redis"
                  and ready.get("durability") == "ok", f"/readyz while the store is up: {status} "
                  f"{ready}")
            check(weir.metric("weir_store_up") == 1, "weir_store_up 1")
            await a.send(message(room, "s-1", message_id="s-1"))
            for ws in (a, b):
                check((await expect(ws, "message"))["offset"] == ja["offset"] + 1, "s-1 stored")
            check((weir.metric("weir_store_appends_total") or 0) >= 1,
                  "weir_store_appends_total counts it")
            redis.stop()
            await a.send(message(room, "s-2", message_id="s-2"))
            env = await recv(a, 10, "an answer to s-2 with the store down")
            check(env.get("error", {}).get("code") == "store_unavailable"
                  and env["error"].get("ref") == "s-2",
                  f"sync, store down: sent s-2, expected error store_unavailable ref s-2, got "
                  f"{env}")
            extra = await quiet(b, 0.3)
            check(extra is None, f"nobody received the unstored s-2: {extra}")
            status, _, body = weir.http("POST", f"/api/rooms/{room}/messages",
                                        json.dumps({"content": "api"}), bearer(API_KEY))
            check(status == 503, f"the HTTP API answers 503 with the store down: {status} {body}")
            status, ready = readyz(weir)
            check(status == 200 and isinstance(ready, dict)
                  and ready.get("durability") == "degraded",
                  f"/readyz says degraded: {status} {ready}")
            check(weir.metric("weir_store_up") == 0, "weir_store_up 0")
            errors = weir.metric('weir_store_errors_total')
            extra = await quiet(b, 0.2)
            check(extra is None, f"nor the API's: {extra}")
            redis.start()
            # The store comes back: appends succeed again (s-2's offset may stay a hole).
            answer = None
            for i in range(3, 40):
                await a.send(message(room, f"s-{i}", message_id=f"s-{i}"))
                env = await recv(a, 10, f"an answer to s-{i}")
                if "message" in env:
                    answer = env["message"]
                    break
                check(env.get("error", {}).get("code") == "store_unavailable", f"{env}")
                await asyncio.sleep(0.25)
            check(answer and answer["offset"] > ja["offset"] + 1,
                  f"once the store is back, messages are delivered after s-1: {answer}")
            m = await expect(b, "message")
            check(m["message_id"] == answer["message_id"], f"b gets it too, and only it: {m}")
            await until("/readyz back to ok",
                        lambda: readyz(weir)[1].get("durability") == "ok")
            check(weir.metric("weir_store_up") == 1, "weir_store_up 1 again")
            check((errors or 0) > 0 and weir.metric('weir_store_ops_total'),
                  f'weir_store_errors_total counted the failures: {errors}; '
                  f'the store metrics: {store_metrics(weir)}')
            for ws in (a, b):
                await ws.close()
            stopped_cleanly(weir)
    finally:
        redis.stop()


# ---------------------------------------------------------------- i: tokens


def check_token_error(env, code, what):
    err = env.get("error", {})
    check(err.get("code") == code and err.get("ref") == "resume" and err.get("message"),
          f"{what}: expected error {code} ref resume, got {env}")


async def test_i_garbage_and_tampered_tokens_are_invalid():
    with Weir(BUILD) as weir:
        c, sc = await connect(weir)
        await c.send(resume_frame("garbage", {}))
        check_token_error(await recv(c), "invalid_token", 'resume {"token":"garbage"}')
        mac_last = sc["token"][-1]
        tampered = sc["token"][:-1] + ("0" if mac_last != "0" else "1")
        await c.send(resume_frame(tampered, {}))
        check_token_error(await recv(c), "invalid_token", f"resume with {tampered}")
        j = await join(c, "ri")
        check(j["room_id"] == "ri", "the connection stays usable")
        await c.close()
        q, session = await connect(weir, path="/ws?resume=garbage")
        check(session["token"] != "garbage" and session["member_id"],
              f"/ws?resume=garbage: first a fresh session: {session}")
        check_token_error(await recv(q), "invalid_token", "/ws?resume=garbage")
        await q.close()
        stopped_cleanly(weir)


async def test_i_token_of_another_servers_key_is_invalid():
    with Weir(BUILD, "--session-secret-file", path("i1.key")) as w1, \
            Weir(BUILD, "--session-secret-file", path("i2.key")) as w2:
        c1, s1 = await connect(w1)
        await join(c1, "ri")
        await c1.close()
        c2, _ = await connect(w2)
        await c2.send(resume_frame(s1["token"], {}))
        check_token_error(await recv(c2), "invalid_token", "a token signed with another key")
        await c2.close()
        q, _ = await connect(w2, path=f"/ws?resume={s1['token']}")
        check_token_error(await recv(q), "invalid_token", "the same in ?resume=")
        await q.close()
        c3, _ = await connect(w1)  # the control: its own server takes it
        await c3.send(resume_frame(s1["token"], {}))
        session, resumed, _, others = await read_resume(c3, {"ri": 0}, settle=0.2)
        check(session["member_id"] == s1["member_id"] and not others,
              f"the issuing server resumes it: {session} {others}")
        await c3.close()
        stopped_cleanly(w1)
        stopped_cleanly(w2)


async def test_i_session_not_found_after_memory_restart():
    with Weir(BUILD, "--session-secret-file", path("i3.key")) as weir:
        c, sc = await connect(weir)
        await c.close()
        check(weir.restart() == 0, "weir exits 0 on SIGTERM")
        c2, _ = await connect(weir)
        await c2.send(resume_frame(sc["token"], {}))
        check_token_error(await recv(c2), "session_not_found",
                          "a well-signed token whose session a memory store lost")
        await c2.close()
        stopped_cleanly(weir)


async def test_i_session_expired_after_ttl():
    with Weir(BUILD, "--session-ttl", "1s") as weir:
        c, sc = await connect(weir)
        await c.close()
        await asyncio.sleep(1.3)
        c2, _ = await connect(weir)
        await c2.send(resume_frame(sc["token"], {}))
        check_token_error(await recv(c2), "session_expired", "resuming after --session-ttl 1s")
        await c2.close()
        stopped_cleanly(weir)


TESTS = [test_a_resume_frame_after_disconnect_mid_stream, test_b_resume_by_query_string,
         test_b_resume_frame_without_rooms, test_a_replay_larger_than_max_buffer,
         test_room_keeps_epoch_and_offset_after_its_last_member_left,
         test_room_without_messages_keeps_its_epoch_after_its_last_member_left,
         test_c_sigterm_restart_keeps_history_sqlite,
         test_d_kill9_sync_replays_every_acknowledged_message,
         test_e_kill9_async_loses_at_most_the_last_second,
         test_f_not_recovered_when_the_epoch_differs,
         test_f_not_recovered_when_retention_trimmed_memory,
         test_f_not_recovered_when_retention_trimmed_sqlite,
         test_f_not_recovered_when_the_replay_limit_cuts,
         test_g_duplicate_message_id_delivered_once, test_g_duplicate_over_http_api,
         test_h_rate_limit_burst_then_flood_closes_1008,
         test_room_rate_limit_counts_every_publisher,
         test_sync_store_down_delivers_nothing_unstored,
         test_i_garbage_and_tampered_tokens_are_invalid,
         test_i_token_of_another_servers_key_is_invalid,
         test_i_session_not_found_after_memory_restart, test_i_session_expired_after_ttl]


def main():
    global BUILD, TMP
    BUILD = build_dir(__doc__, default="build")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="weir-store-test-") as tmp:
        TMP = tmp
        failed = run_tests(TESTS, timeout=30)
    note(f"{time.monotonic() - started:.1f}s in all")
    return finish(len(TESTS), failed)


if __name__ == "__main__":
    sys.exit(main())
