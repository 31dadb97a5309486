#!/usr/bin/env python3
"""Rooms across nodes (--gossip peer links, rendezvous ownership, forwarding), end to end.

Usage: cluster_rooms_test.py [BUILD_DIR]   (default: build)

Three weir processes on 127.0.0.1 gossip with each other (probe every 100ms) and link over TCP
on their gossip ports. Every client's stream is checked by the history checker of
cluster_history.py: per room, each message follows the last known offset of its epoch by
exactly one, unless a `lagged` or a `resumed{recovered:false}` announced the gap first; no
message id is received twice; every message a client saw acknowledged (its own copy came back)
reached every member.
- one total order: two clients per node, each in six rooms (owners spread over the nodes),
  all publishing at once; every client receives every message, and all clients agree on the
  offset of each;
- the owner of a room killed (SIGKILL): members on the surviving nodes are told the room went
  on in a new epoch (resumed{recovered:false}), and keep publishing to and receiving from it;
- weir-load fanout spread over the three nodes (30 rooms made at once everywhere): no loss,
  disorder or duplicate, and every room closes on every node afterwards;
- the HTTP API on a node that does not own the room publishes through the owner and answers
  with the owner's offset;
- Redis store, sync durability: two publishers (on n2 and n3) publish without pause while the
  room's owner n1 is killed (SIGKILL); a publish refused as `unavailable` is sent again with
  the same message_id (a `duplicate` answer acknowledges it too). The room continues its epoch
  on the new owner; every acknowledged message reached every member or lies in a `lagged`
  range announced to it, and a resume from offset 0 replays every acknowledged message.
Prints one line per test; exits 1 on any failure.
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

from weir_harness import (RedisServer, Weir, build_dir, check, connect, finish, free_gossip_port,
                          message, note, recv, run_tests)
from cluster_history import client, drain, owner, publish_all, wait_cluster

BUILD = "build"
TMP = None


def three_nodes(*extra):
    """Nodes n1..n3 (n2 and n3 join n1), each with two threads; waits until every node lists
    all three alive and has its two peer links up."""
    secret = os.path.join(TMP, "cluster.key")
    with open(secret, "w") as f:
        f.write("cluster-rooms-secret\n")
    nodes, first = {}, None
    for name in ("n1", "n2", "n3"):
        address = f"127.0.0.1:{free_gossip_port()}"
        flags = ["--threads", "2", "--node-id", name, "--gossip", address,
                 "--cluster-secret-file", secret, "--probe-interval", "100ms",
                 "--probe-timeout", "50ms", *extra]
        if first:
            flags += ["--join", first]
        first = first or address
        nodes[name] = Weir(BUILD, *flags)
    wait_cluster(nodes, ["n1", "n2", "n3"], links=2)
    return nodes


# ---------------------------------------------------------------- tests


async def one_total_order_across_three_nodes():
    nodes = three_nodes()
    rooms = [f"order-{i}" for i in range(6)]
    owners = {owner(nodes, r) for r in rooms}
    check(len(owners) >= 2, f"the rooms' owners spread over the nodes: {owners}")
    clients = []
    for name, w in nodes.items():
        for k in range(2):
            clients.append(await client(w, f"{name}.c{k}", rooms))
    per_client = 15
    ids = {r: set() for r in rooms}
    jobs = []
    for ws, h in clients:
        msgs = [(r, f"{h.name}-{r}-{i}") for i in range(per_client) for r in rooms]
        for r, mid in msgs:
            ids[r].add(mid)
        jobs.append(publish_all(ws, h, msgs))
    await asyncio.gather(*jobs)
    for ws, h in clients:
        for r in rooms:
            await drain(ws, h, r, ids[r])
    for r in rooms:
        orders = {h.name: {mid: pos for mid, pos in h.seen[r].items()} for _, h in clients}
        first = next(iter(orders.values()))
        check(all(o == first for o in orders.values()),
              f"{r}: every client saw every message at the same offset")
        check(len(first) == len(ids[r]), f"{r}: {len(first)} of {len(ids[r])} messages")
    for ws, _ in clients:
        await ws.close()
    forwarded = sum(w.metric('weir_cluster_room_messages_total{direction="out"}') or 0
                    for w in nodes.values())
    check(forwarded > 0, f"messages crossed the peer links: {forwarded}")


async def owner_killed_room_moves():
    nodes = three_nodes()
    room = next(f"move-{i}" for i in range(1000) if owner(nodes, f"move-{i}") == "n1")
    survivors = [("n2", nodes["n2"]), ("n3", nodes["n3"])]
    clients = [await client(w, name, [room]) for name, w in survivors]
    await publish_all(*clients[0], [(room, f"before-{i}") for i in range(10)])
    for ws, h in clients:
        await drain(ws, h, room, {f"before-{i}" for i in range(10)})
    epoch_before = clients[0][1].at[room][0]

    nodes["n1"].kill()
    # n2 and n3 declare n1 dead, and the room moves to the owner among them.
    for ws, h in clients:
        deadline = time.monotonic() + 15
        while h.at[room][0] == epoch_before:
            env = await recv(ws, max(0.1, deadline - time.monotonic()), "resumed after the move")
            h.frame(env)
        notice = h.announced[room][-1]
        check("resumed" in notice and notice["resumed"]["recovered"] is False,
              f"{h.name} is told the room went on in a new epoch: {notice}")
    after = [(room, f"after-{i}") for i in range(10)]
    await publish_all(*clients[1], after)
    for ws, h in clients:
        await drain(ws, h, room, {mid for _, mid in after})
    for ws, _ in clients:
        await ws.close()


async def api_publishes_through_the_owner():
    nodes = three_nodes("--api-key", "k")
    room = next(f"api-{i}" for i in range(1000) if owner(nodes, f"api-{i}") == "n3")
    ws, h = await client(nodes["n3"], "n3", [room])
    body = json.dumps({"content": "via n1", "message_id": "api-1"})
    status, _, answer = nodes["n1"].http("POST", f"/api/rooms/{room}/messages", body,
                                         {"X-API-Key": "k", "Content-Type": "application/json"})
    check(status in (200, 201, 202), f"n1's API accepts a publish to n3's room: {status} {answer}")
    await drain(ws, h, room, {"api-1"})
    check(str(h.seen[room]["api-1"][1]) in answer,
          f"the API answer names the owner's offset {h.seen[room]['api-1']}: {answer}")
    await ws.close()


class Publisher:
    """Publishes `room` messages named NAME-i every `gap` seconds until `target` are
    acknowledged: its own copy came back (offset known) or the room answered `duplicate` (the
    original's offset). `unavailable` is retried with the same message_id."""

    def __init__(self, ws, h, room, name):
        self.ws, self.h, self.room, self.name = ws, h, room, name
        self.acked, self.pending, self.next = {}, {}, 0
        self.retries = self.duplicates = 0

    async def run(self, target, kill_at, on_kill, gap=0.01, timeout=30):
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            check(time.monotonic() < deadline,
                  f"{self.name}: {len(self.acked)} of {target} acknowledged in {timeout}s "
                  f"(pending {sorted(self.pending)[:5]})")
            if self.next < target and len(self.pending) < 20:
                mid = f"{self.name}-{self.next}"
                self.next += 1
                self.pending[mid] = time.monotonic()
                await self.ws.send(message(self.room, "x", message_id=mid))
                if self.next == kill_at:
                    on_kill()
            try:
                env = json.loads(await asyncio.wait_for(self.ws.recv(), gap))
            except asyncio.TimeoutError:
                continue
            kind, body = self.h.frame(env)
            if kind == "message" and body["message_id"] in self.pending:
                self.pending.pop(body["message_id"])
                self.acked[body["message_id"]] = (body["epoch"], body["offset"])
            elif kind == "error" and body.get("code") == "duplicate" and body.get("ref") in self.pending:
                self.pending.pop(body["ref"])
                self.acked[body["ref"]] = (None, body["offset"])
                self.duplicates += 1
            elif kind == "error" and body.get("code") == "unavailable" and body.get("ref") in self.pending:
                self.retries += 1
                await asyncio.sleep(0.05)
                await self.ws.send(message(self.room, "x", message_id=body["ref"]))
            elif kind == "error":
                check(False, f"{self.name}: unexpected error {body}")


async def owner_killed_sync_redis_no_ack_lost():
    check(shutil.which("redis-server"), "redis-server is installed (make deps installs it)")
    redis = RedisServer(TMP)
    try:
        key = os.path.join(TMP, "session.key")
        nodes = three_nodes("--store", f"redis://127.0.0.1:{redis.port}", "--durability", "sync",
                            "--session-secret-file", key)
        room = next(f"sync-{i}" for i in range(1000) if owner(nodes, f"sync-{i}") == "n1")
        pubs, members = [], []
        for name in ("n2", "n3"):
            ws, h = await client(nodes[name], f"{name}.pub", [room])
            pubs.append(Publisher(ws, h, room, f"{name}.pub"))
            members.append(await client(nodes[name], f"{name}.member", [room]))
        killed = []

        def kill():
            if not killed:
                killed.append(time.monotonic())
                nodes["n1"].kill()

        await asyncio.gather(pubs[0].run(150, 60, kill), pubs[1].run(150, 1000, kill))
        acked = {mid: pos for p in pubs for mid, pos in p.acked.items()}
        epochs = {pos[0] for pos in acked.values() if pos[0] is not None}
        check(len(epochs) == 1, f"the room kept its epoch across the move (sync, Redis): {epochs}")
        # Every member: each acknowledged message received, or inside an announced lagged range.
        for ws, h in members:
            def covered(offset):
                return any(a["lagged"]["from_offset"] <= offset <= a["lagged"]["to_offset"]
                           for a in h.announced.get(room, []) if "lagged" in a)
            deadline = time.monotonic() + 10
            while True:
                missing = [mid for mid, (_, off) in acked.items()
                           if mid not in h.seen[room] and not covered(off)]
                if not missing:
                    break
                env = await recv(ws, max(0.1, deadline - time.monotonic()),
                                 lambda: f"{h.name}: {len(missing)} acknowledged messages, "
                                 f"e.g. {missing[:3]}")
                h.frame(env)
            restarts = [a for a in h.announced.get(room, []) if "resumed" in a]
            check(not restarts, f"{h.name}: no new epoch under sync with Redis: {restarts}")
            lagged = [a["lagged"] for a in h.announced.get(room, []) if "lagged" in a]
            note(f"{h.name}: {len(h.seen[room])} received, lagged ranges {lagged}")
        # A resume from offset 0 replays the room from Redis: every acknowledged message is there.
        ws, session = await connect(nodes["n2"])
        epoch = next(iter(epochs))
        await ws.send(json.dumps({"resume": {"token": session["token"],
                                             "rooms": {room: {"offset": 0, "epoch": epoch}}}}))
        replayed, resumed = set(), None
        deadline = time.monotonic() + 10
        while resumed is None or len(replayed) < resumed["offset"]:
            env = await recv(ws, max(0.1, deadline - time.monotonic()), "the replay")
            if "resumed" in env:
                resumed = env["resumed"]
                check(resumed["recovered"], f"the replay is complete: {resumed}")
            elif "message" in env:
                replayed.add(env["message"]["message_id"])
        lost = sorted(set(acked) - replayed)
        check(not lost, f"every acknowledged message is in the store: lost {lost[:5]}")
        note(f"{len(acked)} acknowledged, {len(replayed)} replayed; "
             f"{sum(p.retries for p in pubs)} publishes retried after `unavailable`, "
             f"{sum(p.duplicates for p in pubs)} acknowledged as duplicates")
        for p in pubs:
            await p.ws.close()
        for m_ws, _ in members:
            await m_ws.close()
        await ws.close()
    finally:
        redis.stop()


async def load_tool_across_three_nodes():
    """weir-load fanout with its connections spread over the three nodes: 30 rooms created at
    once on every node (their epochs chosen by different nodes in the same millisecond must
    not be confused), no loss, no disorder, no duplicate; every room closes afterwards."""
    nodes = three_nodes()
    urls = [w.url() for w in nodes.values()]
    load = os.path.join(BUILD, "weir-load")
    cmd = [load, "fanout", "--url", urls[0], "--also-url", urls[1], "--also-url", urls[2],
           "--rooms", "30", "--members", "6", "--publishers", "30", "--rate", "600/s",
           "--seconds", "2", "--warmup-seconds", "0", "--quiet"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    check(proc.returncode == 0, f"weir-load exits 0: {proc.returncode} {err.decode()[-800:]}")
    summary = json.loads(out.decode())
    check(summary["joined"] == 30 * 7 and summary["deliveries"] > 0,
          f"every connection joined and messages flowed: {summary['joined']}, "
          f"{summary['deliveries']}")
    for key in ("lost", "order_violations", "duplicates"):
        check(summary[key] == 0, f"{key} is 0: {summary[key]}")
    check(summary["errors"]["total"] == 0, f"no errors: {summary['errors']}")
    forwarded = sum(w.metric('weir_cluster_room_messages_total{direction="out"}') or 0
                    for w in nodes.values())
    check(forwarded > summary["published"], f"most messages crossed nodes: {forwarded} "
          f"forwarded for {summary['published']} published")
    deadline = time.monotonic() + 5
    while any(w.metric("weir_rooms") for w in nodes.values()):
        check(time.monotonic() < deadline, "every node closed every room: " +
              str({n: w.metric("weir_rooms") for n, w in nodes.items()}))
        await asyncio.sleep(0.05)


def main():
    global BUILD, TMP
    BUILD = build_dir(__doc__, "build")
    with tempfile.TemporaryDirectory() as tmp:
        TMP = tmp
        tests = [one_total_order_across_three_nodes, owner_killed_room_moves,
                 api_publishes_through_the_owner, owner_killed_sync_redis_no_ack_lost,
                 load_tool_across_three_nodes]
        failed = run_tests(tests, timeout=90)
    return finish(len(tests), failed)


if __name__ == "__main__":
    sys.exit(main())
