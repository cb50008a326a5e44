// End-to-end: direct streams that fall back to the front door and come back
// (docs/CLIENT.md, "Direct streams"): a page whose policy (CSP) does not name the stream
// origin connects through the front door; a tab that fell back remembers it for a while and
// goes straight to the front door after a reload, while a note that has run out, names
// another origin or is not a note is not followed; and when the broker restarts under
// direct streams they come back straight to it with nothing lost. The direct route itself
// and an origin that cannot be reached: tests/browser/direct-streams.test.mjs. Every test
// here needs the direct-streams API, as there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, CLOSED, KINDS, NEEDS_API, call, close, door, editsFlow, newPerson, pair, problems, route, streamOrigin,
  useBrowser, user } from '../lib/direct.mjs';
import { converged, waitForEditor } from '../lib/app.mjs';
import { waitFor } from '../lib/procs.mjs';

useBrowser();

for (const kind of KINDS) {
  test(`[${NEEDS_API}] a page policy without the stream origin (another site's CSP): the ${kind} stream falls back to the front door`, async () => {
    const d = await door({ STREAM_ORIGIN: 'auto' }, 'self');
    const origin = await streamOrigin(d.base);
    assert.equal(origin, `http://127.0.0.1:${process.env.BROKER_PORT}`, 'the front door names the broker');
    const csp = (await fetch(`${d.base}/`)).headers.get('content-security-policy');
    assert.match(csp, /connect-src 'self';/, 'the page may connect to its own origin only');
    const two = await pair(d.base, kind);
    try {
      for (const p of [two.A, two.B]) {
        assert.equal(await route(p), 'front');
        assert.equal(await p.page.getAttribute('.room', 'data-transport'), kind);
      }
      await editsFlow(d.base, two, kind);
      assert.deepEqual(problems([two.A, two.B], origin), [], 'no console errors but the refusals by the policy');
    } finally {
      await close(two.A, two.B);
    }
  });
}

for (const kind of ['shared', 'sse']) {
  test(`[${NEEDS_API}] a tab that fell back remembers it: after a reload its ${kind} stream takes the front door at once`, async () => {
    const d = await door({ STREAM_ORIGIN: CLOSED }, 'stream-origin');
    assert.equal(await streamOrigin(d.base), CLOSED, 'the front door names the closed origin');
    const two = await pair(d.base, kind);
    try {
      assert.equal(await route(two.A), 'front');
      const note = JSON.parse(await two.A.page.evaluate(() => sessionStorage.getItem('cc.streamFront')));
      assert.equal(note && note.origin, CLOSED, `the tab noted the origin it gave up: ${JSON.stringify(note)}`);
      const before = two.A.streamUrls.length;
      const failedBefore = two.A.failedUrls.length;
      await two.A.page.reload();
      await waitForEditor(two.A.page);
      await waitFor(async () => (await route(two.A)) === 'front', { timeout: 10000, what: 'the reloaded page on the front door' });
      assert.equal(await two.A.page.getAttribute('[data-role="connection"]', 'data-state'), 'connected');
      if (kind !== 'shared') {
        const after = two.A.streamUrls.slice(before);
        assert.ok(after.length > 0, 'the reloaded page opened a stream');
        assert.deepEqual(after.filter((u) => u.startsWith(`${CLOSED}/`)), [], 'no attempt at the closed origin after the reload');
        // (the old page's stream through the front door is cut by the reload itself)
        assert.deepEqual(two.A.failedUrls.slice(failedBefore).filter((u) => u.startsWith(`${CLOSED}/`)), [],
          'no failed request at the closed origin after the reload');
      }
      await editsFlow(d.base, two, `${kind} reloaded`);
    } finally {
      await close(two.A, two.B);
    }
  });
}

