// Token login: JWTs checked against a group's authKeys (real keys, real
// signatures), stateful invite tokens on disk, and the two combined.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JsonWebKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as jose from 'jose';
import { AuthError, TokenFileError, TokenStore, authenticateWithToken, checkStatefulToken, looksLikeJwt, verifyGroupJwt, type StatefulToken } from '../src/auth/index.ts';
import { silentLogger } from '../src/log.ts';

const NOW = new Date('2030-01-01T00:00:00Z');
const NOW_S = Math.floor(NOW.getTime() / 1000);
const GROUP_URL = 'https://meet.example.org/group/city-watch/';

type SignKey = Awaited<ReturnType<typeof jose.importJWK>>;

async function makeKeys() {
  const hsSecret = await jose.generateSecret('HS256', { extractable: true });
  const hsJwk = { ...(await jose.exportJWK(hsSecret)), alg: 'HS256', kid: 'hs' };
  const es = await jose.generateKeyPair('ES256', { extractable: true });
  const esJwk = { ...(await jose.exportJWK(es.publicKey)), alg: 'ES256', kid: 'es' };
  const rs = await jose.generateKeyPair('RS256', { extractable: true });
  const rsJwk = { ...(await jose.exportJWK(rs.publicKey)), alg: 'RS256', kid: 'rs' };
  return {
    hs: hsSecret as SignKey,
    es: es.privateKey as SignKey,
    rs: rs.privateKey as SignKey,
    jwks: [hsJwk, esJwk, rsJwk] as JsonWebKey[],
  };
}
const keys = await makeKeys();

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: 'vimes', aud: GROUP_URL, permissions: ['present'], iat: NOW_S - 10, exp: NOW_S + 30, ...extra };
}

async function sign(key: SignKey, header: jose.JWTHeaderParameters, body: Record<string, unknown>): Promise<string> {
  return new jose.SignJWT(body).setProtectedHeader(header).sign(key);
}

async function refused(p: Promise<unknown>, code: AuthError['code'], message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AuthError, `expected an AuthError, got ${String(e)}`);
    assert.equal(e.code, code, `code for "${e.message}"`);
    assert.match(e.message, message);
    return true;
  });
}

// Galène's audience rule (the path names the group), which a group file chooses with "token-audience": "path";
// the full-URL rule, the default, is tested in security/jwt-audience.test.ts.
const verify = (token: string, extra: { keys?: JsonWebKey[]; groupUrl?: string; canonicalHost?: string; now?: Date } = {}) =>
  verifyGroupJwt(token, {
    keys: extra.keys ?? keys.jwks,
    groupUrl: extra.groupUrl ?? GROUP_URL,
    now: extra.now ?? NOW,
    audience: 'path',
    ...(extra.canonicalHost ? { canonicalHost: extra.canonicalHost } : {}),
  });

// --- JWT: success ---------------------------------------------------------

test('HS256, ES256 and RS256 tokens verify; sub is the username, permissions are kept', async () => {
  for (const [alg, key, kid] of [
    ['HS256', keys.hs, 'hs'],
    ['ES256', keys.es, 'es'],
    ['RS256', keys.rs, 'rs'],
  ] as const) {
    const token = await sign(key, { alg, kid }, claims({ permissions: ['op', 'present', 'present'] }));
    const got = await verify(token);
    assert.equal(got.username, 'vimes', alg);
    assert.deepEqual(got.permissions, ['op', 'present'], alg);
    assert.equal(got.claims.aud, GROUP_URL);
  }
});

test("without kid, every key of the token's alg is tried", async () => {
  const other = await jose.generateSecret('HS256', { extractable: true });
  const otherJwk = { ...(await jose.exportJWK(other)), alg: 'HS256' } as JsonWebKey;
  const token = await sign(other as SignKey, { alg: 'HS256' }, claims());
  const got = await verify(token, { keys: [...keys.jwks, otherJwk] });
  assert.equal(got.username, 'vimes');
});

test('aud may be an array; one entry matching the group URL is enough', async () => {
  const token = await sign(keys.es, { alg: 'ES256', kid: 'es' }, claims({ aud: ['https://elsewhere.example/', GROUP_URL] }));
  assert.equal((await verify(token)).username, 'vimes');
});

