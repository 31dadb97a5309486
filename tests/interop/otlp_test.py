#!/usr/bin/env python3
"""The OTLP/HTTP JSON span exporter (--otlp-endpoint) against a collector written in Python.

Usage: otlp_test.py BUILD_DIR

Starts a tiny collector (http.server in a thread) on a free port and BUILD_DIR/weir with
--otlp-endpoint pointing at it, then over real sockets: a /ws connection joins a room and
publishes a message carrying a traceparent; the collector must receive valid OTLP JSON with a
ws.handshake span, a room.publish span in the message's trace (same traceId, parentSpanId the
traceparent's span id, tracestate kept) and a room.fanout span. Head sampling: a traceparent
whose sampled flag is clear (trace-flags 00) gets no span, one with it set (01) does, and the
message keeps its traceparent, flag included. Then the collector stops: weir keeps serving and
counts the spans it could not post. Exits 1 on any failure.
"""
import asyncio
import http.server
import json
import re
import sys
import threading
import time

from weir_harness import (Weir, build_dir, check, connect, expect, finish, free_port, join,
                          message, run_tests)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
SERVICE = "weir-otlp-test"


class Collector:
    """An OTLP/HTTP receiver: keeps every POSTed document and its Content-Type."""

    def __init__(self):
        self.port = free_port()
        self.posts = []  # (path, content type, parsed body or the exception)
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    doc = json.loads(body)
                except ValueError as e:
                    doc = e
                with collector.lock:
                    collector.posts.append((self.path, self.headers.get("Content-Type"), doc))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def spans(self):
        with self.lock:
            posts = list(self.posts)
        out = []
        for path, ctype, doc in posts:
            check(path == "/v1/traces", f"posted to /v1/traces: {path}")
            check(ctype == "application/json", f"Content-Type application/json: {ctype}")
            check(not isinstance(doc, Exception), f"the body is JSON: {doc}")
            out.extend(spans_of(doc))
        return out


def spans_of(doc):
    """The spans of one OTLP JSON document, after checking its shape."""
    rs = doc["resourceSpans"]
    check(len(rs) == 1, f"one resourceSpans: {doc}")
    attrs = rs[0]["resource"]["attributes"]
    check({"key": "service.name", "value": {"stringValue": SERVICE}} in attrs,
          f"service.name {SERVICE}: {attrs}")
    scope = rs[0]["scopeSpans"][0]
    check(scope["scope"]["name"] == "weir", f"scope weir: {scope['scope']}")
    for s in scope["spans"]:
        check(re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) and s["traceId"] != "0" * 32,
              f"traceId: {s}")
        check(re.fullmatch(r"[0-9a-f]{16}", s["spanId"]) and s["spanId"] != "0" * 16,
              f"spanId: {s}")
        check("parentSpanId" not in s or re.fullmatch(r"[0-9a-f]{16}", s["parentSpanId"]),
              f"parentSpanId: {s}")
        check(s["kind"] in (1, 2), f"kind: {s}")
        start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
        check(abs(start / 1e9 - time.time()) < 60 and start <= end, f"times: {s}")
    return scope["spans"]


def attributes(span):
    out = {}
    for a in span["attributes"]:
        v = a["value"]
        out[a["key"]] = v["stringValue"] if "stringValue" in v else int(v["intValue"])
    return out


