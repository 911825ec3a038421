// Joining over the Galène protocol against a real server process: every way
// in (password of each kind, wildcard, JWT with HS256/ES256/RS256, stateful
// invite tokens, an auth server) and every way of being refused, plus the
// group rules checked at the door and the rtcConfiguration handed out.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { hashPassword } from '../src/groups/index.ts';
import { GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'atrium.mjs');
const hsSecret = new TextEncoder().encode('a-shared-secret-of-exactly-32-by');
let es: Awaited<ReturnType<typeof generateKeyPair>>;
let rs: Awaited<ReturnType<typeof generateKeyPair>>;
let server: RunningServer;
let authServer: Server;
let authUrl = '';
const clients: GaleneTestClient[] = [];
const TURN_SECRET = 'turn-shared-secret';

before(async () => {
  es = await generateKeyPair('ES256', { extractable: true });
  rs = await generateKeyPair('RS256', { extractable: true });
  const keys = [
    { kty: 'oct', alg: 'HS256', kid: 'hs', k: Buffer.from(hsSecret).toString('base64url') },
    { ...(await exportJWK(es.publicKey)), alg: 'ES256', kid: 'es' },
    { ...(await exportJWK(rs.publicKey)), alg: 'RS256', kid: 'rs' },
  ];
  // An auth server as galene-protocol.md describes: 403 refuses, 204 defers to passwords, 200 answers a JWT.
  authServer = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const { location, username, password } = JSON.parse(body) as { location: string; username: string; password: string };
      if (username === 'banned') return res.writeHead(403).end();
      if (username === 'local') return res.writeHead(204).end();
      if (password !== 'sso-pw') return res.writeHead(403).end();
      const jwt = await new SignJWT({ permissions: ['present'] })
        .setProtectedHeader({ alg: 'HS256', kid: 'hs' })
        .setSubject(username)
        .setAudience(location)
        .setIssuedAt()
        .setExpirationTime('30s')
        .sign(hsSecret);
      res.writeHead(200, { 'content-type': 'application/jwt' }).end(jwt);
    });
  });
  await new Promise<void>((r) => authServer.listen(0, '127.0.0.1', r));
  const addr = authServer.address();
  authUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/auth`;

  server = await startServer({
    groups: {
      pw: {
        users: {
          plain: { password: 'plainpw', permissions: 'op' },
          pb: { password: await hashPassword('pbpw', 'pbkdf2'), permissions: 'present' },
          bc: { password: await hashPassword('bcpw', 'bcrypt'), permissions: 'message' },
        },
        'wildcard-user': { password: 'letmein', permissions: 'observe' },
      },
      anon: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'message' }, 'allow-anonymous': true },
      jwt: { authKeys: keys },
      sso: { authKeys: keys, authServer: authUrl, users: { local: { password: 'localpw', permissions: 'present' } } },
      small: { 'max-clients': 2, users: { op: { password: 'o', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      future: { 'not-before': new Date(Date.now() + 86400e3).toISOString(), 'wildcard-user': { password: { type: 'wildcard' } } },
      past: { expires: new Date(Date.now() - 86400e3).toISOString(), 'wildcard-user': { password: { type: 'wildcard' } } },
      moved: { redirect: 'https://elsewhere.example/group/moved/' },
    },
    args: ['--turn', 'turn:turn.example.org:3478', '--turn-secret', TURN_SECRET],
  });
});

after(async () => {
  for (const c of clients) c.close();
  await server.stop();
  authServer.close();
});

async function client(): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(server.wsUrl);
  clients.push(c);
  return c;
}

const groupUrl = (name: string) => `${server.url}/group/${name}/`;

async function sign(alg: 'HS256' | 'ES256' | 'RS256', claims: { sub?: string; aud?: string; exp?: string | number; permissions?: unknown }, kid?: string) {
  const key = alg === 'HS256' ? hsSecret : alg === 'ES256' ? es.privateKey : rs.privateKey;
  const jwt = new SignJWT(claims.permissions === undefined ? {} : { permissions: claims.permissions })
    .setProtectedHeader({ alg, kid: kid ?? { HS256: 'hs', ES256: 'es', RS256: 'rs' }[alg] })
    .setIssuedAt()
    .setAudience(claims.aud ?? groupUrl('jwt'))
    .setExpirationTime(claims.exp ?? '1m');
  if (claims.sub) jwt.setSubject(claims.sub);
  return jwt.sign(key);
}

test('passwords: plain, pbkdf2, bcrypt and wildcard-user, each right and wrong', async () => {
  const cases: [string, string, string, string[] | null][] = [
    ['plain', 'plainpw', 'join', ['op', 'present']],
    ['plain', 'wrong', 'fail', null],
    ['pb', 'pbpw', 'join', ['present']],
    ['pb', 'nope', 'fail', null],
    ['bc', 'bcpw', 'join', ['message']],
    ['bc', 'bcpw2', 'fail', null],
    ['someone', 'letmein', 'join', []],
    ['someone', 'wrong', 'fail', null],
    // A named user with a wrong password does not fall back to the wildcard user.
    ['plain', 'letmein', 'fail', null],
  ];
  for (const [user, pw, kind, perms] of cases) {
    const c = await client();
    const j = await c.join('pw', user, pw);
    assert.equal(j.kind, kind, `${user}/${pw}: ${JSON.stringify(j)}`);
    if (kind === 'fail') {
      assert.equal(j.error, 'not-authorised');
      assert.match(j.value, /wrong username or password/);
    } else {
      for (const p of perms ?? []) assert.ok(j.permissions.includes(p), `${user} should have ${p}: ${j.permissions}`);
      assert.equal(j.username, user);
      assert.equal(j.status.name, 'pw');
      assert.equal(j.status.location, groupUrl('pw'));
      assert.equal(j.status.endpoint, server.wsUrl);
    }
    c.close();
  }
});

test('anonymous users need allow-anonymous', async () => {
  const a = await client();
  const refused = await a.join('pw', '', 'letmein');
  assert.equal(refused.kind, 'fail');
  assert.equal(refused.error, 'need-username');
  const b = await client();
  const ok = await b.join('anon', '', '');
  assert.equal(ok.kind, 'join');
});

test('JWT: HS256, ES256 and RS256 tokens, picked by kid, give the claimed user and permissions', async () => {
  for (const alg of ['HS256', 'ES256', 'RS256'] as const) {
    const c = await client();
    const j = await c.join('jwt', undefined, undefined, { token: await sign(alg, { sub: `user-${alg}`, permissions: ['present', 'message'] }) });
    assert.equal(j.kind, 'join', `${alg}: ${JSON.stringify(j)}`);
    assert.equal(j.username, `user-${alg}`);
    assert.deepEqual([...j.permissions].sort(), ['message', 'present']);
  }
});

test('JWT: each bad token is refused with a reason', async () => {
  const other = await generateKeyPair('ES256');
  const forged = await new SignJWT({ permissions: ['op'] })
    .setProtectedHeader({ alg: 'ES256', kid: 'es' })
    .setSubject('mallory')
    .setAudience(groupUrl('jwt'))
    .setExpirationTime('1m')
    .sign(other.privateKey);
  const cases: [string, string][] = [
    ['expired', await sign('HS256', { sub: 'a', exp: Math.floor(Date.now() / 1000) - 3600 })],
    ['wrong audience', await sign('HS256', { sub: 'a', aud: groupUrl('pw') })],
    ['bad signature', forged],
    ['unknown kid', await sign('HS256', { sub: 'a' }, 'nope')],
    ['garbage', 'not.a.jwt'],
  ];
  for (const [what, token] of cases) {
    const c = await client();
    const j = await c.join('jwt', undefined, undefined, { token });
    assert.equal(j.kind, 'fail', `${what} should fail: ${JSON.stringify(j)}`);
    assert.equal(j.error, 'not-authorised', what);
    assert.ok(typeof j.value === 'string' && j.value.length > 5, `${what}: a reason is given`);
  }
});

test('JWT without a subject: need-username, then the chosen username', async () => {
  const token = await sign('ES256', { permissions: ['present'] });
  const c = await client();
  const j = await c.join('jwt', undefined, undefined, { token });
  assert.equal(j.kind, 'fail');
  assert.equal(j.error, 'need-username');
  const j2 = await c.join('jwt', 'chosen', undefined, { token });
  assert.equal(j2.kind, 'join');
  assert.equal(j2.username, 'chosen');
});

test('stateful tokens made by `atrium token` let a user in; a token for another group does not', async () => {
  const run = promisify(execFile);
  const { stdout } = await run(process.execPath, [BIN, 'token', '--group', 'jwt', '--user', 'invitee', '--permissions', 'present', '--expires', '1h', '--data', server.dataDir, '--url', server.url]);
  const link = new URL(stdout.trim());
  assert.equal(link.pathname, '/group/jwt/');
  const token = link.searchParams.get('token')!;
  const c = await client();
  const j = await c.join('jwt', undefined, undefined, { token });
  assert.equal(j.kind, 'join', JSON.stringify(j));
  assert.equal(j.username, 'invitee');
  assert.deepEqual(j.permissions, ['present']);
  const d = await client();
  const wrong = await d.join('pw', undefined, undefined, { token });
  assert.equal(wrong.kind, 'fail');
  assert.equal(wrong.error, 'not-authorised');
});

test('auth server: a JWT for a good password, 403 refuses, 204 falls back to the group passwords', async () => {
  const status = (await (await fetch(`${groupUrl('sso')}.status`)).json()) as { authServer?: string; location: string };
  assert.equal(status.authServer, authUrl);
  // The client side of the flow, as galene-protocol.md describes it.
  const login = async (username: string, password: string) => {
    const r = await fetch(status.authServer!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ location: status.location, username, password }) });
    const c = await client();
    if (r.status === 200) return c.join('sso', undefined, undefined, { token: await r.text() });
    if (r.status === 204) return c.join('sso', username, password);
    // biome-ignore lint/suspicious/noExplicitAny: the same loose shape as a join's result
    return { kind: 'refused-by-auth-server', status: r.status } as Record<string, any>;
  };
  const ok = await login('sam', 'sso-pw');
  assert.equal(ok.kind, 'join');
  assert.equal(ok.username, 'sam');
  assert.deepEqual(await login('banned', 'x'), { kind: 'refused-by-auth-server', status: 403 });
  const local = await login('local', 'localpw');
  assert.equal(local.kind, 'join');
  const localBad = await login('local', 'bad');
  assert.equal(localBad.kind, 'fail');
});

test('max-clients refuses the next non-op; an op still gets in', async () => {
  const a = await client();
  const b = await client();
  assert.equal((await a.join('small', 'a', 'x')).kind, 'join');
  assert.equal((await b.join('small', 'b', 'x')).kind, 'join');
  const c = await client();
  const full = await c.join('small', 'c', 'x');
  assert.equal(full.kind, 'fail');
  assert.equal(full.error, 'too-many-clients');
  const op = await client();
  assert.equal((await op.join('small', 'op', 'o')).kind, 'join');
});

test('not-before, expires, redirect and unknown groups', async () => {
  const f = await (await client()).join('future', 'x', 'x');
  assert.equal(f.error, 'group-not-open');
  const p = await (await client()).join('past', 'x', 'x');
  assert.equal(p.error, 'group-expired');
  const r = await (await client()).join('moved', 'x', 'x');
  assert.equal(r.kind, 'redirect');
  assert.equal(r.value, 'https://elsewhere.example/group/moved/');
  const n = await (await client()).join('nosuch', 'x', 'x');
  assert.equal(n.error, 'no-such-group');
});

test('rtcConfiguration carries TURN REST credentials and never the shared secret', async () => {
  const c = await client();
  const j = await c.join('pw', 'plain', 'plainpw');
  const servers = j.rtcConfiguration.iceServers as { urls: string[]; username: string; credential: string }[];
  assert.equal(servers.length, 1);
  const s = servers[0]!;
  assert.deepEqual(s.urls, ['turn:turn.example.org:3478']);
  const [expiry, user] = s.username.split(':');
  assert.ok(Number(expiry) > Date.now() / 1000, 'the timestamp is an expiry in the future');
  assert.equal(user, 'plain');
  assert.equal(s.credential, createHmac('sha1', TURN_SECRET).update(s.username).digest('base64'));
  assert.ok(!JSON.stringify(j).includes(TURN_SECRET));
});

test('one connection cannot be in two groups, and nothing but handshake/ping works before join', async () => {
  const c = await client();
  c.chat('too early');
  const early = await c.next((f) => f.type === 'usermessage' && f.kind === 'error');
  assert.equal(early.error, 'not-joined');
  assert.equal((await c.join('anon', 'one', '')).kind, 'join');
  const second = await c.join('pw', 'plain', 'plainpw');
  assert.equal(second.kind, 'fail');
  assert.equal(second.error, 'already-joined');
  c.send({ type: 'join', kind: 'leave', group: 'anon' });
  await c.next((f) => f.type === 'joined' && f.kind === 'leave');
  assert.equal((await c.join('pw', 'plain', 'plainpw')).kind, 'join');
});
