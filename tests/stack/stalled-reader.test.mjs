// A stream's client that stops reading, through lighttpd (lighttpd.conf, /events/): once
// the broker's events have filled every buffer on the way, lighttpd lets the connection go
// after server.max-write-idle (run/stream-idle.conf, scripts/stream-idle.sh) instead of
// keeping it, and what it still held for the client, for an hour. Here on a second front
// door with that bound at 3 s; the bound run.sh derives from the broker's settings is
// checked on its own below.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { call, createRoom, newUser } from '../lib/api.mjs';
import { startFrontDoor } from '../lib/door.mjs';
import { ROOT, waitFor } from '../lib/procs.mjs';

// lighttpd's end of the connection from our port `local` to its port `port`, if established
const established = (port, local) => execFileSync('ss',
  ['-tnH', 'state', 'established', `( sport = :${port} and dport = :${local} )`], { encoding: 'utf8' }).trim();

test('lighttpd lets a stream client that takes no bytes go after server.max-write-idle', async (t) => {
  const door = await startFrontDoor({ streamIdleS: 3 });
  t.after(() => door.stop());
  const port = Number(new URL(door.base).port);
  const a = await newUser();
  const room = await createRoom(a.token);
  const tk = await call('POST', `/api/rooms/${room.id}/stream-ticket`, { token: a.token });
  assert.equal(tk.status, 200, tk.text);
  const sock = net.connect(port, '127.0.0.1');
  t.after(() => sock.destroy());
  let head = '';
  await new Promise((resolve, reject) => {
    sock.on('error', reject);
    sock.on('data', (d) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) resolve();
    });
    sock.write(`GET /events/rooms/${room.id}?ticket=${encodeURIComponent(tk.json.ticket)} HTTP/1.1\r\n`
      + `Host: 127.0.0.1:${port}\r\n\r\n`);
  });
  assert.match(head, /^HTTP\/1\.1 200/, head.slice(0, 200));
  sock.removeAllListeners('data');
  sock.pause(); // and never reads again
  sock.on('error', () => {});
  assert.ok(established(port, sock.localPort), 'the stream is open at lighttpd');
  // about 20 MB of events: more than the kernel's buffers on both sides, lighttpd's own and
  // the broker's bound for one stream (which then drops it as a slow reader) hold together
  const big = 'x'.repeat(500000);
  for (let rev = 0; rev < 80; rev += 2) {
    const ins = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision: rev, ops: [big] } });
    assert.equal(ins.status, 200, ins.text);
    const del = await call('POST', `/api/rooms/${room.id}/operations`, { token: a.token, body: { revision: rev + 1, ops: [-big.length] } });
    assert.equal(del.status, 200, del.text);
  }
  // lighttpd's writes to us stopped once the buffers were full; 3 s on it closes its end
  await waitFor(() => !established(port, sock.localPort),
    { what: 'lighttpd to close the stalled stream', timeout: 30000, interval: 250 });
});

// scripts/stream-idle.sh: 120 s, or twice the broker's longest silence and 2 s when longer
test('the hold run.sh gives lighttpd outlasts the broker\'s heartbeat and long-poll wait', () => {
  const idle = (env) => {
    const r = spawnSync('bash', ['-c', '. "$1"; stream_idle_s', 'bash', join(ROOT, 'scripts', 'stream-idle.sh')],
      { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  assert.equal(idle({}), 120);
  assert.equal(idle({ BROKER_HEARTBEAT_MS: '15000', BROKER_POLL_TIMEOUT_MS: '25000' }), 120);
  assert.equal(idle({ BROKER_HEARTBEAT_MS: '90000' }), 182);
  assert.equal(idle({ BROKER_POLL_TIMEOUT_MS: '100001' }), 204);
  assert.equal(idle({ BROKER_HEARTBEAT_MS: '3600000', BROKER_POLL_TIMEOUT_MS: '60000' }), 7202);
  // a value the broker refuses (it then does not start) changes nothing here
  assert.equal(idle({ BROKER_HEARTBEAT_MS: 'soon', BROKER_POLL_TIMEOUT_MS: '-5' }), 120);
  assert.equal(idle({ BROKER_HEARTBEAT_MS: '0090000' }), 182);
});
