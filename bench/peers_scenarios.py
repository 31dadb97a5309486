"""bench/peers_scenarios.py — what bench/run_peers.py measures: the scenarios and the servers.

A Scenario says how to load a server (weir-load's arguments for a URL), how to turn weir-load's
JSON summary plus the server samples taken around the run into named metrics, and which of
them to show. Adding one: write it like echo_scenario or fanout_scenario below (or replace its
planned(...) entry) and put it in SCENARIOS; the runner and the report need no change.

The server samples passed to `measure`: cpu_s (the server's utime+stime over the load run),
wall_s, rss_before_bytes (VmRSS when the load started) and rss_peak_bytes (VmHWM after it).
"""

import argparse
from dataclasses import dataclass, field
from typing import Callable, Optional


# ---------------------------------------------------------------------------- servers

@dataclass
class ServerKind:
    key: str    # as given to --servers
    label: str  # as shown in tables
    argv: Callable[[argparse.Namespace, object], list]  # (args, port) -> the command, no taskset


SERVERS = {
    "weir": ServerKind("weir", "weir", lambda a, port: [
        a.weir, "--listen", f"127.0.0.1:{port}", "--threads", "1", "--log-level", "warn"]),
    "uws": ServerKind("uws", "uWS.js", lambda a, port: [
        a.node, "bench/peers/uws_server.js", str(port)]),
    "ws": ServerKind("ws", "Node ws", lambda a, port: [
        a.node, "bench/peers/ws_server.js", str(port)]),
}


# ---------------------------------------------------------------------------- scenarios

@dataclass
class Column:
    key: str       # a metric from Scenario.measure, or one the runner adds (see COMMON_COLUMNS)
    label: str
    fmt: Callable[[float], str]
    better: Optional[str] = None  # "higher" or "lower": gets a weir ÷ peer ratio column


@dataclass
class Scenario:
    name: str
    description: str
    # weir-load arguments after the binary, for a server at `url`; None while it cannot run.
    load_args: Optional[Callable[[argparse.Namespace, str], list]]
    # (weir-load summary, server samples) -> metrics named by the columns.
    measure: Optional[Callable[[dict, dict], dict]] = None
    columns: list = field(default_factory=list)
    path: str = "/echo"
    waiting_for: str = ""  # why it cannot run yet
    run_seconds: Callable[[argparse.Namespace], float] = lambda a: a.seconds + a.warmup


def fmt_count(v):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def fmt_num(v):
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def fmt_pct(v):
    return f"{v:.0f}%"


def fmt_bytes(v):
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(v) >= div:
            return f"{v / div:.3g} {suffix}"
    return f"{v:.0f} B"


def fmt_seconds(s):
    return f"{s:g}"


def per(total, count):
    return total / count if count else float("nan")


# The runner adds these to every run's metrics (shares of one core over the load run).
SERVER_CPU = Column("server_cpu_pct", "server CPU", fmt_pct)
LOAD_CPU = Column("load_cpu_pct", "load CPU", fmt_pct)
OTHERS_CPU = Column("others_cpu_pct", "others' CPU", fmt_pct)


def timed_args(a):
    return ["--seconds", fmt_seconds(a.seconds), "--warmup-seconds", fmt_seconds(a.warmup), "--quiet"]


def echo_scenario(name, connections, depth, size, binary, description):
    def load_args(a, url):
        args = ["echo", "--url", url, "--connections", str(connections), "--depth", str(depth),
                "--size", str(size)] + timed_args(a)
        return args + (["--binary"] if binary else [])

    def measure(summary, server):
        return {
            "rate": summary["messages_per_sec"],
            "mb_per_sec": summary["payload_mb_per_sec"],
            # All the server did while watched, over all it echoed (warm-up included).
            "cpu_us_per_msg": per(server["cpu_s"] * 1e6, summary["echoed_total"]),
            "p50_ms": summary["latency_ms"]["p50"],
            "p99_ms": summary["latency_ms"]["p99"],
        }

    return Scenario(name, description, load_args, measure, [
        Column("rate", "msgs/s", fmt_count, "higher"),
        Column("mb_per_sec", "MB/s", fmt_num),
        Column("cpu_us_per_msg", "server CPU µs/msg", fmt_num, "lower"),
        SERVER_CPU, LOAD_CPU, OTHERS_CPU,
        Column("p50_ms", "p50 ms", fmt_num),
        Column("p99_ms", "p99 ms", fmt_num),
    ])


