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
  save(res) {
    localStorage.setItem(TOKEN_KEY, res.token);
    localStorage.setItem(USER_KEY, JSON.stringify(res.user));
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  },
};

// Listeners told when a call is refused with 401 (the session has ended).
const expiredListeners = new Set();
export function onSessionExpired(fn) {
  expiredListeners.add(fn);
}

// The answer as {status, json, headers}; status 0 when there was none (network down).
// Never throws for HTTP errors: callers that want exceptions use api().
export async function request(method, path, body) {
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
  // session still stands (shared-stream.js, when the stream is refused with 401)
  if (res.status === 401 && token && (!path.startsWith('/api/auth/') || path === '/api/auth/me')) {
    for (const fn of expiredListeners) fn();
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
