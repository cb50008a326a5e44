// A tiny Redis client (RESP2) for tests: enough to EVAL, HSET, XADD, SHUTDOWN.
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { scripts } from './rscripts.mjs';

// The programs' own event script (lib/lua/events_emit.lua with the one envelope of
// lib/lua/_emit.lua), as they send it (build/gen/rscripts.c), so a test emits exactly as
// they do: KEYS history; ARGV type, data, bounds (the channel is named from the history key).
export const EMIT_SCRIPT = scripts(fileURLToPath(new URL('../../build/gen/rscripts.c', import.meta.url)))
  .get('events_emit').text;
// The bounds the programs give a room's history (lib/events.h EVENTS_HISTORY_BOUNDS): about
// 1,000 entries and at most 16 MiB of them.
export const HISTORY_BOUNDS = '1000 16777216';

// Key names as lib/rkeys.def spells them (the room in braces: a Redis Cluster hash tag).
export const roomKey = (room, suffix = '') => `cc:room:{${room}}${suffix ? `:${suffix}` : ''}`;

// The first complete command (an array of bulk strings, as hiredis sends them) at the start
// of buf, for the test servers and proxies that stand between a program and Redis:
// {args, end} (end: the bytes it took), or null while it is incomplete. Throws on bytes that
// are no command.
export function firstCommand(buf) {
  let pos = 0;
  const line = () => {
    const eol = buf.indexOf('\r\n', pos);
    if (eol < 0) return null;
    const l = buf.toString('latin1', pos, eol);
    pos = eol + 2;
    return l;
  };
  const head = line();
  if (head === null) return null;
  if (head[0] !== '*') throw new Error(`not a command: ${head.slice(0, 40)}`);
  const args = [];
  for (let i = 0; i < Number(head.slice(1)); i++) {
    const len = line();
    if (len === null) return null;
    const n = Number(len.slice(1));
    if (buf.length < pos + n + 2) return null;
    args.push(buf.toString('utf8', pos, pos + n));
    pos += n + 2;
  }
  return { args, end: pos };
}

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.from(String(a));
    out += `$${b.length}\r\n${b.toString('binary')}\r\n`;
  }
  return Buffer.from(out, 'binary');
}

// Parses one reply at buf[pos]; returns [value, next] or null when incomplete.
function parse(buf, pos) {
  if (pos >= buf.length) return null;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [Object.assign(new Error(line), { reply: true }), next]; // the server's error answer
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return null;
        arr.push(r[0]);
        p = r[1];
      }
      return [arr, p];
    }
    default: throw new Error(`bad RESP type ${type}`);
  }
}

export class Redis {
  // port: a TCP port on host, or the path of a Unix socket
  constructor(port, host = '127.0.0.1') {
    this.port = port;
    this.host = host;
    this.pending = [];
    this.buf = Buffer.alloc(0);
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.sock = typeof this.port === 'string' && this.port.startsWith('/')
        ? createConnection(this.port, resolve) : createConnection(this.port, this.host, resolve);
      this.sock.once('error', reject);
      this.sock.on('error', (e) => { for (const p of this.pending.splice(0)) p.reject(e); });
      this.sock.on('close', () => {
        for (const p of this.pending.splice(0)) p.reject(new Error('connection closed'));
      });
      this.sock.on('data', (d) => {
        this.buf = Buffer.concat([this.buf, d]);
        let r;
        while (this.pending.length && (r = parse(this.buf, 0))) {
          this.buf = this.buf.subarray(r[1]);
          const p = this.pending.shift();
          if (r[0] instanceof Error) p.reject(r[0]); else p.resolve(r[0]);
        }
      });
    });
  }

  cmd(...args) {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.sock.write(encode(args));
    });
  }

  emit(room, type, data, bounds = HISTORY_BOUNDS) {
    const json = typeof data === 'string' ? data : JSON.stringify(data);
    return this.cmd('EVAL', EMIT_SCRIPT, 1, roomKey(room, 'events'), type, json, bounds);
  }

  close() { this.sock?.destroy(); }
}

// A Redis Cluster seen through one of its nodes: each command goes to the seed first; a MOVED
// answer sends it on to the node named, an ASK answer too, after ASKING (one connection per
// node, kept). Enough for tests: a command's keys share one slot on a cluster anyway, and a
// second round trip costs nothing there.
const REDIRECTS_MAX = 5;
export class ClusterRedis {
  constructor(port, host = '127.0.0.1') {
    this.seed = `${host}:${port}`;
    this.nodes = new Map(); // "host:port" -> a connected Redis
  }

  async node(addr) {
    let r = this.nodes.get(addr);
    if (!r) {
      const i = addr.lastIndexOf(':');
      r = new Redis(Number(addr.slice(i + 1)), addr.slice(0, i) || '127.0.0.1');
      await r.connect();
      this.nodes.set(addr, r);
    }
    return r;
  }

  async connect() { await this.node(this.seed); }

  async cmd(...args) {
    let addr = this.seed, asking = false;
    for (let n = 0; ; n++) {
      const r = await this.node(addr);
      try {
        if (asking) await r.cmd('ASKING');
        return await r.cmd(...args);
      } catch (e) {
        const m = /^(MOVED|ASK) (\d+) (\S+)$/.exec(e.message);
        if (!m || n >= REDIRECTS_MAX) throw e;
        // "MOVED 1234 :6380" names the node that answered's own host
        addr = m[3].startsWith(':') ? `${addr.slice(0, addr.lastIndexOf(':'))}${m[3]}` : m[3];
        asking = m[1] === 'ASK';
      }
    }
  }

  emit(room, type, data, bounds = HISTORY_BOUNDS) {
    const json = typeof data === 'string' ? data : JSON.stringify(data);
    return this.cmd('EVAL', EMIT_SCRIPT, 1, roomKey(room, 'events'), type, json, bounds);
  }

  close() {
    for (const r of this.nodes.values()) r.close();
    this.nodes.clear();
  }
}

// One server, or, with cluster, a Redis Cluster reached through the node at port (a TCP port
// on 127.0.0.1).
export async function connectRedis(port, { cluster = false } = {}) {
  const r = cluster ? new ClusterRedis(port) : new Redis(port);
  await r.connect();
  return r;
}
