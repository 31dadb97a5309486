'use strict';
// bench/peers/ws_server.js — the Node `ws` peer that weir is benchmarked against (bench/run_peers.py).
//
//   node bench/peers/ws_server.js PORT [HOST]        (HOST defaults to 127.0.0.1)
//
// One process, one thread (Node's event loop; sockets never touch libuv's thread pool), no
// compression, 16 MiB messages at most: the settings weir runs with in the same comparison.
// Routes:
//   /echo  every message sent back with the same opcode (text or binary);
//   /ws    the rooms protocol of issue 4 (session frame first; join_room, leave_room, message),
//          fanned out by hand: a room is a Set of sockets, each message is encoded once and the
//          same string is sent to every member, the sender included.
// `ws` buffers without limit when a member is slow; that is part of what is being compared.

const http = require('http');
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const kMaxMessageBytes = 16 << 20;
const kRoomEpoch = 1;
const kSubprotocol = 'weir.v1';

function parse_args(argv) {
  const port = Number(argv[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('usage: node ws_server.js PORT [HOST]\n');
    process.exit(2);
  }
  return { port, host: argv[3] || '127.0.0.1' };
}

// ------------------------------------------------------------------ /echo

function echo_server() {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: kMaxMessageBytes });
  wss.on('connection', (ws) => {
    ws.on('message', (data, is_binary) => ws.send(data, { binary: is_binary }));
    ws.on('error', () => ws.terminate());
  });
  return wss;
}

// ------------------------------------------------------------------ /ws: rooms

function error_frame(code, message, ref) {
  return JSON.stringify({ error: { code, message, ref: ref || '' } });
}

class Rooms {
  constructor() {
    this.rooms_ = new Map();  // room id -> { members: Set<ws>, offset }
    this.next_member_ = 1;
  }

  open(ws) {
    ws.member_id = 'm-' + this.next_member_++;
    ws.joined = new Set();
    const token = crypto.randomBytes(16).toString('hex');
    ws.send(JSON.stringify({ session: { token, member_id: ws.member_id, rooms: [] } }));
  }

  // One inbound frame; every reply or error goes back on `ws`.
  on_frame(ws, data, is_binary) {
    if (is_binary) return ws.send(error_frame('unsupported_frame', 'binary frames are not part of the protocol'));
    let envelope;
    try {
      envelope = JSON.parse(data.toString());
    } catch (e) {
      return ws.send(error_frame('invalid_json', e.message));
    }
    if (envelope === null || typeof envelope !== 'object') return ws.send(error_frame('unknown_envelope', 'not an object'));
    if (envelope.join_room) return this.join(ws, envelope.join_room.room_id);
    if (envelope.leave_room) return this.leave(ws, envelope.leave_room.room_id);
    if (envelope.message) return this.publish(ws, envelope.message);
    ws.send(error_frame('unknown_envelope', 'expected join_room, leave_room or message'));
  }

  join(ws, room_id) {
    if (typeof room_id !== 'string' || room_id === '') return ws.send(error_frame('invalid_field', 'room_id must be a string'));
    let room = this.rooms_.get(room_id);
    if (!room) this.rooms_.set(room_id, (room = { members: new Set(), offset: 0 }));
    room.members.add(ws);
    ws.joined.add(room_id);
    ws.send(JSON.stringify({ room_joined: { room_id, offset: room.offset, epoch: kRoomEpoch } }));
  }

  leave(ws, room_id) {
    if (!ws.joined.has(room_id)) return ws.send(error_frame('not_member', 'not a member of the room', room_id));
    this.drop_member(ws, room_id);
    ws.send(JSON.stringify({ room_left: { room_id } }));
  }

  publish(ws, m) {
    if (typeof m.target !== 'string' || typeof m.content !== 'string') return ws.send(error_frame('invalid_field', 'target and content must be strings'));
    const room = this.rooms_.get(m.target);
    if (!room || !room.members.has(ws)) return ws.send(error_frame('not_member', 'not a member of the room', m.target));
    const out = {
      target: m.target, content: m.content,
      message_id: m.message_id || ws.member_id + '-' + (room.offset + 1),
      sent_at: m.sent_at || new Date().toISOString(),
      sender: ws.member_id, offset: ++room.offset, epoch: kRoomEpoch,
    };
    if (m.traceparent !== undefined) out.traceparent = m.traceparent;
    if (m.tracestate !== undefined) out.tracestate = m.tracestate;
    const frame = JSON.stringify({ message: out });  // encoded once, shared by every member
    for (const member of room.members) member.send(frame);
  }

  close(ws) {
    for (const room_id of ws.joined) this.drop_member(ws, room_id);
  }

  drop_member(ws, room_id) {
    ws.joined.delete(room_id);
    const room = this.rooms_.get(room_id);
    if (!room) return;
    room.members.delete(ws);
    if (room.members.size === 0) this.rooms_.delete(room_id);  // no empty room lingers
  }
}

function rooms_server() {
  const rooms = new Rooms();
  const wss = new WebSocketServer({
    noServer: true, perMessageDeflate: false, maxPayload: kMaxMessageBytes,
    handleProtocols: (offered) => (offered.has(kSubprotocol) ? kSubprotocol : false),
  });
  wss.on('connection', (ws) => {
    rooms.open(ws);
    ws.on('message', (data, is_binary) => rooms.on_frame(ws, data, is_binary));
    ws.on('close', () => rooms.close(ws));
    ws.on('error', () => ws.terminate());
  });
  return wss;
}

// ------------------------------------------------------------------ HTTP and upgrade routing

function main() {
  const { port, host } = parse_args(process.argv);
  const routes = { '/echo': echo_server(), '/ws': rooms_server() };
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/healthz' ? 200 : 404, { 'Content-Type': 'text/plain' });
    res.end(req.url === '/healthz' ? 'ok\n' : 'not found\n');
  });
  server.on('upgrade', (req, socket, head) => {
    const wss = routes[req.url.split('?')[0]];
    if (!wss) return socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  server.listen(port, host, 4096, () => process.stdout.write(`ws peer listening on ${host}:${server.address().port}\n`));
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
}

main();
