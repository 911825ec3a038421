// Galène's administrative HTTP API under /galene-api/v0/ (galene-api.md), so
// that `galenectl` and other Galène tools can manage Atrium: statistics,
// group definitions with ETags, users, passwords, the wildcard user, token
// keys and stateful tokens. Passwords and keys are never returned nor logged.
// Atrium adds the live clients of a group and their descriptions (what the
// back end says about a client, pushed to its mesh peers at once):
//   GET               .groups/<group>/.clients/                 [{id, username?, description}]
//   GET, PUT, DELETE  .groups/<group>/.clients/<id>/.description  a JSON object, or null
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase } from 'fastify';
import { decodeProtectedHeader, importJWK, jwtVerify, type JWK, type ProtectedHeaderParameters } from 'jose';
import { z } from 'zod';
import type { Description } from '../core/client.ts';
import type { Logger } from '../log.ts';
import type { ServerConfig } from '../config/server-config.ts';
import { GroupFileError, describeIssue, expandPermissions, formatPath, jwkSchema, passwordDefinitionSchema, permissionsFieldSchema } from '../groups/description.ts';
import { hashPassword, verifyPassword } from '../groups/passwords.ts';
import {
  GroupNotFoundError,
  GroupStoreError,
  PreconditionFailedError,
  checkPreconditions,
  etagMatches,
  etagOf,
  validateGroupName,
  type GroupStore,
  type Preconditions,
  type RawGroup,
} from '../groups/store.ts';
import type { StatefulToken } from '../auth/tokens.ts';

export type { StatefulToken };

/** What the admin API needs from the token store. */
export interface TokenStoreLike {
  get(token: string): StatefulToken | undefined;
  list(group?: string): StatefulToken[];
  put(t: StatefulToken): Promise<void>;
  delete(token: string): Promise<boolean>;
}

/** The live members of groups, for the description endpoints. */
export interface MemberDirectory {
  /** The members of a live group (empty when nobody is in it). */
  list(group: string): { id: string; username?: string | undefined; description: Description }[];
  /** One member's description; undefined when there is no such member. */
  get(group: string, id: string): { description: Description } | undefined;
  /** Sets one member's description and tells its peers; false when there is no such member. */
  describe(group: string, id: string, description: Description): boolean;
}

export interface AdminApiDeps {
  groups: GroupStore;
  config: () => ServerConfig;
  tokens: TokenStoreLike;
  stats: () => unknown | Promise<unknown>;
  log: Logger;
  /** Live members; without it the .clients endpoints answer 404. */
  members?: MemberDirectory | undefined;
  /** A group's recordings (Atrium's addition: .groups/<g>/.recordings/); without it they answer 404. */
  recordings?: AdminRecordings | undefined;
}

/** The recordings on disk, as the admin API lists and deletes them (see http/recordings.ts). */
export interface AdminRecordings {
  list(group: string): Promise<unknown[]>;
  /** Undefined when deleted, else the HTTP status and why. */
  remove(group: string, name: string): Promise<{ status: number; message: string } | undefined>;
}

const PREFIX = '/galene-api/';
const REALM = '/galene-api/';
/** Galène reads at most this much of a plain-text password. */
const MAX_PASSWORD_BYTES = 4096;
const MAX_BODY_BYTES = 1024 * 1024;
/** Fields that hold credentials and never leave the server. */
const SECRET_GROUP_FIELDS = ['users', 'wildcard-user', 'authKeys', 'op', 'presenter', 'other'];

