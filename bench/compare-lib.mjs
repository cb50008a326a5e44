// Parts of `make bench-compare` (bench/compare.mjs) that need no server: a lean Socket.IO
// client on a raw socket (engine.io 4 over a WebSocket, written by hand like the SSE client
// of bench/lib.mjs, so that 10,000 of them fit in the one harness process), a pool that opens
// connections with a bounded concurrency, and the summary table. tests/unit/compare.test.mjs
// covers the frame decoding and the table.
import { createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';

export function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const fmtMs = (v) => (Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) : 'n/a');

// ---- WebSocket frames (RFC 6455 §5.2), only what a client of engine.io needs ------------

// A client's frame: FIN, the opcode, masked as clients must (RFC 6455 §5.3).
export function wsFrame(opcode, payload) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const len = body.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const f = Buffer.alloc(head + 4 + len);
  f[0] = 0x80 | opcode;
  if (len < 126) f[1] = 0x80 | len;
  else if (len < 65536) { f[1] = 0x80 | 126; f.writeUInt16BE(len, 2); }
  else { f[1] = 0x80 | 127; f.writeBigUInt64BE(BigInt(len), 2); }
  const mask = randomBytes(4);
  mask.copy(f, head);
  for (let i = 0; i < len; i++) f[head + 4 + i] = body[i] ^ mask[i & 3];
  return f;
}

// Cuts the complete frames off the front of buf: { frames: [{ fin, opcode, payload }], rest }.
// A server's frames are unmasked; a masked one is unmasked anyway. Throws on a frame that
// says it is longer than maxLen (a hostile or broken server).
export function wsParse(buf, maxLen = 1 << 20) {
  const frames = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off], b1 = buf[off + 1];
    let len = b1 & 0x7f, p = off + 2;
    if (len === 126) {
      if (buf.length - off < 4) break;
      len = buf.readUInt16BE(off + 2);
      p = off + 4;
    } else if (len === 127) {
      if (buf.length - off < 10) break;
      const big = buf.readBigUInt64BE(off + 2);
      if (big > BigInt(maxLen)) throw new Error(`frame of ${big} bytes`);
      len = Number(big);
      p = off + 10;
    }
    if (len > maxLen) throw new Error(`frame of ${len} bytes`);
    const masked = (b1 & 0x80) !== 0;
    const need = p + (masked ? 4 : 0) + len;
    if (buf.length < need) break;
    let payload = buf.subarray(need - len, need);
    if (masked) {
      const m = buf.subarray(p, p + 4);
      payload = Buffer.from(payload);
      for (let i = 0; i < len; i++) payload[i] ^= m[i & 3];
    }
    frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload });
    off = need;
  }
  return { frames, rest: off ? buf.subarray(off) : buf };
}

