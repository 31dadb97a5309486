#!/usr/bin/env python3
"""weir's web pages end to end in headless Chromium (Debian's `chromium`).

Usage: pages_test.py BUILD_DIR

Starts BUILD_DIR/weir on a free port and one headless Chromium (driven over the DevTools
protocol, with Debian's python3-websockets), then checks:
- the pages' HTTP answers: Content-Type, Content-Security-Policy, ETag and 304, 404 and 405;
- two chat pages (alice and bob) join one room and each sees the other's messages, with sender
  name and time, in the same order;
- the dashboard's numbers move: WebSocket sessions, rooms and memberships, messages received and
  sent, a non-zero messages/s while a page sends, and "single node" without --gossip;
- a chat page reconnects after weir restarts and resumes the room without showing a message twice;
- with --gossip, the dashboard lists both nodes of a two-node cluster, alive;
- under --auth required, the chat page opened as /?token=JWT joins and sends as the token's sub;
- the screenshots of every page are not blank (the PNG is decoded here with zlib: enough distinct
  colours and enough pixels off the background).

Chromium missing is a failure, not a skip: `make deps` installs it. Every process started here
(weir, Chromium and its children, in their own process group) is stopped by its id. Screenshots
are kept in $PAGES_TEST_SCREENSHOTS when that is set. Exits 1 on any failure.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from weir_harness import (Weir, build_dir, check, finish, free_port, note, run_tests,
                          websockets)

CHROMIUM_CANDIDATES = ["chromium", "chromium-browser", "google-chrome"]
VIEWPORT = (900, 700)


# ---------------------------------------------------------------- Chromium over DevTools


class Chromium:
    """One headless Chromium in its own process group, stopped by that group's id."""

    def __init__(self):
        exe = next((shutil.which(c) for c in CHROMIUM_CANDIDATES if shutil.which(c)), None)
        check(exe, "chromium is installed (make deps installs Debian's chromium)")
        self.profile = tempfile.mkdtemp(prefix="weir-pages-chromium-")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
             "--disable-backgrounding-occluded-windows", "--mute-audio",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.browser_url = self._wait_for_devtools(timeout=30)

    def _wait_for_devtools(self, timeout):
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with open(path) as f:
                    lines = f.read().split()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"chromium did not open DevTools: {self.output()[-2000:]}")

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this Popen created
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


class DevTools:
    """The browser's DevTools socket; pages are flattened sessions on it."""

    def __init__(self, ws):
        self.ws, self.next_id, self.waiting = ws, 0, {}
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url):
        return cls(await websockets.connect(url, max_size=None, ping_interval=None))

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            future = self.waiting.pop(msg.get("id"), None)
            if future and not future.done():
                future.set_result(msg)

    async def send(self, method, params=None, session=None, timeout=15):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        await self.ws.send(json.dumps(msg))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise AssertionError(f"DevTools {method}: {answer['error']}")
        return answer["result"]

    async def close(self):
        self.reader.cancel()
        await self.ws.close()


class Page:
    def __init__(self, devtools, target, session):
        self.devtools, self.target, self.session = devtools, target, session

    @classmethod
    async def open(cls, devtools, url):
        target = (await devtools.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await devtools.send("Target.attachToTarget",
                                       {"targetId": target, "flatten": True}))["sessionId"]
        page = cls(devtools, target, session)
        await page.call("Page.enable")
        await page.call("Emulation.setDeviceMetricsOverride",
                        {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1,
                         "mobile": False})
        await page.call("Page.navigate", {"url": url})
        await page.wait("document.readyState === 'complete'", what=f"{url} loaded")
        return page

    async def call(self, method, params=None):
        return await self.devtools.send(method, params, self.session)

    async def eval(self, expression):
        result = await self.call("Runtime.evaluate", {"expression": expression,
                                                      "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {expression}: "
                                 f"{result['exceptionDetails'].get('exception', {})}")
        return result["result"].get("value")

    async def wait(self, expression, what, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.1)

    async def type_into(self, element_id, text):
        """Focuses the element and types as a user would (input events included)."""
        await self.eval(f"(e => {{ e.focus(); e.select && e.select(); }})"
                        f"(document.getElementById({json.dumps(element_id)}))")
        await self.call("Input.insertText", {"text": text})

    async def click(self, element_id):
        await self.eval(f"document.getElementById({json.dumps(element_id)}).click()")

    async def text(self, element_id):
        return await self.eval(f"document.getElementById({json.dumps(element_id)}).textContent")

    async def number(self, element_id):
        """A dashboard figure as an int (its locale separators removed); None while it shows –."""
        digits = re.sub(r"[^0-9]", "", await self.text(element_id))
        return int(digits) if digits else None

    async def screenshot(self):
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(shot["data"])

    async def close(self):
        await self.devtools.send("Target.closeTarget", {"targetId": self.target})


# ---------------------------------------------------------------- PNG


def png_pixels(data):
    """(width, height, rows of bytes, bytes per pixel) of an 8-bit RGB or RGBA PNG."""
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "a PNG signature")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    check(depth == 8 and colour in (2, 6) and interlace == 0, f"8-bit RGB(A) PNG: {header}")
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        unfilter(kind, row, previous, bpp)
        rows.append(row)
        previous = row
    return width, height, rows, bpp


