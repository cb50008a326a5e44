// A room's events through the one connection all tabs of this site share (docs/CLIENT.md,
// "One connection for all tabs"): a SharedWorker (stream-worker.js) holds a single stream of
// every open room and hands this page its room's events. SharedRoomStream has RoomStream's
// interface (transport.js), so the room view uses either; where SharedWorker is missing, or
// the server has no stream of several rooms, it is a RoomStream of its own (today's stream
// per tab, with its fallbacks).
//
// The worker opens its stream at the direct origin this page knows (stream-route.js), which
// goes with every message; a page that gives the direct route up tells it ('front'), and a
// worker that gives it up tells the pages.
import {
  request, sameSession, session, sessionChanged, sessionExpired, signedInId,
} from './api.js';
import { RoomStream } from './transport.js';
import { directOrigin, onFrontDoor, streamRouteReady, useFrontDoor } from './stream-route.js';
import { streamWorkerURL } from './trusted-types.js';

// A browser gives every page that asks for the worker's URL (STREAM_WORKER_URL,
// trusted-types.js) under this name the one worker already running, whichever build of the
// pages started it. So the name changes whenever what pages and worker say to each other
// changes: pages of the build before (still open in tabs loaded before an upgrade) keep
// their own worker, and this build's pages get one that speaks their language (version 2:
// each message names its user, and the worker refuses a page whose user is not the
// session's, which a page of version 1 never names).
const WORKER_NAME = 'codecollab-streams-2';

let port = null;
let unavailable = typeof SharedWorker !== 'function';
const streams = new Map(); // key -> SharedRoomStream
let workerState = 'reconnecting';

// After the shared stream was refused with 401: asks the API whether the session still
// stands (a 401 there signs the page out, api.js). A question that got no answer (the page
// was still offline when the refusal came, or the server was down) is asked again once the
// page is back online, and every few seconds until one comes: without the answer, nothing
// else would ever end the page's session, and it would sit in a room whose stream is gone.
let sessionCheck = null;
function confirmSession() {
  if (sessionCheck) return;
  let delay = 1000;
  const ask = () => {
    clearTimeout(sessionCheck.timer);
    removeEventListener('online', ask);
    if (!session.token) {
      sessionCheck = null;
      return;
    }
    request('GET', '/api/auth/me').then((r) => {
      if (r.status !== 0 && r.status < 500) {
        sessionCheck = null;
        return;
      }
      addEventListener('online', ask);
      sessionCheck.timer = setTimeout(ask, delay);
      delay = Math.min(delay * 2, 30000);
    });
  };
  sessionCheck = { timer: null };
  ask();
}

export function sharedStreamsAvailable() {
  return !unavailable;
}

// Every message carries the session as this page reads it now: the token, whose user it is,
// and when it was read (the worker takes no older reading over a newer one: two tabs' messages
// may cross on their way to it).
const readAt = () => performance.timeOrigin + performance.now();
function send(msg) {
  if (!port) return;
  try {
    const at = readAt();
    const token = session.token;
    port.postMessage({ ...msg, token, user: token ? signedInId() : null, at, origin: directOrigin() });
  } catch { /* the worker is gone: fallback follows */ }
}

function fallBack() {
  unavailable = true;
  const all = [...streams.values()];
  streams.clear();
  for (const s of all) s.fallBack();
}

function connectWorker() {
  if (port || unavailable) return port;
  let w;
  try {
    // under the page's Trusted Types a worker starts only from a TrustedScriptURL
    w = new SharedWorker(streamWorkerURL(), { name: WORKER_NAME });
  } catch {
    unavailable = true;
    return null;
  }
  w.onerror = () => fallBack();
  port = w.port;
  port.onmessage = (ev) => onWorkerMessage(ev.data);
  port.start();
  onFrontDoor(() => send({ op: 'front' }));
  // the session is shared by every tab (localStorage): a new one (signed in again, password
  // changed) replaces the worker's; signing out ends its streams
  window.addEventListener('storage', (ev) => {
    if (ev.key === null || ev.key === 'cc.token') send({ op: 'token' });
  });
  window.addEventListener('online', () => {
    send({ op: 'online' });
    for (const s of streams.values()) s.online();
  });
  window.addEventListener('offline', () => {
    for (const s of streams.values()) s.showState();
  });
  window.addEventListener('pagehide', (ev) => { if (!ev.persisted) send({ op: 'bye' }); });
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted) for (const s of streams.values()) s.reopen(); // back from the page cache
  });
  return port;
}

