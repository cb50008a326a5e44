// The shared worker behind htdocs/src/shared-stream.js: one event stream for every room open
// in any tab of this site (docs/CLIENT.md, "One connection for all tabs"). It reads the
// broker's stream of several rooms (docs/API.md, "Several rooms on one stream") with fetch,
// so the session's token goes in a header, never in an address, and hands each tab the
// events of its room.
//
// - Each tab's room is a subscription (a key the tab chose) with its own last event id: an
//   event reaches it only when its id is above that one, so nothing is doubled, even while
//   two connections overlap.
// - When the set of rooms changes, a new connection is opened with every room resuming from
//   the lowest last event id of its subscriptions, and the old one is closed only once the
//   new one carries every room (so nobody sees us leave and join again, and nothing falls
//   between the two).
// - A room joining a connection that already carries it starts at once, from where the
//   connection stands.
// - The connection's state goes to every tab: 'connected', 'reconnecting' or 'unreachable'.
// - The stream opens straight at the broker when the tabs name its origin (each message
//   carries the one its page knows: docs/CLIENT.md, "Direct streams"), with the token in
//   the header as ever (a cross-origin request the broker allows). Two connections in a row
//   there that never opened while the broker answered through the front door (a broker
//   restarting fails both routes: that counts for nothing), a policy refusal, or a tab
//   saying it gave the direct route up ('front'): the worker opens at the site's own origin
//   from then on, and tells every tab so. Which route the connection that carries the rooms
//   took goes to the tabs ('route').
// - Users are kept apart. Every message carries the tab's session (its token and whose user
//   that is) and each subscription the user it was opened as; a connection carries the token
//   it was opened with and feeds only subscriptions of that token's user. A new token of the
//   same user (signed in again, password changed) takes the connections over; another user's
//   ends the subscriptions of the one before as a stream refused with 401 would (the tab,
//   finding someone else signed in, starts its view again as them and subscribes anew), so a
//   room open as one user is never streamed under another's token. Of two readings of the
//   session that cross on their way here, the older never replaces the newer.
//
// Bundled on its own into /dist/stream-worker.js (Makefile, "client").
import { atOrigin, brokerAway, checkOrigin } from './stream-origin.js';

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 8000;
const UNREACHABLE_AFTER_FAILURES = 2;
const SET_CHANGE_DELAY_MS = 30; // rooms opened together go in one reconnection
const SILENT_MAX_MS = 45000; // the broker writes something (an event or a comment) at least every 15 s
const PORT_SILENT_MAX_MS = 60000; // a tab that stopped answering pings is gone
const PING_EVERY_MS = 15000;
const ROOMS_MAX = 16; // the broker's bound on one stream's rooms (docs/API.md)
const DIRECT_FAILURES_MAX = 2;
const DIRECT_OPEN_TIMEOUT_MS = 4000; // a direct route not yet seen working is given this long
const DIRECT_OPEN_MAX_MS = 8000; // and one that worked before this
const CROSSED_MAX_MS = 2000; // two tabs' messages cross within this

const ports = new Map(); // port -> {seen}
const subs = new Map(); // key -> {key, port, room, user, lastId, opened, live}
let token = null;
let user = null; // whose token it is
let tokenAt = -Infinity; // when the tab that told us read it
let current = null; // the connection serving now
let next = null; // the connection that will replace it (a new set of rooms, or a retry)
let failures = 0;
let networkFailures = 0;
let retryTimer = null;
let changeTimer = null;
let state = 'reconnecting';
let origin = null; // the broker's own origin, as the tabs know it
let front = false; // the direct route was given up: the site's own origin from now on
let directFailures = 0;
let directWorked = false;
let directGeneration = 0; // a connection that opened makes earlier failures' checks moot

// Event ids are Redis stream ids, "<ms>-<seq>".
function compareIds(a, b) {
  const [am, as] = String(a).split('-').map(Number);
  const [bm, bs] = String(b).split('-').map(Number);
  return am - bm || (as || 0) - (bs || 0);
}
const maxId = (a, b) => (a === null ? b : b === null ? a : compareIds(a, b) >= 0 ? a : b);
const validId = (id) => typeof id === 'string' && /^\d+-\d+$/.test(id);

function post(port, msg) {
  try {
    port.postMessage(msg);
  } catch { /* the tab is gone */ }
}

function broadcast(msg) {
  for (const port of ports.keys()) post(port, msg);
}

function setState(s) {
  if (s === state) return;
  state = s;
  broadcast({ kind: 'state', state: s });
}

