// End-to-end: direct streams (docs/CLIENT.md, "Direct streams"). The page learns where the
// broker takes streams itself (GET /api/streams) and opens its room's stream there, by the
// shared worker and by each transport of its own (?transport=sse, ws, poll); where that
// origin cannot be reached (a closed port) or the page's policy forbids it (a front door
// whose CSP does not name it), the room connects through the front door all the same. In
// every case two people see each other's edits, and `.room[data-stream-route]` says which
// way the stream went.
//
// Every test here needs the direct-streams API (STREAM_ORIGIN, GET /api/streams; make run's
// default is STREAM_ORIGIN=auto): each first checks that the front door it uses names the
// origin it was started with, and fails saying so on a tree without that API. The direct
// route itself needs the broker to answer cross-origin requests (CORS): without that, the
// "direct" checks fail with the route "front".
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person } from '../lib/browser.mjs';
import { converged, editorText, waitForEditor } from '../lib/app.mjs';
import { startFrontDoor } from '../lib/door.mjs';
import { waitFor } from '../lib/procs.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
const KINDS = ['shared', 'sse', 'ws', 'poll'];
const CLOSED = 'http://127.0.0.1:1'; // nothing listens on port 1
const NEEDS_API = 'needs the direct-streams API (GET /api/streams, STREAM_ORIGIN)';

let browser;
const doors = [];

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  for (const d of doors) await d.stop();
});

async function door(env, csp, broker) {
  const d = await startFrontDoor({ env, csp, broker });
  doors.push(d);
  return d;
}

// What the front door at `base` names as the stream origin; fails unless it has the API.
async function streamOrigin(base) {
  const r = await fetch(`${base}/api/streams`);
  assert.equal(r.status, 200, `GET /api/streams answered ${r.status}: this test ${NEEDS_API}`);
  const j = await r.json();
  assert.ok(j && 'origin' in j, `GET /api/streams: ${JSON.stringify(j)}`);
  return j.origin;
}

async function call(base, method, path, token, body) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await r.json().catch(() => null);
  return { status: r.status, json };
}

let n = 0;
async function user(base, prefix) {
  const username = `${prefix}${Date.now().toString(36).slice(-5)}${(n++).toString(36)}`;
  const r = await call(base, 'POST', '/api/auth/register', undefined, { username, password: 'correct horse battery' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

// A signed-in person's page in the room, on the given transport ('shared': the default).
async function enter(base, who, roomId, kind) {
  const p = await person(browser, base);
  p.streamUrls = [];
  p.failedUrls = [];
  const note = (u) => { if (u.includes('/events/')) p.streamUrls.push(u); };
  p.context.on('request', (r) => note(r.url()));
  p.context.on('requestfailed', (r) => { if (r.url().includes('/events/')) p.failedUrls.push(r.url()); });
  p.page.on('websocket', (ws) => note(ws.url()));
  // signed in (the session in the site's storage) before the app reads it
  await p.context.addInitScript(({ token, u }) => {
    localStorage.setItem('cc.token', token);
    localStorage.setItem('cc.user', JSON.stringify(u));
  }, { token: who.token, u: who.user });
  await p.page.goto(kind === 'shared' ? `/r/${roomId}` : `/r/${roomId}?transport=${kind}`);
  await waitForEditor(p.page);
  return p;
}

// Two people in one room at `base`, both connected.
async function pair(base, kind) {
  const ann = await user(base, 'dann');
  const bob = await user(base, 'dbob');
  const made = await call(base, 'POST', '/api/rooms', ann.token, { name: `direct ${kind}`, language: 'python' });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const { room } = made.json;
  const joined = await call(base, 'POST', `/api/rooms/${room.id}/join`, bob.token, { invite: room.invite });
  assert.equal(joined.status, 200, JSON.stringify(joined.json));
  // the two pages load and connect side by side (each its own context, own route and
  // shared worker): nothing here depends on who came first
  const [A, B] = await Promise.all([enter(base, ann, room.id, kind), enter(base, bob, room.id, kind)]);
  return { A, B, roomId: room.id };
}

const route = (p) => p.page.getAttribute('.room', 'data-stream-route');

// Each types a line; each sees the other's; both end with the server's text.
async function editsFlow(base, { A, B, roomId }, tag) {
  await A.page.click('[data-role="editor"] .cm-content');
  await A.page.keyboard.type(`# ann ${tag}`);
  await waitFor(async () => (await editorText(B.page)).includes(`# ann ${tag}`), { timeout: 10000, what: "ann's line in bob's editor" });
  await B.page.click('[data-role="editor"] .cm-content');
  await B.page.keyboard.press('Control+End');
  await B.page.keyboard.type(`\n# bob ${tag}`);
  await waitFor(async () => (await editorText(A.page)).includes(`# bob ${tag}`), { timeout: 10000, what: "bob's line in ann's editor" });
  const doc = await converged(base, [A.page, B.page], roomId);
  assert.equal(doc.content, `# ann ${tag}\n# bob ${tag}`);
}

// Console errors other than the browser reporting the refused or forbidden connections to
// `origin` (its own log lines, which no page can silence).
function problems(people, origin) {
  const host = origin ? new URL(origin).host : null;
  return people.flatMap((p) => p.problems).filter((m) => !(host && m.includes(host)));
}

async function close(...people) {
  for (const p of people) await p.context.close();
}

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
    const p = await person(browser, BASE);
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