test('the host of aud is ignored unless a canonical host is configured (Galène)', async () => {
  const token = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ aud: 'http://other-name:8443/group/city-watch/' }));
  assert.equal((await verify(token)).username, 'vimes');
  await refused(verify(token, { canonicalHost: 'meet.example.org' }), 'not-authorised', /wrong audience/);
  const good = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ aud: 'https://MEET.example.org/group/city-watch/' }));
  assert.equal((await verify(good, { canonicalHost: 'meet.example.org' })).username, 'vimes');
});

test('include-subgroups lets a parent group URL cover its subgroups', async () => {
  const body = claims({ aud: 'https://meet.example.org/group/city-watch/', 'include-subgroups': true });
  const token = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, body);
  const sub = await verify(token, { groupUrl: 'https://meet.example.org/group/city-watch/night/' });
  assert.equal(sub.username, 'vimes');
  const plain = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, { ...body, 'include-subgroups': false });
  await refused(verify(plain, { groupUrl: 'https://meet.example.org/group/city-watch/night/' }), 'not-authorised', /wrong audience/);
  const root = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, { ...body, aud: 'https://meet.example.org/group/' });
  assert.equal((await verify(root, { groupUrl: 'https://meet.example.org/group/ankh/' })).username, 'vimes');
});

test('a missing or empty sub gives no username; permissions may be absent or null', async () => {
  const { sub: _drop, ...noSub } = claims({ permissions: null });
  const a = await verify(await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, noSub));
  assert.equal(a.username, undefined);
  assert.deepEqual(a.permissions, []);
  const { permissions: _p, ...noPerms } = claims({ sub: '' });
  const b = await verify(await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, noPerms));
  assert.equal(b.username, undefined);
  assert.deepEqual(b.permissions, []);
});

test('exp a few seconds past is still accepted (5 s of clock tolerance)', async () => {
  const token = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ exp: NOW_S - 3 }));
  assert.equal((await verify(token)).username, 'vimes');
});

// --- JWT: failures --------------------------------------------------------

test('an expired token is refused as token-expired', async () => {
  const token = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ iat: NOW_S - 120, exp: NOW_S - 60 }));
  await refused(verify(token), 'token-expired', /expired at 2029-12-31T23:59:00/);
});

test('a token without exp is refused', async () => {
  const { exp: _e, ...body } = claims();
  await refused(verify(await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, body)), 'bad-token', /no "exp" claim/);
});

test('a token not yet valid (nbf) or issued in the future (iat) is refused', async () => {
  const early = await sign(keys.es, { alg: 'ES256', kid: 'es' }, claims({ nbf: NOW_S + 60, exp: NOW_S + 120 }));
  await refused(verify(early), 'not-authorised', /not valid before 2030-01-01T00:01:00/);
  const future = await sign(keys.es, { alg: 'ES256', kid: 'es' }, claims({ iat: NOW_S + 60, exp: NOW_S + 120 }));
  await refused(verify(future), 'not-authorised', /issued in the future/);
});

test('wrong audience: another group, a missing trailing slash, no aud at all', async () => {
  const other = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ aud: 'https://meet.example.org/group/unseen-university/' }));
  await refused(verify(other), 'not-authorised', /wrong audience.*unseen-university/);
  const noSlash = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ aud: 'https://meet.example.org/group/city-watch' }));
  await refused(verify(noSlash), 'not-authorised', /lacks the trailing slash/);
  const { aud: _a, ...body } = claims();
  await refused(verify(await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, body)), 'not-authorised', /no "aud" claim/);
  const subgroup = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims());
  await refused(verify(subgroup, { groupUrl: 'https://meet.example.org/group/city-watch/night/' }), 'not-authorised', /wrong audience/);
});

test('a token signed by a key the group does not hold is refused (bad signature)', async () => {
  const stranger = await jose.generateSecret('HS256', { extractable: true });
  const token = await sign(stranger as SignKey, { alg: 'HS256', kid: 'hs' }, claims());
  await refused(verify(token), 'bad-token', /bad signature.*authKeys\[0\] \(kid "hs"\)/);
  const es = await jose.generateKeyPair('ES256');
  const esToken = await sign(es.privateKey as SignKey, { alg: 'ES256' }, claims());
  await refused(verify(esToken), 'bad-token', /bad signature/);
});

