// Who is asking the admin API: an administrator of data/config.json (HTTP
// Basic), a bearer token with the "admin" permission (a stateful token, or a
// JWT signed with the group's keys, checked by the one verifier of
// auth/jwt.ts), or, for their own password, the user themself. Failed
// logins are throttled per user and per address.
import type { FastifyRequest } from 'fastify';
import { isAuthError, looksLikeJwt, verifyGroupJwt } from '../../auth/index.ts';
import { type LoginKeys, LoginThrottledError } from '../../auth/throttle.ts';
import type { StatefulToken } from '../../auth/tokens.ts';
import { PasswordChangeError, checkOwnPassword } from '../../groups/password-change.ts';
import { verifyPassword } from '../../groups/passwords.ts';
import { placeFor } from '../place.ts';
import type { AdminContext, Principal } from './context.ts';
import { HttpError, REALM } from './http.ts';
import { type Target, groupOf } from './paths.ts';

export function parseBasic(header: string): { username: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (m === null) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function parseBearer(header: string): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m === null ? undefined : m[1];
}

export function hasAdmin(perms: readonly string[] | unknown): boolean {
  return Array.isArray(perms) && perms.includes('admin');
}

/** Whether a stateful token may administer `group` (undefined: the whole server). */
export function tokenCovers(t: StatefulToken, group: string | undefined): boolean {
  const sub = t.includeSubgroups === true;
  if (group === undefined) return t.group === '' && sub;
  if (t.group === group) return true;
  return sub && (t.group === '' || group.startsWith(t.group + '/'));
}

export function tokenTimesValid(t: StatefulToken, now: number): boolean {
  // As in Galène, a stateful token without an expiry time is not usable.
  if (t.expires === undefined) return false;
  const exp = Date.parse(t.expires);
  if (Number.isNaN(exp) || exp <= now) return false;
  if (t['not-before'] !== undefined) {
    const nbf = Date.parse(t['not-before']);
    if (Number.isNaN(nbf) || nbf > now) return false;
  }
  return true;
}

export function isAdminName(ctx: AdminContext, username: string): boolean {
  const users = ctx.deps.config().users;
  if (!Object.hasOwn(users, username)) return false;
  const u = users[username];
  return u?.password !== undefined && u.permissions.includes('admin');
}

export async function isAdmin(ctx: AdminContext, username: string, password: string): Promise<boolean> {
  const u = ctx.deps.config().users[username];
  return u?.password !== undefined && (await verifyPassword(u.password, password));
}

/** Starts a throttled login; a 429 saying when to retry while the user or address must wait. */
export function begin(ctx: AdminContext, keys: LoginKeys) {
  try {
    return ctx.deps.throttle?.begin(keys);
  } catch (e) {
    if (e instanceof LoginThrottledError) throw new HttpError(429, e.message, { 'Retry-After': String(Math.ceil(e.retryAfterMs / 1000)) });
    throw e;
  }
}

/**
 * A bearer token: a stateful token with "admin" for the group (or the whole
 * server), or a JWT signed with one of the group's keys and granting
 * "admin", checked by the verifier joins use (auth/jwt.ts): `exp` required,
 * `aud` the group's full URL as this request reached the server (unless the
 * group file says "token-audience": "path").
 */
