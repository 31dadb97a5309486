#!/usr/bin/env python3
"""JWT authentication and room ACLs, end to end against the weir binary (docs/protocol.md,
"Authentication").

Usage: auth_test.py [BUILD_DIR]   (default: build)

Keys are made here with the openssl CLI (an RSA 2048 and an EC P-256 pair) and a random HS256
secret; tokens are signed here (HS256 with hmac, RS256/ES256 with `openssl dgst -sign`, the
ES256 DER signature turned into raw r||s). Each test starts its own weir with --auth and the
keys, on a free port, and stops it by its PID.
- valid HS256 (Authorization: Bearer), RS256 (?token=) and ES256 (a bearer.<token> subprotocol
  entry beside weir.v1, which is the one echoed): upgraded, member_id == sub;
- refused before the upgrade with 401, a JSON body naming the reason and WWW-Authenticate:
  expired, nbf in the future, wrong key, alg none, wrong algorithm (HS256 signed with the RSA
  public key's PEM; an RS256 token under the EC key's kid), unknown kid, malformed, missing
  (under required);
- ACL: a join outside `subscribe` and a publish outside `publish` get error forbidden (ref the
  room / message); an allowed join and publish work; a resume of another sub's session is
  forbidden;
- refresh: the same sub gets `refreshed {exp}`, another sub forbidden, an expired token
  invalid_token; a refreshed member outlives its first token; one that does not refresh is
  closed with 1008 "token expired";
- SIGHUP with new key files: the open connection stays and keeps working, a token of the new
  keys is accepted, one of the old keys refused;
- --auth optional: no token is anonymous (random member id, every room), a bad token is 401;
- --jwt-issuer and --jwt-audience: a token with that iss and that aud (a string, or an array
  holding it) is upgraded; another iss, another aud, or none is 401 wrong_issuer /
  wrong_audience, counted by reason, logged as "auth refused" with the reason;
- --max-rooms-per-connection: too_many_rooms, and the refusal metrics.
Prints one line per check; exits 1 on any failure.
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
import subprocess
import sys
import tempfile
import time

from weir_harness import (Checks, Failure, Weir, build_dir, check, connect, expect, finish,
                          frames_until_closed, join, message, quiet, recv, run_tests, websockets)

TMP = None
KEYS = {}  # name -> path


# ---------------------------------------------------------------- keys and tokens


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def make_keys(prefix):
    """An HS256 secret, an RSA and an EC key pair, written under TMP with `prefix`."""
    paths = {}
    paths["secret"] = os.path.join(TMP, f"{prefix}secret")
    with open(paths["secret"], "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    for name, opts in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        key = os.path.join(TMP, f"{prefix}{name}.pem")
        openssl("genpkey", *opts, "-out", key)
        openssl("pkey", "-in", key, "-pubout", "-out", key + ".pub")
        paths[name] = key
    return paths


def secret_of(paths):
    with open(paths["secret"]) as f:
        return f.read().rstrip("\n").encode()


def der_to_raw(der):
    """ECDSA-Sig-Value (SEQUENCE of two INTEGERs) -> r||s, 32 bytes each (JWS ES256)."""
    def read_len(i):
        n = der[i]
        if n < 0x80:
            return n, i + 1
        k = n & 0x7F
        return int.from_bytes(der[i + 1:i + 1 + k], "big"), i + 1 + k
    check(der[0] == 0x30, "DER signature is a SEQUENCE")
    _, i = read_len(1)
    out = b""
    for _ in range(2):
        check(der[i] == 0x02, "DER INTEGER")
        n, i = read_len(i + 1)
        out += int.from_bytes(der[i:i + n], "big").to_bytes(32, "big")
        i += n
    return out


def token(alg, claims, paths=None, kid=None, key=None, header=None):
    """A compact JWS. alg HS256 signs with the secret (or `key` bytes), RS256/ES256 with the
    private key file (or `key` path); alg "none" has an empty signature."""
    paths = paths or KEYS
    h = header or {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = (b64url(json.dumps(h).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    if alg == "none":
        sig = b""
    elif alg == "HS256":
        sig = hmac.new(key or secret_of(paths), signing_input, hashlib.sha256).digest()
    else:
        pem = key or paths["rsa" if alg == "RS256" else "ec"]
        sig = openssl("dgst", "-sha256", "-sign", pem, data=signing_input)
        if alg == "ES256":
            sig = der_to_raw(sig)
    return signing_input.decode() + "." + b64url(sig)


def claims(sub="alice", exp_in=3600, nbf_in=None, rooms=None):
    now = int(time.time())
    c = {"sub": sub, "exp": now + exp_in}
    if nbf_in is not None:
        c["nbf"] = now + nbf_in
    c["rooms"] = rooms if rooms is not None else {"subscribe": ["*"], "publish": ["*"]}
    return c


def start(*extra, auth="required", paths=None, leeway="0"):
    paths = paths or KEYS
    return Weir(BUILD, "--auth", auth, "--jwt-secret-file", paths["secret"],
                "--jwt-public-key", f"rsa={paths['rsa']}.pub",
                "--jwt-public-key", f"ec={paths['ec']}.pub", "--jwt-leeway", leeway, *extra)


def bearer_headers(tok):
    return {"Authorization": f"Bearer {tok}"}


def handshake(weir, tok=None, path="/ws"):
    """A raw upgrade request: (status, headers, body)."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
               "Sec-WebSocket-Version": "13"}
    if tok:
        headers.update(bearer_headers(tok))
    return weir.http("GET", path, headers=headers)