const wantedRooms = () => [...new Set([...subs.values()].map((s) => s.room))].sort();
const sameSet = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
let replayWanted = false; // a tab wants a room replayed from before where the stream stands

// Where each room resumes: the lowest last event id among its subscriptions (none known: from
// now on; such a subscription takes its position from the room's `subscribed` event).
function roomsParam(rooms) {
  return rooms.map((room) => {
    let pos = null;
    for (const s of subs.values()) {
      if (s.room === room && s.lastId !== null && (pos === null || compareIds(s.lastId, pos) < 0)) pos = s.lastId;
    }
    return pos !== null ? `${room}:${pos}` : room;
  }).join(',');
}

// Whether an open connection carries the room now.
const carried = (room) => [current, next].some((c) => c && !c.dead && c.subscribed.has(room));

// The set of rooms changed: a new connection after a short pause (others may follow).
function setChanged() {
  clearTimeout(changeTimer);
  changeTimer = setTimeout(reconcile, SET_CHANGE_DELAY_MS);
}

function closeAll() {
  closeConn(next);
  closeConn(current);
  next = null;
  current = null;
}

// Rooms past the stream's bound (the latest opened) go back to a stream of their tab's own.
function overflow() {
  const order = [];
  for (const s of subs.values()) if (!order.includes(s.room)) order.push(s.room); // oldest first
  for (const room of order.slice(ROOMS_MAX)) {
    for (const s of [...subs.values()]) {
      if (s.room !== room) continue;
      subs.delete(s.key);
      post(s.port, { kind: 'fallback', key: s.key });
    }
  }
}

function reconcile() {
  clearTimeout(changeTimer);
  overflow();
  const rooms = wantedRooms();
  if (rooms.length === 0 || !token) {
    closeAll();
    clearTimeout(retryTimer);
    retryTimer = null;
    return;
  }
  if (retryTimer) return; // a retry is due: it takes the set as it is then
  if (!replayWanted && next && sameSet(next.rooms, rooms)) return;
  if (!replayWanted && current && current.open && sameSet(current.rooms, rooms)) {
    closeConn(next);
    next = null;
    return;
  }
  replayWanted = false;
  closeConn(next);
  next = openConn(rooms);
}

function closeConn(c) {
  if (!c || c.dead) return;
  c.dead = true;
  clearInterval(c.watch);
  clearTimeout(c.openTimer);
  try {
    c.ctl.abort();
  } catch { /* already over */ }
}

function schedule() {
  clearTimeout(retryTimer);
  const n = Math.min(failures, 10);
  const d = Math.min(BACKOFF_MIN_MS * 2 ** n, BACKOFF_MAX_MS);
  retryTimer = setTimeout(() => {
    retryTimer = null;
    reconcile();
  }, d / 2 + Math.random() * (d / 2));
}

// A connection ended or never opened. status: an HTTP status, 'network' or 'dropped'.
function lost(c, status) {
  if (c.dead) return;
  closeConn(c);
  const wasOpen = c.open;
  if (c === next) next = null;
  if (c === current) current = null;
  for (const s of subs.values()) if (!carried(s.room)) s.live = false;
  if (c.token !== token) {
    setChanged(); // opened with a session that is not ours any more
    return;
  }
  if (c.origin && !wasOpen && status !== 401 && status !== 403) {
    // the direct route did not answer as the broker would (refused, unreachable, blocked by
    // the policy, a stranger's answer): not the server being down, nor a server without the
    // stream of several rooms; after the second such failure while the broker answers
    // through the front door, the site's own origin it is
    directFailed();
    status = 'dropped';
  }
  if (status === 404 || status === 405 || status === 400) {
    // this server has no stream of several rooms (or refuses our list): every tab goes back
    // to a stream of its own
    closeAll();
    subs.clear();
    broadcast({ kind: 'fallback' });
    return;
  }
  if (status === 401 || status === 403) {
    for (const s of [...subs.values()]) if (c.rooms.includes(s.room)) fatal(s, status);
    setChanged();
    return;
  }
  if (c !== next && next) { // the one taking over is on its way
    setState('reconnecting');
    return;
  }
  failures = wasOpen ? 0 : failures + 1;
  networkFailures = status === 'network' ? networkFailures + 1 : 0;
  if (!(current && current.open)) setState(networkFailures >= UNREACHABLE_AFTER_FAILURES ? 'unreachable' : 'reconnecting');
  schedule();
}

