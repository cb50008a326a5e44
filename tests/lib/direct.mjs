// What the direct-streams suites share (tests/browser/direct-streams.test.mjs: make run's
// stack and a stream origin that cannot be reached; tests/browser/direct-fallback.test.mjs:
// a page policy without the origin, a remembered fallback, a broker restart): people in a
// room, each in a browser context of their own, on a front door of the stack's or one a test
// starts (tests/lib/door.mjs), and what their pages show of the stream's route.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person } from './browser.mjs';
import { converged, editorText, waitForEditor } from './app.mjs';
import { startFrontDoor } from './door.mjs';
import { request } from './fetch.mjs';
import { waitFor } from './procs.mjs';

export const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';
export const KINDS = ['shared', 'sse', 'ws', 'poll'];
export const CLOSED = 'http://127.0.0.1:1'; // nothing listens on port 1
export const NEEDS_API = 'needs the direct-streams API (GET /api/streams, STREAM_ORIGIN)';

let browser;
const doors = [];

// The suite's browser, and the front doors its tests start, for the whole file: call once
// at the top of a suite.
export function useBrowser() {
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    if (browser) await browser.close();
    for (const d of doors) await d.stop();
  });
}

// A page of its own in the suite's browser (tests/lib/browser.mjs: person).
export const newPerson = (base) => person(browser, base);

export async function door(env, csp, broker) {
  const d = await startFrontDoor({ env, csp, broker });
  doors.push(d);
  return d;
}

// What the front door at `base` names as the stream origin; fails unless it has the API.
export async function streamOrigin(base) {
  const r = await fetch(`${base}/api/streams`);
  assert.equal(r.status, 200, `GET /api/streams answered ${r.status}: this test ${NEEDS_API}`);
  const j = await r.json();
  assert.ok(j && 'origin' in j, `GET /api/streams: ${JSON.stringify(j)}`);
  return j.origin;
}

export function call(base, method, path, token, body) {
  return request(base, method, path, { token, body });
}

let n = 0;
export async function user(base, prefix) {
  const username = `${prefix}${Date.now().toString(36).slice(-5)}${(n++).toString(36)}`;
  const r = await call(base, 'POST', '/api/auth/register', undefined, { username, password: 'correct horse battery' });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

// A signed-in person's page in the room, on the given transport ('shared': the default).
export async function enter(base, who, roomId, kind) {
  const p = await newPerson(base);
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
export async function pair(base, kind) {
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

export const route = (p) => p.page.getAttribute('.room', 'data-stream-route');

// Each types a line; each sees the other's; both end with the server's text.
export async function editsFlow(base, { A, B, roomId }, tag) {
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
export function problems(people, origin) {
  const host = origin ? new URL(origin).host : null;
  return people.flatMap((p) => p.problems).filter((m) => !(host && m.includes(host)));
}

export async function close(...people) {
  for (const p of people) await p.context.close();
}

