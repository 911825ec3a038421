// Fuzz target: the JWT path (auth/jwt.ts, the one verifier joins and the
// admin API use to check a signed token). A case is a token built from
// claims and headers that are sometimes right and often not: the wrong alg,
// "none", an HMAC token signed with a public key, a kid that names another
// key, no exp, an exp in the past, no audience, another group's or another
// server's audience, a path alone as audience, a signature or payload
// tampered with; checked under the default audience rule (the group's full
// URL) or the group file's "token-audience": "path". Properties: the
// verifier answers or throws AuthError, never anything else; it accepts
// only what it must (a token signed with a key of the group for its alg,
// untampered, with an exp in the future and an audience naming this group
// by the rule in force, and known permissions); and it accepts a token that
// is right in every way.
import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import fc from 'fast-check';
import { AuthError } from '../../../src/auth/errors.ts';
import { verifyGroupJwt } from '../../../src/auth/jwt.ts';
import { PERMISSIONS } from '../../../src/core/vocabulary.ts';
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
  /** The group file's "token-audience" (absent: 'url'). */
  rule?: 'url' | 'path';
  /** Whether the case was made right in every way (coherence 4, a right signer, no tampering). */
  right?: boolean;
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
  // The last character but one carries only signature bits (the last may hold padding bits too).
  if (c.tamper === 'signature') t = `${h}.${p}.${s.slice(0, -2)}${s.at(-2) === 'A' ? 'B' : 'A'}${s.slice(-1)}`;
  // A claim the signed payload never has, so the payload always differs (the permissions alone may not).
  if (c.tamper === 'payload') t = `${h}.${b64({ ...c.claims, permissions: ['op', 'admin'], tampered: true })}.${s}`;
  if (c.tamper === 'drop-signature') t = `${h}.${p}.`;
  if (c.tamper === 'extra-part') t = `${t}.x`;
  if (c.tamper === 'header') t = `${b64({ ...c.header, alg: 'none' })}.${p}.${s}`;
  return t;
}

const time = fc.oneof(fc.constantFrom(NOW + 3600, NOW - 3600, NOW + 3, NOW - 3, NOW - 10, 0, -1, 1e20), fc.double({ noNaN: true }), hostileString, fc.constant(null));
const AUDIENCES = [
  GROUP_URL,
  'HTTPS://Atrium.Example:8443/group/fuzz/',
  'https://atrium.example:8443/group/fu%7Az/',
  'https://atrium.example:8443/group/fuzz/?x#y',
  'https://evil.example/group/fuzz/',
  'http://atrium.example:8443/group/fuzz/',
  'https://atrium.example/group/fuzz/',
  'https://atrium.example:8444/group/fuzz/',
  'https://atrium.example:8443/group/other/',
  'https://atrium.example:8443/group/fuzz',
  'https://atrium.example:8443/group/',
  'https://atrium.example:8443/group/fuzz/sub/',
  '/group/fuzz/',
  '',
];
const audience = fc.oneof(fc.constantFrom(...AUDIENCES), hostileString, fc.array(fc.oneof(fc.constantFrom(...AUDIENCES), fc.constant('x')), { maxLength: 3 }));

/** The group's path, as the verifier compares it (percent-decoded). */
const GROUP_PATH = new URL(GROUP_URL).pathname;

/** Whether one `aud` value names the group under `rule` (an independent reading of the rule, for the oracle). */
function audienceNames(aud: string, rule: 'url' | 'path', subgroups: boolean): boolean {
  let u: URL;
  try {
    u = new URL(aud);
  } catch {
    return false;
  }
  if (rule === 'url' && (u.protocol !== 'https:' || u.host.toLowerCase() !== 'atrium.example:8443')) return false;
  let path = u.pathname;
  try {
    path = decodeURIComponent(path);
  } catch {}
  return path === GROUP_PATH || (subgroups && path.startsWith('/group/') && path.endsWith('/') && GROUP_PATH.startsWith(path));
}

