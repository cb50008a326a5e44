// End-to-end: the page counts its room's WebSocket stream as open at the broker's
// `subscribed` frame, not at the 101 (docs/API.md, "Streams"; docs/CLIENT.md). A stream that
// gives no event id carries only what comes after the broker has caught up, so an operation
// committed between the page's document read and that moment would be in neither: the page
// reads the document once the stream is live, and reads it again when it had to read it
// before (the stream was slow to become live).
//
// The test holds the page's WebSocket back from the broker (Playwright's routeWebSocket): the
// page has its socket, the broker has no stream yet. Another client commits an operation
// then; only after it does the stream reach the broker. A page that took the socket for a
// live stream read the document before the operation and never hears of it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, person } from '../lib/browser.mjs';
import { editorText, serverDocument, waitForEditor } from '../lib/app.mjs';
import { waitFor } from '../lib/procs.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

async function call(method, path, token, body) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${BASE}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => null) };
}

test('an operation committed before the WebSocket stream is live reaches the page', async () => {
  const username = `live${Date.now().toString(36).slice(-5)}`;
  const reg = await call('POST', '/api/auth/register', undefined, { username, password: 'correct horse battery' });
  assert.equal(reg.status, 201, JSON.stringify(reg.json));
  const { token, user } = reg.json;
  const made = await call('POST', '/api/rooms', token, { name: 'live marker', language: 'python' });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const roomId = made.json.room.id;
  const put = await call('PUT', `/api/rooms/${roomId}/document`, token, { content: 'before\n', base_revision: 0 });
  assert.equal(put.status, 200, JSON.stringify(put.json));

  const p = await person(browser, BASE);
  await p.context.addInitScript(({ t, u }) => {
    localStorage.setItem('cc.token', t);
    localStorage.setItem('cc.user', JSON.stringify(u));
  }, { t: token, u: user });
  // the page's WebSocket is taken by the test, and reaches the broker only when it says
  let release;
  const released = new Promise((r) => { release = r; });
  let sockets = 0;
  await p.page.routeWebSocket(/\/ws\?/, async (ws) => {
    sockets += 1;
    await released;
    ws.connectToServer();
  });
  const read = p.page.waitForResponse((r) => r.url().endsWith(`/api/rooms/${roomId}/document`) && r.request().method() === 'GET');
  await p.page.goto(`/r/${roomId}?transport=ws`);
  // the page has read the document (at once if the socket counted as open, else after its
  // wait for a live stream runs out), and its stream is not at the broker yet
  assert.equal((await (await read).json()).revision, 1);
  await p.page.waitForSelector('.room[data-ready="true"]');
  assert.equal(sockets, 1);
  const op = await call('POST', `/api/rooms/${roomId}/operations`, token, { revision: 1, ops: [7, 'during\n'], client_id: 'other.1' });
  assert.equal(op.status, 200, JSON.stringify(op.json));
  release();
  await waitForEditor(p.page);
  await waitFor(async () => (await editorText(p.page)) === 'before\nduring\n', {
    timeout: 10000, what: 'the operation in the page',
  });
  assert.equal((await serverDocument(BASE, p.page, roomId)).content, 'before\nduring\n');
  assert.equal(await p.page.getAttribute('.room', 'data-transport'), 'ws');
  assert.deepEqual(p.problems.filter((x) => !/WebSocket|net::ERR/.test(x)), []);
  await p.context.close();
});
