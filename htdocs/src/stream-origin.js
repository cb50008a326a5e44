// Where a room's stream can be opened straight at the broker (docs/CLIENT.md, "Direct
// streams"): the checks on an origin the server names, and the addresses of the streams
// there. Free of the DOM: the page (stream-route.js) and the shared worker
// (stream-worker.js) both use it.

const ORIGIN_MAX = 255;

// The origin the server named, as "scheme://host[:port]", or null when it cannot be used
// from a page at `pageOrigin`: not a string, not http(s), carrying a path, a query or
// credentials, plain http under an https page (the browser would refuse it as mixed
// content), or the page's own origin (that is the front door itself).
export function checkOrigin(value, pageOrigin) {
  if (typeof value !== 'string' || value.length === 0 || value.length > ORIGIN_MAX) return null;
  let u;
  try {
    u = new URL(value);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  if (u.username || u.password || u.search || u.hash || (u.pathname !== '/' && u.pathname !== '')) return null;
  // a host name or a bracketed IPv6 address and a port, nothing the parser would tidy away
  if (!/^https?:\/\/[A-Za-z0-9.\-[\]:]+\/?$/i.test(value)) return null;
  let page = null;
  try {
    page = new URL(pageOrigin);
  } catch { /* no page origin: no comparison */ }
  if (page && page.protocol === 'https:' && u.protocol === 'http:') return null;
  if (page && page.origin === u.origin) return null;
  return u.origin;
}

// The base of a room's streams: the path on the front door, or the same path at `origin`.
export function eventsBase(origin, roomId) {
  return `${origin || ''}/events/rooms/${encodeURIComponent(roomId)}`;
}

// The WebSocket address's beginning ("ws://host:port"): at `origin`, or at the page's host.
export function wsOrigin(origin, pageLocation) {
  if (origin) {
    const u = new URL(origin);
    return `${u.protocol === 'https:' ? 'wss:' : 'ws:'}//${u.host}`;
  }
  return `${pageLocation.protocol === 'https:' ? 'wss:' : 'ws:'}//${pageLocation.host}`;
}

// Whether the broker is away, as the front door sees it (`GET /events/health` through it,
// with the `fetch` given): its proxy answering that the broker is down (502, 503, 504), or no
// answer at all (nothing of the site can be reached). A failure at the direct origin then
// says nothing about that route. Any other answer means the broker is there.
export async function brokerAway(fetchFn) {
  try {
    const r = await fetchFn('/events/health', { cache: 'no-store' });
    if (r.status === 502 || r.status === 503 || r.status === 504) return true;
    // the broker is up but without its event store: streams fail on either route alike
    if (r.status === 200 && typeof r.json === 'function') {
      const j = await r.json().catch(() => null);
      return Boolean(j && typeof j === 'object' && typeof j.redis === 'string' && j.redis !== 'ok');
    }
    return false;
  } catch {
    return true;
  }
}

// Whether an address (a CSP report's blocked URI, say) is at `origin`'s host and port,
// whatever its scheme (ws: for http:, wss: for https:).
export function atOrigin(address, origin) {
  if (!origin || typeof address !== 'string') return false;
  try {
    const a = new URL(address);
    const o = new URL(origin);
    const port = (u) => u.port || ({ 'http:': '80', 'ws:': '80', 'https:': '443', 'wss:': '443' })[u.protocol] || '';
    return a.hostname === o.hostname && port(a) === port(o);
  } catch {
    return false;
  }
}
