// A real Redis Cluster for tests: redis-server nodes in cluster mode on free ports, joined by
// `redis-cli --cluster create`, and what a test needs around it: the slot of a key (CRC16 as
// lib/rslot.c computes it), the master serving a slot, a command sent to the right node
// (MOVED and ASK followed, retried while a failover is under way), kill -9 of a node, SIGSTOP
// and SIGCONT of one (pause, resume), and the migration of a slot from one master to another
// (CLUSTER SETSLOT + MIGRATE).
//
//   const c = await startRedisCluster({ masters: 3, replicas: 1 });
//   c.seeds            // "127.0.0.1:P1,127.0.0.1:P2,..." (REDIS_CLUSTER)
//   await c.cmd(key, 'GET', key)
//   await c.send('EVAL', script, 1, key, arg)   // routed by the command's own key
//   await c.stop()
//
// Every process is registered with procs.mjs, so it is killed when the test process exits.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { start, stop, tempDir, waitFor, sleep } from './procs.mjs';
import { freeBlock } from './ports.mjs';
import { Redis } from './resp.mjs';

// CRC16/XMODEM of the hash tag (or the whole key), mod 16384: Redis Cluster's key slot.
export function slotOf(key) {
  const b = Buffer.from(String(key));
  let s = b.indexOf('{');
  let bytes = b;
  if (s >= 0) {
    const e = b.indexOf('}', s + 1);
    if (e > s + 1) bytes = b.subarray(s + 1, e);
  }
  let crc = 0;
  for (const x of bytes) {
    crc ^= x << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 16383;
}

async function connect(port) {
  const r = new Redis(port);
  await r.connect();
  // a node killed under a test must not take the test down with an unhandled error
  r.sock.on('error', () => {});
  return r;
}

async function once(port, ...args) {
  const r = await connect(port);
  try { return await r.cmd(...args); } finally { r.close(); }
}

function info(text, field) {
  const m = String(text).match(new RegExp(`^${field}:(.*)$`, 'm'));
  return m ? m[1].trim() : undefined;
}

function startNode(port, dir, nodeTimeout) {
  return start('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
    '--cluster-node-timeout', String(nodeTimeout), '--save', '', '--appendonly', 'yes',
    '--dir', dir]);
}

