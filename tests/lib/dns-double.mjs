// A nameserver of a test's own and a mount namespace to point a program at it: the program
// runs under `unshare --mount` with a resolv.conf and a hosts file of the test bind-mounted
// over /etc/resolv.conf and /etc/hosts, so the machine's own files are never touched. Needs
// root (mount namespaces, port 53): `namespaceSkip` says why not, or is false.
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { tempDir } from './procs.mjs';

export const HOSTS = '127.0.0.1 localhost\n127.0.0.1 redis-test.invalid\n';

// Whether a mount namespace with a bind mount over /etc/resolv.conf can be made here.
export function namespaceProblem() {
  const d = tempDir('cc-dns-probe-');
  const f = join(d, 'resolv.conf');
  writeFileSync(f, 'nameserver 127.0.0.1\n');
  const r = spawnSync('unshare', ['--mount', '--', 'sh', '-c', 'mount --bind "$1" /etc/resolv.conf', 'sh', f],
    { encoding: 'utf8', timeout: 10000 });
  if (r.error) return `unshare: ${r.error.message}`;
  return r.status === 0 ? null : `no mount namespace here: ${(r.stderr || '').trim()}`;
}
export const namespaceSkip = (process.getuid?.() !== 0 ? 'needs root (mount namespaces, port 53)' : namespaceProblem()) || false;

// The name a DNS query asks for (the question's labels).
export function qname(msg) {
  const labels = [];
  for (let i = 12; i < msg.length && msg[i] > 0 && msg[i] < 64; i += msg[i] + 1) {
    labels.push(msg.subarray(i + 1, i + 1 + msg[i]).toString('latin1'));
  }
  return labels.join('.').toLowerCase();
}

// The answer to query q (one question, copied as asked: the resolver checks its letters' case):
// the A record ip when q asks for A, else no record.
export function dnsAnswer(q, ip) {
  let end = 12;
  while (q[end] !== 0) end += q[end] + 1;
  end += 5; // the root label, type, class
  const isA = q.readUInt16BE(end - 4) === 1;
  const head = Buffer.alloc(12);
  q.copy(head, 0, 0, 2); // the id
  head.writeUInt16BE(0x8180, 2); // a response, recursion desired and available, no error
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(isA ? 1 : 0, 6);
  const parts = [head, q.subarray(12, end)];
  if (isA) {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the question's name
    rr.writeUInt16BE(1, 2); // A
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, i) => { rr[12 + i] = Number(o); });
    parts.push(rr);
  }
  return Buffer.concat(parts);
}

// A nameserver on a free 127.0.0.x address; `queries` are the names asked. It answers only the
// names of `answers` (name -> IPv4 address), `delayMs` after the query: their A query with the
// address, any other type with no record; every other query is never answered. With `once`,
// a name's queries of each type are answered the first time only (a second lookup of the
// name then waits as on a dead server).
export async function deadDns({ answers = {}, delayMs = 0, once = false } = {}) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const addr = `127.0.0.${2 + Math.floor(Math.random() * 250)}`;
    const s = dgram.createSocket('udp4');
    try {
      await new Promise((resolve, reject) => { s.once('error', reject); s.bind(53, addr, resolve); });
    } catch {
      s.close();
      continue;
    }
    const dns = { addr, queries: [], answered: new Set(), close: () => s.close() };
    s.on('message', (m, from) => {
      const name = qname(m);
      dns.queries.push(name);
      if (!(name in answers)) return;
      let end = 12;
      while (end < m.length && m[end] !== 0) end += m[end] + 1;
      const asked = `${name} ${end + 3 <= m.length ? m.readUInt16BE(end + 1) : 0}`; // name and type
      if (once && dns.answered.has(asked)) return;
      dns.answered.add(asked);
      setTimeout(() => s.send(dnsAnswer(m, answers[name]), from.port, from.address), delayMs);
    });
    return dns;
  }
  throw new Error('no free 127.0.0.x address for port 53');
}

// The command that runs argv (a program and its arguments) with /etc/resolv.conf naming only
// `dns` (timeout 5 s, 2 attempts: glibc would wait 10 s on a server that never answers), or
// holding `resolvConf` when given, and /etc/hosts holding `hosts`: [command, ...args].
export function namespaced(argv, { dns, resolvConf, hosts = HOSTS } = {}) {
  const dir = tempDir('cc-dns-');
  const resolv = join(dir, 'resolv.conf');
  const hostsFile = join(dir, 'hosts');
  writeFileSync(resolv, resolvConf ?? `nameserver ${dns.addr}\noptions timeout:5 attempts:2\n`);
  writeFileSync(hostsFile, hosts);
  return ['unshare', '--mount', '--', 'sh', '-c',
    'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"',
    'sh', resolv, hostsFile, ...argv];
}