def refused(checks, weir, name, tok, reason, path="/ws"):
    status, headers, body = handshake(weir, tok, path)
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    challenge = headers.get("WWW-Authenticate", "")
    checks.check(status == 401 and code == reason and challenge.startswith("Bearer"),
                 f"{name} -> 401 {reason} (got {status} {body.strip()[:120]!r}, "
                 f"WWW-Authenticate {challenge!r})")


def passed(checks):
    if checks.failed:
        raise Failure(f"{checks.failed} check(s) failed")


# ---------------------------------------------------------------- tests


async def test_valid_tokens_upgrade_and_name_the_member():
    checks = Checks("valid")
    with start() as weir:
        ws, s = await connect(weir, extra_headers=bearer_headers(token("HS256", claims("alice"))))
        checks.check(s["member_id"] == "alice", f"HS256 in Authorization: member_id {s['member_id']}")
        await ws.close()
        ws, s = await connect(weir, path="/ws?token=" + token("RS256", claims("bob"), kid="rsa"))
        checks.check(s["member_id"] == "bob", f"RS256 in ?token=: member_id {s['member_id']}")
        await ws.close()
        ws, s = await connect(weir, subprotocols=["weir.v1", "bearer." +
                                                  token("ES256", claims("carol"), kid="ec")])
        checks.check(s["member_id"] == "carol" and ws.subprotocol == "weir.v1",
                     f"ES256 as bearer.<token> subprotocol: member_id {s['member_id']}, "
                     f"subprotocol echoed {ws.subprotocol}")
        await ws.close()
        ws, s = await connect(weir, extra_headers=bearer_headers(token("RS256", claims("dan"))))
        checks.check(s["member_id"] == "dan", "RS256 without kid: checked with every RSA key")
        await ws.close()
    passed(checks)


