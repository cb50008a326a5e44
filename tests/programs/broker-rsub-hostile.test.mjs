// The broker's sharded pub/sub connection (sse-broker/rsub.c) against a Redis that answers
// with nonsense: a fake server on a free port answers PING and AUTH like Redis, and every
// SSUBSCRIBE (the broker subscribes to cc:access as soon as it is connected) with one hostile
// reply after another. Each must only cost the broker that connection: it reconnects (with its
// back-off) and subscribes again, never crashes, never stops answering its clients, and exits
// cleanly (no sanitizer report) at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { freePort, startBroker, stop, waitFor } from '../lib/procs.mjs';

const bulk = (s) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const HOSTILE = [
  '?what\r\n',
  '$-5\r\n',
  ':42\r\n',
  '*0\r\n',
  '*-1\r\n',
  `*1\r\n${bulk('ssubscribe')}`,
  `*3\r\n:1\r\n${bulk('cc:access')}:1\r\n`,
  `*3\r\n${bulk('ssubscribe')}:5\r\n:1\r\n`,
  `*3\r\n${bulk('ssubscribe')}${bulk('cc:other')}:1\r\n`,
  `*3\r\n${bulk('ssubscribe')}${bulk('cc:access')}${bulk('1')}`,
  `*3\r\n${bulk('ssubscribe')}${bulk('cc:access')}:1\r\n*3\r\n${bulk('smessage')}${bulk('cc:access')}:7\r\n`,
  `*3\r\n${bulk('ssubscribe')}${bulk('cc:access')}:1\r\n*3\r\n${bulk('smessage')}${bulk('cc:access')}*1\r\n:7\r\n`,
  '*2147483647\r\n',
  '*1\r\n'.repeat(12) + ':1\r\n',
  '+OK\r\n+OK\r\n',
  '-ERR max number of clients reached\r\n-ERR and again\r\n',
  `*2\r\n${bulk('pong')}${bulk('')}`,
];

// Reads RESP commands (arrays of bulk strings) from a buffer: [commands, rest].
function commands(buf) {
  const out = [];
  let pos = 0;
  for (;;) {
    const start = pos;
    if (buf[pos] !== 0x2a) break; // '*'
    let eol = buf.indexOf('\r\n', pos);
    if (eol < 0) break;
    const n = Number(buf.toString('latin1', pos + 1, eol));
    pos = eol + 2;
    const args = [];
    let complete = true;
    for (let i = 0; i < n; i++) {
      eol = buf.indexOf('\r\n', pos);
      if (eol < 0) { complete = false; break; }
      const len = Number(buf.toString('latin1', pos + 1, eol));
      if (buf.length < eol + 2 + len + 2) { complete = false; break; }
      args.push(buf.toString('utf8', eol + 2, eol + 2 + len));
      pos = eol + 2 + len + 2;
    }
    if (!complete) { pos = start; break; }
    out.push(args);
  }
  return [out, buf.subarray(pos)];
}

test('hostile replies on the subscription connection cost only that connection', async () => {
  let next = 0;
  const subscribes = [];
  const sockets = new Set();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      let cmds;
      [cmds, buf] = commands(Buffer.concat([buf, d]));
      for (const c of cmds) {
        const name = c[0].toUpperCase();
        if (name === 'PING') sock.write('+PONG\r\n');
        else if (name === 'SSUBSCRIBE') {
          subscribes.push(c[1]);
          if (next < HOSTILE.length) sock.write(HOSTILE[next++]);
          else sock.write(`*3\r\n${bulk('ssubscribe')}${bulk(c[1])}:1\r\n`);
        } else if (name === 'EVALSHA' || name === 'EVAL') sock.write('-ERR not here\r\n');
        else sock.write('+OK\r\n');
      }
    });
  });
  // the server is closed whatever happens: left listening, it would hold the file open
  // until the runner's timeout
  let broker;
  try {
    const port = await freePort();
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    broker = await startBroker({
      redisPort: port,
      secret: randomBytes(24).toString('hex'),
      env: { BROKER_REDIS_BACKOFF_MAX_MS: '100', BROKER_HEARTBEAT_MS: '1000' },
    });
    // every hostile reply was sent, each on a connection of its own, then a good one taken
    await waitFor(() => subscribes.length > HOSTILE.length, { what: 'every hostile reply tried', timeout: 60000 });
    assert.ok(subscribes.every((ch) => ch === 'cc:access'));
    assert.equal(broker.exitCode, null, 'the broker is running');
    const h = await (await fetch(`${broker.base}/events/health`)).json();
    assert.equal(h.redis, 'ok');
    // one line per connection it gave up, naming why
    const lost = broker.output.split('\n').filter((l) => /redis: 127\.0\.0\.1:\d+ lost/.test(l));
    assert.ok(lost.length >= HOSTILE.length - 2, `${lost.length} connections given up:\n${broker.output}`);
  } finally {
    const r = broker && await stop(broker);
    for (const s of sockets) s.destroy();
    server.close();
    if (broker) {
      assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${broker.output}`);
      assert.doesNotMatch(broker.output, /AddressSanitizer|runtime error/);
    }
  }
});
