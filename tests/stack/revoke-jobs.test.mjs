// Runs a member queued are theirs to run only while they may run code in the room: the
// owner's removal and a demotion to viewer end the member's unfinished runs there, waiting or
// running, as the room's deletion ends all of its jobs (docs/SECURITY.md, "How fast taking
// access away works"). Nobody else's run is touched, nor the member's runs in other rooms.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { call, newUser, createRoom } from '../lib/api.mjs';
import { run, waitJob } from '../lib/jobs.mjs';

// long enough that the first is still running when the change is made on a slow machine
// (it is cancelled then: the wait costs nothing)
const SLOW = 'import time\ntime.sleep(30)\nprint("ran after the change")\n';

async function roomWith(owner, member) {
  const room = await createRoom(owner.token, { visibility: 'private' });
  const j = await call('POST', `/api/rooms/${room.id}/join`, { token: member.token, body: { invite: room.invite } });
  assert.equal(j.status, 200, j.text);
  return room;
}

async function submit(user, room, code = SLOW) {
  const r = await run(user.token, room, { language: 'python', code });
  assert.equal(r.status, 202, r.text);
  return r.json.job.id;
}

for (const change of ['removal', 'demotion to viewer']) {
  test(`a ${change} ends the member's runs, waiting or running, in that room only; the owner's run goes on`, async () => {
    const owner = await newUser('jo');
    const m = await newUser('jm');
    const room = await roomWith(owner, m);
    const other = await roomWith(owner, m);
    const mine = [await submit(m, room), await submit(m, room), await submit(m, room)];
    const elsewhere = await submit(m, other, 'print("elsewhere")\n');
    const owners = await submit(owner, room, 'print("the owner\'s")\n');
    // the first one is under way (or at least queued)
    await waitJob(owner.token, mine[0], { ms: 20000, until: (j) => j.status === 'running' || j.status === 'finished' });
    const r = change === 'removal'
      ? await call('DELETE', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token })
      : await call('PUT', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token, body: { role: 'viewer' } });
    assert.ok([200, 204].includes(r.status), r.text);
    for (const id of mine) {
      const job = await waitJob(owner.token, id, { ms: 30000 });
      assert.equal(job.status, 'cancelled', `a run of the member after the ${change}: ${JSON.stringify(job)}`);
      assert.ok(!job.result || !String(job.result.stdout || '').includes('ran after the change'), JSON.stringify(job));
    }
    const o = await waitJob(owner.token, owners, { ms: 30000 });
    assert.equal(o.status, 'finished', JSON.stringify(o));
    const e = await waitJob(m.token, elsewhere, { ms: 30000 });
    assert.equal(e.status, 'finished', JSON.stringify(e));
  });
}