test('a tampered token fails its signature check', async () => {
  const token = await sign(keys.rs, { alg: 'RS256', kid: 'rs' }, claims());
  const [h, , s] = token.split('.');
  const forged = Buffer.from(JSON.stringify(claims({ permissions: ['op'] }))).toString('base64url');
  await refused(verify(`${h}.${forged}.${s}`), 'bad-token', /bad signature/);
});

test('an unknown kid is refused by name', async () => {
  const token = await sign(keys.hs, { alg: 'HS256', kid: 'nobody' }, claims());
  await refused(verify(token), 'bad-token', /unknown key id.*"nobody"/);
});

test('alg mismatch: the kid names a key of another alg, or no key has the alg', async () => {
  const token = await sign(keys.es, { alg: 'ES256', kid: 'hs' }, claims());
  await refused(verify(token), 'bad-token', /alg mismatch.*ES256.*kid "hs" is for HS256/);
  const hs512 = await jose.generateSecret('HS512', { extractable: true });
  const t512 = await sign(hs512 as SignKey, { alg: 'HS512' }, claims());
  await refused(verify(t512), 'bad-token', /alg mismatch.*HS512/);
});

test('alg "none" and unsupported algorithms are refused', async () => {
  const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
  const body = Buffer.from(JSON.stringify(claims())).toString('base64url');
  await refused(verify(`${header}.${body}.`), 'bad-token', /alg "none".*not accepted/);
  const ps = await jose.generateKeyPair('PS256');
  await refused(verify(await sign(ps.privateKey as SignKey, { alg: 'PS256' }, claims())), 'bad-token', /PS256/);
});

test('a bad permissions claim is refused: not a string array, or an unknown name', async () => {
  const notArray = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ permissions: 'present' }));
  await refused(verify(notArray), 'bad-token', /must be an array of strings/);
  const numbers = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ permissions: [1] }));
  await refused(verify(numbers), 'bad-token', /must be an array of strings/);
  const unknown = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ permissions: ['present', 'wizard'] }));
  await refused(verify(unknown), 'bad-token', /unknown permission "wizard"/);
  const subNumber = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims({ sub: 42 }));
  await refused(verify(subNumber), 'bad-token', /"sub"/);
});

test('broken group keys and empty key sets are reported as configuration problems', async () => {
  const short = { kty: 'oct', alg: 'HS256', kid: 'short', k: Buffer.alloc(16, 7).toString('base64url') } as JsonWebKey;
  const token = await sign(new Uint8Array(Buffer.alloc(16, 7)), { alg: 'HS256', kid: 'short' }, claims());
  await refused(verify(token, { keys: [short] }), 'not-authorised', /authKeys\[0\] \(kid "short"\).*exactly 32 bytes/);
  await refused(verify(token, { keys: [] }), 'not-authorised', /no authKeys/);
});

test('garbage is not a JWT', async () => {
  await refused(verify('not a token'), 'bad-token', /not a JWT/);
  const jwt = await sign(keys.hs, { alg: 'HS256', kid: 'hs' }, claims());
  assert.equal(looksLikeJwt(jwt), true);
  assert.equal(looksLikeJwt('Y2l0eS13YXRjaA-invite_token'), false);
  assert.equal(looksLikeJwt('a.b.c'), false);
  assert.equal(looksLikeJwt(`${Buffer.from('{"typ":"JWT"}').toString('base64url')}.e30.`), false);
  assert.equal(looksLikeJwt(''), false);
});

// --- Stateful tokens ------------------------------------------------------

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'atrium-auth-'));
}

function token(extra: Partial<StatefulToken> = {}): StatefulToken {
  return { token: 'tok', group: 'city-watch', username: 'carrot', permissions: ['present'], expires: '2030-01-01T01:00:00Z', ...extra };
}

