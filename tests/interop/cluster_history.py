"""What the cluster tests share: who owns a room, and the history checker for room streams.

- `owner(nodes, room)`: the node rendezvous hashing gives the room to (cluster/cluster_view.cc).
- `wait_cluster(nodes, alive, links)`: polls GET /cluster and the link gauge until every node
  lists exactly `alive` as alive.
- `History`: one client's view of its rooms, checked frame by frame: per room, each message
  follows the last known offset of its epoch by exactly one, unless a `lagged` or a
  `resumed{recovered:false}` announced the gap (or the new epoch) first; no message id is
  received twice. It keeps the time of every notice, so a later check can ask whether a member
  that missed a message was told.
- `client`, `publish_all`, `drain`: clients that read in the caller's task (one at a time).
- `Member`: a client whose frames are read (and checked) by a task of its own, so that many
  members keep reading while the test publishes, pauses a node or cuts the network; its
  publishes are acknowledged when its own copy comes back.
- `check_one_order(members)`: across clients, one (room, epoch, offset) names one message.
- `check_no_silent_loss(members, acked)`: every acknowledged message reached every member of the
  room, or that member was told it missed it: a `lagged` range covering it, or a
  `resumed{recovered:false}` that arrived after the message was sent (`told_after_sent=False`:
  at any time after the member joined; `missed` lists them without failing).
"""
import asyncio
import json
import time

from weir_harness import Failure, check, connect, join, message, recv

M64 = (1 << 64) - 1


def rendezvous_weight(node, room):
    """cluster/cluster_view.cc's weight, so the test knows which node owns a room."""
    h = 1469598103934665603
    for b in node.encode():
        h = ((h ^ b) * 1099511628211) & M64
    h ^= 0xFF
    for b in room.encode():
        h = ((h ^ b) * 1099511628211) & M64
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & M64
    return h ^ (h >> 31)


def owner(nodes, room):
    return max(sorted(nodes), key=lambda n: rendezvous_weight(n, room))


def cluster_view(weir):
    """node_id -> state, as GET /cluster on `weir` lists its members."""
    body = json.loads(weir.http("GET", "/cluster")[2])
    return {m["node_id"]: m["state"] for m in body["members"]}


def wait_cluster(nodes, alive, links=None, timeout=15, pause=0.05):
    """Polls every node in `nodes` (name -> Weir) until it lists exactly `alive` as alive (and,
    with `links`, has that many peer links up); a Failure naming what it saw after timeout."""
    deadline = time.monotonic() + timeout
    want = sorted(alive)
    for name, w in nodes.items():
        while True:
            view = cluster_view(w)
            up = sorted(n for n, s in view.items() if s == "alive")
            have = w.metric("weir_cluster_links") if links is not None else None
            if up == want and have == links:
                break
            check(time.monotonic() < deadline,
                  f"{name} sees {want} alive with {links} links within {timeout}s "
                  f"(it lists {view}, links {have})")
            time.sleep(pause)


