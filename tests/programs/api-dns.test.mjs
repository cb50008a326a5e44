// Host names in REDIS_URL and DATABASE_URL are looked up within the connect bounds
// (lib/resolve.c, used by rds_connect and pg_open for the API, the worker and the
// snapshotter): glibc's getaddrinfo alone, which hiredis and libpq call, would hold a request
// for as long as resolv.conf lets it (here 2 attempts x 5 s on a nameserver that never
// answers). Real parts: a PostgreSQL with the schema (reached over TCP through a relay of this
// test to its Unix socket: the test server listens on no TCP port), a redis-server, the API run
// as CGI in a mount namespace of its own whose resolv.conf names only a nameserver of this
// test (tests/lib/dns-double.mjs) and whose hosts file maps redis-test.invalid.
// Needs root (mount namespaces, port 53); skipped with the reason otherwise.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, createConnection } from 'node:net';
import { join } from 'node:path';

import { ROOT } from '../lib/procs.mjs';
import { snapshotterGround, clientOf } from '../lib/snapshotter-ground.mjs';
import { deadDns, namespaced, namespaceSkip as skip } from '../lib/dns-double.mjs';

const ground = skip ? null : await snapshotterGround('api-dns-test-secret-0123456789abcdefgh');
const room = skip ? null : clientOf(ground, 'dnsuser').roomOf({});
const { cgiAsync } = await import('../lib/api.mjs');

