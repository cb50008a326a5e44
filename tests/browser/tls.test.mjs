// The browser client over HTTPS with HTTP/2 (the test stack serves it on TLS_URL with a
// self-signed certificate, scripts/stack.sh): ten rooms open at once in one browser, all
// live, and the API still answering. lighttpd allows 8 concurrent streams on one HTTP/2
// connection (a constant in its source) and a browser 6 connections per site over HTTP/1.1:
// with a stream per open room, the eighth room's page would wait behind the streams. The tabs
// share one stream of all their rooms instead (htdocs/src/shared-stream.js, a SharedWorker;
// docs/CLIENT.md, docs/DEPLOY.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, newUser } from '../lib/api.mjs';
import { launch } from '../lib/browser.mjs';
import { editorText, waitForEditor } from '../lib/app.mjs';
import { waitFor } from '../lib/procs.mjs';

const TLS_URL = process.env.TLS_URL;
if (!TLS_URL) throw new Error('TLS_URL is not set: the test stack serves HTTPS beside HTTP (scripts/stack.sh)');
const ROOMS = 10;

const shows = (page, want) => page.waitForFunction((w) => [...document.querySelectorAll('[data-role="editor"] .cm-line')]
  .some((l) => l.textContent.includes(w)), want, { timeout: 20000 });

async function serverText(token, id) {
  const r = await call('GET', `/api/rooms/${id}/document`, { token });
  assert.equal(r.status, 200, r.text);
  return r.json.content;
}

async function until(check, what, timeout = 20000) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('the browser client over HTTPS keeps ten rooms live at once, on one shared stream', async () => {
  const browser = await launch();
  try {
    const u = await newUser('tlsb');
    const rooms = [];
    for (let i = 0; i < ROOMS; i++) {
      const r = await call('POST', '/api/rooms', { token: u.token, body: { name: `tab ${i}`, language: 'python' } });
      assert.equal(r.status, 201, r.text);
      rooms.push(r.json.room.id);
    }
    const context = await browser.newContext({ baseURL: TLS_URL, ignoreHTTPSErrors: true, viewport: { width: 1000, height: 700 } });
    // signed in as u, as the client keeps a session (htdocs/src/api.js)
    await context.addInitScript(([t, user]) => {
      localStorage.setItem('cc.token', t);
      localStorage.setItem('cc.user', JSON.stringify(user));
    }, [u.token, u.user]);
    const pages = [];
    for (const id of rooms) {
      const page = await context.newPage();
      await page.goto(`/r/${id}`);
      await waitForEditor(page);
      pages.push(page);
    }
    const proto = await pages[0].evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
    assert.equal(proto, 'h2');
    for (const p of pages) {
      await p.waitForSelector('[data-role="connection"][data-state="connected"]', { timeout: 20000 });
      assert.equal(await p.getAttribute('.room', 'data-transport'), 'shared');
    }
    // one stream for the ten tabs (a stream per tab would be ten). The worker opened a new
    // one as each tab came and closed the one before; on a loaded machine the front door
    // may take a moment to pass a closed stream on to the broker, so wait for it to settle
    let clients = -1;
    await waitFor(async () => {
      clients = (await (await fetch(`${process.env.CC_BASE_URL}/events/health`)).json()).clients;
      return clients <= 2;
    }, { timeout: 20000, interval: 250, what: 'one stream at the broker for the ten tabs' })
      .catch(() => assert.fail(`streams at the broker: ${clients}`));

    // every room gets a change from outside; every tab shows its own, live
    await Promise.all(rooms.map((id, i) => call('POST', `/api/rooms/${id}/operations`,
      { token: u.token, body: { revision: 0, ops: [`room ${i} live`] } }).then((r) => assert.equal(r.status, 200, r.text))));
    for (let i = 0; i < pages.length; i++) {
      await shows(pages[i], `room ${i} live`);
      assert.equal(await editorText(pages[i]), `room ${i} live`);
    }
    // and every tab's typing reaches its room
    for (let i = 0; i < pages.length; i++) {
      await pages[i].click('[data-role="editor"] .cm-content');
      await pages[i].keyboard.press('Control+End');
      await pages[i].keyboard.type(` typed ${i}`);
    }
    for (let i = 0; i < pages.length; i++) {
      await until(async () => (await serverText(u.token, rooms[i])) === `room ${i} live typed ${i}`, `room ${i}'s typing`);
    }

    // the API answers the pages at once while all ten rooms stream
    const answers = await Promise.all(pages.map((p) => p.evaluate(async () => {
      const t0 = performance.now();
      const r = await fetch('/api/rooms', { headers: { authorization: `Bearer ${localStorage.getItem('cc.token')}` } });
      return { status: r.status, ms: performance.now() - t0 };
    })));
    for (const a of answers) {
      assert.equal(a.status, 200);
      assert.ok(a.ms < 5000, `the API took ${a.ms} ms`);
    }

    // a tab closes: the others stay live, and a reopened room picks up where it is
    await pages[0].close();
    const r9 = await call('POST', `/api/rooms/${rooms[9]}/operations`,
      { token: u.token, body: { revision: 2, ops: ['after a tab closed '] } });
    assert.equal(r9.status, 200, r9.text);
    await shows(pages[9], 'after a tab closed');
    const again = await context.newPage();
    await again.goto(`/r/${rooms[0]}`);
    await waitForEditor(again);
    assert.equal(await editorText(again), 'room 0 live typed 0');
    const r0 = await call('POST', `/api/rooms/${rooms[0]}/operations`,
      { token: u.token, body: { revision: 2, ops: ['back '] } });
    assert.equal(r0.status, 200, r0.text);
    await shows(again, 'back room 0 live typed 0');
    await context.close();
  } finally {
    await browser.close();
  }
});
