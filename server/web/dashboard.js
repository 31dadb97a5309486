// dashboard.js — the live dashboard: polls /api/stats and /cluster every second.
//
// /api/stats holds counters since start and current gauges; rates are computed here from two
// successive samples and the time between them.
"use strict";

const $ = (id) => document.getElementById(id);
const kHistory = 120;  // samples kept for the chart (two minutes)
let previous = null;   // {at, stats}
const history = [];    // {in, out}
let samples = 0;

function show(id, value) {
  $(id).textContent = value === null || value === undefined ? "–" : value.toLocaleString();
}

function rate(stats, key, seconds) {
  if (!previous || seconds <= 0) return null;
  const delta = stats[key] - previous.stats[key];
  return delta >= 0 ? Math.round(delta / seconds) : 0;  // a restart resets counters
}

const kTypes = ["text", "binary", "ping", "pong", "close"];

// The by-type table: one row per WebSocket message type, cells with ids like "msgs-in-text".
function buildTypeTable() {
  const tbody = $("by-type");
  for (const type of kTypes) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = type;
    tr.append(th);
    for (const id of ["msgs-in-", "msgs-out-", "bytes-in-", "bytes-out-"]) {
      const td = document.createElement("td");
      td.id = id + type;
      td.textContent = "–";
      tr.append(td);
    }
    tbody.append(tr);
  }
}

function render(stats, seconds) {
  show("connections", stats.connections_open);
  show("ws-sessions", stats.ws_sessions_open);
  show("conn-handshaking", stats.connections_handshaking);
  show("conn-open", stats.connections_websocket_open);
  show("conn-closing", stats.connections_closing);
  show("conn-above-high", stats.connections_above_high_watermark);
  for (const type of kTypes) {
    for (const dir of ["in", "out"]) {
      show(`msgs-${dir}-${type}`, stats[`ws_messages_${dir}_${type}_total`]);
      show(`bytes-${dir}-${type}`, stats[`ws_payload_bytes_${dir}_${type}_total`]);
    }
  }
  show("total-in", stats.ws_messages_received_total);
  show("total-out", stats.ws_messages_sent_total);
  const rateIn = rate(stats, "ws_messages_received_total", seconds);
  const rateOut = rate(stats, "ws_messages_sent_total", seconds);
  show("rate-in", rateIn);
  show("rate-out", rateOut);
  show("rate-room", rate(stats, "room_messages_total", seconds));
  show("rate-deliveries", rate(stats, "room_deliveries_total", seconds));
  show("rooms", stats.rooms);
  show("memberships", stats.room_memberships);
  show("members", stats.members);
  $("store").textContent = stats.store_up === 1 ? "up" : stats.store_up === 0 ? "down" : "–";
  $("store").className = stats.store_up === 0 ? "bad" : "";
  show("hwm", stats.high_watermark_crossings_total);
  show("overruns", stats.buffer_overruns_total);
  show("sc-disconnect", stats.slow_consumer_disconnect_total);
  show("sc-skip", stats.slow_consumer_skip_total);
  show("sc-lagged", stats.slow_consumer_lagged_notice_total);
  show("sc-pause", stats.slow_consumer_pause_publisher_total);
  if (rateIn !== null) {
    history.push({in: rateIn, out: rateOut});
    if (history.length > kHistory) history.shift();
    drawChart();
  }
}

function drawChart() {
  const canvas = $("chart");
  const g = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  g.clearRect(0, 0, w, h);
  const top = Math.max(1, ...history.map((s) => Math.max(s.in, s.out)));
  g.strokeStyle = "#d0d7de";
  g.beginPath();
  for (let i = 1; i < 4; i++) {
    g.moveTo(0, (h * i) / 4);
    g.lineTo(w, (h * i) / 4);
  }
  g.stroke();
  g.fillStyle = "#57606a";
  g.font = "12px sans-serif";
  g.fillText(top.toLocaleString() + " /s", 4, 14);
  const line = (key, color) => {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    history.forEach((s, i) => {
      const x = (w * (i + kHistory - history.length)) / (kHistory - 1);
      const y = h - 2 - ((h - 20) * s[key]) / top;
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
    g.lineWidth = 1;
  };
  line("in", "#0969da");
  line("out", "#bf3989");
}

function renderCluster(status, body) {
  const tbody = $("cluster-members");
  tbody.replaceChildren();
  if (status === 404) {
    $("cluster-summary").textContent = "single node (started without --gossip)";
    return;
  }
  if (status !== 200 || !body) {
    $("cluster-summary").textContent = "membership starting";
    return;
  }
  const alive = body.members.filter((m) => m.state === "alive").length;
  $("cluster-summary").textContent =
      "node " + body.node_id + ": " + alive + " alive of " + body.members.length;
  for (const m of body.members) {
    const tr = document.createElement("tr");
    tr.className = "state-" + m.state;
    for (const v of [m.node_id, m.address, m.state, m.incarnation]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    tbody.append(tr);
  }
}

async function poll() {
  try {
    const [statsResponse, clusterResponse] =
        await Promise.all([fetch("/api/stats", {cache: "no-store"}),
                           fetch("/cluster", {cache: "no-store"})]);
    const at = performance.now();
    const stats = await statsResponse.json();
    const cluster = clusterResponse.ok ? await clusterResponse.json() : null;
    render(stats, previous ? (at - previous.at) / 1000 : 0);
    renderCluster(clusterResponse.status, cluster);
    previous = {at, stats};
    samples++;
    document.body.dataset.samples = samples;
    $("status").textContent = "live";
    $("status").className = "status up";
  } catch (e) {
    $("status").textContent = "weir is not answering";
    $("status").className = "status down";
  }
}

buildTypeTable();
poll();
setInterval(poll, 1000);