// TCP on 127.0.0.1 relayed to the test PostgreSQL's Unix socket.
const relay = skip ? null : await new Promise((resolve) => {
  const sock = join(ground.pg.sockDir, `.s.PGSQL.${ground.pg.port}`);
  const srv = createServer((c) => {
    const u = createConnection(sock);
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  srv.listen(0, '127.0.0.1', () => resolve(srv));
});
after(() => relay?.close());

// A request by the API with `env` over the ground's, its resolv.conf naming only dns;
// {status, json, stderr, ms}.
async function request(req, env, dns) {
  const t0 = Date.now();
  const r = await cgiAsync({ ...req, env: { ...ground.base, ...env } },
    { timeoutMs: 40000, wrap: (argv) => namespaced(argv, { dns }) });
  return { ...r, ms: Date.now() - t0 };
}
// GET /api/auth/me (a session check in Redis first) with REDIS_URL naming host
const me = (host, dns) => request({ method: 'GET', uri: '/api/auth/me', token: room.token },
  { REDIS_URL: `redis://${host}:${ground.redisSrv.port}` }, dns);
// GET /api/rooms/{id} (the room's row in PostgreSQL) with DATABASE_URL naming hosts, each
// "name" or "name:port" (the relay's port when none)
const roomAt = (hosts, dns) => request({ method: 'GET', uri: `/api/rooms/${room.id}`, token: room.token },
  { DATABASE_URL: `postgresql://postgres@${hosts.map((h) => (h.includes(':') ? h : `${h}:${relay.address().port}`)).join(',')}/codecollab` }, dns);

test('a Redis name the DNS never answers: 503 redis_unavailable within the Redis bound, saying which name', { skip }, async () => {
  const dns = await deadDns();
  try {
    const r = await me('redis.internal', dns);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.status, 503, r.body);
    assert.equal(r.json.error, 'redis_unavailable', r.body);
    // the bound is the API's 2 s Redis timeout (about 2.0 s here); glibc's own wait is 10 s
    // a lookup, and the old code answered after 20 s
    assert.ok(r.ms < 5000, `answered after ${r.ms} ms`);
    assert.match(r.stderr, /redis: the name redis\.internal was not resolved within 2000 ms/);
    assert.ok(dns.queries.includes('redis.internal'), `queries: ${dns.queries.join(', ')}`);
  } finally {
    dns.close();
  }
});

test('a Redis name the DNS answers late, and one from /etc/hosts: the request is served', { skip }, async () => {
  // each name answered once: a second lookup of it (hiredis's own, were the address not
  // handed to it) would wait 10 s
  const dns = await deadDns({ answers: { 'redis-slow.test': '127.0.0.1' }, delayMs: 300, once: true });
  try {
    const slow = await me('redis-slow.test', dns);
    assert.equal(slow.status, 200, `${slow.body}\n${slow.stderr}`);
    assert.ok(slow.ms < 5000, `answered after ${slow.ms} ms`);
    assert.equal(slow.json.user.username, 'dnsuser1');
    assert.ok(dns.queries.includes('redis-slow.test'), `queries: ${dns.queries.join(', ')}`);
    const hosts = await me('redis-test.invalid', dns);
    assert.equal(hosts.status, 200, `${hosts.body}\n${hosts.stderr}`);
    assert.ok(!dns.queries.includes('redis-test.invalid'), `the hosts file's name went to the DNS: ${dns.queries.join(', ')}`);
    // an address is used as it is, whatever the DNS does
    const numeric = await me('127.0.0.1', dns);
    assert.equal(numeric.status, 200, `${numeric.body}\n${numeric.stderr}`);
  } finally {
    dns.close();
  }
});

test('a PostgreSQL name the DNS never answers: 503 database_unavailable within the connect bound; a late name, a hosts-file name, and a list with a dead name in it are served', { skip }, async () => {
  // each name answered once: a second lookup (libpq's own, were the address not handed to
  // it) would wait 10 s
  const dns = await deadDns({ answers: { 'pg-slow.test': '127.0.0.1', 'pg-slow2.test': '127.0.0.1' }, delayMs: 300, once: true });
  try {
    const dead = await roomAt(['pg.internal'], dns);
    assert.equal(dead.code, 0, dead.stderr);
    assert.equal(dead.status, 503, dead.body);
    assert.equal(dead.json.error, 'database_unavailable', dead.body);
    // the bound is the connect timeout, 3 s; libpq's own lookup waited 10 s per attempt
    assert.ok(dead.ms < 6000, `answered after ${dead.ms} ms`);
    assert.match(dead.stderr, /postgres: the name pg\.internal was not resolved within 3000 ms/);
    assert.doesNotMatch(dead.stderr, /left out/, 'one host alone is not "left out"');
    assert.ok(dns.queries.includes('pg.internal'), `queries: ${dns.queries.join(', ')}`);
    for (const hosts of [['pg-slow.test'], ['redis-test.invalid'], ['127.0.0.1']]) {
      const r = await roomAt(hosts, dns);
      assert.equal(r.status, 200, `${hosts}: ${r.body}\n${r.stderr}`);
      assert.equal(r.json.room.id, room.id);
      assert.ok(r.ms < 5000, `${hosts}: answered after ${r.ms} ms`);
    }
    // a socket that is not there, then a name: the name is tried after it, by its address
    const port = relay.address().port;
    const mixed = await request({ method: 'GET', uri: `/api/rooms/${room.id}`, token: room.token },
      { DATABASE_URL: `postgresql://postgres@/codecollab?host=/nonexistent-dir,pg-slow2.test&port=${port},${port}` }, dns);
    assert.equal(mixed.status, 200, `${mixed.body}\n${mixed.stderr}`);
    assert.ok(mixed.ms < 5000, `answered after ${mixed.ms} ms`);
    // libpq names the address it was given; the log says which name that was
    const refused = await request({ method: 'GET', uri: `/api/rooms/${room.id}`, token: room.token },
      { DATABASE_URL: 'postgresql://postgres@redis-test.invalid:1/codecollab' }, dns);
    assert.equal(refused.status, 503, refused.body);
    assert.match(refused.stderr, /postgres: connection to server at "127\.0\.0\.1", port 1 failed: Connection refused[^]*\(hosts looked up: redis-test\.invalid = 127\.0\.0\.1\)/);
    assert.ok(!dns.queries.includes('redis-test.invalid'), `the hosts file's name went to the DNS: ${dns.queries.join(', ')}`);
    // with a list, the host that was not resolved is left out, saying so, and the next served
    const listed = await roomAt(['pg.internal', 'redis-test.invalid'], dns);
    assert.equal(listed.status, 200, `${listed.body}\n${listed.stderr}`);
    assert.match(listed.stderr, /postgres: the name pg\.internal was not resolved within \d+ ms; that host is left out/);
    assert.ok(listed.ms < 8000, `answered after ${listed.ms} ms`);
  } finally {
    dns.close();
  }
});

// glibc runs at most 20 lookups at once and queues the rest, names of /etc/hosts included:
// lookups given up on a silent nameserver are counted, and past RESOLVE_PENDING_MAX (16) a
// new name fails at once instead of queueing behind them (tests/unit/test_resolve.c, run here
// in the namespace with its `silent` argument).
test('lookups left waiting on a silent nameserver: past 16 a new name fails at once, saying so; addresses still work', { skip }, async () => {
  const dns = await deadDns();
  try {
    const bin = join(ROOT, 'build/asan/tests/unit/test_resolve');
    const [cmd, ...args] = namespaced([bin, 'silent'], { dns });
    // not spawnSync: this process's nameserver must go on reading meanwhile
    const r = await new Promise((resolve, reject) => {
      execFile(cmd, args, { encoding: 'utf8', timeout: 60000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } },
        (e, stdout, stderr) => (e && e.code === undefined ? reject(e) : resolve({ status: e ? e.code : 0, stdout, stderr })));
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /cannot resolve late\.silent\.test: 16 earlier lookups still wait on the nameserver/);
    assert.match(r.stdout, /^resolve \(silent nameserver\): \d+ passed, 0 failed$/m);
    assert.ok(dns.queries.includes('n0.silent.test'), `queries: ${dns.queries.join(', ')}`);
  } finally {
    dns.close();
  }
});
