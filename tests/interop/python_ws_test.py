#!/usr/bin/env python3
"""Interop of weir's /echo with the Python `websockets` client (Debian python3-websockets).

Usage: /usr/bin/python3 tests/interop/python_ws_test.py BUILD_DIR

Starts BUILD_DIR/weir on a free port once per server mode (--deflate off, shared, dedicated, and
dedicated over TLS when weir has --tls-cert) and runs, with the client's permessage-deflate off
and on: text and binary echo from 0 B to 16 MiB, fragmented sends, pings, and every close code a
client may send echoed back. Every weir it started is stopped by PID on exit. Prints one line per
check and a summary; exits non-zero on any failure.
"""

import asyncio
import atexit
import functools
import http.client
import os
import random
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time

try:
    import websockets
except ImportError:  # run_all.sh may call a python3 without Debian's packages
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("python_ws_test: the websockets package is missing (apt-get install python3-websockets)")
    sys.exit(1)

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, (16 << 20) - 100]
CLOSE_CODES = [1000, 1001, 1003, 1007, 1008, 1009, 1011, 3000, 4999]
CASE_TIMEOUT = 30.0
TOTAL_TIMEOUT = 170  # seconds; a hung server fails the run instead of hanging it

_servers = []
_results = {"passed": 0, "failed": 0, "skipped": 0}


# ---------------------------------------------------------------- weir processes

class Weir:
    """One weir process on 127.0.0.1 and a port it picked itself (--listen :0)."""

    def __init__(self, binary, workdir, name, flags):
        self.name = name
        self.log_path = os.path.join(workdir, "weir-%s.log" % name)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--threads", "1", "--log-level", "info"] + flags,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        _servers.append(self)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                m = re.search(r"listening on \S+ port (\d+)", f.read())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("weir (%s) did not start:\n%s" % (self.name, self.log_tail()))

    def log_tail(self):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-20:])

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s; returns the exit status (0 for a clean shutdown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


def stop_all():
    while _servers:
        _servers.pop().stop()


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


# ---------------------------------------------------------------- checks

VERBOSE = bool(os.environ.get("WEIR_TEST_VERBOSE"))


def report(ok, name, detail=""):
    """Counts a check; prints failures (and passes with WEIR_TEST_VERBOSE=1)."""
    _results["passed" if ok else "failed"] += 1
    if VERBOSE or not ok:
        print("%s %s%s" % ("ok  " if ok else "FAIL", name, (": " + detail) if detail else ""), flush=True)


@functools.lru_cache(maxsize=None)  # the 16 MiB ones take a while to build: once per run
def text_of(n, seed):
    """n bytes of UTF-8 text: words and, where room allows, two-byte characters."""
    rnd = random.Random(seed)
    words = ["weir ", "echo ", "κόσμε ", "frame ", "{\"n\":42} "]
    out, size = [], 0
    while size < n:
        w = rnd.choice(words)
        b = len(w.encode())
        if size + b > n:
            w, b = "x" * (n - size), n - size
        out.append(w)
        size += b
    return "".join(out)


@functools.lru_cache(maxsize=None)
def bytes_of(n, seed):
    return random.Random(seed).randbytes(n)


async def fragments(parts):
    for p in parts:
        yield p


async def check_echo(ws, label, message):
    await ws.send(message)
    got = await asyncio.wait_for(ws.recv(), CASE_TIMEOUT)
    ok = type(got) is type(message) and got == message
    report(ok, label, "" if ok else "got %s of %d, sent %s of %d" % (
        type(got).__name__, len(got), type(message).__name__, len(message)))


async def run_matrix(uri, label, compression, ssl_context, expect_deflate, server_flags):
    kwargs = dict(compression=compression, max_size=None, ping_interval=None, close_timeout=5,
                  open_timeout=10)
    if ssl_context:
        kwargs["ssl"] = ssl_context
    async with websockets.connect(uri, **kwargs) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        negotiated = bool(ws.extensions)
        report(negotiated == expect_deflate, "%s negotiation" % label,
               "Sec-WebSocket-Extensions: %r" % ext)
        if negotiated and "shared" in server_flags:
            report("server_no_context_takeover" in ext and "client_no_context_takeover" in ext,
                   "%s shared mode drops context both ways" % label, ext)
        for i, n in enumerate(SIZES):
            await check_echo(ws, "%s text %d B" % (label, n), text_of(n, i))
            await check_echo(ws, "%s binary %d B" % (label, n), bytes_of(n, i))
        # Fragmented sends: the client streams one message from an async iterator.
        text_parts = ["fragment one, ", "", "κόσμε, ", text_of(70000, 7), "last"]
        await ws.send(fragments(text_parts))
        got = await asyncio.wait_for(ws.recv(), CASE_TIMEOUT)
        report(got == "".join(text_parts), "%s fragmented text" % label)
        bin_parts = [bytes_of(1000, 1), b"", bytes_of(65536, 2), bytes_of(7, 3), bytes_of(200000, 4)]
        await ws.send(fragments(bin_parts))
        got = await asyncio.wait_for(ws.recv(), CASE_TIMEOUT)
        report(got == b"".join(bin_parts), "%s fragmented binary" % label)
        for payload in [b"", b"ping", bytes_of(125, 5)]:
            waiter = await ws.ping(payload)
            try:
                await asyncio.wait_for(waiter, CASE_TIMEOUT)
                report(True, "%s ping of %d B answered" % (label, len(payload)))
            except asyncio.TimeoutError:
                report(False, "%s ping of %d B answered" % (label, len(payload)), "no pong")
        await check_echo(ws, "%s echo after pings" % label, "still talking")
    for code in CLOSE_CODES:
        async with websockets.connect(uri, **kwargs) as ws:
            await check_echo(ws, "%s before close %d" % (label, code), "bye soon")
            await ws.close(code, "closing with %d" % code)
            report(ws.close_code == code, "%s close %d echoed" % (label, code),
                   "server answered %s" % ws.close_code)


def https_healthz(port, ca):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl.create_default_context(cafile=ca))
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def make_certificate(workdir):
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


