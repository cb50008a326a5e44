// The security headers as lighttpd.conf writes them, once (var.csp, var.security_headers,
// var.hsts): what every answer of every front door must carry, whichever server sent it
// (lighttpd, its error script, Apache, HAProxy, the API under CGI).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const CONF = fileURLToPath(new URL('../../lighttpd.conf', import.meta.url));

export function lighttpdCsp() {
  const m = /^var\.csp = "(.*)"$/m.exec(readFileSync(CONF, 'utf8'));
  if (!m) throw new Error('no var.csp line in lighttpd.conf');
  return m[1];
}

// { 'content-security-policy': …, 'x-content-type-options': …, … } in lower case, and the
// HSTS header HTTPS adds
export function securityHeaders() {
  const conf = readFileSync(CONF, 'utf8');
  const pairs = (name) => {
    const m = new RegExp(`^var\\.${name} = \\(([^)]*)\\)`, 'm').exec(conf);
    if (!m) throw new Error(`no var.${name} in lighttpd.conf`);
    return Object.fromEntries([...m[1].matchAll(/"([^"]+)" => "([^"]*)"/g)].map(([, k, v]) => [k.toLowerCase(), v]));
  };
  return { headers: { 'content-security-policy': lighttpdCsp(), ...pairs('security_headers') }, hsts: pairs('hsts') };
}

// Asserts that an answer carries lighttpd.conf's security headers, exactly: `h` is a fetch
// Headers or a map of lower-case names. The one widening allowed is direct streams' (the
// broker's origins added to connect-src, run/csp.conf); HSTS only when `https`.
export function assertSecurityHeaders(h, what = 'the answer', { https = false } = {}) {
  const get = (n) => (typeof h.get === 'function' ? h.get(n) : h[n]) ?? null;
  const policy = securityHeaders();
  for (const [name, value] of Object.entries(policy.headers)) {
    let got = get(name);
    if (name === 'content-security-policy' && got) {
      const extra = /connect-src 'self'((?: (?:https?|wss?):\/\/[^\s;]+)*);/.exec(got);
      if (extra) got = got.replace(extra[0], "connect-src 'self';");
    }
    assert.equal(got, value, `${what}: ${name}`);
  }
  const hsts = policy.hsts['strict-transport-security'];
  assert.equal(get('strict-transport-security'), https ? hsts : null, `${what}: HSTS ${https ? 'over HTTPS' : 'not over plain HTTP'}`);
}
