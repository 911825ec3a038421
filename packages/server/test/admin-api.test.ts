// The admin API (/galene-api/v0/) over real HTTP: a real fastify server on
// 127.0.0.1, a real groups directory, an in-memory token store. Covers group
// definitions with ETags, users, passwords (set, hashed server-side, then
// used to log in), the wildcard user, keys, tokens and authentication.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import * as jose from 'jose';
import { pino } from 'pino';
import { registerAdminApi, type StatefulToken, type TokenStoreLike } from '../src/http/admin.ts';
import { GroupStore, authenticateWithPassword, hashPassword } from '../src/groups/index.ts';
import { ServerConfigError, ServerConfigWatcher, loadServerConfig, parseServerConfig, type ServerConfig } from '../src/config/server-config.ts';
import { silentLogger } from '../src/log.ts';

const ADMIN = { user: 'vetinari', password: 'lagniappe-admin-secret' };

/** A token store that lives in memory, as the admin API sees one. */
class MemoryTokens implements TokenStoreLike {
  readonly tokens = new Map<string, StatefulToken>();
  get(token: string): StatefulToken | undefined {
    return this.tokens.get(token);
  }
  list(group?: string): StatefulToken[] {
    return [...this.tokens.values()].filter((t) => group === undefined || t.group === group);
  }
  async put(t: StatefulToken): Promise<void> {
    this.tokens.set(t.token, { ...t });
  }
  async delete(token: string): Promise<boolean> {
    return this.tokens.delete(token);
  }
}

interface Harness {
  base: string;
  groups: GroupStore;
  tokens: MemoryTokens;
  config: { current: ServerConfig };
  logs: string[];
  dir: string;
}

