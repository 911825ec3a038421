// How a client proves who it is when joining a group, as Galène's client
// does: a password, a token (JWT or stateful invite token), or a password
// exchanged for a token at the group's authorisation server.
import type { ClientMessageOf } from '@atrium/protocol/galene';
import { AtriumClientError } from './errors.ts';

/** Credentials for `join`. A string is a password. */
export type Credentials = string | { type: 'password'; password: string } | { type: 'token'; token: string } | { type: 'authServer'; authServer: string; location: string; password: string };

export function isCredentials(v: unknown): v is Credentials {
  if (typeof v === 'string') return true;
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (o.type === 'password' && typeof o.password === 'string') || (o.type === 'token' && typeof o.token === 'string') || (o.type === 'authServer' && typeof o.authServer === 'string');
}

/** The `join` message for these credentials (asking the authorisation server first if need be). */
export async function joinMessage(group: string, username: string | undefined, c: Credentials, data: Record<string, unknown> | undefined): Promise<ClientMessageOf<'join'>> {
  const m: ClientMessageOf<'join'> = { type: 'join', kind: 'join', group };
  if (username !== undefined && username !== null) m.username = username;
  if (typeof c === 'string') m.password = c;
  else if (c.type === 'password') m.password = c.password;
  else if (c.type === 'token') m.token = c.token;
  else {
    const token = await askAuthServer(c, username);
    if (token === null) m.password = c.password;
    else m.token = token;
  }
  if (data) m.data = data;
  return m;
}

/**
 * Galène's authorisation-server flow: POST {location, username, password};
 * a JWT comes back, or 204 to fall back to the password.
 */
async function askAuthServer(c: { authServer: string; location: string; password: string }, username: string | undefined): Promise<string | null> {
  const r = await fetch(c.authServer, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ location: c.location, username, password: c.password }),
  });
  if (r.status === 204) return null;
  if (!r.ok) throw new AtriumClientError('bad-argument', `the authorisation server said ${r.status} ${r.statusText}`);
  const type = (r.headers.get('Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/jwt') throw new AtriumClientError('bad-argument', `the authorisation server returned ${type || 'no content type'}, not application/jwt`);
  const token = await r.text();
  if (!token) throw new AtriumClientError('bad-argument', 'the authorisation server returned an empty token');
  return token;
}
