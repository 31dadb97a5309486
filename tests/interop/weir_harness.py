"""What weir's Python end-to-end tests share: the weir process, /ws clients, pass/fail lines.

- `Weir(build, *flags)` starts BUILD/weir on 127.0.0.1 and a free port and waits for /readyz;
  `stop()` (SIGTERM, SIGKILL after a bound), `kill()` (SIGKILL), `pause()`/`resume()` (SIGSTOP,
  SIGCONT) and `restart()` (same flags, same port) act on its PID only. Every Weir ever started is
  in `Weir.started`, so a runner can stop what a failed test left behind. With `netns=NAME` it
  runs inside that network namespace (`ip netns exec`) on `host`, and its HTTP and /ws clients
  open their sockets there (`netns_socket`).
- `connect`, `recv`, `expect`, `join`, `collect`, `quiet`: asyncio helpers over Debian's
  `websockets` (10.4); every wait has a timeout, and a timeout says what was awaited.
- `Checks` and `run_tests` print `ok   name` / `FAIL name: detail`; `finish` turns the count of
  failures into the exit status.

Import it before `websockets`: under a python3 without that module (a pyenv on PATH), importing
this re-executes the calling script with /usr/bin/python3.
"""
import asyncio
import ctypes
import fcntl
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import websockets
except ImportError:  # run_all.sh may call a python3 without it; Debian's has websockets 10.4
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the weir process


# A short drain, so that stop() (SIGTERM) stays quick with sessions open; a test's own
# --drain-spread / --drain-timeout come later on the command line and win.
DRAIN_DEFAULTS = ["--drain-spread", "100ms", "--drain-timeout", "3s"]


def free_gossip_port():
    """A port free for both UDP (gossip) and TCP (peer links), outside the ephemeral range the
    kernel hands to outgoing connections, so no client socket takes it before weir binds."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(x) for x in f.read().split())
    while True:
        port = random.randint(20000, low - 1) if low > 21000 else random.randint(high + 1, 65000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
                return port
        except OSError:
            continue


CLONE_NEWNET = 0x40000000


def netns_socket(netns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket created inside the network namespace /run/netns/NETNS (made with `ip netns add`).
    A socket belongs to the namespace it was created in, whatever thread uses it later; setns(2)
    moves only the calling thread, so the socket is made by a short-lived thread that moves
    first (Python 3.11 has no os.setns)."""
    result = {}

    def make():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/run/netns/{netns}") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            result["socket"] = socket.socket(family, kind)
        except OSError as e:
            result["error"] = e

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["socket"]