test('checkStatefulToken: username and permissions of a valid token; unknown permission names are dropped', () => {
  const got = checkStatefulToken(token({ permissions: ['present', 'message', 'observe'] }), 'city-watch', NOW);
  assert.deepEqual(got, { username: 'carrot', permissions: ['present', 'message'] });
  const noName = checkStatefulToken(token({ username: undefined }), 'city-watch', NOW);
  assert.equal(noName.username, undefined);
  // Valid up to and including its expiry instant, as in Galène.
  assert.equal(checkStatefulToken(token({ expires: NOW.toISOString() }), 'city-watch', NOW).username, 'carrot');
});

test('checkStatefulToken refuses unknown, wrong-group, expired, undated and early tokens', () => {
  const expect = (f: () => unknown, code: AuthError['code'], message: RegExp) => assert.throws(f, (e: unknown) => e instanceof AuthError && e.code === code && message.test(e.message));
  expect(() => checkStatefulToken(undefined, 'city-watch', NOW), 'not-authorised', /unknown token/);
  expect(() => checkStatefulToken(token(), 'unseen-university', NOW), 'not-authorised', /for group "city-watch", not for group "unseen-university"/);
  expect(() => checkStatefulToken(token(), 'city-watch/night', NOW), 'not-authorised', /not for group/);
  expect(() => checkStatefulToken(token({ expires: '2029-12-31T23:59:59Z' }), 'city-watch', NOW), 'token-expired', /expired at 2029-12-31T23:59:59/);
  expect(() => checkStatefulToken(token({ expires: undefined }), 'city-watch', NOW), 'token-expired', /no valid expiry/);
  expect(() => checkStatefulToken(token({ 'not-before': '2030-01-01T00:30:00Z' }), 'city-watch', NOW), 'not-authorised', /not valid before 2030-01-01T00:30:00/);
  expect(() => checkStatefulToken(token({ group: '' }), '', NOW), 'not-authorised', /not for group/);
});

test('checkStatefulToken: includeSubgroups covers the subtree, and "" covers every group', () => {
  const t = token({ includeSubgroups: true });
  assert.equal(checkStatefulToken(t, 'city-watch', NOW).username, 'carrot');
  assert.equal(checkStatefulToken(t, 'city-watch/night', NOW).username, 'carrot');
  assert.throws(() => checkStatefulToken(t, 'city-watchmen', NOW), AuthError);
  assert.equal(checkStatefulToken(token({ group: '', includeSubgroups: true }), 'anything/below', NOW).username, 'carrot');
});

