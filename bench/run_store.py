#!/usr/bin/python3
"""bench/run_store.py — room fanout with each store durability mode, end to end.

For each mode (default: --durability none; async on memory; async on SQLite; sync on SQLite) it
starts weir fresh on a free port, pinned to core 0 with `--threads 1` (its store thread shares
that core), runs `weir-load fanout` pinned to core 1, and reads the server's /metrics and its
utime+stime (/proc/PID/stat) at each of weir-load's progress rows, as bench/run_fanout.py does:
the measured window runs from the row that ends the warm-up to the last measured row.
The modes take turns (A B C D A B C D ...) and each cell is the median of the rounds.

- server CPU per delivery: utime+stime / weir_room_deliveries_total (store thread included);
- appends per batch: weir_store_appends_total / weir_store_batches_total over the window.

SQLite files go to a fresh path per run under --tmp (removed after the run): their filesystem
decides what a commit (fsync) costs. The optional redis modes start a redis-server (persistence
off) on a free port pinned to the load generator's core, stopped by PID.

Then it runs the store micro-benchmarks (bench/store_bench.cc, BUILD/weir-bench pinned to core
0; --no-micro skips them) and adds their table. It prints the section; --write-docs also
replaces the one between <!-- store:begin --> and <!-- store:end --> in docs/benchmarks.md
(appended when missing). The defaults take about 100 s. Every process it starts runs
under `timeout` and is stopped by its PID. Standard library only.
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

# Processes, samples and number formats as bench/run_fanout.py has them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_fanout import (busy_seconds, write_doc, child_of, cpu_seconds, fmt, free_port,  # noqa: E402
                        machine_line, pct, run_load, scrape, sh, stop, wait_ready, weir_line)

BEGIN, END = "<!-- store:begin -->", "<!-- store:end -->"
ROW = re.compile(r"^fanout\s+([\d.]+)s\s+(\S+)")
REDIS_SERVER = "/usr/bin/redis-server"

# name -> (weir flags, description); {db} is a fresh SQLite file, {redis} the redis address.
MODES = {
    "none": (["--durability", "none"], "nothing persisted"),
    "memory-async": (["--store", "memory", "--durability", "async"],
                     "in-process maps, appended behind the delivery"),
    "sqlite-async": (["--store", "sqlite:{db}", "--durability", "async"],
                     "SQLite (WAL, synchronous=FULL), appended behind the delivery"),
    "sqlite-sync": (["--store", "sqlite:{db}", "--durability", "sync"],
                    "SQLite, delivered only after the commit"),
    "redis-async": (["--store", "redis://{redis}", "--durability", "async"],
                    "Redis on loopback, appended behind the delivery"),
    "redis-sync": (["--store", "redis://{redis}", "--durability", "sync"],
                   "Redis on loopback, delivered only after the commit"),
}
DEFAULT_MODES = "none,memory-async,sqlite-async,sqlite-sync"

# The same shapes as bench/run_fanout.py: 100x10 publishes ~25x more messages per delivery,
# so it is the one that loads the store.
SHAPES = {
    "100x10": (["--rooms", "100", "--members", "10", "--publishers", "100", "--depth", "4",
                "--size", "64"], "100 rooms x 10 members + 1 publisher each (4 in flight), 64 B"),
    "1x1000": (["--rooms", "1", "--members", "1000", "--publishers", "1", "--depth", "16",
                "--size", "64"], "1 room x 1000 members + 1 publisher (16 in flight), 64 B"),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build", help="folder with weir, weir-load and weir-bench (build)")
    p.add_argument("--modes", default=DEFAULT_MODES,
                   help=f"modes to run, in turn ({DEFAULT_MODES}; also redis-async, redis-sync)")
    p.add_argument("--shape", default="100x10", choices=sorted(SHAPES),
                   help="fanout shape (100x10)")
    p.add_argument("--rounds", type=int, default=3, help="runs per mode; the median is shown (3)")
    p.add_argument("--seconds", type=int, default=5, help="measured seconds per run (5)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up seconds per run (1)")
    p.add_argument("--server-cpu", default="0", help="core for weir (0)")
    p.add_argument("--load-cpu", default="1", help="core for weir-load and redis-server (1)")
    p.add_argument("--tmp", default="/tmp/store-bench",
                   help="SQLite files and server logs (/tmp/store-bench)")
    p.add_argument("--doc", default="docs/benchmarks.md", help="file --write-docs updates")
    p.add_argument("--write-docs", action="store_true",
                   help="replace the store section of --doc with the results")
    p.add_argument("--no-micro", action="store_true",
                   help="skip the store micro-benchmarks (BUILD/weir-bench, bench/store_bench.cc)")
    p.add_argument("--json", help="write every run's figures and weir-load summary here")
    return p.parse_args()


# ------------------------------------------------------------------------------ redis-server

class RedisServer:
    """redis-server without persistence on a free loopback port, stopped by its PID."""

    def __init__(self, cpu, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")])

    def command(self, *args):
        return subprocess.run(["timeout", "5", "redis-cli", "-p", str(self.port), *args],
                              capture_output=True, text=True).stdout.strip()

    def wait_ready(self, deadline_s=5.0):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end and self.proc.poll() is None:
            if self.command("PING") == "PONG":
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        stop(self.proc, self.proc.pid)


# ------------------------------------------------------------------------------------ one run

def sample(port, server_pid, load_pid, cpus):
    return {"t": time.monotonic(), "metrics": scrape(port), "server_cpu": cpu_seconds(server_pid),
            "load_cpu": cpu_seconds(load_pid) if load_pid else float("nan"),
            "busy": busy_seconds(cpus)}


def server_command(a, mode, port, db):
    flags = [f.format(db=db, redis=f"127.0.0.1:{a.redis.port}" if a.redis else "")
             for f in MODES[mode][0]]
    return ["taskset", "-c", a.server_cpu, a.weir, "--listen", f"127.0.0.1:{port}", "--threads",
            "1", "--log-level", "warn", *flags]


def run_once(a, mode, round_no):
    port = free_port()
    db = os.path.join(a.tmp, f"weir-{mode}-r{round_no}.db")
    limit = a.warmup + a.seconds + 60
    server_cmd = server_command(a, mode, port, db)
    load_cmd = ["taskset", "-c", a.load_cpu, a.load, "fanout", "--url", f"ws://127.0.0.1:{port}/ws",
                *SHAPES[a.shape][0], "--seconds", str(a.seconds), "--warmup-seconds", str(a.warmup)]
    if a.redis:
        a.redis.command("FLUSHALL")
    log = open(os.path.join(a.tmp, f"weir-{mode}-r{round_no}.log"), "w")
    server = subprocess.Popen(["timeout", "-k", "5", str(limit + 30), *server_cmd],
                              stdout=log, stderr=subprocess.STDOUT)
    server_pid = child_of(server.pid)
    result = {"mode": mode, "round": round_no, "ok": False, "server_cmd": server_cmd,
              "load_cmd": load_cmd}
    cpus = {a.server_cpu, a.load_cpu}
    try:
        if not server_pid or not wait_ready(port, server):
            log.flush()
            with open(log.name) as f:
                result["error"] = "server did not start: " + f.read()[-300:].strip()
            return result
        rows, summary, status = run_load(
            load_cmd, limit, lambda load_pid: sample(port, server_pid, load_pid, cpus))
        result.update(measure(rows, summary))
        result["ok"] = bool(summary) and status == 0 and "window_s" in result
        if not result["ok"]:
            result.setdefault("error", f"weir-load exited {status}")
        result["summary"] = summary
        return result
    finally:
        stop(server, server_pid)
        log.close()
        for path in glob.glob(db + "*"):
            os.unlink(path)


def delta(a, b, *names):
    """The first of `names` the server exports, as a difference between two samples."""
    for name in names:
        if name in b["metrics"]:
            return b["metrics"][name] - a["metrics"].get(name, 0.0)
    return float("nan")


def ratio(x, y):
    return x / y if y else float("nan")


def measure(rows, summary):
    warm = [s for phase, s in rows if phase == "warmup"]
    meas = [s for phase, s in rows if phase == "measure"]
    if not (warm and meas and summary):
        return {}
    a, b = warm[-1], meas[-1]
    dt = b["t"] - a["t"]
    deliveries = delta(a, b, "weir_room_deliveries_total")
    published = delta(a, b, "weir_room_messages_total")
    server_cpu = b["server_cpu"] - a["server_cpu"]
    load_cpu = b["load_cpu"] - a["load_cpu"]
    return {
        "window_s": dt,
        "deliveries_per_sec": summary["deliveries_per_sec"],
        "published_per_sec": summary["published_per_sec"],
        "p50_ms": summary["latency_ms"]["p50"],
        "p99_ms": summary["latency_ms"]["p99"],
        "lost": summary["lost"],
        "errors": summary["errors"]["total"],
        "cpu_us_per_delivery": ratio(server_cpu * 1e6, deliveries),
        "cpu_us_per_published": ratio(server_cpu * 1e6, published),
        "appends_per_sec": ratio(delta(a, b, "weir_store_appends_total"), dt),
        "appends_per_batch": ratio(delta(a, b, "weir_store_appends_total"),
                                   delta(a, b, "weir_store_batches_total")),
        "store_errors": delta(a, b, 'weir_store_requests_total{result="error"}',
                              "weir_store_errors_total"),
        "server_cpu": ratio(server_cpu, dt),
        "load_cpu": ratio(load_cpu, dt),
        "others_cpu": ratio(b["busy"] - a["busy"] - server_cpu - load_cpu, dt),
    }


# ----------------------------------------------------------------------------- micro-benchmarks

MICRO = re.compile(r"^BM_(BackendAppend|StoreAppend)/(\w+)/(?:batch|n):(\d+)/rooms:(\d+)")


def run_micro(a):
    """bench/store_bench.cc on core 0: {(kind, backend, size, rooms): benchmark JSON}."""
    cmd = ["taskset", "-c", a.server_cpu, a.bench, "--benchmark_filter=BackendAppend|StoreAppend",
           "--benchmark_min_time=0.2", "--benchmark_format=json"]
    p = subprocess.run(["timeout", "-k", "5", "300", *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"weir-bench failed ({p.returncode}): {p.stderr[-500:]}", file=sys.stderr)
        return None
    out = {}
    for b in json.loads(p.stdout)["benchmarks"]:
        m = MICRO.match(b["name"])
        if m:
            out[(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))] = b
    return {"cmd": cmd, "results": out}


def micro_cell(b, counter=None):
    if b is None:
        return "–"
    if b.get("error_occurred"):
        return "skipped"
    return fmt(b.get(counter) if counter else b.get("items_per_second"))


def micro_section(micro):
    res = micro["results"]
    labels = sorted({b.get("label", "") for b in res.values() if b.get("label")})
    lines = ["", "### Store micro-benchmarks (bench/store_bench.cc)", "",
             f"`{sh(micro['cmd'][:-1])}`, right after the runs above; appends per second of "
             "200 B messages (wall clock). *Backend, batch B*: begin_batch, B appends, "
             "commit_batch on the Backend directly, as the store thread runs one batch (one "
             "SQLite transaction, one Redis pipeline). *Store, N*: N appends submitted to "
             "store::Store at once from a thread that is not a reactor, then a wait for the "
             "last completion; *per batch* is how many of them its store thread gathered into "
             "one batch. *rooms*: the appends go to one room or take turns over 100. The "
             "benchmark thread and the store thread share core 0; redis-server (started by "
             "the benchmark, persistence off) is moved to the other core. "
             + ("Labels: " + "; ".join(labels) + "." if labels else ""), "",
             "| backend | rooms | batch 1 | batch 16 | batch 256 | Store N=1 | N=16 | N=256 | "
             "per batch at N=16 | at N=256 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for backend in ("memory", "sqlite", "redis"):
        for rooms in (1, 100):
            d = [res.get(("BackendAppend", backend, n, rooms)) for n in (1, 16, 256)]
            st = [res.get(("StoreAppend", backend, n, rooms)) for n in (1, 16, 256)]
            if not any(d + st):
                continue
            lines.append(f"| {backend} | {rooms} | " + " | ".join(micro_cell(b) for b in d + st)
                         + f" | {micro_cell(st[1], 'appends_per_batch')} | "
                         f"{micro_cell(st[2], 'appends_per_batch')} |")
    return lines


# ------------------------------------------------------------------------------------- report

def median(runs, key):
    vals = [r[key] for r in runs if r.get("ok") and r.get(key) == r.get(key)]
    return statistics.median(vals) if vals else float("nan")


def filesystem(path):
    """The type of the filesystem holding `path` (the longest mount point above it)."""
    path, best, kind = os.path.realpath(path), "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            mount = fields[1].replace("\\040", " ")
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, fields[2]
    return kind


def table(a, runs):
    base = median([r for r in runs if r["mode"] == "none"], "cpu_us_per_delivery")
    lines = ["| mode | deliveries/s | published/s | p50 ms | p99 ms | server CPU µs/delivery | "
             "÷ none | server CPU µs/published | appends/s | appends/batch | store errors | "
             "server CPU | others' CPU | lost | runs ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode in a.mode_list:
        cell = [r for r in runs if r["mode"] == mode]
        m = lambda k: median(cell, k)  # noqa: E731
        lines.append(
            f"| {mode} | {fmt(m('deliveries_per_sec'))} | {fmt(m('published_per_sec'))} | "
            f"{fmt(m('p50_ms'))} | {fmt(m('p99_ms'))} | {fmt(m('cpu_us_per_delivery'))} | "
            f"{fmt(ratio(m('cpu_us_per_delivery'), base))}"
            f"{'' if base != base else '×'} | {fmt(m('cpu_us_per_published'))} | "
            f"{fmt(m('appends_per_sec'))} | {fmt(m('appends_per_batch'))} | "
            f"{fmt(m('store_errors'))} | {pct(m('server_cpu'))} | {pct(m('others_cpu'))} | "
            f"{fmt(m('lost'))} | {sum(1 for r in cell if r.get('ok'))}/{len(cell)} |")
    return lines


def section(a, runs, argv, micro):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open("/proc/loadavg") as f:
        load_avg = f.read().split()[0]
    lines = [BEGIN, "## Store", "",
             f"Measured {now} by `{argv}` ({a.rounds} round(s) of {a.seconds} s after "
             f"{a.warmup} s of warm-up per mode; the modes take turns, weir started fresh for "
             f"every run; medians). Load average at the end: {load_avg}.", "",
             f"- machine: {machine_line()}", f"- weir: {weir_line()}"]
    if any(m.startswith("sqlite") for m in a.mode_list):
        lines.append(f"- SQLite files on {filesystem(a.tmp)} ({a.tmp}), WAL with "
                     "synchronous=FULL: every commit is an fsync")
    if a.redis:
        lines.append(f"- redis-server {a.redis_version}, persistence off, pinned to core "
                     f"{a.load_cpu} with weir-load (its CPU counts under others')")
    lines.append("")
    lines += ["Room fanout (`weir-load fanout`, shape "
              f"{SHAPES[a.shape][1]}) against weir with `--threads 1` pinned to core "
              f"{a.server_cpu}: its reactor and its store thread share that core, so server CPU "
              "includes the store's work (encoding, SQLite statements, hiredis), but not the "
              f"time spent waiting for an fsync or for Redis. weir-load runs on core "
              f"{a.load_cpu}. Every publish is one append; `async` delivers at once and appends "
              "behind, `sync` delivers (and acknowledges to the publisher) only after the "
              "commit, so with a fixed number of messages in flight its rate follows the "
              "commit latency. Server figures cover the measured window, from /metrics and "
              "/proc/PID/stat: CPU per delivery = utime+stime / `weir_room_deliveries_total`, "
              "÷ none compares it with `--durability none`; appends/batch = "
              "`weir_store_appends_total` / `weir_store_batches_total` (a room owner hands its "
              "loop iteration's appends to the store as one request; the store thread runs what "
              "arrived during its own iteration as one transaction or pipeline). The machine is shared: "
              "others' CPU is what the two cores spent on anything else.", ""]
    others = median(runs, "others_cpu")
    if others == others and others > 0.25:
        lines += [f"**Caution: the machine was busy during these runs** (others' CPU median "
                  f"{pct(others)} of a core): rates and latencies say little; CPU per delivery "
                  "holds up better. Rerun on a quiet machine.", ""]
    lines += table(a, runs)
    lines.append("")
    for key, what in (("deliveries_per_sec", "deliveries/s"),
                      ("cpu_us_per_delivery", "server CPU µs/delivery")):
        per_mode = [f"{mode} " + ", ".join(fmt(r.get(key)) for r in runs if r["mode"] == mode)
                    for mode in a.mode_list]
        lines.append(f"{what} per round: " + "; ".join(per_mode) + ".")
    lines.append("")
    for mode in a.mode_list:
        lines.append(f"- {mode}: {MODES[mode][1]}")
    for r in runs:
        if not r.get("ok"):
            lines.append(f"- failed: {r['mode']} round {r['round']}: {r.get('error', '?')}")
    lines += ["", "Commands of one round (PORT a free port, DB a fresh file, each run under "
              "`timeout`):", "", "```"]
    seen = set()
    for key in ("server_cmd", "load_cmd"):
        for r in runs:
            text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", sh(r[key]))
            text = re.sub(r"sqlite:\S+", "sqlite:DB", text)
            if text not in seen:
                seen.add(text)
                lines.append(text)
    lines.append("```")
    if micro:
        lines += micro_section(micro)
    lines.append(END)
    return "\n".join(lines) + "\n"


def main():
    a = parse_args()
    a.weir = os.path.join(a.build, "weir")
    a.load = os.path.join(a.build, "weir-load")
    a.bench = os.path.join(a.build, "weir-bench")
    a.mode_list = a.modes.split(",")
    for m in a.mode_list:
        if m not in MODES:
            sys.exit(f"--modes: {m} ({', '.join(MODES)})")
    for exe in (a.weir, a.load) + (() if a.no_micro else (a.bench,)):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe}: not built (make BUILD={a.build} all {a.bench})")
    os.makedirs(a.tmp, exist_ok=True)
    a.redis = None
    if any(m.startswith("redis") for m in a.mode_list):
        if not os.access(REDIS_SERVER, os.X_OK) or not shutil.which("redis-cli"):
            sys.exit(f"redis modes need {REDIS_SERVER} and redis-cli (make deps)")
        a.redis = RedisServer(a.load_cpu, a.tmp)
        if not a.redis.wait_ready():
            a.redis.stop()
            sys.exit(f"redis-server did not answer on port {a.redis.port}")
        a.redis_version = a.redis.command("INFO", "server").split("redis_version:")[-1].split()[0]
    argv = "/usr/bin/python3 " + " ".join(["bench/run_store.py", *sys.argv[1:]])
    runs = []
    start = time.monotonic()
    try:
        for round_no in range(1, a.rounds + 1):
            for mode in a.mode_list:
                r = run_once(a, mode, round_no)
                runs.append(r)
                print(f"{mode} round {round_no}: " + (
                    f"{fmt(r['deliveries_per_sec'])} deliveries/s, "
                    f"{fmt(r['published_per_sec'])} published/s, p99 {fmt(r['p99_ms'])} ms, "
                    f"{fmt(r['cpu_us_per_delivery'])} µs/delivery, "
                    f"{fmt(r['appends_per_batch'])} appends/batch, lost {fmt(r['lost'])}, "
                    f"others' CPU {pct(r['others_cpu'])}"
                    if r.get("ok") else f"FAILED ({r.get('error')})"), flush=True)
    finally:
        if a.redis:
            a.redis.stop()
    print(f"({time.monotonic() - start:.0f} s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)
    micro = None if a.no_micro else run_micro(a)
    text = section(a, runs, argv, micro)
    print(text)
    if a.write_docs:
        write_doc(a.doc, text, BEGIN, END)
        print(f"updated {a.doc}")
    return 0 if all(r.get("ok") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
