// The browser client's Trusted Types policy (htdocs/src/trusted-types.js): it makes the
// stream worker's URL and nothing else, with Trusted Types and without. No browser: a
// stand-in for the browser's `trustedTypes` records what the module asks of it (the
// browser's own enforcement is tests/browser/trusted-types.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';

const MODULE = new URL('../../htdocs/src/trusted-types.js', import.meta.url).href;
const OTHERS = ['/dist/app.js', 'https://evil.example/dist/stream-worker.js', '//evil.example/dist/stream-worker.js',
  '/dist/stream-worker.js?x', '/dist/stream-worker.js#x', ' /dist/stream-worker.js', 'data:text/javascript,1',
  'javascript:1', '/dist/../dist/stream-worker.js', '', null, undefined];

// a fresh copy of the module (it creates its policy when first evaluated)
let copies = 0;
const fresh = () => import(`${MODULE}?copy=${copies++}`);

test('without Trusted Types: the worker URL as a string, anything else refused', async () => {
  assert.equal(globalThis.trustedTypes, undefined);
  const m = await fresh();
  assert.equal(m.streamWorkerURL(), '/dist/stream-worker.js');
  assert.equal(m.streamWorkerURL('/dist/stream-worker.js'), '/dist/stream-worker.js');
  for (const url of OTHERS.filter((u) => u !== undefined)) {
    assert.throws(() => m.streamWorkerURL(url), TypeError, JSON.stringify(url));
  }
});

test('with Trusted Types: one policy, named as the CSP names it, that makes only the worker URL', async () => {
  const made = [];
  globalThis.trustedTypes = {
    createPolicy(name, rules) {
      made.push({ name, rules: Object.keys(rules) });
      return { createScriptURL: (url) => ({ trusted: rules.createScriptURL(url) }) };
    },
  };
  try {
    const m = await fresh();
    assert.deepEqual(made, [{ name: 'codecollab', rules: ['createScriptURL'] }]);
    assert.equal(m.POLICY_NAME, 'codecollab');
    assert.deepEqual(m.streamWorkerURL(), { trusted: '/dist/stream-worker.js' });
    for (const url of OTHERS.filter((u) => u !== undefined)) {
      assert.throws(() => m.streamWorkerURL(url), TypeError, JSON.stringify(url));
    }
  } finally {
    delete globalThis.trustedTypes;
  }
});

test('a policy the page may not create: the string goes on, and the browser decides', async () => {
  globalThis.trustedTypes = {
    createPolicy() { throw new TypeError('Policy "codecollab" disallowed.'); },
  };
  try {
    const m = await fresh();
    assert.equal(m.streamWorkerURL(), '/dist/stream-worker.js');
    assert.throws(() => m.streamWorkerURL('/dist/app.js'), TypeError);
  } finally {
    delete globalThis.trustedTypes;
  }
});