/** An error that becomes an HTTP response with a plain-text explanation. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------
// Paths

type UserRef = { kind: 'named'; name: string } | { kind: 'wildcard' };

type Target =
  | { kind: 'stats' }
  | { kind: 'groups' }
  | { kind: 'group'; group: string }
  | { kind: 'users'; group: string }
  | { kind: 'user'; group: string; user: UserRef }
  | { kind: 'password'; group: string; user: UserRef }
  | { kind: 'keys'; group: string }
  | { kind: 'tokens'; group: string }
  | { kind: 'token'; group: string; token: string }
  | { kind: 'clients'; group: string }
  | { kind: 'description'; group: string; client: string }
  | { kind: 'recordings'; group: string }
  | { kind: 'recording'; group: string; file: string };

function notFound(what: string): HttpError {
  return new HttpError(404, `${what} not found; see galene-api.md for the endpoints under /galene-api/v0/`);
}

/** Splits the path after /galene-api/ the way Galène does: the first "/." starts a special entry. */
function parseTarget(pathname: string): Target {
  let p: string;
  try {
    p = decodeURIComponent(pathname.slice(PREFIX.length));
  } catch {
    throw new HttpError(400, 'the URL contains invalid percent-encoding');
  }
  if (!p.startsWith('v0/')) throw notFound(`API version "${p.split('/')[0] ?? ''}"; this server speaks v0:`);
  const rest = p.slice('v0/'.length);
  if (rest === '.stats') return { kind: 'stats' };
  if (!rest.startsWith('.groups/')) throw notFound(`"/galene-api/${p}"`);
  const g = rest.slice('.groups/'.length);
  if (g === '') return { kind: 'groups' };

  const split = g.indexOf('/.');
  if (split < 0) {
    return { kind: 'group', group: g.endsWith('/') ? g.slice(0, -1) : g };
  }
  const group = g.slice(0, split);
  const special = g.slice(split + 1);
  const slash = special.indexOf('/');
  const kind = slash < 0 ? special : special.slice(0, slash);
  const sub = slash < 0 ? undefined : special.slice(slash + 1);

  switch (kind) {
    case '.users':
      if (sub === undefined) throw notFound(`"${special}" (the user list is ".users/")`);
      if (sub === '') return { kind: 'users', group };
      if (sub.endsWith('/.password')) return { kind: 'password', group, user: { kind: 'named', name: sub.slice(0, -'/.password'.length) } };
      if (sub.includes('/.')) throw notFound(`"${special}"`);
      return { kind: 'user', group, user: { kind: 'named', name: sub } };
    case '.wildcard-user':
    case '.empty-user': {
      const user: UserRef = kind === '.wildcard-user' ? { kind: 'wildcard' } : { kind: 'named', name: '' };
      if (sub === undefined) return { kind: 'user', group, user };
      if (sub === '.password') return { kind: 'password', group, user };
      throw notFound(`"${special}"`);
    }
    case '.keys':
      if (sub !== undefined) throw notFound(`"${special}"`);
      return { kind: 'keys', group };
    case '.tokens':
      if (sub === undefined) throw notFound(`"${special}" (the token list is ".tokens/")`);
      if (sub === '') return { kind: 'tokens', group };
      if (sub.includes('/')) throw notFound(`"${special}"`);
      return { kind: 'token', group, token: sub };
    case '.clients': {
      if (sub === undefined) throw notFound(`"${special}" (the client list is ".clients/")`);
      if (sub === '') return { kind: 'clients', group };
      const client = sub.endsWith('/.description') ? sub.slice(0, -'/.description'.length) : '';
      if (client === '' || client.includes('/')) throw notFound(`"${special}" (a client's description is ".clients/<id>/.description")`);
      return { kind: 'description', group, client };
    }
    case '.recordings':
      if (sub === undefined) throw notFound(`"${special}" (the recordings are ".recordings/")`);
      if (sub === '') return { kind: 'recordings', group };
      if (sub.includes('/')) throw notFound(`"${special}"`);
      return { kind: 'recording', group, file: sub };
    default:
      throw notFound(`"${special}"`);
  }
}

function groupOf(t: Target): string | undefined {
  return t.kind === 'stats' || t.kind === 'groups' ? undefined : t.group;
}

function describeUser(u: UserRef, group: string): string {
  if (u.kind === 'wildcard') return `the wildcard user of group "${group}"`;
  if (u.name === '') return `the empty user of group "${group}"`;
  return `user "${u.name}" of group "${group}"`;
}

// ---------------------------------------------------------------------------
// Authentication

interface Principal {
  /** Who is acting, for logs and `issuedBy`. */
  name: string;
}

function parseBasic(header: string): { username: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (m === null) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function parseBearer(header: string): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m === null ? undefined : m[1];
}

function hasAdmin(perms: readonly string[] | unknown): boolean {
  return Array.isArray(perms) && perms.includes('admin');
}

/** Whether a stateful token may administer `group` (undefined: the whole server). */
function tokenCovers(t: StatefulToken, group: string | undefined): boolean {
  const sub = t['include-subgroups'] === true;
  if (group === undefined) return t.group === '' && sub;
  if (t.group === group) return true;
  return sub && (t.group === '' || group.startsWith(t.group + '/'));
}

