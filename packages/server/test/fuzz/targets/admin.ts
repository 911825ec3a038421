// Fuzz target: every route of the admin API (/galene-api/v0/…). A case is
// one request: a method, a path built from the API's routes with names from
// a small pool (some hostile) or mangled, credentials of one of several
// kinds, a content type and a body generated from the bodies the routes
// take, often mutated. Bearer JWTs are signed with group g2's key: one
// right (exp, the group's full URL as audience, "admin"), the others each
// wrong in one way (no exp, no aud, aud by path only or on another host,
// expired, without "admin", another key). Properties: an answer to every
// request (within 30 s), never a 5xx; nobody but an administrator gets a
// 2xx (except a user POSTing their own password, and the right JWT within
// g2); a user never sets a definition; every group file on disk still parses; no file outside a group's
// recordings folder is ever deleted; and a member of a group no case names
// stays connected and keeps hearing another.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import * as jose from 'jose';
import { z } from 'zod';
import { GroupFileError, parseGroupDescription, passwordDefinitionSchema } from '../../../src/groups/description.ts';
import { GaleneTestClient } from '../../support/galene-client.ts';
import { type Host, REPLY_MS, type Target, loopbackAddress } from '../support/harness.ts';
import { mutated } from '../support/mutate.ts';
import { arbitraryOf, hostileString } from '../support/zod-arbitrary.ts';

const HOME = 'home';
const ALICE = { username: 'alice', password: 'alice-pw-93kd' };
const ADMIN = { username: 'root', password: 'root-pw-x81m' };
// Wrong passwords go to other accounts (ops, bob), so throttling does not lock out the ones the cases use.
const HOME_FILE = {
  users: { [ALICE.username]: { password: ALICE.password, permissions: 'present' }, bob: { password: 'bob-pw', permissions: 'present' } },
  'wildcard-user': { password: { type: 'wildcard' }, permissions: 'message' },
};

// Group quiet is named by no case: its members must notice nothing.
const QUIET = 'quiet';
const QUIET_FILE = { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } };

async function member(wsUrl: string, username: string): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(wsUrl, { answerPings: true, timeoutMs: REPLY_MS });
  const j = await c.join(QUIET, username, 'x', {}, REPLY_MS);
  if (j.kind !== 'join') throw new Error(`${username} could not join group ${QUIET}: ${JSON.stringify(j)}`);
  return c;
}

// Group g2 takes bearer JWTs signed with this key (a fresh one per run).
const G2 = 'g2';
const G2_SECRET = randomBytes(32);
const G2_FILE = { authKeys: [{ kty: 'oct', alg: 'HS256', k: G2_SECRET.toString('base64url') }] };
/** The JWT bearers: `jwt` is right for g2; each other one is wrong in the way its name says. */
const JWT_KINDS = ['jwt', 'jwt-no-exp', 'jwt-no-aud', 'jwt-path-aud', 'jwt-other-host', 'jwt-expired', 'jwt-no-admin', 'jwt-other-key'] as const;
type JwtKind = (typeof JWT_KINDS)[number];

