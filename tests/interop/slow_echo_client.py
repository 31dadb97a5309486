#!/usr/bin/env python3
"""A slow reader for `weir --tcp-echo`: sends a byte pattern as fast as the server accepts it,
reads the echo back at a fixed rate, and checks every byte.

Usage: slow_echo_client.py --port PORT [--host 127.0.0.1] [--bytes N] [--rate BYTES_PER_SEC]
                           [--label NAME]
Prints one summary line; exits 0 when every byte came back in order followed by a clean close.
"""
import argparse
import socket
import sys
import threading
import time

PERIOD = 65521  # a prime period: a misplaced chunk never matches by accident
CHUNK = 256 * 1024


def make_pattern():
    base = bytes(((i * 131) ^ (i >> 7) ^ 0x5A) & 0xFF for i in range(PERIOD))
    reps = (PERIOD + CHUNK) // PERIOD + 1
    return base * reps  # any slice [o, o + CHUNK) with o < PERIOD is in range


def connect(host, port, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return socket.create_connection((host, port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def send_pattern(sock, pattern, total, errors):
    sent = 0
    try:
        while sent < total:
            o = sent % PERIOD
            n = min(CHUNK, total - sent)
            sock.sendall(pattern[o:o + n])
            sent += n
        sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        errors.append(f"send failed after {sent} bytes: {e}")


def read_pattern(sock, pattern, total, rate):
    """Reads to EOF at `rate` bytes/s; returns (bytes read, first mismatch offset or None)."""
    buf = bytearray(64 * 1024)
    view = memoryview(buf)
    got = 0
    mismatch = None
    start = time.monotonic()
    while True:
        n = sock.recv_into(view)
        if n == 0:
            return got, mismatch
        if mismatch is None:
            o = got % PERIOD
            chunk = bytes(view[:n])
            if chunk != pattern[o:o + n]:
                i = next(i for i in range(n) if chunk[i] != pattern[o + i])
                mismatch = got + i
        got += n
        ahead = got / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bytes", type=int, default=256 << 20)
    ap.add_argument("--rate", type=float, default=8 << 20)
    ap.add_argument("--label", default="echo")
    args = ap.parse_args()

    pattern = make_pattern()
    sock = connect(args.host, args.port)
    errors = []
    sender = threading.Thread(target=send_pattern, args=(sock, pattern, args.bytes, errors),
                              daemon=True)
    start = time.monotonic()
    sender.start()
    try:
        got, mismatch = read_pattern(sock, pattern, args.bytes, args.rate)
    except OSError as e:
        print(f"{args.label}: FAIL read error: {e}")
        return 1
    sender.join(timeout=5)
    elapsed = time.monotonic() - start
    rate = got / elapsed / (1 << 20) if elapsed > 0 else 0
    if mismatch is not None:
        errors.append(f"byte {mismatch} differs from the pattern")
    if got != args.bytes:
        errors.append(f"received {got} of {args.bytes} bytes")
    status = "FAIL " + "; ".join(errors) if errors else "ok"
    print(f"{args.label}: {status} ({got} bytes in {elapsed:.1f}s, {rate:.1f} MiB/s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
