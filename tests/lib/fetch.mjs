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
