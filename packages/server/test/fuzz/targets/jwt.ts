// Fuzz target: the JWT path (auth/jwt.ts, what joins and the admin API use
// to check a signed token). A case is a token built from claims and headers
// that are sometimes right and often not: the wrong alg, "none", an
// HMAC token signed with a public key, a kid that names another key, no
// exp, an exp in the past, another group's audience, a signature or payload
// tampered with. Properties: the verifier answers or throws AuthError, never
// anything else; and it accepts only what it must: a token signed with a
// key of the group for its alg, untampered, with an exp in the future and,
// when it has one, an audience for this group.
import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import fc from 'fast-check';
import { AuthError } from '../../../src/auth/errors.ts';
import { verifyGroupJwt } from '../../../src/auth/jwt.ts';
import type { Target } from '../support/harness.ts';
import { hostileString } from '../support/zod-arbitrary.ts';

export const GROUP_URL = 'https://atrium.example:8443/group/fuzz/';
export const NOW = Date.UTC(2030, 0, 1) / 1000;

const hmac = randomBytes(32);
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = randomBytes(32);
export const KEYS: JsonWebKey[] = [
  { kty: 'oct', alg: 'HS256', kid: 'h', k: hmac.toString('base64url') },
  { ...(ec.publicKey.export({ format: 'jwk' }) as JsonWebKey), alg: 'ES256', kid: 'e' },
  { ...(rsa.publicKey.export({ format: 'jwk' }) as JsonWebKey), alg: 'RS256', kid: 'r' },
];

