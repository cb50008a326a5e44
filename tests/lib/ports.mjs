// Free ports for the servers tests start (redis-server, the broker, lighttpd, a stack).
//
// A port is chosen here and bound later by another process, sometimes seconds later. Two
// things can take it in between, and both have happened:
//  - an outgoing connection anywhere on the machine, when the port lies in the kernel's
//    ephemeral range (ip_local_port_range, 32768–60999 here), which is where listen(0)
//    picks: the ports come from below that range instead;
//  - another test file (the runner starts several at once) choosing the same port: each
//    choice is recorded as a file in a directory every test process on the machine shares,
//    and a port recorded in the last RESERVE_MS is not handed out again. A test process
//    gives its ports back when it exits; the command's ports (a whole stack's) lapse.
//
// As a command (scripts/stack.sh): `node tests/lib/ports.mjs N [taken...]` prints N free
// ports on one line, none of them among `taken`.
import { createServer } from 'node:net';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LOW = 10000;
const RESERVE_MS = 15 * 60 * 1000; // longer than any test file takes to bind what it chose
// CC_TEST_PORTS_DIR: a registry of one's own (tests/unit/ports.test.mjs)
const REGISTRY = process.env.CC_TEST_PORTS_DIR || join(tmpdir(), 'codecollab-test-ports');
const CLI = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];

function ephemeralLow() {
  try {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(lo) && lo > LOW + 2000 && lo <= 65536) return lo;
  } catch { /* not Linux, or no /proc: the usual bound */ }
  return 32768;
}
export const HIGH = ephemeralLow(); // ports in [LOW, HIGH)

export const portFree = (port) => new Promise((resolve) => {
  const s = createServer();
  s.unref();
  s.once('error', () => resolve(false));
  s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
});

// Reservations this process made: given back when it exits (the servers it started on them
// are killed then), except when it runs as the command, whose ports outlive it.
const mine = new Set();
process.on('exit', () => {
  if (!CLI) for (const p of mine) release(p);
});

let registry = true; // false once the directory cannot be used: then only the bind check
function openRegistry() {
  if (!registry) return false;
  try {
    mkdirSync(REGISTRY, { recursive: true });
    chmodSync(REGISTRY, 0o1777); // every user's test processes share it (sticky, as /tmp)
  } catch (e) {
    if (e.code !== 'EPERM') { registry = false; return false; } // not ours to chmod: fine
  }
  return true;
}

// Claims port in the shared registry; false when another process (or this one) chose it in
// the last RESERVE_MS.
function reserve(port) {
  if (!openRegistry()) return true;
  const f = join(REGISTRY, String(port));
  try {
    closeSync(openSync(f, 'wx', 0o666));
    mine.add(port);
    return true;
  } catch (e) {
    if (e.code === 'EACCES') { registry = false; return true; }
    if (e.code !== 'EEXIST') throw e;
  }
  let age;
  try { age = Date.now() - statSync(f).mtimeMs; } catch { return false; } // changing hands
  if (age < RESERVE_MS) return false;
  // stale: taken over by renaming it away, which only one process can do
  const away = `${f}.stale.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try { renameSync(f, away); } catch { return false; }
  try { unlinkSync(away); } catch { /* gone already */ }
  return reserve(port);
}

function release(port) {
  try { unlinkSync(join(REGISTRY, String(port))); } catch { /* not there */ }
  mine.delete(port);
}

// A block of n consecutive free ports; with twin, port + twin must be free as well (a Redis
// Cluster node's bus port is its port + 10000). Returns the first port. Every base is tried
// once, from a random one on.
export async function freeBlock(n = 1, { twin = 0, taken = [] } = {}) {
  const avoid = new Set(taken.map(Number));
  const span = HIGH - LOW - n - twin;
  if (span <= 0) throw new Error(`no room for ${n} ports below ${HIGH}`);
  const first = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const base = LOW + ((first + i) % span);
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

if (CLI) {
  const n = Number(process.argv[2] || 1);
  const taken = process.argv.slice(3).filter((a) => a !== '').map(Number);
  const out = [];
  for (let i = 0; i < n; i++) {
    const p = await freeBlock(1, { taken: [...taken, ...out] });
    out.push(p);
  }
  console.log(out.join(' '));
}
