// HS256 JWTs made the way lib/token.c makes them (iss, sub, name, typ, room, iat, exp, and the
// session they belong to: sid, 24 characters of [a-z0-9], and gen, the user's token generation).
import { createHmac, randomBytes } from 'node:crypto';

// a fresh session id of the shape lib/token.c requires
export const newSid = () => [...randomBytes(24)].map((b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function sign(secret, claims) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const mac = createHmac('sha256', secret).update(`${header}.${body}`).digest();
  return `${header}.${body}.${b64url(mac)}`;
}

// sexp: the expiry of the session the ticket was taken with (lib/token.c adds it; without it
// the broker does not bound the stream by its session)
export function ticket(secret, { user = 1, name = 'alice', room, ttl = 60, now, sid = newSid(), gen = 0, sexp } = {}) {
  const iat = now ?? Math.floor(Date.now() / 1000);
  return sign(secret, {
    iss: 'codecollab', sub: String(user), name, typ: 'ticket', room, iat, exp: iat + ttl, sid, gen,
    ...(sexp !== undefined ? { sexp } : {}),
  });
}

export function session(secret, { user = 1, name = 'alice', ttl = 3600, now, sid = newSid(), gen = 0 } = {}) {
  const iat = now ?? Math.floor(Date.now() / 1000);
  return sign(secret, { iss: 'codecollab', sub: String(user), name, typ: 'session', iat, exp: iat + ttl, sid, gen });
}
