// Group files: every field of the Galène format, the errors for broken files,
// the four password types, password login rules, and the groups directory
// following edits on disk (real files, real watchers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2Sync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import {
  DEFAULT_MAX_HISTORY_AGE,
  GroupFileError,
  GroupStore,
  InvalidGroupNameError,
  PreconditionFailedError,
  authenticateWithPassword,
  hashPassword,
  parseGroupDescription,
  validateGroupName,
  verifyPassword,
  type GroupDescription,
} from '../src/groups/index.ts';
import { silentLogger } from '../src/log.ts';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'atrium-groups-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Resolves on the next 'change' for `name` that satisfies `ok` (the test runner's timeout bounds the wait). */
function nextChange(store: GroupStore, name: string, ok: (d: GroupDescription | undefined) => boolean = () => true) {
  return new Promise<GroupDescription | undefined>((resolve) => {
    const listener = (n: string, d: GroupDescription | undefined) => {
      if (n === name && ok(d)) {
        store.off('change', listener);
        resolve(d);
      }
    };
    store.on('change', listener);
  });
}

function parse(json: unknown): GroupDescription {
  return parseGroupDescription('team', 'groups/team.json', json);
}

function parseError(json: unknown): GroupFileError {
  try {
    parse(json);
  } catch (err) {
    assert.ok(err instanceof GroupFileError, `expected a GroupFileError, got ${String(err)}`);
    return err;
  }
  assert.fail('the file was accepted');
}

// ---------------------------------------------------------------------------
// Passwords

test('plain passwords: right and wrong', async () => {
  assert.equal(await verifyPassword('sybil', 'sybil'), true);
  assert.equal(await verifyPassword('sybil', 'Sybil'), false);
  assert.equal(await verifyPassword('sybil', 'sybil '), false);
  assert.equal(await verifyPassword('sybil', ''), false);
});

test('pbkdf2 passwords as Galène stores them (hex key and salt): right and wrong', async () => {
  const salt = Buffer.from('92bff2ace56fe38f', 'hex');
  const key = pbkdf2Sync('lagniappe', salt, 4096, 32, 'sha256').toString('hex');
  const def = { type: 'pbkdf2', hash: 'sha-256', key, salt: '92bff2ace56fe38f', iterations: 4096 } as const;
  assert.equal(await verifyPassword(def, 'lagniappe'), true);
  assert.equal(await verifyPassword(def, 'lagniappf'), false);
  assert.equal(await verifyPassword({ ...def, iterations: 4095 }, 'lagniappe'), false);
});

test('bcrypt passwords: right and wrong', async () => {
  const key = await bcrypt.hash('vetinari', 4);
  assert.equal(await verifyPassword({ type: 'bcrypt', key }, 'vetinari'), true);
  assert.equal(await verifyPassword({ type: 'bcrypt', key }, 'Vetinari'), false);
  assert.equal(await verifyPassword({ type: 'bcrypt', key: 'not a hash' }, 'vetinari'), false);
});

test('wildcard passwords accept anything', async () => {
  assert.equal(await verifyPassword({ type: 'wildcard' }, ''), true);
  assert.equal(await verifyPassword({ type: 'wildcard' }, 'whatever'), true);
});

test('hashPassword writes what galenectl writes and verifies', async () => {
  const def = await hashPassword('ook');
  assert.ok(typeof def === 'object' && def.type === 'pbkdf2');
  assert.equal(def.hash, 'sha-256');
  assert.equal(def.iterations, 4096);
  assert.match(def.salt, /^[0-9a-f]{16}$/);
  assert.match(def.key, /^[0-9a-f]{64}$/);
  // Independent check of the encoding: PBKDF2 over the raw salt bytes.
  assert.equal(pbkdf2Sync('ook', Buffer.from(def.salt, 'hex'), 4096, 32, 'sha256').toString('hex'), def.key);
  assert.equal(await verifyPassword(def, 'ook'), true);
  assert.equal(await verifyPassword(def, 'eek'), false);
  const other = await hashPassword('ook');
  assert.ok(typeof other === 'object' && other.type === 'pbkdf2' && other.salt !== def.salt, 'salts are random');

  const b = await hashPassword('ook', 'bcrypt');
  assert.ok(typeof b === 'object' && b.type === 'bcrypt');
  assert.equal(await verifyPassword(b, 'ook'), true);
  assert.equal(await verifyPassword(b, 'eek'), false);
});

// ---------------------------------------------------------------------------
// Group files