// Counts a direct failure unless the broker is away (a restart fails both routes alike).
async function directFailed() {
  const gen = directGeneration;
  if (await brokerAway(fetch.bind(self))) return;
  if (gen !== directGeneration || front) return;
  directFailures += 1;
  if (directFailures >= DIRECT_FAILURES_MAX) useFrontDoor();
}

// The direct route is given up for the worker's life, and every tab hears of it.
function useFrontDoor() {
  if (front) return;
  front = true;
  broadcast({ kind: 'front' });
}

const routeOf = (c) => (c.origin ? 'direct' : 'front');

function fatal(s, status) {
  subs.delete(s.key);
  post(s.port, { kind: 'fatal', key: s.key, status });
}

function openConn(rooms) {
  const c = {
    rooms, subscribed: new Set(), dropped: new Set(), pos: new Map(), open: false, dead: false,
    ctl: new AbortController(), heard: Date.now(), token, user, origin: front ? null : origin,
  };
  const url = `${c.origin || ''}/events/multi?${new URLSearchParams({ rooms: roomsParam(rooms) })}`;
  if (c.origin) {
    // an address that takes connections nowhere (a firewall dropping them) is not waited on
    c.openTimer = setTimeout(() => { if (!c.open) lost(c, 'dropped'); }, directWorked ? DIRECT_OPEN_MAX_MS : DIRECT_OPEN_TIMEOUT_MS);
  }
  fetch(url, { headers: { authorization: `Bearer ${c.token}` }, cache: 'no-store', signal: c.ctl.signal })
    .then(async (res) => {
      if (c.dead) return;
      if (res.status !== 200 || !res.body) {
        lost(c, res.status === 200 ? 404 : res.status);
        return;
      }
      c.open = true;
      clearTimeout(c.openTimer);
      if (c.origin) {
        directFailures = 0;
        directGeneration += 1;
        directWorked = true;
      }
      c.watch = setInterval(() => {
        if (Date.now() - c.heard > SILENT_MAX_MS) lost(c, 'dropped');
      }, 5000);
      await read(c, res.body.getReader());
      lost(c, 'dropped');
    })
    .catch(() => lost(c, 'network'));
  return c;
}

async function read(c, reader) {
  const dec = new TextDecoder();
  let text = '';
  for (;;) {
    let r;
    try {
      r = await reader.read();
    } catch {
      return;
    }
    if (r.done || c.dead) return;
    c.heard = Date.now();
    text += dec.decode(r.value, { stream: true });
    let at;
    while ((at = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, at);
      text = text.slice(at + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5)).join('\n');
      if (!data) continue;
      let env;
      try {
        env = JSON.parse(data);
      } catch {
        continue;
      }
      if (env && typeof env.room === 'string' && typeof env.type === 'string') onEvent(c, env);
      if (c.dead) return;
    }
  }
}

function onEvent(c, { room, type, id, data }) {
  // a connection feeds only the subscriptions of the user whose token it carries
  const mine = [...subs.values()].filter((s) => s.room === room && s.user === c.user);
  if (type === 'subscribed') {
    c.subscribed.add(room);
    if (validId(id)) c.pos.set(room, maxId(c.pos.get(room) ?? null, id));
    for (const s of mine) {
      const fromNow = s.lastId === null; // nothing from before this moment reaches the tab
      if (fromNow && validId(id)) s.lastId = id;
      if (!s.live) {
        s.live = true;
        post(s.port, { kind: 'open', key: s.key, resumed: s.opened, route: routeOf(c), fromNow });
        s.opened = true;
      }
    }
    promote(c);
    return;
  }
  if (type === 'dropped') {
    c.dropped.add(room);
    const reason = data && data.reason;
    const status = reason === 'deleted' || reason === 'room_not_found' ? 404
      : reason === 'session_revoked' ? 401 : 403;
    for (const s of mine) fatal(s, status);
    setChanged();
    promote(c);
    return;
  }
  if (validId(id) && type !== 'resync') c.pos.set(room, maxId(c.pos.get(room) ?? null, id));
  for (const s of mine) {
    if (s.lastId === null) continue; // it starts where the room's `subscribed` says
    if (type === 'resync') { // where the room stood, or the event it replaces: never skipped
      if (validId(id)) s.lastId = maxId(s.lastId, id);
    } else if (validId(id)) {
      if (compareIds(id, s.lastId) <= 0) continue; // seen it
      s.lastId = id;
    }
    post(s.port, { kind: 'event', key: s.key, ev: { type, id, data } });
  }
}