export async function startRedisCluster({ masters = 3, replicas = 1, nodeTimeout = 1000 } = {}) {
  const total = masters * (1 + replicas);
  const nodes = [];
  try {
    return await build();
  } catch (e) {
    // nothing of a cluster that did not come up is left running
    await Promise.all(nodes.map((n) => stop(n.child, 'SIGKILL')));
    throw e;
  }

  async function build() {
  const used = new Set();
  for (let i = 0; i < total; i++) {
    // a port another process takes between the choice and the bind: another port
    for (let attempt = 1; ; attempt++) {
      let port;
      // its cluster bus port (port + 10000) free and claimed as well
      do port = await freeBlock(1, { twin: 10000 }); while (used.has(port));
      used.add(port);
      const dir = tempDir('cc-rcluster-');
      const child = startNode(port, dir, nodeTimeout);
      const up = await waitFor(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return 'exited';
        return (await once(port, 'PING')) === 'PONG' && 'up';
      }, { what: `redis ${port}`, timeout: 30000 });
      if (up === 'up') {
        const n = { port, dir, child };
        n.id = await once(port, 'CLUSTER', 'MYID');
        nodes.push(n);
        break;
      }
      if (attempt === 3) throw new Error(`redis-server on ${port} exited: ${child.output}`);
    }
  }
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
    '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8', timeout: 60000 });
  if (create.status !== 0) throw new Error(`redis-cli --cluster create: ${create.stdout}${create.stderr}`);

  const c = {
    nodes,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    // the nodes that answer: running, and not stopped by pause()
    alive: () => nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null && !n.paused),
    slotOf,

    // CLUSTER SLOTS from a live node: [{ from, to, port }] of the masters
    async slots() {
      for (const n of c.alive()) {
        try {
          const rows = await once(n.port, 'CLUSTER', 'SLOTS');
          return rows.map((r) => ({ from: r[0], to: r[1], port: r[2][1] }));
        } catch { /* try the next node */ }
      }
      throw new Error('no node answers CLUSTER SLOTS');
    },
    async masterOfSlot(slot) {
      const row = (await c.slots()).find((r) => r.from <= slot && slot <= r.to);
      return row ? nodes.find((n) => n.port === row.port) : undefined;
    },
    masterOf: (key) => c.masterOfSlot(slotOf(key)),
    masters: async () => [...new Set((await c.slots()).map((r) => r.port))].map((p) => nodes.find((n) => n.port === p)),

    // every live node agrees: state ok, every slot served, by a live master
    async ready() {
      for (const n of c.alive()) {
        const i = await once(n.port, 'CLUSTER', 'INFO');
        if (info(i, 'cluster_state') !== 'ok' || info(i, 'cluster_slots_ok') !== '16384') return false;
      }
      for (const r of await c.slots()) {
        const m = nodes.find((n) => n.port === r.port);
        if (!m || !c.alive().includes(m)) return false;
      }
      return true;
    },

    // A command for key at the node that serves it; MOVED and ASK followed; while the
    // cluster is failing over (refused connections, CLUSTERDOWN, TRYAGAIN) tried again until
    // timeout. Any other error answer (CROSSSLOT, a script's error) is the command's own
    // and comes back at once. Extra commands may follow on the same connection (e.g. WAIT):
    // `then`.
    async cmd(key, ...args) { return c.cmdThen(key, args, null); },
    // The same, routed by the command's own key: an EVAL's or EVALSHA's first key, else its
    // first argument; a command without a key goes to any master.
    async send(...args) {
      const verb = String(args[0]).toUpperCase();
      let key = args.length > 1 ? args[1] : undefined;
      if (verb === 'EVAL' || verb === 'EVALSHA') key = Number(args[2]) > 0 ? args[3] : undefined;
      if (key === undefined) return once((await c.masters())[0].port, ...args);
      return c.cmd(key, ...args);
    },
    portOf: async (key) => (await c.masterOf(key))?.port,
    async cmdThen(key, args, then, { timeout = 15000 } = {}) {
      const end = Date.now() + timeout;
      let port = (await c.masterOf(key).catch(() => undefined))?.port;
      let asking = false;
      let last;
      while (Date.now() < end) {
        let r;
        try {
          if (!port) throw new Error('no master known for the slot');
          r = await connect(port);
          if (asking) await r.cmd('ASKING');
          const v = await r.cmd(...args);
          const extra = then ? await then(r) : undefined;
          return then ? [v, extra] : v;
        } catch (e) {
          last = e;
          const m = /^(MOVED|ASK) \d+ [^:]+:(\d+)/.exec(e.message || '');
          if (m) {
            port = Number(m[2]);
            asking = m[1] === 'ASK';
            continue;
          }
          if (e.reply && !/^(CLUSTERDOWN|TRYAGAIN|LOADING|MASTERDOWN|READONLY)\b/.test(e.message)) throw e;
          asking = false;
          await sleep(100);
          port = (await c.masterOf(key).catch(() => undefined))?.port;
        } finally {
          r?.close();
        }
      }
      throw new Error(`redis cluster: ${args[0]} for ${key}: ${last?.message}`);
    },

    // kill -9 of a node; resolves once the process is gone
    async kill(node) {
      node.child.kill('SIGKILL');
      await node.child.exited;
    },

    // SIGSTOP of a node: it keeps its connections but answers nothing (a frozen host) until
    // resume(); the helpers here ask the other nodes meanwhile
    pause(node) {
      node.paused = true;
      node.child.kill('SIGSTOP');
    },
    resume(node) {
      node.child.kill('SIGCONT');
      node.paused = false;
    },

    // Moves slot from its master to the master `to` (a node object): IMPORTING/MIGRATING,
    // MIGRATE of every key, then SETSLOT NODE on every master, as redis-cli --cluster reshard does.
    // `step(stage, from)`, when given, is awaited after each stage ('importing', 'migrating',
    // 'migrated', 'target', 'source'): a test looks at the cluster, or lets writes go on, there.
    async migrateSlot(slot, to, { step = async () => {} } = {}) {
      const from = await c.masterOfSlot(slot);
      if (!from || from === to) throw new Error('migrateSlot: no move');
      await once(to.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
      await step('importing', from);
      await once(from.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
      await step('migrating', from);
      for (;;) {
        const keys = await once(from.port, 'CLUSTER', 'GETKEYSINSLOT', slot, 100);
        if (!keys.length) break;
        await once(from.port, 'MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys);
      }
      await step('migrated', from);
      // the new owner first, then the old one (its subscribers are unsubscribed there), then the rest
      await once(to.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      await step('target', from);
      await once(from.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      await step('source', from);
      for (const m of await c.masters()) {
        if (m !== to && m !== from) await once(m.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', to.id).catch(() => {});
      }
    },

    once,

    async stop() {
      await Promise.all(nodes.map((n) => stop(n.child, 'SIGKILL')));
    },
  };

  await waitFor(() => c.ready(), { what: 'cluster_state:ok', timeout: 30000, interval: 200 });
  // replicas in sync, so a failover has a copy to promote
  if (replicas > 0) {
    await waitFor(async () => {
      for (const n of nodes) {
        const i = await once(n.port, 'INFO', 'replication');
        if (info(i, 'role') === 'slave' && info(i, 'master_link_status') !== 'up') return false;
      }
      return true;
    }, { what: 'replicas in sync', timeout: 30000, interval: 200 });
  }
  return c;
  }
}
