// The Socket.IO side of `make bench-compare` (bench/compare.sh starts it): a Socket.IO 4
// server with the Redis adapter on its own redis-server, the way Socket.IO is deployed when
// it has to scale past one process. Every client that connects joins the room "bench";
// POST /publish with a JSON body sends it as the `msg` event to the room (the writer's side,
// shaped like our POST of an operation and Nchan's publisher POST). POST /gc runs V8's
// garbage collector (with --expose-gc) before the harness reads the process's RSS.
//   PORT (the HTTP port), REDIS_URL (redis://127.0.0.1:PORT)
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const port = Number(process.env.PORT);
const redisUrl = process.env.REDIS_URL;
if (!port || !redisUrl) {
  console.error('compare-socketio: PORT and REDIS_URL are required');
  process.exit(2);
}

const pub = createClient({ url: redisUrl });
const sub = pub.duplicate();
for (const c of [pub, sub]) c.on('error', (e) => console.error(`compare-socketio: redis: ${e.message}`));
await Promise.all([pub.connect(), sub.connect()]);

const http = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/gc') {
    // before the harness reads our RSS: a collected heap, so that the per-stream figure
    // is not V8's garbage of the moment (node --expose-gc; bench/compare.sh starts it so)
    if (global.gc) global.gc();
    res.writeHead(204).end();
    return;
  }
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  const parts = [];
  req.on('data', (d) => parts.push(d));
  req.on('end', () => {
    const text = Buffer.concat(parts).toString('utf8');
    let msg;
    try { msg = JSON.parse(text); } catch { msg = text; }
    io.to('bench').emit('msg', msg);
    res.writeHead(202, { 'content-length': '0' }).end();
  });
});
const io = new Server(http, { adapter: createAdapter(pub, sub), transports: ['websocket'] });
io.on('connection', (socket) => socket.join('bench'));
http.listen(port, '127.0.0.1', () => console.log(`compare-socketio: listening on ${port}`));

const stop = () => { io.close(); pub.quit().catch(() => {}); sub.quit().catch(() => {}); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