function onWorkerMessage(m) {
  if (!m || typeof m !== 'object') return;
  switch (m.kind) {
    case 'ping':
      send({ op: 'pong' });
      return;
    case 'fallback':
      if (m.key) streams.get(m.key)?.fallBack(); // one room past the shared stream's bound
      else fallBack();
      return;
    case 'state':
      workerState = m.state;
      for (const s of streams.values()) s.showState();
      return;
    case 'route': // the route of the worker's connection now
      for (const s of streams.values()) s.showRoute(m.route);
      return;
    case 'front': // the worker gave the direct route up: so does this page
      useFrontDoor();
      return;
    default: {
      const s = streams.get(m.key);
      if (s) s.fromWorker(m);
    }
  }
}

export class SharedRoomStream {
  // opts as RoomStream's (transport.js); `kind` is not used: the shared stream is SSE read
  // by the worker
  constructor(opts) {
    this.o = opts;
    this.key = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
    this.ownLastId = typeof opts.lastId === 'string' && /^\d+-\d+$/.test(opts.lastId) ? opts.lastId : null;
    this.isOpen = false;
    this.state = null;
    this.closed = false;
    this.inner = null; // the RoomStream this became when the shared stream is unavailable
  }

  start() {
    if (!connectWorker()) {
      this.fallBack();
      return;
    }
    streams.set(this.key, this);
    this.showState();
    // the worker needs the origin with the room's first message
    streamRouteReady().then(() => this.reopen());
  }

  reopen() {
    if (this.closed || this.inner) return;
    this.isOpen = false;
    // the room is streamed only as the user this view started with: another tab signed in
    // as someone else since (this page has not heard yet), so it starts its view again
    if (!sameSession()) {
      this.fromWorker({ kind: 'fatal', key: this.key, status: 401 });
      return;
    }
    send({ op: 'open', key: this.key, room: this.o.roomId, lastId: this.lastId });
  }

  close() {
    this.closed = true;
    if (this.inner) {
      this.inner.close();
      return;
    }
    streams.delete(this.key);
    send({ op: 'close', key: this.key });
  }

  // The shared stream cannot be had: a stream of this tab's own, from where this one stood.
  fallBack() {
    if (this.closed || this.inner) return;
    streams.delete(this.key);
    this.inner = new RoomStream({ ...this.o, kind: 'sse', lastId: this.lastId });
    this.inner.start();
  }

  // The last event id handed to the view (kept across a reload with unsent edits).
  get lastId() {
    return this.inner ? this.inner.lastId : this.ownLastId;
  }

  get kind() {
    return this.inner ? this.inner.kind : 'shared';
  }

  showRoute(route) {
    if (this.closed || this.inner || (route !== 'direct' && route !== 'front')) return;
    if (this.o.onRoute) this.o.onRoute(route);
  }

  // Presence goes by PUT (the shared stream is one-way).
  sendPresence(p) {
    return this.inner ? this.inner.sendPresence(p) : false;
  }

  reconnectNow() {
    if (this.inner) this.inner.reconnectNow();
    else send({ op: 'online' });
  }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    this.o.onState(s);
  }

  showState() {
    if (this.closed || this.inner) return;
    if (!navigator.onLine) this.setState('offline');
    else if (workerState === 'connected' && this.isOpen) this.setState('connected');
    else this.setState(workerState === 'unreachable' ? 'unreachable' : 'reconnecting');
  }

  // The network is back; the worker's stream may never have noticed it was gone: edits held
  // meanwhile go now, as after a reconnection.
  online() {
    this.showState();
    if (this.isOpen && workerState === 'connected') this.o.onOpen('shared', true);
  }

  fromWorker(m) {
    if (this.closed || this.inner) return;
    switch (m.kind) {
      case 'open':
        this.isOpen = true;
        this.showState();
        this.showRoute(m.route);
        this.o.onOpen('shared', Boolean(m.resumed), Boolean(m.fromNow));
        break;
      case 'event': {
        const ev = m.ev;
        if (!ev || typeof ev.type !== 'string') return;
        if (ev.type !== 'resync' && typeof ev.id === 'string') this.ownLastId = ev.id;
        this.o.onEvent(ev);
        break;
      }
      case 'fatal':
        this.closed = true;
        streams.delete(this.key);
        this.setState('offline');
        if (m.status === 401) {
          // the session ended (signed out, password changed, expired): an API call says so
          // to the app, which signs this page out; with no session left (signed out in
          // another tab) the app is told at once; with someone else's (signed in as another
          // user in another tab: the worker streams no room of this view's user under their
          // token) the app starts the view again as them
          if (!session.token) sessionExpired(null);
          else if (!sameSession()) sessionChanged();
          else confirmSession();
        }
        this.o.onFatal(m.status);
        break;
      default:
        break;
    }
  }
}