test(`[${NEEDS_API}] a note of a fallback that has run out, or names another origin, is not followed: the stream goes direct`, async () => {
  const origin = await streamOrigin(BASE);
  assert.ok(origin, 'make run\'s stack names an origin');
  const ann = await user(BASE, 'nann');
  const made = await call(BASE, 'POST', '/api/rooms', ann.token, { name: 'notes', language: 'python' });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  // each note in a page of its own, side by side
  await Promise.all([{ origin, until: Date.now() - 1000 }, { origin: CLOSED, until: Date.now() + 60000 },
    { origin, until: Date.now() + 24 * 3600 * 1000 }, 'not json'].map(async (note) => {
    const p = await newPerson(BASE);
    try {
      await p.context.addInitScript(({ token, u, n }) => {
        localStorage.setItem('cc.token', token);
        localStorage.setItem('cc.user', JSON.stringify(u));
        sessionStorage.setItem('cc.streamFront', typeof n === 'string' ? n : JSON.stringify(n));
      }, { token: ann.token, u: ann.user, n: note });
      await p.page.goto(`/r/${made.json.room.id}?transport=sse`);
      await waitForEditor(p.page);
      await waitFor(async () => (await route(p)) !== null, { timeout: 10000, what: 'a stream open' });
      assert.equal(await route(p), 'direct', `with the note ${JSON.stringify(note)}`);
    } finally {
      await p.context.close();
    }
  }));
});

for (const kind of ['shared', 'sse']) {
  test(`[${NEEDS_API}] the broker restarts under direct ${kind} streams: they come back straight to it, nothing lost`, async () => {
    const d = await door({ STREAM_ORIGIN: 'auto' }, 'stream-origin', 'own');
    const origin = `http://127.0.0.1:${d.brokerPort}`;
    assert.equal(await streamOrigin(d.base), origin, 'the front door names its broker');
    const two = await pair(d.base, kind);
    try {
      for (const p of [two.A, two.B]) assert.equal(await route(p), 'direct');
      await editsFlow(d.base, two, 'before');
      await d.killBroker();
      for (const p of [two.A, two.B]) {
        await p.page.waitForSelector('[data-role="connection"][data-state="reconnecting"]', { timeout: 15000 });
      }
      // typed while the broker is away: the operations reach the API meanwhile
      await two.A.page.keyboard.press('Control+Home');
      await two.A.page.keyboard.press('End');
      await two.A.page.keyboard.type(' away');
      // an outage long enough that several attempts at the origin fail meanwhile (more than
      // the two after which a route that fails alone is given up): counted where the browser
      // reports the page's requests (SSE); the shared worker's are not reported, so there the
      // outage lasts a fixed 4 s, enough for the worker's backoff to try several times
      const failedBefore = two.A.failedUrls.length;
      const tries = () => two.A.failedUrls.slice(failedBefore).filter((u) => u.startsWith(`${origin}/`));
      if (kind === 'sse') await waitFor(() => tries().length >= 3, { timeout: 15000, what: `3 failed attempts at ${origin}` });
      else await new Promise((r) => setTimeout(r, 4000));
      await d.startBroker();
      for (const p of [two.A, two.B]) {
        await p.page.waitForSelector('[data-role="connection"][data-state="connected"]', { timeout: 20000 });
        // a broker restart fails the front door's /events/ alike: not the direct route's fault
        assert.equal(await route(p), 'direct');
      }
      await two.B.page.keyboard.press('Control+End');
      await two.B.page.keyboard.type(' back');
      const doc = await converged(d.base, [two.A.page, two.B.page], two.roomId);
      assert.equal(doc.content, '# ann before away\n# bob before back');
      // the outage's own noise: the refused connections, the proxy's 502s for /events/health
      const outage = (m) => m.includes(new URL(origin).host) || /events\/health|status of 50[234]/.test(m);
      assert.deepEqual(problems([two.A, two.B]).filter((m) => !outage(m)), [], 'no console errors but the outage\'s');
    } finally {
      await close(two.A, two.B);
    }
  });
}
