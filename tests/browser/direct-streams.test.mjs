// End-to-end: direct streams (docs/CLIENT.md, "Direct streams"). The page learns where the
// broker takes streams itself (GET /api/streams) and opens its room's stream there, by the
// shared worker and by each transport of its own (?transport=sse, ws, poll); where that
// origin cannot be reached (a closed port), the room connects through the front door all
// the same. In every case two people see each other's edits, and
// `.room[data-stream-route]` says which way the stream went. The other ways a stream falls
// back, and a broker restart under direct streams: tests/browser/direct-fallback.test.mjs.
//
// Every test here needs the direct-streams API (STREAM_ORIGIN, GET /api/streams; make run's
// default is STREAM_ORIGIN=auto): each first checks that the front door it uses names the
// origin it was started with, and fails saying so on a tree without that API. The direct
// route itself needs the broker to answer cross-origin requests (CORS): without that, the
// "direct" checks fail with the route "front".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, CLOSED, KINDS, NEEDS_API, close, door, editsFlow, pair, problems, route, streamOrigin, useBrowser } from '../lib/direct.mjs';

useBrowser();

for (const kind of KINDS) {
  test(`[${NEEDS_API}] make run's stack (STREAM_ORIGIN=auto): the ${kind} stream goes straight to the broker, edits flow`, async () => {
    const origin = await streamOrigin(BASE);
    const broker = new URL(BASE);
    broker.port = process.env.BROKER_PORT || '';
    assert.equal(origin, broker.origin, 'the stack names the broker\'s own origin');
    const two = await pair(BASE, kind);
    try {
      for (const p of [two.A, two.B]) {
        assert.equal(await route(p), 'direct');
        assert.equal(await p.page.getAttribute('.room', 'data-transport'), kind);
      }
      await editsFlow(BASE, two, kind);
      // what the browser asked for (the page's own requests; the shared worker's, where
      // the browser reports them): the room's stream at the broker, none at the front door
      if (kind !== 'shared') {
        for (const p of [two.A, two.B]) {
          assert.ok(p.streamUrls.some((u) => u.includes(new URL(origin).host)), `streams at ${origin}: ${p.streamUrls}`);
          assert.deepEqual(p.streamUrls.filter((u) => new URL(u).host === new URL(BASE).host), [], 'no stream through the front door');
        }
      }
      assert.deepEqual(problems([two.A, two.B]), [], 'no console errors, exceptions or CSP violations');
    } finally {
      await close(two.A, two.B);
    }
  });
}

for (const kind of KINDS) {
  test(`[${NEEDS_API}] STREAM_ORIGIN at a closed port: the ${kind} stream falls back to the front door, edits flow`, async () => {
    const d = await door({ STREAM_ORIGIN: CLOSED }, 'stream-origin');
    assert.equal(await streamOrigin(d.base), CLOSED, 'the front door names the closed origin');
    const two = await pair(d.base, kind);
    try {
      for (const p of [two.A, two.B]) {
        assert.equal(await route(p), 'front');
        // the failure was the route's, not the transport's: SSE stays SSE
        assert.equal(await p.page.getAttribute('.room', 'data-transport'), kind);
        assert.equal(await p.page.getAttribute('[data-role="connection"]', 'data-state'), 'connected');
      }
      await editsFlow(d.base, two, kind);
      if (kind !== 'shared') {
        for (const p of [two.A, two.B]) {
          assert.ok(p.streamUrls.some((u) => u.startsWith(`${CLOSED.replace(/^http/, kind === 'ws' ? 'ws' : 'http')}/`)),
            `the closed origin was tried first: ${p.streamUrls}`);
          assert.ok(p.streamUrls.some((u) => new URL(u).host === new URL(d.base).host), 'then the front door');
        }
      }
      assert.deepEqual(problems([two.A, two.B], CLOSED), [], 'no console errors but the refused connections');
    } finally {
      await close(two.A, two.B);
    }
  });
}
