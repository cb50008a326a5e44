// A real Redis Cluster for tests, on free ports with throwaway data: redis-server nodes in
// cluster mode joined by `redis-cli --cluster create`. Any suite may use it:
//   const c = await startRedisCluster({ masters: 3, replicas: 0 });
//   await c.cmd('SET', 'cc:room:{r1}:x', '1');   // sent to the node that owns the slot
//   await c.stop();
// c.nodes: [{port, proc}] (masters first as created); c.cmd(...args) routes by the slot of
// the first key (EVAL/EVALSHA: the first of its KEYS; other commands: args[1]) with CLUSTER
// KEYSLOT and follows MOVED/ASK, so what a script answers is the cluster's own verdict
// (CROSSSLOT, "keys that do not hash to the same slot" come back as rejections).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort, start, stop, tempDir, waitFor } from './procs.mjs';
import { connectRedis } from './resp.mjs';

export async function startRedisCluster({ masters = 3, replicas = 0, timeout = 30000 } = {}) {
  const dir = tempDir('cc-rcluster-');
  const nodes = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await freePort();
    const proc = start('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
      '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--dbfilename', `dump-${port}.rdb`]);
    nodes.push({ port, proc });
  }
  const clients = new Map();
  const client = async (port) => {
    if (!clients.has(port)) clients.set(port, await connectRedis(port));
    return clients.get(port);
  };
  for (const n of nodes) {
    await waitFor(() => client(n.port).then((r) => r.cmd('PING')).catch(() => {
      clients.delete(n.port);
      return null;
    }), { timeout, what: `redis node on ${n.port}` });
  }
  const create = spawnSync('redis-cli', ['--cluster', 'create',
    ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas),
    '--cluster-yes'], { encoding: 'utf8', timeout });
  if (create.status !== 0) {
    throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
  }
  for (const n of nodes) {
    await waitFor(async () => /cluster_state:ok/.test(await (await client(n.port)).cmd('CLUSTER', 'INFO')),
      { timeout, what: `cluster_state:ok on ${n.port}` });
  }
  // every node must agree that every slot is served before the first command
  await waitFor(async () => {
    for (const n of nodes) {
      const slots = await (await client(n.port)).cmd('CLUSTER', 'SLOTS');
      const covered = slots.reduce((s, [a, b]) => s + (b - a + 1), 0);
      if (covered !== 16384) return false;
    }
    return true;
  }, { timeout, what: 'every slot served' });

  const first = nodes[0].port;
  async function slotOf(key) {
    return (await client(first)).cmd('CLUSTER', 'KEYSLOT', key);
  }
  // The node (port) that owns a key's slot now.
  async function portOf(key) {
    const slot = await slotOf(key);
    for (const [a, b, [, port]] of await (await client(first)).cmd('CLUSTER', 'SLOTS')) {
      if (slot >= a && slot <= b) return port;
    }
    throw new Error(`no node serves slot ${slot}`);
  }
  function routingKey(args) {
    const verb = String(args[0]).toUpperCase();
    if (verb === 'EVAL' || verb === 'EVALSHA') return Number(args[2]) > 0 ? args[3] : null;
    return args.length > 1 ? args[1] : null;
  }
  async function cmd(...args) {
    const key = routingKey(args);
    let port = key === null ? first : await portOf(key);
    let asking = false;
    for (let hop = 0; hop < 5; hop++) {
      const r = await client(port);
      try {
        if (asking) await r.cmd('ASKING');
        return await r.cmd(...args);
      } catch (e) {
        const m = /^(MOVED|ASK) \d+ [^:]*:(\d+)$/.exec(e.message);
        if (!m) throw e;
        port = Number(m[2]);
        asking = m[1] === 'ASK';
      }
    }
    throw new Error(`too many redirections for ${args[0]} ${key}`);
  }
  async function stopAll() {
    for (const r of clients.values()) r.close();
    clients.clear();
    await Promise.all(nodes.map((n) => stop(n.proc, 'SIGKILL')));
  }
  return { nodes, dir, cmd, slotOf, portOf, client, stop: stopAll };
}
