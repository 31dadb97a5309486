"""bench/peers_report.py — the tables bench/run_peers.py writes into docs/benchmarks.md.

The file's section between `<!-- peers:begin -->` and `<!-- peers:end -->` holds a fixed
preamble and one block per scenario, each between `<!-- peers/NAME:begin -->` and
`<!-- peers/NAME:end -->` with its own date, command, machine and table. A run replaces the
blocks of the scenarios it measured and keeps the others, so measuring one scenario again does
not wipe the rest. Everything outside the section is left as it was.
"""

import datetime
import json
import os
import platform
import re
import statistics
import subprocess

from peers_scenarios import SCENARIOS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_BEGIN = "<!-- peers:begin -->"
DOC_END = "<!-- peers:end -->"
BLOCK_RE = re.compile(r"<!-- peers/([\w.-]+):begin -->\n.*?<!-- peers/\1:end -->\n", re.S)
DOC_HEADER = """# Benchmarks

Numbers measured on this project's machines, each with the command that produced it. Sections
between `<!-- name:begin -->` and `<!-- name:end -->` markers are rewritten by their scripts; do
not edit them by hand. How to run each benchmark: bench/README.md.
"""
PREAMBLE = """## weir against uWebSockets.js and Node ws

Produced by `bash bench/run_peers.sh` (bench/README.md). Every server runs alone on one core
(weir with `--threads 1`; uWebSockets.js and Node `ws` are single-threaded) with the load
generator, weir-load with one thread, on the other core. Each server is started fresh for every
run and the servers take turns (weir, uWS.js, Node ws, weir, ...); each cell is the median of
the rounds. Server CPU per message or delivery is the server's utime+stime (/proc/PID/stat)
over the whole load run — connect, warm-up, measurement, close — divided by every message it
echoed or delivered in that time; server, load and others' CPU are shares of one core over the
run. Ratios are weir ÷ peer: above 1 favours weir for rates, below 1 for CPU and memory. A load
CPU near 100% means the load generator set the pace, not the server; others' CPU is what the two
cores spent on anything else (other processes, interrupts, hypervisor steal) and should be
near 0% for a run to mean much.
"""
BUSY_OTHERS_PCT = 10


# ---------------------------------------------------------------------------- the machine

def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def weir_version():
    commit = first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def package_version(name):
    try:
        with open(os.path.join(REPO, "bench", "peers", "node_modules", name, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "not installed"


def machine_lines(args):
    mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / (1 << 30)
    distro = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    return [
        f"- machine: {os.cpu_count()} cores (nproc), {cpu_model()}, {mem_gib:.1f} GiB RAM, "
        f"Linux {platform.release()}, {distro}",
        f"- weir: {weir_version()}, {first_line(['g++', '--version'])}",
        f"- peers: Node {first_line([args.node, '--version'])}, ws {package_version('ws')}, "
        f"@trufflesuite/uws-js-unofficial {package_version('@trufflesuite/uws-js-unofficial')} "
        "(its native addon)",
    ]


# ---------------------------------------------------------------------------- tables

def median_of(runs, key):
    """The median of the ok runs' values, or for text (a slow member's fate) the most common."""
    values = [r[key] for r in runs if r["ok"] and key in r and r[key] == r[key]]  # NaN != NaN
    if not values:
        return None
    if isinstance(values[0], str):
        return statistics.mode(values)
    return statistics.median(values)


def ratio_cell(weir_value, peer_value):
    if weir_value is None or not peer_value:
        return "–"
    return f"{weir_value / peer_value:.2f}×"


def scenario_table(scenario, kinds, runs_by_server):
    weir_runs = runs_by_server.get("weir")
    head = ["server"]
    for c in scenario.columns:
        head += [c.label] + (["weir ÷ peer"] if c.better and weir_runs is not None else [])
    head.append("runs ok")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in kinds:
        runs = runs_by_server[kind.key]
        row = [kind.label]
        for c in scenario.columns:
            m = median_of(runs, c.key)
            row.append(c.fmt(m) if m is not None else "–")
            if c.better and weir_runs is not None:
                row.append("–" if kind.key == "weir" else ratio_cell(median_of(weir_runs, c.key), m))
        row.append(f"{sum(r['ok'] for r in runs)}/{len(runs)}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def run_details(scenario, kinds, runs_by_server):
    """Per-round headline values, so the spread behind each median shows."""
    out = []
    for c in [c for c in scenario.columns if c.better]:
        per_server = []
        for kind in kinds:
            cells = [c.fmt(r[c.key]) if r["ok"] else f"failed ({r['reason'][:100]})"
                     for r in runs_by_server[kind.key]]
            per_server.append(f"{kind.label} {', '.join(cells)}")
        out.append(f"{c.label} per round: " + "; ".join(per_server) + ".")
    return out


def caution(runs_by_server):
    busy = [r["others_cpu_pct"] for runs in runs_by_server.values() for r in runs if "others_cpu_pct" in r]
    if not busy or statistics.median(busy) <= BUSY_OTHERS_PCT:
        return []
    return [f"**Caution: the machine was busy during these runs** (others' CPU median "
            f"{statistics.median(busy):.0f}% of a core): rates and latencies say little; CPU per "
            "message and memory per connection, counted for the server alone, hold up better. "
            "Rerun on a quiet machine.", ""]


def render_block(args, scenario, kinds, runs_by_server, command_line):
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    rounds = f"{args.rounds} round{'s' if args.rounds > 1 else ''}"
    out = [f"<!-- peers/{scenario.name}:begin -->", f"### {scenario.name}: {scenario.description}", "",
           f"Measured {date} by `{command_line}` ({rounds}; the commands of one round are below).", ""]
    out += machine_lines(args) + [""] + caution(runs_by_server)
    out += scenario_table(scenario, kinds, runs_by_server) + [""]
    out += run_details(scenario, kinds, runs_by_server) + [""]
    if scenario.notes:
        out += [scenario.notes, ""]
    out.append("```")
    out += [f"taskset -c {args.server_cpu} " + " ".join(k.argv(args, "PORT")) for k in kinds]
    out.append(f"taskset -c {args.load_cpu} {args.load} " +
               " ".join(scenario.load_args(args, f"ws://127.0.0.1:PORT{scenario.path}")))
    out += ["```", f"<!-- peers/{scenario.name}:end -->"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- the file

def render_section(blocks):
    """The whole section: preamble, blocks in SCENARIOS order, then what is not measured yet."""
    out = [DOC_BEGIN, PREAMBLE]
    order = list(SCENARIOS) + sorted(set(blocks) - set(SCENARIOS))
    out += [blocks[name] for name in order if name in blocks]
    waiting = [s for s in SCENARIOS.values() if s.load_args is None]
    if waiting:
        out.append("Not measured yet: " + "; ".join(f"{s.name} (needs {s.waiting_for})" for s in waiting) + ".\n")
    out.append(DOC_END)
    return "\n".join(out) + "\n"


def merge_into_doc(path, new_blocks):
    """Replaces the measured scenarios' blocks in `path`, keeping the others; creates the file
    (with a short header) or the section (at the end) when missing."""
    text = DOC_HEADER
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    begin, end = text.find(DOC_BEGIN), text.find(DOC_END)
    if begin >= 0 and end > begin:
        old = {m.group(1): m.group(0) for m in BLOCK_RE.finditer(text[begin:end])}
        rest = text[end + len(DOC_END):].lstrip("\n")
        text = text[:begin] + render_section(dict(old, **new_blocks)) + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + render_section(new_blocks)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
