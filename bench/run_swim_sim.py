#!/usr/bin/python3
"""bench/run_swim_sim.py — the SWIM simulation (weir-swim-sim) at 10, 100 and 1000 nodes.

For each case NODES:LOSS (default: 10, 100 and 1000 nodes at 0% and 5% datagram loss) it runs
BUILD/weir-swim-sim --json once, pinned to core --cpu (1) under `timeout`, with the case's
duration and kill count from SIZES below, and prints one line per run. Then it prints the
section and, unless --no-doc, replaces the one between <!-- swim:begin --> and
<!-- swim:end --> in docs/benchmarks.md (appended when missing). The block that
bench/run_swim_procs.py writes inside it (<!-- swim-procs:begin --> ... end) is kept.
The defaults take about 6 minutes. Standard library only.
"""

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_fanout import machine_line, weir_line, write_doc  # noqa: E402

BEGIN, END = "<!-- swim:begin -->", "<!-- swim:end -->"
PROCS_BEGIN, PROCS_END = "<!-- swim-procs:begin -->", "<!-- swim-procs:end -->"
DOC = "docs/benchmarks.md"
DEFAULT_CASES = "10:0,10:0.05,100:0,100:0.05,1000:0,1000:0.05"

# nodes -> flags: the run must cover convergence plus the suspicion timeout
# (4 * max(1, log10 n) probe intervals: 4 s, 8 s, 12 s) plus dissemination, with room to spare
# for the false-positive count. At 1000 nodes on one core the default 30 s rejoin (every node
# pushes its whole state to the seed, which answers with its own) overloads the process and the
# cluster never converges (docs/benchmarks.md), so those runs rejoin every 600 s (never, here).
SIZES = {
    10: ["--duration", "40s", "--kill", "2"],
    100: ["--duration", "50s", "--kill", "5"],
    1000: ["--duration", "120s", "--converge-timeout", "90s", "--kill", "10", "--start-spread", "20s",
           "--rejoin-interval", "600s"],
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build", help="folder with weir-swim-sim (build)")
    p.add_argument("--cases", default=DEFAULT_CASES,
                   help=f"NODES:LOSS runs, in order ({DEFAULT_CASES})")
    p.add_argument("--cpu", default="1", help="core to pin the simulation to, '' for none (1)")
    p.add_argument("--seed", default="1", help="the simulation's --seed (1)")
    p.add_argument("--extra", default="", help="more weir-swim-sim flags for every run")
    p.add_argument("--no-doc", action="store_true", help="print the section, do not write it")
    p.add_argument("--json", help="also write every run's JSON to this file")
    p.add_argument("--load", default="",
                   help="FILE,...: runs saved by --json to put in the table before this run's "
                        "(with --cases '' only those)")
    return p.parse_args()


def run_case(a, nodes, loss):
    cmd = [os.path.join(a.build, "weir-swim-sim"), "--nodes", str(nodes), "--loss", str(loss),
           "--seed", a.seed, *SIZES.get(nodes, SIZES[100]), *a.extra.split(), "--json"]
    shown = " ".join(["weir-swim-sim", *cmd[1:]])
    if a.cpu:
        cmd = ["taskset", "-c", a.cpu, *cmd]
        shown = f"taskset -c {a.cpu} {shown}"
    out = subprocess.run(["timeout", "600", *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{shown}: exit {out.returncode}\n{out.stderr}")
    r = json.loads(out.stdout)
    r["command"] = shown
    return r


def secs(v, digits=2):
    return f"{v:.{digits}f}"


def per_hour(fp):
    return f"{fp['episodes']} ({fp['per_node_hour']:.2f}/node-h)"


def row(r):
    det, first = r["detection_s"], r["first_suspicion_s"]
    pairs = det["count"] + r["undetected_pairs"]
    detected = "" if r["undetected_pairs"] == 0 else f" ({det['count']}/{pairs} detected)"
    fail = 100.0 * r["probe_failures"] / max(r["probes"], 1)
    conv = (secs(r["converge_s"], 1) if r["converged"] else
            f"no: {100 * r['alive_pairs_at_kill']:.1f}% of pairs alive at {r['kill_at_s']:.0f}"
            if "alive_pairs_at_kill" in r else f"no, not by {r['kill_at_s']:.0f}")
    detection = f"{secs(det['median'])} / {secs(det['p99'])}{detected}"
    first_text = secs(first["median"])
    if r["run_s"] - r["kill_at_s"] < 1:  # the overloaded loop reached the kill only at the end
        detection, first_text = "– (no time left after the kill)", "–"
    return (f"| {r['nodes']} | {100 * r['loss']:.0f}% | {conv} | {len(r['killed'])} | "
            f"{detection} | {first_text} | {per_hour(r['false_dead'])} | "
            f"{per_hour(r['false_suspect'])} | {r['steady_bytes_out_per_node_s']:.0f} | "
            f"{r['bytes_out_per_node_s']:.0f} | {fail:.2f}% | {r['cpu_percent']:.0f}% | "
            f"{flags_of(r)} |")


def flags_of(r):
    """The run's flags besides --nodes, --loss, --seed and --json, from its command."""
    words = r["command"].split()
    words = words[words.index("--seed") + 2:] if "--seed" in words else []
    return "`" + " ".join(w for w in words if w != "--json") + "`"


def kept_procs_block():
    try:
        with open(DOC) as f:
            doc = f.read()
    except FileNotFoundError:
        return None
    if PROCS_BEGIN in doc and PROCS_END in doc:
        return PROCS_BEGIN + doc.split(PROCS_BEGIN, 1)[1].split(PROCS_END, 1)[0] + PROCS_END
    return None


def section(runs, argv):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as f:
        load_avg = f.read().split()[0]
    lines = [
        BEGIN, "## Cluster membership (SWIM simulation)", "",
        f"Measured {now} by `{argv}` (one run per row"
        + ("; rows loaded with --load were measured earlier the same way, by the commands "
           "listed below" if "--load" in argv else "")
        + f"). Load average at the end: {load_avg}.", "",
        f"- machine: {machine_line()}; **shared with other engineers' builds and tests** during "
        "the runs, so one core was not always the simulation's alone",
        f"- weir: {weir_line()}", "",
        "`weir-swim-sim` (tools/swim_sim/) runs N real `cluster::Membership` instances in one "
        "process, all on one reactor thread, each with its own UDP socket on 127.0.0.1: the "
        "server's SWIM code, codec, HMAC and timers, nothing mocked. Node 0 starts first and "
        "every other node joins through it, the others starting spread over the first second "
        "(20 s at 1000 nodes). Loss is the Membership packet filter: each datagram is lost with "
        "the given probability (split between the sending and the receiving side), from a "
        "seeded generator. Once every node lists every other alive (converged), K random "
        "non-seed nodes are stopped abruptly (`Membership::stop()`: socket closed, nobody told) "
        "and the run goes on to its end. Defaults: probe every 1 s, probe timeout 500 ms, 3 "
        "indirect checks, suspicion timeout 4 x max(1, log10 n) x 1 s (4 s at 10 nodes, 8 s at "
        "100, 12 s at 1000), push-pull every 30 s.", "",
        "- **detection**: from the kill to each live node's `dead` event, over every (live node, "
        "killed node) pair; **first suspicion**: from the kill to the first `suspected` event "
        "about it anywhere (median over the killed nodes);",
        "- **false dead / false suspect**: verdicts about nodes that were running, counted as "
        "distinct (node, incarnation) episodes however many nodes heard them, and per node-hour "
        "of running nodes;",
        "- **gossip B/node/s**: `MembershipStats::bytes_out` (UDP payload) per node per second, "
        "after convergence (live nodes) and over the whole run (joins included);",
        "- **probe fail**: probes without any ack, direct or indirect, of all probes; **CPU**: "
        "the simulation's CPU over the run, share of one core (near 100% would mean the "
        "reactor could not keep up and the timings would be late).", "",
        "| nodes | loss | converged (s) | killed | detection median / p99 (s) | "
        "first suspicion (s) | false dead | false suspect | gossip B/node/s steady | "
        "B/node/s whole run | probe fail | CPU | flags |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[row(r) for r in runs], "",
        "Do the numbers make sense? First suspicion ≈ the wait until some node probes the dead "
        "one (each node probes one member a second, so about one probe a second reaches any "
        "given node) plus the probe interval that must end without an ack: 1-2 s, as measured. "
        "Declared dead ≈ first suspicion + the suspicion timeout (4 s, 8 s, 12 s) + the `dead` "
        "gossip spreading (a fraction of a second at 10 nodes, 2-3 s at 1000): 5-6 s, 10-12 s, "
        "14-17 s expected; 5.4 s, 11.7 s and 15-16 s measured. With 5% loss a direct probe "
        "fails about 10% of the time but the three indirect probes almost always get through, "
        "so false suspicions stay rare and are refuted well within the suspicion timeout; no "
        "live node was declared dead at 10 and 100 nodes, nor at 1000 nodes without loss. Probe failures at 0% loss are the probes of "
        "the killed nodes before they were declared dead.", "",
        "**1000 nodes.** With the defaults (rejoin every 30 s) the run collapses, see the last "
        "row: every node pushes its whole state (about 25 datagrams at 1000 members) to the "
        "seed every 30 s and the seed answers each with its own, which together with the join "
        "traffic saturates the one core the 1000 nodes share; acks then come late, live nodes "
        "get suspected and declared dead, and `rejoin_tick` pushes the whole state to every "
        "member believed dead as well, which feeds the overload (57 KB/node/s, 5 million "
        "datagrams dropped by full socket buffers, timers 55 s late; the numbers of that run "
        "describe the overloaded simulator, not SWIM). With the rejoin pushed out of the run "
        "(`--rejoin-interval 600s`; push-pull every 30 s stays on, and without it gossip alone "
        "did not converge 1000 nodes in 80 s) the simulation at 0% loss uses under half a core "
        "and the cluster converges, detects and stays clean. **At 5% loss the 1000-node run "
        "overloads again** (81% of the pinned core, which other engineers' jobs shared; timers "
        "up to 8 s late; 61% of pairs alive at the kill): lost datagrams keep every node's "
        "broadcast queue long, every datagram sent sorts the whole queue (`piggyback`'s "
        "stable_sort, the top of a perf profile of a 1000-node join phase, with `queue_broadcast`'s "
        "linear erase and the member map's string compares next), the loop falls behind, acks "
        "come late and false suspicions add broadcasts. So the 1000-node 5% row measures the "
        "overloaded simulator, not SWIM: a trustworthy 1000-node figure at 5% needs the nodes "
        "spread over several cores (reactors) or a cheaper broadcast queue (bucketed by "
        "transmit count, as memberlist's TransmitLimitedQueue is a btree). A real deployment runs one node per "
        "machine, so the simulator's single core is not the limit there, but the seed would "
        "still receive 1000 whole states every 30 s: rate-limiting the rejoin (only to seeds "
        "we are not in contact with, and to dead members a few at a time) is worth doing "
        "in cluster/membership.cc before 1000-node clusters.", "",
        "Commands, one per row:", "", "```", *[r["command"] for r in runs], "```", "",
        kept_procs_block() or f"{PROCS_BEGIN}\n(real processes: run "
        f"`/usr/bin/python3 bench/run_swim_procs.py`)\n{PROCS_END}",
        END, ""]
    return "\n".join(lines)


def main():
    a = parse_args()
    exe = os.path.join(a.build, "weir-swim-sim")
    if not os.access(exe, os.X_OK):
        sys.exit(f"{exe}: not built (make BUILD={a.build} {exe})")
    argv = "/usr/bin/python3 " + " ".join(["bench/run_swim_sim.py", *sys.argv[1:]])
    runs = []
    for path in filter(None, a.load.split(",")):
        with open(path) as f:
            runs += json.load(f)
    for case in filter(None, a.cases.split(",")):
        nodes, loss = case.split(":")
        r = run_case(a, int(nodes), float(loss))
        runs.append(r)
        print(row(r), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)
    text = section(runs, argv)
    print(text)
    if not a.no_doc:
        write_doc(DOC, text, BEGIN, END)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
