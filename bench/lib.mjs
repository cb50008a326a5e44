// Shared by the node scripts of bench/: API calls, a lean SSE client over a raw TCP socket
// (thousands of them fit in one process), the fan-out's writer, and what /proc says about
// the stack's processes (RSS, CPU time), or the `make cluster` layout's (clusterProcs). The
// stack is the one bench/run.sh starts: BASE_URL, BROKER_PORT and CC_VAR come from
// scripts/stack.sh; bench/cluster.mjs sets BASE_URL to the layout's HAProxy.
import { createConnection } from 'node:net';
import { request as httpRequest, Agent } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { procStat } from '../tests/lib/proctree.mjs';

export const BASE = process.env.BASE_URL;
if (!BASE) {
  console.error('BASE_URL is not set: run this through bench/run.sh, or export a stack\'s BASE_URL');
  process.exit(2);
}

// One clock for everything: milliseconds since this process started.
export const now = () => performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function api(method, path, token, body) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(BASE + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* leave null */ }
  return { status: res.status, json, text, headers: res.headers };
}

// The timed writers' HTTP client: node:http on kept-alive connections. fetch (undici) costs
// this process about half a millisecond more CPU per request and puts the request on the
// wire about half a millisecond later (measured 2026-11-30: 1.0 against 0.5 ms from the
// call to the server's read, median of 50), time that fell inside every system's latency.
// A kept-alive connection left unused for 4 s is closed by this side: a server closes its
// idle ones after a while (lighttpd here after 30 s, node's own after 5 s), and a request sent
// on one just as the server closes it fails with "socket hang up". `timeout` applies to a
// free socket; a request in flight has its own (timeoutMs below).
const keepAlive = new Agent({ keepAlive: true, timeout: 4000 });
export function send(method, url, { headers = {}, body, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
    const q = httpRequest(url, { method, headers: h, agent: keepAlive }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    q.setTimeout(timeoutMs, () => q.destroy(new Error(`${method} ${url}: no answer in ${timeoutMs} ms`)));
    q.on('error', reject);
    q.end(body);
  });
}