async def wait_for(what, predicate, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_spans_reach_the_collector(weir, collector):
    ws, _ = await connect(weir)
    await join(ws, "otlp-room")
    await ws.send(message("otlp-room", "traced", traceparent=TRACEPARENT, tracestate=TRACESTATE))
    m = await expect(ws, "message")
    check(m["traceparent"] == TRACEPARENT, f"the message keeps its traceparent: {m}")

    def named(name, **want):
        return [s for s in collector.spans() if s["name"] == name and
                all(attributes(s).get(k) == v for k, v in want.items())]

    hs = (await wait_for("a ws.handshake span", lambda: named("ws.handshake", **{
        "url.path": "/ws", "weir.handshake.result": "accepted"})))[0]
    check(attributes(hs)["http.response.status_code"] == 101 and hs["kind"] == 2,
          f"handshake span: {hs}")
    pub = (await wait_for("a room.publish span", lambda: named("room.publish", **{
        "weir.room.id": "otlp-room"})))[0]
    check(pub["traceId"] == TRACE_ID and pub["parentSpanId"] == PARENT_ID,
          f"publish span in the message's trace, parent its span: {pub}")
    check(pub["spanId"] != PARENT_ID and pub.get("traceState") == TRACESTATE,
          f"a span of its own, tracestate kept: {pub}")
    check(attributes(pub) == {"weir.room.id": "otlp-room", "weir.room.offset": m["offset"],
                              "weir.message.bytes": len("traced")}, f"publish attributes: {pub}")
    fan = (await wait_for("a room.fanout span", lambda: named("room.fanout", **{
        "weir.room.id": "otlp-room"})))[0]
    a = attributes(fan)
    check(a["weir.room.members"] == 1 and a["weir.room.frames"] >= 1 and fan["kind"] == 1,
          f"fanout span: {fan}")
    check(int(pub["endTimeUnixNano"]) <= int(fan["endTimeUnixNano"]),
          "the fanout ends after the offset was assigned")

    # A message without trace context starts a trace of its own.
    await ws.send(message("otlp-room", "untraced"))
    await expect(ws, "message")
    root = (await wait_for("an untraced publish span", lambda: [
        s for s in named("room.publish", **{"weir.room.offset": m["offset"] + 1})]))[0]
    check("parentSpanId" not in root and root["traceId"] != TRACE_ID, f"a new trace: {root}")
    exported = await wait_for("exported spans counted", lambda: float(
        weir.metric('weir_otlp_spans_total{result="exported"}') or 0))
    check(exported >= 5, f"exported spans counted: {exported}")
    await ws.close()


async def test_the_sampled_flag_decides(weir, collector):
    unsampled_id, sampled_id = "5cf92f3577b34da6a3ce929d0e0e4736", "6df92f3577b34da6a3ce929d0e0e4736"
    ws, _ = await connect(weir)
    await join(ws, "otlp-sampling")
    for trace_id, flags in ((unsampled_id, "00"), (sampled_id, "01")):
        tp = f"00-{trace_id}-{PARENT_ID}-{flags}"
        await ws.send(message("otlp-sampling", f"flags {flags}", traceparent=tp))
        m = await expect(ws, "message")
        check(m["traceparent"] == tp, f"the traceparent is forwarded with its flags: {m}")
    # Both publish spans come from the room's owner thread, whose queue is FIFO: once the
    # sampled one has arrived, the unsampled one would have too.
    await wait_for("the 01 publish span", lambda: [
        s for s in collector.spans() if s["name"] == "room.publish" and s["traceId"] == sampled_id])
    check(not [s for s in collector.spans() if s["traceId"] == unsampled_id],
          "no span in a trace whose traceparent has flags 00")
    not_sampled = float(weir.metric(
        'weir_otlp_sampling_decisions_total{decision="not_sampled"}') or 0)
    check(not_sampled >= 1, f"the unsampled decision is counted: {not_sampled}")
    await ws.close()


async def test_a_dead_collector_costs_spans_not_service(weir, collector):
    collector.stop()
    ws, _ = await connect(weir)
    await join(ws, "otlp-down")
    for i in range(20):
        await ws.send(message("otlp-down", f"m{i}", traceparent=TRACEPARENT))
        check((await expect(ws, "message"))["content"] == f"m{i}", "weir keeps serving")
    lost = await wait_for("failed or dropped spans counted", lambda: sum(
        float(weir.metric(f'weir_otlp_spans_total{{result="{r}"}}') or 0)
        for r in ("failed", "dropped")), timeout=6)
    check(lost >= 20, f"spans that could not be posted are counted: {lost}")
    status, _, _ = weir.http("GET", "/healthz")
    check(status == 200, f"/healthz still 200: {status}")
    await ws.close()


TESTS = [test_spans_reach_the_collector, test_the_sampled_flag_decides,
         test_a_dead_collector_costs_spans_not_service]


def main():
    build = build_dir(__doc__)
    collector = Collector()
    weir = Weir(build, "--threads", "2", "--otlp-endpoint", collector.url(),
                "--otlp-service-name", SERVICE)
    try:
        failed = run_tests(TESTS, weir, collector, timeout=60)
    finally:
        status = weir.stop()
    if status != 0:
        failed += 1
        print(f"FAIL weir exited with status {status} after SIGTERM")
    if failed:
        print(weir.output()[-3000:])
    return finish(len(TESTS), failed)


if __name__ == "__main__":
    sys.exit(main())
