// A Redis host name in REDIS_URL is looked up within the Redis bound (lib/resolve.c, used by
// rds_connect for the API, the worker and the snapshotter): glibc's getaddrinfo alone would
// hold a request for as long as resolv.conf lets it (here 2 attempts x 5 s on a nameserver
// that never answers). Real parts: a PostgreSQL with the schema, a redis-server, the API run
// as CGI in a mount namespace of its own whose resolv.conf names only a nameserver of this
// test (tests/lib/dns-double.mjs) and whose hosts file maps redis-test.invalid.
// Needs root (mount namespaces, port 53); skipped with the reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { snapshotterGround, clientOf } from '../lib/snapshotter-ground.mjs';
import { deadDns, namespaced, namespaceSkip as skip } from '../lib/dns-double.mjs';

const ground = skip ? null : await snapshotterGround('api-dns-test-secret-0123456789abcdefgh');
const room = skip ? null : clientOf(ground, 'dnsuser').roomOf({});
const { cgiAsync } = await import('../lib/api.mjs');

// GET /api/auth/me (a session check in Redis first) by the API with REDIS_URL naming host,
// its resolv.conf naming only dns; {status, json, stderr, ms}.
async function me(host, dns) {
  const t0 = Date.now();
  const r = await cgiAsync({
    method: 'GET', uri: '/api/auth/me', token: room.token,
    env: { ...ground.base, REDIS_URL: `redis://${host}:${ground.redisSrv.port}` },
  }, { timeoutMs: 40000, wrap: (argv) => namespaced(argv, { dns }) });
  return { ...r, ms: Date.now() - t0 };
}

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
    assert.match(r.stderr, /redis\.internal:\d+: the name redis\.internal was not resolved within 2000 ms/);
    assert.ok(dns.queries.includes('redis.internal'), `queries: ${dns.queries.join(', ')}`);
  } finally {
    dns.close();
  }
});

test('a Redis name the DNS answers late, and one from /etc/hosts: the request is served', { skip }, async () => {
  const dns = await deadDns({ answers: { 'redis-slow.test': '127.0.0.1' }, delayMs: 300 });
  try {
    const slow = await me('redis-slow.test', dns);
    assert.equal(slow.status, 200, `${slow.body}\n${slow.stderr}`);
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