async def main(binary, workdir):
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    modes = [("off", []), ("shared", ["--deflate", "shared"]), ("dedicated", ["--deflate", "dedicated"])]
    tls = None
    if "--tls-cert" in help_text:
        cert, key = make_certificate(workdir)
        tls = (cert, ssl.create_default_context(cafile=cert))
        modes.append(("dedicated+tls", ["--deflate", "dedicated", "--tls-cert", cert, "--tls-key", key]))
    else:
        _results["skipped"] += 1
        print("skip wss://: weir has no --tls-cert flag yet")
    for name, flags in modes:
        server = Weir(binary, workdir, name.replace("+", "-"), flags)
        secure = "--tls-cert" in flags
        uri = "%s://127.0.0.1:%d/echo" % ("wss" if secure else "ws", server.port)
        for compression in (None, "deflate"):
            label = "[%s server, client deflate %s]" % (name, "on" if compression else "off")
            before = dict(_results)
            started = time.monotonic()
            try:
                await asyncio.wait_for(
                    run_matrix(uri, label, compression, tls[1] if secure else None,
                               compression is not None and name != "off", flags),
                    120)
            except Exception as e:  # a broken connection fails the rest of this combination
                report(False, "%s aborted" % label, "%s: %s" % (type(e).__name__, e))
                print(server.log_tail())
            print("%s %s: %d checks passed, %d failed in %.1f s" % (
                "FAIL" if _results["failed"] > before["failed"] else "ok  ", label,
                _results["passed"] - before["passed"], _results["failed"] - before["failed"],
                time.monotonic() - started), flush=True)
        if secure:
            status, body = https_healthz(server.port, tls[0])
            report(status == 200 and body == b"ok\n", "[%s] https:// GET /healthz on the same port" % name,
                   "%s %r" % (status, body))
        status = server.stop()
        _servers.remove(server)
        report(status == 0, "[%s] weir shuts down cleanly on SIGTERM" % name,
               "exit status %s\n%s" % (status, server.log_tail()))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    weir = os.path.join(sys.argv[1], "weir")
    if not os.access(weir, os.X_OK):
        print("python_ws_test: %s is not an executable" % weir)
        sys.exit(2)
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(TOTAL_TIMEOUT)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="weir-pyws-") as tmp:
        try:
            asyncio.run(main(weir, tmp))
        finally:
            stop_all()
    print("python websockets %s interop: %d passed, %d failed, %d skipped in %.1f s" % (
        websockets.__version__, _results["passed"], _results["failed"], _results["skipped"],
        time.monotonic() - started))
    sys.exit(1 if _results["failed"] else 0)
