import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call } from '../lib/api.mjs';

test('health reports both stores up', async () => {
  const r = await call('GET', '/api/health');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'ok', postgres: 'ok', redis: 'ok' });
});