test('every field of a group file is read', () => {
  const json = {
    users: {
      vimes: { password: 'sybil', permissions: 'op' },
      carrot: { password: { type: 'bcrypt', key: '$2a$04$abcdefghijklmnopqrstuu5zQyOc0GkF2ee5uKq5mS3B4hPeXxq6e' }, permissions: 'present' },
      angua: { password: { type: 'plain', key: 'wolf' }, permissions: ['message', 'caption'] },
      nobby: { permissions: 'observe' },
    },
    'wildcard-user': { password: { type: 'wildcard' }, permissions: 'message' },
    authKeys: [{ kty: 'oct', alg: 'HS256', k: 'MYz3IfCq4Yq-UmPdNqWEOdPl4C_m9imHHs9uveDUJGQ' }],
    authServer: 'https://auth.example.org',
    authPortal: 'https://portal.example.org',
    public: true,
    displayName: 'City Watch',
    description: 'The night watch',
    contact: 'vimes@example.org',
    comment: 'ignored',
    'max-clients': 20,
    'max-history-age': 600,
    'allow-recording': true,
    'unrestricted-tokens': true,
    'allow-anonymous': true,
    'auto-subgroups': true,
    autolock: true,
    autokick: true,
    redirect: 'https://elsewhere.example.org/group/x/',
    codecs: ['vp9', 'opus'],
    'not-before': '2030-01-01T09:00:00Z',
    expires: '2030-01-01T18:00:00+02:00',
  };
  const d = parse(json);
  assert.equal(d.name, 'team');
  assert.equal(d.file, 'groups/team.json');
  assert.equal(d.public, true);
  assert.equal(d.displayName, 'City Watch');
  assert.equal(d.description, 'The night watch');
  assert.equal(d.contact, 'vimes@example.org');
  assert.equal(d.comment, 'ignored');
  assert.equal(d.authServer, 'https://auth.example.org');
  assert.equal(d.authPortal, 'https://portal.example.org');
  assert.equal(d.maxClients, 20);
  assert.equal(d.maxHistoryAge, 600);
  assert.equal(d.allowRecording, true);
  assert.equal(d.unrestrictedTokens, true);
  assert.equal(d.allowAnonymous, true);
  assert.equal(d.autoSubgroups, true);
  assert.equal(d.autolock, true);
  assert.equal(d.autokick, true);
  assert.equal(d.redirect, 'https://elsewhere.example.org/group/x/');
  assert.deepEqual(d.codecs, ['vp9', 'opus']);
  assert.equal(d.notBefore?.toISOString(), '2030-01-01T09:00:00.000Z');
  assert.equal(d.expires?.toISOString(), '2030-01-01T16:00:00.000Z');
  assert.equal(d.authKeys.length, 1);
  assert.equal(d.authKeys[0]?.kty, 'oct');
  // Named sets, with record (allow-recording) and token (unrestricted-tokens) added.
  assert.deepEqual(d.users.vimes, { password: 'sybil', permissions: ['op', 'present', 'message', 'caption', 'token', 'record'] });
  assert.deepEqual(d.users.carrot?.permissions, ['present', 'message', 'token']);
  // Arrays are taken as written; {type: plain} is a plain password.
  assert.deepEqual(d.users.angua, { password: 'wolf', permissions: ['message', 'caption'] });
  assert.deepEqual(d.users.nobby, { permissions: [] });
  assert.deepEqual(d.wildcardUser, { password: { type: 'wildcard' }, permissions: ['message'] });
  assert.deepEqual(d.raw, json);
  assert.deepEqual(d.warnings, []);
});

test('defaults of an empty group file', () => {
  const d = parse({});
  assert.equal(d.public, false);
  assert.equal(d.maxHistoryAge, DEFAULT_MAX_HISTORY_AGE);
  assert.equal(DEFAULT_MAX_HISTORY_AGE, 14400);
  assert.equal(d.maxClients, undefined);
  assert.deepEqual(d.users, {});
  assert.equal(d.wildcardUser, undefined);
  assert.deepEqual(d.authKeys, []);
  assert.equal(d.allowRecording || d.allowAnonymous || d.autoSubgroups || d.autolock || d.autokick, false);
});