async function signJwt(kind: JwtKind, serverUrl: string): Promise<string> {
  const groupUrl = `${serverUrl}/group/${G2}/`;
  const jwt = new jose.SignJWT({ permissions: kind === 'jwt-no-admin' ? ['op', 'present'] : ['admin'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('portal');
  const aud = { 'jwt-no-aud': undefined, 'jwt-path-aud': `/group/${G2}/`, 'jwt-other-host': `https://evil.example/group/${G2}/` }[kind as string] ?? groupUrl;
  if (kind !== 'jwt-no-aud') jwt.setAudience(aud);
  if (kind === 'jwt-expired') jwt.setExpirationTime(Math.floor(Date.now() / 1000) - 3600);
  else if (kind !== 'jwt-no-exp') jwt.setExpirationTime('2h');
  return jwt.sign(kind === 'jwt-other-key' ? randomBytes(32) : G2_SECRET);
}

const names = fc.oneof({ arbitrary: fc.constantFrom('fuzz', 'g2', 'a/b', 'new', HOME, 'nope'), weight: 6 }, { arbitrary: hostileString, weight: 1 });
const users = fc.oneof({ arbitrary: fc.constantFrom(ALICE.username, 'bob', '', 'x'), weight: 4 }, { arbitrary: hostileString, weight: 1 });
const enc = (s: string) => encodeURIComponent(s.replace(/\p{Surrogate}/gu, '\uFFFD'));

/** Recordings on disk: the ones in group fuzz may go (and come back); the others must stay. */
const RECORDINGS = ['fuzz/a.webm', 'fuzz/b.webm.part', 'fuzz/.hidden.webm', 'g2/c.webm'];
const OUTSIDE = ['outside.webm', 'fuzz.webm', 'a/secret.webm'];
const recordingFiles = fc.oneof(
  { arbitrary: fc.constantFrom('a.webm', 'b.webm.part', 'c.webm', '.hidden.webm', 'nope.webm', '..', '.', '../outside.webm', '..%2foutside.webm', '..\\outside.webm', 'a.webm%00'), weight: 4 },
  { arbitrary: hostileString, weight: 1 },
);

const path = fc.oneof(
  { arbitrary: fc.constantFrom('.stats', '.groups/', '', 'v1/.groups/', '.cluster', '.drain', '.drain/x'), weight: 1 },
  { arbitrary: fc.tuple(names, fc.option(recordingFiles, { nil: undefined })).map(([g, f]) => `.groups/${enc(g)}/.recordings${f === undefined ? '/' : `/${enc(f)}`}`), weight: 2 },
  { arbitrary: names.map((g) => `.groups/${enc(g)}`), weight: 2 },
  {
    arbitrary: fc
      .tuple(names, fc.constantFrom('.users/', '.keys', '.tokens/', '.clients/', '.recordings', '.wildcard-user', '.empty-user', '.wildcard-user/.password', '.empty-user/.password', '.nope'))
      .map(([g, s]) => `.groups/${enc(g)}/${s}`),
    weight: 3,
  },
  { arbitrary: fc.tuple(names, users, fc.boolean()).map(([g, u, pw]) => `.groups/${enc(g)}/.users/${enc(u)}${pw ? '/.password' : ''}`), weight: 5 },
  { arbitrary: fc.tuple(names, fc.string({ maxLength: 30 })).map(([g, t]) => `.groups/${enc(g)}/.tokens/${enc(t)}`), weight: 2 },
  { arbitrary: fc.tuple(names, fc.string({ maxLength: 30 })).map(([g, c]) => `.groups/${enc(g)}/.clients/${enc(c)}/.description`), weight: 1 },
  { arbitrary: fc.constantFrom('.groups/%', '.groups/%zz', '.groups/a%ED%A0%80', '.groups/..%2f..', '.groups//x', '.groups/a/../b', `.groups/${'x'.repeat(5000)}`), weight: 1 },
);

const tokenBody = z.object({
  username: z.string().optional(),
  permissions: z.array(z.enum(['op', 'present', 'message'])).optional(),
  expires: z.iso.datetime().optional(),
  'not-before': z.iso.datetime().optional(),
  'include-subgroups': z.boolean().optional(),
});
const groupBody = z.object({
  public: z.boolean().optional(),
  displayName: z.string().optional(),
  'max-clients': z.number().int().optional(),
  'max-history-age': z.number().int().optional(),
  'auto-subgroups': z.boolean().optional(),
  codecs: z.array(z.enum(['vp8', 'opus', 'h264'])).optional(),
});
const userBody = z.object({ permissions: z.union([z.enum(['op', 'present', 'message', 'observe', 'nope']), z.array(z.enum(['op', 'present', 'message', 'record', 'x']))]).optional() });
const jwkSet = z.object({ keys: z.array(z.object({ kty: z.enum(['oct', 'EC', 'RSA']), alg: z.enum(['HS256', 'ES256', 'none']), k: z.string().optional(), kid: z.string().optional() })) });
const passwordDef = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constant({ type: 'wildcard' }),
  fc.record({
    type: fc.constant('bcrypt'),
    key: fc.oneof(
      fc.integer({ min: 0, max: 40 }).map((c) => `$2a$${String(c).padStart(2, '0')}$${'N'.repeat(53)}`),
      hostileString,
    ),
  }),
  fc.record({
    type: fc.constant('pbkdf2'),
    hash: fc.constant('sha-256'),
    key: fc.constantFrom('ab', 'ab'.repeat(32), 'zz'),
    salt: fc.constantFrom('', 'cd'),
    iterations: fc.oneof(fc.integer({ min: 1, max: 5000 }), fc.constantFrom(1e6, 1e6 + 1, 1e9, -1, 0.5)),
  }),
);
void passwordDefinitionSchema;

const bodyValue = fc.oneof(arbitraryOf(tokenBody), arbitraryOf(groupBody), arbitraryOf(userBody), arbitraryOf(jwkSet), passwordDef, fc.jsonValue({ maxDepth: 3 }));

export interface AdminCase {
  method: string;
  path: string;
  auth: 'none' | 'admin' | 'admin-wrong' | 'alice' | 'alice-wrong' | 'bearer' | 'garbage' | JwtKind;
  type: string | undefined;
  body: { json: unknown } | { text: string } | undefined;
}

export interface AdminEnv {
  host: Host;
  url: URL;
  groupsDir: string;
  recordingsDir: string;
  /** Members of group quiet, which no case names: the bystander hears the witness. */
  bystander: GaleneTestClient;
  witness: GaleneTestClient;
  requests: number;
  jwts: Record<JwtKind, string>;
  /** Cases in flight that may change group home, and a count of their starts and ends. */
  homeBusy: number;
  homeEpoch: number;
}

function authHeader(env: AdminEnv, a: AdminCase['auth']): string | undefined {
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  switch (a) {
    case 'none':
      return undefined;
    case 'admin':
      return basic(ADMIN.username, ADMIN.password);
    case 'admin-wrong':
      return basic('ops', 'guess');
    case 'alice':
      return basic(ALICE.username, ALICE.password);
    case 'alice-wrong':
      return basic('bob', 'guess');
    case 'bearer':
      return 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJwZXJtaXNzaW9ucyI6WyJhZG1pbiJdfQ.c2ln';
    case 'garbage':
      return 'Basic %%%';
    default:
      return `Bearer ${env.jwts[a]}`;
  }
}

function send(env: AdminEnv, c: AdminCase): Promise<{ status: number; body: string }> {
  // A GET or HEAD with a body is read as two requests by some parsers: not sent.
  const body = c.body === undefined || c.method === 'GET' || c.method === 'HEAD' ? undefined : 'json' in c.body ? (JSON.stringify(c.body.json) ?? 'null') : c.body.text;
  const headers: Record<string, string> = {};
  const auth = authHeader(env, c.auth);
  if (auth) headers.authorization = auth;
  if (c.type) headers['content-type'] = c.type;
  // Node sends an OPTIONS or DELETE body with no length unless told.
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  return new Promise((resolve, reject) => {
    const req = request(
      { host: env.url.hostname, port: env.url.port, method: c.method, path: `/galene-api/v0/${c.path}`, headers, localAddress: loopbackAddress(env.requests++), agent: false },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    // Every request is owed an answer: one that never comes fails the case rather than hanging the run.
    req.setTimeout(30_000, () => req.destroy(new Error(`${c.method} ${c.path.slice(0, 200)} got no answer within 30 s`)));
    req.end(body);
  });
}

/** Puts a group file back, atomically (`check` and the server may read it meanwhile). */
async function restore(dir: string, name: string, content: unknown): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  await writeFile(tmp, JSON.stringify(content));
  await rename(tmp, join(dir, `${name}.json`));
}

async function groupFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    if (e.isDirectory()) out.push(...(await groupFiles(dir, join(rel, e.name))));
    else if (e.name.endsWith('.json')) out.push(join(rel, e.name));
  }
  return out;
}

