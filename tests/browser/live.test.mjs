// End-to-end: the page counts its room's WebSocket stream as open at the broker's
// `subscribed` frame, not at the 101, and its per-tab SSE stream at the `subscribed` event it
// asks for, not at the response head (docs/API.md, "Streams"; docs/CLIENT.md). A stream that
// gives no event id carries only what comes after the broker has caught up, so an operation
// committed between the page's document read and that moment would be in neither: the page
// reads the document once the stream is live, and reads it again when it had to read it
// before (the stream was slow to become live).
//
// The test holds the page's WebSocket back from the broker (Playwright's routeWebSocket): the
// page has its socket, the broker has no stream yet. Another client commits an operation
// then; only after it does the stream reach the broker. A page that took the socket for a
// live stream read the document before the operation and never hears of it.
//
// The SSE test does the same to an EventSource, whose open is the response head: the page's
// stream goes straight to "the broker" (STREAM_ORIGIN of a second front door names it;
// docs/CLIENT.md, "Direct streams"), which is a proxy of the test that answers the head at
// once, as a broker does before it is live, and takes the request to the real broker only
// when the test says. A page that took the head for a live stream read the document before
// the operation and never hears of it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { launch, person } from '../lib/browser.mjs';
import { editorText, serverDocument, waitForEditor } from '../lib/app.mjs';
import { startFrontDoor } from '../lib/door.mjs';
import { request as apiRequest } from '../lib/fetch.mjs';
import { waitFor } from '../lib/procs.mjs';

const BASE = process.env.CC_BASE_URL || 'http://127.0.0.1:8080';

let browser;
const cleanup = [];

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  for (const f of cleanup.reverse()) await f();
});

// A stand-in for the broker's port: every request is answered by the broker at
// `proxy.brokerPort`, once `release()` was called. Until then an SSE stream of a room gets its
// head at once (with no body yet), as the broker writes it before the stream is live.
async function holdingProxy() {
  let release;
  const released = new Promise((r) => { release = r; });
  const proxy = { release, streams: 0, sockets: new Set() };
  const server = createServer(async (req, res) => {
    const sse = req.method === 'GET' && /^\/events\/rooms\/[^/?]+\?/.test(req.url);
    if (sse) {
      proxy.streams += 1;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache',
        'access-control-allow-origin': '*' });
      res.flushHeaders();
    }
    await released;
    if (res.destroyed) return;
    const up = request({ host: '127.0.0.1', port: proxy.brokerPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      if (!sse) res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (c) => { proxy.sockets.add(c); c.on('close', () => proxy.sockets.delete(c)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.origin = `http://127.0.0.1:${server.address().port}`;
  proxy.stop = () => new Promise((r) => {
    for (const c of proxy.sockets) c.destroy();
    server.close(r);
  });
  return proxy;
}

const call = (method, path, token, body, base = BASE) => apiRequest(base, method, path, { token, body });

// A new user with a room whose document is "before\n" (revision 1), through the front door
// at base, and a browser context signed in as that user.
async function roomAndPerson(base, prefix) {
  const username = `${prefix}${Date.now().toString(36).slice(-5)}`;
  const reg = await call('POST', '/api/auth/register', undefined, { username, password: 'correct horse battery' }, base);
  assert.equal(reg.status, 201, JSON.stringify(reg.json));
  const { token, user } = reg.json;
  const made = await call('POST', '/api/rooms', token, { name: `${prefix} marker`, language: 'python' }, base);
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const roomId = made.json.room.id;
  const put = await call('PUT', `/api/rooms/${roomId}/document`, token, { content: 'before\n', base_revision: 0 }, base);
  assert.equal(put.status, 200, JSON.stringify(put.json));
  const p = await person(browser, base);
  await p.context.addInitScript(({ t, u }) => {
    localStorage.setItem('cc.token', t);
    localStorage.setItem('cc.user', JSON.stringify(u));
  }, { t: token, u: user });
  return { token, roomId, p };
}

test('an operation committed before the WebSocket stream is live reaches the page', async () => {
  const { token, roomId, p } = await roomAndPerson(BASE, 'live');
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

test('an operation committed before the per-tab SSE stream is live reaches the page', async () => {
  const held = await holdingProxy();
  cleanup.push(() => held.stop());
  // the door's API names the proxy as the stream origin, and its page policy allows it
  const door = await startFrontDoor({ env: { STREAM_ORIGIN: held.origin }, csp: 'stream-origin' });
  cleanup.push(() => door.stop());
  held.brokerPort = door.brokerPort; // the stack's broker
  const base = door.base;
  const { token, roomId, p } = await roomAndPerson(base, 'sselive');
  const read = p.page.waitForResponse((r) => r.url().endsWith(`/api/rooms/${roomId}/document`) && r.request().method() === 'GET');
  // ?transport=sse: the tab's own EventSource, not the shared worker's stream
  await p.page.goto(`/r/${roomId}?transport=sse`);
  // the page has read the document (at once if the head counted as open, else after its wait
  // for a live stream runs out), and its stream has its head but is not at the broker yet
  assert.equal((await (await read).json()).revision, 1);
  await p.page.waitForSelector('.room[data-ready="true"]');
  assert.ok(held.streams >= 1, 'the page opened its SSE stream at the stream origin');
  const op = await call('POST', `/api/rooms/${roomId}/operations`, token, { revision: 1, ops: [7, 'during\n'], client_id: 'other.1' }, base);
  assert.equal(op.status, 200, JSON.stringify(op.json));
  held.release();
  await waitForEditor(p.page);
  await waitFor(async () => (await editorText(p.page)) === 'before\nduring\n', {
    timeout: 10000, what: 'the operation in the page',
  });
  assert.equal((await serverDocument(base, p.page, roomId)).content, 'before\nduring\n');
  assert.equal(await p.page.getAttribute('.room', 'data-transport'), 'sse');
  assert.equal(await p.page.getAttribute('.room', 'data-stream-route'), 'direct');
  assert.deepEqual(p.problems.filter((x) => !/net::ERR/.test(x)), []);
  await p.context.close();
});
