// The invite link in the browser client (docs/API.md, "Invite link"), in headless Chromium
// against the real stack: the owner issues a new link, switches it off and on again, their
// second tab follows through the room's `room` events, and the API refuses the codes the
// page no longer shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, call, newUser } from '../lib/api.mjs';
import { launch, person } from '../lib/browser.mjs';
import { createRoom as createRoomInBrowser, signUp, uniqueName, waitForEditor } from '../lib/app.mjs';

// An error answer: this status and this `error` code.
function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json?.error, code, r.text);
}

const join = (u, room, invite) => call('POST', `/api/rooms/${room.id}/join`, { token: u.token, body: { invite } });

test('the owner makes a new invite link, turns it off and on; their other tab follows', async () => {
  const browser = await launch();
  try {
    const owner = await person(browser, BASE);
    const p = owner.page;
    await signUp(p, uniqueName('inv'));
    const roomId = await createRoomInBrowser(p, uniqueName('room '), 'python');
    const codeOf = async (page) => new URL(await page.getAttribute('[data-role="invite-link"]', 'href')).searchParams.get('invite');
    const first = await codeOf(p);
    const tab = await owner.context.newPage(); // the owner's second tab: same session
    await tab.goto(`/r/${roomId}`);
    await waitForEditor(tab);
    assert.equal(await codeOf(tab), first);

    await p.click('[data-action="rotate-invite"]');
    await p.waitForFunction((old) => !document.querySelector('[data-role="invite-link"]')?.href.endsWith(old), first);
    const second = await codeOf(p);
    assert.notEqual(second, first);
    // the other tab hears of it through the room event
    await tab.waitForFunction((code) => document.querySelector('[data-role="invite-link"]')?.href.endsWith(code), second);
    const guest = await newUser();
    assertError(await join(guest, { id: roomId }, first), 403, 'invalid_invite');

    await p.click('[data-action="disable-invite"]');
    await p.waitForSelector('[data-role="invite-off"]');
    await tab.waitForSelector('[data-role="invite-off"]');
    assert.equal(await p.$('[data-role="invite-link"]'), null);
    assertError(await join(guest, { id: roomId }, second), 403, 'invite_disabled');

    await p.click('[data-action="rotate-invite"]'); // "Turn invite link on"
    await p.waitForSelector('[data-role="invite-link"]');
    const third = await codeOf(p);
    assert.ok(third !== first && third !== second);
    await tab.waitForFunction((code) => document.querySelector('[data-role="invite-link"]')?.href.endsWith(code), third);
    assert.equal((await join(guest, { id: roomId }, third)).status, 200);
    assert.deepEqual(owner.problems, [], 'no console errors, exceptions or CSP violations');
  } finally {
    await browser.close();
  }
});