class History:
    """One client's view of its rooms, checked as it arrives (see the module doc)."""

    def __init__(self, name):
        self.name = name
        self.at = {}        # room -> (epoch, last offset)
        self.seen = {}      # room -> {message_id: (epoch, offset)}
        self.announced = {}  # room -> notices of gaps and new epochs
        self.joined_at = {}  # room -> time.monotonic() of room_joined
        self.notices = {}   # room -> [(time, epoch before, envelope)]
        self.trail = {}     # room -> [("message", epoch, offset) | (kind, body)]: for reports

    def joined(self, room, body):
        self.at[room] = (body["epoch"], body["offset"])
        self.seen.setdefault(room, {})
        self.joined_at[room] = time.monotonic()
        self.trail.setdefault(room, []).append(("joined", body))

    def _notice(self, room, env):
        self.announced.setdefault(room, []).append(env)
        self.notices.setdefault(room, []).append((time.monotonic(), self.at[room][0], env))
        self.trail.setdefault(room, []).append(next(iter(env.items())))

    def frame(self, env):
        if "message" in env:
            m = env["message"]
            room = m["target"]
            epoch, last = self.at[room]
            check(m["epoch"] == epoch and m["offset"] == last + 1,
                  f"{self.name}: {room} message {m['message_id']} at epoch {m['epoch']} offset "
                  f"{m['offset']} follows epoch {epoch} offset {last} (no silent gap); "
                  f"its stream: {self.story(room)}")
            check(m["message_id"] not in self.seen[room],
                  f"{self.name}: {m['message_id']} received once (first at "
                  f"{self.seen[room].get(m['message_id'])}, again at {m['epoch']}/{m['offset']})")
            self.seen[room][m["message_id"]] = (m["epoch"], m["offset"])
            self.at[room] = (epoch, m["offset"])
            self.trail[room].append(("message", m["epoch"], m["offset"]))
            return "message", m
        if "lagged" in env:
            g = env["lagged"]
            epoch, last = self.at[g["room_id"]]
            check(g["from_offset"] == last + 1, f"{self.name}: lagged starts after {last}: {g}")
            self._notice(g["room_id"], env)
            self.at[g["room_id"]] = (epoch, g["to_offset"])
            return "lagged", g
        if "resumed" in env:
            r = env["resumed"]
            self._notice(r["room_id"], env)
            self.at[r["room_id"]] = (r["epoch"], r["offset"])
            return "resumed", r
        if "error" in env:
            return "error", env["error"]
        return "other", env

    def lagged_covers(self, room, epoch, offset):
        return any(e == epoch and env["lagged"]["from_offset"] <= offset
                   <= env["lagged"]["to_offset"]
                   for _, e, env in self.notices.get(room, []) if "lagged" in env)

    def restarted_after(self, room, when):
        """A resumed{recovered:false} for `room` arrived after `when` (time.monotonic())."""
        return any(t > when and env["resumed"]["recovered"] is False
                   for t, _, env in self.notices.get(room, []) if "resumed" in env)

    def epochs(self, room):
        """The epochs this client received messages in, in order."""
        out = []
        for item in self.trail.get(room, []):
            if item[0] == "message" and (not out or out[-1] != item[1]):
                out.append(item[1])
        return out

    def story(self, room, limit=40):
        """The room's stream, compressed: runs of messages as `epoch:first-last`, notices whole."""
        parts, run = [], None
        for item in self.trail.get(room, []):
            if item[0] == "message":
                _, epoch, offset = item
                if run and run[0] == epoch and run[2] == offset - 1:
                    run[2] = offset
                    continue
                if run:
                    parts.append(f"msgs {run[0]}:{run[1]}-{run[2]}")
                run = [epoch, offset, offset]
                continue
            if run:
                parts.append(f"msgs {run[0]}:{run[1]}-{run[2]}")
                run = None
            parts.append(f"{item[0]} {json.dumps(item[1], sort_keys=True)}")
        if run:
            parts.append(f"msgs {run[0]}:{run[1]}-{run[2]}")
        if len(parts) > limit:
            parts = parts[:limit // 2] + [f"... {len(parts) - limit} more ..."] + parts[-limit // 2:]
        return "[" + "; ".join(parts) + "]"


async def client(weir, name, rooms):
    ws, _ = await connect(weir)
    h = History(name)
    for room in rooms:
        h.joined(room, await join(ws, room))
    return ws, h


async def publish_all(ws, h, room_msgs, timeout=20):
    """Sends each (room, message_id) and reads until every one came back to us (our own copy
    is the acknowledgement); an `unavailable` error is retried with the same message_id."""
    pending = {mid: room for room, mid in room_msgs}
    for room, mid in room_msgs:
        await ws.send(message(room, f"from {h.name}", message_id=mid))
    deadline = time.monotonic() + timeout
    while pending:
        env = await recv(ws, max(0.1, deadline - time.monotonic()), f"{len(pending)} acks")
        kind, body = h.frame(env)
        if kind == "message":
            pending.pop(body["message_id"], None)
        elif kind == "error" and body.get("code") == "unavailable" and body.get("ref") in pending:
            await asyncio.sleep(0.1)
            await ws.send(message(pending[body["ref"]], f"from {h.name}", message_id=body["ref"]))
        elif kind == "error":
            check(False, f"{h.name}: unexpected error {body}")


async def drain(ws, h, room, want_ids, timeout=10):
    """Reads until every id in want_ids was received in `room`."""
    deadline = time.monotonic() + timeout
    while not want_ids <= set(h.seen[room]):
        missing = want_ids - set(h.seen[room])
        env = await recv(ws, max(0.1, deadline - time.monotonic()),
                         lambda: f"{len(missing)} messages in {room}, e.g. {sorted(missing)[:3]}")
        h.frame(env)


class Member:
    """A /ws client in some rooms whose frames a task of its own reads and checks (History).
    `publish` sends a message; it is acknowledged when our own copy comes back (`acked`:
    message_id -> (room, epoch, offset, time sent)); `unavailable` is retried with the same
    message_id (a `duplicate` answer acknowledges it with the original's offset, epoch None).
    Any other error, or a checker failure, is raised by the next `until`."""

    def __init__(self, ws, h):
        self.ws, self.h = ws, h
        self.pending = {}   # message_id -> (room, time first sent)
        self.loose = {}     # the same, for publishes nobody waits for (not retried)
        self.loose_ids = set()
        self.unavailable = 0
        self.acked = {}
        self.errors = []
        self.failure = None
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, weir, name, rooms):
        ws, h = await client(weir, name, rooms)
        return cls(ws, h)

    @property
    def name(self):
        return self.h.name

    async def publish(self, room, mid, wait=True):
        """Sends a message; with wait=False, `acknowledged` does not wait for it and an
        `unavailable` answer drops it (it was never acknowledged, nothing is promised)."""
        (self.pending if wait else self.loose)[mid] = (room, time.monotonic())
        if not wait:
            self.loose_ids.add(mid)
        await self.ws.send(message(room, f"from {self.name}", message_id=mid))

    async def _resend(self, mid):
        await asyncio.sleep(0.1)
        if mid in self.pending:
            await self.ws.send(message(self.pending[mid][0], f"from {self.name}", message_id=mid))

    async def _read(self):
        try:
            async for raw in self.ws:
                kind, body = self.h.frame(json.loads(raw))
                if kind == "message":
                    mid = body["message_id"]
                    mine = self.pending if mid in self.pending else self.loose
                    if mid in mine:
                        room, sent = mine.pop(mid)
                        self.acked[mid] = (room, body["epoch"], body["offset"], sent)
                elif kind == "error":
                    self.errors.append(body)
                    ref = body.get("ref")
                    mine = self.pending if ref in self.pending else self.loose
                    if body.get("code") == "unavailable" and ref in mine:
                        self.unavailable += 1
                        if mine is self.pending:
                            asyncio.ensure_future(self._resend(ref))
                        else:
                            del mine[ref]
                    elif body.get("code") == "duplicate" and ref in mine:
                        room, sent = mine.pop(ref)
                        self.acked[ref] = (room, None, body.get("offset"), sent)
                    else:
                        raise Failure(f"{self.name}: unexpected error {body}")
                self.changed.set()
        except Exception as e:  # raised to the test by the next until()
            self.failure = e
        finally:
            self.changed.set()

    async def until(self, ready, timeout, what):
        """Waits until ready() holds (checked after every frame); a Failure naming `what` (a
        string or a function giving one) after timeout or if the connection closed."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.failure:
                raise self.failure
            check(not self.task.done(), f"{self.name}: connection open while waiting for "
                  f"{what() if callable(what) else what}")
            left = deadline - time.monotonic()
            check(left > 0, f"{self.name}: within {timeout}s, "
                  f"{what() if callable(what) else what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        if self.failure:
            raise self.failure

    async def acknowledged(self, timeout=20):
        await self.until(lambda: not self.pending, timeout,
                         lambda: f"acks of {sorted(self.pending)[:5]} ({len(self.pending)})")

    async def received(self, room, ids, timeout=20):
        await self.until(lambda: ids <= set(self.h.seen[room]), timeout,
                         lambda: f"{room}: {sorted(ids - set(self.h.seen[room]))[:5]} of "
                         f"{len(ids)} received; stream {self.h.story(room)}")

    async def in_epoch(self, room, epoch, timeout=20):
        await self.until(lambda: self.h.at[room][0] == epoch, timeout,
                         lambda: f"{room} in epoch {epoch}; stream {self.h.story(room)}")

    async def close(self):
        await self.ws.close()
        self.task.cancel()


def check_one_order(members):
    """Across every client: one (room, epoch, offset) names one message id."""
    where = {}
    for m in members:
        for room, seen in m.h.seen.items():
            for mid, (epoch, offset) in seen.items():
                other = where.setdefault((room, epoch, offset), (mid, m.name))
                check(other[0] == mid,
                      f"{room} epoch {epoch} offset {offset} is {other[0]} for {other[1]} but "
                      f"{mid} for {m.name} (one order per epoch)")


def missed(members, acked, told_after_sent=True):
    """member name -> room -> [(epoch, offset, message_id)]: the acknowledged messages
    (message_id -> (room, epoch, offset, time sent)) that a member, in the room when the message
    was sent, neither received nor was told it missed: no `lagged` range of that epoch covers
    its offset, and no resumed{recovered:false} arrived after it was sent (with
    told_after_sent=False: after the member joined)."""
    out = {}
    for m in members:
        for mid, (room, epoch, offset, sent) in acked.items():
            if room not in m.h.seen or m.h.joined_at[room] > sent or mid in m.h.seen[room]:
                continue
            if epoch is not None and m.h.lagged_covers(room, epoch, offset):
                continue
            if m.h.restarted_after(room, sent if told_after_sent else m.h.joined_at[room]):
                continue
            out.setdefault(m.name, {}).setdefault(room, []).append((epoch, offset, mid))
    return out


def check_no_silent_loss(members, acked, told_after_sent=True):
    """Fails naming the first member that missed an acknowledged message silently (`missed`),
    with some of the messages and the member's stream of the room."""
    by_name = {m.name: m for m in members}
    for name, rooms in missed(members, acked, told_after_sent).items():
        for room, lost in rooms.items():
            lost.sort(key=lambda x: (x[0] or 0, x[1] or 0))
            told = "after them" if told_after_sent else "at all"
            check(False, f"{name}: {len(lost)} acknowledged messages in {room} neither "
                  f"received nor announced (lagged, or resumed{{recovered:false}} {told}), "
                  f"e.g. (epoch, offset, id) {lost[:6]}; its stream: "
                  f"{by_name[name].h.story(room)}")
