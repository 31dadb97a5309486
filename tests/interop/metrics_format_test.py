#!/usr/bin/env python3
"""GET /metrics checked strictly against the Prometheus text exposition format 0.0.4.

Usage: metrics_format_test.py BUILD_DIR

Starts BUILD_DIR/weir (--threads 2, with the per-IP limits on so their families appear), drives a
little traffic (a WebSocket echo, a rooms join and message, a refused handshake, a 404), fetches
/metrics and checks, line by line:

- the Content-Type is text/plain; version=0.0.4, and the body ends with a newline;
- every line is `# HELP name text`, `# TYPE name type` or a sample; no blank lines;
- each family has exactly one HELP and one TYPE, both before its first sample; a family's lines
  are contiguous (never interleaved with another's); TYPE is counter|gauge|histogram|summary|untyped;
- names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (no reserved __ names,
  no label twice in a sample), label values use only the escapes \\\\ \\" \\n, HELP only \\\\ and \\n;
- values parse as floats (+Inf, -Inf, NaN spelled that way); counters are >= 0;
- every family is weir_-prefixed; counter families end in _total; gauges and counters have samples
  named exactly as the family;
- histograms: per label set, _bucket samples with le ascending and +Inf last, cumulative counts
  non-decreasing, _count equal to the +Inf bucket, one _sum and one _count;
- no series (name and label set) appears twice.

A second server gets a known load (WebSocket sessions sending text, binary and pings, then
closing) and the by-state and by-type series must read exactly that.

Prints one line per check; exits 1 on any failure.
"""
import asyncio
import json
import math
import re
import sys

from weir_harness import (Checks, Weir, build_dir, connect, expect, finish, join, message,
                          run_tests, websockets)

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not FLOAT.fullmatch(text):
        raise ValueError(f"not a float: {text!r}")
    return float(text)


