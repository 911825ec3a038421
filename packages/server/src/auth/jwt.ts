// Signed tokens (JWTs) issued by a group's authorisation server or portal,
// checked against the keys in the group's `authKeys`: the key is chosen by
// `alg` (and `kid` when the token names one), `exp` is required, `aud` must
// be the group's full URL (or, when the group opts out with
// "token-audience": "path", Galène's rule: its path), `sub` is the username
// and `permissions` the list of permissions granted. The one verifier for
// joins (auth/index.ts) and for the admin API's bearer tokens (http/admin/).
import type { JsonWebKey } from 'node:crypto';
import * as jose from 'jose';
import { PERMISSIONS, type Permission, isPermission } from '../core/vocabulary.ts';
import { AuthError } from './errors.ts';

/** Algorithms Galène accepts in `authKeys`, with what the key must look like. */
const KEY_RULES = {
  HS256: { kty: 'oct', bytes: 32 },
  HS384: { kty: 'oct', bytes: 48 },
  HS512: { kty: 'oct', bytes: 64 },
  ES256: { kty: 'EC', crv: 'P-256' },
  RS256: { kty: 'RSA' },
} as const;
type SupportedAlg = keyof typeof KEY_RULES;
type VerifyKey = Awaited<ReturnType<typeof jose.importJWK>>;

/** Galène allows five seconds of clock skew on `exp`, `nbf` and `iat`. */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 5;

/** Longer strings are refused before any parsing. */
const MAX_TOKEN_LENGTH = 16 * 1024;

export interface VerifyGroupJwtOptions {
  /** The group's `authKeys` (a JWK set; every key must carry `alg`). */
  keys: readonly JsonWebKey[];
  /** The group's URL as this server is reached, e.g. `https://host:8443/group/name/`. */
  groupUrl: string;
  /**
   * 'url' (the default): an audience must be the group's URL, scheme, host,
   * port and path; 'path': only its path must be the group's (Galène's rule),
   * and the host only `canonicalHost` when that is set.
   */
  audience?: AudienceRule;
  /**
   * With audience 'path': when set, an audience must also be on this host
   * (compared without case, port included), like Galène's `canonicalHost`.
   */
  canonicalHost?: string;
  now?: Date;
  clockToleranceSeconds?: number;
}

/** How `aud` names a group: its full URL, or its path alone. */
export type AudienceRule = 'url' | 'path';

export interface VerifiedGroupJwt {
  /** From `sub`; undefined when the token names no user (`sub` absent or empty). */
  username: string | undefined;
  permissions: Permission[];
  claims: Record<string, unknown>;
}

/**
 * Whether a string has the shape of a compact JWS (three base64url parts, the
 * first a JSON header with `alg`). Anything else is treated as a stateful
 * token, as Galène does with strings that are not JWTs.
 */
