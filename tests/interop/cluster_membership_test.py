#!/usr/bin/env python3
"""Cluster membership (SWIM over UDP, --gossip), end to end against the weir binary.

Usage: cluster_membership_test.py [BUILD_DIR]   (default: build)

Every weir runs on 127.0.0.1 with a free TCP port and a free UDP gossip port, probing every
100ms (50ms probe timeout), with the shared HMAC key in a temporary folder; each is stopped by
its PID.
- three nodes, the 2nd and 3rd joining the 1st: each lists all three alive on GET /cluster
  (within 10 s), and /readyz says "3 alive of 3";
- node 3 killed (SIGKILL): nodes 1 and 2 list it dead (within 15 s);
- node 2 stopped (SIGTERM, exit 0): it leaves gracefully, node 1 lists it left, not dead;
- a 4th node with another secret joining node 1 never appears in node 1's list (2 s), and its
  own node id defaults to HOSTNAME:PORT of its --gossip;
- without --gossip, /cluster answers 404 with a JSON error and /readyz says "cluster":"off";
- --gossip without --cluster-secret-file exits 2 naming the missing flag;
- rooms owned: with members in 12 rooms on one node of three, every node's /cluster reports
  each member's rooms_owned, and they add up to 12 (the rooms' owners spread by rendezvous
  hashing); after the members leave, they add up to 0;
- push-pull over the peer links: with --push-pull-interval 200ms, every node's periodic
  whole-state exchanges go over TCP (weir_gossip_push_pull_total{transport="tcp"} rises) and
  none falls back to UDP while the links are up.
Prints one line per test; exits 1 on any failure.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from weir_harness import (Weir, build_dir, check, connect, finish, free_gossip_port, join,
                          run_tests)

BUILD = "build"
TMP = None


def secret_file(name, key):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(key + "\n")
    return path


def gossip_node(node_id, secret, join=None, extra=()):
    """A weir with gossip on a free UDP port; (weir, its gossip address)."""
    address = f"127.0.0.1:{free_gossip_port()}"
    flags = ["--threads", "2", "--gossip", address, "--cluster-secret-file", secret,
             "--probe-interval", "100ms", "--probe-timeout", "50ms", *extra]
    if node_id:
        flags += ["--node-id", node_id]
    if join:
        flags += ["--join", join]
    return Weir(BUILD, *flags), address


def cluster(weir):
    status, _, body = weir.http("GET", "/cluster")
    check(status == 200, f"/cluster answers 200: {status} {body}")
    return json.loads(body)


def states(weir):
    """node_id -> state in weir's /cluster."""
    return {m["node_id"]: m["state"] for m in cluster(weir)["members"]}


def wait_for(what, cond, timeout):
    """Polls cond() every 50ms until it is true; a Failure naming `what` (and the last value
    seen) after `timeout` seconds."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = cond()
        if last is True:
            return
        time.sleep(0.05)
    check(False, f"{what} within {timeout}s (last: {last})")


def all_in(weir, expected):
    """True when weir's view holds exactly the `expected` node_id -> state, else that view."""
    view = states(weir)
    return True if view == expected else view


# ---------------------------------------------------------------- tests


async def three_nodes_join_fail_and_leave():
    secret = secret_file("cluster.key", "cluster-test-secret")
    n1, a1 = gossip_node("n1", secret)
    n2, _ = gossip_node("n2", secret, join=a1)
    n3, _ = gossip_node("n3", secret, join=a1)
    alive = {"n1": "alive", "n2": "alive", "n3": "alive"}
    for name, w in (("n1", n1), ("n2", n2), ("n3", n3)):
        wait_for(f"{name} lists three alive", lambda w=w: all_in(w, alive), 10)
    view = cluster(n1)
    check(view["node_id"] == "n1", f"/cluster names this node: {view}")
    for m in view["members"]:
        check(m["address"].startswith("127.0.0.1:") and isinstance(m["incarnation"], int),
              f"a member has an address and an incarnation: {m}")
    ready = json.loads(n1.http("GET", "/readyz")[2])
    check(ready.get("cluster") == "3 alive of 3", f"/readyz counts the members: {ready}")

    n3.kill()
    dead3 = {"n1": "alive", "n2": "alive", "n3": "dead"}
    for name, w in (("n1", n1), ("n2", n2)):
        wait_for(f"{name} lists n3 dead", lambda w=w: all_in(w, dead3), 15)

    status = n2.stop()
    check(status == 0, f"n2 exits 0 on SIGTERM: {status}")
    left2 = {"n1": "alive", "n2": "left", "n3": "dead"}
    wait_for("n1 lists n2 left", lambda: all_in(n1, left2), 5)
    time.sleep(0.5)  # probes and suspicion would have turned it dead by now if it were not left
    check(states(n1) == left2, f"n2 stays left: {states(n1)}")
    ready = json.loads(n1.http("GET", "/readyz")[2])
    check(ready.get("cluster") == "1 alive of 3", f"/readyz counts the members: {ready}")
    check("cluster: n2 left" in n1.output() and "cluster: n3 dead" in n1.output(),
          f"n1 logs the events: {n1.output()[-1500:]}")
    n1.stop()