// A Socket.IO 4 client of the default namespace, WebSocket transport only (engine.io
// protocol 4 packets carrying Socket.IO protocol 5 packets): upgrades, answers
// engine.io's open packet with a namespace CONNECT ("40"), its pings ("2") with pongs ("3"),
// and calls onEvent(text, receivedAt) for every event packet ("42[...]"); receivedAt is taken
// once per socket read, before parsing (as in the SSE client). Resolves once the namespace
// CONNECT has been acknowledged; with timeoutMs, rejects and closes when it has not.
export function sioConnect({ host, port, path = '/socket.io/', onEvent, now = () => performance.now(), timeoutMs = 0 }) {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port });
    s.setNoDelay(true);
    let ready = false, upgraded = false;
    let buf = Buffer.alloc(0);
    let parts = []; // a fragmented message's frames so far
    const fail = (e) => { s.destroy(); if (!ready) reject(e); };
    if (timeoutMs > 0) {
      const timer = setTimeout(() => { if (!ready) fail(new Error(`no answer within ${timeoutMs} ms`)); }, timeoutMs);
      s.once('close', () => clearTimeout(timer));
    }
    const packet = (text, at) => {
      const t = text.charCodeAt(0);
      if (t === 0x34 /* '4' message */) {
        if (text.startsWith('42')) onEvent(text, at);
        else if (text.startsWith('40') && !ready) { ready = true; resolve(s); }
        else if (text.startsWith('44')) fail(new Error(`namespace refused: ${text.slice(2, 200)}`));
      } else if (t === 0x32 /* '2' ping */) s.write(wsFrame(1, '3'));
      else if (t === 0x30 /* '0' open */) s.write(wsFrame(1, '40'));
      else if (t === 0x31 /* '1' close */) s.end();
    };
    s.on('connect', () => {
      s.write(`GET ${path}?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`);
    });
    s.on('data', (d) => {
      const at = now();
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (!upgraded) {
        const cut = buf.indexOf('\r\n\r\n');
        if (cut < 0) return;
        const status = buf.toString('latin1', 0, buf.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 101/.test(status)) { fail(new Error(`upgrade answered ${status}`)); return; }
        upgraded = true;
        buf = buf.subarray(cut + 4);
      }
      let out;
      try { out = wsParse(buf); } catch (e) { fail(e); return; }
      buf = out.rest;
      for (const f of out.frames) {
        if (f.opcode === 8) { s.end(); return; }
        if (f.opcode === 9) { s.write(wsFrame(10, f.payload)); continue; }
        if (f.opcode === 10) continue;
        parts.push(f.payload);
        if (!f.fin) continue;
        const text = Buffer.concat(parts).toString('utf8');
        parts = [];
        packet(text, at);
      }
    });
    s.on('error', (e) => { if (!ready) reject(e); });
    s.on('close', () => { if (!ready) reject(new Error('closed before the namespace CONNECT')); });
  });
}