export function looksLikeJwt(token: string): boolean {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return false;
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  const [header, payload] = parts as [string, string, string];
  const b64url = /^[A-Za-z0-9_-]*$/;
  if (header === '' || payload === '' || !parts.every((p) => b64url.test(p))) return false;
  try {
    const decoded: unknown = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    return typeof decoded === 'object' && decoded !== null && !Array.isArray(decoded) && typeof (decoded as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}

/** Verifies a JWT for one group; throws AuthError saying why it is refused. */
export async function verifyGroupJwt(token: string, opts: VerifyGroupJwtOptions): Promise<VerifiedGroupJwt> {
  const groupPath = groupPathOf(opts.groupUrl);
  const now = opts.now ?? new Date();
  const tolerance = opts.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;

  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) {
    throw new AuthError('bad-token', `the token is not a string of at most ${MAX_TOKEN_LENGTH} characters`);
  }
  if (!looksLikeJwt(token)) {
    throw new AuthError('bad-token', 'the token is not a JWT (expected three base64url parts separated by dots)');
  }

  let header: jose.ProtectedHeaderParameters;
  try {
    header = jose.decodeProtectedHeader(token);
  } catch (e) {
    throw new AuthError('bad-token', `the token's header cannot be read: ${errorText(e)}`, { cause: e });
  }
  const alg = header.alg;
  if (typeof alg !== 'string' || !isSupportedAlg(alg)) {
    throw new AuthError('bad-token', `the token is signed with alg "${String(alg)}", which is not accepted; use one of ${Object.keys(KEY_RULES).join(', ')}`);
  }

  const candidates = selectKeys(opts.keys, alg, header.kid);

  let payload: jose.JWTPayload | undefined;
  for (const { jwk, index } of candidates) {
    const key = await importKey(jwk, index, alg);
    try {
      const result = await jose.jwtVerify(token, key, {
        algorithms: [alg],
        clockTolerance: tolerance,
        currentDate: now,
        requiredClaims: ['exp'],
      });
      payload = result.payload;
      break;
    } catch (e) {
      if (e instanceof jose.errors.JWSSignatureVerificationFailed) continue;
      throw claimError(e);
    }
  }
  if (payload === undefined) {
    const which = candidates.length === 1 ? `the key ${describeKey(candidates[0]!.jwk, candidates[0]!.index)}` : `any of the ${candidates.length} ${alg} keys in the group's authKeys`;
    throw new AuthError('bad-token', `bad signature: the token was not signed with ${which}`);
  }
  const claims = payload as Record<string, unknown>;

  const nowSeconds = Math.floor(now.getTime() / 1000);
  if (typeof claims.iat === 'number' && claims.iat > nowSeconds + tolerance) {
    throw new AuthError(
      'not-authorised',
      `the token claims to be issued in the future (iat ${isoSeconds(claims.iat)}, now ${now.toISOString()}); check the clocks of this server and of the token's issuer`,
    );
  }

  checkAudience(claims, groupPath, opts);

  const sub = claims.sub;
  if (sub !== undefined && typeof sub !== 'string') {
    throw new AuthError('bad-token', 'the token\'s "sub" claim (the username) must be a string');
  }

  return {
    username: sub === undefined || sub === '' ? undefined : sub,
    permissions: permissionsClaim(claims.permissions),
    claims,
  };
}

function isSupportedAlg(alg: string): alg is SupportedAlg {
  return Object.hasOwn(KEY_RULES, alg);
}

/** The keys the token may have been signed with: same `alg`, and same `kid` when the token names one. */
function selectKeys(keys: readonly JsonWebKey[], alg: SupportedAlg, kid: string | undefined): { jwk: JsonWebKey; index: number }[] {
  const all = keys.map((jwk, index) => ({ jwk, index }));
  if (all.length === 0) {
    throw new AuthError('not-authorised', 'this group has no authKeys, so it cannot accept signed tokens (JWTs)');
  }
  if (kid !== undefined) {
    const sameKid = all.filter(({ jwk }) => jwk.kid === kid);
    if (sameKid.length === 0) {
      throw new AuthError('bad-token', `unknown key id: the token names kid "${kid}", but no key in the group's authKeys has that kid`);
    }
    const usable = sameKid.filter(({ jwk }) => jwk.alg === alg);
    if (usable.length === 0) {
      const algs = [...new Set(sameKid.map(({ jwk }) => String(jwk.alg)))].join(', ');
      throw new AuthError('bad-token', `alg mismatch: the token is signed with ${alg}, but the key with kid "${kid}" is for ${algs}`);
    }
    return usable;
  }
  const usable = all.filter(({ jwk }) => jwk.alg === alg);
  if (usable.length === 0) {
    const algs = [...new Set(all.map(({ jwk }) => (typeof jwk.alg === 'string' ? jwk.alg : 'no alg')))].join(', ');
    throw new AuthError('bad-token', `alg mismatch: the token is signed with ${alg}, but the group's authKeys hold only ${algs} keys (a key without "alg" is never used)`);
  }
  return usable;
}

const importedKeys = new WeakMap<JsonWebKey, { alg: string; key: Promise<VerifyKey> }>();

/** Imports the public part of one JWK, once per key object. A broken key is a server configuration error. */
async function importKey(jwk: JsonWebKey, index: number, alg: SupportedAlg): Promise<VerifyKey> {
  let cached = importedKeys.get(jwk);
  if (cached === undefined || cached.alg !== alg) {
    cached = { alg, key: jose.importJWK(publicJwk(jwk, index, alg), alg) };
    importedKeys.set(jwk, cached);
  }
  try {
    return await cached.key;
  } catch (e) {
    importedKeys.delete(jwk);
    if (e instanceof AuthError) throw e;
    throw new AuthError('not-authorised', `the group's key ${describeKey(jwk, index)} cannot be used: ${errorText(e)}; fix the group's authKeys`, { cause: e });
  }
}

/** Keeps only the public members of a key, after checking it fits its `alg` as Galène requires. */
function publicJwk(jwk: JsonWebKey, index: number, alg: SupportedAlg): jose.JWK {
  const rule = KEY_RULES[alg];
  const unusable = (why: string): never => {
    throw new AuthError('not-authorised', `the group's key ${describeKey(jwk, index)} cannot be used: ${why}; fix the group's authKeys`);
  };
  if (jwk.kty !== rule.kty) unusable(`an ${alg} key must have kty "${rule.kty}", not "${String(jwk.kty)}"`);
  switch (rule.kty) {
    case 'oct': {
      if (typeof jwk.k !== 'string') unusable('member "k" is missing');
      const bytes = Buffer.from(jwk.k as string, 'base64url').length;
      if (bytes !== rule.bytes) unusable(`an ${alg} secret must be exactly ${rule.bytes} bytes, this one is ${bytes}`);
      return { kty: 'oct', k: jwk.k as string };
    }
    case 'EC': {
      if (jwk.crv !== rule.crv) unusable(`an ES256 key must be on curve P-256, not "${String(jwk.crv)}"`);
      if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') unusable('members "x" and "y" are required');
      return { kty: 'EC', crv: rule.crv, x: jwk.x as string, y: jwk.y as string };
    }
    case 'RSA': {
      if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') unusable('members "n" and "e" are required');
      return { kty: 'RSA', n: jwk.n as string, e: jwk.e as string };
    }
  }
}

function describeKey(jwk: JsonWebKey, index: number): string {
  const kid = typeof jwk.kid === 'string' ? ` (kid "${jwk.kid}")` : '';
  return `authKeys[${index}]${kid}`;
}

/** Turns jose's claim errors into plain sentences. */
function claimError(e: unknown): AuthError {
  if (e instanceof AuthError) return e;
  if (e instanceof jose.errors.JWTExpired) {
    const exp = e.payload.exp;
    const when = typeof exp === 'number' ? ` at ${isoSeconds(exp)}` : '';
    return new AuthError('token-expired', `the token expired${when}; get a new one`, { cause: e });
  }
  if (e instanceof jose.errors.JWTClaimValidationFailed) {
    if (e.claim === 'nbf' && e.reason === 'check_failed') {
      const nbf = e.payload.nbf;
      const when = typeof nbf === 'number' ? ` before ${isoSeconds(nbf)}` : ' yet';
      return new AuthError('not-authorised', `the token is not valid${when} (nbf); wait, or check the clocks`, { cause: e });
    }
    if (e.claim === 'exp' && e.reason === 'missing') {
      return new AuthError('bad-token', 'the token has no "exp" claim; tokens must carry an expiry time', { cause: e });
    }
    return new AuthError('bad-token', `the token's "${e.claim}" claim is invalid: ${e.message}`, { cause: e });
  }
  if (e instanceof jose.errors.JOSEAlgNotAllowed) {
    return new AuthError('bad-token', `alg mismatch: ${e.message}`, { cause: e });
  }
  return new AuthError('bad-token', `the token cannot be verified: ${errorText(e)}`, { cause: e });
}

/** `/group/<name>/` from the group URL, percent-decoded like Go's url.Path. */
function groupPathOf(groupUrl: string): string {
  let url: URL;
  try {
    url = new URL(groupUrl);
  } catch {
    throw new TypeError(`verifyGroupJwt: groupUrl "${groupUrl}" is not an absolute URL`);
  }
  const path = decodePath(url.pathname);
  if (!path.startsWith('/group/') || !path.endsWith('/') || path === '/group/') {
    throw new TypeError(`verifyGroupJwt: groupUrl "${groupUrl}" must have the form https://host/group/<name>/`);
  }
  return path;
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Some `aud` (string or array) must parse as a URL whose path is exactly
 * `/group/<name>/` (trailing slash included; query and fragment ignored) and,
 * with the 'url' rule, whose scheme, host and port are the group URL's; with
 * the 'path' rule (Galène's), the host is checked only against a canonical
 * host. With the claim `"include-subgroups": true`, a path
 * `/group/<parent>/` (or `/group/` alone) also covers every group below it.
 */
function checkAudience(claims: Record<string, unknown>, groupPath: string, opts: VerifyGroupJwtOptions): void {
  const raw = claims.aud;
  if (raw === undefined) {
    throw new AuthError('not-authorised', `wrong audience: the token has no "aud" claim; it must name the group URL (${opts.groupUrl})`);
  }
  const auds = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(auds) || !auds.every((a): a is string => typeof a === 'string')) {
    throw new AuthError('bad-token', 'the token\'s "aud" claim must be a string or an array of strings');
  }
  const includeSubgroups = claims['include-subgroups'] === true;
  const byUrl = (opts.audience ?? 'url') === 'url';
  const group = new URL(opts.groupUrl);
  const canonical = byUrl ? undefined : opts.canonicalHost?.toLowerCase();
  let missingSlash: string | undefined;
  let elsewhere: string | undefined;

  for (const aud of auds) {
    let url: URL;
    try {
      url = new URL(aud);
    } catch {
      continue;
    }
    const path = decodePath(url.pathname);
    const pathFits = path === groupPath || (includeSubgroups && path.startsWith('/group/') && path.endsWith('/') && groupPath.startsWith(path));
    if (byUrl && (url.protocol !== group.protocol || url.host.toLowerCase() !== group.host.toLowerCase())) {
      if (pathFits) elsewhere = aud;
      continue;
    }
    if (canonical !== undefined && url.host.toLowerCase() !== canonical) continue;
    if (pathFits) return;
    if (`${path}/` === groupPath) missingSlash = aud;
  }

  const shown = auds.length === 0 ? 'an empty list' : auds.map((a) => `"${a}"`).join(', ');
  const hint =
    missingSlash !== undefined
      ? `; "${missingSlash}" lacks the trailing slash, which is required`
      : elsewhere !== undefined
        ? `; "${elsewhere}" names the group on another server: scheme, host and port must be ${group.protocol}//${group.host} (or the group file may say "token-audience": "path")`
        : canonical !== undefined
          ? ` on host ${opts.canonicalHost}`
          : '';
  throw new AuthError('not-authorised', `wrong audience: the token is for ${shown}, not for this group (${opts.groupUrl})${hint}`);
}

/** The `permissions` claim: absent or null means none; otherwise an array of known permission names. */
function permissionsClaim(raw: unknown): Permission[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw) || !raw.every((p): p is string => typeof p === 'string')) {
    throw new AuthError('bad-token', 'the token\'s "permissions" claim must be an array of strings, e.g. ["present"]');
  }
  const out: Permission[] = [];
  for (const name of raw) {
    if (!isPermission(name)) {
      throw new AuthError('bad-token', `the token's "permissions" claim holds the unknown permission "${name.slice(0, 64)}"; known: ${PERMISSIONS.join(', ')} (an observer gets an empty list)`);
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

function isoSeconds(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toISOString();
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
