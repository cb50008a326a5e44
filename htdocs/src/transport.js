// A room's event stream (docs/API.md, "Streams"): Server-Sent Events first, WebSocket when
// SSE cannot connect, long-poll when neither can. Every (re)connection takes a fresh
// stream ticket (they live a minute) and resumes after the last event id it saw, so a
// dropped connection loses nothing; events are handed on once each, in id order.
//
// A stream counts as open once it is live (docs/API.md, "Streams"): a WebSocket at its
// `subscribed` frame, SSE at its `subscribed` event (asked for with `subscribed=1`: the
// broker's default ": connected" comment is not shown to pages), whose id becomes the
// position when there is none yet (so a reconnection in a quiet room resumes instead of
// starting from its own moment again); long-poll once its first request stood or was
// answered. onOpen says whether the stream started from a position: one that did not carries
// nothing from before it was live.
//
// The connection state is 'connected', 'reconnecting' (the stream was lost but the API
// answers, e.g. a broker restarting), 'unreachable' (the browser is online but the server
// has not answered twice in a row: it is down, or a network between fails) or 'offline'
// (the browser says it has no network).
//
// Streams open straight at the broker when the server names its origin (stream-route.js,
// docs/CLIENT.md "Direct streams"), through the front door otherwise or once the direct
// route has failed: a direct attempt that never opened does not count against the
// transport (SSE stays SSE on the front door) nor as the server being unreachable.
import { directFailed, directOpened, directOrigin, streamRouteReady } from './stream-route.js';
import { eventsBase, wsOrigin } from './stream-origin.js';

const EVENT_TYPES = ['operation', 'presence', 'join', 'leave', 'execution', 'ai', 'room', 'snapshot', 'resync'];
const KINDS = ['sse', 'ws', 'poll'];
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 8000;
const UNREACHABLE_AFTER_FAILURES = 2;
const OPEN_TIMEOUT_MS = 8000;
const DIRECT_OPEN_TIMEOUT_MS = 4000; // a direct route not yet seen working is given less
const TICKET_REUSE_MS = 40000; // long-poll reuses a ticket for this long (they live 60 s)

// Event ids are Redis stream ids, "<ms>-<seq>"; compares two of them.
export function compareIds(a, b) {
  const [am, as] = String(a).split('-').map(Number);
  const [bm, bs] = String(b).split('-').map(Number);
  return am - bm || (as || 0) - (bs || 0);
}

export class RoomStream {
  // opts: { roomId, ticket(): Promise<string>, onEvent({type, id, data}), onState(state),
  //         onOpen(kind, resumed, fromNow), onFatal(status), kind?: 'sse'|'ws'|'poll',
  //         lastId?: an event id to resume after (events kept across a reload),
  //         onRoute?(route): 'direct' or 'front', the route of each stream that opens }
  constructor(opts) {
    this.o = opts;
    this.kind = KINDS.includes(opts.kind) ? opts.kind : 'sse';
    this.lastId = typeof opts.lastId === 'string' && /^\d+-\d+$/.test(opts.lastId) ? opts.lastId : null;
    this.failures = 0;
    this.networkFailures = 0;
    this.everOpened = { sse: false, ws: false, poll: false };
    this.directEverOpened = false;
    this.kindFailures = 0;
    this.state = null;
    this.closed = false;
    this.conn = null;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => {
      this.setState('offline');
      this.drop();
      this.schedule();
    };
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  start() {
    this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.drop();
  }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    this.o.onState(s);
  }

  // Presence up the WebSocket when that is the transport; false means "use PUT".
  sendPresence(p) {
    const c = this.conn;
    if (!c || c.kind !== 'ws' || !c.open || c.ws.readyState !== WebSocket.OPEN) return false;
    c.ws.send(JSON.stringify({ type: 'presence', ...p }));
    return true;
  }

  reconnectNow() {
    if (this.closed) return;
    this.failures = 0;
    if (this.conn && this.conn.open) return;
    this.drop();
    clearTimeout(this.timer);
    this.setState('reconnecting');
    this.connect();
  }

  drop() {
    const c = this.conn;
    this.conn = null;
    if (!c) return;
    c.dead = true;
    clearTimeout(c.openTimer);
    try {
      if (c.es) c.es.close();
      if (c.ws) c.ws.close();
      if (c.abort) c.abort.abort();
    } catch { /* closing is best effort */ }
  }

  schedule() {
    if (this.closed) return;
    clearTimeout(this.timer);
    const n = Math.min(this.failures, 10);
    const d = Math.min(BACKOFF_MIN_MS * 2 ** n, BACKOFF_MAX_MS);
    this.timer = setTimeout(() => this.connect(), d / 2 + Math.random() * (d / 2));
  }

