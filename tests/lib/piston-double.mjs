// A stand-in for a Piston server (v2 API) on loopback, for the worker's tests. It records
// every request and answers according to markers in the submitted code:
//   PISTON_400      400 {"message": "..."} as Piston does for an unknown runtime
//   PISTON_SLOW     answers after `slowMs` (to trip the worker's timeout)
//   PISTON_HOLD     answers only once the test calls release() (at once after it); held()
//                   says how many wait
//   PISTON_BADJSON  200 with a body that is not JSON
//   PISTON_500      500 with an HTML body
//   PISTON_COMPILE_ERROR  a compile stage that failed, no run stage
//   PISTON_TIMEOUT  a run stage that Piston itself timed out (status TO, SIGKILL)
//   PISTON_ODDTEXT  a run stage whose output is not clean text: ODD_STDOUT and ODD_STDERR
//                   (escaped lone surrogates, an escaped NUL, bytes that are not UTF-8),
//                   written as raw bytes, since no JSON serializer writes them
//   PISTON_400_ODD  400 {"message"} with ODD_MESSAGE as the message (raw bytes)
//   PISTON_RAWNUL   a run stage whose stdout is NUL_STDOUT: NUL bytes as they are (JSON allows
//                   them only escaped, but a server may pass a program's \0 on so) and an
//                   escaped one
//   PISTON_STAGE    a run stage {stdout: "out", stderr: ""} whose other members are the
//                   rest of the code's line after the marker, written as they are
//                   (`# PISTON_STAGE "code":1.5,"signal":null`): an exit code or a signal
//                   of the test's choosing
//   PISTON_BIGOUT   a run stage with `bigOut` bytes of stdout ("x"), `bigOut` of stderr
//   otherwise       a run stage echoing the code's first line, stdin and args
// GET /api/v2/runtimes answers RUNTIMES, or `runtimesBody` (raw bytes, a Buffer) when given:
// a list with names a JSON serializer would not write (bytes that are not UTF-8); after
// `runtimesDelayMs` (0: at once). `runtimesBody` may also be a function of the request's
// number (1, 2, ...) giving the Buffer, or HANG: the answer's headers and a first part of
// its body are sent, the rest never.
import { createServer } from 'node:http';

export const RUNTIMES = [
  { language: 'python', version: '3.10.0', aliases: ['py', 'py3', 'python3'] },
  { language: 'c', version: '10.2.0', aliases: ['gcc'], runtime: 'gcc' },
  { language: 'javascript', version: '18.15.0', aliases: ['node-javascript', 'node-js', 'javascript', 'js'], runtime: 'node' },
];

// PISTON_ODDTEXT's stdout and stderr as the contents of JSON strings (raw bytes): escapes
// of lone surrogates (high, low, a high one at the end), of a NUL and of a surrogate pair;
// bytes that are not UTF-8 (FF, a lead byte without its continuation).
export const ODD_STDOUT = Buffer.from('high \\ud800 low \\udc00 nul \\u0000 pair \\ud83d\\ude00 end \\ud83d');
export const ODD_STDERR = Buffer.concat([
  Buffer.from('bytes '), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from(' after'),
]);

// an error message with a lone surrogate escape, an escaped NUL, a byte that is not UTF-8,
// a terminal control sequence, and 1,000 bytes more
export const ODD_MESSAGE = Buffer.concat([
  Buffer.from('bad \\ud800 name \\u0000 x'), Buffer.from([0xff]), Buffer.from(` \\u001b[2J${'m'.repeat(1000)}`),
]);

// PISTON_RAWNUL's stdout as the contents of a JSON string (raw bytes): what a program that
// printed "nul \0 raw \0\0 esc \0 end" looks like passed on raw, one NUL escaped
export const NUL_STDOUT = Buffer.concat([
  Buffer.from('nul '), Buffer.from([0]), Buffer.from(' raw '), Buffer.from([0, 0]), Buffer.from(' esc \\u0000 end'),
]);

export const HANG = Symbol('hang');

