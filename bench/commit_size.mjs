// Time per committed operation against the document's size: one client commits one-
// character inserts back to back through lighttpd and the API, on documents of 0 to
// 1,000,000 code points. Prints the table of docs/BENCHMARKS.md. Needs BASE_URL
// (bench/run.sh sets it).
//   BENCH_COMMITS (default 1000 per size: more than one committer's fold, DOC_FOLD_EVERY
//   = 500, so its cost is in the mean), BENCH_SIZES (default 0,10000,100000,500000,1000000)
import http from 'node:http';

const BASE = new URL(process.env.BASE_URL);
const COMMITS = Number(process.env.BENCH_COMMITS || 1000);
const SIZES = (process.env.BENCH_SIZES || '0,10000,100000,500000,1000000').split(',').map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

// One request on a kept-alive connection (node's http is cheaper per call than fetch).
function call(method, path, token, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload);
    const req = http.request({ host: BASE.hostname, port: BASE.port, method, path, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, text });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const name = 'size' + Math.random().toString(36).slice(2, 10);
const token = (await call('POST', '/api/auth/register', undefined, { username: name, password: 'bench-password' })).json.token;

console.log(`time per commit against document size (${COMMITS} one-character inserts, one client)`);
console.log('| document size (code points) | time per commit |');
console.log('|---|---|');
for (const size of SIZES) {
  const room = (await call('POST', '/api/rooms', token, { name: 'size', language: 'plaintext' })).json.room.id;
  let rev = 0;
  if (size > 0) {
    const r = await call('POST', `/api/rooms/${room}/operations`, token, { revision: 0, ops: ['x'.repeat(size)] });
    if (r.status !== 200) throw new Error(`filling the document: ${r.status} ${r.text}`);
    rev = r.json.revision;
  }
  // a few warm-up commits, then the measured ones
  for (let i = 0; i < 20; i++) rev = (await call('POST', `/api/rooms/${room}/operations`, token, { revision: rev, ops: ['w'] })).json.revision;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < COMMITS; i++) {
    const r = await call('POST', `/api/rooms/${room}/operations`, token, { revision: rev, ops: ['k'] });
    if (r.status !== 200) throw new Error(`commit: ${r.status} ${r.text}`);
    rev = r.json.revision;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / COMMITS;
  console.log(`| ${size.toLocaleString('en-US')} | ${ms.toFixed(2)} ms |`);
}
agent.destroy();
