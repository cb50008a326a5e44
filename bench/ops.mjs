// Committed operations per second through lighttpd, the API processes and the Redis
// commit: one room with every writer in it (all commits contend for one revision), and
// 100 rooms side by side. Prints its figures. Needs BASE_URL (bench/run.sh sets it).
//   BENCH_SECONDS (default 5), BENCH_CONCURRENCY (default 32)
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

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

// Writers loop until the deadline; each posts a one-character insert against the last
// revision it saw, so most commits are transformed over others' (the realistic case).
async function run(label, rooms, token) {
  const known = new Map(rooms.map((r) => [r, 0]));
  let ok = 0, failed = 0;
  const lat = [];
  const deadline = Date.now() + SECONDS * 1000;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    while (Date.now() < deadline) {
      const room = rooms[(w + ok + failed) % rooms.length];
      const s = process.hrtime.bigint();
      const r = await call('POST', `/api/rooms/${room}/operations`, token, { revision: known.get(room), ops: ['x'] });
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      if (r.status === 200) {
        ok++;
        if (r.json.revision > known.get(room)) known.set(room, r.json.revision);
      } else {
        failed++;
      }
    }
  }));
  const secs = (Date.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  console.log(`${label.padEnd(26)} ${(ok / secs).toFixed(0).padStart(7)} commits/s   p50 ${pct(lat, 50).toFixed(2)} ms   p99 ${pct(lat, 99).toFixed(2)} ms   (${ok} ok, ${failed} failed, ${CONCURRENCY} writers)`);
}

const token = await register();
const mk = async () => (await call('POST', '/api/rooms', token, { name: 'bench', language: 'plaintext' })).json.room.id;
const one = [await mk()];
const many = [];
for (let i = 0; i < 100; i++) many.push(await mk());
await run('operations, 1 room', one, token);
await run('operations, 100 rooms', many, token);