// Opens n connections, at most `concurrency` at a time. open(i) returns a promise of a
// socket. Stops opening more once `giveUpAfter` attempts have failed, so a server that no
// longer accepts costs one round of timeouts rather than one per missing connection.
// Resolves { socks, failed, firstError }.
export async function openPool(n, concurrency, open, giveUpAfter = concurrency) {
  const socks = [];
  let next = 0, failed = 0, firstError = null;
  const lane = async () => {
    while (next < n && failed < giveUpAfter) {
      const i = next++;
      try {
        socks.push(await open(i));
      } catch (e) {
        failed++;
        firstError ??= e.message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  return { socks, failed, firstError };
}

// ---- the table -------------------------------------------------------------------------

export const SYSTEMS = [
  ['ours', 'ours'],
  ['nchan', 'Nchan'],
  ['socketio', 'Socket.IO'],
  ['front', 'ours via lighttpd'],
];

const kib = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');

// One cell of p50 / p99, or what went wrong.
function latCell(r) {
  if (!r) return 'not run';
  if (r.error) return `**failed**: ${r.error}`;
  return `${fmtMs(r.p50)} / ${fmtMs(r.p99)}`;
}

// results: [{ system, n, p50, p99, received, expected, perStreamBytes, error, harness }]
// Returns the Markdown table, one row per N.
export function table(results) {
  const sizes = [...new Set(results.map((r) => r.n))].sort((a, b) => a - b);
  const get = (sys, n) => results.find((r) => r.system === sys && r.n === n);
  // ours through the front door's proxy: a column of its own, only when it was run
  const front = results.some((r) => r.system === 'front');
  // which harness measured a system (bench/compare.mjs's results say), in its header cell
  const by = (sys) => { const h = results.find((r) => r.system === sys && r.harness)?.harness; return h ? ` (harness: ${h})` : ''; };
  const lines = [
    `| N | ours p50 / p99 ms${by('ours')} | Nchan p50 / p99 ms${by('nchan')} | Socket.IO p50 / p99 ms${by('socketio')} | received (ours; Nchan; Socket.IO) | ours / Nchan p50; p99 | memory per stream (ours; Nchan; Socket.IO) |` +
      (front ? ` ours via lighttpd${by('front')}: p50 / p99 ms; received; memory per stream |` : ''),
    '|---|---|---|---|---|---|---|' + (front ? '---|' : ''),
  ];
  for (const n of sizes) {
    const [o, c, s, f] = SYSTEMS.map(([k]) => get(k, n));
    const recv = [o, c, s].map((r) => (r && !r.error ? `${r.received}/${r.expected}` : r ? `${r.received ?? 0}/${r.expected ?? '?'}` : '—')).join('; ');
    const ok = (r) => r && !r.error;
    const rat = ok(o) && ok(c) ? `${ratio(o.p50, c.p50)}; ${ratio(o.p99, c.p99)}` : 'n/a';
    const mem = [o, c, s].map((r) => (r ? kib(r.perStreamBytes) : '—')).join('; ');
    const fcell = !front ? '' : !f ? ' not run |'
      : ` ${latCell(f)}; ${f.received ?? 0}/${f.expected ?? '?'}; ${f.error ? 'n/a' : kib(f.perStreamBytes)} |`;
    lines.push(`| ${n.toLocaleString('en-US')} | ${latCell(o)} | ${latCell(c)} | ${latCell(s)} | ${recv} | ${rat} | ${mem} |${fcell}`);
  }
  return lines.join('\n');
}

// With BENCH_COMPARE_ROUNDS > 1: per N, every round's ours / Nchan p50 and p99 ratios (a round
// where either failed is n/a) and the median of each over the rounds that have one.
export function roundsTable(results) {
  const sizes = [...new Set(results.map((r) => r.n))].sort((a, b) => a - b);
  const lines = ['| N | rounds | ours / Nchan p50, each round | p99, each round | median p50; p99 | rounds with p99 ≤ 0.8× |',
    '|---|---|---|---|---|---|'];
  const ok = (r) => r && !r.error && Number.isFinite(r.p50);
  for (const n of sizes) {
    const rs = [...new Set(results.filter((r) => r.n === n).map((r) => r.round))].sort((a, b) => a - b);
    const p50 = [], p99 = [];
    for (const round of rs) {
      const o = results.find((r) => r.n === n && r.round === round && r.system === 'ours');
      const c = results.find((r) => r.n === n && r.round === round && r.system === 'nchan');
      p50.push(ok(o) && ok(c) ? o.p50 / c.p50 : NaN);
      p99.push(ok(o) && ok(c) ? o.p99 / c.p99 : NaN);
    }
    const cell = (v) => v.map((x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a')).join(' ');
    const med = (v) => {
      const f = v.filter(Number.isFinite).sort((a, b) => a - b), h = f.length >> 1;
      return f.length ? `${(f.length % 2 ? f[h] : (f[h - 1] + f[h]) / 2).toFixed(2)}×` : 'n/a';
    };
    const under = p99.filter((x) => Number.isFinite(x) && x <= 0.8).length;
    lines.push(`| ${n.toLocaleString('en-US')} | ${rs.length} | ${cell(p50)} | ${cell(p99)} | ${med(p50)}; ${med(p99)} | ${under} of ${p99.filter(Number.isFinite).length} |`);
  }
  return lines.join('\n');
}

// The shape of one message's fan-out, as the median over the messages: its first receipt
// (the fixed path: POST, commit or publish, the server's first write) and the spread from
// its first to its last receipt (the fan-out itself). The p99 over all receipts is about the
// first plus the spread of the worst few messages. lat[i] is a receipt's latency, latMsg[i]
// its message (0 … M-1); messages nobody received are left out of the medians. byMessage
// keeps each message's [first, last] (null if nobody received it) for the raw results.
export function perMessage(lat, latMsg, M) {
  const first = new Float64Array(M).fill(Infinity), last = new Float64Array(M).fill(-Infinity);
  for (let i = 0; i < lat.length; i++) {
    const k = latMsg[i];
    if (lat[i] < first[k]) first[k] = lat[i];
    if (lat[i] > last[k]) last[k] = lat[i];
  }
  const firsts = [], spreads = [], byMessage = [];
  for (let k = 0; k < M; k++) {
    if (first[k] === Infinity) { byMessage.push(null); continue; }
    firsts.push(first[k]);
    spreads.push(last[k] - first[k]);
    byMessage.push([+first[k].toFixed(3), +last[k].toFixed(3)]);
  }
  firsts.sort((a, b) => a - b);
  spreads.sort((a, b) => a - b);
  return { firstP50: pct(firsts, 50), spreadP50: pct(spreads, 50), spreadMax: spreads.at(-1), byMessage };
}
