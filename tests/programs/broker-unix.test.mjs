// The broker's Unix socket (BROKER_SOCKET), where make run's lighttpd proxies /events/ to it:
// against a real redis-server, a stream opened there is a stream like one on the TCP port
// (same answers, same events), a socket file left by an earlier broker is replaced, and a path
// the broker cannot use stops it at start with a message naming the variable.
// Run: node --test tests/programs/broker-unix.test.mjs (after make build-asan).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { randomBytes } from 'node:crypto';
import { writeFileSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { startRedis, startBroker, stop, start, waitFor, freePort, tempDir, BROKER_BIN } from '../lib/procs.mjs';
import { connectRedis } from '../lib/resp.mjs';
import { ticket } from '../lib/tokens.mjs';

const SECRET = randomBytes(24).toString('hex');
let redis, rc, dir;

before(async () => {
  redis = await startRedis();
  rc = await connectRedis(redis.port);
  dir = tempDir('cc-unix-');
});

after(async () => {
  rc?.close();
  if (redis) await stop(redis);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// One request over the Unix socket; resolves with the text read until `until` matches or the
// peer closes.
function unixRequest(path, request, until) {
  return new Promise((resolve, reject) => {
    let text = '';
    const s = createConnection({ path });
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer on ${path}; got ${JSON.stringify(text)}`)); }, 5000);
    s.on('connect', () => s.write(request));
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (until && until.test(text)) { clearTimeout(timer); s.destroy(); resolve(text); }
    });
    s.on('end', () => { clearTimeout(timer); resolve(text); });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

test('a stream on BROKER_SOCKET gets the room\'s events; a stale socket file is replaced', async () => {
  const sock = join(dir, 'broker.sock');
  // a broker that died leaves its socket file behind
  const first = await startBroker({ redisPort: redis.port, secret: SECRET, env: { BROKER_SOCKET: sock } });
  assert.ok(statSync(sock).isSocket());
  first.kill('SIGKILL');
  await first.exited;
  assert.ok(statSync(sock).isSocket(), 'the dead broker\'s socket file is still there');

  const broker = await startBroker({ redisPort: redis.port, secret: SECRET, env: { BROKER_SOCKET: sock } });
  try {
    assert.equal(statSync(sock).mode & 0o777, 0o666, 'the web server may run as another user');
    const room = `u${process.pid}`;
    await rc.cmd('SET', `cc:room:{${room}}:visibility`, 'public');
    const t = ticket(SECRET, { room, user: 7, name: 'unix' });

    // the events of the room: written to Redis the way the API does, read on the socket
    const got = unixRequest(sock, `GET /events/rooms/${room}?ticket=${t} HTTP/1.1\r\nHost: x\r\n\r\n`, /event: operation/);
    await waitFor(async () => {
      const h = await fetch(`${broker.base}/events/health`).then((r) => r.json());
      return h.clients >= 1;
    }, { what: 'the stream on the socket counted' });
    // emitted again until it arrives: a stream's head may leave before its room's
    // subscription is in place, and an event before that is not the stream's
    let seen = false;
    got.then(() => { seen = true; }, () => {});
    for (let i = 1; !seen && i <= 20; i++) {
      await rc.emit(room, 'operation', { revision: i, ops: ['x'] });
      await new Promise((r) => setTimeout(r, 200));
    }
    const text = await got;
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\ncontent-type: text\/event-stream/i);
    assert.match(text, /\r\naccess-control-allow-origin: \*/i);

    // an answer that is not a stream: the same as on the TCP port
    const bad = await unixRequest(sock, `GET /events/rooms/${room}?ticket=nonsense HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(bad, /^HTTP\/1\.1 401 /);
    assert.match(bad, /"error":"invalid_token"/);
    // and the TCP port still serves
    assert.equal((await fetch(`${broker.base}/events/health`)).status, 200);
  } finally {
    const r = await stop(broker);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${broker.output}`);
  }
});

test('a BROKER_SOCKET the broker cannot use stops it at start, naming it', async () => {
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'precious');
  const cases = [
    [file, /is not a socket/],
    ['/' + 'x'.repeat(200), /BROKER_SOCKET must be a path/],
    [join(dir, 'no-such-dir', 'b.sock'), /cannot listen on/],
  ];
  for (const [path, why] of cases) {
    const child = start(BROKER_BIN, [], {
      env: {
        ...process.env, BROKER_HOST: '127.0.0.1', BROKER_PORT: String(await freePort()),
        REDIS_URL: `redis://127.0.0.1:${redis.port}`, JWT_SECRET: SECRET, BROKER_SOCKET: path,
      },
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    const { code } = await child.exited;
    clearTimeout(timer);
    assert.notEqual(code, 0, `${path}: ${child.output}`);
    assert.match(child.output, why, path);
  }
  assert.equal(statSync(file).isFile(), true, 'a file that is not a socket is left alone');
});