  // A connection ended or never opened.
  lost(c, status) {
    if (c.dead || this.closed) return;
    const wasOpen = c.open;
    this.drop();
    if (status === 401 || status === 403 || status === 404) {
      this.closed = true;
      this.setState('offline');
      this.o.onFatal(status);
      return;
    }
    // a failure of the stream itself at the direct origin (not of the API's ticket) before it
    // ever worked: a long-poll "open" by standing a moment has worked once it was answered
    const direct = Boolean(c.origin) && c.started && status !== 'ticket' && status !== 'network';
    if (direct && !c.proven) directFailed(status === 'blocked');
    if (!wasOpen) {
      this.failures += 1;
      // a transport that never worked here is given up for the next one (not for a failure
      // of the direct route: the front door tries the same transport next)
      if (!direct && !this.everOpened[this.kind] && status !== 'ticket' && status !== 'network') {
        this.kindFailures += 1;
        if (this.kindFailures >= 2 && this.kind !== 'poll') {
          this.kind = KINDS[KINDS.indexOf(this.kind) + 1];
          this.kindFailures = 0;
        }
      }
    } else {
      this.failures = 0;
    }
    // offline: the browser says so; unreachable: online, but not even the API answers (the
    // stream alone being down, e.g. a broker restarting, is "reconnecting")
    if (status === 'network') this.networkFailures += 1;
    else this.networkFailures = 0;
    if (!navigator.onLine) this.setState('offline');
    else this.setState(this.networkFailures >= UNREACHABLE_AFTER_FAILURES ? 'unreachable' : 'reconnecting');
    if (wasOpen) this.timer = setTimeout(() => this.connect(), 100 + Math.random() * 200);
    else this.schedule();
  }

  opened(c) {
    if (c.dead) return;
    clearTimeout(c.openTimer);
    // resumed: this page had a stream before (one resumed after a reload is a first one)
    const resumed = c.from !== null && this.openedOnce === true;
    this.openedOnce = true;
    c.open = true;
    this.failures = 0;
    this.networkFailures = 0;
    this.kindFailures = 0;
    this.everOpened[c.kind] = true;
    if (c.kind !== 'poll') this.routeWorks(c);
    this.setState('connected');
    if (this.o.onRoute) this.o.onRoute(c.origin ? 'direct' : 'front');
    // fromNow: the stream began where the room stood when it went live, not after an id
    this.o.onOpen(c.kind, resumed, c.from === null);
  }

  // The stream has shown that its route works (an answer read at the origin).
  routeWorks(c) {
    if (c.proven) return;
    c.proven = true;
    if (c.origin) {
      this.directEverOpened = true;
      directOpened();
    }
  }

  // One event from any transport; data may be JSON text or already parsed.
  deliver(type, id, data) {
    if (typeof data === 'string') {
      try {
        data = JSON.parse(data);
      } catch {
        return;
      }
    }
    // a stream's "live from here" is taken by openSse and openWs: not a room event
    if (type === 'subscribed') return;
    if (type === 'resync') { // its id is where we stood: not a new event
      this.o.onEvent({ type, id, data });
      return;
    }
    if (id) {
      if (this.lastId !== null && compareIds(id, this.lastId) <= 0) return; // seen it
      this.lastId = id;
    }
    this.o.onEvent({ type, id, data });
  }

  async connect() {
    if (this.closed) return;
    clearTimeout(this.timer);
    if (!navigator.onLine) {
      this.setState('offline');
      return; // the 'online' event brings us back
    }
    const c = { kind: this.kind, open: false, dead: false, origin: null, started: false, from: null };
    this.conn = c;
    await streamRouteReady(); // asked once per page, at its start: at most a moment here
    if (c.dead || this.closed) return;
    let ticket;
    try {
      ticket = await this.o.ticket();
    } catch (e) {
      const status = e && e.status;
      if (status === 401 || status === 403 || status === 404) this.lost(c, status);
      // no answer, or the front door's 5xx (its API behind it down): the server is not there
      else this.lost(c, status === 0 || status >= 500 ? 'network' : 'ticket');
      return;
    }
    if (c.dead) return;
    // the route is settled after the ticket, whose answer may name the origin
    c.origin = directOrigin();
    c.started = true;
    const wait = c.origin && !this.directEverOpened ? DIRECT_OPEN_TIMEOUT_MS : OPEN_TIMEOUT_MS;
    c.openTimer = setTimeout(() => this.lost(c, 'timeout'), wait);
    const base = eventsBase(c.origin, this.o.roomId);
    const q = new URLSearchParams({ ticket });
    c.from = this.lastId; // where this stream resumes (null: from when it is live)
    try {
      if (c.kind === 'sse') this.openSse(c, base, q);
      else if (c.kind === 'ws') this.openWs(c, q);
      else this.openPoll(c, base, ticket);
    } catch {
      // the constructor refused the address: the page's policy (CSP) forbids it
      this.lost(c, 'blocked');
    }
  }

