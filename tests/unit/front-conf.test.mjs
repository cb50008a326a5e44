// What make run and make cluster write into the front door's configuration from settings an
// operator gives (scripts/csp-conf.sh: run/csp.conf from STREAM_ORIGIN and BROKER_PORT;
// scripts/services.sh: CC_BIND checked, and the address the start's own checks use), each
// file checked by lighttpd itself (`lighttpd -tt`) where lighttpd reads it. A value that
// could close a quoted string in those files is refused with a line naming the variable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const SCRIPTS = fileURLToPath(new URL('../../scripts/', import.meta.url));
const CONF = fileURLToPath(new URL('../../lighttpd.conf', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cc-front-conf-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// bash with one of the scripts sourced and `die` as run.sh has it; { status, out, err }
function bash(script, code, env = {}) {
  const r = spawnSync('bash', ['-c', `die() { printf 'error: %s\\n' "$*" >&2; exit 1; }; . "$1"; ${code}`, 'bash', join(SCRIPTS, script)],
    // (stdin not a socket, as node's pipes are: bash would read ~/.bashrc, taking it for sshd's)
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, ...env } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

// lighttpd.conf's security headers with a run/csp.conf after them, as lighttpd.conf reads
// it; what lighttpd makes of the whole (lighttpd -p), or its refusal
function lighttpdWith(cspFile) {
  const conf = readFileSync(CONF, 'utf8');
  const headers = conf.slice(conf.indexOf('var.csp = '), conf.indexOf('# Direct streams'));
  const f = join(dir, 'lighttpd.conf');
  writeFileSync(f, `server.document-root = "${dir}"\nserver.port = 1\nserver.modules += ( "mod_setenv" )\n`
    + `${headers}include "${cspFile}"\n`);
  const r = spawnSync('lighttpd', ['-p', '-f', f], { encoding: 'utf8' });
  return { ok: r.status === 0, text: r.stdout + r.stderr };
}

const csp = (env) => {
  const file = join(dir, `csp-${Math.random().toString(36).slice(2)}.conf`);
  return { ...bash('csp-conf.sh', `csp_conf "${file}"`, env), file };
};

test('csp_conf: off writes nothing; auto and an origin widen connect-src, over HTTPS only for an origin; lighttpd takes every file', () => {
  const off = csp({ STREAM_ORIGIN: 'off', BROKER_PORT: '8081' });
  assert.equal(off.status, 0, off.err);
  assert.equal(readFileSync(off.file, 'utf8'), '');
  assert.ok(lighttpdWith(off.file).ok);

  const auto = csp({ STREAM_ORIGIN: 'auto', BROKER_PORT: '8081' });
  assert.equal(auto.status, 0, auto.err);
  const a = lighttpdWith(auto.file);
  assert.ok(a.ok, a.text);
  assert.match(a.text, /\$HTTP\["scheme"\] == "http" \{[^}]*connect-src 'self' http:\/\/\*:8081 ws:\/\/\*:8081;/);
  // a page served over TLS could not use a plain origin: HTTPS keeps lighttpd.conf's policy
  const https = a.text.slice(a.text.indexOf('$HTTP["scheme"] == "https"'));
  assert.match(https, /connect-src 'self'; /);
  assert.doesNotMatch(https.slice(0, https.indexOf('} # end of')), /8081/);

  const named = csp({ STREAM_ORIGIN: 'HTTPS://Streams.Example.com:8443', BROKER_PORT: '8081' });
  assert.equal(named.status, 0, named.err);
  const n = lighttpdWith(named.file);
  assert.ok(n.ok, `lighttpd refused a named origin's file: ${n.text}`);
  for (const scheme of ['http', 'https']) {
    const block = n.text.slice(n.text.indexOf(`$HTTP["scheme"] == "${scheme}"`));
    assert.match(block.slice(0, block.indexOf('} # end of')),
      /connect-src 'self' https:\/\/streams\.example\.com:8443 wss:\/\/streams\.example\.com:8443;/, scheme);
  }
  const hsts = n.text.slice(n.text.indexOf('$HTTP["scheme"] == "https"'));
  assert.match(hsts.slice(0, hsts.indexOf('} # end of')), /"Strict-Transport-Security"\s+=> "max-age=31536000; includeSubDomains"/);
});

test('csp_conf: an origin with a path, quotes, spaces, a newline or another scheme, or a BROKER_PORT that is no number, is refused and nothing is written', () => {
  const bad = ['streams.example.com', 'http://s.example.com/events', 'ftp://x', 'http://x" + ( "X" => "y" ) + "',
    'http://a b', 'http://x\n$HTTP["url"] =~ "" {', 'javascript:alert(1)', 'http://x:1:2', ''.padEnd(300, 'a')];
  for (const origin of bad) {
    const r = csp({ STREAM_ORIGIN: origin, BROKER_PORT: '8081' });
    assert.equal(r.status, 1, origin);
    assert.match(r.err, /^STREAM_ORIGIN must be auto, off, or an origin/, origin);
    assert.throws(() => readFileSync(r.file), /ENOENT/, origin);
  }
  for (const port of ['', 'x', '80"', '8081 ws://evil', '123456']) {
    const r = csp({ STREAM_ORIGIN: 'auto', BROKER_PORT: port });
    assert.equal(r.status, 1, port);
    assert.match(r.err, /^BROKER_PORT must be a port number/, port);
  }
});

test('check_bind: IPv4 and IPv6 addresses and host names pass; brackets, a port, quotes, spaces or a newline are refused, naming CC_BIND', () => {
  for (const ok of ['0.0.0.0', '127.0.0.1', '::', '::1', 'fe80::1', '2001:db8::8:800:200c:417a', 'localhost', 'web-1.example.com']) {
    const r = bash('services.sh', 'check_bind; echo fine', { CC_BIND: ok });
    assert.equal(r.out, 'fine\n', `${ok}: ${r.err}`);
  }
  for (const bad of ['[::1]', '127.0.0.1:8080', '::1"', 'a b', 'host\nserver.bind = "0.0.0.0"', '-x', '', ':', 'a"b']) {
    const r = bash('services.sh', 'check_bind; echo fine', { CC_BIND: bad });
    assert.equal(r.status, 1, JSON.stringify(bad));
    assert.match(r.err, /^error: CC_BIND must be an IP address or a host name/, JSON.stringify(bad));
  }
});

test('local_host and shown_host: where this machine reaches a front door listening on CC_BIND', () => {
  const cases = [
    ['0.0.0.0', '127.0.0.1', 'localhost'], ['::', '[::1]', 'localhost'], ['127.0.0.1', '127.0.0.1', 'localhost'],
    ['::1', '[::1]', 'localhost'], ['192.0.2.7', '192.0.2.7', '192.0.2.7'], ['2001:db8::7', '[2001:db8::7]', '[2001:db8::7]'],
    ['web.example.com', 'web.example.com', 'web.example.com'],
  ];
  for (const [bind, local, shown] of cases) {
    const r = bash('services.sh', 'printf "%s %s" "$(local_host "$CC_BIND")" "$(shown_host "$CC_BIND")"', { CC_BIND: bind });
    assert.equal(r.out, `${local} ${shown}`, bind);
  }
});

test('port_free: a port something listens on is taken on that address, with or without brackets, and free on another and once closed', () => {
  const out = execFileSync('python3', ['-c', `
import socket, subprocess, sys
def check(port, host):
    return subprocess.run(["bash", "--norc", "-c", '. "$1"; port_free "$2" "$3" && echo free || echo taken', "bash", sys.argv[1], str(port), host],
                          capture_output=True, text=True).stdout.strip()
s = socket.socket(socket.AF_INET6)
s.bind(("::1", 0)); s.listen(8); port = s.getsockname()[1]
seen = [check(port, "[::1]"), check(port, "::1"), check(port, "127.0.0.1")]
s.close()
seen.append(check(port, "[::1]"))
print(" ".join(seen))
`, join(SCRIPTS, 'services.sh')], { encoding: 'utf8' });
  assert.equal(out.trim(), 'taken taken free free');
});

// `::` takes IPv4 clients too (the broker and lighttpd listen with v4-mapped addresses), so a
// port held on 127.0.0.1 alone keeps them from listening there: check_port on `::` looks at
// both loopbacks. (It looked at ::1 only, and such a start failed later, in the service.)
test('check_port on :: counts a port held on 127.0.0.1 alone as taken; on ::1 it is free', async () => {
  const holder = createServer();
  await new Promise((resolve, reject) => { holder.once('error', reject); holder.listen(0, '127.0.0.1', resolve); });
  const port = holder.address().port;
  try {
    const check = (addr) => bash('services.sh', `check_port ${port} broker BROKER_PORT '${addr}' && echo free`);
    for (const addr of ['::', '127.0.0.1', '0.0.0.0']) {
      const r = check(addr);
      assert.notEqual(r.status, 0, `${addr}: ${r.out}${r.err}`);
      assert.match(r.err, new RegExp(`port ${port} \\(broker\\) is already in use.*BROKER_PORT`), addr);
    }
    const r = check('::1');
    assert.deepEqual([r.status, r.out.trim()], [0, 'free'], r.err);
  } finally {
    holder.close();
  }
});