def netns_connect(netns, host, port, timeout=5):
    """A TCP socket made in `netns` and connected to host:port (blocking, with timeout)."""
    sock = netns_socket(netns)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Weir:
    """One weir process on 127.0.0.1 and a free port (kept across restarts); acted on by its PID.
    Its stdout and stderr, over every start, go to one log (`output()`). With `netns`, the
    process runs in that network namespace, listening on host:port (default port 8080: the
    namespace's ports are all free)."""

    started = []  # every Weir, in creation order

    def __init__(self, build, *flags, ready_timeout=10, host="127.0.0.1", port=None, netns=None):
        self.build, self.flags = build, list(flags)
        self.host, self.netns = host, netns
        self.port = port or (8080 if netns else free_port())
        self.log = tempfile.TemporaryFile()
        fd = self.log.fileno()  # appended to by every run, read with pread: no shared offset
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        self.proc = None
        Weir.started.append(self)
        self.start(ready_timeout)

    def start(self, ready_timeout=10):
        """Starts the process and waits (at most ready_timeout) for /readyz to answer 200."""
        # `ip netns exec` execs weir in place: the PID is weir's.
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen(
            [*prefix, os.path.join(self.build, "weir"), "--listen", f"{self.host}:{self.port}",
             *DRAIN_DEFAULTS, *self.flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if self.http("GET", "/readyz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Failure(f"weir did not start: {self.output()[-3000:]}")
            time.sleep(0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM to its PID, SIGKILL if it has not exited within timeout; its exit status (0
        after a clean shutdown)."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused process would never act on SIGTERM
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        """SIGKILL to its PID (no shutdown at all); its exit status (-9)."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        return self.proc.returncode

    def pause(self):
        """SIGSTOP to its PID: it stays alive and holds its sockets, but does nothing."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        """SIGCONT to its PID."""
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self, kill=False, ready_timeout=10):
        """Stops it (SIGTERM, or SIGKILL when kill) and starts it again with the same flags on the
        same port; the exit status of the stopped process."""
        status = self.kill() if kill else self.stop()
        os.write(self.log.fileno(), f"--- weir exited {status}; restarting\n".encode())
        self.start(ready_timeout)
        return status

    def output(self):
        return os.pread(self.log.fileno(), 1 << 26, 0).decode(errors="replace")

    def http(self, method, path, body=None, headers=None, timeout=5):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            if self.netns:
                conn.sock = netns_connect(self.netns, self.host, self.port, timeout)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode()
        finally:
            conn.close()

    def metric(self, sample):
        """The value of one /metrics sample (name with its labels), or None."""
        body = self.http("GET", "/metrics")[2]
        m = re.search(r"^" + re.escape(sample) + r" (\S+)$", body, re.M)
        return float(m.group(1)) if m else None

    def descriptors(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024

    def url(self, path="/ws"):
        return f"ws://{self.host}:{self.port}{path}"

    def client_socket(self, timeout=5):
        """A TCP socket connected to its listener, for clients of a Weir in a namespace."""
        return netns_connect(self.netns, self.host, self.port, timeout)


class RedisServer:
    """redis-server on a free loopback port, persistence off, its files in `directory`;
    stopped by its PID (start() again after stop() restarts it on the same port)."""

    def __init__(self, directory):
        self.port, self.proc, self.directory = free_port(), None, directory
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            check(self.proc.poll() is None and time.monotonic() < deadline,
                  "redis-server did not start")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


# ---------------------------------------------------------------- /ws clients


async def connect(weir, subprotocols=None, path="/ws", session=True, timeout=3, **options):
    """Opens a /ws connection (the opening handshake bounded by websockets' open_timeout, 10 s):
    (ws, the first frame's session body, awaited at most `timeout`). With session=False the first
    frame is left unread and (ws, None) is returned. `options` go to websockets.connect."""
    options = {"max_size": None, "ping_interval": None, "close_timeout": 2, **options}
    if getattr(weir, "netns", None):
        options.setdefault("sock", weir.client_socket())
    ws = await websockets.connect(weir.url(path), subprotocols=subprotocols, **options)
    if not session:
        return ws, None
    first = await recv(ws, timeout, "the session frame")
    check("session" in first, f"first frame is the session: {first}")
    return ws, first["session"]


async def recv(ws, timeout=3, what="a frame"):
    """The next frame, parsed; asyncio.TimeoutError naming `what` (a string, or a function
    giving one, called only then) when none comes in time."""
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        what = what() if callable(what) else what
        raise asyncio.TimeoutError(f"no frame within {timeout}s while waiting for {what}") from None
    return json.loads(raw)


async def expect(ws, kind, timeout=3):
    env = await recv(ws, timeout, kind)
    check(kind in env, f"expected {kind}, got {env}")
    return env[kind]


async def join(ws, room, skip_messages=False, timeout=3):
    await ws.send(json.dumps({"join_room": {"room_id": room}}))
    while True:
        env = await recv(ws, timeout, f"room_joined {room}")
        if not (skip_messages and "message" in env):
            break
    check("room_joined" in env, f"expected room_joined, got {env}")
    joined = env["room_joined"]
    check(joined["room_id"] == room, f"room_joined names the room: {joined}")
    return joined


async def quiet(ws, seconds=0.2):
    """The next frame if one arrives within `seconds` (raw), else None."""
    try:
        return await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return None


def message(target, content, **fields):
    return json.dumps({"message": {"target": target, "content": content, **fields}})


async def collect(ws, count, kind="message", timeout=3):
    """The bodies of the next `count` frames, each of which must be a `kind`; a Failure that
    lists what came before when another envelope arrives, asyncio.TimeoutError when one is late
    (each frame gets `timeout`)."""
    got = []
    while len(got) < count:
        env = await recv(ws, timeout, lambda: f"{kind} {len(got) + 1} of {count} (got "
                         f"{brief(got)})")
        if kind not in env:
            raise Failure(f"expected {kind} {len(got) + 1} of {count}, got {env} after "
                          f"{brief(got)}")
        got.append(env[kind])
    return got


async def frames_until_closed(ws, timeout=5):
    """Every frame (parsed) until the server closes the connection; (frames, close code, close
    reason). asyncio.TimeoutError when it is still open after `timeout`."""
    frames, deadline = [], time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError(f"still open after {timeout}s ({len(frames)} frames)")
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
    except websockets.ConnectionClosed:
        return frames, ws.close_code, ws.close_reason


def brief(bodies, limit=6):
    """A short rendering of message bodies for failure details: offsets and message ids."""
    items = [f"{b.get('offset')}:{b.get('message_id')}" if isinstance(b, dict) else repr(b)
             for b in bodies]
    if len(items) > 2 * limit:
        items = items[:limit] + [f"... {len(items) - 2 * limit} more ..."] + items[-limit:]
    return "[" + ", ".join(items) + "]"


# ---------------------------------------------------------------- pass/fail lines


class Checks:
    """Prints one line per check under a scenario's name and counts the failures."""

    def __init__(self, name):
        self.name, self.failed = name, 0

    def check(self, cond, what):
        report(cond, f"{self.name}: {what}")
        self.failed += not cond
        return cond


def report(passed, name, detail=None):
    if passed:
        print(f"ok   {name}" + (f" ({detail})" if detail else ""), flush=True)
    else:
        print(f"FAIL {name}: {detail}" if detail else f"FAIL {name}", flush=True)


def note(text):
    """An informational line (a measurement, a count) between the ok/FAIL lines."""
    print(f"---  {text}", flush=True)


def where(e):
    """ " (at file:line)" of the innermost frame of a test script (not this module, not the
    standard library) that the exception passed through."""
    here = os.path.realpath(__file__)
    lines = [f for f in traceback.extract_tb(e.__traceback__)
             if os.path.realpath(f.filename) != here and "/python3" not in f.filename
             and "site-packages" not in f.filename and "dist-packages" not in f.filename]
    return f" (at {os.path.basename(lines[-1].filename)}:{lines[-1].lineno})" if lines else ""


def run_tests(tests, *args, timeout=60, logs=3000):
    """Runs each `async def test(*args)` in its own event loop, bounded by timeout; one line per
    test. After a failure, the last `logs` characters of every weir started during it are
    printed; any of them still running is stopped. The number of failed tests."""
    failed = 0
    for t in tests:
        first = len(Weir.started)
        started = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(t(*args), timeout))
            report(True, t.__name__, f"{time.monotonic() - started:.1f}s")
        except Exception as e:  # a test's bug fails that test; the others still run
            failed += 1
            report(False, t.__name__, f"{type(e).__name__}: {e}{where(e)}")
            for w in Weir.started[first:]:
                print(f"---  weir {' '.join(w.flags)} (port {w.port}) output:\n"
                      f"{w.output()[-logs:]}", flush=True)
        finally:
            for w in Weir.started[first:]:
                w.stop()
    return failed


def build_dir(doc, default=None):
    """BUILD_DIR from argv (or `default`); exits 2 after printing `doc` on a wrong argument list,
    1 when BUILD_DIR/weir is not there."""
    if len(sys.argv) > 2 or (len(sys.argv) < 2 and default is None):
        print(doc)
        sys.exit(2)
    build = sys.argv[1] if len(sys.argv) == 2 else default
    if not os.access(os.path.join(build, "weir"), os.X_OK):
        print(f"no {build}/weir: build it first")
        sys.exit(1)
    return build


def finish(total, failed):
    """Prints the closing line; the exit status."""
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0
