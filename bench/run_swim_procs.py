#!/usr/bin/python3
"""bench/run_swim_procs.py — SWIM failure detection between real weir processes on loopback.

Each round starts --nodes (5) weir processes with --gossip on free UDP ports (the 2nd and later
joining the 1st), a shared --cluster-secret-file and the given --probe-interval and
--probe-timeout, waits until every node lists every node alive on GET /cluster, then kills one
non-seed node with SIGKILL. One thread per surviving node polls its /cluster every --poll-ms
(20 ms) and records when the killed node is first listed suspect and dead. A round ends when
every survivor lists it dead (or after --timeout seconds); any survivor listing another running
node as suspect or dead meanwhile is a false positive. Every process is stopped by its PID.

Loss: none. `tc netem` on `lo` would degrade loopback for every other user of this shared
machine, so the real processes run without induced loss; the 5% loss figures come from the
simulation (bench/run_swim_sim.py), which runs the same cluster::Membership code.

It prints one line per round and the block; unless --no-doc it replaces the block between
<!-- swim-procs:begin --> and <!-- swim-procs:end --> in docs/benchmarks.md (inside the
section bench/run_swim_sim.py writes). About a minute with the defaults. Standard library only.
"""

import argparse
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))
from run_fanout import machine_line, weir_line, write_doc  # noqa: E402
from weir_harness import Failure, Weir  # noqa: E402

BEGIN, END = "<!-- swim-procs:begin -->", "<!-- swim-procs:end -->"
DOC = "docs/benchmarks.md"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build", help="folder with weir (build)")
    p.add_argument("--nodes", type=int, default=5, help="weir processes per round (5)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, a fresh cluster each (5)")
    p.add_argument("--probe-interval", default="1s", help="weir --probe-interval (1s)")
    p.add_argument("--probe-timeout", default="500ms", help="weir --probe-timeout (500ms)")
    p.add_argument("--poll-ms", type=float, default=20, help="GET /cluster period per node (20)")
    p.add_argument("--timeout", type=float, default=30, help="seconds to wait for detection (30)")
    p.add_argument("--seed", type=int, default=1, help="which node is killed each round (1)")
    p.add_argument("--no-doc", action="store_true", help="print the block, do not write it")
    p.add_argument("--json", help="also write every round's measurements to this file")
    return p.parse_args()


def free_gossip_port():
    """A port free for UDP (gossip) and TCP (peer links listen on the gossip address)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue


def view(weir):
    """node_id -> state on weir's GET /cluster, {} when it does not answer."""
    try:
        status, _, body = weir.http("GET", "/cluster", timeout=1)
    except OSError:
        return {}
    if status != 200:
        return {}
    return {m["node_id"]: m["state"] for m in json.loads(body)["members"]}


def start_cluster(a, secret):
    flags = ["--threads", "1", "--cluster-secret-file", secret, "--probe-interval",
             a.probe_interval, "--probe-timeout", a.probe_timeout, "--log-level", "warn"]
    nodes, seed = [], None
    for i in range(a.nodes):
        address = f"127.0.0.1:{free_gossip_port()}"
        extra = ["--node-id", f"p{i}", "--gossip", address] + (["--join", seed] if seed else [])
        for attempt in range(3):  # a port taken between our check and weir's bind: retry
            try:
                nodes.append(Weir(a.build, *flags, *extra))
                break
            except Failure:
                if attempt == 2:
                    for w in nodes:
                        w.stop()
                    raise
                address = f"127.0.0.1:{free_gossip_port()}"
                extra[3] = address
        seed = seed or address
    return nodes


def wait_converged(nodes, timeout=20):
    ids = {f"p{i}" for i in range(len(nodes))}
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(view(w) == {i: "alive" for i in ids} for w in nodes):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


class Watcher(threading.Thread):
    """Polls one survivor's /cluster; records when `victim` turns suspect and dead (seconds
    after t0) and every other member it ever lists not alive."""

    def __init__(self, weir, victim, t0, a):
        super().__init__(daemon=True)
        self.weir, self.victim, self.t0, self.a = weir, victim, t0, a
        self.suspect_s = self.dead_s = None
        self.false = set()
        self.done = threading.Event()

    def run(self):
        deadline = self.t0 + self.a.timeout
        while time.monotonic() < deadline and not self.done.is_set():
            v = view(self.weir)
            t = time.monotonic() - self.t0
            state = v.get(self.victim)
            if state in ("suspect", "dead") and self.suspect_s is None:
                self.suspect_s = t
            if state == "dead" and self.dead_s is None:
                self.dead_s = t
                if self.suspect_s is None or self.suspect_s > t:
                    self.suspect_s = t
            self.false |= {(n, s) for n, s in v.items() if n != self.victim and s != "alive"}
            if self.dead_s is not None:
                return
            time.sleep(self.a.poll_ms / 1000)


