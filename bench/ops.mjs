// Committed operations per second through lighttpd, the API processes and the Redis
// commit: one room with every writer in it (all commits contend for one revision), and
// 100 rooms side by side. Prints its figures. Needs BASE_URL (bench/run.sh sets it).
//   BENCH_SECONDS (default 5), BENCH_CONCURRENCY (default 32)
// The load generator shares the machine with the stack, so it is kept lean: each writer
// holds one kept-alive TCP connection and writes its requests by hand (fetch costs several
// times more CPU per request); it prints the CPU it used itself.
import net from 'node:net';

const BASE = process.env.BASE_URL;
const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 32);

async function call(method, path, token, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  return { status: res.status, json };
}

async function register() {
  const name = 'ops' + Math.random().toString(36).slice(2, 10);
  const res = await fetch(BASE + '/api/auth/register', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: name, password: 'bench-password' }),
  });
  return (await res.json()).token;
}

// One writer's connection: a request at a time, the answer's status and body.
function connection() {
  const url = new URL(BASE);
  const sock = net.connect(Number(url.port), url.hostname);
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let waiting = null;
  sock.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    if (!waiting) return;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.toString('latin1', 0, end);
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    const len = m ? Number(m[1]) : 0;
    if (buf.length < end + 4 + len) return;
    const body = buf.toString('utf8', end + 4, end + 4 + len);
    buf = buf.subarray(end + 4 + len);
    const w = waiting;
    waiting = null;
    w.resolve({ status: Number(head.slice(9, 12)), body });
  });
  sock.on('error', (e) => { if (waiting) waiting.reject(e); });
  const ready = new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  return {
    ready,
    request(path, token, body) {
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
        sock.write(`POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      });
    },
    close() { sock.destroy(); },
  };
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

// Writers loop until the deadline; each posts a one-character insert against the last
// revision it saw, so most commits are transformed over others' (the realistic case).
async function run(label, rooms, token) {
  const known = new Map(rooms.map((r) => [r, 0]));
  let ok = 0, failed = 0, firstFailure = '';
  const lat = [];
  const deadline = Date.now() + SECONDS * 1000;
  const conns = Array.from({ length: CONCURRENCY }, connection);
  await Promise.all(conns.map((c) => c.ready));
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(conns.map(async (conn, w) => {
    while (Date.now() < deadline) {
      const room = rooms[(w + ok + failed) % rooms.length];
      const s = process.hrtime.bigint();
      const r = await conn.request(`/api/rooms/${room}/operations`, token, `{"revision":${known.get(room)},"ops":["x"]}`);
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      if (r.status === 200) {
        ok++;
        const rev = Number(/"revision":(\d+)/.exec(r.body)[1]);
        if (rev > known.get(room)) known.set(room, rev);
      } else {
        if (!failed) firstFailure = `${r.status} ${r.body}`;
        failed++;
      }
    }
  }));
  const secs = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) c.close();
  lat.sort((a, b) => a - b);
  if (failed) console.log(`  first failure: ${firstFailure.slice(0, 200)}`);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(`${label.padEnd(26)} ${(ok / secs).toFixed(0).padStart(7)} commits/s   p50 ${pct(lat, 50).toFixed(2)} ms   p99 ${pct(lat, 99).toFixed(2)} ms   (${ok} ok, ${failed} failed, ${CONCURRENCY} writers; load generator ${(cpuMs / secs / 10).toFixed(0)}% of a core, ${(cpuMs * 1000 / (ok + failed)).toFixed(0)} µs CPU per request)`);
}

const token = await register();
const mk = async () => (await call('POST', '/api/rooms', token, { name: 'bench', language: 'plaintext' })).json.room.id;
const one = [await mk()];
const many = [];
for (let i = 0; i < 100; i++) many.push(await mk());
await run('operations, 1 room', one, token);
await run('operations, 100 rooms', many, token);