test('named permission sets without group flags', () => {
  const d = parse({
    users: {
      a: { password: 'x', permissions: 'op' },
      b: { password: 'x', permissions: 'present' },
      c: { password: 'x', permissions: 'message' },
      d: { password: 'x', permissions: 'observe' },
      e: { password: 'x', permissions: 'caption' },
      f: { password: 'x', permissions: 'admin' },
    },
  });
  assert.deepEqual(d.users.a?.permissions, ['op', 'present', 'message', 'caption', 'token']);
  assert.deepEqual(d.users.b?.permissions, ['present', 'message']);
  assert.deepEqual(d.users.c?.permissions, ['message']);
  assert.deepEqual(d.users.d?.permissions, []);
  assert.deepEqual(d.users.e?.permissions, ['caption']);
  assert.deepEqual(d.users.f?.permissions, ['admin']);
});

test('obsolete op/presenter/other lists and allow-subgroups are converted', () => {
  const d = parse({
    op: [{ username: 'vimes', password: 'sybil' }],
    presenter: [{ username: 'carrot', password: 'x' }, { password: 'any' }],
    other: [{ username: 'nobby' }],
    'allow-subgroups': true,
  });
  assert.deepEqual(d.users.vimes, { password: 'sybil', permissions: ['op', 'present', 'message', 'caption', 'token'] });
  assert.deepEqual(d.users.carrot?.permissions, ['present', 'message']);
  assert.deepEqual(d.wildcardUser, { password: 'any', permissions: ['present', 'message'] });
  assert.deepEqual(d.users.nobby, { password: { type: 'wildcard' }, permissions: ['message'] });
  assert.equal(d.autoSubgroups, true);
  assert.ok(d.warnings.length >= 4);
});

test('broken files are refused with a message naming the file and the field', () => {
  assert.equal(parseError({ 'max-clients': 'ten' }).message, 'groups/team.json: field "max-clients": expected a number');
  assert.equal(parseError({ public: 'yes' }).message, 'groups/team.json: field "public": expected a boolean (true or false)');
  const unknown = parseError({ colour: 'blue' });
  assert.equal(unknown.field, 'colour');
  assert.match(unknown.message, /^groups\/team\.json: field "colour": unknown field/);
  assert.equal(parseError({ 'max-history-age': -1 }).field, 'max-history-age');
  assert.equal(parseError({ 'max-clients': 1.5 }).message, 'groups/team.json: field "max-clients": expected an integer');

  const pwType = parseError({ users: { bob: { password: { type: 'md5', key: 'x' } } } });
  assert.equal(pwType.field, 'users.bob.password.type');
  assert.match(pwType.message, /unknown password type "md5"/);
  const pwShape = parseError({ users: { bob: { password: { type: 'pbkdf2', hash: 'sha-256', key: 'zz', salt: '00', iterations: 4096 } } } });
  assert.equal(pwShape.field, 'users.bob.password.key');
  assert.equal(parseError({ users: { bob: { password: 42 } } }).field, 'users.bob.password');
  assert.equal(parseError({ users: { bob: { password: 'x', permissions: 'boss' } } }).field, 'users.bob.permissions');
  const badPerm = parseError({ users: { bob: { password: 'x', permissions: ['present', 'fly'] } } });
  assert.equal(badPerm.field, 'users.bob.permissions[1]');
  assert.match(badPerm.message, /unknown permission "fly"/);
  assert.equal(parseError({ users: { bob: { password: 'x', role: 'op' } } }).field, 'users.bob.role');
  assert.equal(parseError({ 'wildcard-user': [] }).field, 'wildcard-user');
  assert.equal(parseError({ authKeys: [{ kty: 'oct', k: 'abc' }] }).field, 'authKeys[0].alg');
  assert.equal(parseError({ codecs: ['vp8', 'mpeg2'] }).field, 'codecs[1]');
  assert.match(parseError({ expires: 'tomorrow' }).message, /field "expires": expected an RFC 3339 time/);
  assert.equal(parseError({ 'not-before': '2030-01-02T00:00:00Z', expires: '2030-01-01T00:00:00Z' }).field, 'expires');
  assert.equal(parseError([1, 2]).message, 'groups/team.json: expected a JSON object ({...}) at the top level');
  assert.match(parseError({ public: 1, displayName: 2 }).message, /and 1 more problem/);
});

test('group names are validated', () => {
  for (const ok of ['a', 'team', 'a/b', 'a/b/c', 'city-watch', 'x.y']) validateGroupName(ok);
  for (const bad of ['', '/a', 'a/', '.a', 'a/../b', 'a/./b', 'a//b', '..', 'a/.hidden', 'a\\b']) {
    assert.throws(() => validateGroupName(bad), InvalidGroupNameError, bad);
  }
});

// ---------------------------------------------------------------------------
// Password login