def unfilter(kind, row, prev, bpp):
    if kind == 1:
        for i in range(bpp, len(row)):
            row[i] = (row[i] + row[i - bpp]) & 255
    elif kind == 2:
        for i in range(len(row)):
            row[i] = (row[i] + prev[i]) & 255
    elif kind == 3:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + prev[i]) >> 1)) & 255
    elif kind == 4:
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255


def blankness(png):
    """(distinct colours, share of pixels not of the most common colour)."""
    width, height, rows, bpp = png_pixels(png)
    counts = {}
    for row in rows:
        for x in range(0, width * bpp, bpp):
            key = bytes(row[x:x + 3])
            counts[key] = counts.get(key, 0) + 1
    return len(counts), 1 - max(counts.values()) / (width * height)


def check_not_blank(png, name):
    keep = os.environ.get("PAGES_TEST_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(keep, name + ".png"), "wb") as f:
            f.write(png)
    colours, inked = blankness(png)
    note(f"screenshot {name}: {len(png)} bytes, {colours} colours, {inked:.1%} off the background")
    check(colours >= 16 and inked >= 0.03,
          f"screenshot {name} is not blank: {colours} colours, {inked:.1%} off the background")


# ---------------------------------------------------------------- tests


def check_http(weir):
    status, headers, body = weir.http("GET", "/")
    check(status == 200 and headers.get("Content-Type", "").startswith("text/html"),
          f"/ is HTML: {status} {headers}")
    check("/static/chat.js" in body and "<script>" not in body, "/ loads its script from /static")
    csp = headers.get("Content-Security-Policy", "")
    check("default-src 'self'" in csp and "connect-src" in csp, f"/ has a CSP: {csp!r}")
    etag = headers.get("ETag", "")
    check(re.fullmatch(r'"[0-9a-f]{16}"', etag), f"/ has a strong ETag: {etag!r}")
    status, headers, body = weir.http("GET", "/", headers={"If-None-Match": etag})
    check(status == 304 and body == "" and "Content-Length" not in headers,
          f"If-None-Match with the ETag gets a bare 304: {status} {headers} {body!r}")
    for path, kind in [("/dashboard", "text/html"), ("/static/chat.js", "text/javascript"),
                       ("/static/dashboard.js", "text/javascript"),
                       ("/static/style.css", "text/css")]:
        status, headers, _ = weir.http("GET", path)
        check(status == 200 and headers.get("Content-Type", "").startswith(kind),
              f"{path} is {kind}: {status} {headers.get('Content-Type')}")
    check(weir.http("GET", "/static/missing.js")[0] == 404, "an unknown asset is 404")
    status, headers, _ = weir.http("POST", "/", body="x")
    check(status == 405 and "GET" in headers.get("Allow", ""), f"POST / is 405: {status}")
    status, headers, body = weir.http("GET", "/api/stats")
    stats = json.loads(body)
    check(status == 200 and headers.get("Content-Type") == "application/json",
          f"/api/stats is JSON: {status} {headers}")
    for key in ("connections_open", "ws_messages_received_total", "rooms",
                "slow_consumer_disconnect_total", "high_watermark_crossings_total", "store_up",
                "connections_handshaking", "connections_websocket_open", "connections_closing",
                "connections_above_high_watermark", "ws_messages_in_text_total",
                "ws_messages_out_close_total", "ws_payload_bytes_in_text_total",
                "ws_payload_bytes_out_binary_total"):
        check(isinstance(stats.get(key), int), f"/api/stats has {key}: {stats}")


async def join_as(page, name, room):
    await page.wait("document.body.dataset.status === 'up'", what="the chat page connected")
    await page.type_into("name", name)
    await page.type_into("room", room)
    await page.click("join")
    await page.wait("document.body.dataset.joined === 'yes'", what=f"{name} joined {room}")


async def say(page, text):
    await page.type_into("text", text)
    await page.click("send")


MESSAGES_JS = """[...document.querySelectorAll('#messages li.message')].map(li => ({
  name: li.querySelector('b').textContent, time: li.querySelector('time').textContent,
  text: li.querySelector('p').textContent, offset: Number(li.dataset.offset)}))"""


async def wait_messages(page, count, what):
    await page.wait(f"document.querySelectorAll('#messages li.message').length >= {count}",
                    what=what)
    return await page.eval(MESSAGES_JS)


async def test_two_pages_chat_and_the_dashboard_moves(build, chromium):
    weir = Weir(build, "--threads", "2")
    check_http(weir)
    base = f"http://127.0.0.1:{weir.port}"
    devtools = await DevTools.open(chromium.browser_url)
    try:
        dash = await Page.open(devtools, base + "/dashboard")
        await dash.wait("Number(document.body.dataset.samples) >= 2", what="dashboard samples")
        watched = ("total-in", "total-out", "ws-sessions", "conn-open", "msgs-in-text",
                   "msgs-out-text", "bytes-in-text")
        before = {k: await dash.number(k) for k in watched}
        check(await dash.number("rooms") == 0, "no rooms before the pages join")
        check("single node" in await dash.text("cluster-summary"),
              "the dashboard says single node without --gossip")

        alice = await Page.open(devtools, base + "/")
        bob = await Page.open(devtools, base + "/")
        await join_as(alice, "alice", "e2e-room")
        await join_as(bob, "bob", "e2e-room")
        await say(alice, "hello from alice")
        seen = await wait_messages(bob, 1, "bob sees alice's message")
        check(seen[0]["name"] == "alice" and seen[0]["text"] == "hello from alice",
              f"bob sees alice's name and text: {seen}")
        check(re.fullmatch(r"\d\d:\d\d:\d\d", seen[0]["time"]), f"with a time: {seen}")
        await say(bob, "hi alice, bob here")
        at_alice = await wait_messages(alice, 2, "alice sees both messages")
        at_bob = await wait_messages(bob, 2, "bob sees both messages")
        check([m["text"] for m in at_alice] == ["hello from alice", "hi alice, bob here"],
              f"alice sees both in order: {at_alice}")
        check([(m["name"], m["offset"]) for m in at_alice] ==
              [(m["name"], m["offset"]) for m in at_bob], f"one order: {at_alice} {at_bob}")

        # A burst from alice while the dashboard is watched: messages/s must show it.
        peak_in = 0
        for i in range(12):
            await say(alice, f"burst {i}")
            await asyncio.sleep(0.2)
            peak_in = max(peak_in, await dash.number("rate-in") or 0)
        await wait_messages(bob, 14, "bob sees the burst")
        deadline = time.monotonic() + 4
        while peak_in == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            peak_in = max(peak_in, await dash.number("rate-in") or 0)
        await dash.wait("document.getElementById('memberships').textContent === '2'",
                        what="the dashboard shows 2 memberships")
        # The server has received 14 messages and sent 28 or more: the next samples show it.
        number = "Number(document.getElementById('{}').textContent.replace(/[^0-9]/g, ''))"
        await dash.wait(f"{number.format('total-in')} >= {before['total-in'] + 14} && "
                        f"{number.format('total-out')} >= {before['total-out'] + 28}",
                        what="the dashboard's message totals to catch up", timeout=5)
        await dash.wait(f"{number.format('msgs-in-text')} >= {before['msgs-in-text'] + 14}",
                        what="the dashboard's by-type table to catch up", timeout=5)
        after = {k: await dash.number(k) for k in watched}
        note(f"dashboard before {before}, after {after}, peak messages in/s {peak_in}")
        check(after["ws-sessions"] >= before["ws-sessions"] + 2, f"sessions rose: {after}")
        check(after["conn-open"] >= before["conn-open"] + 2,
              f"WebSocket-open connections rose by the two chat pages: {after}")
        check(after["msgs-in-text"] >= before["msgs-in-text"] + 14,
              f"text messages in rose by 14: {after}")
        check(after["msgs-out-text"] >= before["msgs-out-text"] + 28,
              f"text messages out rose by 28: {after}")
        check(after["bytes-in-text"] > before["bytes-in-text"], f"text bytes in rose: {after}")
        check(after["total-in"] >= before["total-in"] + 14, f"messages in rose by 14: {after}")
        check(after["total-out"] >= before["total-out"] + 28, f"messages out rose by 28: {after}")
        check(peak_in > 0, "messages in /s went above 0 during the burst")
        check(await dash.number("rooms") == 1, "the dashboard shows one room")
        check(weir.metric("weir_room_memberships") == 2, "the server agrees: 2 memberships")

        check_not_blank(await alice.screenshot(), "chat-alice")
        check_not_blank(await bob.screenshot(), "chat-bob")
        check_not_blank(await dash.screenshot(), "dashboard")
        for page in (alice, bob, dash):
            await page.close()
    finally:
        await devtools.close()
        weir.stop()


async def test_chat_page_resumes_after_a_restart(build, chromium):
    tmp = tempfile.mkdtemp(prefix="weir-pages-")
    weir = Weir(build, "--threads", "1", "--store", f"sqlite:{tmp}/weir.db",
                "--session-secret-file", f"{tmp}/session.key")
    devtools = await DevTools.open(chromium.browser_url)
    try:
        page = await Page.open(devtools, f"http://127.0.0.1:{weir.port}/")
        await join_as(page, "carol", "resume-room")
        await say(page, "before the restart")
        await wait_messages(page, 1, "carol sees her message")
        check(weir.restart() == 0, "weir stopped cleanly")
        await page.wait("document.body.dataset.status === 'up' && "
                        "document.body.dataset.joined === 'yes'", timeout=20,
                        what="the page reconnected and is back in the room")
        notes = await page.eval("[...document.querySelectorAll('#messages li.note')]"
                                ".map(li => li.textContent)")
        check("reconnected" in notes, f"the page resumed (recovered): {notes}")
        await say(page, "after the restart")
        shown = await wait_messages(page, 2, "carol sees her message after the restart")
        await asyncio.sleep(0.5)
        shown = await page.eval(MESSAGES_JS)
        check([m["text"] for m in shown] == ["before the restart", "after the restart"],
              f"each message shown once: {shown}")
        check(shown[1]["offset"] == shown[0]["offset"] + 1, f"offsets continue: {shown}")
        check_not_blank(await page.screenshot(), "chat-resumed")
        await page.close()
    finally:
        await devtools.close()
        weir.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def test_dashboard_lists_cluster_members(build, chromium):
    tmp = tempfile.mkdtemp(prefix="weir-pages-")
    with open(os.path.join(tmp, "cluster.key"), "wb") as f:
        f.write(os.urandom(32))
    gossip = [free_port(), free_port()]
    common = ["--threads", "1", "--cluster-secret-file", os.path.join(tmp, "cluster.key")]
    a = Weir(build, *common, "--gossip", f"127.0.0.1:{gossip[0]}", "--node-id", "page-a")
    Weir(build, *common, "--gossip", f"127.0.0.1:{gossip[1]}", "--node-id", "page-b",
         "--join", f"127.0.0.1:{gossip[0]}")
    devtools = await DevTools.open(chromium.browser_url)
    try:
        dash = await Page.open(devtools, f"http://127.0.0.1:{a.port}/dashboard")
        await dash.wait("document.querySelectorAll('#cluster-members tr.state-alive').length == 2",
                        what="the dashboard lists both nodes alive", timeout=15)
        rows = await dash.eval("[...document.querySelectorAll('#cluster-members tr')]"
                               ".map(tr => tr.firstChild.textContent)")
        check(sorted(rows) == ["page-a", "page-b"], f"the members are the two nodes: {rows}")
        summary = await dash.text("cluster-summary")
        check("2 alive of 2" in summary, f"the summary counts them: {summary!r}")
        await dash.close()
    finally:
        await devtools.close()
        shutil.rmtree(tmp, ignore_errors=True)


def hs256_token(secret, claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


async def test_chat_page_passes_its_token_under_auth(build, chromium):
    tmp = tempfile.mkdtemp(prefix="weir-pages-")
    secret = os.urandom(16).hex().encode()
    with open(os.path.join(tmp, "jwt.secret"), "wb") as f:
        f.write(secret)
    weir = Weir(build, "--threads", "1", "--auth", "required",
                "--jwt-secret-file", os.path.join(tmp, "jwt.secret"))
    token = hs256_token(secret, {"sub": "dora", "exp": int(time.time()) + 600,
                                 "rooms": {"subscribe": ["*"], "publish": ["*"]}})
    devtools = await DevTools.open(chromium.browser_url)
    try:
        page = await Page.open(devtools, f"http://127.0.0.1:{weir.port}/?token={token}")
        await join_as(page, "dora", "auth-room")
        check("dora" in await page.text("status"), "the member id is the token's sub")
        await say(page, "signed in")
        shown = await wait_messages(page, 1, "dora sees her message")
        check(shown[0]["text"] == "signed in", f"the message went through: {shown}")
        await page.close()
    finally:
        await devtools.close()
        shutil.rmtree(tmp, ignore_errors=True)


TESTS = [test_two_pages_chat_and_the_dashboard_moves, test_chat_page_resumes_after_a_restart,
         test_dashboard_lists_cluster_members, test_chat_page_passes_its_token_under_auth]


def main():
    build = build_dir(__doc__)
    try:
        chromium = Chromium()
    except Exception as e:  # missing or not starting: a failure (CI installs it), never a skip
        print(f"FAIL chromium: {e}")
        return finish(len(TESTS), len(TESTS))
    try:
        failed = run_tests(TESTS, build, chromium, timeout=90)
    finally:
        chromium.stop()
    return finish(len(TESTS), failed)


if __name__ == "__main__":
    sys.exit(main())
