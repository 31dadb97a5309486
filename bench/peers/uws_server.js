'use strict';
// bench/peers/uws_server.js — the uWebSockets.js peer that weir is benchmarked against
// (bench/run_peers.py), from the npm package @trufflesuite/uws-js-unofficial.
//
//   node bench/peers/uws_server.js PORT [HOST]       (HOST defaults to 127.0.0.1)
//
// uWS is single-threaded by design: one event loop, no compression, 16 MiB messages at most,
// the settings weir runs with in the same comparison. Routes:
//   /echo  every message sent back with the same opcode (text or binary);
//   /ws    the rooms protocol of issue 4 on uWS's native pub/sub: a session frame first,
//          join_room -> subscribe(room), leave_room -> unsubscribe(room), message -> one
//          app.publish() of the encoded envelope to every subscriber, the sender included.
//
// The package falls back silently to a JavaScript implementation when its native addon does
// not load; a benchmark against that would be meaningless, so the addon is loaded directly
// and a failure is fatal.
//
// uWS drops a message for a socket whose buffered output exceeds maxBackpressure (send()
// returns 2). The limit mirrors weir's --max-buffer default (4 MiB); drops are counted and
// reported on stderr at exit so a run that lost messages cannot pass unnoticed.

const path = require('path');
const crypto = require('crypto');

const kMaxMessageBytes = 16 << 20;
const kMaxBackpressureBytes = 4 << 20;
const kRoomEpoch = 1;
const kSubprotocol = 'weir.v1';
const kSendDropped = 2;

function load_native_uws() {
  const pkg = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
  const addon = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return require(path.join(pkg, 'binaries', addon));
  } catch (e) {
    process.stderr.write(`uws peer: native addon ${addon} does not load on this Node (${process.version}): ${e.message}\n`);
    process.exit(1);
  }
}

function parse_args(argv) {
  const port = Number(argv[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('usage: node uws_server.js PORT [HOST]\n');
    process.exit(2);
  }
  return { port, host: argv[3] || '127.0.0.1' };
}

const uws = load_native_uws();
const counters = { dropped_sends: 0 };

function behavior(extra) {
  return Object.assign({
    compression: uws.DISABLED,
    maxPayloadLength: kMaxMessageBytes,
    maxBackpressure: kMaxBackpressureBytes,
    closeOnBackpressureLimit: false,
    idleTimeout: 120,
  }, extra);
}

// ------------------------------------------------------------------ /echo

function echo_behavior() {
  return behavior({
    message: (ws, message, is_binary) => {
      if (ws.send(message, is_binary) === kSendDropped) counters.dropped_sends++;
    },
  });
}

// ------------------------------------------------------------------ /ws: rooms

function error_frame(code, message, ref) {
  return JSON.stringify({ error: { code, message, ref: ref || '' } });
}

class Rooms {
  constructor(app) {
    this.app_ = app;
    this.offsets_ = new Map();  // room id -> last offset; dropped when the last member goes
    this.next_member_ = 1;
  }

  upgrade(res, req, context) {
    const offered = req.getHeader('sec-websocket-protocol').split(',').map((p) => p.trim());
    res.upgrade({ member_id: 'm-' + this.next_member_++ },
      req.getHeader('sec-websocket-key'),
      offered.includes(kSubprotocol) ? kSubprotocol : '',
      req.getHeader('sec-websocket-extensions'), context);
  }

  open(ws) {
    const token = crypto.randomBytes(16).toString('hex');
    ws.send(JSON.stringify({ session: { token, member_id: ws.getUserData().member_id, rooms: [] } }));
  }

  on_frame(ws, message, is_binary) {
    if (is_binary) return ws.send(error_frame('unsupported_frame', 'binary frames are not part of the protocol'));
    let envelope;
    try {
      envelope = JSON.parse(Buffer.from(message).toString());  // message is only valid in this call
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
    ws.subscribe(room_id);
    if (!this.offsets_.has(room_id)) this.offsets_.set(room_id, 0);
    ws.send(JSON.stringify({ room_joined: { room_id, offset: this.offsets_.get(room_id), epoch: kRoomEpoch } }));
  }

  leave(ws, room_id) {
    if (typeof room_id !== 'string' || !ws.isSubscribed(room_id)) return ws.send(error_frame('not_member', 'not a member of the room', room_id));
    ws.unsubscribe(room_id);
    ws.send(JSON.stringify({ room_left: { room_id } }));
  }

  publish(ws, m) {
    if (typeof m.target !== 'string' || typeof m.content !== 'string') return ws.send(error_frame('invalid_field', 'target and content must be strings'));
    if (!ws.isSubscribed(m.target)) return ws.send(error_frame('not_member', 'not a member of the room', m.target));
    const offset = this.offsets_.get(m.target) + 1;
    this.offsets_.set(m.target, offset);
    const member_id = ws.getUserData().member_id;
    const out = {
      target: m.target, content: m.content,
      message_id: m.message_id || member_id + '-' + offset,
      sent_at: m.sent_at || new Date().toISOString(),
      sender: member_id, offset, epoch: kRoomEpoch,
    };
    if (m.traceparent !== undefined) out.traceparent = m.traceparent;
    if (m.tracestate !== undefined) out.tracestate = m.tracestate;
    // app.publish (not ws.publish) so the sender receives its own message, as in weir.
    this.app_.publish(m.target, JSON.stringify({ message: out }), false);
  }

  // uWS unsubscribes a closing socket by itself; this sees every count change, so the room's
  // offset goes with its last member (no empty room lingers).
  on_subscription(topic, new_count) {
    if (new_count === 0) this.offsets_.delete(Buffer.from(topic).toString());
  }
}

function rooms_behavior(app) {
  const rooms = new Rooms(app);
  return behavior({
    upgrade: (res, req, context) => rooms.upgrade(res, req, context),
    open: (ws) => rooms.open(ws),
    message: (ws, message, is_binary) => rooms.on_frame(ws, message, is_binary),
    subscription: (ws, topic, new_count) => rooms.on_subscription(topic, new_count),
  });
}

// ------------------------------------------------------------------ app

function main() {
  const { port, host } = parse_args(process.argv);
  const app = uws.App();
  app.ws('/echo', echo_behavior())
    .ws('/ws', rooms_behavior(app))
    .get('/healthz', (res) => res.end('ok\n'))
    .any('/*', (res) => res.writeStatus('404 Not Found').end('not found\n'))
    .listen(host, port, (listen_socket) => {
      if (!listen_socket) {
        process.stderr.write(`uws peer: cannot listen on ${host}:${port}\n`);
        process.exit(1);
      }
      process.stdout.write(`uws peer listening on ${host}:${uws.us_socket_local_port(listen_socket)}\n`);
    });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      if (counters.dropped_sends) process.stderr.write(`uws peer: ${counters.dropped_sends} sends dropped by maxBackpressure\n`);
      process.exit(0);
    });
  }
}

main();
