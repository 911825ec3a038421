// Time-limited TURN credentials for coturn's `use-auth-secret` mode (the
// "TURN REST API"): the username carries its own expiry time, the password is
// an HMAC of the username under a secret shared with the TURN server, so the
// secret itself never reaches a client.
import { createHmac } from 'node:crypto';

export interface TurnCredentials {
  username: string;
  credential: string;
}

/**
 * Username `"<expiry unix seconds>:<user>"` (just `"<expiry>"` when `user` is
 * empty), credential `base64(HMAC-SHA1(secret, username))`. `user` is only a
 * label for the TURN server's logs; pass something that is not private.
 */
export function turnRestCredentials(secret: string, user: string, ttlSeconds: number, now: Date = new Date()): TurnCredentials {
  if (secret === '') throw new TypeError('turnRestCredentials: the shared secret is empty');
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError(`turnRestCredentials: ttlSeconds must be a positive number, not ${ttlSeconds}`);
  }
  const expiry = Math.floor(now.getTime() / 1000) + Math.floor(ttlSeconds);
  const username = user === '' ? String(expiry) : `${expiry}:${user}`;
  const credential = createHmac('sha1', secret).update(username, 'utf8').digest('base64');
  return { username, credential };
}
