// Steps a person takes in the browser client, through the stable hooks of docs/CLIENT.md
// ("Stable hooks"), and what a test reads back.
import assert from 'node:assert/strict';

export const PASSWORD = 'correct horse battery';
let counter = 0;
export const uniqueName = (p) => `${p}${Date.now().toString(36).slice(-5)}${(counter++).toString(36)}`;

export async function signUp(page, username, path = '/') {
  await page.goto(path);
  await page.fill('[name="username"]', username);
  await page.fill('[name="password"]', PASSWORD);
  await page.click('[data-action="register"]');
  await page.waitForSelector('[data-action="logout"]:visible');
}

export async function signIn(page, username, password = PASSWORD) {
  await page.fill('[name="username"]', username);
  await page.fill('[name="password"]', password);
  await page.click('[data-action="login"]');
}

export async function createRoom(page, name, language) {
  await page.fill('[name="room-name"]', name);
  await page.selectOption('select[name="language"]', language);
  await page.click('[data-action="create-room"]');
  await waitForEditor(page);
  return new URL(page.url()).pathname.split('/')[2];
}

export async function waitForEditor(page) {
  await page.waitForSelector('[data-role="editor"] .cm-content');
  await page.waitForSelector('[data-role="connection"][data-state="connected"]', { timeout: 15000 });
  await page.waitForSelector('.room[data-ready="true"]');
}

// The editor's text as a person reads it (the names on remote carets left out).
export function editorText(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-role="editor"] .cm-line')].map((l) => {
    const c = l.cloneNode(true);
    for (const n of c.querySelectorAll('.cm-remote-name')) n.remove();
    return c.textContent;
  }).join('\n'));
}

export const token = (page) => page.evaluate(() => localStorage.getItem('cc.token'));

export async function serverDocument(base, page, roomId) {
  const r = await fetch(`${base}/api/rooms/${roomId}/document`, { headers: { authorization: `Bearer ${await token(page)}` } });
  assert.equal(r.status, 200);
  return r.json();
}

// Takes the page's room streams over WebSocket (`?transport=ws`) through the test, so that it
// can keep a room's events from the page: after hold(), every message the broker sends is
// dropped (not delivered later) except the stream's live marker, `subscribed`, so the page's
// stream still opens and counts as connected while it learns of nothing; release() lets
// everything through again. Installed before the page opens the room, it covers every socket
// the page opens after, across reloads too.
export async function holdableStream(page) {
  let held = false;
  const live = (m) => typeof m === 'string' && m.startsWith('{"type":"subscribed"');
  await page.routeWebSocket(/\/ws\?/, (ws) => {
    const server = ws.connectToServer();
    server.onMessage((m) => { if (!held || live(m)) ws.send(m); });
  });
  return {
    hold() { held = true; },
    release() { held = false; },
  };
}

// Waits until every page's editor shows the server's document and nothing is pending.
export async function converged(base, pages, roomId, { timeout = 15000 } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    const doc = await serverDocument(base, pages[0], roomId);
    const texts = await Promise.all(pages.map(editorText));
    const sync = await Promise.all(pages.map((p) => p.getAttribute('.room', 'data-sync')));
    last = { doc: doc.content, texts, sync };
    if (texts.every((t) => t === doc.content) && sync.every((s) => s === 'synchronized')) return doc;
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.fail(`editors did not converge with the server: ${JSON.stringify(last)}`);
}
