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

// A run asked for while the change is being made: its rights may be read before the change
// and its job reach the queue after the change looked for the member's runs. The change
// writes a new run-right mark before it looks, and the job's creation script refuses a run
// whose request read the mark before it (lib/jobstate.h): the API reads the right again and
// answers the refusal the request would have got a moment later. So every run answered 202
// was made before the mark and ends cancelled (its program cut short), and every other
// answer is that refusal. Runs and the change go out together for several members at once,
// so that some runs land in that window (without a guard, a run or two was left running in
// about three runs of this test in four, on a 2-core machine).
for (const change of ['removal', 'demotion to viewer']) {
  test(`runs asked for during a ${change}: each one accepted ends cancelled, the others are refused`, async () => {
    const owner = await newUser('ro');
    const members = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(() => newUser('rm')));
    const rooms = await Promise.all(members.map((m) => roomWith(owner, m)));
    const answers = [];
    await Promise.all(members.map(async (m, i) => {
      const room = rooms[i];
      // nine runs (one under the per-minute limit): one alone (accepted: nothing has
      // changed yet), then the other eight at once with the change among them
      const runs = [run(m.token, room, { language: 'python', code: SLOW })];
      await runs[0];
      for (let k = 1; k < 9; k++) {
        if (k === 5) {
          runs.push((change === 'removal'
            ? call('DELETE', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token })
            : call('PUT', `/api/rooms/${room.id}/members/${m.user.id}`, { token: owner.token, body: { role: 'viewer' } }))
            .then((r) => { assert.ok([200, 204].includes(r.status), r.text); return null; }));
        }
        runs.push(run(m.token, room, { language: 'python', code: SLOW }));
      }
      for (const r of await Promise.all(runs)) if (r) answers.push(r);
    }));
    let accepted = 0;
    for (const r of answers) {
      if (r.status === 202) {
        accepted++;
        const job = await waitJob(owner.token, r.json.job.id, { ms: 30000 });
        assert.equal(job.status, 'cancelled', `a run accepted during the ${change}: ${JSON.stringify(job)}`);
        assert.ok(!String(job.result?.stdout ?? '').includes('ran after the change'), JSON.stringify(job));
      } else {
        assert.equal(r.status, 403, r.text);
        assert.equal(r.json.error, change === 'removal' ? 'not_a_member' : 'forbidden', r.text);
      }
    }
    assert.equal(answers.length, 72);
    // the first run of each member came before the change
    assert.ok(accepted >= 8, `accepted ${accepted} of 72`);
  });
}
