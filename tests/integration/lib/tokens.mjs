// HS256 JWTs made the way lib/token.c makes them (iss, sub, name, typ, room, iat, exp).
import { createHmac } from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function sign(secret, claims) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const mac = createHmac('sha256', secret).update(`${header}.${body}`).digest();
  return `${header}.${body}.${b64url(mac)}`;
}

export function ticket(secret, { user = 1, name = 'alice', room, ttl = 60, now } = {}) {
  const iat = now ?? Math.floor(Date.now() / 1000);
  return sign(secret, {
    iss: 'codecollab', sub: String(user), name, typ: 'ticket', room, iat, exp: iat + ttl,
  });
}

export function session(secret, { user = 1, name = 'alice', ttl = 3600, now } = {}) {
  const iat = now ?? Math.floor(Date.now() / 1000);
  return sign(secret, { iss: 'codecollab', sub: String(user), name, typ: 'session', iat, exp: iat + ttl });
}