async def test_bad_tokens_get_401_before_the_upgrade():
    checks = Checks("refused")
    other = make_keys("other-")
    with start() as weir:
        refused(checks, weir, "expired", token("HS256", claims(exp_in=-5)), "expired")
        refused(checks, weir, "nbf in the future",
                token("HS256", claims(nbf_in=120)), "not_yet_valid")
        refused(checks, weir, "wrong HMAC key", token("HS256", claims(), paths=other),
                "bad_signature")
        refused(checks, weir, "wrong RSA key", token("RS256", claims(), paths=other, kid="rsa"),
                "bad_signature")
        refused(checks, weir, "wrong EC key", token("ES256", claims(), paths=other, kid="ec"),
                "bad_signature")
        refused(checks, weir, "alg none", token("none", claims()), "alg_not_allowed")
        with open(KEYS["rsa"] + ".pub", "rb") as f:
            pem = f.read()
        refused(checks, weir, "wrong algorithm: HS256 signed with the RSA public key PEM",
                token("HS256", claims(), key=pem, kid="rsa"), "alg_not_allowed")
        refused(checks, weir, "wrong algorithm: RS256 under the EC key's kid",
                token("RS256", claims(), kid="ec"), "alg_not_allowed")
        refused(checks, weir, "wrong algorithm: HS512",
                token("HS256", claims(), header={"alg": "HS512"}), "alg_not_allowed")
        refused(checks, weir, "unknown kid", token("RS256", claims(), kid="nope"), "unknown_kid")
        refused(checks, weir, "malformed", "not.a.jwt", "malformed")
        refused(checks, weir, "no sub", token("HS256", {"exp": int(time.time()) + 60}),
                "invalid_claims")
        refused(checks, weir, "missing token (required)", None, "missing_token")
        refused(checks, weir, "expired in ?token=", None, "expired",
                path="/ws?token=" + token("HS256", claims(exp_in=-5)))
        status, headers, _ = handshake(weir, None)
        checks.check(headers.get("WWW-Authenticate") == 'Bearer realm="weir"',
                     "missing token: WWW-Authenticate without an error attribute")
        failures = weir.metric('weir_auth_failures_total{reason="expired"}')
        checks.check(failures == 2, f"weir_auth_failures_total{{reason=\"expired\"}} = {failures}")
        unauthorized = weir.metric('weir_ws_handshakes_total{result="unauthorized"}')
        checks.check(unauthorized == 15, f"weir_ws_handshakes_total{{result=\"unauthorized\"}} = "
                     f"{unauthorized}")
    passed(checks)


async def test_issuer_and_audience_when_required():
    checks = Checks("iss/aud")
    iss, aud = "https://idp.example", "weir-test"

    def with_(**extra):
        return token("HS256", {**claims("erin"), **extra})

    with start("--jwt-issuer", iss, "--jwt-audience", aud) as weir:
        ws, s = await connect(weir, extra_headers=bearer_headers(with_(iss=iss, aud=aud)))
        checks.check(s["member_id"] == "erin", "matching iss and aud (string): upgraded")
        await ws.close()
        ws, s = await connect(weir, extra_headers=bearer_headers(
            with_(iss=iss, aud=["other", aud])))
        checks.check(s["member_id"] == "erin", "aud array holding the audience: upgraded")
        await ws.close()
        refused(checks, weir, "another iss", with_(iss="https://evil.example", aud=aud),
                "wrong_issuer")
        refused(checks, weir, "no iss", with_(aud=aud), "wrong_issuer")
        refused(checks, weir, "another aud", with_(iss=iss, aud="other"), "wrong_audience")
        refused(checks, weir, "aud array without it", with_(iss=iss, aud=["a", "b"]),
                "wrong_audience")
        refused(checks, weir, "no aud", with_(iss=iss), "wrong_audience")
        for reason, want in (("wrong_issuer", 2), ("wrong_audience", 3)):
            got = weir.metric(f'weir_auth_failures_total{{reason="{reason}"}}')
            checks.check(got == want, f"weir_auth_failures_total{{reason=\"{reason}\"}} = {got}")
        unauthorized = weir.metric('weir_ws_handshakes_total{result="unauthorized"}')
        checks.check(unauthorized == 5, f"handshakes unauthorized = {unauthorized}")
        checks.check("auth refused" in weir.output() and "code=wrong_" in weir.output(),
                     "the refusal is logged with its code")
    with start() as weir:
        ws, s = await connect(weir, extra_headers=bearer_headers(with_(iss="x", aud=7)))
        checks.check(s["member_id"] == "erin", "without the flags iss and aud are ignored")
        await ws.close()
    passed(checks)


