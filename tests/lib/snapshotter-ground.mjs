// What the snapshotter's program suites stand on: a redis-server and a PostgreSQL primary of
// their own (stopped once the suite is over), a JWT secret in a file, and the API binary run
// as CGI (cgi() of tests/lib/api.mjs, which starts it itself) to commit as a client does.
import { after } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startRedis, stop, tempDir } from './procs.mjs';
import { startPrimary, stopPg, pgUrl } from './pg.mjs';

export const SNAP_BIN = process.env.CC_SNAP_BIN || join(ROOT, 'build/asan/bin/codecollab-snapshotter');

// {cgi, redisSrv, pg, base}: base is the environment a snapshotter or the API needs to reach
// them (the suite adds its own settings).
export async function snapshotterGround(secret) {
  process.env.CC_API_BIN ||= join(ROOT, 'build/asan/bin/codecollab-api');
  // tests/lib/api.mjs serves the stack suites and wants the stack's address; only its cgi()
  // is used here
  process.env.CC_BASE_URL ||= 'http://127.0.0.1:9/';
  const { cgi } = await import('./api.mjs');
  const redisSrv = await startRedis();
  const pg = await startPrimary({ schema: join(ROOT, 'schema.sql') });
  const secretFile = join(tempDir('cc-jwt-'), 'secret');
  writeFileSync(secretFile, secret);
  after(async () => {
    await stopPg(pg);
    await stop(redisSrv);
  });
  const base = {
    REDIS_URL: `redis://127.0.0.1:${redisSrv.port}`, DATABASE_URL: pgUrl(pg), REDIS_CLUSTER: undefined,
    JWT_SECRET_FILE: secretFile,
  };
  return { cgi, redisSrv, pg, base };
}