test('password login follows Galène rules', async () => {
  const d = parse({
    users: {
      vimes: { password: 'sybil', permissions: 'op' },
      nopass: { permissions: 'present' },
    },
    'wildcard-user': { password: 'guest', permissions: 'message' },
  });
  assert.deepEqual(await authenticateWithPassword(d, 'vimes', 'sybil'), {
    username: 'vimes',
    permissions: ['op', 'present', 'message', 'caption', 'token'],
  });
  // A named user with a wrong password does not fall back to the wildcard user.
  assert.equal(await authenticateWithPassword(d, 'vimes', 'guest'), null);
  assert.equal(await authenticateWithPassword(d, 'vimes', 'wrong'), null);
  // Other usernames use the wildcard user.
  assert.deepEqual(await authenticateWithPassword(d, 'colon', 'guest'), { username: 'colon', permissions: ['message'] });
  assert.equal(await authenticateWithPassword(d, 'colon', 'sybil'), null);
  // A user without a password cannot log in.
  assert.equal(await authenticateWithPassword(d, 'nopass', ''), null);
  // Empty usernames need allow-anonymous.
  assert.equal(await authenticateWithPassword(d, '', 'guest'), null);
  assert.equal(await authenticateWithPassword(d, undefined, 'guest'), null);
  const anon = parse({ ...d.raw, 'allow-anonymous': true });
  assert.deepEqual(await authenticateWithPassword(anon, '', 'guest'), { username: '', permissions: ['message'] });
  // No wildcard user: unknown users are refused.
  const closed = parse({ users: { vimes: { password: 'sybil', permissions: 'op' } } });
  assert.equal(await authenticateWithPassword(closed, 'colon', 'sybil'), null);
  // An open group.
  const open = parse({ 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } });
  assert.deepEqual(await authenticateWithPassword(open, 'anyone', undefined), { username: 'anyone', permissions: ['present', 'message'] });
});

// ---------------------------------------------------------------------------
// The groups directory

test('the store loads every file recursively and refuses broken ones', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'teaching'), { recursive: true });
  await writeFile(join(dir, 'city-watch.json'), JSON.stringify({ public: true, displayName: 'Watch' }));
  await writeFile(join(dir, 'teaching', 'networking.json'), JSON.stringify({ 'auto-subgroups': true }));
  await writeFile(join(dir, 'broken.json'), '{"max-clients": "ten"}');
  await writeFile(join(dir, 'notjson.json'), '{');
  await writeFile(join(dir, '.hidden.json'), '{}');
  await writeFile(join(dir, 'README.txt'), 'not a group');
  const store = new GroupStore({ dir, log: silentLogger() });
  t.after(() => store.close());
  await store.start();
  assert.deepEqual(
    store.list().map((g) => g.name),
    ['city-watch', 'teaching/networking'],
  );
  assert.equal(store.get('city-watch')?.displayName, 'Watch');
  assert.equal(store.get('broken'), undefined);
  // Automatic subgroups take their parent's definition, not public.
  assert.equal(store.resolve('teaching/networking/lab1')?.name, 'teaching/networking/lab1');
  assert.equal(store.resolve('city-watch/sub'), undefined);
  assert.equal(store.resolve('nothing'), undefined);
});

test('a file edited on disk takes effect without restart; new folders are followed; deletion removes', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'team.json');
  await writeFile(file, JSON.stringify({ displayName: 'One' }));
  const store = new GroupStore({ dir, log: silentLogger() });
  t.after(() => store.close());
  await store.start();
  assert.equal(store.get('team')?.displayName, 'One');

  const changed = nextChange(store, 'team', (d) => d?.displayName === 'Two');
  await writeFile(file, JSON.stringify({ displayName: 'Two' }));
  assert.equal((await changed)?.displayName, 'Two');

  // A new group in a new folder.
  const added = nextChange(store, 'a/b');
  await mkdir(join(dir, 'a'));
  await writeFile(join(dir, 'a', 'b.json'), '{"public": true}');
  assert.equal((await added)?.public, true);

  const removed = nextChange(store, 'team', (d) => d === undefined);
  await unlink(file);
  assert.equal(await removed, undefined);
  assert.equal(store.get('team'), undefined);
});

