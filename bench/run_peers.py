#!/usr/bin/python3
"""bench/run_peers.py — weir side by side with uWebSockets.js and Node `ws`, on one machine.

Run it through bench/run_peers.sh (which installs the peers' npm packages and builds weir):

    bash bench/run_peers.sh --scenarios echo-32,echo-4k --rounds 3 --seconds 10

For each scenario and round it starts each server in turn (weir, uWS.js, Node ws: A B C A B C
...) pinned to one core with taskset, loads it with weir-load pinned to another core, and
stops it by its PID; a fresh server per run keeps runs independent. Around each load run it
reads the server's utime+stime from /proc/PID/stat (all of its threads) and its memory from
/proc/PID/status, so the CPU a server spends per message is measured, not only its rate. Then
it prints medians and weir ÷ peer ratios and rewrites the scenarios' blocks in the peers
section of docs/benchmarks.md (peers_report.py). What is measured: peers_scenarios.py.
Standard library only; runs with Debian's /usr/bin/python3.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from peers_report import merge_into_doc, render_block  # noqa: E402
from peers_scenarios import SCENARIOS, SERVERS  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_START_TIMEOUT_S = 10.0
SERVER_STOP_TIMEOUT_S = 5.0
LOAD_SLACK_S = 60.0  # beyond its own --seconds, before a load run counts as hung
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- processes

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of the whole process (every thread), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def memory_bytes(pid):
    """(VmRSS, VmHWM) of the process in bytes; VmHWM is its peak RSS so far."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def cores_busy_seconds(cores):
    """Busy time (user, nice, system, irq, softirq, steal) of these cores, from /proc/stat."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
                total += sum(int(ticks[i]) for i in (0, 1, 2, 5, 6, 7))
    return total / CLK_TCK


def children_cpu_seconds():
    r = os.times()
    return r.children_user + r.children_system


class Servers:
    """Every server this script started, so each is stopped by its PID whatever happens."""

    def __init__(self):
        self.live = {}  # pid -> Popen

    def start(self, argv, log_path):
        log = open(log_path, "wb")
        proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        log.close()
        self.live[proc.pid] = proc
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.live.pop(proc.pid, None)

    def stop_all(self):
        for proc in list(self.live.values()):
            self.stop(proc)


def wait_listening(proc, port):
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before listening"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.05)
    return f"not listening on port {port} after {SERVER_START_TIMEOUT_S:g}s"


def tail(path, lines=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------- one run

def wait_for_quiet_cores(args):
    """Waits, at most --quiet-wait seconds, for a second in which the two cores were nearly
    idle (others' work under 10% of a core), so a run does not start during a compile."""
    deadline = time.monotonic() + args.quiet_wait
    cores = {args.server_cpu, args.load_cpu}
    while time.monotonic() < deadline:
        before = cores_busy_seconds(cores)
        time.sleep(1.0)
        if cores_busy_seconds(cores) - before < 0.1:
            return


def run_once(args, servers, scenario, kind, workdir, tag):
    """One server, one load run. Returns {"ok": bool, "reason": str, metrics...}."""
    wait_for_quiet_cores(args)
    port = free_port()
    url = f"ws://127.0.0.1:{port}{scenario.path}"
    log_path = os.path.join(workdir, f"{tag}.server.log")
    proc = servers.start(["taskset", "-c", str(args.server_cpu)] + kind.argv(args, port), log_path)
    try:
        problem = wait_listening(proc, port)
        if problem:
            return {"ok": False, "reason": f"{kind.label} {problem}: {tail(log_path)}"}
        result = load_while_sampling(args, scenario, proc, url)
        if proc.poll() is not None:
            result = {"ok": False, "reason": f"server died during the run: {tail(log_path)}"}
    finally:
        servers.stop(proc)
    server_log = tail(log_path)
    if result["ok"] and "dropped by maxBackpressure" in server_log and not scenario.drops_expected:
        result.update(ok=False, reason=server_log)  # uws_server.js, at exit
    return result


def load_while_sampling(args, scenario, proc, url):
    load_argv = ["taskset", "-c", str(args.load_cpu), args.load] + scenario.load_args(args, url)
    rss_before, _ = memory_bytes(proc.pid)
    cores = {args.server_cpu, args.load_cpu}
    cpu_before, children_before = cpu_seconds(proc.pid), children_cpu_seconds()
    cores_before = cores_busy_seconds(cores)
    started = time.monotonic()
    try:
        done = subprocess.run(load_argv, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=scenario.run_seconds(args) + LOAD_SLACK_S)
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": "weir-load did not finish in time (killed)"}
    wall = time.monotonic() - started
    if proc.poll() is not None:
        return {"ok": False, "reason": "server exited"}
    cpu = cpu_seconds(proc.pid) - cpu_before
    rss_after, rss_peak = memory_bytes(proc.pid)
    load_cpu = children_cpu_seconds() - children_before  # only weir-load was reaped meanwhile
    # What the two cores did for anyone else (other processes, interrupts, steal by the
    # hypervisor): a run with much of it measured a busy machine, not the servers.
    others_cpu = cores_busy_seconds(cores) - cores_before - cpu - load_cpu
    summary = parse_summary(done.stdout)
    if summary is None:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"ok": False, "reason": f"weir-load printed no JSON summary: {why[0]}"}
    sample = {"cpu_s": cpu, "wall_s": wall, "rss_before_bytes": rss_before, "rss_after_bytes": rss_after,
              "rss_peak_bytes": rss_peak}
    try:
        metrics = scenario.measure(summary, sample)
    except (KeyError, TypeError) as e:
        return {"ok": False, "reason": f"weir-load's summary lacks {e} (has its JSON changed?)"}
    metrics["server_cpu_pct"] = 100 * cpu / wall
    metrics["load_cpu_pct"] = 100 * load_cpu / wall
    metrics["others_cpu_pct"] = max(0.0, 100 * others_cpu / wall)
    ok = done.returncode == 0
    reason = "" if ok else f"weir-load exit {done.returncode}: {summary_errors(summary, done.stderr)}"
    return dict(metrics, ok=ok, reason=reason, summary=summary)