function tokenTimesValid(t: StatefulToken, now: number): boolean {
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

// ---------------------------------------------------------------------------
// Bodies

const jsonObject = z.record(z.string(), z.unknown());
const MAX_DESCRIPTION_BYTES = 16 * 1024;
const descriptionBody = z
  .record(z.string(), z.unknown())
  .refine((v) => JSON.stringify(v).length <= MAX_DESCRIPTION_BYTES, { message: `must be at most ${MAX_DESCRIPTION_BYTES} bytes as JSON` })
  .nullable();

function mediaType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

function bodyBytes(req: FastifyRequest): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

function readJson(req: FastifyRequest, accept = 'application/json'): unknown {
  const type = mediaType(req);
  if (type !== accept) {
    throw new HttpError(415, `unsupported content type ${type === '' ? '(none)' : `"${type}"`}: this endpoint accepts ${accept}`, { Accept: accept });
  }
  const bytes = bodyBytes(req);
  if (bytes.length === 0) throw new HttpError(400, `the request body is empty; send a JSON document (${accept})`);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

function readText(req: FastifyRequest): string {
  const type = mediaType(req);
  if (type !== 'text/plain') {
    throw new HttpError(415, `unsupported content type ${type === '' ? '(none)' : `"${type}"`}: POST a password as text/plain (PUT takes a JSON password definition)`, {
      Accept: 'text/plain',
    });
  }
  const bytes = bodyBytes(req);
  if (bytes.length > MAX_PASSWORD_BYTES) throw new HttpError(413, `the password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  return bytes.toString('utf8');
}

/** Validates a body with zod; the 400 message names the field. */
function validate<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue === undefined) throw new HttpError(400, `invalid ${what}`);
  const d = describeIssue(issue);
  const field = d.path.length > 0 ? ` field "${formatPath(d.path)}":` : '';
  throw new HttpError(400, `invalid ${what}:${field} ${d.message}`);
}

const userBody = z.strictObject({ permissions: permissionsFieldSchema.optional() });

const rfc3339 = z.iso.datetime({ offset: true, error: 'expected an RFC 3339 time such as "2030-01-31T12:00:00Z"' });
const tokenBody = z.strictObject({
  username: z.string().optional(),
  permissions: permissionsFieldSchema.optional(),
  expires: rfc3339.optional(),
  'not-before': rfc3339.optional(),
  issuedBy: z.string().optional(),
  issuedAt: rfc3339.optional(),
  'include-subgroups': z.boolean().optional(),
});
const jwkSet = z.looseObject({ keys: z.array(jwkSchema) });

// ---------------------------------------------------------------------------
// Responses

function sendJson(reply: FastifyReply, status: number, value: unknown, etag?: string): FastifyReply {
  reply.code(status).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-cache');
  if (etag !== undefined) reply.header('etag', etag);
  return reply.send(JSON.stringify(value) + '\n');
}

function sendEmpty(reply: FastifyReply, status: number, etag?: string): FastifyReply {
  if (etag !== undefined) reply.header('etag', etag);
  return reply.code(status).send();
}

function sendError(reply: FastifyReply, status: number, message: string, headers: Record<string, string> = {}): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply
    .code(status)
    .header('content-type', 'text/plain; charset=utf-8')
    .send(message + '\n');
}

function preconditionsOf(req: FastifyRequest): Preconditions {
  const h = (name: 'if-match' | 'if-none-match'): string | undefined => {
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  return { ifMatch: h('if-match'), ifNoneMatch: h('if-none-match') };
}

/** GET/HEAD conditional handling: 304 when If-None-Match matches, 412 when If-Match does not. */
function conditionalGet(req: FastifyRequest, reply: FastifyReply, etag: string, what: string): boolean {
  const pre = preconditionsOf(req);
  if (pre.ifMatch !== undefined && !etagMatches(etag, pre.ifMatch, false)) {
    sendError(reply, 412, `${what} has changed: its ETag is not ${pre.ifMatch.trim()}`);
    return true;
  }
  if (pre.ifNoneMatch !== undefined && etagMatches(etag, pre.ifNoneMatch, true)) {
    reply.header('etag', etag).code(304).send();
    return true;
  }
  return false;
}

function methodNotAllowed(method: string, what: string, allowed: string[]): HttpError {
  return new HttpError(405, `method ${method} is not allowed on ${what}; allowed: ${allowed.join(', ')}`, { Allow: allowed.join(', ') });
}

function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

function sanitiseGroup(json: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!SECRET_GROUP_FIELDS.includes(k)) out[k] = v;
  return out;
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function rawUser(json: Record<string, unknown>, u: UserRef): Record<string, unknown> | undefined {
  if (u.kind === 'wildcard') return asRecord(json['wildcard-user']);
  const users = asRecord(json.users);
  return users !== undefined && Object.hasOwn(users, u.name) ? asRecord(users[u.name]) : undefined;
}

/** A copy of the group JSON with one user entry replaced (or removed with `undefined`). */
function withUser(json: Record<string, unknown>, u: UserRef, entry: Record<string, unknown> | undefined): Record<string, unknown> {
  const out = { ...json };
  if (u.kind === 'wildcard') {
    if (entry === undefined) delete out['wildcard-user'];
    else out['wildcard-user'] = entry;
    return out;
  }
  const users = { ...(asRecord(json.users) ?? {}) };
  if (entry === undefined) delete users[u.name];
  else users[u.name] = entry;
  out.users = users;
  return out;
}

function tokenEtag(t: StatefulToken): string {
  return etagOf(JSON.stringify(t));
}

// ---------------------------------------------------------------------------
// The API

/** Registers /galene-api/ on `app` (any server flavour and logger type). */
export async function registerAdminApi<Server extends RawServerBase, AppLogger extends FastifyBaseLogger>(
  app: FastifyInstance<Server, RawRequestDefaultExpression<Server>, RawReplyDefaultExpression<Server>, AppLogger>,
  deps: AdminApiDeps,
): Promise<void> {
  const { groups, tokens, log } = deps;

  async function existing(name: string): Promise<RawGroup> {
    let cur: RawGroup | undefined;
    try {
      cur = await groups.readRaw(name);
    } catch (err) {
      if (err instanceof GroupFileError) {
        throw new HttpError(500, `the definition of group "${name}" on disk is invalid (${err.message}); fix the file, or replace it with PUT`);
      }
      throw err;
    }
    if (cur === undefined) throw new GroupNotFoundError(name);
    return cur;
  }

  function requireWritable(): void {
    if (!deps.config().writableGroups) {
      throw new HttpError(403, `group definitions are read-only: set "writableGroups": true in ${deps.config().file} to allow changes through the API`);
    }
  }

  async function isAdmin(username: string, password: string): Promise<boolean> {
    const users = deps.config().users;
    if (!Object.hasOwn(users, username)) return false;
    const u = users[username];
    if (u?.password === undefined || !u.permissions.includes('admin')) return false;
    return verifyPassword(u.password, password);
  }

  async function bearerAllowed(token: string, group: string | undefined): Promise<Principal | undefined> {
    const stateful = tokens.get(token);
    if (stateful !== undefined) {
      if (!hasAdmin(stateful.permissions) || !tokenTimesValid(stateful, Date.now()) || !tokenCovers(stateful, group)) return undefined;
      return { name: stateful.username ?? `token for group "${stateful.group}"` };
    }
    // A cryptographic token, signed with one of the group's keys.
    if (group === undefined || token.split('.').length !== 3) return undefined;
    const desc = groups.get(group);
    if (desc === undefined || desc.authKeys.length === 0) return undefined;
    let header: ProtectedHeaderParameters;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return undefined;
    }
    // Every key is tried in turn, unless the token names one with "kid" (galene.md).
    const candidates = desc.authKeys.filter((k) => k.alg === header.alg && (header.kid === undefined || k.kid === header.kid));
    for (const jwk of candidates) {
      try {
        const key = await importJWK(jwk as JWK, header.alg);
        const { payload } = await jwtVerify(token, key, { clockTolerance: 5 });
        if (!hasAdmin(payload.permissions)) return undefined;
        if (payload.aud !== undefined) {
          const auds = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
          if (!auds.some((a) => a.endsWith(`/group/${group}/`))) return undefined;
        }
        return { name: typeof payload.sub === 'string' ? payload.sub : 'token' };
      } catch {
        // try the next key
      }
    }
    return undefined;
  }

  /** Administrators (HTTP Basic or bearer token); for password changes, also the user themself. */
  async function authenticate(req: FastifyRequest, target: Target): Promise<Principal> {
    const header = req.headers.authorization ?? '';
    const basic = parseBasic(header);
    if (basic !== undefined) {
      if (await isAdmin(basic.username, basic.password)) return { name: basic.username };
      if (target.kind === 'password' && target.user.kind === 'named' && target.user.name !== '' && target.user.name === basic.username) {
        const desc = groups.get(target.group);
        const u = desc?.users[basic.username];
        if (u?.password !== undefined && (await verifyPassword(u.password, basic.password))) return { name: basic.username };
      }
    } else {
      const bearer = parseBearer(header);
      if (bearer !== undefined) {
        const p = await bearerAllowed(bearer, groupOf(target));
        if (p !== undefined) return p;
      }
    }
    throw new HttpError(
      401,
      header === ''
        ? 'authentication required: use HTTP Basic with an administrator of data/config.json (permission "admin"), or a bearer token with the "admin" permission'
        : 'not authorised: these credentials do not grant the "admin" permission here',
      { 'WWW-Authenticate': `Basic realm="${REALM}"` },
    );
  }

  // --- handlers ------------------------------------------------------------

  async function stats(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!isRead(req.method)) throw methodNotAllowed(req.method, '.stats', ['HEAD', 'GET']);
    return sendJson(reply, 200, (await deps.stats()) ?? null);
  }

  async function groupList(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!isRead(req.method)) throw methodNotAllowed(req.method, 'the list of groups', ['HEAD', 'GET']);
    return sendJson(
      reply,
      200,
      groups.list().map((g) => g.name),
    );
  }

  async function group(req: FastifyRequest, reply: FastifyReply, name: string, who: Principal): Promise<FastifyReply> {
    const what = `group "${name}"`;
    if (isRead(req.method)) {
      const cur = await existing(name);
      if (conditionalGet(req, reply, cur.etag, what)) return reply;
      return sendJson(reply, 200, sanitiseGroup(cur.json), cur.etag);
    }
    if (req.method === 'PUT') {
      requireWritable();
      const body = validate(jsonObject, readJson(req), 'group definition');
      const secret = SECRET_GROUP_FIELDS.filter((k) => Object.hasOwn(body, k));
      if (secret.length > 0) {
        throw new HttpError(400, `the group definition must not contain ${secret.map((k) => `"${k}"`).join(', ')}: manage users with .users/ and .wildcard-user, and keys with .keys`);
      }
      const r = await groups.modifyRaw(
        name,
        (cur) => {
          const next: Record<string, unknown> = { ...body };
          for (const k of SECRET_GROUP_FIELDS) if (cur !== undefined && Object.hasOwn(cur.json, k)) next[k] = cur.json[k];
          return next;
        },
        preconditionsOf(req),
      );
      log.info({ group: name, by: who.name }, r.created ? 'admin API: group created' : 'admin API: group updated');
      return sendEmpty(reply, r.created ? 201 : 204, r.etag);
    }
    if (req.method === 'DELETE') {
      requireWritable();
      await groups.deleteRaw(name, preconditionsOf(req));
      log.info({ group: name, by: who.name }, 'admin API: group deleted');
      return sendEmpty(reply, 204);
    }
    throw methodNotAllowed(req.method, what, ['HEAD', 'GET', 'PUT', 'DELETE']);
  }

  async function userList(req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
    if (!isRead(req.method)) throw methodNotAllowed(req.method, 'the list of users', ['HEAD', 'GET']);
    const cur = await existing(name);
    if (conditionalGet(req, reply, cur.etag, `group "${name}"`)) return reply;
    return sendJson(reply, 200, Object.keys(asRecord(cur.json.users) ?? {}).sort(), cur.etag);
  }

  async function user(req: FastifyRequest, reply: FastifyReply, name: string, u: UserRef, who: Principal): Promise<FastifyReply> {
    const what = describeUser(u, name);
    if (isRead(req.method)) {
      const cur = await existing(name);
      const entry = rawUser(cur.json, u);
      if (entry === undefined) throw new HttpError(404, `${what} does not exist`);
      if (conditionalGet(req, reply, cur.etag, what)) return reply;
      const { password: _secret, ...sanitised } = entry;
      return sendJson(reply, 200, sanitised, cur.etag);
    }
    if (req.method === 'PUT') {
      requireWritable();
      const json = readJson(req);
      if (asRecord(json) !== undefined && Object.hasOwn(asRecord(json)!, 'password')) {
        throw new HttpError(400, 'a user definition sent here must not contain a password: set it with PUT (JSON) or POST (text/plain) on .../.password');
      }
      const body = validate(userBody, json, 'user definition');
      const pre = preconditionsOf(req);
      let created = false;
      const r = await groups.modifyRaw(name, (cur) => {
        if (cur === undefined) throw new GroupNotFoundError(name);
        const old = rawUser(cur.json, u);
        checkPreconditions(old === undefined ? undefined : cur.etag, pre, what);
        created = old === undefined;
        const entry: Record<string, unknown> = {};
        if (old !== undefined && Object.hasOwn(old, 'password')) entry.password = old.password;
        if (body.permissions !== undefined) entry.permissions = (json as Record<string, unknown>).permissions;
        return withUser(cur.json, u, entry);
      });
      log.info({ group: name, user: u.kind === 'wildcard' ? '(wildcard)' : u.name, by: who.name }, created ? 'admin API: user created' : 'admin API: user updated');
      return sendEmpty(reply, created ? 201 : 204, r.etag);
    }
    if (req.method === 'DELETE') {
      requireWritable();
      const pre = preconditionsOf(req);
      const r = await groups.modifyRaw(name, (cur) => {
        if (cur === undefined) throw new GroupNotFoundError(name);
        if (rawUser(cur.json, u) === undefined) throw new HttpError(404, `${what} does not exist`);
        checkPreconditions(cur.etag, pre, what);
        return withUser(cur.json, u, undefined);
      });
      log.info({ group: name, user: u.kind === 'wildcard' ? '(wildcard)' : u.name, by: who.name }, 'admin API: user deleted');
      return sendEmpty(reply, 204, r.etag);
    }
    throw methodNotAllowed(req.method, what, ['HEAD', 'GET', 'PUT', 'DELETE']);
  }

  async function password(req: FastifyRequest, reply: FastifyReply, name: string, u: UserRef, who: Principal): Promise<FastifyReply> {
    const what = `the password of ${describeUser(u, name)}`;
    let next: unknown;
    if (req.method === 'PUT') {
      requireWritable();
      next = validate(passwordDefinitionSchema, readJson(req), 'password definition');
    } else if (req.method === 'POST') {
      requireWritable();
      next = await hashPassword(readText(req));
    } else if (req.method === 'DELETE') {
      requireWritable();
      next = undefined;
    } else {
      throw methodNotAllowed(req.method, `${what} (it is write-only)`, ['PUT', 'POST', 'DELETE']);
    }
    const r = await groups.modifyRaw(name, (cur) => {
      if (cur === undefined) throw new GroupNotFoundError(name);
      const old = rawUser(cur.json, u);
      if (old === undefined) throw new HttpError(404, `${describeUser(u, name)} does not exist; create it first with PUT`);
      const entry = { ...old };
      if (next === undefined) delete entry.password;
      else entry.password = next;
      return withUser(cur.json, u, entry);
    });
    log.info({ group: name, user: u.kind === 'wildcard' ? '(wildcard)' : u.name, by: who.name }, next === undefined ? 'admin API: password removed' : 'admin API: password set');
    return sendEmpty(reply, 204, r.etag);
  }

  async function keys(req: FastifyRequest, reply: FastifyReply, name: string, who: Principal): Promise<FastifyReply> {
    let next: Record<string, unknown>[] | undefined;
    if (req.method === 'PUT') {
      requireWritable();
      const set = validate(jwkSet, readJson(req, 'application/jwk-set+json'), 'JSON Web Key set');
      for (const [i, key] of set.keys.entries()) {
        try {
          await importJWK(key as JWK, key.alg);
        } catch (err) {
          throw new HttpError(400, `invalid JSON Web Key set: key [${i}] cannot be used: ${(err as Error).message}`);
        }
      }
      next = set.keys;
    } else if (req.method === 'DELETE') {
      requireWritable();
      next = undefined;
    } else {
      throw methodNotAllowed(req.method, `the keys of group "${name}" (they are write-only)`, ['PUT', 'DELETE']);
    }
    const r = await groups.modifyRaw(name, (cur) => {
      if (cur === undefined) throw new GroupNotFoundError(name);
      const out = { ...cur.json };
      if (next === undefined) delete out.authKeys;
      else out.authKeys = next;
      return out;
    });
    log.info({ group: name, by: who.name, count: next?.length ?? 0 }, 'admin API: token keys replaced');
    return sendEmpty(reply, 204, r.etag);
  }

  function tokenFromBody(json: unknown, group: string): Omit<StatefulToken, 'token' | 'group'> {
    const obj = asRecord(json);
    if (obj !== undefined && (Object.hasOwn(obj, 'token') || Object.hasOwn(obj, 'group'))) {
      throw new HttpError(400, 'overspecified token: the body must not contain "token" or "group"; they come from the URL');
    }
    const body = validate(tokenBody, json, 'token');
    const desc = groups.get(group);
    const out: Omit<StatefulToken, 'token' | 'group'> = {
      permissions: expandPermissions(body.permissions, desc),
    };
    if (body.username !== undefined) out.username = body.username;
    if (body.expires !== undefined) out.expires = body.expires;
    if (body['not-before'] !== undefined) out['not-before'] = body['not-before'];
    if (body.issuedBy !== undefined) out.issuedBy = body.issuedBy;
    if (body.issuedAt !== undefined) out.issuedAt = body.issuedAt;
    if (body['include-subgroups'] !== undefined) out['include-subgroups'] = body['include-subgroups'];
    if (out.expires !== undefined && out['not-before'] !== undefined && Date.parse(out['not-before']) >= Date.parse(out.expires)) {
      throw new HttpError(400, 'invalid token: "not-before" must be earlier than "expires"');
    }
    return out;
  }

  async function tokenList(req: FastifyRequest, reply: FastifyReply, name: string, who: Principal): Promise<FastifyReply> {
    if (isRead(req.method)) {
      return sendJson(
        reply,
        200,
        tokens
          .list(name)
          .filter((t) => t.group === name)
          .map((t) => t.token),
      );
    }
    if (req.method === 'POST') {
      const fields = tokenFromBody(readJson(req), name);
      const t: StatefulToken = { ...fields, token: randomBytes(16).toString('base64url'), group: name };
      t.issuedBy ??= who.name;
      t.issuedAt ??= new Date().toISOString();
      await tokens.put(t);
      log.info({ group: name, by: who.name }, 'admin API: token created');
      reply.header('location', encodeURIComponent(t.token));
      return sendEmpty(reply, 201, tokenEtag(t));
    }
    throw methodNotAllowed(req.method, 'the list of tokens', ['HEAD', 'GET', 'POST']);
  }

  async function token(req: FastifyRequest, reply: FastifyReply, name: string, tok: string, who: Principal): Promise<FastifyReply> {
    const what = `token in group "${name}"`;
    const old = tokens.get(tok);
    const mine = old !== undefined && old.group === name ? old : undefined;
    if (isRead(req.method)) {
      if (mine === undefined) throw new HttpError(404, `no such ${what}`);
      const etag = tokenEtag(mine);
      if (conditionalGet(req, reply, etag, what)) return reply;
      const { token: _t, group: _g, ...fields } = mine;
      return sendJson(reply, 200, fields, etag);
    }
    if (req.method === 'PUT') {
      if (old !== undefined && old.group !== name) {
        throw new HttpError(409, 'this token already exists in a different group; choose another token name');
      }
      if (tok.length > 256) throw new HttpError(400, 'token names are at most 256 characters long');
      checkPreconditions(mine === undefined ? undefined : tokenEtag(mine), preconditionsOf(req), what);
      const t: StatefulToken = { ...tokenFromBody(readJson(req), name), token: tok, group: name };
      await tokens.put(t);
      log.info({ group: name, by: who.name }, mine === undefined ? 'admin API: token created' : 'admin API: token updated');
      return sendEmpty(reply, mine === undefined ? 201 : 204, tokenEtag(t));
    }
    if (req.method === 'DELETE') {
      if (mine === undefined) throw new HttpError(404, `no such ${what}`);
      checkPreconditions(tokenEtag(mine), preconditionsOf(req), what);
      await tokens.delete(tok);
      log.info({ group: name, by: who.name }, 'admin API: token deleted');
      return sendEmpty(reply, 204);
    }
    throw methodNotAllowed(req.method, 'a token', ['HEAD', 'GET', 'PUT', 'DELETE']);
  }

  function directory(): MemberDirectory {
    if (deps.members === undefined) throw new HttpError(404, 'this server keeps no live clients here');
    return deps.members;
  }

  async function clientList(req: FastifyRequest, reply: FastifyReply, name: string): Promise<FastifyReply> {
    if (!isRead(req.method)) throw methodNotAllowed(req.method, 'the list of clients', ['HEAD', 'GET']);
    const list = directory()
      .list(name)
      .map((m) => (m.username === undefined ? { id: m.id, description: m.description } : { id: m.id, username: m.username, description: m.description }));
    return sendJson(reply, 200, list);
  }

  async function description(req: FastifyRequest, reply: FastifyReply, name: string, client: string, who: Principal): Promise<FastifyReply> {
    const what = `client "${client}" of group "${name}"`;
    const members = directory();
    if (isRead(req.method)) {
      const m = members.get(name, client);
      if (m === undefined) throw new HttpError(404, `there is no ${what}; clients come and go, list them with .clients/`);
      return sendJson(reply, 200, m.description);
    }
    let next: Description;
    if (req.method === 'PUT') next = validate(descriptionBody, readJson(req), 'description (a JSON object, or null)');
    else if (req.method === 'DELETE') next = null;
    else throw methodNotAllowed(req.method, `the description of ${what}`, ['HEAD', 'GET', 'PUT', 'DELETE']);
    if (!members.describe(name, client, next)) throw new HttpError(404, `there is no ${what}; clients come and go, list them with .clients/`);
    log.info({ group: name, client, by: who.name }, next === null ? 'admin API: description removed' : 'admin API: description set');
    return sendEmpty(reply, 204);
  }

  /** GET .recordings/ lists a group's recordings; DELETE .recordings/<file> deletes one. */
  async function recordings(req: FastifyRequest, reply: FastifyReply, target: Extract<Target, { kind: 'recordings' | 'recording' }>, who: Principal): Promise<FastifyReply> {
    const store = deps.recordings;
    if (!store) throw notFound('recordings (this server runs without a media engine, so it records nothing)');
    if (!groups.get(target.group)) throw new HttpError(404, `group "${target.group}" not found`);
    if (target.kind === 'recordings') {
      if (!isRead(req.method)) throw methodNotAllowed(req.method, '.recordings/', ['HEAD', 'GET']);
      return sendJson(reply, 200, await store.list(target.group));
    }
    if (req.method !== 'DELETE') throw methodNotAllowed(req.method, 'a recording', ['DELETE']);
    const refused = await store.remove(target.group, target.file);
    if (refused) throw new HttpError(refused.status, refused.message);
    log.info({ group: target.group, file: target.file, by: who.name }, 'admin API: recording deleted');
    return sendEmpty(reply, 204);
  }

  async function dispatch(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const target = parseTarget(new URL(req.url, 'http://localhost').pathname);
    const g = groupOf(target);
    // Tokens may be attached to the root ('') of the group hierarchy.
    if (g !== undefined && !(g === '' && (target.kind === 'tokens' || target.kind === 'token'))) validateGroupName(g);
    const who = await authenticate(req, target);
    switch (target.kind) {
      case 'stats':
        return stats(req, reply);
      case 'groups':
        return groupList(req, reply);
      case 'group':
        return group(req, reply, target.group, who);
      case 'users':
        return userList(req, reply, target.group);
      case 'user':
        return user(req, reply, target.group, target.user, who);
      case 'password':
        return password(req, reply, target.group, target.user, who);
      case 'keys':
        return keys(req, reply, target.group, who);
      case 'tokens':
        return tokenList(req, reply, target.group, who);
      case 'token':
        return token(req, reply, target.group, target.token, who);
      case 'clients':
        return clientList(req, reply, target.group);
      case 'description':
        return description(req, reply, target.group, target.client, who);
      case 'recordings':
      case 'recording':
        return recordings(req, reply, target, who);
    }
  }

  await app.register(async (api) => {
    // Bodies are read raw and checked per endpoint (content type, size, schema).
    api.removeAllContentTypeParsers();
    api.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES }, (_req, body, done) => done(null, body));

    api.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 413) return sendError(reply, 413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
      if (status >= 500) {
        req.log.error({ err }, 'admin API: internal error');
        return sendError(reply, 500, 'internal server error; the server log has the details');
      }
      return sendError(reply, status, err.message);
    });

    api.route({
      method: ['GET', 'PUT', 'POST', 'DELETE', 'PATCH'],
      url: `${PREFIX}*`,
      logLevel: 'warn', // URLs may carry token names, which are secrets.
      handler: async (req, reply) => {
        try {
          return await dispatch(req, reply);
        } catch (err) {
          if (err instanceof HttpError) return sendError(reply, err.status, err.message, err.headers);
          if (err instanceof PreconditionFailedError) return sendError(reply, 412, err.message);
          if (err instanceof GroupNotFoundError) return sendError(reply, 404, err.message);
          if (err instanceof GroupStoreError) return sendError(reply, 400, err.message);
          if (err instanceof GroupFileError) return sendError(reply, 400, `the result would be an invalid group definition: ${err.message}`);
          log.error({ err, method: req.method }, 'admin API: internal error');
          return sendError(reply, 500, 'internal server error; the server log has the details');
        }
      },
    });
  });
}
