// The browser client and the fair job queue (docs/API.md, "Fair queue"), in headless
// Chromium against the real stack: while a run waits the output panel says how many runs are
// ahead of it, the count follows the line, and Stop cancels the waiting run. The stack runs
// WORKERS=2, so two long runs fill every worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE } from '../lib/api.mjs';
import { launch, person, screenshot } from '../lib/browser.mjs';
import * as app from '../lib/app.mjs';
import { cancel, drain, run, waitJob } from '../lib/jobs.mjs';

test('the browser shows "N runs ahead of yours" while a run waits, and Stop cancels it', async () => {
  const browser = await launch();
  const ids = [];
  let tok;
  try {
    const P = await person(browser, BASE);
    await app.signUp(P.page, app.uniqueName('wait'));
    const roomId = await app.createRoom(P.page, app.uniqueName('line'), 'python');
    tok = await app.token(P.page);
    const room = { id: roomId };
    // both workers busy, one run waiting: the browser's run has one ahead of it
    for (let i = 0; i < 2; i++) {
      const r = await run(tok, room, { code: 'import time; time.sleep(60)' });
      assert.equal(r.status, 202, r.text);
      ids.push(r.json.job.id);
    }
    for (const id of ids) await waitJob(tok, id, { until: (j) => j.status === 'running' });
    const ahead = await run(tok, room, { code: 'print("ahead")' });
    assert.equal(ahead.status, 202, ahead.text);
    ids.push(ahead.json.job.id);
    await P.page.click('[data-action="run"]');
    await P.page.waitForSelector('[data-role="output"][data-state="queued"] [data-action="cancel-run"]');
    await P.page.waitForFunction(() => /1 run ahead of yours/.test(document.querySelector('[data-role="queue-position"]')?.textContent || ''));
    await screenshot(P.page, 'run-queued');
    // the one ahead is cancelled: the line moves and the browser is told
    assert.equal((await cancel(tok, ahead.json.job.id)).status, 200);
    await P.page.waitForFunction(() => /yours is next/.test(document.querySelector('[data-role="queue-position"]')?.textContent || ''));
    await P.page.click('[data-action="cancel-run"]');
    await P.page.waitForSelector('[data-role="output"][data-state="cancelled"]');
    assert.match(await P.page.textContent('[data-role="output"]'), /stopped/i); // "Stopped by …"
    assert.deepEqual(P.problems, []);
  } finally {
    if (tok) await drain(tok, ids);
    await browser.close();
  }
});
