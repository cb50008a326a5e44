// Writers, subscribers and runs at once on one room, no fault (tests/lib/steady-load.mjs):
// every acknowledged operation is in the document exactly once, every subscriber has every
// revision once, every run ends once. The checker the fault suites rely on must hold on a
// healthy stack first; and it must catch a lost commit, which the second test shows by
// deleting one from the live document behind the API's back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE } from '../lib/api.mjs';
import { startLoad } from '../lib/steady-load.mjs';
import { waitFor } from '../lib/procs.mjs';

test('a healthy stack under steady load keeps every operation, revision and run', async () => {
  const load = await startLoad({ base: BASE, writers: 3, subscribers: 8, execEveryMs: 1500 });
  // until the load did some of everything (a loaded machine may take long for it): the
  // checks below are about what was done, not how fast
  await waitFor(() => load.stats.commits > 20 && load.stats.execs >= 2,
    { what: 'more than 20 commits and 2 runs', timeout: 60000, interval: 100 }).catch(async (e) => {
    await load.finish();
    throw e;
  });
  const report = await load.finish();
  assert.deepEqual(report.problems, []);
  assert.ok(report.acked > 20, `only ${report.acked} commits acknowledged`);
  assert.ok(report.jobs.finished >= 2, `runs: ${JSON.stringify(report.jobs)}`);
  assert.equal(report.final.content.match(/<w\d+\.\d+>/g).length, report.acked);
});

test('the checker sees an acknowledged operation that went missing', async () => {
  const load = await startLoad({ base: BASE, writers: 1, subscribers: 1, execEveryMs: 0 });
  await waitFor(() => load.stats.commits > 0, { what: 'a commit acknowledged', timeout: 60000, interval: 100 })
    .catch(async (e) => {
      await load.finish();
      throw e;
    });
  const report = await load.finish();
  assert.deepEqual(report.problems, []);
  const doc = report.final.content;
  const found = doc.match(/<w\d+\.\d+>/);
  assert.ok(found, `no acknowledged operation in the document: ${doc.slice(0, 200)}`);
  const victim = found[0];
  // tamper with the checker's input exactly as a lost commit would look
  report.final.content = doc.replace(victim, '');
  const { problems } = load.check(report.final);
  assert.ok(problems.some((p) => p.includes(victim)), problems.join('\n'));
  // and one applied twice
  const twice = load.check({ ...report.final, content: doc + victim });
  assert.ok(twice.problems.some((p) => p.includes(`${victim} is in the document 2 times`)), twice.problems.join('\n'));
});
