#!/usr/bin/env python3
"""A 3-node cluster cut in two by a real network partition, and an owner paused, end to end.

Usage: cluster_partition_test.py [BUILD_DIR]   (default: build)

Every client's stream is checked by the history checker of cluster_history.py, and at the end
across clients. What a cluster without a store (the memory store, --durability async) promises
through a partition or a pause, and what is asserted:
- no silent gap: per room, each message follows the last offset of its epoch by one, unless a
  `lagged` or a `resumed{recovered:false}` announced the gap or the new epoch first; no message
  id is received twice by a client;
- one order per epoch: across every client, (room, epoch, offset) names one message; the two
  sides of a partition never order in the same epoch;
- no silent loss: every acknowledged message (its sender's own copy came back) reached every
  member of the room, or that member was told it missed it: a `lagged` range covering it, or a
  `resumed{recovered:false}` after it was sent. Without a store a room's history on the losing
  side is not merged back: a new epoch (or the other side's epoch) is fine, silence is not.
  That holds for the rounds published while the nodes' views agree (before the cut, during it
  once both sides declared the other dead, after healing). A trickle of messages also runs
  while the views change (cutting, healing, pausing, resuming); the two sides learn of the
  healing at different moments, so a side still partitioned in its own view may order a message
  after the other side's members were told of the new epoch: for the trickle, the notice may
  come at any time (a member that missed one and was never told of a restart fails);
- each side serves its own members: during the partition, every message acknowledged on a side
  reached every member on that side;
- healing converges: GET /cluster on every node lists the three alive, peer links are up, every
  member of a room ends in one epoch, and messages published then reach every member.

Tests:
- partition (root and `ip netns` needed, else skipped): three network namespaces
  wp<PID>-n1..n3, each with a veth into a bridge in a fourth namespace wp<PID>-br (the host's
  network is untouched); each node gossips and serves on its 10.x.y.N address inside its
  namespace. Test clients open their sockets inside the node's namespace (setns(2) from a short
  thread), so they talk to their node over its local route, never through the bridge. n3 is cut
  off by setting its bridge port down (the cable pulled: every frame between n3 and the others
  is dropped, while n3's own clients still reach it) until both sides have declared the other
  dead; then healed by setting it up. Two rooms: one owned by n1 (the majority side keeps its
  owner, n3 takes it over on its side), one owned by n3 (n3 keeps it, the majority side takes it
  over).
- paused owner (loopback, no root needed), twice: the owner of a room gets SIGSTOP until the two
  others declare it dead and the room moved; they publish meanwhile; SIGCONT (at once, or 3 s
  later, when the others no longer gossip its death and it can only hear itself suspected);
  everyone publishes again. The paused node's own members are checked like the others: they
  must receive what was ordered while their node was paused, or be told they missed it.
- paused owner with a shared Redis store under sync durability: the new owner continues the
  paused owner's epoch from the store, so the paused owner's first appends on SIGCONT collide
  with stored offsets; the store refuses them and the owner fences (same promises, and one
  (epoch, offset) still names one message).
Gossip runs at 200ms probes with a 1s rejoin and push-pull, so each test takes seconds; every
wait is for an event (a view, an epoch, a message), bounded generously, never a speed. The
namespaces and processes go in every path: the test's `finally`, atexit (SIGTERM included),
and, after a SIGKILL, the next run (namespaces of a PID that is gone, their processes by PID).
Prints one line per test; exits 1 on any failure.
"""
import asyncio
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from weir_harness import (RedisServer, Weir, build_dir, check, finish, free_gossip_port, note,
                          run_tests)
from cluster_history import (Member, check_no_silent_loss, check_one_order, cluster_view, missed,
                             owner, wait_cluster)

BUILD = "build"
TMP = None
NAMES = ("n1", "n2", "n3")
TIMING = ["--probe-interval", "200ms", "--probe-timeout", "100ms", "--suspicion-mult", "4",
          "--rejoin-interval", "1s", "--push-pull-interval", "1s"]
