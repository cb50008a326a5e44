// This page's route for room streams (docs/CLIENT.md, "Direct streams"): straight to the
// broker at the origin the server names (`GET /api/streams`, asked once per page, or a
// stream ticket's `stream_origin`), or through the front door (the page's own origin).
//
// The front door is taken from then on, for this page, when the direct route cannot be
// had: two stream attempts in a row at the origin that never opened while the broker
// answered through the front door, the browser refusing it by the page's
// Content-Security-Policy, or the shared worker saying it gave up on it. Listeners (the
// shared stream, to tell its worker) hear of that once.
//
// A page that gave the direct route up notes it in sessionStorage (this tab only, with the
// origin it gave up), and for FRONT_REMEMBER_MS after that the tab's next pages start on
// the front door at once: a firewalled broker port would otherwise cost every reload the
// seconds of failed attempts. With another origin named, or the time passed, the direct
// route is tried again.
import { request } from './api.js';
import { atOrigin, brokerAway, checkOrigin } from './stream-origin.js';

const DIRECT_FAILURES_MAX = 2;
const ROUTE_ASK_WAIT_MS = 3000;
const FRONT_REMEMBER_MS = 10 * 60 * 1000;
const FRONT_KEY = 'cc.streamFront';

let origin = null;
let front = false;
let failures = 0;
let generation = 0; // a stream that opened makes earlier failures' checks moot
let asked = null;
const listeners = new Set();

function pageOrigin() {
  return location.origin;
}

// Asks the server once; resolves (never rejects) when the answer is in. A failure or an
// answer other than 200 leaves the page on the front door.
export function streamRouteReady() {
  if (!asked) {
    const answer = request('GET', '/api/streams').then((r) => {
      if (r.status === 200 && r.json && typeof r.json === 'object') setOrigin(checkOrigin(r.json.origin, pageOrigin()));
    }, () => {});
    // an answer that does not come keeps no stream waiting: the front door meanwhile (a
    // late answer still names the origin for the streams opened after it)
    asked = Promise.race([answer, new Promise((resolve) => setTimeout(resolve, ROUTE_ASK_WAIT_MS))]);
  }
  return asked;
}

// The tab's note of a direct route given up: { origin, until }. Storage that cannot be
// read or written (disabled, full) only costs the note.
function rememberedFront(o) {
  try {
    const v = JSON.parse(sessionStorage.getItem(FRONT_KEY) || 'null');
    return !!v && v.origin === o && typeof v.until === 'number' && v.until > Date.now() &&
      v.until <= Date.now() + FRONT_REMEMBER_MS;
  } catch {
    return false;
  }
}

function rememberFront(o) {
  try {
    sessionStorage.setItem(FRONT_KEY, JSON.stringify({ origin: o, until: Date.now() + FRONT_REMEMBER_MS }));
  } catch { /* see rememberedFront */ }
}

// The origin the server named (checked), or null; a fallback this tab noted for it holds.
function setOrigin(o) {
  origin = o;
  if (o && rememberedFront(o)) giveUp(false);
}

// A stream ticket's answer: its `stream_origin`, when there is one, is the origin to use.
export function noteTicketOrigin(answer) {
  if (answer && typeof answer === 'object' && typeof answer.stream_origin === 'string') {
    const o = checkOrigin(answer.stream_origin, pageOrigin());
    if (o) setOrigin(o);
  }
}

// The origin to open the next stream at, or null for the front door.
export function directOrigin() {
  return front ? null : origin;
}

export function onFrontDoor(fn) {
  listeners.add(fn);
}

// The direct route is given up for this page (and noted for the tab's next pages).
export function useFrontDoor() {
  giveUp(true);
}

function giveUp(note) {
  if (front) return;
  front = true;
  if (note && origin) rememberFront(origin);
  for (const fn of listeners) {
    try {
      fn();
    } catch { /* a listener's trouble is its own */ }
  }
}

// A stream at the direct origin opened: failures before it no longer count.
export function directOpened() {
  failures = 0;
  generation += 1;
}

// A stream at the direct origin failed before it ever opened; `blocked`: the browser
// refused it outright (CSP), which no retry changes. Otherwise it counts only when the
// broker is there behind the front door: a broker restarting fails both routes alike, and
// the streams come back straight to it afterwards.
export async function directFailed(blocked) {
  if (front) return;
  if (blocked) {
    useFrontDoor();
    return;
  }
  const gen = generation;
  if (await brokerAway(fetch.bind(globalThis))) return;
  if (gen !== generation || front) return;
  failures += 1;
  if (failures >= DIRECT_FAILURES_MAX) useFrontDoor();
}

// A connection the page's policy refused (connect-src without the stream origin: a front
// door whose CSP was not told of it, e.g. another web server's) is the front door's cue.
if (typeof document !== 'undefined') {
  document.addEventListener('securitypolicyviolation', (e) => {
    if (!front && origin && atOrigin(e.blockedURI, origin)) useFrontDoor();
  });
}
