// The browser client's checks on the stream origin the server names (htdocs/src/stream-origin.js,
// docs/CLIENT.md "Direct streams"): only a bare http(s) origin the page can use is taken;
// anything else (malformed, oversized, hostile, mixed content, the page's own origin) leaves
// the page on the front door. No browser and no stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { atOrigin, brokerAway, checkOrigin, eventsBase, wsOrigin } from '../../htdocs/src/stream-origin.js';

const PAGE = 'http://localhost:8080';

test('a bare http(s) origin is taken as its origin', () => {
  assert.equal(checkOrigin('http://localhost:8081', PAGE), 'http://localhost:8081');
  assert.equal(checkOrigin('http://127.0.0.1:8081', PAGE), 'http://127.0.0.1:8081');
  assert.equal(checkOrigin('http://[::1]:8081', PAGE), 'http://[::1]:8081');
  assert.equal(checkOrigin('https://streams.example.com', PAGE), 'https://streams.example.com');
  assert.equal(checkOrigin('https://streams.example.com/', PAGE), 'https://streams.example.com', 'a bare slash is no path');
  assert.equal(checkOrigin('HTTP://Streams.Example.com:8081', PAGE), 'http://streams.example.com:8081');
  assert.equal(checkOrigin('https://s.example.com:443', 'https://example.com'), 'https://s.example.com', 'the default port');
});

test('nothing, malformed, oversized and hostile values leave the front door', () => {
  const bad = [
    undefined, null, 0, 8081, true, {}, [], ['http://localhost:8081'], { origin: 'http://localhost:8081' },
    '', ' ', 'null', 'localhost:8081', '//localhost:8081', 'http:/localhost:8081', 'http://', 'http://:8081',
    'ftp://localhost:8081', 'ws://localhost:8081', 'wss://localhost:8081', 'file:///etc/passwd',
    'javascript:alert(1)', 'data:text/html,<script>alert(1)</script>', 'blob:http://localhost:8081/x',
    'http://localhost:8081/events', 'http://localhost:8081/?x=1', 'http://localhost:8081#x',
    'http://localhost:8081?', 'http://user:pw@localhost:8081', 'http://user@localhost:8081',
    'http://evil.example@localhost:8081', 'http://localhost:99999', 'http://localhost:-1',
    'http://local host:8081', 'http://localhost:8081\n', ' http://localhost:8081', 'http://localhost:8081 ',
    'http://localhost:8081\\events', 'http://localhost\u0000:8081', '"><script>alert(1)</script>',
    `http://${'a'.repeat(300)}.example.com`, `http://${'a.'.repeat(1e5)}com`,
  ];
  for (const v of bad) assert.equal(checkOrigin(v, PAGE), null, JSON.stringify(v)?.slice(0, 80));
});

test('an origin the page cannot or need not use is not taken', () => {
  // plain http under an https page: the browser would refuse it (mixed content)
  assert.equal(checkOrigin('http://streams.example.com:8081', 'https://example.com'), null);
  assert.equal(checkOrigin('https://streams.example.com:8443', 'https://example.com'), 'https://streams.example.com:8443');
  // the page's own origin is the front door itself
  assert.equal(checkOrigin('http://localhost:8080', PAGE), null);
  assert.equal(checkOrigin('http://localhost:8080/', PAGE), null);
  // no page origin to compare with (a worker that cannot tell): only the value's own checks
  assert.equal(checkOrigin('http://localhost:8081', 'not a url'), 'http://localhost:8081');
});

test('stream addresses at the origin, or on the front door', () => {
  assert.equal(eventsBase(null, 'k3v9x0q2ab'), '/events/rooms/k3v9x0q2ab');
  assert.equal(eventsBase('http://localhost:8081', 'k3v9x0q2ab'), 'http://localhost:8081/events/rooms/k3v9x0q2ab');
  assert.equal(eventsBase(null, 'a/b?c'), '/events/rooms/a%2Fb%3Fc');
  const page = { protocol: 'https:', host: 'example.com' };
  assert.equal(wsOrigin(null, page), 'wss://example.com');
  assert.equal(wsOrigin(null, { protocol: 'http:', host: 'localhost:8080' }), 'ws://localhost:8080');
  assert.equal(wsOrigin('http://localhost:8081', page), 'ws://localhost:8081');
  assert.equal(wsOrigin('https://streams.example.com', page), 'wss://streams.example.com');
  assert.equal(wsOrigin('http://[::1]:8081', page), 'ws://[::1]:8081');
});

test('an address is at the origin whatever its scheme (a CSP report names ws: for http:)', () => {
  assert.ok(atOrigin('http://localhost:8081/events/rooms/x?ticket=t', 'http://localhost:8081'));
  assert.ok(atOrigin('ws://localhost:8081/events/rooms/x/ws', 'http://localhost:8081'));
  assert.ok(atOrigin('wss://s.example.com/events/multi', 'https://s.example.com'));
  assert.ok(atOrigin('https://s.example.com:443/x', 'https://s.example.com'));
  assert.ok(!atOrigin('http://localhost:8080/events/rooms/x', 'http://localhost:8081'));
  assert.ok(!atOrigin('http://evil.example:8081/', 'http://localhost:8081'));
  assert.ok(!atOrigin('ws://s.example.com/x', 'https://s.example.com'), 'port 80 is not 443');
  for (const junk of [undefined, null, '', 'inline', 'eval', 'self', 42]) assert.ok(!atOrigin(junk, 'http://localhost:8081'), String(junk));
  assert.ok(!atOrigin('http://localhost:8081/', null));
});

test('the broker is away when the front door\'s proxy says so, or nothing answers', async () => {
  const answering = (status) => async (url, init) => {
    assert.equal(url, '/events/health');
    assert.equal(init.cache, 'no-store');
    return { status };
  };
  for (const status of [502, 503, 504]) assert.equal(await brokerAway(answering(status)), true, String(status));
  assert.equal(await brokerAway(async () => { throw new TypeError('Failed to fetch'); }), true, 'no answer');
  // the broker answered, or a front door without the path: a direct failure is the route's
  for (const status of [200, 404, 500]) assert.equal(await brokerAway(answering(status)), false, String(status));
  // a broker that answers but has lost Redis fails the front door's streams too
  const health = (body) => async () => ({ status: 200, json: async () => body });
  assert.equal(await brokerAway(health({ status: 'degraded', redis: 'down', clients: 0 })), true, 'redis down');
  assert.equal(await brokerAway(health({ status: 'ok', redis: 'ok', clients: 3 })), false, 'redis ok');
  assert.equal(await brokerAway(async () => ({ status: 200, json: async () => { throw new SyntaxError('x'); } })), false, 'not JSON');
});
