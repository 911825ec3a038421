// Issue 10, row 3: bob (permission present) set his own password to a
// bcrypt hash of cost 31 through the admin API, and the next login as bob
// burnt a core for minutes; alice (op) set hers to {"type":"wildcard"} and
// then anyone could log in as alice, with op. A user may now set only a
// password, which the server hashes with its own parameters; definitions
// come from administrators and group files, and their hash parameters are
// capped wherever one is accepted.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HASH_LIMITS, parseGroupDescription } from '../../src/groups/description.ts';
import { PBKDF2_ITERATIONS, verifyPassword } from '../../src/groups/passwords.ts';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

/** A well-formed bcrypt hash of cost 31: verifying it would take days. */
const BCRYPT_31 = `$2a$31$${'N'.repeat(53)}`;

let server: RunningServer;
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

before(async () => {
  server = await startServer({
    args: ['--no-media'],
    config: { writableGroups: true, users: { root: { password: 'rootpw', permissions: 'admin' } } },
    groups: {
      g: {
        users: {
          alice: { password: 'alicepw', permissions: 'op' },
          bob: { password: 'bobpw', permissions: 'present' },
          open: { password: { type: 'wildcard' }, permissions: 'present' },
        },
      },
    },
  });
});
after(() => server?.stop());

function api(path: string, init: { method: string; auth?: string; type?: string; body?: string }) {
  const headers: Record<string, string> = {};
  if (init.auth) headers.authorization = init.auth;
  if (init.type) headers['content-type'] = init.type;
  return fetch(`${server.url}/galene-api/v0/${path}`, { method: init.method, headers, body: init.body });
}

async function login(username: string, password: string): Promise<string> {
  const c = await GaleneTestClient.connect(server.wsUrl);
  try {
    const j = await c.join('g', username, password);
    return j.kind === 'join' ? `join ${j.permissions.join(',')}` : `fail ${j.error}`;
  } finally {
    c.close();
  }
}

/** The group file as stored on disk (only the users' passwords are read). */
interface StoredGroup {
  users: Record<string, { password: string | { type: string; [k: string]: unknown } }>;
}

async function groupFile(): Promise<StoredGroup> {
  return JSON.parse(await readFile(join(server.groupsDir, 'g.json'), 'utf8'));
}

test('bob may not set his own password to a definition: the bcrypt-31 hash is refused and his password still works', async () => {
  const r = await api('.groups/g/.users/bob/.password', { method: 'PUT', auth: basic('bob', 'bobpw'), type: 'application/json', body: JSON.stringify({ type: 'bcrypt', key: BCRYPT_31 }) });
  assert.equal(r.status, 403, await r.text());
  assert.equal((await groupFile()).users.bob?.password, 'bobpw');
  assert.equal(await login('bob', 'bobpw'), 'join present,message');
});

test('alice (op) may not make herself a wildcard: nobody logs in as alice without her password', async () => {
  const r = await api('.groups/g/.users/alice/.password', { method: 'PUT', auth: basic('alice', 'alicepw'), type: 'application/json', body: JSON.stringify({ type: 'wildcard' }) });
  assert.equal(r.status, 403);
  assert.match(await r.text(), /POST your new password as text\/plain/);
  const del = await api('.groups/g/.users/alice/.password', { method: 'DELETE', auth: basic('alice', 'alicepw') });
  assert.equal(del.status, 403);
  assert.equal(await login('alice', 'anything'), 'fail not-authorised');
});

test('a user changes their own password as text: the server hashes it with its own parameters', async () => {
  const r = await api('.groups/g/.users/alice/.password', { method: 'POST', auth: basic('alice', 'alicepw'), type: 'text/plain', body: 'new alice password' });
  assert.equal(r.status, 204, await r.text());
  const def = (await groupFile()).users.alice?.password as { type: string; iterations?: number } | undefined;
  assert.equal(def?.type, 'pbkdf2');
  assert.equal(def?.iterations, PBKDF2_ITERATIONS);
  assert.equal(await login('alice', 'new alice password'), 'join op,present,message,caption,token');
  assert.equal(await login('alice', 'alicepw'), 'fail not-authorised');
  // The old credentials no longer change anything.
  const again = await api('.groups/g/.users/alice/.password', { method: 'POST', auth: basic('alice', 'alicepw'), type: 'text/plain', body: 'x' });
  assert.equal(again.status, 401);
});

