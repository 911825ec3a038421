// SASL for the XMPP dialect (RFC 6120 §6): the mechanisms offered and how
// each one's message decodes into a login. PLAIN carries a group user's name
// and password, ANONYMOUS stands for the wildcard user, OAUTHBEARER
// (RFC 7628) carries an Atrium token — a JWT or an invite token. A token
// given on the URL (`?token=`, as Prosody's token authentication reads it)
// turns ANONYMOUS and PLAIN into token logins too.

import { hasControlChars } from './xml.ts';

/** What the client proved, kept for every room it joins. */
export type Login = { kind: 'password'; username: string; password: string } | { kind: 'anonymous' } | { kind: 'token'; token: string; username?: string | undefined };

export const MECHANISMS = ['PLAIN', 'ANONYMOUS', 'OAUTHBEARER'] as const;
export type Mechanism = (typeof MECHANISMS)[number];

/**
 * The mechanisms the stream features list. OAUTHBEARER is taken but not
 * listed: strophe.js (Jitsi Meet's library) picks it whenever its password
 * is not null — undefined included, which is how Jitsi logs in anonymously —
 * and would then fail where ANONYMOUS works. Tokens go on the URL instead
 * (`?token=`, as with Prosody), or in OAUTHBEARER for clients that know it.
 */
export const OFFERED_MECHANISMS: readonly Mechanism[] = ['PLAIN', 'ANONYMOUS'];

/** RFC 6120 §6.5 failure conditions. */
export type SaslFailure = 'aborted' | 'incorrect-encoding' | 'invalid-authzid' | 'invalid-mechanism' | 'malformed-request' | 'mechanism-too-weak' | 'not-authorized' | 'temporary-auth-failure';

export class SaslError extends Error {
  constructor(
    readonly condition: SaslFailure,
    message: string,
  ) {
    super(message);
    this.name = 'SaslError';
  }
}

const SOH = String.fromCharCode(1);

/** Longest decoded SASL message accepted (a token is at most 16 KiB). */
const MAX_MESSAGE_BYTES = 20 * 1024;

/** Decodes the base64 payload of <auth/> or <response/>; "=" or nothing is the empty message. */
export function decodeSaslPayload(text: string): Buffer {
  const t = text.trim();
  if (t === '' || t === '=') return Buffer.alloc(0);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t) || t.length % 4 !== 0) throw new SaslError('incorrect-encoding', 'the SASL payload is not valid base64');
  const b = Buffer.from(t, 'base64');
  if (b.length > MAX_MESSAGE_BYTES) throw new SaslError('malformed-request', `the SASL message is over ${MAX_MESSAGE_BYTES} bytes`);
  return b;
}

/** RFC 4616: [authzid] NUL authcid NUL passwd, UTF-8. */
export function decodePlain(msg: Buffer): { authzid: string; username: string; password: string } {
  const parts = msg.toString('utf8').split('\u0000');
  if (parts.length !== 3) throw new SaslError('malformed-request', 'a PLAIN message is authzid, NUL, username, NUL, password');
  const [authzid, username, password] = parts as [string, string, string];
  if (username === '') throw new SaslError('malformed-request', 'the PLAIN username is empty');
  if (hasControlChars(username)) throw new SaslError('malformed-request', 'the PLAIN username holds control characters');
  return { authzid, username, password };
}

/** RFC 7628 §3.1: gs2-header, then key=value pairs separated by ^A, with auth=Bearer <token>. */
export function decodeOAuthBearer(msg: Buffer): { authzid: string | undefined; token: string } {
  const s = msg.toString('utf8');
  // RFC 7628 separates the pairs with ^A (U+0001).
  const m = new RegExp(`^([ny]|p=[^,]*),(a=[^,]*)?,${SOH}(.*)${SOH}${SOH}$`, 's').exec(s);
  if (!m) throw new SaslError('malformed-request', 'an OAUTHBEARER message is "n,,^Aauth=Bearer <token>^A^A" (RFC 7628)');
  if (m[1]!.startsWith('p=')) throw new SaslError('malformed-request', 'channel binding is not supported with OAUTHBEARER here');
  let token: string | undefined;
  for (const kv of m[3]!.split(SOH)) {
    const eq = kv.indexOf('=');
    if (eq > 0 && kv.slice(0, eq) === 'auth') {
      const b = /^Bearer\s+(\S+)$/i.exec(kv.slice(eq + 1));
      if (!b) throw new SaslError('malformed-request', 'the OAUTHBEARER auth value must be "Bearer <token>"');
      token = b[1];
    }
  }
  if (!token) throw new SaslError('malformed-request', 'the OAUTHBEARER message has no auth=Bearer value');
  const authzid = m[2] ? unescapeSaslName(m[2].slice(2)) : undefined;
  return { authzid, token };
}

/** RFC 5801 saslname: "=2C" is a comma, "=3D" an equals sign. */
function unescapeSaslName(s: string): string {
  if (/=(?!2C|3D)/.test(s)) throw new SaslError('malformed-request', 'bad escape in the OAUTHBEARER authorization identity');
  return s.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** The login one mechanism's first message stands for; `urlToken` is the `?token=` of the transport URL. */
export function loginFrom(mechanism: Mechanism, msg: Buffer, urlToken: string | undefined): Login {
  switch (mechanism) {
    case 'PLAIN': {
      const p = decodePlain(msg);
      if (p.authzid !== '' && p.authzid !== p.username && !p.authzid.startsWith(`${p.username}@`)) {
        throw new SaslError('invalid-authzid', 'acting for another user (a PLAIN authorization identity) is not supported');
      }
      return urlToken ? { kind: 'token', token: urlToken, username: p.username } : { kind: 'password', username: p.username, password: p.password };
    }
    case 'ANONYMOUS':
      // The message is an optional trace string (RFC 4505), ignored.
      return urlToken ? { kind: 'token', token: urlToken } : { kind: 'anonymous' };
    case 'OAUTHBEARER': {
      const o = decodeOAuthBearer(msg);
      return { kind: 'token', token: o.token, username: o.authzid || undefined };
    }
  }
}
