// Helpers for integration tests against the real stack started by scripts/test.sh.
// CC_BASE_URL is lighttpd's address; DATABASE_URL, REDIS_URL and JWT_SECRET_FILE name the
// stack's own servers and key (from var/run/env).
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export const BASE = process.env.CC_BASE_URL;
if (!BASE) throw new Error('CC_BASE_URL is not set: run the integration tests with `make test`');

// One HTTP call. body: an object (sent as JSON), a string (sent as is), or undefined.
export async function call(method, path, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  const res = await fetch(BASE + path, { method, headers: h, body: payload });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: json stays null */ }
  return { status: res.status, headers: res.headers, text, json };
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

// A redis-cli call against the stack's Redis; returns trimmed stdout.
export function redis(...args) {
  const u = new URL(process.env.REDIS_URL);
  return execFileSync('redis-cli', ['-h', u.hostname, '-p', u.port || '6379', ...args], { encoding: 'utf8' }).trim();
}

// A psql query against the stack's database; returns trimmed stdout (unaligned, tuples only).
export function sql(query) {
  return execFileSync('psql', [process.env.DATABASE_URL, '-XAtqc', query], { encoding: 'utf8' }).trim();
}