// The new connection carries all its rooms: it takes over, and the old one goes.
function promote(c) {
  if (c !== next || !c.rooms.every((r) => c.subscribed.has(r) || c.dropped.has(r))) return;
  closeConn(current);
  current = c;
  next = null;
  failures = 0;
  networkFailures = 0;
  setState('connected');
  broadcast({ kind: 'route', route: routeOf(c) });
  if (!sameSet(current.rooms, wantedRooms())) setChanged();
}

function onMessage(port, m) {
  const p = ports.get(port);
  if (p) p.seen = Date.now();
  if (!m || typeof m !== 'object') return;
  const at = typeof m.at === 'number' ? m.at : Infinity;
  const mUser = typeof m.user === 'string' || typeof m.user === 'number' ? m.user : null;
  // a reading of the session made just before the one we hold, whose message came after it
  // (a reading far older is a clock set back: it counts)
  const crossed = at < tokenAt && tokenAt - at < CROSSED_MAX_MS;
  if ((typeof m.token === 'string' || m.token === null) && m.token !== token && !crossed) {
    // another session (signed in again, password changed, someone else signed in): the
    // connections were the old one's
    token = m.token;
    user = token === null ? null : mUser;
    closeAll();
    for (const s of subs.values()) s.live = false;
    // signed out, or in as someone else: the rooms open as the user before end as for a
    // stream refused with 401, so each page hears of it (and signs out, or starts again as
    // the new user) rather than waiting on a stream that will not come back, and none of
    // them is ever streamed under the new user's token; the same user's go on with it
    for (const s of [...subs.values()]) if (token === null || s.user !== user) fatal(s, 401);
    clearTimeout(retryTimer);
    retryTimer = null;
    setChanged();
  }
  if (m.token === token && (at > tokenAt || !crossed)) tokenAt = at;
  if (!front && typeof m.origin === 'string') {
    const o = checkOrigin(m.origin, self.location.origin);
    if (o) origin = o;
  }
  switch (m.op) {
    case 'open': {
      if (typeof m.key !== 'string' || typeof m.room !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(m.room)) return;
      const s = {
        key: m.key, port, room: m.room, user: mUser, lastId: validId(m.lastId) ? m.lastId : null, opened: false, live: false,
      };
      // no session: nothing can be streamed; a tab that asks as a user other than the one
      // signed in now (its reading of the session crossed a newer one): not under their token
      if (token === null || s.user !== user) {
        fatal(s, 401);
        return;
      }
      subs.set(s.key, s);
      post(port, { kind: 'state', state });
      if (front) post(port, { kind: 'front' }); // a tab that came after the worker gave up
      const pos = current && current.open && current.subscribed.has(s.room) ? current.pos.get(s.room) : undefined;
      if (pos !== undefined && (s.lastId === null || compareIds(s.lastId, pos) >= 0)) {
        // the room is on the stream: this tab starts from here (it reads the document next)
        const fromNow = s.lastId === null;
        if (fromNow) s.lastId = pos;
        s.live = true;
        s.opened = true;
        post(port, { kind: 'open', key: s.key, resumed: false, route: routeOf(current), fromNow });
      } else {
        // a new room, or one to replay from before where the stream stands
        if (pos !== undefined) replayWanted = true;
        setChanged();
      }
      break;
    }
    case 'close':
      if (subs.get(m.key)?.port === port) {
        subs.delete(m.key);
        setChanged();
      }
      break;
    case 'online':
      if (!current || !current.open) {
        failures = 0;
        clearTimeout(retryTimer);
        retryTimer = null;
        reconcile();
      }
      break;
    case 'bye':
      dropPort(port);
      break;
    case 'front': // a tab gave the direct route up
      useFrontDoor();
      break;
    default:
      break;
  }
}

function dropPort(port) {
  ports.delete(port);
  let changed = false;
  for (const s of [...subs.values()]) {
    if (s.port === port) {
      subs.delete(s.key);
      changed = true;
    }
  }
  if (changed) setChanged();
}

setInterval(() => {
  const now = Date.now();
  for (const [port, p] of ports) {
    if (now - p.seen > PORT_SILENT_MAX_MS) dropPort(port);
    else post(port, { kind: 'ping' });
  }
}, PING_EVERY_MS);

// A connection the worker's policy refused (connect-src without the broker's origin) is
// the front door's cue, as on a page.
self.addEventListener('securitypolicyviolation', (e) => {
  if (!front && origin && atOrigin(e.blockedURI, origin)) useFrontDoor();
});

self.onconnect = (ev) => {
  const port = ev.ports[0];
  ports.set(port, { seen: Date.now() });
  port.onmessage = (m) => onMessage(port, m.data);
  port.start();
};