async def test_room_acl_join_and_publish():
    checks = Checks("acl")
    rooms = {"subscribe": ["chat.*"], "publish": ["chat.general"]}
    with start() as weir:
        ws, s = await connect(weir, extra_headers=bearer_headers(
            token("HS256", claims("erin", rooms=rooms))))
        await ws.send(json.dumps({"join_room": {"room_id": "admin"}}))
        e = await expect(ws, "error")
        checks.check(e["code"] == "forbidden" and e["ref"] == "admin",
                     f"join outside subscribe -> forbidden, ref the room: {e}")
        await ws.send(json.dumps({"join_room": {"room_id": "chat"}}))
        e = await expect(ws, "error")
        checks.check(e["code"] == "forbidden", f"chat.* does not match chat: {e}")
        await join(ws, "chat.random")
        checks.check(True, "join inside subscribe (chat.random) -> room_joined")
        await ws.send(message("chat.random", "hi", message_id="m-1"))
        e = await expect(ws, "error")
        checks.check(e["code"] == "forbidden" and e["ref"] == "m-1",
                     f"publish outside publish -> forbidden, ref the message_id: {e}")
        await join(ws, "chat.general")
        await ws.send(message("chat.general", "hello"))
        m = await expect(ws, "message")
        checks.check(m["content"] == "hello" and m["sender"] == "erin",
                     f"allowed join + publish delivered, sender is the sub: {m}")
        checks.check(weir.metric('weir_acl_denied_total{action="join"}') == 2 and
                     weir.metric('weir_acl_denied_total{action="publish"}') == 1,
                     "weir_acl_denied_total counts joins (2) and publishes (1)")
        session_token = s["token"]
        await ws.close()

        ws, _ = await connect(weir, extra_headers=bearer_headers(token("HS256", claims("frank"))))
        await ws.send(json.dumps({"resume": {"token": session_token}}))
        e = await expect(ws, "error")
        checks.check(e["code"] == "forbidden" and e["ref"] == "resume",
                     f"resume of another sub's session -> forbidden: {e}")
        await ws.close()
        ws, _ = await connect(weir, extra_headers=bearer_headers(token("HS256", claims("erin"))))
        await ws.send(json.dumps({"resume": {"token": session_token}}))
        s2 = await expect(ws, "session")
        checks.check(s2["member_id"] == "erin", f"resume of its own session works: {s2}")
        await ws.close()
    passed(checks)


async def test_refresh_and_expiry():
    checks = Checks("refresh")
    with start() as weir:
        ws, _ = await connect(weir, extra_headers=bearer_headers(
            token("HS256", claims("gina", exp_in=2))))
        later = claims("gina", exp_in=120)
        await ws.send(json.dumps({"refresh": {"token": token("ES256", later, kid="ec")}}))
        r = await expect(ws, "refreshed")
        checks.check(r["exp"] == later["exp"], f"refresh (same sub) -> refreshed {{exp}}: {r}")
        await ws.send(json.dumps({"refresh": {"token": token("HS256", claims("mallory"))}}))
        e = await expect(ws, "error")
        checks.check(e["code"] == "forbidden" and e["ref"] == "refresh",
                     f"refresh with another sub -> forbidden: {e}")
        await ws.send(json.dumps({"refresh": {"token": token("HS256", claims("gina", exp_in=-5))}}))
        e = await expect(ws, "error")
        checks.check(e["code"] == "invalid_token" and e["message"].startswith("expired"),
                     f"refresh with an expired token -> invalid_token: {e}")

        ws2, _ = await connect(weir, extra_headers=bearer_headers(
            token("HS256", claims("hank", exp_in=2))))
        await asyncio.sleep(3.2)
        await join(ws, "lobby")
        checks.check(ws.open, "the refreshed member is open past its first token's exp")
        frames, code, reason = await frames_until_closed(ws2, timeout=3)
        checks.check(code == 1008 and reason == "token expired",
                     f"no refresh -> closed 1008 'token expired' (got {code} {reason!r})")
        closes = weir.metric("weir_auth_expired_closes_total")
        checks.check(closes == 1, f"weir_auth_expired_closes_total = {closes}")
        await ws.close()
    passed(checks)