type Signer = 'hmac' | 'ec' | 'rsa' | 'other-hmac' | 'hmac-with-public-key' | 'none';
export interface JwtCase {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  signer: Signer;
  tamper: 'none' | 'signature' | 'payload' | 'drop-signature' | 'extra-part' | 'header';
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function signature(signer: Signer, input: string): string {
  switch (signer) {
    case 'hmac':
      return createHmac('sha256', hmac).update(input).digest('base64url');
    case 'other-hmac':
      return createHmac('sha256', other).update(input).digest('base64url');
    case 'hmac-with-public-key':
      return createHmac('sha256', JSON.stringify(KEYS[1])).update(input).digest('base64url');
    case 'ec':
      return sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    case 'rsa':
      return sign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url');
    case 'none':
      return '';
  }
}

export function tokenOf(c: JwtCase): string {
  const input = `${b64(c.header)}.${b64(c.claims)}`;
  let t = `${input}.${signature(c.signer, input)}`;
  const [h, p, s] = t.split('.') as [string, string, string];
  if (c.tamper === 'signature') t = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('A') ? 'B' : 'A'}${s.slice(-1)}`;
  if (c.tamper === 'payload') t = `${h}.${b64({ ...c.claims, permissions: ['op', 'admin'] })}.${s}`;
  if (c.tamper === 'drop-signature') t = `${h}.${p}.`;
  if (c.tamper === 'extra-part') t = `${t}.x`;
  if (c.tamper === 'header') t = `${b64({ ...c.header, alg: 'none' })}.${p}.${s}`;
  return t;
}

const time = fc.oneof(fc.constantFrom(NOW + 3600, NOW - 3600, NOW + 3, NOW - 3, NOW - 10, 0, -1, 1e20), fc.double({ noNaN: true }), hostileString, fc.constant(null));
const audience = fc.oneof(
  fc.constantFrom(GROUP_URL, 'https://evil.example/group/fuzz/', 'https://atrium.example:8443/group/other/', 'https://atrium.example:8443/group/fuzz', '/group/fuzz/', ''),
  hostileString,
  fc.array(fc.constantFrom(GROUP_URL, 'x'), { maxLength: 2 }),
);

export const jwtTarget: Target<JwtCase, undefined> = {
  name: 'jwt',
  arbitrary: fc
    .record({
      header: fc.record(
        {
          alg: fc.oneof(fc.constantFrom('HS256', 'ES256', 'RS256', 'none', 'HS512', 'PS256', 'hs256'), hostileString),
          kid: fc.constantFrom('h', 'e', 'r', 'x'),
          typ: fc.constantFrom('JWT', 'x'),
          crit: fc.constant(['exp']),
        },
        { requiredKeys: ['alg'] },
      ),
      claims: fc.record(
        {
          exp: time,
          nbf: time,
          iat: time,
          aud: audience,
          sub: fc.oneof(fc.string({ maxLength: 10 }), hostileString, fc.integer()),
          permissions: fc.oneof(fc.array(fc.constantFrom('op', 'present', 'admin', 'x')), hostileString, fc.jsonValue({ maxDepth: 1 })),
          extra: fc.jsonValue({ maxDepth: 2 }),
        },
        { requiredKeys: [] },
      ),
      signer: fc.constantFrom<Signer>('hmac', 'ec', 'rsa', 'hmac', 'ec', 'rsa', 'other-hmac', 'hmac-with-public-key', 'none'),
      tamper: fc.constantFrom<JwtCase['tamper']>('none', 'none', 'none', 'none', 'signature', 'payload', 'drop-signature', 'extra-part', 'header'),
      // How much of the token is made right, so that accepted tokens (and near misses) are common too.
      coherence: fc.nat(4),
    })
    .map(({ coherence, ...c }): JwtCase => {
      if (coherence === 0) return c;
      const alg = { hmac: 'HS256', ec: 'ES256', rsa: 'RS256' }[c.signer as string];
      const header: Record<string, unknown> = { ...c.header, ...(alg ? { alg, kid: { HS256: 'h', ES256: 'e', RS256: 'r' }[alg] } : {}) };
      if (coherence >= 2) delete header.crit;
      const claims: Record<string, unknown> = { ...c.claims };
      if (coherence >= 3) {
        claims.exp = NOW + 3600;
        for (const k of ['nbf', 'iat'] as const) if (typeof claims[k] !== 'number' || (claims[k] as number) > NOW) delete claims[k];
        if (typeof claims.sub !== 'string') delete claims.sub;
      }
      if (coherence >= 4) claims.aud = GROUP_URL;
      return { ...c, header, claims };
    }),
  async setup() {
    return undefined;
  },
  async run(_env, c) {
    let ok: Awaited<ReturnType<typeof verifyGroupJwt>>;
    try {
      ok = await verifyGroupJwt(tokenOf(c), { keys: KEYS, groupUrl: GROUP_URL, now: new Date(NOW * 1000) });
    } catch (e) {
      if (e instanceof AuthError) return;
      throw new Error(`the verifier threw something other than an AuthError: ${(e as Error)?.stack ?? String(e)}`);
    }
    const why: string[] = [];
    const rightSigner = { HS256: 'hmac', ES256: 'ec', RS256: 'rsa' }[String(c.header.alg)];
    if (c.tamper !== 'none') why.push(`tampered (${c.tamper})`);
    if (rightSigner !== c.signer) why.push(`signed by ${c.signer} for alg ${String(c.header.alg)}`);
    if ('crit' in c.header) why.push('a "crit" header it does not understand');
    const exp = c.claims.exp;
    if (typeof exp !== 'number' || exp + 5 < NOW) why.push(`exp ${JSON.stringify(exp)}`);
    const nbf = c.claims.nbf;
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > NOW + 5)) why.push(`nbf ${JSON.stringify(nbf)}`);
    const aud = c.claims.aud;
    if (aud !== undefined) {
      const list = Array.isArray(aud) ? aud : [aud];
      if (!list.some((a) => typeof a === 'string' && a.endsWith('/group/fuzz/'))) why.push(`aud ${JSON.stringify(aud)}`);
    }
    if (why.length > 0) throw new Error(`the verifier accepted a token it must refuse: ${why.join('; ')} (claims ${JSON.stringify(ok.claims).slice(0, 300)})`);
  },
};
