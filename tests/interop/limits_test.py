#!/usr/bin/env python3
"""Abuse limits per client address and the server-wide accept rate, over real sockets.

Usage: limits_test.py BUILD_DIR

- --max-connections-per-ip 3: a fourth connection from 127.0.0.1 is answered at once with
  HTTP 503, a JSON body naming the limit, Retry-After and Connection: close (a WebSocket client
  sees the handshake fail with 503); once one of the three closes, a new one is admitted;
  counted in weir_limit_refusals_total{limit="connections_per_ip"}.
- --handshakes-per-ip-per-sec 5: the sixth WebSocket handshake within the second gets 429 with
  Retry-After and a JSON body; plain HTTP requests are not limited; a second later handshakes
  succeed again; counted in weir_limit_refusals_total{limit="handshakes_per_ip"}.
- --accept-rate 20:5: 40 connections made at once are all served (none refused), but no faster
  than the rate: the last one waits about (40 - 5) / 20 s in the backlog; the pauses are counted
  in weir_accept_rate_limited_total.

Prints one line per check; exits 1 on any failure.
"""
import asyncio
import json
import socket
import sys

from weir_harness import Checks, Weir, build_dir, finish, run_tests, websockets


def raw_get(port, path="/healthz", timeout=5):
    """(status, headers dict (lower-case names), body) of one request on a fresh socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body.decode()


async def ws_status(weir, path="/echo"):
    """101 when the handshake succeeds (the socket is returned open), else the refusal's status
    and headers."""
    try:
        ws = await websockets.connect(weir.url(path), ping_interval=None, open_timeout=5)
        return 101, {}, ws
    except websockets.InvalidStatusCode as e:
        return e.status_code, {k.lower(): v for k, v in e.headers.raw_items()}, None


async def test_connections_per_ip(build):
    weir = Weir(build, "--threads", "2", "--max-connections-per-ip", "3")
    c = Checks("connections per ip")
    await asyncio.sleep(0.3)  # the harness's readiness probes have closed
    held = []
    for _ in range(3):
        status, _, ws = await ws_status(weir)
        held.append(ws)
        c.check(status == 101, f"connection {len(held)} of 3 admitted ({status})")
    status, headers, body = raw_get(weir.port)
    c.check(status == 503, f"the fourth is answered 503 ({status})")
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError):
        error = {}
    c.check(error.get("limit") == "connections_per_ip" and error.get("max") == 3,
            f"the body names the limit: {body.strip()}")
    c.check(headers.get("connection") == "close" and headers.get("retry-after") == "1",
            f"Connection: close and Retry-After: 1 ({headers})")
    status, _, _ = await ws_status(weir)
    c.check(status == 503, f"a WebSocket handshake over the limit fails with 503 ({status})")
    await held.pop().close()
    await asyncio.sleep(0.3)
    status, _, ws = await ws_status(weir)
    c.check(status == 101, f"after one closed, a new connection is admitted ({status})")
    for h in held + [ws]:
        await h.close()
    await asyncio.sleep(0.3)
    refused = weir.metric('weir_limit_refusals_total{limit="connections_per_ip"}')
    c.check(refused is not None and refused >= 2, f"refusals counted ({refused})")
    assert c.failed == 0, f"{c.failed} checks failed"


async def test_handshakes_per_ip(build):
    weir = Weir(build, "--threads", "2", "--handshakes-per-ip-per-sec", "5")
    c = Checks("handshakes per ip")
    await asyncio.sleep(1.1)  # the budget is whole again (the harness made no handshake)
    statuses, held = [], []
    for _ in range(6):
        status, headers, ws = await ws_status(weir)
        statuses.append(status)
        if ws:
            held.append(ws)
    c.check(statuses[:5] == [101] * 5, f"five handshakes admitted ({statuses})")
    c.check(statuses[5] == 429, f"the sixth is answered 429 ({statuses[5]})")
    retry = headers.get("retry-after", "")
    c.check(retry.isdigit() and 1 <= int(retry) <= 2, f"with Retry-After in seconds ({retry!r})")
    c.check(all(raw_get(weir.port)[0] == 200 for _ in range(10)),
            "plain HTTP requests are not limited")
    await asyncio.sleep(1.1)
    status, _, ws = await ws_status(weir)
    c.check(status == 101, f"a second later a handshake is admitted ({status})")
    for h in held + [ws]:
        if h:
            await h.close()
    refused = weir.metric('weir_limit_refusals_total{limit="handshakes_per_ip"}')
    c.check(refused == 1, f"one refusal counted ({refused})")
    assert c.failed == 0, f"{c.failed} checks failed"


async def test_accept_rate(build):
    rate, burst, n = 20, 5, 40
    weir = Weir(build, "--threads", "2", "--accept-rate", f"{rate}:{burst}")
    c = Checks("accept rate")
    await asyncio.sleep(burst / rate + 0.1)  # the harness's readiness probes spent some budget
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", weir.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return loop.time(), data.split(b" ", 2)[1] if data else b""

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    c.check(not errors, f"all {n} connections served, none refused ({errors[:3]})")
    ok = [r for r in results if not isinstance(r, Exception)]
    c.check(all(status == b"200" for _, status in ok), "every one answered 200")
    took = max(t for t, _ in ok) - started if ok else 0
    expected = (n - burst) / rate
    c.check(0.75 * expected <= took <= expected + 1.5,
            f"admitted at the rate: the last after {took:.2f}s (expected about {expected:.2f}s)")
    paused = weir.metric("weir_accept_rate_limited_total")
    c.check(paused is not None and paused > 0, f"pauses counted ({paused})")
    assert c.failed == 0, f"{c.failed} checks failed"


if __name__ == "__main__":
    build = build_dir(__doc__)
    tests = [test_connections_per_ip, test_handshakes_per_ip, test_accept_rate]
    sys.exit(finish(len(tests), run_tests(tests, build)))