export async function startPiston({ slowMs = 3000, runtimesBody, runtimesDelayMs = 0, bigOut = 0 } = {}) {
  let runtimesAsked = 0;
  const requests = [];
  // delayed answers not sent yet: cleared on close, so none keeps the test process alive
  const timers = new Set();
  // PISTON_HOLD answers not sent yet, and whether release() came
  let holding = [];
  let released = false;
  const later = (fn, ms) => {
    const t = setTimeout(() => { timers.delete(t); fn(); }, ms);
    timers.add(t);
  };
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const rec = { method: req.method, url: req.url, headers: req.headers, body };
      try { rec.json = body ? JSON.parse(body) : undefined; } catch { rec.json = undefined; }
      requests.push(rec);
      const path = req.url.split('?')[0]; // a query of PISTON_URL's own comes along
      const send = (status, obj, raw) => {
        const text = raw ?? JSON.stringify(obj);
        res.writeHead(status, { 'content-type': raw ? 'text/html' : 'application/json' });
        res.end(text);
      };
      if (req.method === 'GET' && path === '/api/v2/runtimes') {
        runtimesAsked++;
        const body = typeof runtimesBody === 'function' ? runtimesBody(runtimesAsked) : runtimesBody;
        const answer = () => {
          if (!body) return send(200, RUNTIMES);
          res.writeHead(200, { 'content-type': 'application/json' });
          if (body === HANG) return res.write('[{"language":"python","version":"3.10.0","aliases":[');
          return res.end(body);
        };
        if (runtimesDelayMs > 0) return later(answer, runtimesDelayMs);
        return answer();
      }
      if (req.method !== 'POST' || path !== '/api/v2/execute') {
        return send(404, { message: `no route ${req.method} ${req.url}` });
      }
      const j = rec.json;
      if (!j || typeof j.language !== 'string' || !Array.isArray(j.files)) {
        return send(400, { message: 'language is required as a string' });
      }
      const code = j.files[0]?.content ?? '';
      const rt = RUNTIMES.find((r) => r.language === j.language || r.aliases.includes(j.language));
      if (code.includes('PISTON_400_ODD')) {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(Buffer.concat([Buffer.from('{"message":"'), ODD_MESSAGE, Buffer.from('"}')]));
      }
      if (code.includes('PISTON_400') || !rt) {
        return send(400, { message: `${j.language}-${j.version} runtime is unknown` });
      }
      if (code.includes('PISTON_BADJSON')) return send(200, null, '{"run": {"stdout": "cut');
      if (code.includes('PISTON_500')) return send(500, null, '<html>bad gateway</html>');
      if (code.includes('PISTON_COMPILE_ERROR')) {
        const stderr = 'main.c:1:1: error: expected declaration\n';
        return send(200, {
          language: rt.language, version: rt.version,
          compile: { stdout: '', stderr, output: stderr, code: 1, signal: null },
        });
      }
      if (code.includes('PISTON_ODDTEXT')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(Buffer.concat([
          Buffer.from(`{"language":"${rt.language}","version":"${rt.version}","run":{"stdout":"`), ODD_STDOUT,
          Buffer.from('","stderr":"'), ODD_STDERR, Buffer.from('","output":"'), ODD_STDOUT, ODD_STDERR,
          Buffer.from('","code":0,"signal":null}}'),
        ]));
      }
      if (code.includes('PISTON_RAWNUL')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(Buffer.concat([
          Buffer.from(`{"language":"${rt.language}","version":"${rt.version}","run":{"stdout":"`), NUL_STDOUT,
          Buffer.from('","stderr":"","output":"'), NUL_STDOUT, Buffer.from('","code":0,"signal":null}}'),
        ]));
      }
      const stage = /PISTON_STAGE ?(.*)/.exec(code);
      if (stage) {
        res.writeHead(200, { 'content-type': 'application/json' });
        const more = stage[1] ? `,${stage[1]}` : '';
        return res.end(`{"language":"${rt.language}","version":"${rt.version}","run":{"stdout":"out","stderr":""${more}}}`);
      }
      if (code.includes('PISTON_BIGOUT')) {
        const out = 'x'.repeat(bigOut);
        return send(200, {
          language: rt.language, version: rt.version,
          run: { stdout: out, stderr: out, output: out + out, code: 0, signal: null },
        });
      }
      if (code.includes('PISTON_TIMEOUT')) {
        return send(200, {
          language: rt.language, version: rt.version,
          run: { stdout: 'partial', stderr: '', output: 'partial', code: null, signal: 'SIGKILL',
            status: 'TO', message: 'Timeout' },
        });
      }
      const stdout = `ran ${code.split('\n')[0]} | stdin=${j.stdin ?? ''} | args=${(j.args ?? []).join(',')}\n`;
      const answer = () => send(200, {
        language: rt.language, version: rt.version,
        run: { stdout, stderr: 'warn\n', output: stdout + 'warn\n', code: 3, signal: null, wall_time: 42 },
      });
      if (code.includes('PISTON_SLOW')) later(answer, slowMs);
      else if (code.includes('PISTON_HOLD') && !released) holding.push(answer);
      else answer();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    held: () => holding.length,
    release: () => {
      released = true;
      const now = holding;
      holding = [];
      for (const answer of now) answer();
    },
    close: () => new Promise((resolve) => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      holding = [];
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}