export const adminTarget: Target<AdminCase, AdminEnv> = {
  name: 'admin',
  host: {
    config: { writableGroups: true, users: { [ADMIN.username]: { password: ADMIN.password, permissions: 'admin' }, ops: { password: 'ops-pw', permissions: 'admin' } } },
    groups: { [HOME]: HOME_FILE, fuzz: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } }, [G2]: G2_FILE, [QUIET]: QUIET_FILE },
    recordings: [...RECORDINGS, ...OUTSIDE],
  },
  baselineMembers: 0,
  arbitrary: fc.record({
    method: fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'),
    path,
    auth: fc.oneof(
      { arbitrary: fc.constantFrom<AdminCase['auth']>('none', 'admin', 'admin', 'admin', 'admin-wrong', 'alice', 'alice', 'alice-wrong', 'bearer', 'garbage'), weight: 5 },
      { arbitrary: fc.constantFrom<AdminCase['auth']>(...JWT_KINDS, 'jwt', 'jwt'), weight: 2 },
    ),
    type: fc.option(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/jwk-set+json', 'application/x-www-form-urlencoded', 'APPLICATION/JSON', ''), {
      nil: undefined,
    }),
    body: fc.option(
      fc.oneof(
        { arbitrary: bodyValue.map((json) => ({ json })), weight: 3 },
        { arbitrary: mutated(bodyValue, ['x']).map((json) => ({ json })), weight: 2 },
        { arbitrary: fc.string({ maxLength: 60 }).map((text) => ({ text })), weight: 1 },
      ),
      { nil: undefined },
    ),
  }),

  async setup(host: Host | undefined) {
    const url = new URL(host!.url);
    const jwts = Object.fromEntries(await Promise.all(JWT_KINDS.map(async (k) => [k, await signJwt(k, url.origin)] as const))) as Record<JwtKind, string>;
    const wsUrl = `${host!.url.replace(/^http/, 'ws')}/ws`;
    const bystander = await member(wsUrl, 'bystander');
    const witness = await member(wsUrl, 'witness');
    return { host: host!, url, groupsDir: host!.groupsDir, recordingsDir: host!.recordingsDir, bystander, witness, requests: 0, jwts, homeBusy: 0, homeEpoch: 0 };
  },

  async run(env, c) {
    // Cases run concurrently: one that may change group home (alice's password with it) makes a
    // 401 for alice's own requests possible until it has put the file back.
    const touchesHome = c.path.startsWith(`.groups/${HOME}`) || c.method === 'DELETE';
    const othersBusy = env.homeBusy > 0;
    const epoch = env.homeEpoch;
    if (touchesHome) {
      env.homeBusy++;
      env.homeEpoch++;
    }
    try {
      const r = await send(env, c);
      if (r.status >= 500) throw new Error(`${c.method} ${c.path.slice(0, 200)} answered ${r.status}: ${r.body.slice(0, 300)}`);
      const ownPassword = new RegExp(`^\\.groups/${HOME}/\\.users/${ALICE.username}/\\.password$`).test(c.path);
      const inG2 = c.path === `.groups/${G2}` || c.path.startsWith(`.groups/${G2}/`);
      if (r.status >= 200 && r.status < 300 && c.auth !== 'admin') {
        if (!(c.auth === 'alice' && ownPassword && c.method === 'POST') && !(c.auth === 'jwt' && inG2)) throw new Error(`${c.auth} got ${r.status} for ${c.method} ${c.path}`);
      }
      const homeDisturbed = othersBusy || env.homeEpoch !== epoch + (touchesHome ? 1 : 0);
      if (c.auth === 'alice' && ownPassword && (c.method === 'PUT' || c.method === 'DELETE') && r.status !== 403 && r.status !== 429 && !(r.status === 401 && homeDisturbed)) {
        throw new Error(`alice's ${c.method} of her own password definition answered ${r.status}, not 403`);
      }
      // Alice changed her password, or an administrator (or g2's token) changed or removed her group or g2: put things back.
      if (r.status < 300 && (touchesHome || inG2)) {
        await restore(env.groupsDir, HOME, HOME_FILE);
        await restore(env.groupsDir, G2, G2_FILE);
        // Before the next case: the server must be using them again (its watcher reloads after a debounce).
        await env.host.settle([HOME, G2]);
      }
      // A recording deleted (by an administrator, or g2's token): put the files back.
      if (r.status < 300 && c.method === 'DELETE' && c.path.includes('/.recordings/')) {
        for (const rel of RECORDINGS) {
          const file = join(env.recordingsDir, rel);
          if (existsSync(file)) continue;
          await mkdir(join(file, '..'), { recursive: true });
          await writeFile(file, 'not really a recording');
        }
      }
    } finally {
      if (touchesHome) {
        env.homeBusy--;
        env.homeEpoch++;
      }
    }
  },

  async check(env) {
    for (const rel of await groupFiles(env.groupsDir)) {
      const name = rel.slice(0, -'.json'.length);
      // A case running meanwhile may have deleted the group (an administrator may): gone is not corrupt.
      const text = await readFile(join(env.groupsDir, rel), 'utf8').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      if (text === undefined) continue;
      try {
        parseGroupDescription(name, rel, JSON.parse(text));
      } catch (e) {
        throw new Error(`group file ${rel} no longer parses: ${e instanceof GroupFileError ? e.message : String(e)}`);
      }
    }
    // Outside any group's folder, or hidden in one: no route may delete them.
    for (const rel of [...OUTSIDE, 'fuzz/.hidden.webm']) if (!existsSync(join(env.recordingsDir, rel))) throw new Error(`recordings/${rel} was deleted through the admin API`);
    // Both say something now and then, or the server drops them as silent after 75 s.
    env.bystander.send({ type: 'ping' });
    const mark = `witness ${Date.now()} ${Math.random()}`;
    env.witness.chat(mark);
    if (env.bystander.isClosed) throw new Error(`the bystander in group ${QUIET} was disconnected: ${JSON.stringify(await env.bystander.closed)}`);
    await env.bystander.next((f) => f.type === 'chat' && f.value === mark, REPLY_MS, 'the witness chat');
    if (env.bystander.violations.length > 0) throw new Error(`the bystander got frames that break the protocol: ${env.bystander.violations.slice(0, 3).join('; ')}`);
    for (const p of [env.bystander, env.witness]) {
      p.received.splice(0, p.received.length);
      (p as unknown as { cursor: number }).cursor = 0;
    }
  },

  async teardown(env) {
    env.bystander.close();
    env.witness.close();
    await Promise.all([env.bystander.closed, env.witness.closed]);
  },
};
