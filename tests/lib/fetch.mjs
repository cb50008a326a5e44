// fetch() for the suites' requests to a server kept alive between them (lighttpd, Apache,
// the broker), sent once more when the connection it went out on turned out closed.
//
// Node's fetch keeps a connection open after an answer and sends the next request on it.
// The web server closes a connection idle for its keep-alive bound (lighttpd's
// server.max-keep-alive-idle: 30 s), and node reads that close only when its event loop
// runs; a suite that blocks the loop for longer (cgi() of tests/lib/api.mjs waits for the
// API with spawnSync, and a loaded machine makes a row of them last half a minute) sends its
// next request on the closed connection, and fetch fails with UND_ERR_SOCKET "other side
// closed" though the server was never asked (reproduced with lighttpd 1.4.69: 5 to 10 of 10
// such requests failed). Such a request is sent once more, on a new connection. Any other
// failure, and a second one, is the caller's.
export async function keptFetch(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    if (e?.cause?.code !== 'UND_ERR_SOCKET') throw e;
    return fetch(url, init);
  }
}

// One JSON API request of a suite, to the server at base (its origin, no trailing /): body an
// object (sent as JSON), a string or bytes (sent as they are), or undefined (none); token
// sent as the bearer. {status, headers, text, json}: json is null when the answer is empty or
// not JSON. The one request helper of the suites (tests/lib/api.mjs call, tests/lib/direct.mjs
// call and the suites that talk to a front door of their own wrap it).
export async function request(base, method, path, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  const res = await keptFetch(base + path, { method, headers: h, body: payload });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: json stays null */ }
  return { status: res.status, headers: res.headers, text, json };
}
