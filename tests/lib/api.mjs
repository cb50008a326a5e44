// Helpers for the suites against the real stack started by scripts/test.sh (tests/stack,
// tests/browser).
// CC_BASE_URL is lighttpd's address; DATABASE_URL, REDIS_URL and JWT_SECRET_FILE name the
// stack's own servers and key (from var/run/env).
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { connectRedis } from './resp.mjs';
import { sseBlockStream, sseFields } from './sse.mjs';
import { waitFor } from './procs.mjs';
import { request } from './fetch.mjs';

export const BASE = process.env.CC_BASE_URL;
if (!BASE) throw new Error('CC_BASE_URL is not set: run these suites with `make test-stack` or `make test`');

// One HTTP call. body: an object (sent as JSON), a string (sent as is), or undefined.
export function call(method, path, opts) {
  return request(BASE, method, path, opts);
}

export function uniqueName(prefix = 'u') {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

// Registers a fresh user; returns {token, user, password}.
export async function newUser(prefix = 'u') {
  const username = uniqueName(prefix);
  const password = 'pw-' + randomBytes(6).toString('hex');
  const r = await call('POST', '/api/auth/register', { body: { username, password } });
  if (r.status !== 201) throw new Error(`register failed: ${r.status} ${r.text}`);
  return { token: r.json.token, user: r.json.user, password, username };
}

export function jwtSecret() {
  if (process.env.JWT_SECRET) return process.env.JWT_SECRET;
  return readFileSync(process.env.JWT_SECRET_FILE, 'utf8').trim();
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Builds a JWT by hand, to forge what an attacker could send.
export function signJwt(payload, { alg = 'HS256', key = jwtSecret() } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT' }));
  const body = b64url(JSON.stringify(payload));
  if (alg === 'none') return `${head}.${body}.`;
  const algo = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  const sig = createHmac(algo, key).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

// Where the stack's Redis listens, from REDIS_URL (redis://host:port, or unix:///path, which
// make run gives its own programs): redis-cli's arguments, and what connectRedis takes.
function redisUrl() { return new URL(process.env.REDIS_URL); }
// Against a Redis Cluster (REDIS_CLUSTER set: the make cluster layout) redis-cli follows
// MOVED and ASK itself (-c), from the node REDIS_URL names.
export function redisCliTarget() {
  const u = redisUrl();
  const cluster = process.env.REDIS_CLUSTER ? ['-c'] : [];
  return u.protocol === 'unix:' ? ['-s', u.pathname] : [...cluster, '-h', u.hostname, '-p', u.port || '6379'];
}
export function redisEndpoint() {
  const u = redisUrl();
  return u.protocol === 'unix:' ? u.pathname : Number(u.port || 6379);
}
// A RESP client (lib/resp.mjs) for the stack's Redis: on a Redis Cluster one that follows
// MOVED and ASK from the node REDIS_URL names.
export function connectStackRedis() {
  return connectRedis(redisEndpoint(), { cluster: Boolean(process.env.REDIS_CLUSTER) });
}

// A redis-cli call against the stack's Redis; returns trimmed stdout.
export function redis(...args) {
  return execFileSync('redis-cli', [...redisCliTarget(), ...args], { encoding: 'utf8' }).trim();
}

// A psql query against the stack's database; returns trimmed stdout (unaligned, tuples only).
// A query that changes something returns once the read replica, if there is one, shows it.
export function sql(query) {
  const out = psql(process.env.DATABASE_URL, query);
  if (!/^\s*SELECT\b/i.test(query)) replicaCaughtUp();
  return out;
}

// A psql query against the database at url (any role); trimmed stdout, and throws on an error.
export function psql(url, query) {
  return execFileSync('psql', [url, '-XAtqc', query], { encoding: 'utf8', timeout: 20000 }).trim();
}

// On the cluster layout the API answers the reads that may lag (the history list and a
// revision's text) from PostgreSQL's hot standby, DATABASE_READ_URL. A test that has just
// seen a save happen (its `snapshot` event) or made a change itself waits here until the
// standby has replayed everything the primary had written by now; with no standby it returns
// at once.
export function replicaCaughtUp({ timeout = 15000 } = {}) {
  const replica = process.env.DATABASE_READ_URL;
  if (!replica) return;
  const lsn = psql(process.env.DATABASE_URL, 'SELECT pg_current_wal_lsn()');
  const until = Date.now() + timeout;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    // (a DATABASE_READ_URL that names a primary has nothing to replay)
    if (psql(replica, `SELECT coalesce(pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn, NOT pg_is_in_recovery())`) === 't') return;
    if (Date.now() > until) throw new Error(`the read replica has not replayed ${lsn} after ${timeout} ms`);
    Atomics.wait(nap, 0, 0, 50);
  }
}

// The room's `snapshot` event for revision rev (the snapshotter saves within
// SNAPSHOT_INTERVAL_MS of the first change), then the save readable where the API reads
// history (replicaCaughtUp: a read replica may be behind).
// Commits ops one after another to the room as the user of `token`, from revision `from`
// (each op one operation); the revision after the last. A refusal throws.
export async function commitAll(token, room, from, ops) {
  let rev = from;
  for (const op of ops) {
    const r = await call('POST', `/api/rooms/${room.id}/operations`, { token, body: { revision: rev, ops: op } });
    if (r.status !== 200) throw new Error(`commit at revision ${rev}: ${r.status} ${r.text}`);
    rev = r.json.revision;
  }
  return rev;
}

export async function saved(room, rev) {
  await waitFor(() => roomEvents(room.id).find((e) => e.type === 'snapshot' && e.data.revision === rev),
    { what: `the save of revision ${rev}`, timeout: 15000 });
  replicaCaughtUp();
}

// A redis-cli call whose answer is parsed from redis-cli's --json output.
export function redisJson(...args) {
  const out = execFileSync('redis-cli', [...redisCliTarget(), '--json', ...args], { encoding: 'utf8' });
  return JSON.parse(out);
}

// The events of a room's history stream (cc:room:{id}:events), oldest first, as
// [{id, type, data}] with data parsed from JSON.
export function roomEvents(roomId) {
  const entries = redisJson('XRANGE', `cc:room:{${roomId}}:events`, '-', '+');
  return entries.map(([id, fields]) => {
    const f = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    return { id, type: f.type, raw: f.data, data: JSON.parse(f.data) };
  });
}

// The masters of the stack's Redis Cluster, as redis-cli arguments ([['-h', host, '-p',
// port], ...]), from CLUSTER NODES asked of the node REDIS_URL names.
export function clusterMasters() {
  const out = redis('CLUSTER', 'NODES');
  const masters = [];
  for (const line of out.split('\n')) {
    // <id> <ip:port@cport[,hostname]> <flags> <master> ... <state> <slots...>
    const f = line.trim().split(' ');
    const flags = (f[2] || '').split(',');
    if (!flags.includes('master') || flags.includes('fail') || flags.includes('noaddr')) continue;
    const addr = f[1].split('@')[0];
    const i = addr.lastIndexOf(':');
    masters.push(['-h', addr.slice(0, i) || '127.0.0.1', '-p', addr.slice(i + 1)]);
  }
  return masters;
}

// The keys matching pattern, on every master of a cluster (a SCAN sees one node's keys only).
export function redisScan(pattern) {
  const targets = process.env.REDIS_CLUSTER ? clusterMasters() : [redisCliTarget()];
  const keys = [];
  for (const t of targets) {
    const out = execFileSync('redis-cli', [...t, '--scan', '--pattern', pattern], { encoding: 'utf8' });
    keys.push(...out.split('\n').filter(Boolean));
  }
  return keys;
}

// Forgets every login attempt, so a rate-limit test leaves nothing behind for the next.
export function clearLoginLimits() {
  const keys = redisScan('cc:rl:login:*');
  if (!keys.length) return;
  // on a cluster the keys lie in many slots, and one DEL names keys of one slot only
  if (process.env.REDIS_CLUSTER) for (const k of keys) redis('DEL', k);
  else redis('DEL', ...keys);
}

// Creates a room as `token`; returns the room object (throws unless 201).
export async function createRoom(token, body = {}) {
  const r = await call('POST', '/api/rooms', { token, body: { name: uniqueName('room-'), language: 'python', ...body } });
  if (r.status !== 201) throw new Error(`create room failed: ${r.status} ${r.text}`);
  return r.json.room;
}

// A chunked body (RFC 9112, 7.1) as its content; what cannot be read as chunks is kept.
function dechunk(raw) {
  let out = '', at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) return out;
    const size = parseInt(raw.slice(at, eol), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    out += raw.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

// Reads an SSE body (a fetch response's) block by block: onBlock gets each block's text
// without its blank line. Resolves when the body ends or the request is aborted.
export async function sseBlocks(body, onBlock) {
  try {
    for await (const block of sseBlockStream(body)) onBlock(block);
  } catch { /* aborted */ }
}

// A bearer-token SSE stream of a room through the front door: {events: [{type, data}] as
// they come, status, connected, ended, done (settles when it ended), open() (resolves once it
// connected with 200, or fails saying it did not), close()}.
export function bearerStream(roomId, token) {
  const ac = new AbortController();
  const s = { events: [], status: 0, ended: false, close: () => ac.abort() };
  s.done = fetch(`${BASE}/events/rooms/${roomId}`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
    .then((r) => {
      s.status = r.status;
      return sseBlocks(r.body, (b) => {
        if (b.includes(': connected')) s.connected = true;
        const f = sseFields(b);
        if (f.event) s.events.push({ type: f.event, data: JSON.parse(f.data) });
      });
    })
    .catch(() => {})
    .finally(() => { s.ended = true; });
  s.open = () => waitFor(() => s.connected || s.ended, { what: `the stream of ${roomId} connected`, timeout: 15000 })
    .then(() => assert.equal(s.status, 200, `the stream of ${roomId} opened`));
  return s;
}

// Sends bytes as they are to the web server over TCP and reads until the server closes (or
// timeoutMs). Returns {status, head, body} (status 0 when no answer arrived).
export function rawHttp(request, { timeoutMs = 5000 } = {}) {
  const u = new URL(BASE);
  return new Promise((resolve) => {
    const chunks = [];
    const sock = createConnection({ host: u.hostname, port: Number(u.port) });
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const cut = text.indexOf('\r\n\r\n');
      const head = cut < 0 ? text : text.slice(0, cut);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      let body = cut < 0 ? '' : text.slice(cut + 4);
      if (/^transfer-encoding:\s*chunked\s*$/im.test(head)) body = dechunk(body);
      resolve({ status: m ? Number(m[1]) : 0, head, body });
    };
    const timer = setTimeout(done, timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', done);
    sock.on('error', done);
    sock.on('connect', () => sock.write(request));
  });
}

// A CGI run's environment for a Redis that does not answer: one server on a port where
// nothing listens, on the make cluster layout too (without REDIS_CLUSTER, which cgi() passes
// on otherwise and which would win over REDIS_URL).
export const DEAD_REDIS = Object.freeze({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER: undefined });

// Runs the API binary (CC_API_BIN) once as a plain CGI program (RFC 3875): the request in
// the environment and on stdin, the answer on stdout. Returns {code, status, headers (lower-
// case names), body, json, stderr}.
export function cgi(opts = {}) {
  const { env, input } = cgiRequest(opts);
  const r = spawnSync(process.env.CC_API_BIN, [], { env, input, timeout: 20000, maxBuffer: 8 << 20 });
  if (r.error) throw r.error;
  return cgiAnswer(r.status, r.signal, r.stdout, r.stderr);
}

// cgi() without blocking the suite: a promise of the same answer, for a test that acts
// (other requests, SQL) while the run is under way. Killed after timeoutMs. wrap, when given,
// turns the program's argv into the command that runs it (a namespace of the test's).
export function cgiAsync(opts = {}, { timeoutMs = 60000, wrap = (argv) => argv } = {}) {
  const { env, input } = cgiRequest(opts);
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = wrap([process.env.CC_API_BIN]);
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [], err = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(cgiAnswer(code, signal, Buffer.concat(out), Buffer.concat(err)));
    });
    child.stdin.end(input);
  });
}

