// Broker fan-out: one room, N SSE subscribers straight on the broker (release build), M
// events 50 ms apart; latency from emit to receipt (p50/p99 over every delivery) and the
// broker's resident memory per connection. The load generator shares the machine's cores
// with the broker and Redis: figures are for comparing runs made side by side.
//   node bench/broker_fanout.mjs [N ...]      (default 100 1000 10000)
//   BENCH_EVENTS (default 40), BROKER_BIN (default build/release/bin/codecollab-broker)
import { createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

// procs.mjs reads BROKER_BIN when it loads: set it first, then import
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
process.env.BROKER_BIN ||= join(ROOT, 'build/release/bin/codecollab-broker');
const procs = await import('../tests/lib/procs.mjs');
const { startRedis, startBroker, stop, sleep, rssKiB, waitFor } = procs;
const { connectRedis } = await import('../tests/lib/resp.mjs');
const { ticket } = await import('../tests/lib/tokens.mjs');

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const counts = sizes.length ? sizes : [100, 1000, 10000];
const M = Number(process.env.BENCH_EVENTS || 40);
const secret = randomBytes(24).toString('hex');
const now = () => performance.timeOrigin + performance.now();

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(n) {
  const redis = await startRedis();
  const rc = await connectRedis(redis.port);
  const broker = await startBroker({
    redisPort: redis.port, secret,
    // every subscriber is user 1: BROKER_MAX_STREAMS_PER_USER (64 by default) must hold them all
    env: { BROKER_MAX_CLIENTS: String(n + 100), BROKER_MAX_STREAMS_PER_USER: String(n + 100), BROKER_HEARTBEAT_MS: '15000' },
  });
  const room = `bench${n}`;
  // a room as the API leaves it: the broker asks every stream's rights, and a room without
  // its visibility is no room (404)
  await rc.cmd('SET', `cc:room:{${room}}:visibility`, 'public');
  const t = ticket(secret, { room, user: 1, name: 'bench' });
  await sleep(200);
  const rss0 = rssKiB(broker.pid);
  const lat = [];
  let deliveries = 0;
  const socks = [];
  // connect in batches so the accept queue is not the thing measured
  for (let i = 0; i < n; i += 500) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 500); j++) {
      batch.push(new Promise((resolve, reject) => {
        const s = createConnection(broker.port, '127.0.0.1', () => {
          s.write(`GET /events/rooms/${room}?ticket=${t} HTTP/1.1\r\nHost: b\r\n\r\n`);
        });
        let ready = false;
        let head = '';
        s.setEncoding('latin1');
        // a refused stream (a 4xx or 503 and the close) fails the run instead of leaving it waiting
        s.on('close', () => { if (!ready) reject(new Error(`stream ${j} refused: ${head.slice(0, 200)}`)); });
        s.on('data', (d) => {
          if (!ready) head += d;
          if (!ready && d.includes(': connected')) { ready = true; resolve(); }
          const at = now();
          for (const m of d.matchAll(/"t":([0-9.]+)/g)) {
            lat.push(at - Number(m[1]));
            deliveries++;
          }
        });
        s.on('error', reject);
        socks.push(s);
      }));
    }
    await Promise.all(batch);
  }
  await sleep(500);
  const rss1 = rssKiB(broker.pid);
  for (let k = 0; k < M; k++) {
    await rc.emit(room, 'operation', `{"k":${k},"t":${now().toFixed(3)}}`);
    await sleep(50);
  }
  await waitFor(() => deliveries >= n * M, { timeout: 60000, what: 'all deliveries' }).catch(() => {});
  const rss2 = rssKiB(broker.pid);
  lat.sort((a, b) => a - b);
  const perConn = ((rss1 - rss0) * 1024) / n;
  console.log(`${String(n).padStart(6)} subscribers x ${M} events: ` +
    `delivered ${deliveries}/${n * M}, latency p50 ${pct(lat, 50).toFixed(2)} ms, ` +
    `p99 ${pct(lat, 99).toFixed(2)} ms, max ${lat.at(-1).toFixed(2)} ms; ` +
    `broker RSS ${(rss2 / 1024).toFixed(1)} MiB, ${(perConn / 1024).toFixed(1)} KiB per connection`);
  for (const s of socks) s.destroy();
  rc.close();
  await stop(broker);
  await stop(redis);
}

console.log(`broker fan-out (${process.env.BROKER_BIN}), events 50 ms apart, SSE directly on the broker`);
for (const n of counts) await run(n);
process.exit(0);
