// A share of the SSE subscribers of bench/compare.mjs or bench/cluster.mjs in a process of its
// own, for N above what one process's descriptors hold (started by bench/subpool.mjs). Told
// over the IPC channel:
//   {cmd: 'open', n, conc, host, port, path, timeoutMs}  opens n streams ("{ticket}" in path
//        is replaced by the latest ticket sent), answers {connected, failed, firstError}
//   {ticket}                 a fresh stream ticket for the streams still to open
//   {cmd: 'count'}           answers {count}: receipts so far
//   {cmd: 'collect'}         answers {rec}: [marker, time, marker, time, …], the time on
//                            the clock every process shares (performance.timeOrigin + now)
//   {cmd: 'close'}           closes every stream and forgets the receipts
import { sseConnect } from './lib.mjs';
import { openPool } from './compare-lib.mjs';

const markerRe = /"client_id":"m(\d+)"/;
let ticket = '';
let socks = [];
let rec = [];
const onEvent = (block, at) => {
  if (!block.includes('event: operation')) return;
  const m = markerRe.exec(block);
  if (m) rec.push(Number(m[1]), at + performance.timeOrigin);
};

process.on('message', async (m) => {
  if (m.ticket) ticket = m.ticket;
  switch (m.cmd) {
    case 'open': {
      const pool = await openPool(m.n, m.conc, () => sseConnect({
        host: m.host, port: m.port, path: m.path.replace('{ticket}', encodeURIComponent(ticket)),
        onEvent, timeoutMs: m.timeoutMs,
      }));
      socks = pool.socks;
      process.send({ connected: pool.socks.length, failed: pool.failed, firstError: pool.firstError });
      break;
    }
    case 'count': process.send({ count: rec.length / 2 }); break;
    case 'collect': process.send({ rec }); break;
    case 'close':
      for (const s of socks) s.destroy();
      socks = [];
      rec = [];
      process.send({ closed: true });
      break;
    default: break;
  }
});
process.on('disconnect', () => process.exit(0));
