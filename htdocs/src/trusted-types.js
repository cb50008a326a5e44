// The page's one Trusted Types policy (W3C Trusted Types). The Content-Security-Policy says
// `require-trusted-types-for 'script'` and `trusted-types codecollab`: every sink that
// parses HTML or loads or runs script (innerHTML, document.write, eval and the like, script
// and worker URLs) refuses a plain string in Chromium, and this policy is the only one the
// page may create. The app builds its markup from elements and text (dom.js), so the one
// value it needs is the shared stream worker's URL: the policy makes that URL and nothing
// else. In a browser without Trusted Types the same check runs and the string is used.
//
// The policy is created as the app's modules load, before the app starts, and the page runs
// no other script that could take its name first. Where it cannot be created (a page policy
// that names other policies only), the string goes on and the browser decides: a refused
// worker is what shared-stream.js falls back from anyway.

export const POLICY_NAME = 'codecollab';
export const STREAM_WORKER_URL = '/dist/stream-worker.js';

function scriptURL(url) {
  // exactly the path, on this page's origin: no other host, scheme or file
  if (url === STREAM_WORKER_URL) return url;
  throw new TypeError(`not a script of this site: ${String(url).slice(0, 100)}`);
}

let policy = null;
if (typeof trustedTypes === 'object' && trustedTypes && typeof trustedTypes.createPolicy === 'function') {
  try {
    policy = trustedTypes.createPolicy(POLICY_NAME, { createScriptURL: scriptURL });
  } catch { /* refused by the policy in force: plain strings, as above */ }
}

// The URL to start the stream worker from: a TrustedScriptURL where the browser has
// Trusted Types, the string elsewhere. Throws for any other URL.
export function streamWorkerURL(url = STREAM_WORKER_URL) {
  return policy ? policy.createScriptURL(url) : scriptURL(url);
}