test('a broken edit on disk keeps the last good version', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'team.json');
  await writeFile(file, JSON.stringify({ displayName: 'Good' }));
  const logs: string[] = [];
  const { pino } = await import('pino');
  const log = pino({ level: 'warn' }, { write: (s: string) => logs.push(s) });
  const store = new GroupStore({ dir, log });
  t.after(() => store.close());
  await store.start();
  const seen: (string | undefined)[] = [];
  store.on('change', (n, d) => {
    if (n === 'team') seen.push(d?.displayName);
  });
  await writeFile(file, '{"displayName": "Bad", "autolock": "sometimes"}');
  // Wait until the refusal is logged; the test runner's timeout bounds this.
  while (!logs.some((l) => l.includes('autolock'))) await new Promise((r) => setTimeout(r, 20));
  assert.equal(store.get('team')?.displayName, 'Good');
  const line = logs.find((l) => l.includes('autolock'))!;
  assert.match(line, /team\.json: field \\"autolock\\": expected a boolean/);
  assert.match(line, /keeping the last good version/);
  // Fixing the file takes effect; the broken version was never published.
  const fixed = nextChange(store, 'team', (d) => d?.displayName === 'Fixed');
  await writeFile(file, JSON.stringify({ displayName: 'Fixed' }));
  await fixed;
  assert.deepEqual(seen, ['Fixed']);
});

test('raw writes are atomic, validated, guarded by ETags and take effect at once', async (t) => {
  const dir = await tempDir(t);
  const store = new GroupStore({ dir, log: silentLogger() });
  t.after(() => store.close());
  await store.start();
  const events: string[] = [];
  store.on('change', (n, d) => events.push(`${n}:${d === undefined ? 'gone' : 'set'}`));

  const created = await store.writeRaw('a/b', { displayName: 'AB' }, { ifNoneMatch: '*' });
  assert.equal(created.created, true);
  assert.match(created.etag, /^"[A-Za-z0-9_-]+"$/);
  assert.equal(store.get('a/b')?.displayName, 'AB', 'visible without waiting for the watcher');
  assert.deepEqual(events, ['a/b:set']);
  const onDisk = await readFile(join(dir, 'a', 'b.json'), 'utf8');
  assert.deepEqual(JSON.parse(onDisk), { displayName: 'AB' });
  assert.deepEqual(
    (await readdir(join(dir, 'a'))).filter((f) => f !== 'b.json'),
    [],
    'no temporary file left behind',
  );

  const raw = await store.readRaw('a/b');
  assert.equal(raw?.etag, created.etag);
  await assert.rejects(store.writeRaw('a/b', { displayName: 'X' }, { ifNoneMatch: '*' }), PreconditionFailedError);
  await assert.rejects(store.writeRaw('a/b', { displayName: 'X' }, { ifMatch: '"stale"' }), PreconditionFailedError);
  const updated = await store.writeRaw('a/b', { displayName: 'AB2' }, { ifMatch: created.etag });
  assert.equal(updated.created, false);
  assert.notEqual(updated.etag, created.etag);
  assert.equal(store.get('a/b')?.displayName, 'AB2');
  await assert.rejects(store.writeRaw('a/b', { 'max-clients': 'x' }), /field "max-clients"/);
  await assert.rejects(store.writeRaw('../escape', {}), InvalidGroupNameError);
  await assert.rejects(store.deleteRaw('a/b', { ifMatch: created.etag }), PreconditionFailedError);
  await store.deleteRaw('a/b', { ifMatch: updated.etag });
  assert.equal(store.get('a/b'), undefined);
  assert.equal(await store.readRaw('a/b'), undefined);
  assert.deepEqual(events, ['a/b:set', 'a/b:set', 'a/b:gone']);
});

test('ensureDefaultGroup writes public.json only into an empty directory', async (t) => {
  const dir = await tempDir(t);
  const store = new GroupStore({ dir, log: silentLogger() });
  t.after(() => store.close());
  assert.equal(await store.ensureDefaultGroup(), true);
  await store.start();
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'public.json'), 'utf8')), {
    public: true,
    displayName: 'Public',
    'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
  });
  const pub = store.get('public');
  assert.ok(pub);
  assert.deepEqual(await authenticateWithPassword(pub, 'someone', 'anything'), { username: 'someone', permissions: ['present', 'message'] });
  assert.equal(await store.ensureDefaultGroup(), false);

  const other = await tempDir(t);
  await mkdir(join(other, 'sub'));
  await writeFile(join(other, 'sub', 'broken.json'), '{');
  const store2 = new GroupStore({ dir: other, log: silentLogger() });
  t.after(() => store2.close());
  assert.equal(await store2.ensureDefaultGroup(), false, 'a broken group file still counts as a group');
});
