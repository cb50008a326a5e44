// The security headers as lighttpd.conf writes them, once (var.csp, var.security_headers,
// var.hsts): what every answer of every front door must carry, whichever server sent it
// (lighttpd, its error script, Apache, HAProxy, the API under CGI).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const CONF = fileURLToPath(new URL('../../lighttpd.conf', import.meta.url));

// { 'content-security-policy': …, 'x-content-type-options': …, … } in lower case, and the
// HSTS header HTTPS adds
export function securityHeaders() {
  const conf = readFileSync(CONF, 'utf8');
  const pairs = (name) => {
    const m = new RegExp(`^var\\.${name} = \\(([^)]*)\\)`, 'm').exec(conf);
    if (!m) throw new Error(`no var.${name} in lighttpd.conf`);
    return Object.fromEntries([...m[1].matchAll(/"([^"]+)" => "([^"]*)"/g)].map(([, k, v]) => [k.toLowerCase(), v]));
  };
  const csp = /^var\.csp = "(.*)"$/m.exec(conf);
  if (!csp) throw new Error('no var.csp line in lighttpd.conf');
  return { headers: { 'content-security-policy': csp[1], ...pairs('security_headers') }, hsts: pairs('hsts') };
}

// Asserts that an answer carries lighttpd.conf's security headers, exactly: `h` is a fetch
// Headers or a map of lower-case names. The one widening allowed is direct streams' (run/
// csp.conf): the sources `connect` names added to connect-src, or when it is not given,
// none or those of STREAM_ORIGIN=auto for the stack's BROKER_PORT. HSTS only when `https`.
export function assertSecurityHeaders(h, what = 'the answer', { https = false, connect } = {}) {
  const get = (n) => (typeof h.get === 'function' ? h.get(n) : h[n]) ?? null;
  const policy = securityHeaders();
  const port = process.env.BROKER_PORT;
  const allowed = connect !== undefined ? [connect] : ['', ...(port ? [`http://*:${port} ws://*:${port}`] : [])];
  for (const [name, value] of Object.entries(policy.headers)) {
    let got = get(name);
    if (name === 'content-security-policy' && got) {
      const m = /connect-src 'self'((?: [^\s;]+)*);/.exec(got);
      if (m) {
        const extra = m[1].trim();
        assert.ok(allowed.includes(extra), `${what}: connect-src widened by '${extra}', not by one of ${JSON.stringify(allowed)}`);
        got = got.replace(m[0], "connect-src 'self';");
      }
    }
    assert.equal(got, value, `${what}: ${name}`);
  }
  const hsts = policy.hsts['strict-transport-security'];
  assert.equal(get('strict-transport-security'), https ? hsts : null, `${what}: HSTS ${https ? 'over HTTPS' : 'not over plain HTTP'}`);
}