def run_round(a, secret, rng, round_no):
    nodes = start_cluster(a, secret)
    try:
        converge_s = wait_converged(nodes)
        if converge_s is None:
            return {"round": round_no, "error": "did not converge in 20 s"}
        k = rng.randrange(1, a.nodes)
        victim = f"p{k}"
        survivors = [w for i, w in enumerate(nodes) if i != k]
        t0 = time.monotonic()
        nodes[k].kill()
        watchers = [Watcher(w, victim, t0, a) for w in survivors]
        for w in watchers:
            w.start()
        for w in watchers:
            w.join(a.timeout + 5)
        # Keep watching the others a little: a late false verdict would show here.
        late = {(n, s) for w in survivors for n, s in view(w).items()
                if n != victim and s != "alive"}
        return {
            "round": round_no, "converge_s": converge_s, "victim": victim,
            "suspect_s": [w.suspect_s for w in watchers],
            "dead_s": [w.dead_s for w in watchers],
            "false": sorted({f"{n}:{s}" for w in watchers for n, s in w.false} |
                            {f"{n}:{s}" for n, s in late}),
        }
    finally:
        for w in nodes:
            w.stop()


def stats(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return "–"
    return f"{v[0]:.2f} / {statistics.median(v):.2f} / {v[-1]:.2f}"


def block(a, rounds, argv):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ok = [r for r in rounds if "error" not in r]
    dead = [x for r in ok for x in r["dead_s"]]
    suspect = [x for r in ok for x in r["suspect_s"]]
    first = [min((x for x in r["suspect_s"] if x is not None), default=None) for r in ok]
    undetected = sum(x is None for x in dead)
    false = sum(len(r["false"]) for r in ok)
    lines = [
        BEGIN, f"### Real processes ({a.nodes} weir nodes on loopback, no induced loss)", "",
        f"Measured {now} by `{argv}` on the same shared machine: {a.rounds} rounds, each a "
        f"fresh cluster of {a.nodes} `weir --gossip` processes (`--threads 1 --probe-interval "
        f"{a.probe_interval} --probe-timeout {a.probe_timeout}`, suspicion mult 4: with "
        f"Lifeguard a suspicion's timeout starts at 6 x (4 x max(1, log10 {a.nodes}) x probe "
        "interval) and shrinks to the latter as 3 other members confirm it), one non-seed node "
        "killed "
        "with SIGKILL after convergence, every survivor's `GET /cluster` polled every "
        f"{a.poll_ms:.0f} ms. Times are seconds from the SIGKILL to the first poll that lists "
        "the node suspect or dead, so they include up to one poll period.", "",
        "**No packet loss here:** `tc netem` on `lo` would slow loopback for every other user "
        "of this shared machine, so it was not used; the 5% loss figures are the simulation's "
        "above, which runs the same `cluster::Membership` code.", "",
        "| rounds | survivors x rounds | first suspicion min / median / max (s) | "
        "suspect (each survivor) min / median / max (s) | dead (each survivor) min / median / "
        "max (s) | undetected | false suspect/dead |",
        "|---|---|---|---|---|---|---|",
        f"| {len(ok)}/{len(rounds)} | {len(dead)} | {stats(first)} | {stats(suspect)} | "
        f"{stats(dead)} | {undetected} | {false} |", "",
        "Per round (median over the survivors): " + "; ".join(
            f"{r['victim']} suspect {stats(r['suspect_s']).split(' / ')[1]} s, dead "
            f"{stats(r['dead_s']).split(' / ')[1]} s" for r in ok) + ".",
        *[f"Round {r['round']} failed: {r['error']}." for r in rounds if "error" in r],
        END]
    return "\n".join(lines)


def main():
    a = parse_args()
    exe = os.path.join(a.build, "weir")
    if not os.access(exe, os.X_OK):
        sys.exit(f"{exe}: not built (make BUILD={a.build} {exe})")
    argv = "/usr/bin/python3 " + " ".join(["bench/run_swim_procs.py", *sys.argv[1:]])
    rng = random.Random(a.seed)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="weir-swim-procs-") as tmp:
        secret = os.path.join(tmp, "cluster.key")
        with open(secret, "w") as f:
            f.write("swim-procs-bench-secret\n")
        for i in range(1, a.rounds + 1):
            r = run_round(a, secret, rng, i)
            rounds.append(r)
            print(json.dumps(r), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rounds, f, indent=1)
    text = block(a, rounds, argv)
    print(text)
    if not a.no_doc:
        with open(DOC) as f:
            if BEGIN not in f.read():
                sys.exit(f"{DOC} has no {BEGIN}: run bench/run_swim_sim.py first")
        write_doc(DOC, text, BEGIN, END)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
