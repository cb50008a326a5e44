// End-to-end (headless Chromium against the real stack): leaving a room while it is still
// loading ends it. A room view left before its document arrived must not live on unseen,
// with its stream open and its user listed in the room's presence (where a later `deleted`
// or removal would throw the user out of whatever they are looking at by then).
// Every wait is for a condition, with a generous deadline.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, call, createRoom, newUser } from '../lib/api.mjs';
import { launch, person } from '../lib/browser.mjs';
import { signUp, token, uniqueName } from '../lib/app.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

test('going back while a room is loading leaves the room: not listed in its presence', async () => {
  const owner = await newUser('own');
  const roomA = await createRoom(owner.token, { name: uniqueName('room-a ') });
  const who = await person(browser, BASE);
  const p = who.page;
  await signUp(p, uniqueName('nav'));
  const me = JSON.parse(await p.evaluate(() => localStorage.getItem('cc.user')));
  const joined = await call('POST', `/api/rooms/${roomA.id}/join`, { token: await token(p), body: { invite: roomA.invite } });
  assert.equal(joined.status, 200, joined.text);

  // the document is slow to come, so the room is still loading when the user goes back
  await p.route('**/api/rooms/*/document', async (r) => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await r.continue();
  });
  await p.goto(`/r/${roomA.id}`);
  await p.waitForSelector('.room-title a.back', { state: 'attached' });
  await p.click('.room-title a.back');
  await p.waitForSelector('[name="room-name"]'); // the room list
  assert.equal(new URL(p.url()).pathname, '/');

  // the room's presence, as another member sees it, does not keep the user once the page
  // has settled (its stream, if it opened, is closed)
  const here = async () => {
    const r = await call('GET', `/api/rooms/${roomA.id}/presence`, { token: owner.token });
    assert.equal(r.status, 200, r.text);
    return r.json.users.map((u) => u.id);
  };
  const until = Date.now() + 20000;
  let users = await here();
  while (users.includes(me.id) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    users = await here();
  }
  assert.ok(!users.includes(me.id), `the user is still listed in the room left while loading: ${JSON.stringify(users)}`);
  // and the room list is what the page shows
  assert.equal(await p.$('.room'), null);
  await who.context.close();
});
