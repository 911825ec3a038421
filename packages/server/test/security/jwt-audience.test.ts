// Issue 10, row 4: an admin-API bearer JWT signed with the group's key,
// granting "admin", with no `exp` and no `aud` (or `aud`
// https://evil.example/group/g/) was accepted for every write, the group's
// keys included: joins required `exp`, the admin API did not, and `aud` was
// compared by path only. Joins and the admin API now share one verifier:
// `exp` is required and `aud` must be the group's full URL (scheme, host,
// port and path), unless the group file says "token-audience": "path".
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as jose from 'jose';
import { verifyGroupJwt } from '../../src/auth/index.ts';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

let server: RunningServer;
let secret: Uint8Array;
let jwk: jose.JWK;

before(async () => {
  secret = crypto.getRandomValues(new Uint8Array(32));
  jwk = { kty: 'oct', k: Buffer.from(secret).toString('base64url'), alg: 'HS256' };
  const open = { password: { type: 'wildcard' }, permissions: 'present' };
  server = await startServer({
    args: ['--no-media'],
    config: { writableGroups: true },
    groups: {
      g: { authKeys: [jwk], 'wildcard-user': open },
      // An issuer that knows the group's path but not where clients reach it.
      p: { authKeys: [jwk], 'token-audience': 'path', 'wildcard-user': open },
    },
  });
});
after(() => server?.stop());

const url = (group: string) => `${server.url}/group/${group}/`;

function sign(claims: { sub?: string; permissions?: string[]; aud?: string | null; exp?: boolean }): Promise<string> {
  const jwt = new jose.SignJWT({ permissions: claims.permissions ?? ['admin'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(claims.sub ?? 'portal')
    .setIssuedAt();
  if (claims.aud !== null && claims.aud !== undefined) jwt.setAudience(claims.aud);
  if (claims.exp !== false) jwt.setExpirationTime('5m');
  return jwt.sign(secret);
}

async function admin(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; text: string }> {
  const r = await fetch(`${server.url}/galene-api/v0/${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/jwk-set+json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, text: await r.text() };
}

test('the admin API refuses a group-signed admin token without exp, without aud, or for another server', async () => {
  const cases: [string, string, RegExp][] = [
    ['no exp', await sign({ aud: url('g'), exp: false }), /"exp"/],
    ['no aud', await sign({ aud: null }), /no "aud" claim/],
    ['aud on another server', await sign({ aud: 'https://evil.example/group/g/' }), /another server/],
    ['aud of another group', await sign({ aud: url('p') }), /wrong audience/],
  ];
  for (const [what, token, why] of cases) {
    const r = await admin('GET', '.groups/g', token);
    assert.equal(r.status, 401, `${what}: ${r.text}`);
    assert.match(r.text, why, what);
  }
  // Not even a write: the keys stay as they are.
  const attack = await admin('PUT', '.groups/g/.keys', await sign({ aud: 'https://evil.example/group/g/', exp: false }), { keys: [] });
  assert.equal(attack.status, 401, attack.text);
  const stillKeyed = await GaleneTestClient.connect(server.wsUrl);
  assert.equal((await stillKeyed.join('g', undefined, undefined, { token: await sign({ sub: 'vimes', permissions: ['present'], aud: url('g') }) })).kind, 'join', 'the group still has its key');
  stillKeyed.close();

  const good = await admin('GET', '.groups/g', await sign({ aud: url('g') }));
  assert.equal(good.status, 200, good.text);
});

test('a join refuses a token whose aud names the group on another server', async () => {
  const c = await GaleneTestClient.connect(server.wsUrl);
  const evil = await c.join('g', undefined, undefined, { token: await sign({ sub: 'vimes', permissions: ['present'], aud: 'https://evil.example/group/g/' }) });
  assert.equal(evil.kind, 'fail');
  assert.equal(evil.error, 'not-authorised');
  assert.match(evil.value, /another server/);
  const noExp = await c.join('g', undefined, undefined, { token: await sign({ sub: 'vimes', permissions: ['present'], aud: url('g'), exp: false }) });
  assert.equal(noExp.kind, 'fail');
  const ok = await c.join('g', undefined, undefined, { token: await sign({ sub: 'vimes', permissions: ['present'], aud: url('g') }) });
  assert.equal(ok.kind, 'join', JSON.stringify(ok));
  c.close();
});

test('"token-audience": "path" in a group file accepts the group path on any host, for joins and the admin API', async () => {
  const elsewhere = 'https://issuer-view.example:9443/group/p/';
  const c = await GaleneTestClient.connect(server.wsUrl);
  assert.equal((await c.join('p', undefined, undefined, { token: await sign({ sub: 'carrot', permissions: ['present'], aud: elsewhere }) })).kind, 'join');
  c.close();
  assert.equal((await admin('GET', '.groups/p', await sign({ aud: elsewhere }))).status, 200);
  // exp stays required.
  assert.equal((await admin('GET', '.groups/p', await sign({ aud: elsewhere, exp: false }))).status, 401);
});

test('the verifier compares scheme, host and port, and says which part is wrong', async () => {
  const keys = [jwk as import('node:crypto').JsonWebKey];
  const groupUrl = 'https://meet.example.org:8443/group/g/';
  const at = async (aud: string) => verifyGroupJwt(await sign({ aud }), { keys, groupUrl });
  assert.equal((await at('https://MEET.example.org:8443/group/g/')).username, 'portal', 'the host is compared without case');
  for (const aud of ['http://meet.example.org:8443/group/g/', 'https://meet.example.org/group/g/', 'https://other.example.org:8443/group/g/']) {
    await assert.rejects(at(aud), /names the group on another server: scheme, host and port must be https:\/\/meet\.example\.org:8443/, aud);
  }
  assert.equal((await verifyGroupJwt(await sign({ aud: 'https://other.example.org/group/g/' }), { keys, groupUrl, audience: 'path' })).username, 'portal');
});