def parse_labels(text, pos, problems, line):
    """Parses `{a="x",b="y"}` starting at text[pos] == '{'; (labels dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        if pos < len(text) and text[pos] == "}":  # empty set or trailing comma
            return labels, pos + 1
        m = LABEL_NAME.match(text, pos)
        if not m:
            raise ValueError("bad label name")
        name = m.group(0)
        if name.startswith("__"):
            problems.append(f"reserved label name {name}: {line}")
        if name in labels:
            problems.append(f"label {name} twice: {line}")
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise ValueError("expected =\" after the label name")
        pos += 2
        value = []
        while True:
            if pos >= len(text):
                raise ValueError("unterminated label value")
            c = text[pos]
            if c == "\\":
                esc = text[pos + 1:pos + 2]
                if esc not in ("\\", '"', "n"):
                    raise ValueError(f"bad escape \\{esc} in a label value")
                value.append({"\\": "\\", '"': '"', "n": "\n"}[esc])
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise ValueError("newline in a label value")
            else:
                value.append(c)
                pos += 1
        labels[name] = "".join(value)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] == "}":
            return labels, pos + 1
        else:
            raise ValueError("expected , or } after a label")


def family_of(sample, types):
    """The family a sample name belongs to, given the TYPEs declared so far."""
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix):
            base = sample[: -len(suffix)]
            if types.get(base) in ("histogram", "summary"):
                return base
    return sample


def check_exposition(body):
    """The list of violations in a /metrics body (empty when it is strictly valid)."""
    problems = []
    if not body.endswith("\n"):
        problems.append("the body does not end with a newline")
    helps, types = {}, {}
    current = None  # the family whose lines we are in
    finished = set()  # families whose block ended
    seen_samples = set()  # (name, labels)
    samples = {}  # family -> [(name, labels, value)]
    for number, line in enumerate(body.split("\n")[:-1], 1):
        where = f"line {number}: {line[:120]}"
        if line == "":
            problems.append(f"blank line at {number}")
            continue
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) (.*)", line) or re.fullmatch(
                r"# (HELP) (\S+)()", line)
            if not m:
                problems.append(f"comment that is neither HELP nor TYPE: {where}")
                continue
            kind, name, rest = m.groups()
            if not NAME.fullmatch(name):
                problems.append(f"bad metric name {name!r}: {where}")
            if name != current:
                if name in finished or name in helps or name in types:
                    problems.append(f"family {name} interleaved with another: {where}")
                if current is not None:
                    finished.add(current)
                current = name
            if kind == "HELP":
                if name in helps:
                    problems.append(f"second HELP for {name}: {where}")
                if re.search(r"\\[^\\n]", rest.replace("\\\\", "")):
                    problems.append(f"bad escape in HELP of {name}: {where}")
                helps[name] = rest
            else:
                if name in types:
                    problems.append(f"second TYPE for {name}: {where}")
                if rest not in TYPES:
                    problems.append(f"bad TYPE {rest!r} for {name}: {where}")
                if name in samples:
                    problems.append(f"TYPE for {name} after its samples: {where}")
                if name not in helps:
                    problems.append(f"TYPE for {name} without a HELP before it: {where}")
                types[name] = rest
            continue
        m = NAME.match(line)
        if not m:
            problems.append(f"bad sample name: {where}")
            continue
        name, pos = m.group(0), m.end()
        labels = {}
        try:
            if pos < len(line) and line[pos] == "{":
                labels, pos = parse_labels(line, pos, problems, line)
            if line[pos:pos + 1] != " ":
                raise ValueError("expected one space before the value")
            parts = line[pos + 1:].split(" ")
            if len(parts) not in (1, 2) or (len(parts) == 2 and not re.fullmatch(r"-?\d+", parts[1])):
                raise ValueError("expected a value and an optional integer timestamp")
            value = parse_value(parts[0])
        except (ValueError, IndexError) as e:
            problems.append(f"malformed sample ({e}): {where}")
            continue
        family = family_of(name, types)
        if family != current:
            problems.append(f"sample of {family} outside its family's block (in {current}): {where}")
        if family not in types or family not in helps:
            problems.append(f"sample of {family} without HELP and TYPE before it: {where}")
        key = (name, tuple(sorted(labels.items())))
        if key in seen_samples:
            problems.append(f"duplicate series: {where}")
        seen_samples.add(key)
        samples.setdefault(family, []).append((name, labels, value))
    for family, kind in types.items():
        problems += check_family(family, kind, helps, samples.get(family, []))
    return problems


def check_family(family, kind, helps, rows):
    problems = []
    if not family.startswith("weir_"):
        problems.append(f"{family}: not weir_-prefixed")
    if not helps.get(family):
        problems.append(f"{family}: empty HELP")
    if kind == "counter":
        if not family.endswith("_total"):
            problems.append(f"counter {family} does not end in _total")
        for name, labels, value in rows:
            if name != family:
                problems.append(f"counter {family} has a sample named {name}")
            if not value >= 0:
                problems.append(f"counter {family}{labels} is {value}")
    elif kind == "gauge":
        problems += [f"gauge {family} has a sample named {n}" for n, _, _ in rows if n != family]
    elif kind == "histogram":
        problems += check_histogram(family, rows)
    return problems


def check_histogram(family, rows):
    problems = []
    groups = {}
    for name, labels, value in rows:
        suffix = name[len(family):]
        if suffix not in ("_bucket", "_sum", "_count"):
            problems.append(f"histogram {family} has a sample named {name}")
            continue
        if suffix == "_bucket" and "le" not in labels:
            problems.append(f"{name} without le: {labels}")
            continue
        if suffix != "_bucket" and "le" in labels:
            problems.append(f"{name} with le: {labels}")
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": [], "count": []})
        if suffix == "_bucket":
            g["buckets"].append((labels["le"], value))
        else:
            g[suffix[1:]].append(value)
    for rest, g in groups.items():
        what = f"{family}{dict(rest)}"
        bounds = []
        for le, _ in g["buckets"]:
            try:
                bounds.append(parse_value(le))
            except ValueError:
                problems.append(f"{what}: le={le!r} is not a number")
                bounds.append(math.nan)
        if not g["buckets"] or g["buckets"][-1][0] != "+Inf":
            problems.append(f"{what}: the last bucket is not le=\"+Inf\"")
        if any(not (a < b) for a, b in zip(bounds, bounds[1:])):
            problems.append(f"{what}: le not strictly ascending: {[le for le, _ in g['buckets']]}")
        counts = [v for _, v in g["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            problems.append(f"{what}: bucket counts decrease: {counts}")
        if len(g["sum"]) != 1 or len(g["count"]) != 1:
            problems.append(f"{what}: {len(g['sum'])} _sum and {len(g['count'])} _count samples")
        elif counts and g["count"][0] != counts[-1]:
            problems.append(f"{what}: _count {g['count'][0]} != +Inf bucket {counts[-1]}")
    return problems


# ---------------------------------------------------------------- the checker checks itself

GOOD = """# HELP weir_a_total A counter with \\\\ and \\n escapes.
# TYPE weir_a_total counter
weir_a_total{k="v \\" \\\\ \\n"} 3
# HELP weir_h_seconds A histogram.
# TYPE weir_h_seconds histogram
weir_h_seconds_bucket{le="0.5"} 1
weir_h_seconds_bucket{le="+Inf"} 2
weir_h_seconds_sum 3.5
weir_h_seconds_count 2
"""

BAD = {
    "no trailing newline": GOOD.rstrip("\n"),
    "counter without _total": GOOD.replace("weir_a_total", "weir_a"),
    "interleaved families": GOOD + "weir_a_total{k=\"w\"} 1\n",
    "duplicate series": GOOD.replace("weir_a_total{k", "weir_a_total{j=\"1\"} 1\nweir_a_total{j=\"1\"} 2\nweir_a_total{k"),
    "bad TYPE": GOOD.replace("histogram\n", "histo\n"),
    "missing HELP": GOOD.replace("# HELP weir_h_seconds A histogram.\n", ""),
    "two TYPEs": GOOD.replace("# TYPE weir_a_total counter\n", "# TYPE weir_a_total counter\n# TYPE weir_a_total counter\n"),
    "bad label escape": GOOD.replace('\\\\ \\n"}', '\\t"}'),
    "le not last +Inf": GOOD.replace('le="+Inf"} 2', 'le="0.25"} 2'),
    "_count mismatch": GOOD.replace("_count 2", "_count 3"),
    "bad name": GOOD.replace("weir_a_total{", "weir-a_total{", 1),
    "blank line": GOOD.replace("\n# HELP weir_h", "\n\n# HELP weir_h"),
    "bad value": GOOD.replace("_sum 3.5", "_sum 3,5"),
}


async def test_the_checker_catches_violations(_build):
    problems = check_exposition(GOOD)
    assert not problems, f"a valid exposition flagged: {problems}"
    missed = [what for what, text in BAD.items() if not check_exposition(text)]
    assert not missed, f"violations not caught: {missed}"


# ---------------------------------------------------------------- weir's /metrics


async def drive_traffic(weir):
    async with websockets.connect(weir.url("/echo"), ping_interval=None) as echo:
        await echo.send("hello")
        assert await asyncio.wait_for(echo.recv(), 3) == "hello"
    a, _ = await connect(weir)
    b, _ = await connect(weir)
    for ws in (a, b):
        await join(ws, "metrics-room")
    await a.send(message("metrics-room", "hi", message_id="m-1"))
    for ws in (a, b):
        assert (await expect(ws, "message"))["content"] == "hi"
    await a.close()
    await b.close()
    assert weir.http("GET", "/no-such-route")[0] == 404
    try:  # a refused handshake (no endpoint at the path) fills a handshake label
        await websockets.connect(weir.url("/nowhere"), open_timeout=3)
    except websockets.InvalidStatusCode:
        pass


async def test_metrics_follow_the_text_format(build):
    with Weir(build, "--threads", "2", "--max-connections-per-ip", "1000",
              "--handshakes-per-ip-per-sec", "1000", "--accept-rate", "10000") as weir:
        await drive_traffic(weir)
        status, headers, body = weir.http("GET", "/metrics")
        c = Checks("metrics")
        c.check(status == 200, f"200 ({status})")
        ctype = headers.get("Content-Type", "")
        c.check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
                f"Content-Type names the 0.0.4 text format ({ctype})")
        problems = check_exposition(body)
        for p in problems[:40]:
            print(f"---  {p}", flush=True)
        c.check(not problems, f"{len(problems)} violations in {body.count(chr(10))} lines")
        families = re.findall(r"^# TYPE (\S+) ", body, re.M)
        for needed in ("weir_connections_accepted_total", "weir_ws_handshakes_total",
                       "weir_limit_refusals_total", "weir_accept_rate_limited_total",
                       "weir_room_messages_total", "weir_connections",
                       "weir_connections_above_high_watermark", "weir_ws_messages_total",
                       "weir_ws_payload_bytes_total"):
            c.check(needed in families, f"{needed} is exposed")
        c.check(len(families) >= 40, f"{len(families)} families")
        assert c.failed == 0, f"{c.failed} checks failed"


def scrape(weir):
    """{sample with its labels, as rendered: value} from one /metrics."""
    body = weir.http("GET", "/metrics")[2]
    problems = check_exposition(body)
    assert not problems, f"/metrics is not valid: {problems[:5]}"
    return {m.group(1): parse_value(m.group(2))
            for m in re.finditer(r"^([^#\s]\S*) (\S+)$", body, re.M)}


def by_type(family, direction, kind):
    return f'{family}{{direction="{direction}",type="{kind}"}}'


async def settle(weir, sample, want, timeout=5):
    """Polls /metrics until `sample` reads `want`; returns the last value read."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = scrape(weir).get(sample)
        if value == want or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


# N WebSocket sessions send K text and M binary messages and a ping each, then close: every
# by-type series and the connection states read exactly what was done (a fresh server).
async def test_series_by_state_and_type_count_real_traffic(build):
    sessions, k_text, m_binary = 3, 4, 2
    text, binary, ping = "hello", b"\x00\x01\xff", b"p1"
    with Weir(build, "--threads", "2") as weir:
        c = Checks("by state and type")
        clients = [await websockets.connect(weir.url("/echo"), ping_interval=None)
                   for _ in range(sessions)]
        opened = await settle(weir, 'weir_connections{state="open"}', sessions)
        c.check(opened == sessions, f'weir_connections{{state="open"}} is {sessions} ({opened})')
        for ws in clients:
            for _ in range(k_text):
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), 3) == text
            for _ in range(m_binary):
                await ws.send(binary)
                assert await asyncio.wait_for(ws.recv(), 3) == binary
            await asyncio.wait_for(await ws.ping(ping), 3)
        got = scrape(weir)
        want = {}
        for direction in ("in", "out"):
            want[by_type("weir_ws_messages_total", direction, "text")] = sessions * k_text
            want[by_type("weir_ws_messages_total", direction, "binary")] = sessions * m_binary
            want[by_type("weir_ws_payload_bytes_total", direction, "text")] = \
                sessions * k_text * len(text)
            want[by_type("weir_ws_payload_bytes_total", direction, "binary")] = \
                sessions * m_binary * len(binary)
            want[by_type("weir_ws_messages_total", direction, "close")] = 0
        want[by_type("weir_ws_messages_total", "in", "ping")] = sessions
        want[by_type("weir_ws_payload_bytes_total", "in", "ping")] = sessions * len(ping)
        want[by_type("weir_ws_messages_total", "out", "pong")] = sessions
        want[by_type("weir_ws_payload_bytes_total", "out", "pong")] = sessions * len(ping)
        want[by_type("weir_ws_messages_total", "out", "ping")] = 0
        want[by_type("weir_ws_messages_total", "in", "pong")] = 0
        want["weir_ws_messages_received_total"] = sessions * (k_text + m_binary)
        want["weir_ws_messages_sent_total"] = sessions * (k_text + m_binary)
        want["weir_ws_payload_bytes_received_total"] = \
            sessions * (k_text * len(text) + m_binary * len(binary))
        want["weir_ws_payload_bytes_sent_total"] = want["weir_ws_payload_bytes_received_total"]
        want['weir_connections{state="open"}'] = sessions
        want["weir_connections_above_high_watermark"] = 0
        for sample, value in want.items():
            c.check(got.get(sample) == value, f"{sample} is {value} ({got.get(sample)})")
        handshaking = got.get('weir_connections{state="handshaking"}')
        c.check(handshaking is not None and handshaking >= 1,
                f"the scrape's own connection is handshaking ({handshaking})")
        for ws in clients:
            await ws.close()  # code 1000, no reason: 2 payload bytes each way
        for state in ("open", "closing"):
            value = await settle(weir, f'weir_connections{{state="{state}"}}', 0)
            c.check(value == 0, f'weir_connections{{state="{state}"}} returns to 0 ({value})')
        got = scrape(weir)
        for direction in ("in", "out"):
            for family, value in (("weir_ws_messages_total", sessions),
                                  ("weir_ws_payload_bytes_total", 2 * sessions)):
                sample = by_type(family, direction, "close")
                c.check(got.get(sample) == value, f"{sample} is {value} ({got.get(sample)})")
        assert c.failed == 0, f"{c.failed} checks failed"


if __name__ == "__main__":
    build = build_dir(__doc__)
    tests = [test_the_checker_catches_violations, test_metrics_follow_the_text_format,
             test_series_by_state_and_type_count_real_traffic]
    sys.exit(finish(len(tests), run_tests(tests, build)))