export async function bearerAllowed(ctx: AdminContext, req: FastifyRequest, token: string, group: string | undefined): Promise<{ principal: Principal } | { refused: string }> {
  // A token revoked or expired a moment ago is refused at once.
  await ctx.tokens.refresh?.();
  const stateful = ctx.tokens.get(token);
  if (stateful !== undefined) {
    if (!hasAdmin(stateful.permissions)) return { refused: 'the token does not grant the "admin" permission' };
    if (!tokenTimesValid(stateful, Date.now())) return { refused: 'the token is expired or not valid yet' };
    if (!tokenCovers(stateful, group)) return { refused: group === undefined ? 'the token is for one group, not the whole server' : `the token is not for group "${group}"` };
    return { principal: { name: stateful.username ?? `token for group "${stateful.group}"`, admin: true } };
  }
  if (!looksLikeJwt(token)) return { refused: 'no such token' };
  if (group === undefined) return { refused: "a group's signed token does not open the whole server" };
  const desc = ctx.groups.get(group);
  if (desc === undefined) return { refused: `there is no group "${group}"` };
  try {
    const verified = await verifyGroupJwt(token, { keys: desc.authKeys, groupUrl: groupUrlOf(ctx, req, group), audience: desc.tokenAudience });
    if (!verified.permissions.includes('admin')) return { refused: 'the token does not grant the "admin" permission' };
    return { principal: { name: verified.username ?? 'token', admin: true } };
  } catch (e) {
    if (isAuthError(e)) return { refused: e.message };
    throw e;
  }
}

/** The group's URL as this request reached the server: what a JWT's audience must name. */
function groupUrlOf(ctx: AdminContext, req: FastifyRequest, group: string): string {
  const place = ctx.deps.place?.() ?? { insecure: req.protocol !== 'https', proxyURL: ctx.deps.config().proxyURL };
  return placeFor(req.headers.host, place).groupUrl(group);
}

/**
 * Administrators (HTTP Basic or bearer token); for password changes, also
 * the user themself. Every failure counts against the user and the
 * address, and a login that comes too soon after failures gets 429.
 */
export async function authenticate(ctx: AdminContext, req: FastifyRequest, target: Target): Promise<Principal> {
  const header = req.headers.authorization ?? '';
  const address = ctx.deps.address ? ctx.deps.address(req) : req.socket.remoteAddress;
  const basic = parseBasic(header);
  /** Why a bearer token was refused, for the 401. */
  let refused: string | undefined;
  if (basic !== undefined) {
    const self = target.kind === 'password' && target.user.kind === 'named' && target.user.name !== '' && target.user.name === basic.username;
    if (isAdminName(ctx, basic.username)) {
      const attempt = begin(ctx, { user: { key: `admin\n${basic.username}`, label: `administrator "${basic.username}"` }, address, via: 'admin' });
      if (await isAdmin(ctx, basic.username, basic.password)) {
        attempt?.succeeded();
        return { name: basic.username, admin: true };
      }
      if (!self) attempt?.failed('wrong administrator password');
      else attempt?.abandoned();
    }
    if (self) {
      try {
        await checkOwnPassword({ groups: ctx.groups, group: target.group, username: basic.username, password: basic.password, throttle: ctx.deps.throttle, address, via: 'admin' });
        return { name: basic.username, admin: false };
      } catch (e) {
        if (!(e instanceof PasswordChangeError)) throw e;
        if (e.code === 'throttled') throw new HttpError(429, e.message, { 'Retry-After': String(Math.ceil((e.retryAfterMs ?? 1000) / 1000)) });
        if (e.code === 'no-such-user') begin(ctx, { address, via: 'admin' })?.failed(`no user "${basic.username}" with a password in group "${target.group}"`);
      }
    } else if (!isAdminName(ctx, basic.username)) {
      begin(ctx, { address, via: 'admin' })?.failed(`no administrator "${basic.username}"`);
    }
  } else {
    const bearer = parseBearer(header);
    if (bearer !== undefined) {
      const attempt = begin(ctx, { address, via: 'admin' });
      const r = await bearerAllowed(ctx, req, bearer, groupOf(target));
      if ('principal' in r) {
        attempt?.succeeded();
        return r.principal;
      }
      attempt?.failed(`bearer token refused: ${r.refused}`);
      refused = r.refused;
    }
  }
  throw new HttpError(
    401,
    header === ''
      ? 'authentication required: use HTTP Basic with an administrator of data/config.json (permission "admin"), or a bearer token with the "admin" permission'
      : `not authorised: these credentials do not grant the "admin" permission here${refused === undefined ? '' : ` (${refused})`}`,
    { 'WWW-Authenticate': `Basic realm="${REALM}"` },
  );
}
