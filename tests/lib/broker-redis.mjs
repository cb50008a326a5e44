// A broker on a redis-server of its own, as the broker's program suites use them: started in
// a suite's before(), stopped in its after(), where the broker must exit 0.
import assert from 'node:assert/strict';
import { startRedis, startBroker, stop } from './procs.mjs';
import { connectRedis } from './resp.mjs';

// {redis, rc (a client of it), broker}. A broker that does not start takes its Redis down
// with it, so that a failed before() leaves nothing running.
export async function startBrokerOnRedis({ secret, env = {} }) {
  const redis = await startRedis();
  let rc;
  try {
    rc = await connectRedis(redis.port);
    const broker = await startBroker({ redisPort: redis.port, secret, env });
    return { redis, rc, broker };
  } catch (e) {
    rc?.close();
    await stop(redis);
    throw e;
  }
}

export async function stopBrokerOnRedis({ redis, rc, broker }) {
  rc?.close();
  if (broker) {
    const r = await stop(broker);
    assert.equal(r.code, 0, `broker exit: ${JSON.stringify(r)}\n${broker.output}`);
  }
  if (redis) await stop(redis);
}
