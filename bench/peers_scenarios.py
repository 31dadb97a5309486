"""bench/peers_scenarios.py — what bench/run_peers.py measures: the scenarios and the servers.

A Scenario says how to load a server (weir-load's arguments for a URL), how to turn weir-load's
JSON summary plus the server samples taken around the run into named metrics, and which of
them to show. Adding one: write it like echo_scenario or fanout_scenario below (or replace its
planned(...) entry) and put it in SCENARIOS; the runner and the report need no change.

The server samples passed to `measure`: cpu_s (the server's utime+stime over the load run),
wall_s, rss_before_bytes (VmRSS when the load started), rss_after_bytes (VmRSS when it ended)
and rss_peak_bytes (VmHWM then). A metric may be text (a slow member's fate): it is shown as
is, and over several rounds the most common value is.
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
        # No history, as the peers keep none; the store's cost is measured by bench/run_store.py.
        a.weir, "--listen", f"127.0.0.1:{port}", "--threads", "1", "--log-level", "warn",
        "--durability", "none"]),
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
    notes: str = ""  # printed under the table: how to read it, what each server does
    # Whether a peer dropping messages at its backpressure limit is the point of the scenario
    # (slow consumers) rather than a failed run.
    drops_expected: bool = False


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


def latency_scenario(name, connections, rate, size, description):
    """Echo at a fixed rate (weir-load echo --rate): latency counts from each message's
    scheduled send time, so a server that falls behind shows it in the percentiles."""
    def load_args(a, url):
        return ["echo", "--url", url, "--connections", str(connections), "--rate", str(rate),
                "--size", str(size)] + timed_args(a)

    def measure(summary, server):
        latency = summary["latency_ms"]
        return {
            "achieved": summary["messages_per_sec"],
            "p50_ms": latency["p50"], "p90_ms": latency["p90"],
            "p99_ms": latency["p99"], "max_ms": latency["max"],
            "cpu_us_per_msg": per(server["cpu_s"] * 1e6, summary["echoed_total"]),
            "held_back": summary["held_back"],
        }

    return Scenario(name, description, load_args, measure, [
        Column("achieved", "echoes/s", fmt_count),
        Column("p50_ms", "p50 ms", fmt_num, "lower"),
        Column("p90_ms", "p90 ms", fmt_num),
        Column("p99_ms", "p99 ms", fmt_num, "lower"),
        Column("max_ms", "max ms", fmt_num),
        Column("cpu_us_per_msg", "server CPU µs/msg", fmt_num, "lower"),
        SERVER_CPU, LOAD_CPU, OTHERS_CPU,
        Column("held_back", "held back", fmt_num),
    ], notes=(
        f"`weir-load echo --rate {rate}` sends each message at its scheduled time (message i of "
        f"a thread at start + i/rate, woken by a timerfd), round-robin over the {connections} "
        "connections, and times each round trip from that scheduled time, not from when it "
        "left: a server (or load thread) that stalls makes every message due meanwhile late, as "
        "a client sending at that rate would see it (no coordinated omission). echoes/s is the "
        "achieved rate over the measurement; held back counts messages not sent because their "
        "connection had more than 1 MiB unsent. Server CPU µs/msg is the server's CPU over the "
        "whole run divided by every message it echoed; at a fixed rate it includes waking up "
        "for each few messages, the cost of serving this rate rather than a throughput limit."))


def slow_fate(client):
    """A slow member's fate, from its record in weir-load slow's per_client list. weir-load
    lifts the relay's limit when the measurement ends and drains for up to 3 s, so what a
    server had buffered for the member arrives then; what still has not is what it dropped."""
    if client.get("dropped"):
        return "disconnected"
    lost = client.get("lost", 0)
    if lost:
        return f"kept, {fmt_count(lost)} msgs dropped"
    return "kept, every message delivered"


def slow_room_scenario(name, fast, slow, bandwidth, rate, size, description, min_seconds=20):
    """`weir-load slow` in room mode: one room, a feeder publishing at `rate`, `fast` members
    reading at full speed and `slow` members behind weir-load's in-process relay at
    `bandwidth` B/s. It runs at least `min_seconds`: a slow member's backlog (about 1.3 MB/s
    here) needs several seconds to get past the kernel's socket buffers to the server's own
    limit."""
    def slow_seconds(a):
        return max(a.seconds, min_seconds)

    def load_args(a, url):
        return ["slow", "--url", url, "--room", "bench-slow", "--fast-clients", str(fast),
                "--clients", str(slow), "--via-relay", str(bandwidth), "--delay-ms", "0",
                "--publish-rate", str(rate), "--size", str(size),
                "--seconds", fmt_seconds(slow_seconds(a)), "--quiet"]

    def measure(summary, server):
        fates = sorted(slow_fate(c) for c in summary["per_client"] if c["name"].startswith("slow"))
        if fates and len(set(fates)) == 1:
            fate = fates[0] if len(fates) == 1 else f"all {fates[0]}"
        else:
            fate = "; ".join(fates)
        return {
            "fast_min": summary["fast"]["received_per_sec_min"],
            "published_per_sec": per(summary["published"], summary["seconds"]),
            "slow_fate": fate,
            "rss_growth": server["rss_peak_bytes"] - server["rss_before_bytes"],
            "rss_after": server["rss_after_bytes"],
        }

    return Scenario(name, description, load_args, measure, [
        Column("fast_min", "fast members' msgs/s (min)", fmt_count, "higher"),
        Column("published_per_sec", "published/s", fmt_count),
        Column("slow_fate", "slow members", str),
        Column("rss_growth", "server RSS growth (peak − start)", fmt_bytes, "lower"),
        Column("rss_after", "server RSS at the end", fmt_bytes),
        SERVER_CPU, OTHERS_CPU,
    ], path="/ws", run_seconds=lambda a: slow_seconds(a) + 10, drops_expected=True, notes=(
        f"{fast} fast members and {slow} slow ones join one room; weir-load publishes {rate} "
        f"messages/s of {size} B content into it (each envelope about {size + 150} B on the "
        f"wire), and each slow member reads through weir-load's in-process relay at {bandwidth} "
        f"B/s; every run lasts at least {min_seconds} s so each server reaches its limit. fast "
        "members' msgs/s is the slowest fast member's rate over the measurement, against "
        "published/s. What a server does with a member that cannot keep up is its policy: weir "
        "runs with its default `--slow-consumer=disconnect` (a member whose unsent output passes "
        "`--max-buffer`, 4 MiB, is closed; `skip` would drop messages for it and send a lagged "
        "notice); uWS.js drops messages for a socket past its `maxBackpressure` (4 MiB) and keeps "
        "it; Node ws buffers without a limit. A slow member is disconnected, or kept with the "
        "messages the server dropped for it (lagged) or with every message delivered (buffered): "
        "when the measurement ends weir-load lifts the relay's limit and drains for up to 3 s, "
        "so whatever a server held for the member arrives, and what never does was dropped. "
        "Server RSS growth is its peak RSS (VmHWM) minus "
        "its RSS when the load started; RSS at the end is VmRSS after weir-load exited, from "
        "/proc/PID/status."))


def planned(name, description, waiting_for, path="/ws"):
    return Scenario(name, description, None, path=path, waiting_for=waiting_for)


SCENARIOS = {s.name: s for s in [
    echo_scenario("echo-32", 64, 16, 32, False,
                  "echo, 64 connections x 16 messages in flight x 32 B text"),
    echo_scenario("echo-4k", 64, 4, 4096, True,
                  "echo, 64 connections x 4 messages in flight x 4 KiB binary"),
    latency_scenario("latency-20k", 64, 20000, 32,
                     "echo at a fixed 20,000 msg/s over 64 connections, 32 B text: latency "
                     "p50/p90/p99/max from the scheduled send time, server CPU per message"),
    fanout_scenario("fanout-1x1000", 1, 1000, 1, 16, 64,
                    "1 room x 1000 members + 1 publisher (16 in flight), 64 B messages"),
    fanout_scenario("fanout-100x10", 100, 10, 100, 4, 64,
                    "100 rooms x 10 members + 1 publisher each (4 in flight), 64 B messages"),
    idle_scenario("idle-10k", 10000,
                  "10,000 idle WebSocket connections held with pings: server memory per connection"),
    slow_room_scenario("slow-room", 10, 2, 1000, 2000, 512,
                       "one room, 10 fast + 2 slow members (1000 B/s each), 2000 msg/s of "
                       "512 B: fast members' rate, slow members' fate, server memory growth"),
]}
