// chat.js — the chat page: the rooms protocol (docs/protocol.md) over /ws.
//
// One room at a time. A message's content is {"name":..,"text":..} as JSON, so others see the
// name the sender picked; content that is not such an object (the HTTP API, other clients) is
// shown as it is, under the sender's member id. When the socket drops, the page reconnects with
// backoff (or after the delay a draining server hints at) and resumes the session with the
// offsets it has shown, so nothing is missed or shown twice.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  ws: null,
  token: sessionStorage.getItem("weir.token") || "",
  memberId: "",
  room: "",          // the room joined (or being joined)
  joined: false,
  position: null,    // {offset, epoch} of the last message shown in the room
  retryMs: 500,
  resuming: false,
};

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = "status " + (kind || "");
  document.body.dataset.status = kind || "";
}

function send(envelope) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(envelope));
}

// With --auth, open the page as /?token=JWT: the token goes on to the handshake.
function wsUrl() {
  const token = new URLSearchParams(location.search).get("token");
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
      (token ? "?token=" + encodeURIComponent(token) : "");
}

function connect() {
  setStatus("connecting", "connecting");
  const ws = new WebSocket(wsUrl(), "weir.v1");
  state.ws = ws;
  ws.onmessage = (event) => {
    let envelope;
    try {
      envelope = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    const kind = Object.keys(envelope)[0];
    if (handlers[kind]) handlers[kind](envelope[kind]);
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.joined = false;
    enableSend(false);
    let delay = state.retryMs * (0.5 + Math.random());  // jitter: not every page at once
    state.retryMs = Math.min(state.retryMs * 2, 10000);
    const hint = reconnectHint(event.reason);
    if (hint !== null) delay = hint;  // a draining server spreads its clients' returns
    setStatus("disconnected, retrying in " + (delay / 1000).toFixed(1) + " s", "down");
    setTimeout(connect, delay);
  };
}

// A draining weir closes with 1001 and {"reason":..,"reconnect_after_ms":N}; null otherwise.
function reconnectHint(reason) {
  try {
    const hint = JSON.parse(reason);
    return typeof hint.reconnect_after_ms === "number" ? hint.reconnect_after_ms : null;
  } catch (e) {
    return null;
  }
}

const handlers = {
  session(body) {
    state.retryMs = 500;
    // A reconnect: resume the old session with what this page has shown.
    if (!state.resuming && state.token && state.room && state.position) {
      state.resuming = true;
      const rooms = {};
      rooms[state.room] = state.position;
      send({resume: {token: state.token, rooms}});
      return;
    }
    const resumed = state.resuming;  // this frame answers the resume: the room comes back
    state.resuming = false;
    state.token = body.token;
    state.memberId = body.member_id;
    sessionStorage.setItem("weir.token", body.token);
    setStatus("connected as " + body.member_id, "up");
    if (state.room && !state.joined && !resumed) send({join_room: {room_id: state.room}});
  },
  room_joined(body) {
    if (body.room_id !== state.room) return;
    state.joined = true;
    state.position = {offset: body.offset, epoch: body.epoch};
    $("room-title").textContent = "Room " + body.room_id;
    note("joined " + body.room_id);
    enableSend(true);
  },
  resumed(body) {
    if (body.room_id !== state.room) return;
    state.joined = true;
    if (!state.position || state.position.epoch !== body.epoch) {
      state.position = {offset: 0, epoch: body.epoch};
    }
    note(body.recovered ? "reconnected" : "reconnected; some messages may be missing");
    enableSend(true);
  },
  room_left(body) {
    if (body.room_id === state.room) return;
    note("left " + body.room_id);
  },
  message(body) {
    if (body.target !== state.room) return;
    const p = state.position;
    if (p && p.epoch === body.epoch && body.offset <= p.offset) return;  // already shown
    state.position = {offset: body.offset, epoch: body.epoch};
    showMessage(body);
  },
  lagged(body) {
    note("missed messages " + body.from_offset + " to " + body.to_offset + " (too slow)");
  },
  error(body) {
    if (body.ref === "resume") {  // the old session is gone: start over in the same room
      state.resuming = false;
      state.token = "";
      state.position = null;
      state.ws.close();
      return;
    }
    note("error: " + body.code + " — " + body.message);
  },
};

function enableSend(on) {
  $("text").disabled = !on;
  $("send").disabled = !on;
  document.body.dataset.joined = on ? "yes" : "no";
  if (on) $("text").focus();
}

// {"name","text"} written by this page, else the raw content under the member id.
function parseContent(body) {
  try {
    const c = JSON.parse(body.content);
    if (c && typeof c.name === "string" && typeof c.text === "string") {
      return {name: c.name, text: c.text};
    }
  } catch (e) {
    // plain text
  }
  return {name: body.sender, text: body.content};
}

function timeOf(sentAt) {
  const t = new Date(sentAt);
  return isNaN(t) ? "" : t.toLocaleTimeString([], {hour12: false});
}

function showMessage(body) {
  const {name, text} = parseContent(body);
  const li = document.createElement("li");
  li.className = "message" + (body.sender === state.memberId ? " mine" : "");
  li.dataset.offset = body.offset;
  const meta = document.createElement("span");
  meta.className = "meta";
  const who = document.createElement("b");
  who.textContent = name;
  who.title = body.sender;
  const when = document.createElement("time");
  when.dateTime = body.sent_at;
  when.textContent = timeOf(body.sent_at);
  meta.append(who, " ", when);
  const p = document.createElement("p");
  p.textContent = text;
  li.append(meta, p);
  append(li);
}

function note(text) {
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = text;
  append(li);
}

function append(li) {
  const list = $("messages");
  list.append(li);
  while (list.children.length > 500) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  const room = $("room").value.trim();
  if (!name || !room) return;
  localStorage.setItem("weir.name", name);
  if (room === state.room && state.joined) return;
  if (state.room && state.joined) send({leave_room: {room_id: state.room}});
  state.room = room;
  state.joined = false;
  state.position = null;
  $("messages").replaceChildren();
  $("room-title").textContent = "Joining " + room + "…";
  enableSend(false);
  send({join_room: {room_id: room}});
});

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim() || !state.joined) return;
  const content = JSON.stringify({name: $("name").value.trim(), text});
  send({message: {target: state.room, content}});
  $("text").value = "";
});

$("name").value = localStorage.getItem("weir.name") || "";
connect();