test('TokenStore: create, get, list, delete, and persistence across instances', async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, 'var', 'tokens.jsonl');
    const store = new TokenStore({ file, log: silentLogger() });
    await store.load();
    assert.deepEqual(store.list(), []);

    const a = await store.create({ group: 'city-watch', permissions: ['present'], expires: new Date('2030-02-01T00:00:00Z'), issuedBy: 'vimes' });
    const b = await store.create({ group: 'city-watch', username: 'nobby', permissions: ['message'], expires: new Date('2030-01-15T00:00:00Z'), notBefore: new Date('2030-01-02T00:00:00Z') });
    const c = await store.create({ group: 'unseen-university', permissions: [], expires: new Date('2030-03-01T00:00:00Z') });
    assert.match(a.token, /^[A-Za-z0-9_-]{24}$/);
    assert.notEqual(a.token, b.token);
    assert.equal(store.get(a.token)?.issuedBy, 'vimes');
    assert.equal(store.get(b.token)?.['not-before'], '2030-01-02T00:00:00.000Z');
    assert.deepEqual(
      store.list('city-watch').map((t) => t.token),
      [b.token, a.token],
      'soonest expiry first',
    );
    assert.equal(store.list().length, 3);

    // A copy: mutating it does not change the store.
    store.get(a.token)!.permissions.push('op');
    assert.deepEqual(store.get(a.token)!.permissions, ['present']);

    const lines = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 3);
    assert.deepEqual(Object.keys(lines.find((l) => l.token === b.token)!), ['token', 'group', 'username', 'permissions', 'expires', 'not-before', 'issuedAt']);

    assert.equal(await store.delete(c.token), true);
    assert.equal(await store.delete(c.token), false);
    assert.equal(store.get(c.token), undefined);

    const again = new TokenStore({ file, log: silentLogger() });
    await again.load();
    assert.deepEqual(
      again
        .list()
        .map((t) => t.token)
        .sort(),
      [a.token, b.token].sort(),
    );
    assert.deepEqual(again.get(b.token), store.get(b.token));
    assert.deepEqual(await readdir(join(dir, 'var')), ['tokens.jsonl'], 'no temporary file left behind');

    await again.delete(a.token);
    await again.delete(b.token);
    await assert.rejects(readFile(file), { code: 'ENOENT' }, 'no tokens, no file (as Galène)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('TokenStore: concurrent creates all reach the file', async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, 'tokens.jsonl');
    const store = new TokenStore({ file, log: silentLogger() });
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => store.create({ group: 'g', username: `u${i}`, permissions: ['present'], expires: new Date('2030-02-01T00:00:00Z') })));
    const fresh = new TokenStore({ file, log: silentLogger() });
    await fresh.load();
    assert.equal(fresh.list().length, 20);
    for (const t of made) assert.equal(fresh.get(t.token)?.username, t.username);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("TokenStore: Galène's hierarchical and global tokens (includeSubgroups), and the name Atrium wrote before", async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, 'tokens.jsonl');
    await writeFile(
      file,
      [
        '{"token":"h1","group":"city-watch","includeSubgroups":true,"permissions":["present"],"expires":"2030-01-01T00:00:00Z"}',
        '{"token":"all","group":"","includeSubgroups":true,"permissions":["admin"],"expires":"2030-01-01T00:00:00Z"}',
        '{"token":"old","group":"city-watch","include-subgroups":true,"permissions":[],"expires":"2030-01-01T00:00:00Z"}',
        '',
      ].join('\n'),
    );
    const store = new TokenStore({ file, log: silentLogger() });
    await store.load();
    assert.equal(store.get('h1')?.includeSubgroups, true);
    assert.deepEqual(checkStatefulToken(store.get('h1'), 'city-watch/night', NOW).permissions, ['present']);
    assert.deepEqual(checkStatefulToken(store.get('all'), 'anywhere/at/all', NOW).permissions, ['admin']);
    assert.equal(store.get('old')?.includeSubgroups, true);
    // Written back as Galène writes it.
    await store.put({ ...store.get('old')!, permissions: ['message'] });
    const line = (await readFile(file, 'utf8')).split('\n').find((l) => l.includes('"old"'))!;
    assert.deepEqual(Object.keys(JSON.parse(line)).slice(0, 3), ['token', 'group', 'includeSubgroups']);
    assert.doesNotMatch(line, /include-subgroups/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('TokenStore reads a file written by Galène and keeps fields it does not know', async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, 'tokens.jsonl');
    const galene = [
      '{"token":"g1","group":"city-watch","permissions":["present"],"expires":"2030-01-01T02:00:00.123456789+01:00","issuedAt":"2029-12-01T10:00:00.5+01:00","issuedBy":"vimes","future-field":{"x":1}}',
      '{"token":"g2","group":"city-watch","username":"angua","permissions":null,"expires":null}',
      '',
    ].join('\n');
    await writeFile(file, galene);
    const store = new TokenStore({ file, log: silentLogger() });
    await store.load();
    assert.deepEqual(store.get('g1')?.permissions, ['present']);
    assert.equal(store.get('g1')?.username, undefined);
    assert.equal(store.get('g2')?.expires, undefined);
    assert.deepEqual(store.get('g2')?.permissions, []);
    assert.equal(checkStatefulToken(store.get('g1'), 'city-watch', NOW).username, undefined);

    await store.put({ ...store.get('g2')!, expires: '2030-06-01T00:00:00Z' });
    const written = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const g1 = written.find((l) => l.token === 'g1')!;
    assert.deepEqual(g1['future-field'], { x: 1 });
    assert.equal(g1.expires, '2030-01-01T02:00:00.123456789+01:00', 'times are kept exactly as written');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('TokenStore: a damaged line is reported with file and line; put validates', async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, 'tokens.jsonl');
    await writeFile(file, '{"token":"ok","group":"g","permissions":[],"expires":"2030-01-02T00:00:00Z"}\n{"token":"bad","group":"g","permissions":[],"expires":"next tuesday"}\n');
    const store = new TokenStore({ file, log: silentLogger() });
    await assert.rejects(store.load(), (e: unknown) => e instanceof TokenFileError && e.message.includes(`${file}:2`) && e.message.includes('"expires"'));
    await writeFile(file, 'not json\n');
    await assert.rejects(store.load(), (e: unknown) => e instanceof TokenFileError && e.message.includes(`${file}:1`) && /not valid JSON/.test(e.message));
    await assert.rejects(store.put({ token: '', group: 'g', permissions: [] }), /field "token"/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('TokenStore.refresh picks up changes made by other programs; purgeExpired drops week-old tokens', async () => {
  const dir = await tempDir();
  try {
    const file = join(dir, 'tokens.jsonl');
    const store = new TokenStore({ file, log: silentLogger() });
    await store.load();
    await writeFile(file, '{"token":"ext","group":"g","permissions":["present"],"expires":"2030-01-02T00:00:00Z"}\n{"token":"old","group":"g","permissions":[],"expires":"2029-12-20T00:00:00Z"}\n');
    await store.refresh();
    assert.equal(store.get('ext')?.group, 'g');
    assert.equal(await store.purgeExpired(NOW), 1);
    assert.equal(store.get('old'), undefined);
    assert.ok(store.get('ext'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// --- authenticateWithToken ------------------------------------------------

test('authenticateWithToken: JWT when the group has keys, stateful token otherwise, Galène username rules', async () => {
  const dir = await tempDir();
  try {
    await mkdir(join(dir, 'var'));
    const tokens = new TokenStore({ file: join(dir, 'var', 'tokens.jsonl'), log: silentLogger() });
    await tokens.load();
    const base = { groupName: 'city-watch', groupUrl: GROUP_URL, authKeys: keys.jwks, tokens, now: NOW };

    const jwt = await sign(keys.es, { alg: 'ES256', kid: 'es' }, claims({ permissions: ['op'] }));
    assert.deepEqual(await authenticateWithToken({ ...base, token: jwt, clientUsername: 'someone-else' }), { username: 'vimes', permissions: ['op'] });

    const { sub: _s, ...anonymousBody } = claims();
    const anonymous = await sign(keys.es, { alg: 'ES256', kid: 'es' }, anonymousBody);
    assert.equal((await authenticateWithToken({ ...base, token: anonymous, clientUsername: null })).username, undefined, 'a JWT without sub never asks for a username');
    assert.equal((await authenticateWithToken({ ...base, token: anonymous, clientUsername: 'detritus' })).username, 'detritus');
    await refused(authenticateWithToken({ ...base, token: anonymous, clientUsername: 'vimes', userExists: (n) => n === 'vimes' }), 'not-authorised', /registered user/);

    const named = await tokens.create({ group: 'city-watch', username: 'carrot', permissions: ['present'], expires: new Date('2030-01-02T00:00:00Z') });
    assert.deepEqual(await authenticateWithToken({ ...base, token: named.token, clientUsername: 'x' }), { username: 'carrot', permissions: ['present'] });

    const open = await tokens.create({ group: 'city-watch', permissions: ['message'], expires: new Date('2030-01-02T00:00:00Z') });
    await refused(authenticateWithToken({ ...base, token: open.token, clientUsername: null }), 'need-username', /choose one/);
    assert.equal((await authenticateWithToken({ ...base, token: open.token, clientUsername: 'cheery' })).username, 'cheery');
    assert.equal((await authenticateWithToken({ ...base, token: open.token })).username, undefined, 'without clientUsername the caller decides');

    await refused(authenticateWithToken({ ...base, token: 'no-such-token' }), 'not-authorised', /unknown token/);
    await refused(authenticateWithToken({ ...base, token: jwt, authKeys: [] }), 'not-authorised', /no authKeys/);
    await refused(authenticateWithToken({ ...base, token: '' }), 'bad-token', /empty/);
    const expired = await tokens.create({ group: 'city-watch', username: 'x', permissions: [], expires: new Date('2029-12-31T00:00:00Z') });
    await refused(authenticateWithToken({ ...base, token: expired.token }), 'token-expired', /expired/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
