// The broker's resident memory per idle SSE stream, straight on its port (release build):
// N streams of one public room are opened 200 at a time, as browsers arriving together
// would, and held without events; the broker's RSS before and after gives the cost of one.
//   node bench/broker_idle_rss.mjs [N ...]      (default 1000 5000)
//   BROKER_BIN (default build/release/bin/codecollab-broker)
//   BENCH_RSS_USERS=distinct: every stream has a user of its own, so each arrival is a
//     `join` that goes to every stream already there (a room people walk into), not one
//     user's many streams (the default)
import { createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

// procs.mjs reads BROKER_BIN when it loads: set it first, then import
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
process.env.BROKER_BIN ||= join(ROOT, 'build/release/bin/codecollab-broker');
const { startRedis, startBroker, stop, sleep, rssKiB, waitFor } = await import('../tests/lib/procs.mjs');
const { connectRedis } = await import('../tests/lib/resp.mjs');
const { ticket } = await import('../tests/lib/tokens.mjs');

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const counts = sizes.length ? sizes : [1000, 5000];
const BATCH = 200;
const secret = randomBytes(24).toString('hex');

function open(port, path) {
  return new Promise((resolve, reject) => {
    const s = createConnection(port, '127.0.0.1', () => {
      // the head a browser's EventSource sends is about this size
      s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n` +
        'Cache-Control: no-cache\r\nOrigin: http://127.0.0.1:8080\r\n' +
        'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n' +
        'Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n');
    });
    let got = '', live = false;
    s.setEncoding('latin1');
    s.on('data', (d) => {
      if (live) return; // read and dropped (the joins of those who come later)
      got += d;
      if (got.includes(': connected')) { got = ''; live = true; resolve(s); }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed: ${got.slice(0, 200)}`)));
  });
}

async function run(n) {
  const redis = await startRedis();
  const rc = await connectRedis(redis.port);
  const broker = await startBroker({
    redisPort: redis.port, secret,
    // by default every stream is user 1: BROKER_MAX_STREAMS_PER_USER (64 by default) must hold them all
    env: {
      BROKER_MAX_CLIENTS: String(n + 100), BROKER_MAX_STREAMS: String(n + 100),
      BROKER_MAX_STREAMS_PER_USER: String(n + 100), BROKER_HEARTBEAT_MS: '600000',
      BROKER_WS_TIMEOUT_MS: '1200000', // at least twice the heartbeat, or the broker refuses to start
    },
  });
  const room = `idle${n}`;
  await rc.cmd('SET', `cc:room:{${room}}:visibility`, 'public');
  const distinct = process.env.BENCH_RSS_USERS === 'distinct';
  const pathOf = (i) => `/events/rooms/${room}?ticket=${ticket(secret, { room, user: distinct ? i + 1 : 1, name: distinct ? `idle${i + 1}` : 'idle', ttl: 3600 })}`;
  const path = pathOf(0);
  const rssStart = rssKiB(broker.pid);
  // one stream first, so the room's subscription and the loop's tables are in the baseline
  const first = await open(broker.port, path);
  await sleep(300);
  const rss0 = rssKiB(broker.pid);
  const socks = [];
  for (let i = 1; i < n; i += BATCH) {
    const k = Math.min(BATCH, n - i);
    socks.push(...(await Promise.all(Array.from({ length: k }, (_, j) => open(broker.port, pathOf(i + j))))));
  }
  await waitFor(async () => (await (await fetch(`${broker.base}/events/health`)).json()).clients >= n,
    { what: 'every stream open' });
  await sleep(500);
  const rss1 = rssKiB(broker.pid);
  const per = ((rss1 - rss0) * 1024) / (n - 1);
  console.log(`(from before the first stream: ${((rss1 - rssStart) / n).toFixed(2)} KiB per stream)`);
  console.log(`N=${n}${distinct ? ', a user each' : ''}: broker RSS ${(rss0 / 1024).toFixed(1)} -> ${(rss1 / 1024).toFixed(1)} MiB, ` +
    `${(per / 1024).toFixed(2)} KiB per idle SSE stream`);
  for (const s of socks) s.destroy();
  first.destroy();
  rc.close();
  await stop(broker);
  await stop(redis);
}

for (const n of counts) await run(n);