async def another_secret_never_joins():
    n1, a1 = gossip_node("n1", secret_file("good.key", "the-right-key"))
    n4, a4 = gossip_node(None, secret_file("bad.key", "the-wrong-key"), join=a1)
    own = cluster(n4)
    expected_id = f"{socket.gethostname()}:{a4.rsplit(':', 1)[1]}"
    check(own["node_id"] == expected_id, f"node id defaults to HOSTNAME:PORT: {own['node_id']}")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        view = states(n1)
        check(view == {"n1": "alive"}, f"n1 never lists the node with another secret: {view}")
        time.sleep(0.1)
    check(states(n4) == {expected_id: "alive"}, f"n4 lists only itself: {states(n4)}")
    n4.stop()
    n1.stop()


async def without_gossip_the_cluster_is_off():
    w = Weir(BUILD, "--threads", "1")
    status, headers, body = w.http("GET", "/cluster")
    check(status == 404, f"/cluster without --gossip: {status} {body}")
    check(json.loads(body)["error"]["code"] == "cluster_off", f"a JSON error: {body}")
    ready = json.loads(w.http("GET", "/readyz")[2])
    check(ready.get("cluster") == "off", f"/readyz says the cluster is off: {ready}")
    w.stop()


async def gossip_without_secret_exits_2():
    proc = subprocess.run(
        [os.path.join(BUILD, "weir"), "--listen", "127.0.0.1:0", "--gossip",
         f"127.0.0.1:{free_gossip_port()}"], capture_output=True, text=True, timeout=10)
    check(proc.returncode == 2, f"exit status 2: {proc.returncode} {proc.stderr}")
    check("--cluster-secret-file" in proc.stderr, f"the error names the flag: {proc.stderr}")


async def rooms_owned_are_listed():
    secret = secret_file("rooms.key", "cluster-rooms-secret")
    n1, a1 = gossip_node("n1", secret)
    n2, _ = gossip_node("n2", secret, join=a1)
    n3, _ = gossip_node("n3", secret, join=a1)
    nodes = (n1, n2, n3)
    alive = {"n1": "alive", "n2": "alive", "n3": "alive"}
    for w in nodes:
        wait_for("three alive", lambda w=w: all_in(w, alive), 10)

    def owned(w):
        return {m["node_id"]: m["rooms_owned"] for m in cluster(w)["members"]}

    def totals(expected):
        def cond():
            views = [owned(w) for w in nodes]
            ok = all(None not in v.values() and sum(v.values()) == expected for v in views)
            return True if ok else views
        return cond

    ws, _ = await connect(n1)
    rooms = [f"owned-{i}" for i in range(12)]
    for room in rooms:
        await join(ws, room)
    wait_for("rooms_owned add up to 12 on every node", totals(12), 10)
    spread = owned(n1)
    check(sum(1 for count in spread.values() if count > 0) >= 2,
          f"12 rooms spread over more than one owner: {spread}")
    await ws.close()
    wait_for("rooms_owned fall to 0 once the members left", totals(0), 10)
    for w in nodes:
        w.stop()


async def push_pull_goes_over_the_links():
    secret = secret_file("pushpull.key", "cluster-push-pull-secret")
    fast = ["--push-pull-interval", "200ms"]
    n1, a1 = gossip_node("n1", secret, extra=fast)
    n2, _ = gossip_node("n2", secret, join=a1, extra=fast)
    n3, _ = gossip_node("n3", secret, join=a1, extra=fast)
    nodes = (n1, n2, n3)
    alive = {"n1": "alive", "n2": "alive", "n3": "alive"}
    for w in nodes:
        wait_for("three alive", lambda w=w: all_in(w, alive), 10)
        wait_for("two peer links up", lambda w=w: w.metric("weir_cluster_links") == 2 or
                 w.metric("weir_cluster_links"), 10)
    tcp = 'weir_gossip_push_pull_total{transport="tcp"}'
    udp = 'weir_gossip_push_pull_total{transport="udp"}'
    before = {id(w): (w.metric(tcp) or 0, w.metric(udp) or 0) for w in nodes}
    for w in nodes:
        wait_for("push-pulls over TCP", lambda w=w: (w.metric(tcp) or 0) >= before[id(w)][0] + 3
                 or (w.metric(tcp), w.metric(udp)), 10)
        check((w.metric(udp) or 0) == before[id(w)][1],
              f"no push-pull fell back to UDP while the links were up: {w.metric(udp)}")
    for w in nodes:
        w.stop()


def main():
    global BUILD, TMP
    BUILD = build_dir(__doc__, "build")
    with tempfile.TemporaryDirectory(prefix="weir-cluster-") as tmp:
        TMP = tmp
        tests = [three_nodes_join_fail_and_leave, another_secret_never_joins,
                 without_gossip_the_cluster_is_off, gossip_without_secret_exits_2,
                 rooms_owned_are_listed, push_pull_goes_over_the_links]
        failed = run_tests(tests, timeout=40)
    return finish(len(tests), failed)


if __name__ == "__main__":
    sys.exit(main())