def fanout_scenario(name, rooms, members, publishers, depth, size, description):
    """Publishers send as fast as their own messages come back (--depth in flight each)."""
    def load_args(a, url):
        return ["fanout", "--url", url, "--rooms", str(rooms), "--members", str(members),
                "--publishers", str(publishers), "--depth", str(depth), "--size", str(size)] + timed_args(a)

    def measure(summary, server):
        return {
            "rate": summary["deliveries_per_sec"],
            "published_per_sec": summary["published_per_sec"],
            "cpu_us_per_delivery": per(server["cpu_s"] * 1e6, summary["received_deliveries"]),
            "p50_ms": summary["latency_ms"]["p50"],
            "p99_ms": summary["latency_ms"]["p99"],
            "lost": summary["lost"],
        }

    return Scenario(name, description, load_args, measure, [
        Column("rate", "deliveries/s", fmt_count, "higher"),
        Column("published_per_sec", "published/s", fmt_count),
        Column("cpu_us_per_delivery", "server CPU µs/delivery", fmt_num, "lower"),
        SERVER_CPU, LOAD_CPU, OTHERS_CPU,
        Column("p50_ms", "p50 ms", fmt_num),
        Column("p99_ms", "p99 ms", fmt_num),
        Column("lost", "lost", fmt_num),
    ], path="/ws")


def idle_scenario(name, connections, description, rate=2500):
    # A gentle ramp and a long connect timeout: Node ws on a busy core answers upgrades late,
    # and what is measured is memory, not accept speed.
    def idle_seconds(a):
        return max(a.seconds, 2 * connections / rate + 5)  # ramp (slower on a busy core), hold

    def load_args(a, url):
        return ["hold", "--url", url, "--connections", str(connections), "--rate", str(rate),
                "--connect-timeout", "15", "--seconds", fmt_seconds(idle_seconds(a)), "--quiet"]

    def measure(summary, server):
        held = summary["up_at_end"]
        return {"held": held,
                "bytes_per_conn": per(server["rss_peak_bytes"] - server["rss_before_bytes"], held),
                "rss_peak": server["rss_peak_bytes"]}

    return Scenario(name, description, load_args, measure, [
        Column("held", "connections held", fmt_num),
        Column("bytes_per_conn", "server RSS per connection", fmt_bytes, "lower"),
        Column("rss_peak", "server peak RSS", fmt_bytes),
        SERVER_CPU, OTHERS_CPU,
    ], run_seconds=idle_seconds)


def planned(name, description, waiting_for, path="/ws"):
    return Scenario(name, description, None, path=path, waiting_for=waiting_for)


SCENARIOS = {s.name: s for s in [
    echo_scenario("echo-32", 64, 16, 32, False,
                  "echo, 64 connections x 16 messages in flight x 32 B text"),
    echo_scenario("echo-4k", 64, 4, 4096, True,
                  "echo, 64 connections x 4 messages in flight x 4 KiB binary"),
    # Extension point: needs a fixed-rate mode in `weir-load echo`; then an echo_scenario with
    # the rate in load_args and the latency percentiles as the headline columns.
    planned("latency-20k", "echo at a fixed 20,000 msg/s: latency p50/p99/max at that rate",
            "a fixed-rate mode for `weir-load echo` (--rate)", path="/echo"),
    fanout_scenario("fanout-1x1000", 1, 1000, 1, 16, 64,
                    "1 room x 1000 members + 1 publisher (16 in flight), 64 B messages"),
    fanout_scenario("fanout-100x10", 100, 10, 100, 4, 64,
                    "100 rooms x 10 members + 1 publisher each (4 in flight), 64 B messages"),
    idle_scenario("idle-10k", 10000,
                  "10,000 idle WebSocket connections held with pings: server memory per connection"),
    # Extension point: `weir-load slow` against a room of each server; headline the fast
    # members' delivery rate and the server's RSS growth (rss_peak_bytes - rss_before_bytes).
    planned("slow", "10 fast + 2 slow members at 1000 B/s, 2000 msg/s of 512 B: fast members' "
            "rate, server memory growth", "`weir-load slow` against a room"),
]}