test('an empty new password is refused with 400 naming the reason, and the current one still works', async () => {
  const r = await api('.groups/g/.users/bob/.password', { method: 'POST', auth: basic('bob', 'bobpw'), type: 'text/plain', body: '' });
  assert.equal(r.status, 400);
  assert.match(await r.text(), /the new password is empty/);
  assert.equal(await login('bob', 'bobpw'), 'join present,message');
});

test('a wildcard user has no password of its own to change', async () => {
  const r = await api('.groups/g/.users/open/.password', { method: 'POST', auth: basic('open', 'whatever'), type: 'text/plain', body: 'mine now' });
  assert.equal(r.status, 401);
  assert.deepEqual((await groupFile()).users.open?.password, { type: 'wildcard' });
});

test('administrators may set definitions, within the hash limits', async () => {
  const bad = await api('.groups/g/.users/bob/.password', { method: 'PUT', auth: basic('root', 'rootpw'), type: 'application/json', body: JSON.stringify({ type: 'bcrypt', key: BCRYPT_31 }) });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /bcrypt cost 31 is outside 4\.\.12/);
  const slow = await api('.groups/g/.users/bob/.password', {
    method: 'PUT',
    auth: basic('root', 'rootpw'),
    type: 'application/json',
    body: JSON.stringify({ type: 'pbkdf2', hash: 'sha-256', key: 'ab'.repeat(32), salt: 'cd'.repeat(8), iterations: 100_000_000 }),
  });
  assert.equal(slow.status, 400);
  assert.match(await slow.text(), /iterations.*at most 1000000/);
  const huge = await api('.groups/g/.users/bob/.password', {
    method: 'PUT',
    auth: basic('root', 'rootpw'),
    type: 'application/json',
    body: JSON.stringify({ type: 'pbkdf2', hash: 'sha-256', key: 'ab'.repeat(100_000), salt: 'cd', iterations: 4096 }),
  });
  assert.equal(huge.status, 400);
  const wildcard = await api('.groups/g/.users/bob/.password', { method: 'PUT', auth: basic('root', 'rootpw'), type: 'application/json', body: JSON.stringify({ type: 'wildcard' }) });
  assert.equal(wildcard.status, 204, 'an administrator may still open an account to anyone');
  assert.equal(((await groupFile()).users.bob?.password as { type: string } | undefined)?.type, 'wildcard');
});

test('group files with hash parameters over the limits are refused, naming the field', () => {
  assert.throws(() => parseGroupDescription('g', 'groups/g.json', { users: { bob: { password: { type: 'bcrypt', key: BCRYPT_31 } } } }), /field "users\.bob\.password\.key": bcrypt cost 31/);
  assert.throws(
    () => parseGroupDescription('g', 'groups/g.json', { users: { bob: { password: { type: 'pbkdf2', hash: 'sha-256', key: 'ab', salt: '', iterations: HASH_LIMITS.pbkdf2MaxIterations + 1 } } } }),
    /field "users\.bob\.password\.iterations"/,
  );
  assert.throws(() => parseGroupDescription('g', 'groups/g.json', { users: { bob: { password: { type: 'bcrypt', key: 'not a hash' } } } }), /expected a bcrypt hash/);
  // What Galène's tools write is accepted.
  parseGroupDescription('g', 'groups/g.json', { users: { bob: { password: { type: 'bcrypt', key: `$2a$10$${'N'.repeat(53)}` } } } });
});

test('a definition built some other way is still not verified past the limits', async () => {
  // Refused without hashing (hashing either would outlast the test's timeout).
  assert.equal(await verifyPassword({ type: 'bcrypt', key: BCRYPT_31 }, 'x'), false);
  assert.equal(await verifyPassword({ type: 'pbkdf2', hash: 'sha-256', key: 'ab', salt: '', iterations: 1e9 }, 'x'), false);
});
