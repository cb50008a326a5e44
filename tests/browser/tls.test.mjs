// The browser client over HTTPS with HTTP/2 (the test stack serves it on TLS_URL with a
// self-signed certificate, scripts/stack.sh): seven rooms open at once in one browser, all
// live, past the six connections per site a browser allows over HTTP/1.1. (lighttpd allows
// 8 concurrent streams on one HTTP/2 connection, a constant in its source: with one stream
// per open room, the eighth room's page would wait for its document behind the streams.
// docs/DEPLOY.md says so.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, newUser } from '../lib/api.mjs';
import { launch } from '../lib/browser.mjs';
import { editorText, waitForEditor } from '../lib/app.mjs';

const TLS_URL = process.env.TLS_URL;
if (!TLS_URL) throw new Error('TLS_URL is not set: the test stack serves HTTPS beside HTTP (scripts/stack.sh)');

test('the browser client over HTTPS keeps seven rooms live at once, more than HTTP/1.1 allows', async () => {
  const browser = await launch();
  try {
    const u = await newUser('tlsb');
    const rooms = [];
    for (let i = 0; i < 7; i++) {
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
    // every room gets a change from outside; every tab shows its own, live
    await Promise.all(rooms.map((id, i) => call('POST', `/api/rooms/${id}/operations`,
      { token: u.token, body: { revision: 0, ops: [`room ${i} live`] } }).then((r) => assert.equal(r.status, 200, r.text))));
    for (let i = 0; i < pages.length; i++) {
      await pages[i].waitForFunction((want) => [...document.querySelectorAll('[data-role="editor"] .cm-line')]
        .some((l) => l.textContent.includes(want)), `room ${i} live`, { timeout: 20000 });
      assert.equal(await editorText(pages[i]), `room ${i} live`);
      assert.equal(await pages[i].getAttribute('[data-role="connection"]', 'data-state'), 'connected');
    }
    await context.close();
  } finally {
    await browser.close();
  }
});