async function start(t: { after: (fn: () => Promise<void> | void) => void }, opts: { writable?: boolean } = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'atrium-admin-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => logs.push(s) });
  const groups = new GroupStore({ dir: join(dir, 'groups'), log });
  await groups.start();
  t.after(() => groups.close());
  const config = {
    current: parseServerConfig(join(dir, 'data', 'config.json'), {
      users: {
        [ADMIN.user]: { password: await hashPassword(ADMIN.password), permissions: 'admin' },
        rincewind: { password: 'not-an-admin', permissions: 'present' },
      },
      writableGroups: opts.writable ?? true,
    }),
  };
  const tokens = new MemoryTokens();
  const app = Fastify({ loggerInstance: log });
  await registerAdminApi(app, {
    groups,
    config: () => config.current,
    tokens,
    stats: () => [{ name: 'stats-marker', clients: [] }],
    log,
    // Where clients reach this server: group URLs (the audience of signed tokens) are on it.
    place: () => ({ insecure: false, proxyURL: 'https://meet.example.org/' }),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const addr = app.server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  return { base: `http://127.0.0.1:${addr.port}/galene-api/v0`, groups, tokens, config, logs, dir };
}

function basic(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}
const admin = { authorization: basic(ADMIN.user, ADMIN.password) };

async function call(
  h: Harness,
  method: string,
  path: string,
  opts: { body?: unknown; text?: string; type?: string; headers?: Record<string, string>; auth?: Record<string, string> | null } = {},
): Promise<{ status: number; headers: Headers; text: string; json: () => unknown }> {
  const headers: Record<string, string> = { ...(opts.auth === null ? {} : (opts.auth ?? admin)), ...(opts.headers ?? {}) };
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = opts.type ?? 'application/json';
  } else if (opts.text !== undefined) {
    body = opts.text;
    headers['content-type'] = opts.type ?? 'text/plain';
  }
  const res = await fetch(h.base + path, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

test('requests without valid admin credentials get 401', async (t) => {
  const h = await start(t);
  const none = await call(h, 'GET', '/.groups/', { auth: null });
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  assert.match(none.text, /authentication required/);
  assert.equal((await call(h, 'GET', '/.groups/', { auth: { authorization: basic(ADMIN.user, 'wrong') } })).status, 401);
  assert.equal((await call(h, 'GET', '/.stats', { auth: { authorization: basic('rincewind', 'not-an-admin') } })).status, 401);
  assert.equal((await call(h, 'PUT', '/.groups/x', { auth: null, body: {} })).status, 401);
  assert.equal(h.groups.get('x'), undefined);
  const stats = await call(h, 'GET', '/.stats');
  assert.equal(stats.status, 200);
  assert.match(stats.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(stats.json(), [{ name: 'stats-marker', clients: [] }]);
  assert.equal((await call(h, 'POST', '/.stats')).status, 405);
  assert.equal((await call(h, 'GET', '/.nothing')).status, 404);
  assert.equal((await call(h, 'GET', '/../v1/.stats')).status, 404);
});

test('group definitions: create, read with ETag, conditional update, conflicts, delete', async (t) => {
  const h = await start(t);
  const created = await call(h, 'PUT', '/.groups/city-watch/', { body: { displayName: 'Watch', public: true }, headers: { 'if-none-match': '*' } });
  assert.equal(created.status, 201, created.text);
  const etag1 = created.headers.get('etag');
  assert.ok(etag1);
  assert.equal(h.groups.get('city-watch')?.displayName, 'Watch', 'takes effect at once');

  const again = await call(h, 'PUT', '/.groups/city-watch', { body: { displayName: 'Overwritten' }, headers: { 'if-none-match': '*' } });
  assert.equal(again.status, 412);
  assert.match(again.text, /already exists/);
  assert.equal(h.groups.get('city-watch')?.displayName, 'Watch');

  const read = await call(h, 'GET', '/.groups/city-watch');
  assert.equal(read.status, 200);
  assert.equal(read.headers.get('etag'), etag1);
  assert.match(read.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(read.json(), { displayName: 'Watch', public: true });
  assert.equal((await call(h, 'GET', '/.groups/city-watch', { headers: { 'if-none-match': etag1 } })).status, 304);
  const head = await call(h, 'HEAD', '/.groups/city-watch');
  assert.equal(head.status, 200);
  assert.equal(head.text, '');

  const updated = await call(h, 'PUT', '/.groups/city-watch', { body: { displayName: 'Night Watch' }, headers: { 'if-match': etag1 } });
  assert.equal(updated.status, 204, updated.text);
  const etag2 = updated.headers.get('etag');
  assert.ok(etag2 && etag2 !== etag1);
  assert.equal(h.groups.get('city-watch')?.displayName, 'Night Watch');
  assert.equal(h.groups.get('city-watch')?.public, false);

  const stale = await call(h, 'PUT', '/.groups/city-watch', { body: { displayName: 'Lost update' }, headers: { 'if-match': etag1 } });
  assert.equal(stale.status, 412);
  assert.match(stale.text, /changed since you read it/);
  assert.equal(h.groups.get('city-watch')?.displayName, 'Night Watch');

  const bad = await call(h, 'PUT', '/.groups/city-watch', { body: { 'max-clients': 'many' } });
  assert.equal(bad.status, 400);
  assert.match(bad.text, /field "max-clients": expected a number/);
  assert.equal((await call(h, 'PUT', '/.groups/city-watch', { body: [1] })).status, 400);
  const withUsers = await call(h, 'PUT', '/.groups/city-watch', { body: { users: {} } });
  assert.equal(withUsers.status, 400);
  assert.match(withUsers.text, /must not contain "users"/);
  const wrongType = await call(h, 'PUT', '/.groups/city-watch', { text: '{}', type: 'text/plain' });
  assert.equal(wrongType.status, 415);
  assert.equal(wrongType.headers.get('accept'), 'application/json');
  const notJson = await call(h, 'PUT', '/.groups/city-watch', { text: '{', type: 'application/json' });
  assert.equal(notJson.status, 400);
  assert.match(notJson.text, /not valid JSON/);
  const badName = await call(h, 'PUT', '/.groups/a%2F%2Fb', { body: {} });
  assert.equal(badName.status, 400);
  assert.match(badName.text, /invalid group name "a\/\/b"/);
  // As Galène's API: the first "/." starts a special entry, so this is the root's ".hidden", which does not exist.
  const hidden = await call(h, 'PUT', '/.groups/.hidden', { body: {} });
  assert.equal(hidden.status, 404);
  assert.match(hidden.text, /not found/);

  await call(h, 'PUT', '/.groups/teaching/networking', { body: {} });
  assert.deepEqual((await call(h, 'GET', '/.groups/')).json(), ['city-watch', 'teaching/networking']);
  assert.equal((await call(h, 'GET', '/.groups/teaching/networking')).status, 200);

  assert.equal((await call(h, 'DELETE', '/.groups/city-watch', { headers: { 'if-match': etag1 } })).status, 412);
  assert.equal((await call(h, 'DELETE', '/.groups/city-watch', { headers: { 'if-match': etag2 } })).status, 204);
  assert.equal(h.groups.get('city-watch'), undefined);
  assert.equal((await call(h, 'GET', '/.groups/city-watch')).status, 404);
  assert.equal((await call(h, 'DELETE', '/.groups/city-watch')).status, 404);
  assert.equal((await call(h, 'PATCH', '/.groups/teaching/networking', { body: {} })).status, 405);
});

test('writes are refused unless writableGroups is set', async (t) => {
  const h = await start(t, { writable: false });
  const r = await call(h, 'PUT', '/.groups/x', { body: {} });
  assert.equal(r.status, 403);
  assert.match(r.text, /writableGroups/);
  assert.equal(h.groups.get('x'), undefined);
});

test('users and passwords: set, hash server-side, log in; passwords never come back', async (t) => {
  const h = await start(t);
  assert.equal((await call(h, 'PUT', '/.groups/watch', { body: { displayName: 'Watch' } })).status, 201);
  assert.equal((await call(h, 'PUT', '/.groups/nothing/.users/vimes', { body: { permissions: 'op' } })).status, 404);

  const created = await call(h, 'PUT', '/.groups/watch/.users/vimes', { body: { permissions: 'op' }, headers: { 'if-none-match': '*' } });
  assert.equal(created.status, 201, created.text);
  assert.equal((await call(h, 'PUT', '/.groups/watch/.users/vimes', { body: { permissions: 'op' }, headers: { 'if-none-match': '*' } })).status, 412);
  assert.equal((await call(h, 'PUT', '/.groups/watch/.users/vimes', { body: { permissions: 'boss' } })).status, 400);
  const withPw = await call(h, 'PUT', '/.groups/watch/.users/vimes', { body: { permissions: 'op', password: 'x' } });
  assert.equal(withPw.status, 400);
  assert.match(withPw.text, /must not contain a password/);

  // A user with no password cannot log in yet.
  assert.equal(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', ''), null);

  // PUT a password definition (JSON).
  assert.equal((await call(h, 'PUT', '/.groups/watch/.users/vimes/.password', { body: 'sybil-secret-1' })).status, 204);
  assert.deepEqual(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', 'sybil-secret-1'), {
    username: 'vimes',
    permissions: ['op', 'present', 'message', 'caption', 'token'],
  });
  const badDef = await call(h, 'PUT', '/.groups/watch/.users/vimes/.password', { body: { type: 'md5' } });
  assert.equal(badDef.status, 400);
  assert.match(badDef.text, /unknown password type "md5"/);

  // POST plain text: hashed on the server with PBKDF2.
  const posted = await call(h, 'POST', '/.groups/watch/.users/vimes/.password', { text: 'sybil-secret-2' });
  assert.equal(posted.status, 204, posted.text);
  const onDisk = JSON.parse(await readFile(join(h.dir, 'groups', 'watch.json'), 'utf8'));
  assert.equal(onDisk.users.vimes.password.type, 'pbkdf2');
  assert.equal(onDisk.users.vimes.password.iterations, 4096);
  assert.equal(onDisk.users.vimes.permissions, 'op', 'the named set is kept as written');
  assert.ok(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', 'sybil-secret-2'));
  assert.equal(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', 'sybil-secret-1'), null);
  assert.equal((await call(h, 'POST', '/.groups/watch/.users/vimes/.password', { body: 'x' })).status, 415);
  assert.equal((await call(h, 'GET', '/.groups/watch/.users/vimes/.password')).status, 405);
  assert.equal((await call(h, 'POST', '/.groups/watch/.users/nobody/.password', { text: 'x' })).status, 404);

  // Users may change their own password with their current one.
  const self = await call(h, 'POST', '/.groups/watch/.users/vimes/.password', {
    text: 'sybil-secret-3',
    auth: { authorization: basic('vimes', 'sybil-secret-2') },
  });
  assert.equal(self.status, 204, self.text);
  assert.ok(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', 'sybil-secret-3'));
  assert.equal((await call(h, 'GET', '/.groups/watch/.users/', { auth: { authorization: basic('vimes', 'sybil-secret-3') } })).status, 401);

  // Reads never include passwords.
  const user = await call(h, 'GET', '/.groups/watch/.users/vimes');
  assert.equal(user.status, 200);
  assert.deepEqual(user.json(), { permissions: 'op' });
  assert.ok(user.headers.get('etag'));
  assert.deepEqual((await call(h, 'GET', '/.groups/watch/.users/')).json(), ['vimes']);
  const group = await call(h, 'GET', '/.groups/watch');
  assert.deepEqual(group.json(), { displayName: 'Watch' });

  // Updating permissions keeps the password.
  assert.equal((await call(h, 'PUT', '/.groups/watch/.users/vimes', { body: { permissions: ['present'] } })).status, 204);
  assert.deepEqual(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', 'sybil-secret-3'), { username: 'vimes', permissions: ['present'] });

  // Replacing the group definition keeps users.
  assert.equal((await call(h, 'PUT', '/.groups/watch', { body: { displayName: 'Watch 2' } })).status, 204);
  assert.ok(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', 'sybil-secret-3'));

  assert.equal((await call(h, 'DELETE', '/.groups/watch/.users/vimes/.password')).status, 204);
  assert.equal(await authenticateWithPassword(h.groups.get('watch')!, 'vimes', 'sybil-secret-3'), null);
  assert.equal((await call(h, 'DELETE', '/.groups/watch/.users/vimes')).status, 204);
  assert.equal((await call(h, 'GET', '/.groups/watch/.users/vimes')).status, 404);
  assert.deepEqual(h.groups.get('watch')?.users, {});

  for (const secret of ['sybil-secret-1', 'sybil-secret-2', 'sybil-secret-3', ADMIN.password]) {
    assert.ok(!h.logs.some((l) => l.includes(secret)), `the log must not contain ${secret}`);
  }
});

test('the wildcard user and its password', async (t) => {
  const h = await start(t);
  await call(h, 'PUT', '/.groups/open', { body: {} });
  assert.equal((await call(h, 'GET', '/.groups/open/.wildcard-user')).status, 404);
  assert.equal((await call(h, 'PUT', '/.groups/open/.wildcard-user', { body: { permissions: 'present' } })).status, 201);
  assert.equal((await call(h, 'POST', '/.groups/open/.wildcard-user/.password', { text: 'door-code-77' })).status, 204);
  assert.deepEqual(await authenticateWithPassword(h.groups.get('open')!, 'anyone', 'door-code-77'), {
    username: 'anyone',
    permissions: ['present', 'message'],
  });
  assert.equal(await authenticateWithPassword(h.groups.get('open')!, 'anyone', 'nope'), null);
  const wild = await call(h, 'GET', '/.groups/open/.wildcard-user');
  assert.deepEqual(wild.json(), { permissions: 'present' });
  assert.ok(!wild.text.includes('door-code-77') && !wild.text.includes('pbkdf2'));
  assert.equal((await call(h, 'PUT', '/.groups/open/.wildcard-user/.password', { body: { type: 'wildcard' } })).status, 204);
  assert.ok(await authenticateWithPassword(h.groups.get('open')!, 'anyone', 'whatever'));
  assert.equal((await call(h, 'DELETE', '/.groups/open/.wildcard-user')).status, 204);
  assert.equal(h.groups.get('open')?.wildcardUser, undefined);
});

test('token keys are write-only and a JWT signed with them authenticates', async (t) => {
  const h = await start(t);
  await call(h, 'PUT', '/.groups/keyed', { body: {} });
  const secret = await jose.generateSecret('HS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(secret)), alg: 'HS256' };
  const wrongType = await call(h, 'PUT', '/.groups/keyed/.keys', { body: { keys: [jwk] } });
  assert.equal(wrongType.status, 415);
  assert.equal(wrongType.headers.get('accept'), 'application/jwk-set+json');
  const noAlg = await call(h, 'PUT', '/.groups/keyed/.keys', { body: { keys: [{ kty: 'oct', k: 'abc' }] }, type: 'application/jwk-set+json' });
  assert.equal(noAlg.status, 400);
  assert.match(noAlg.text, /keys\[0\]\.alg/);
  assert.equal((await call(h, 'PUT', '/.groups/keyed/.keys', { body: { keys: [jwk] }, type: 'application/jwk-set+json' })).status, 204);
  assert.equal(h.groups.get('keyed')?.authKeys.length, 1);
  assert.equal((await call(h, 'GET', '/.groups/keyed/.keys')).status, 405);
  const group = await call(h, 'GET', '/.groups/keyed');
  assert.deepEqual(group.json(), {});
  assert.ok(!group.text.includes(String(jwk.k)));

  const sign = (perms: string[], aud = 'https://meet.example.org/group/keyed/') =>
    new jose.SignJWT({ permissions: perms }).setProtectedHeader({ alg: 'HS256' }).setSubject('portal').setAudience(aud).setIssuedAt().setExpirationTime('5m').sign(secret);
  const ok = await call(h, 'GET', '/.groups/keyed', { auth: { authorization: `Bearer ${await sign(['admin'])}` } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await call(h, 'GET', '/.groups/keyed', { auth: { authorization: `Bearer ${await sign(['op'])}` } })).status, 401);
  assert.equal((await call(h, 'GET', '/.groups/keyed', { auth: { authorization: `Bearer ${await sign(['admin'], 'https://x/group/other/')}` } })).status, 401);
  assert.equal((await call(h, 'GET', '/.groups/', { auth: { authorization: `Bearer ${await sign(['admin'])}` } })).status, 401, 'group keys do not open the whole server');

  assert.equal((await call(h, 'DELETE', '/.groups/keyed/.keys')).status, 204);
  assert.deepEqual(h.groups.get('keyed')?.authKeys, []);
});

test('stateful tokens: list, create, read, update, delete; admin tokens as bearer', async (t) => {
  const h = await start(t);
  await call(h, 'PUT', '/.groups/watch', { body: {} });
  const future = new Date(Date.now() + 3600_000).toISOString();

  const overspecified = await call(h, 'POST', '/.groups/watch/.tokens/', { body: { token: 'mine', permissions: ['present'] } });
  assert.equal(overspecified.status, 400);
  assert.match(overspecified.text, /overspecified/);
  assert.equal((await call(h, 'POST', '/.groups/watch/.tokens/', { body: { permissions: ['fly'] } })).status, 400);

  const created = await call(h, 'POST', '/.groups/watch/.tokens/', { body: { permissions: 'present', expires: future } });
  assert.equal(created.status, 201, created.text);
  const name = decodeURIComponent(created.headers.get('location') ?? '');
  assert.ok(name.length >= 16);
  const stored = h.tokens.get(name);
  assert.equal(stored?.group, 'watch');
  assert.deepEqual(stored?.permissions, ['present', 'message']);
  assert.equal(stored?.issuedBy, ADMIN.user);

  assert.deepEqual((await call(h, 'GET', '/.groups/watch/.tokens/')).json(), [name]);
  const read = await call(h, 'GET', `/.groups/watch/.tokens/${name}`);
  assert.equal(read.status, 200);
  const body = read.json() as Record<string, unknown>;
  assert.equal(body.token, undefined);
  assert.equal(body.group, undefined);
  assert.deepEqual(body.permissions, ['present', 'message']);
  const etag = read.headers.get('etag')!;

  const update = { ...body, username: 'carrot' };
  assert.equal((await call(h, 'PUT', `/.groups/watch/.tokens/${name}`, { body: update, headers: { 'if-match': '"stale"' } })).status, 412);
  assert.equal((await call(h, 'PUT', `/.groups/watch/.tokens/${name}`, { body: update, headers: { 'if-match': etag } })).status, 204);
  assert.equal(h.tokens.get(name)?.username, 'carrot');
  assert.equal((await call(h, 'GET', `/.groups/other/.tokens/${name}`)).status, 404);
  assert.equal((await call(h, 'PUT', `/.groups/other/.tokens/${name}`, { body: update })).status, 409);
  assert.equal((await call(h, 'PUT', '/.groups/watch/.tokens/chosen-name', { body: { permissions: ['message'] } })).status, 201);
  assert.equal((await call(h, 'DELETE', `/.groups/watch/.tokens/${name}`)).status, 204);
  assert.equal(h.tokens.get(name), undefined);
  assert.equal((await call(h, 'DELETE', `/.groups/watch/.tokens/${name}`)).status, 404);

  // Bearer tokens with the admin permission.
  await h.tokens.put({ token: 'root-admin', group: '', includeSubgroups: true, permissions: ['admin'], expires: future });
  await h.tokens.put({ token: 'watch-admin', group: 'watch', permissions: ['admin'], expires: future });
  await h.tokens.put({ token: 'no-admin', group: '', includeSubgroups: true, permissions: ['op'], expires: future });
  await h.tokens.put({ token: 'expired', group: '', includeSubgroups: true, permissions: ['admin'], expires: '2000-01-01T00:00:00Z' });
  const bearer = (tok: string) => ({ authorization: `Bearer ${tok}` });
  assert.equal((await call(h, 'GET', '/.groups/', { auth: bearer('root-admin') })).status, 200);
  assert.equal((await call(h, 'GET', '/.groups/watch', { auth: bearer('watch-admin') })).status, 200);
  assert.equal((await call(h, 'GET', '/.groups/', { auth: bearer('watch-admin') })).status, 401);
  assert.equal((await call(h, 'PUT', '/.groups/elsewhere', { body: {}, auth: bearer('watch-admin') })).status, 401);
  assert.equal((await call(h, 'GET', '/.groups/', { auth: bearer('no-admin') })).status, 401);
  assert.equal((await call(h, 'GET', '/.groups/', { auth: bearer('expired') })).status, 401);
  assert.equal((await call(h, 'GET', '/.groups/', { auth: bearer('unknown') })).status, 401);
  assert.ok(
    h.logs.some((l) => l.includes('admin API: token deleted')),
    'the log is captured',
  );
  for (const secret of ['root-admin', name]) assert.ok(!h.logs.some((l) => l.includes(secret)), 'token names stay out of the log');
});

test('data/config.json: defaults, every field, errors naming the file and field, reload', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'atrium-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.json');

  const defaults = await loadServerConfig(dir, silentLogger());
  assert.equal(defaults.writableGroups, false);
  assert.deepEqual(defaults.users, {});

  await writeFile(
    file,
    JSON.stringify({
      users: { vetinari: { password: 'lagniappe', permissions: 'admin' } },
      writableGroups: true,
      allowOrigin: ['https://a.example.org'],
      allowAdminOrigin: ['https://admin.example.org'],
      proxyURL: 'https://example.org/galene/',
      publicServer: true,
      canonicalHost: 'galene.example.org',
      admin: [{ username: 'old', password: 'x' }],
    }),
  );
  const c = await loadServerConfig(dir, silentLogger());
  assert.deepEqual(c.users.vetinari, { password: 'lagniappe', permissions: ['admin'] });
  assert.deepEqual(c.users.old, { password: 'x', permissions: ['admin'] });
  assert.equal(c.writableGroups, true);
  assert.deepEqual(c.allowOrigin, ['https://a.example.org']);
  assert.deepEqual(c.allowAdminOrigin, ['https://admin.example.org']);
  assert.equal(c.proxyURL, 'https://example.org/galene/');
  assert.equal(c.publicServer, true);
  assert.equal(c.canonicalHost, 'galene.example.org');

  assert.throws(() => parseServerConfig('data/config.json', { writableGroups: 'yes' }), {
    name: 'ServerConfigError',
    message: 'data/config.json: field "writableGroups": expected a boolean (true or false)',
  });
  assert.throws(() => parseServerConfig('data/config.json', { users: { v: { password: 'x', permissions: 'king' } } }), /field "users\.v\.permissions"/);
  assert.throws(() => parseServerConfig('data/config.json', { turn: {} }), /field "turn": unknown field/);
  await writeFile(file, '{');
  await assert.rejects(loadServerConfig(dir, silentLogger()), ServerConfigError);

  // Edits are followed; a broken edit keeps the last good version.
  await writeFile(file, JSON.stringify({ writableGroups: false }));
  const watcher = new ServerConfigWatcher({ dataDir: dir, log: silentLogger() });
  t.after(() => watcher.close());
  assert.equal((await watcher.start()).writableGroups, false);
  const changed = new Promise<ServerConfig>((resolve) => watcher.once('change', resolve));
  await writeFile(file, JSON.stringify({ writableGroups: true }));
  assert.equal((await changed).writableGroups, true);
  assert.equal(watcher.current.writableGroups, true);
  await writeFile(file, '{"writableGroups": 3}');
  await watcher.reload();
  assert.equal(watcher.current.writableGroups, true);
});