PREFIX = "wp"  # namespaces are wp<PID>-<name>; those of a PID that no longer runs are stale


def ip(*args, check_status=True):
    return subprocess.run(["ip", *args], check=check_status, capture_output=True, text=True)


class Network:
    """Namespaces wp<PID>-n1..n3, each with `eth0` (10.a.b.N/24) cabled to port `pN` of bridge
    `br0` in namespace wp<PID>-br. `cut(name)` sets the node's bridge port down, `mend(name)`
    sets it up; `close()` deletes the namespaces (and with them the veths and the bridge)."""

    opened = []

    def __init__(self, names):
        pid = os.getpid()
        self.prefix = f"{PREFIX}{pid}-"
        self.subnet = f"10.{200 + (pid >> 8) % 50}.{pid % 256}"
        self.bridge = self.prefix + "br"
        self.names = list(names)
        self.namespaces = []
        Network.opened.append(self)
        try:
            self._add(self.bridge)
            ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            ip("-n", self.bridge, "link", "set", "br0", "up")
            for i, name in enumerate(self.names, 1):
                ns = self._add(self.netns(name))
                ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"p{i}",
                   "netns", self.bridge)
                ip("-n", ns, "addr", "add", f"{self.host(name)}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
                ip("-n", self.bridge, "link", "set", f"p{i}", "master", "br0")
                ip("-n", self.bridge, "link", "set", f"p{i}", "up")
        except BaseException:
            self.close()
            raise

    def _add(self, ns):
        ip("netns", "add", ns)
        self.namespaces.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def netns(self, name):
        return self.prefix + name

    def host(self, name):
        return f"{self.subnet}.{self.names.index(name) + 1}"

    def port(self, name):
        return f"p{self.names.index(name) + 1}"

    def cut(self, name):
        # The switch side, not the node's eth0: the node keeps its address and local route,
        # so its own clients (in its namespace) still reach it; frames to and from it drop.
        ip("-n", self.bridge, "link", "set", self.port(name), "down")

    def mend(self, name):
        ip("-n", self.bridge, "link", "set", self.port(name), "up")

    def close(self):
        for ns in reversed(self.namespaces):
            ip("netns", "del", ns, check_status=False)
        self.namespaces = []


def remove_stale_namespaces():
    """Deletes the wp<PID>-* namespaces left by a run of this test that was killed (its PID
    gone), after killing (by PID) the weir processes still running in them."""
    for ns in ip("netns", "list", check_status=False).stdout.split():
        run = ns[len(PREFIX):].split("-")[0]
        if not ns.startswith(PREFIX) or not run.isdigit() or os.path.exists(f"/proc/{run}"):
            continue
        for pid in ip("netns", "pids", ns, check_status=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        ip("netns", "del", ns, check_status=False)


def netns_unavailable():
    """Why the partition test cannot run here (not root, no `ip netns`), or None."""
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_SYS_ADMIN"
    if not shutil.which("ip"):
        return "no `ip` (iproute2)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = ip("netns", "add", probe, check_status=False)
    if made.returncode != 0:
        return f"`ip netns add` fails: {made.stderr.strip()}"
    ip("netns", "del", probe, check_status=False)
    return None


def cleanup():
    for w in Weir.started:
        w.stop()
    for net in Network.opened:
        net.close()


def secret_file():
    path = os.path.join(TMP, "cluster.key")
    with open(path, "w") as f:
        f.write("cluster-partition-secret\n")
    return path


async def wait_views(nodes, states, timeout=30):
    """Polls GET /cluster on every node in `nodes` (name -> Weir) until it lists each member of
    `states` (node_id -> state) in that state."""
    deadline = time.monotonic() + timeout
    for name, w in nodes.items():
        while True:
            view = await asyncio.to_thread(cluster_view, w)
            if all(view.get(n) == s for n, s in states.items()):
                break
            check(time.monotonic() < deadline,
                  f"{name} lists {states} within {timeout}s (it lists {view})")
            await asyncio.sleep(0.1)


async def converged(nodes, timeout=30):
    """Every node lists all three alive with its two peer links up."""
    await asyncio.to_thread(wait_cluster, nodes, list(nodes), 2, timeout, 0.1)


async def open_members(nodes, rooms, per_node=2):
    members = []
    for name, w in nodes.items():
        for k in range(per_node):
            members.append(await Member.open(w, f"{name}.m{k}", rooms))
    return members


async def publish_round(members, rooms, tag, per_room=3, timeout=20):
    """Each member publishes `per_room` messages in every room, named <member>-<tag>-<room>-i;
    returns room -> the ids, once every one is acknowledged."""
    ids = {r: set() for r in rooms}
    for m in members:
        for r in rooms:
            for i in range(per_room):
                mid = f"{m.name}-{tag}-{r}-{i}"
                ids[r].add(mid)
                await m.publish(r, mid)
    for m in members:
        await m.acknowledged(timeout)
    return ids


async def all_received(members, ids, timeout=20):
    for m in members:
        for room, want in ids.items():
            await m.received(room, want, timeout)


async def received_or_told(members, ids, timeout=20):
    """Waits until every member received each of `ids` (room -> message ids, all acknowledged)
    or was told it missed it (`missed`). With a store under sync durability the room keeps its
    epoch when it moves, so a node that registers with the new owner after it ordered messages
    hears `lagged` for them (they are in the store, for a replay) instead of receiving them."""
    want = set().union(*ids.values())
    deadline = time.monotonic() + timeout
    while True:
        acked = {mid: a for m in members for mid, a in m.acked.items() if mid in want}
        lost = missed(members, acked)
        if len(acked) == len(want) and not lost:
            return
        check(time.monotonic() < deadline,
              f"every member received or was told of {len(want)} messages within {timeout}s "
              f"(acknowledged {len(acked)}; missed: {lost})")
        for m in members:
            if m.failure:
                raise m.failure
        await asyncio.sleep(0.05)


async def one_epoch(members, room, timeout=30):
    """Waits until every member's stream of `room` is in the same epoch; that epoch."""
    deadline = time.monotonic() + timeout
    while True:
        epochs = {m.h.at[room][0] for m in members}
        if len(epochs) == 1:
            return epochs.pop()
        check(time.monotonic() < deadline,
              f"{room}: every member ends in one epoch within {timeout}s: " +
              "; ".join(f"{m.name} {m.h.story(room)}" for m in members))
        for m in members:
            if m.failure:
                raise m.failure
        await asyncio.sleep(0.05)


class Trickle:
    """The first member on every node publishes one message in every room every `gap` seconds
    without waiting (Member.publish wait=False) while the network or a node changes under it:
    whatever of it is acknowledged is held to the same promises."""

    def __init__(self, members, rooms, tag, gap=0.1):
        firsts = [m for m in members if m.name.endswith(".m0")]
        self.task = asyncio.create_task(self._run(firsts, rooms, tag, gap))

    @staticmethod
    async def _run(members, rooms, tag, gap):
        for i in range(100000):
            for m in members:
                for r in rooms:
                    await m.publish(r, f"{m.name}-{tag}-{r}-{i}", wait=False)
            await asyncio.sleep(gap)

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


def check_promises(members):
    """The module doc's promises across every stream: one order per epoch, and no silent loss:
    for messages published while the nodes' views agreed, a member that missed one was told so
    after it was sent; for the trickle, published while views changed, at some point."""
    check_one_order(members)
    acked = {mid: a for m in members for mid, a in m.acked.items()}
    loose = set().union(*(m.loose_ids for m in members))
    steady = {mid: a for mid, a in acked.items() if mid not in loose}
    moving = {mid: a for mid, a in acked.items() if mid in loose}
    check_no_silent_loss(members, steady)
    check_no_silent_loss(members, moving, told_after_sent=False)
    late = {name: {r: f"{len(lost)}, e.g. {lost[:2]}" for r, lost in rooms.items()}
            for name, rooms in missed(members, moving).items()}
    note(f"{len(steady)} messages acknowledged while the views agreed, {len(moving)} while "
         f"they changed" + (f"; of those, missed by members told of a new epoch before they "
                            f"were sent: {late}" if late else ""))


def epochs_note(members, rooms):
    for r in rooms:
        note(f"{r}: " + ", ".join(f"{m.name} epochs {m.h.epochs(r)}" for m in members))


# ---------------------------------------------------------------- tests


async def partition_each_side_serves_then_heals():
    net = Network(NAMES)
    nodes = {}
    try:
        secret, seed = secret_file(), f"{net.host('n1')}:7946"
        for name in NAMES:
            flags = ["--threads", "2", "--node-id", name, "--gossip", f"{net.host(name)}:7946",
                     "--cluster-secret-file", secret, *TIMING]
            if name != "n1":
                flags += ["--join", seed]
            nodes[name] = Weir(BUILD, *flags, host=net.host(name), netns=net.netns(name))
        await converged(nodes, 15)
        kept = next(f"kept-{i}" for i in range(1000) if owner(NAMES, f"kept-{i}") == "n1")
        lone = next(f"lone-{i}" for i in range(1000) if owner(NAMES, f"lone-{i}") == "n3")
        rooms = [kept, lone]
        members = await open_members(nodes, rooms)
        majority = [m for m in members if not m.name.startswith("n3.")]
        minority = [m for m in members if m.name.startswith("n3.")]

        await all_received(members, await publish_round(members, rooms, "before"))
        epoch = {r: members[0].h.at[r][0] for r in rooms}

        trickle = Trickle(members, rooms, "cutting")
        net.cut("n3")
        note(f"n3 cut off from n1 and n2 ({net.subnet}.0/24)")
        await wait_views({n: nodes[n] for n in ("n1", "n2")}, {"n3": "dead"})
        await wait_views({"n3": nodes["n3"]}, {"n1": "dead", "n2": "dead"})
        # Each side now owns both rooms: n3 took `kept` over, n1/n2 took `lone` over.
        for m in minority:
            await m.until(lambda m=m: m.h.at[kept][0] != epoch[kept], 20,
                          lambda m=m: f"{kept} moved to n3 on its side: {m.h.story(kept)}")
        for m in majority:
            await m.until(lambda m=m: m.h.at[lone][0] != epoch[lone], 20,
                          lambda m=m: f"{lone} moved to n1/n2 on their side: {m.h.story(lone)}")
        await trickle.stop()
        for side in (majority, minority):
            await all_received(side, await publish_round(side, rooms, "cut"))
        for r in rooms:
            sides = ({m.h.at[r][0] for m in majority}, {m.h.at[r][0] for m in minority})
            check(len(sides[0]) == 1 and not sides[0] & sides[1],
                  f"{r}: one epoch per side, different sides different epochs: {sides}")

        trickle = Trickle(members, rooms, "healing")
        net.mend("n3")
        note("n3 cable mended")
        await converged(nodes, 30)
        for r in rooms:
            await one_epoch(members, r)
        await trickle.stop()
        await all_received(members, await publish_round(members, rooms, "healed"))

        epochs_note(members, rooms)
        check_promises(members)
        for m in members:
            await m.close()
    finally:
        for w in nodes.values():
            w.stop()
        net.close()


async def paused_owner(linger, store=()):
    """n1, the room's owner, paused until n2 and n3 declared it dead and moved the room, which
    they publish to; then `linger` seconds more (a trickle runs) before SIGCONT. `store`: extra
    flags (a shared Redis store under sync durability)."""
    secret = secret_file()
    nodes, seed = {}, None
    for name in NAMES:
        address = f"127.0.0.1:{free_gossip_port()}"
        flags = ["--threads", "2", "--node-id", name, "--gossip", address,
                 "--cluster-secret-file", secret, *TIMING, *store]
        if seed:
            flags += ["--join", seed]
        seed = seed or address
        nodes[name] = Weir(BUILD, *flags)
    await converged(nodes, 15)
    room = next(f"paused-{i}" for i in range(1000) if owner(NAMES, f"paused-{i}") == "n1")
    members = await open_members(nodes, [room])
    others = [m for m in members if not m.name.startswith("n1.")]

    await all_received(members, await publish_round(members, [room], "before"))
    epoch = members[0].h.at[room][0]

    trickle = Trickle(members, [room], "pausing")
    nodes["n1"].pause()
    try:
        await wait_views({n: nodes[n] for n in ("n2", "n3")}, {"n1": "dead"})
        for m in others:  # with a store under sync durability the new owner goes on in it
            if not store:
                await m.until(lambda m=m: m.h.at[room][0] != epoch, 20,
                              lambda m=m: f"{room} moved off the paused n1: {m.h.story(room)}")
        await trickle.stop()
        paused = await publish_round(others, [room], "paused")
        await (received_or_told if store else all_received)(others, paused)
        if linger:
            trickle = Trickle(others, [room], "lingering")
            await asyncio.sleep(linger)
            await trickle.stop()
    finally:
        nodes["n1"].resume()
    note("n1 resumed (SIGCONT)")
    trickle = Trickle(members, [room], "resuming")
    await converged(nodes, 30)
    await one_epoch(members, room)
    await trickle.stop()
    await all_received(members, await publish_round(members, [room], "resumed"))

    epochs_note(members, [room])
    fences = [line.split("  ", 1)[-1] for line in nodes["n1"].output().splitlines()
              if "fenced" in line]
    note(f"n1 fenced: {fences[:3]}")
    check_promises(members)
    for m in members:
        await m.close()


async def paused_owner_resumes_just_after_its_death():
    await paused_owner(0)


async def paused_owner_resumes_when_its_death_is_old_news():
    """Paused 3 s past its death: the others no longer piggyback the death (4 retransmits at
    200ms probes), so on SIGCONT n1 may hear of itself only through push-pull or a rejoin, which
    can suspect it but not declare it dead (cluster/membership.h): it refutes a suspicion."""
    await paused_owner(3)


async def paused_owner_with_a_shared_redis_store():
    """Redis, sync durability: the new owner continues n1's epoch from the store, so on SIGCONT
    n1 orders the publishes it had queued at offsets the new owner already stored. The append
    script refuses them (WEIRCONFLICT): n1 answers them `unavailable` (they are retried), reloads
    the room and tells its members what they missed; one (epoch, offset) never names two
    messages, and nothing acknowledged is lost."""
    check(shutil.which("redis-server"), "redis-server is installed (make deps installs it)")
    redis = RedisServer(TMP)
    try:
        await paused_owner(0, ("--store", f"redis://127.0.0.1:{redis.port}", "--durability",
                               "sync"))
    finally:
        redis.stop()


def main():
    global BUILD, TMP
    BUILD = build_dir(__doc__, "build")
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that atexit cleans up
    tests = [paused_owner_resumes_just_after_its_death,
             paused_owner_resumes_when_its_death_is_old_news,
             paused_owner_with_a_shared_redis_store]
    why = netns_unavailable()
    if why:
        print(f"skip partition_each_side_serves_then_heals: {why}", flush=True)
    else:
        remove_stale_namespaces()
        tests.insert(0, partition_each_side_serves_then_heals)
    with tempfile.TemporaryDirectory() as tmp:
        TMP = tmp
        failed = run_tests(tests, timeout=90)
    return finish(len(tests), failed)


if __name__ == "__main__":
    sys.exit(main())