export async function must(method, path, token, body, want = [200, 201, 202]) {
  const r = await api(method, path, token, body);
  if (!want.includes(r.status)) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 200)}`);
  return r.json;
}

export async function newUser(prefix) {
  const username = prefix + randomBytes(5).toString('hex');
  const j = await must('POST', '/api/auth/register', null, { username, password: 'bench-password' });
  return { token: j.token, id: j.user.id, username };
}

export async function newRoom(token, language = 'plaintext') {
  const j = await must('POST', '/api/rooms', token, { name: 'bench', language });
  return j.room;
}

// Stream tickets live TICKET_TTL seconds (60 by default): hand out one that still has at
// least half of that left, fetching a new one when needed.
export function ticketSource(room, token) {
  let cur = null, at = 0, ttlMs = 60000;
  return async () => {
    if (!cur || now() - at > ttlMs / 2) {
      const j = await must('POST', `/api/rooms/${room}/stream-ticket`, token, {});
      cur = j.ticket;
      at = now();
      ttlMs = (j.expires_in || 60) * 1000;
    }
    return cur;
  };
}

// A Server-Sent Events subscription on a raw socket: sends a GET, decodes a chunked body
// when the server uses one (lighttpd does; the broker itself sends the stream as is) and
// calls onEvent(block, receivedAt) for every complete event block ("id:…\nevent:…\ndata:…").
// receivedAt is taken once per socket read, before any parsing. Resolves once the server's
// ": connected" comment has arrived, or with ready: 'headers' once a 200 answer's headers
// have (servers that send nothing before the first event: Nchan). With timeoutMs, rejects
// and closes the socket when it is not ready by then.
export function sseConnect({ host, port, path, onEvent, ready: readyOn = 'connected', timeoutMs = 0 }) {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port });
    if (timeoutMs > 0) {
      const timer = setTimeout(() => {
        if (ready) return;
        s.destroy();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('close', () => clearTimeout(timer));
    }
    s.setEncoding('latin1'); // the markers are ASCII; latin1 never splits a character
    s.setNoDelay(true);
    let head = '', inHead = true, chunked = false;
    let raw = '';       // undecoded chunked input
    let left = 0;       // bytes left in the current chunk
    let text = '';      // decoded SSE text not yet cut into events
    let ready = false;
    const feed = (t, at) => {
      text += t;
      let cut;
      while ((cut = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, cut);
        text = text.slice(cut + 2);
        if (!ready && block.includes(': connected')) { ready = true; resolve(s); }
        if (block.charCodeAt(0) !== 58 /* ':' comment */ || block.includes('\n')) onEvent(block, at);
      }
    };
    const dechunk = (at) => {
      for (;;) {
        if (left > 0) {
          if (!raw.length) return;
          const take = Math.min(left, raw.length);
          feed(raw.slice(0, take), at);
          raw = raw.slice(take);
          left -= take;
          if (left === 0) left = -2; // the CRLF after the chunk
          continue;
        }
        if (left < 0) {
          const skip = Math.min(-left, raw.length);
          raw = raw.slice(skip);
          left += skip;
          if (left < 0) return;
          continue;
        }
        const eol = raw.indexOf('\r\n');
        if (eol < 0) return;
        const size = parseInt(raw.slice(0, eol), 16);
        raw = raw.slice(eol + 2);
        if (!(size > 0)) { s.end(); return; }
        left = size;
      }
    };
    s.on('connect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    s.on('data', (d) => {
      const at = now();
      if (inHead) {
        head += d;
        const cut = head.indexOf('\r\n\r\n');
        if (cut < 0) return;
        inHead = false;
        const status = /^HTTP\/1\.[01] (\d+)/.exec(head);
        if (!status || status[1] !== '200') {
          s.destroy();
          reject(new Error(`stream answered ${head.split('\r\n')[0]}`));
          return;
        }
        chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head.slice(0, cut + 2));
        if (readyOn === 'headers') { ready = true; resolve(s); }
        d = head.slice(cut + 4);
        head = '';
      }
      if (chunked) { raw += d; dechunk(at); } else feed(d, at);
    });
    s.on('error', (e) => { if (!ready) reject(e); });
    s.on('close', () => { if (!ready) reject(new Error('stream closed before ": connected"')); });
  });
}

// The fan-out's writer: sent.length one-character inserts into the room, each POST started on
// a gapMs grid (or at once when the previous one took longer) and awaited before the next,
// so its revision is current; the k-th carries the marker "m<k>" as its client_id, and
// sent[k] is when its POST started. Answers { postLat (ms, in order), postFailed }.
export async function postMarkers(roomId, token, sent, gapMs = 50) {
  const ts0 = now();
  let revision = 0, postFailed = 0;
  const postLat = [];
  for (let k = 0; k < sent.length; k++) {
    const due = ts0 + k * gapMs;
    if (now() < due) await sleep(due - now());
    sent[k] = now();
    try {
      const j = await must('POST', `/api/rooms/${roomId}/operations`, token,
        { revision, ops: ['x'], client_id: `m${k}` });
      revision = j.revision;
    } catch (e) {
      postFailed++;
      console.error(`POST ${k}: ${e.message}`);
    }
    postLat.push(now() - sent[k]);
  }
  return { postLat, postFailed };
}

// ---- the stack's processes, from /proc ---------------------------------------------------

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100; } catch { return 100; }
})();

// The role of a process by its command line: which program it runs.
function roleOf(cmd) {
  const exe = cmd[0].split('/').pop();
  if (exe === 'codecollab-broker') return 'broker';
  if (exe === 'lighttpd') return 'lighttpd';
  if (exe === 'codecollab-snapshotter') return 'snapshotter';
  if (exe === 'codecollab-api') return 'api';
  if (exe === 'codecollab-worker') return 'worker';
  if (exe === 'haproxy') return 'haproxy';
  if (exe.startsWith('redis-server')) return 'redis';
  if (exe.startsWith('postgres') || cmd[0].startsWith('postgres:')) return 'postgres';
  return null;
}

const emptyRoles = () => ({
  haproxy: [], broker: [], lighttpd: [], api: [], snapshotter: [], worker: [], redis: [], postgres: [],
});
const cmdline = (pid) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');

// Processes whose environment carries CC_VAR=<the stack's>, grouped by role.
export function stackProcs(ccVar = process.env.CC_VAR) {
  const roles = emptyRoles();
  if (!ccVar) return roles;
  const want = `CC_VAR=${ccVar}`;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    let env, cmd;
    try {
      env = readFileSync(`/proc/${d}/environ`, 'latin1');
      cmd = cmdline(d);
    } catch { continue; }
    if (!env.split('\0').includes(want)) continue;
    const role = roleOf(cmd);
    if (role) roles[role].push(Number(d));
  }
  return roles;
}

// The processes of a `make cluster` layout (scripts/cluster.sh), grouped by role: every
// process its topology.json names and their descendants (a web node's API processes,
// PostgreSQL's backends; Redis Cluster nodes as "redis masters" and "redis replicas"), plus the pids of `extra` (processes started beside the layout).
export function clusterProcs(topologyFile, extra = []) {
  const roles = emptyRoles();
  const topo = JSON.parse(readFileSync(topologyFile, 'utf8'));
  const seen = new Set();
  const visit = (pid, as) => {
    if (!pid || seen.has(pid)) return;
    seen.add(pid);
    try {
      const role = as || roleOf(cmdline(pid));
      if (role) (roles[role] ??= []).push(pid);
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ')) if (c) visit(Number(c));
      }
    } catch { /* it ended meanwhile */ }
  };
  // a Redis Cluster's masters apart from their replicas: a room's commits load its master
  for (const p of topo.processes) visit(p.pid, p.redis_role ? `redis ${p.redis_role}s` : undefined);
  delete roles.redis;
  for (const p of extra) visit(p);
  return roles;
}

export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}

// CPU seconds (user + system) a process has used so far. Children are not counted: the
// worker's sandboxed jobs run under bubblewrap's own pid namespace and land in "the rest".
export function cpuSeconds(pid) {
  const stat = procStat(pid);
  return stat ? (stat.utime + stat.stime) / CLK_TCK : 0;
}

// CPU seconds per role, this process included as "node (bench)".
export function cpuByRole(roles) {
  const out = {};
  for (const [role, pids] of Object.entries(roles)) {
    if (pids.length) out[role] = pids.reduce((a, p) => a + cpuSeconds(p), 0);
  }
  const u = process.cpuUsage();
  out['node (bench)'] = (u.user + u.system) / 1e6;
  out[MACHINE] = machineBusySeconds();
  return out;
}

// Busy CPU seconds of the whole machine (all cores), from /proc/stat.
const MACHINE = 'whole machine';
function machineBusySeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // user … steal
    return (total - f[3] - f[4]) / CLK_TCK; // less idle and iowait
  } catch { return NaN; }
}

export function cpuDelta(before, after) {
  const d = {};
  for (const k of Object.keys(after)) d[k] = after[k] - (before[k] || 0);
  return d;
}

// "whole machine 1.80 s busy of 2.40 s (2 cores): broker 0.75 s, node (bench) 0.58 s, …,
// the rest 0.30 s": the rest is every other process on the machine (sandboxed jobs, other
// people's work, the kernel's softirq time not charged to a process).
export function formatCpu(d, wallS) {
  const cores = availableParallelism();
  const parts = Object.entries(d).filter(([k, v]) => k !== MACHINE && v >= 0.005).sort((a, b) => b[1] - a[1]);
  const known = parts.reduce((a, [, v]) => a + v, 0);
  const all = d[MACHINE];
  const list = parts.map(([k, v]) => `${k} ${v.toFixed(2)} s`);
  if (!Number.isFinite(all)) return list.join(', ');
  list.push(`the rest ${Math.max(0, all - known).toFixed(2)} s`);
  return `whole machine ${all.toFixed(2)} s busy of ${(wallS * cores).toFixed(2)} s (${cores} cores): ${list.join(', ')}`;
}

export function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const ms = (v) => (Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)) : 'n/a');

export function loadavg() {
  try { return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '); } catch { return '?'; }
}