/** The claims as the verifier sees them: decoded from the token itself. */
function claimsOf(token: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const KNOWN_PERMISSIONS = new Set<unknown>(PERMISSIONS);

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
          'include-subgroups': fc.oneof(fc.boolean(), fc.constant('true')),
          extra: fc.jsonValue({ maxDepth: 2 }),
        },
        { requiredKeys: [] },
      ),
      signer: fc.constantFrom<Signer>('hmac', 'ec', 'rsa', 'hmac', 'ec', 'rsa', 'other-hmac', 'hmac-with-public-key', 'none'),
      tamper: fc.constantFrom<JwtCase['tamper']>('none', 'none', 'none', 'none', 'signature', 'payload', 'drop-signature', 'extra-part', 'header'),
      rule: fc.constantFrom<'url' | 'path'>('url', 'url', 'path'),
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
        for (const k of ['nbf', 'iat'] as const) if (typeof claims[k] !== 'number' || !Number.isFinite(claims[k]) || claims[k] > NOW) delete claims[k];
        if (typeof claims.sub !== 'string') delete claims.sub;
      }
      if (coherence >= 4) {
        claims.aud = GROUP_URL;
        if (!Array.isArray(claims.permissions) || !claims.permissions.every((p) => KNOWN_PERMISSIONS.has(p))) claims.permissions = ['present'];
      }
      const right = coherence >= 4 && alg !== undefined && c.tamper === 'none';
      return { ...c, header, claims, right };
    }),
  async setup() {
    return undefined;
  },
  async run(_env, c) {
    const token = tokenOf(c);
    const rule = c.rule ?? 'url';
    let ok: Awaited<ReturnType<typeof verifyGroupJwt>>;
    try {
      ok = await verifyGroupJwt(token, { keys: KEYS, groupUrl: GROUP_URL, audience: rule, now: new Date(NOW * 1000) });
    } catch (e) {
      if (!(e instanceof AuthError)) throw new Error(`the verifier threw something other than an AuthError: ${(e as Error)?.stack ?? String(e)}`);
      if (c.right) throw new Error(`the verifier refused a token right in every way (${e.message}): ${JSON.stringify(c).slice(0, 600)}`);
      return;
    }
    const why: string[] = [];
    const rightSigner = { HS256: 'hmac', ES256: 'ec', RS256: 'rsa' }[String(c.header.alg)];
    if (c.tamper !== 'none') why.push(`tampered (${c.tamper})`);
    if (rightSigner !== c.signer) why.push(`signed by ${c.signer} for alg ${String(c.header.alg)}`);
    if ('crit' in c.header) why.push('a "crit" header it does not understand');
    const claims = claimsOf(token) ?? {};
    const exp = claims.exp;
    if (typeof exp !== 'number' || exp + 5 < NOW) why.push(`exp ${JSON.stringify(exp)}`);
    const nbf = claims.nbf;
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > NOW + 5)) why.push(`nbf ${JSON.stringify(nbf)}`);
    const aud = claims.aud;
    const list = aud === undefined ? [] : Array.isArray(aud) ? aud : [aud];
    if (!list.some((a) => typeof a === 'string' && audienceNames(a, rule, claims['include-subgroups'] === true))) why.push(`aud ${JSON.stringify(aud)} under the "${rule}" rule`);
    const perms = claims.permissions;
    if (perms !== undefined && perms !== null && !(Array.isArray(perms) && perms.every((p) => KNOWN_PERMISSIONS.has(p)))) why.push(`permissions ${JSON.stringify(perms).slice(0, 100)}`);
    if (!ok.permissions.every((p) => Array.isArray(perms) && perms.includes(p))) why.push(`granted ${JSON.stringify(ok.permissions)} beyond the claim ${JSON.stringify(perms)}`);
    if (why.length > 0) throw new Error(`the verifier accepted a token it must refuse: ${why.join('; ')} (claims ${JSON.stringify(ok.claims).slice(0, 300)})`);
  },
};