def parse_summary(stdout):
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


# Counters in weir-load summaries that say something went wrong (echo nests them in "errors").
FAILURE_FIELDS = ("connect_failures", "dropped", "pongs_missed", "unexpected_closes", "mismatches",
                  "protocol_errors")


def summary_errors(summary, stderr):
    counters = dict(summary, **summary.get("errors", {})) if isinstance(summary.get("errors"), dict) \
        else summary
    bad = [f"{k} {counters[k]}" for k in FAILURE_FIELDS if counters.get(k)]
    first = next((l for l in stderr.splitlines() if l.startswith("weir-load:") and "not shown" not in l), "")
    return ", ".join(bad + ([first[:120]] if first else [])) or "see weir-load's summary"


# ---------------------------------------------------------------------------- all runs

def run_all(args, scenarios, kinds):
    """results[scenario][server key] = list of per-round results."""
    servers = Servers()
    results = {s.name: {k.key: [] for k in kinds} for s in scenarios}
    workdir = tempfile.mkdtemp(prefix="weir-peers-")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        for scenario in scenarios:
            for rnd in range(1, args.rounds + 1):
                for kind in kinds:  # A B C, A B C, ...: drift hits every server alike
                    tag = f"{scenario.name}.{kind.key}.{rnd}"
                    r = run_once(args, servers, scenario, kind, workdir, tag)
                    results[scenario.name][kind.key].append(r)
                    print(progress_line(scenario, kind, rnd, r), flush=True)
    finally:
        servers.stop_all()
    return results, workdir


def progress_line(scenario, kind, rnd, r):
    head = f"{scenario.name:14} round {rnd}  {kind.label:8}"
    if not r["ok"] and "summary" not in r:
        return f"{head} FAILED: {r['reason']}"
    cells = [f"{c.label} {c.fmt(r[c.key])}" for c in scenario.columns if c.key in r]
    return f"{head} " + ", ".join(cells) + ("" if r["ok"] else f"  FAILED: {r['reason']}")


