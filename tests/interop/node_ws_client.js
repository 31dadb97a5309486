// tests/interop/node_ws_client.js — the Node `ws` side of node_ws_test.sh: runs the interop
// matrix against one weir /echo URL with the client's permessage-deflate off, on with the
// library defaults (`perMessageDeflate: true`) and on with every message compressed.
//
// usage: node node_ws_client.js URL SERVER_DEFLATES(yes|no) [CA_FILE]
// Prints failures and a summary line; exits 1 on any failure.
'use strict';

const fs = require('fs');
const path = require('path');
const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, (16 << 20) - 100];
const CLOSE_CODES = [1000, 1001, 1003, 1007, 1008, 1009, 1011, 3000, 4999];
const STEP_TIMEOUT_MS = 30000;

const [url, serverDeflates, caFile] = process.argv.slice(2);
const ca = caFile ? fs.readFileSync(caFile) : undefined;
let passed = 0;
let failed = 0;

function check(ok, name, detail) {
  if (ok) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`);
  }
}

// A pseudo-random generator so a failure reproduces.
function rng(seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

// Payloads are built once per run: the 16 MiB ones take a while in JavaScript.
const cache = new Map();
function memo(kind, n, seed, build) {
  const key = `${kind}:${n}:${seed}`;
  if (!cache.has(key)) cache.set(key, build(n, seed));
  return cache.get(key);
}

function textOf(n, seed) {
  return memo('text', n, seed, buildText);
}

function bytesOf(n, seed) {
  return memo('bytes', n, seed, buildBytes);
}

function buildText(n, seed) {
  const words = ['weir ', 'echo ', 'κόσμε ', 'frame ', '{"n":42} '];
  const next = rng(seed + 1);
  let out = '';
  let size = 0;
  while (size < n) {
    let w = words[next() % words.length];
    let b = Buffer.byteLength(w);
    if (size + b > n) {
      w = 'x'.repeat(n - size);
      b = n - size;
    }
    out += w;
    size += b;
  }
  return out;
}

function buildBytes(n, seed) {
  const next = rng(seed + 7);
  const buf = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) buf[i] = next() & 0xff;
  return buf;
}

// Opens a connection whose messages, pongs and close are awaited one at a time.
function connect(options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: 0, ca, ...options });
    const queue = [];
    const waiters = [];
    const deliver = (item) => (waiters.length ? waiters.shift()(item) : queue.push(item));
    ws.on('upgrade', (res) => {
      ws.extensionHeader = res.headers['sec-websocket-extensions'] || '';
    });
    ws.on('message', (data, isBinary) => deliver({ kind: 'message', data, isBinary }));
    ws.on('pong', (data) => deliver({ kind: 'pong', data }));
    ws.on('close', (code) => deliver({ kind: 'close', code }));
    ws.on('error', (err) => deliver({ kind: 'error', err }));
    ws.next = () =>
      new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error('timed out waiting for the server')), STEP_TIMEOUT_MS);
        const take = (item) => {
          clearTimeout(timer);
          res(item);
        };
        if (queue.length) take(queue.shift());
        else waiters.push(take);
      });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function sameMessage(got, sent, binary) {
  if (got.kind !== 'message' || got.isBinary !== binary) return false;
  return binary ? got.data.equals(sent) : got.data.toString('utf8') === sent;
}

async function echo(ws, label, data, binary) {
  ws.send(data, { binary });
  const got = await ws.next();
  check(sameMessage(got, data, binary), label,
        got.kind === 'message' ? `got ${got.data.length} bytes` : `got ${got.kind} ${got.code || ''}`);
}

async function runMode(label, deflateOption, expectDeflate, maxSize) {
  const ws = await connect({ perMessageDeflate: deflateOption });
  const negotiated = ws.extensions.includes('permessage-deflate');
  check(negotiated === expectDeflate, `${label} negotiation`, `Sec-WebSocket-Extensions: '${ws.extensionHeader}'`);
  for (const [i, n] of SIZES.entries()) {
    if (n > maxSize) continue;
    await echo(ws, `${label} text ${n} B`, textOf(n, i), false);
    await echo(ws, `${label} binary ${n} B`, bytesOf(n, i), true);
  }
  // Fragmented sends: one message in frames, `fin` on the last.
  const textParts = ['fragment one, ', '', 'κόσμε, ', textOf(70000, 9), 'last'];
  textParts.forEach((p, i) => ws.send(p, { binary: false, fin: i === textParts.length - 1 }));
  check(sameMessage(await ws.next(), textParts.join(''), false), `${label} fragmented text`);
  const binParts = [bytesOf(1000, 1), Buffer.alloc(0), bytesOf(65536, 2), bytesOf(7, 3), bytesOf(200000, 4)];
  binParts.forEach((p, i) => ws.send(p, { binary: true, fin: i === binParts.length - 1 }));
  check(sameMessage(await ws.next(), Buffer.concat(binParts), true), `${label} fragmented binary`);
  for (const payload of [Buffer.alloc(0), Buffer.from('ping'), bytesOf(125, 5)]) {
    ws.ping(payload);
    const got = await ws.next();
    check(got.kind === 'pong' && got.data.equals(payload), `${label} ping of ${payload.length} B answered`);
  }
  await echo(ws, `${label} echo after pings`, 'still talking', false);
  ws.close(1000);
  const closed = await ws.next();
  check(closed.kind === 'close' && closed.code === 1000, `${label} close`, `${closed.kind} ${closed.code}`);

  for (const code of CLOSE_CODES) {
    const c = await connect({ perMessageDeflate: deflateOption });
    await echo(c, `${label} before close ${code}`, 'bye soon', false);
    c.close(code, `closing with ${code}`);
    const got = await c.next();
    check(got.kind === 'close' && got.code === code, `${label} close ${code} echoed`,
          `server answered ${got.kind} ${got.code}`);
  }
}

async function main() {
  const started = Date.now();
  const deflates = serverDeflates === 'yes';
  // The third mode adds compressed small messages and window bits; the 16 MiB echo, which
  // costs seconds of zlib time on incompressible data, runs in the first two.
  const modes = [
    ['client deflate off', false, false, Infinity],
    ['client perMessageDeflate: true', true, deflates, Infinity],
    ['client deflate, every message', { threshold: 0, serverMaxWindowBits: 12, clientMaxWindowBits: 11 },
     deflates, 1 << 20],
  ];
  for (const [name, option, expect, maxSize] of modes) {
    const label = `[${url} ${name}]`;
    try {
      await runMode(label, option, expect, maxSize);
    } catch (err) {
      check(false, `${label} aborted`, err.message);
    }
  }
  console.log(`node ws ${require(path.join(__dirname, 'node_modules', 'ws', 'package.json')).version} ` +
              `against ${url}: ${passed} passed, ${failed} failed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
}

setTimeout(() => {
  console.log(`FAIL ${url}: the matrix did not finish in time`);
  process.exit(1);
}, 100000).unref();
main();
