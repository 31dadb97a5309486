#!/usr/bin/python3
"""WebSocket /echo against the raw TCP echo (--tcp-echo) in the same run.

Alternates tcp-echo and ws-echo runs (server pinned to core 0, weir-load to core 1), for
32 B (64 connections x 16 in flight) and 4 KiB (64 x 4) messages, and records the medians, the
ws/tcp ratio of messages/s, and server CPU per message (utime+stime of the server over the run
divided by messages echoed). Rewrites the `echo-baseline` section of docs/benchmarks.md.

Usage: /usr/bin/python3 bench/run_echo_baseline.py [--build build] [--rounds 3] [--seconds 8]
"""
import argparse, datetime, json, os, re, socket, statistics, subprocess, sys, time

SCENARIOS = [("32 B text, 64 conns x 16 in flight", 32, 16, []),
             ("4 KiB binary, 64 conns x 4 in flight", 4096, 4, ["--binary"])]


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def one_run(build, kind, size, depth, extra, seconds):
    port = free_port()
    server_args = ["--tcp-echo", f"127.0.0.1:{port}"] if kind == "tcp" else ["--listen", f"127.0.0.1:{port}"]
    server = subprocess.Popen(["taskset", "-c", "0", f"{build}/weir", "--threads", "1", "--log-level", "warn"]
                              + server_args, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        before = cpu_ticks(server.pid)
        if kind == "tcp":
            load = ["tcp-echo", "--addr", f"127.0.0.1:{port}"]
        else:
            load = ["echo", "--url", f"ws://127.0.0.1:{port}/echo"] + extra
        cmd = ["taskset", "-c", "1", f"{build}/weir-load"] + load + [
            "--connections", "64", "--depth", str(depth), "--size", str(size), "--seconds", str(seconds)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        after = cpu_ticks(server.pid)
        summary = json.loads(out.stdout)
        msgs = summary["messages"]
        hz = os.sysconf("SC_CLK_TCK")
        return {"rate": summary["messages_per_sec"], "cpu_us": (after - before) / hz * 1e6 / max(msgs, 1),
                "errors": summary["errors"]["total"], "cmd": " ".join(cmd[4:])}
    finally:
        server.terminate(); server.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build"); ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8); ap.add_argument("--doc", default="docs/benchmarks.md")
    a = ap.parse_args()
    rows = []
    for title, size, depth, extra in SCENARIOS:
        runs = {"tcp": [], "ws": []}
        cmds = {}
        for _ in range(a.rounds):
            for kind in ("tcp", "ws"):  # alternate, so drift hits both alike
                r = one_run(a.build, kind, size, depth, extra, a.seconds)
                if r["errors"]:
                    sys.exit(f"{kind} run reported {r['errors']} errors")
                runs[kind].append(r); cmds[kind] = r["cmd"]
                print(f"{title} {kind}: {r['rate']:.0f} msg/s, {r['cpu_us']:.3f} us/msg", file=sys.stderr)
        med = {k: (statistics.median(x["rate"] for x in v), statistics.median(x["cpu_us"] for x in v))
               for k, v in runs.items()}
        rows.append((title, med, runs, cmds))
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    lines = ["<!-- echo-baseline:begin -->",
             "## /echo against the raw TCP echo (`--tcp-echo`)", "",
             f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC by `/usr/bin/python3 bench/run_echo_baseline.py "
             f"--build {a.build} --rounds {a.rounds} --seconds {a.seconds}`: server `weir --threads 1` on core 0, "
             "`weir-load` on core 1, tcp and ws runs alternating, medians of the rounds. "
             f"Load average at the end: {load}. Server CPU per message is the server's utime+stime over the "
             "whole run divided by the messages it echoed.", "",
             "| messages | tcp-echo msgs/s | /echo msgs/s | /echo ÷ tcp | tcp CPU µs/msg | /echo CPU µs/msg |",
             "|---|---|---|---|---|---|"]
    for title, med, runs, cmds in rows:
        lines.append(f"| {title} | {med['tcp'][0]/1e3:.0f}k | {med['ws'][0]/1e3:.0f}k | "
                     f"{med['ws'][0]/med['tcp'][0]:.2f} | {med['tcp'][1]:.3f} | {med['ws'][1]:.3f} |")
    lines.append("")
    for title, med, runs, cmds in rows:
        lines.append(f"- {title}: `weir-load {cmds['tcp']}` / `weir-load {cmds['ws']}`; per round tcp "
                     + ", ".join(f"{r['rate']/1e3:.0f}k" for r in runs["tcp"]) + ", ws "
                     + ", ".join(f"{r['rate']/1e3:.0f}k" for r in runs["ws"]))
    lines.append("<!-- echo-baseline:end -->")
    section = "\n".join(lines)
    text = open(a.doc).read() if os.path.exists(a.doc) else "# Benchmarks\n"
    if "<!-- echo-baseline:begin -->" in text:
        text = re.sub(r"<!-- echo-baseline:begin -->.*?<!-- echo-baseline:end -->", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(a.doc, "w").write(text)
    print(section)


if __name__ == "__main__":
    main()