async def test_sighup_reloads_keys_without_dropping_connections():
    checks = Checks("sighup")
    paths = make_keys("rot-")
    old = {k: v for k, v in paths.items()}
    saved = make_keys("saved-")  # the old keys, kept to sign with after the rotation
    for name in ("secret", "rsa", "ec"):
        shutil.copy(paths[name], saved[name])
        if name != "secret":
            shutil.copy(paths[name] + ".pub", saved[name] + ".pub")
    with start(paths=paths) as weir:
        ws, s = await connect(weir, extra_headers=bearer_headers(
            token("HS256", claims("ivy"), paths=old)))
        await join(ws, "lobby")
        fresh = make_keys("fresh-")
        for name in ("secret", "rsa", "ec"):  # rotate every key file in place
            shutil.copy(fresh[name], paths[name])
            if name != "secret":
                shutil.copy(fresh[name] + ".pub", paths[name] + ".pub")
        os.kill(weir.pid, signal.SIGHUP)
        deadline = time.monotonic() + 3
        while "JWT keys reloaded" not in weir.output() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        checks.check("JWT keys reloaded" in weir.output(), "SIGHUP logs 'JWT keys reloaded'")
        await ws.send(message("lobby", "still here"))
        m = await expect(ws, "message")
        checks.check(ws.open and m["content"] == "still here",
                     "the connection opened with the old key stays open and keeps working")
        for alg, kid in (("HS256", None), ("RS256", "rsa"), ("ES256", "ec")):
            ws2, s2 = await connect(weir, extra_headers=bearer_headers(
                token(alg, claims("jack"), paths=fresh, kid=kid)))
            checks.check(s2["member_id"] == "jack", f"a new {alg} key is accepted")
            await ws2.close()
            refused(checks, weir, f"an old {alg} key after the reload",
                    token(alg, claims(), paths=saved, kid=kid), "bad_signature")
        await ws.close()
    passed(checks)


async def test_optional_admits_anonymous_and_refuses_bad_tokens():
    checks = Checks("optional")
    with start(auth="optional") as weir:
        ws, s = await connect(weir)
        checks.check(re.fullmatch(r"m[0-9a-f]{16}", s["member_id"]) is not None,
                     f"no token -> anonymous, random member id {s['member_id']}")
        await join(ws, "anything.at.all")
        await ws.send(message("anything.at.all", "x"))
        m = await expect(ws, "message")
        checks.check(m["content"] == "x", "anonymous joins and publishes anywhere")
        await ws.send(json.dumps({"refresh": {"token": token("HS256", claims())}}))
        e = await expect(ws, "error")
        checks.check(e["code"] == "not_authenticated", f"anonymous refresh refused: {e}")
        await ws.close()
        ws, s = await connect(weir, extra_headers=bearer_headers(token("HS256", claims("kim"))))
        checks.check(s["member_id"] == "kim", "a valid token still authenticates")
        await ws.close()
        refused(checks, weir, "a bad token under optional", token("HS256", claims(exp_in=-9)),
                "expired")
    passed(checks)


async def test_rooms_per_connection_limit():
    checks = Checks("limit")
    with start("--max-rooms-per-connection", "2") as weir:
        ws, _ = await connect(weir, extra_headers=bearer_headers(token("HS256", claims("lea"))))
        await join(ws, "a")
        await join(ws, "b")
        await ws.send(json.dumps({"join_room": {"room_id": "c"}}))
        e = await expect(ws, "error")
        checks.check(e["code"] == "too_many_rooms" and e["ref"] == "c",
                     f"third join -> too_many_rooms: {e}")
        v = weir.metric('weir_limit_refusals_total{limit="rooms_per_connection"}')
        checks.check(v == 1, f"weir_limit_refusals_total{{limit=\"rooms_per_connection\"}} = {v}")
        await ws.close()
    passed(checks)


TESTS = [
    test_valid_tokens_upgrade_and_name_the_member,
    test_bad_tokens_get_401_before_the_upgrade,
    test_room_acl_join_and_publish,
    test_refresh_and_expiry,
    test_sighup_reloads_keys_without_dropping_connections,
    test_optional_admits_anonymous_and_refuses_bad_tokens,
    test_issuer_and_audience_when_required,
    test_rooms_per_connection_limit,
]


def main():
    global BUILD, TMP, KEYS
    BUILD = build_dir(__doc__, "build")
    if shutil.which("openssl") is None:
        print("the openssl command is needed")
        return 1
    TMP = tempfile.mkdtemp(prefix="weir-auth-")
    try:
        KEYS = make_keys("")
        failed = run_tests(TESTS, timeout=45)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return finish(len(TESTS), failed)


if __name__ == "__main__":
    sys.exit(main())