  openSse(c, base, q) {
    if (this.lastId) q.set('last_event_id', this.lastId);
    q.set('subscribed', '1'); // "live from here" as an event: EventSource hides comments
    const es = new EventSource(`${base}?${q}`);
    c.es = es;
    // the head proves the route, not that the stream is live (as a WebSocket's 101)
    es.onopen = () => { if (!c.dead) this.routeWorks(c); };
    es.addEventListener('subscribed', (ev) => this.live(c, ev.lastEventId));
    // EventSource would reconnect by itself, but with an expired ticket: we do it instead
    es.onerror = () => this.lost(c, es.readyState === EventSource.CLOSED && !c.open ? 'refused' : 'dropped');
    for (const t of EVENT_TYPES) {
      es.addEventListener(t, (ev) => { if (!c.dead) this.deliver(t, ev.lastEventId, ev.data); });
    }
    es.onmessage = (ev) => { if (!c.dead) this.deliver('message', ev.lastEventId, ev.data); };
  }

  openWs(c, q) {
    if (this.lastId) q.set('last_event_id', this.lastId);
    const path = eventsBase(null, this.o.roomId);
    const ws = new WebSocket(`${wsOrigin(c.origin, location)}${path}/ws?${q}`);
    c.ws = ws;
    // the 101 proves the route, not that the stream is live: events committed before the
    // broker has caught up would be neither in a document read now nor on the stream
    ws.onopen = () => { if (!c.dead) this.routeWorks(c); };
    ws.onclose = () => this.lost(c, 'dropped');
    ws.onerror = () => { /* onclose follows */ };
    ws.onmessage = (ev) => {
      if (c.dead || typeof ev.data !== 'string') return;
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!m || typeof m.type !== 'string') return;
      if (m.type === 'subscribed') this.live(c, m.id);
      else this.deliver(m.type, m.id, m.data);
    };
  }

  // The stream's `subscribed` (a WebSocket frame, an SSE event): live from here; its id is
  // where the room stood.
  live(c, id) {
    if (c.dead || c.open) return;
    if (this.lastId === null && typeof id === 'string' && /^\d+-\d+$/.test(id)) this.lastId = id;
    this.opened(c);
  }

  // Long-poll: one request after another, each answered when there are events.
  async openPoll(c, base, firstTicket) {
    let ticket = firstTicket;
    let ticketAt = Date.now();
    let since = this.lastId;
    // a poll stands unanswered while the room is quiet, so standing proves nothing of a
    // direct origin that is never answered (a firewall dropping packets): there the broker's
    // health answer must come first, within the direct route's open time
    if (c.origin && !this.directEverOpened) {
      let ok = false;
      try {
        const r = await fetch(`${c.origin}/events/health`,
          { cache: 'no-store', signal: AbortSignal.timeout(DIRECT_OPEN_TIMEOUT_MS) });
        ok = r.ok;
      } catch { /* refused, never answered, or not readable from this page (CORS, CSP) */ }
      if (c.dead || this.closed) return;
      if (!ok) {
        this.lost(c, 'refused');
        return;
      }
    }
    // a poll is answered only when there are events: the stream counts as open once the
    // first request has stood for a moment without failing
    clearTimeout(c.openTimer);
    c.openTimer = setTimeout(() => { if (!c.open) this.opened(c); }, 1500);
    while (!c.dead && !this.closed) {
      if (Date.now() - ticketAt > TICKET_REUSE_MS) {
        try {
          ticket = await this.o.ticket();
          ticketAt = Date.now();
        } catch (e) {
          this.lost(c, e && e.status ? e.status : 'ticket');
          return;
        }
      }
      const q = new URLSearchParams({ ticket });
      if (since) q.set('since', since);
      c.abort = new AbortController();
      let res;
      let body;
      try {
        res = await fetch(`${base}/poll?${q}`, { signal: c.abort.signal, cache: 'no-store' });
        body = res.ok ? await res.json() : null;
      } catch {
        this.lost(c, 'dropped');
        return;
      }
      if (c.dead) return;
      if (!res.ok) {
        this.lost(c, res.status === 401 ? 'ticket' : res.status);
        return;
      }
      if (!c.open) this.opened(c);
      this.routeWorks(c);
      for (const ev of body.events || []) this.deliver(ev.type, ev.id, ev.data);
      if (body.last_event_id) since = body.last_event_id;
      else if (this.lastId) since = this.lastId;
    }
  }
}
