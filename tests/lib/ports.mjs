// Free ports for the servers tests start (redis-server, the broker, lighttpd, a stack).
//
// A port is chosen here and bound later by another process, sometimes seconds later. Two
// things can take it in between, and both have happened:
//  - an outgoing connection anywhere on the machine, when the port lies in the kernel's
//    ephemeral range (ip_local_port_range, 32768–60999 here), which is where listen(0)
//    picks: the ports come from below that range instead;
//  - another test file (the runner starts several at once) choosing the same port: each
//    choice is recorded as a file in a directory every test process on the machine shares,
//    and a port recorded in the last RESERVE_MS is not handed out again.
//
// As a command (scripts/stack.sh): `node tests/lib/ports.mjs N [taken...]` prints N free
// ports on one line, none of them among `taken`.
import { createServer } from 'node:net';
import { mkdirSync, openSync, closeSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LOW = 10000;
const RESERVE_MS = 15 * 60 * 1000; // longer than any test file takes to bind what it chose
const REGISTRY = join(tmpdir(), 'codecollab-test-ports');

function ephemeralLow() {
  try {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(lo) && lo > LOW + 2000 && lo <= 65536) return lo;
  } catch { /* not Linux, or no /proc: the usual bound */ }
  return 32768;
}
const HIGH = ephemeralLow(); // ports in [LOW, HIGH)

export const portFree = (port) => new Promise((resolve) => {
  const s = createServer();
  s.unref();
  s.once('error', () => resolve(false));
  s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

// Claims port in the shared registry; false when another process (or this one) chose it in
// the last RESERVE_MS.
function reserve(port) {
  mkdirSync(REGISTRY, { recursive: true, mode: 0o777 });
  const f = join(REGISTRY, String(port));
  for (let i = 0; i < 2; i++) {
    try {
      closeSync(openSync(f, 'wx', 0o666));
      return true;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let age;
    try { age = Date.now() - statSync(f).mtimeMs; } catch { continue; } // just released
    if (age < RESERVE_MS) return false;
    try { unlinkSync(f); } catch { /* another process renews it */ }
  }
  return false;
}

function release(port) {
  try { unlinkSync(join(REGISTRY, String(port))); } catch { /* not ours any more */ }
}

// A block of n consecutive free ports; with twin, port + twin must be free as well (a Redis
// Cluster node's bus port is its port + 10000). Returns the first port.
export async function freeBlock(n = 1, { twin = 0, taken = [] } = {}) {
  const avoid = new Set(taken.map(Number));
  const span = HIGH - LOW - n - twin;
  if (span <= 0) throw new Error(`no room for ${n} ports below ${HIGH}`);
  for (let tries = 0; tries < 500; tries++) {
    const base = LOW + Math.floor(Math.random() * span);
    const ports = [];
    for (let p = base; p < base + n; p++) ports.push(p, ...(twin ? [p + twin] : []));
    if (ports.some((p) => avoid.has(p))) continue;
    const claimed = [];
    let ok = true;
    for (const p of ports) {
      if (!reserve(p)) { ok = false; break; }
      claimed.push(p);
      if (!(await portFree(p))) { ok = false; break; } // in use: stays claimed, unused
    }
    if (ok) return base;
    for (const p of claimed) if (await portFree(p)) release(p);
  }
  throw new Error(`no block of ${n} free ports found in ${LOW}–${HIGH - 1}`);
}

export const freePort = () => freeBlock(1);

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = Number(process.argv[2] || 1);
  const taken = process.argv.slice(3).filter((a) => a !== '').map(Number);
  const out = [];
  for (let i = 0; i < n; i++) {
    const p = await freeBlock(1, { taken: [...taken, ...out] });
    out.push(p);
  }
  console.log(out.join(' '));
}