function cgiRequest({ method = 'GET', uri, body, contentType, contentLength, token, https = false, remoteAddr = '192.0.2.1', env = {} } = {}) {
  const e = {
    PATH: process.env.PATH,
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'codecollab-tests',
    DATABASE_URL: process.env.DATABASE_URL,
    REDIS_URL: process.env.REDIS_URL,
    // on the make cluster layout: the cluster's nodes (REDIS_URL names one of them)
    REDIS_CLUSTER: process.env.REDIS_CLUSTER,
    JWT_SECRET_FILE: process.env.JWT_SECRET_FILE,
    // the stack's sanitizer options: a CGI run's reports land with the servers' and fail the run
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1',
    REMOTE_ADDR: remoteAddr,
  };
  if (method !== undefined) e.REQUEST_METHOD = method;
  if (uri !== undefined) e.REQUEST_URI = uri;
  let input = Buffer.alloc(0);
  if (body !== undefined) {
    input = Buffer.isBuffer(body) || body instanceof Uint8Array ? Buffer.from(body)
      : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    e.CONTENT_TYPE = contentType ?? 'application/json';
    e.CONTENT_LENGTH = String(input.length);
  } else if (contentType !== undefined) {
    e.CONTENT_TYPE = contentType;
  }
  if (contentLength !== undefined) e.CONTENT_LENGTH = contentLength;
  if (token) e.HTTP_AUTHORIZATION = `Bearer ${token}`;
  if (https) e.HTTPS = 'on';
  Object.assign(e, env);
  for (const k of Object.keys(e)) if (e[k] === undefined || e[k] === null) delete e[k];
  return { env: e, input };
}

function cgiAnswer(code, signal, stdout, stderr) {
  const out = stdout.toString('utf8');
  const cut = out.indexOf('\r\n\r\n');
  const headText = cut < 0 ? out : out.slice(0, cut);
  const text = cut < 0 ? '' : out.slice(cut + 4);
  const lines = headText.split('\r\n');
  const headers = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const m = /^(\d{3})( |$)/.exec(headers.status || '');
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { code, signal, statusLine: lines[0], status: m ? Number(m[1]) : 0, headers, body: text, json, stderr: stderr.toString('utf8') };
}

// The status a bearer-token stream of the room opens with, the stream closed at once (the
// broker judges it from the room's members hash and visibility key alone).
export async function roomStreamStatus(room, token) {
  const ac = new AbortController();
  const r = await fetch(`${BASE}/events/rooms/${room.id}`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
  const status = r.status;
  ac.abort();
  return status;
}
