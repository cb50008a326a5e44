// The HTTP API (docs/API.md): JSON in and out, the session token in localStorage.

const TOKEN_KEY = 'cc.token';
const USER_KEY = 'cc.user';

export class ApiError extends Error {
  constructor(status, code, message, json) {
    super(message);
    this.status = status;
    this.code = code;
    this.json = json;
  }
}

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  get user() {
    try {
      return JSON.parse(localStorage.getItem(USER_KEY) || 'null');
    } catch {
      return null;
    }
  },
  // The user first: another tab reads the two keys one at a time, and must never take a new
  // token with the user before it (the shared stream worker tells users apart by the user
  // that comes with a token it has not seen, stream-worker.js).
  save(res) {
    localStorage.setItem(USER_KEY, JSON.stringify(res.user));
    localStorage.setItem(TOKEN_KEY, res.token);
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  },
};

// Signs out: the session is forgotten here at once (and so in every tab: the `storage`
// event), then ended on the server with the token it was (`POST /api/auth/logout`). Nothing
// waits for that answer: a server that is slow or does not answer at all must not leave the
// token in the browser, nor the page showing a room, after the person clicked Sign out (on a
// shared computer they may walk away). `keepalive` lets the request outlive the page, should
// the tab be closed at once. Resolves to whether the server said the session has ended
// (204, or 401: it had already); never rejects.
export function signOut() {
  const token = session.token;
  session.clear();
  if (!token) return Promise.resolve(true);
  return fetch('/api/auth/logout', {
    method: 'POST',
    headers: { accept: 'application/json', authorization: `Bearer ${token}` },
    cache: 'no-store',
    keepalive: true,
  }).then((res) => res.status === 204 || res.status === 401, () => false);
}

// The id of the user signed in on this browser now (every tab shares the session), or null.
export function signedInId() {
  const user = session.token ? session.user : null;
  return user && user.id !== undefined ? user.id : null;
}

// The user the view on screen started with (main.js route() sets it; undefined before the
// first view). A page must never act as anyone else: once another tab has signed out, or
// signed in as someone else, the page's calls are not sent (answered 401 here) until it has
// started its view again as whoever is signed in now.
let viewUser;
export function setViewUser(id) {
  viewUser = id;
}

// Whether the session is still the one the view started with.
export function sameSession() {
  return viewUser === undefined || signedInId() === viewUser;
}

// Listeners told when the session has ended: a call refused with 401 (`token`: the token
// it carried), or a stream refused with 401 while this page has no token any more (null).
const expiredListeners = new Set();
export function onSessionExpired(fn) {
  expiredListeners.add(fn);
}
export function sessionExpired(token) {
  for (const fn of expiredListeners) fn(token);
}

// Listeners told when a call was not sent because the session is no longer the view's.
const movedListeners = new Set();
export function onSessionMoved(fn) {
  movedListeners.add(fn);
}

// The answer to a call not sent because the session is no longer the view's (the app is
// told, and starts the view again as whoever is signed in now).
export const SESSION_CHANGED = 'You signed out or signed in as someone else in another tab.';
export function sessionChanged() {
  for (const fn of movedListeners) fn();
  return {
    status: 401,
    json: { error: 'session_changed', message: SESSION_CHANGED },
    headers: new Headers(),
  };
}

// The answer as {status, json, headers}; status 0 when there was none (network down).
// Never throws for HTTP errors: callers that want exceptions use api().
export async function request(method, path, body) {
  const auth = path.startsWith('/api/auth/'); // about the session itself: whoever holds it
  if (!auth && !sameSession()) return sessionChanged();
  const headers = { accept: 'application/json' };
  const token = session.token;
  if (token) headers.authorization = `Bearer ${token}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    return { status: 0, json: null, headers: new Headers() };
  }
  let json = null;
  if (res.status !== 204) json = await res.json().catch(() => null);
  // 401 means the session has ended on every endpoint but sign-in and sign-out (a wrong
  // password; a session signed out already): /api/auth/me is how a page asks whether its
  // session still stands (shared-stream.js, when the stream is refused with 401). A 401 to
  // a token another tab has replaced since is not this session's end: the page follows the
  // new session instead (main.js).
  if (res.status === 401 && token && session.token === token && (!auth || path === '/api/auth/me')) {
    sessionExpired(token);
  }
  return { status: res.status, json, headers: res.headers };
}

// The JSON answer of a successful call; an ApiError otherwise.
export async function api(method, path, body) {
  const r = await request(method, path, body);
  if (r.status >= 200 && r.status < 300) return r.json;
  if (r.status === 0) {
    throw new ApiError(0, 'network', navigator.onLine ? 'The server cannot be reached right now. Try again in a moment.'
      : 'You are offline: check your network connection.', null);
  }
  const j = r.json || {};
  const e = new ApiError(r.status, j.error || 'http_error', j.message || `The server answered ${r.status}.`, j);
  e.retryAfter = Number(r.headers.get('retry-after')) || 0;
  throw e;
}

export const room = (id) => `/api/rooms/${encodeURIComponent(id)}`;