# ---------------------------------------------------------------------------- command line

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run_peers.sh", description="weir side by side with uWebSockets.js and Node ws.",
        epilog="scenarios: " + "; ".join(
            f"{s.name} ({s.description})" + ("" if s.load_args else f" [waiting for {s.waiting_for}]")
            for s in SCENARIOS.values()))
    p.add_argument("--scenarios", default="echo-32,echo-4k",
                   help="comma-separated, or `all` for every one that can run (default: %(default)s)")
    p.add_argument("--servers", default="weir,uws,ws", help="comma-separated, run in this order (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="runs per server per scenario (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=10, help="measured seconds per run (default: %(default)s)")
    p.add_argument("--warmup", type=float, default=2, help="load seconds before measuring (default: %(default)s)")
    p.add_argument("--weir", default="build/weir", help="weir binary, from the repo root (default: %(default)s)")
    p.add_argument("--load", default="build/weir-load", help="weir-load binary, from the repo root (default: %(default)s)")
    p.add_argument("--node", default="/usr/bin/node", help="Node for the peers (default: %(default)s)")
    p.add_argument("--server-cpu", type=int, default=0, help="core for the server (default: %(default)s)")
    p.add_argument("--load-cpu", type=int, default=1, help="core for weir-load (default: %(default)s)")
    p.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                   help="before each run, wait up to this long for the two cores to be idle (default: %(default)s)")
    p.add_argument("--doc", default="docs/benchmarks.md", help="file whose peers section is updated (default: %(default)s)")
    p.add_argument("--no-doc", action="store_true", help="print the tables without writing --doc")
    p.add_argument("--json", help="also write every run's metrics and weir-load summary to this file")
    a = p.parse_args(argv)
    problems = []
    names = [n for n in a.scenarios.split(",") if n]
    if names == ["all"]:
        names = [n for n, s in SCENARIOS.items() if s.load_args is not None]
    for n in names:
        if n not in SCENARIOS:
            problems.append(f"unknown scenario {n!r}")
        elif SCENARIOS[n].load_args is None:
            problems.append(f"scenario {n} cannot run yet: it needs {SCENARIOS[n].waiting_for}")
    keys = [k for k in a.servers.split(",") if k]
    problems += [f"unknown server {k!r} (weir, uws, ws)" for k in keys if k not in SERVERS]
    if a.rounds < 1 or a.seconds <= 0 or a.warmup < 0:
        problems.append("--rounds must be >= 1, --seconds > 0, --warmup >= 0")
    for path in ([a.load] + ([a.weir] if "weir" in keys else [])):
        if not os.access(os.path.join(REPO, path), os.X_OK):
            problems.append(f"{path} is not an executable (build it: make {path})")
    if problems:
        p.error("; ".join(problems))
    return a, [SCENARIOS[n] for n in names], [SERVERS[k] for k in keys]


def main(argv):
    args, scenarios, kinds = parse_args(argv)
    command_line = os.environ.get("WEIR_BENCH_COMMAND") or "/usr/bin/python3 bench/run_peers.py " + " ".join(argv)
    print(f"# {command_line}", flush=True)
    try:
        results, workdir = run_all(args, scenarios, kinds)
    except KeyboardInterrupt as e:
        print(f"interrupted ({e}); every server was stopped", file=sys.stderr)
        return 130
    blocks = {s.name: render_block(args, s, kinds, results[s.name], command_line) for s in scenarios}
    print("\n" + "\n".join(blocks.values()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command_line, "results": results}, f, indent=1)
    if args.no_doc:
        print(f"(server logs in {workdir}; --no-doc: {args.doc} left alone)")
    else:
        merge_into_doc(os.path.join(REPO, args.doc), blocks)
        print(f"(server logs in {workdir}; updated {', '.join(blocks)} in {args.doc})")
    failed = sum(not r["ok"] for per in results.values() for runs in per.values() for r in runs)
    if failed:
        print(f"{failed} run(s) failed; see the table", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
