// The admin API of a running server process, as a portal uses it: create a
// group, add a user with a password hashed server-side, and a WebSocket
// client can join at once; an ETag conflict and a rejected overwrite change
// nothing; a stateful token made through the API lets a user in.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { hashPassword } from '../src/groups/index.ts';
import { GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

let server: RunningServer;
const auth = `Basic ${Buffer.from('root:rootpw').toString('base64')}`;
const api = (path: string) => `${server.url}/galene-api/v0/${path}`;

before(async () => {
  server = await startServer({
    config: { writableGroups: true, users: { root: { password: await hashPassword('rootpw'), permissions: 'admin' } } },
  });
});
after(() => server.stop());

async function join(group: string, username?: string, password?: string, extra: Record<string, unknown> = {}) {
  const c = await GaleneTestClient.connect(server.wsUrl);
  const j = await c.join(group, username, password, extra);
  c.close();
  return j;
}

test('a group and a user created through the API take effect at once', async () => {
  const put = await fetch(api('.groups/portal'), {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/json', 'if-none-match': '*' },
    body: JSON.stringify({ displayName: 'Made by a portal' }),
  });
  assert.equal(put.status, 201);
  const u = await fetch(api('.groups/portal/.users/carla'), {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/json' },
    body: JSON.stringify({ permissions: 'present' }),
  });
  assert.ok(u.status === 201 || u.status === 204, `user PUT: ${u.status}`);
  const pw = await fetch(api('.groups/portal/.users/carla/.password'), {
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'text/plain' },
    body: 'carla-pw',
  });
  assert.ok(pw.status === 204 || pw.status === 200, `password POST: ${pw.status}`);
  const j = await join('portal', 'carla', 'carla-pw');
  assert.equal(j.kind, 'join', JSON.stringify(j));
  assert.equal(j.status.displayName, 'Made by a portal');
  assert.equal((await join('portal', 'carla', 'nope')).kind, 'fail');

  const got = await fetch(api('.groups/portal/.users/carla'), { headers: { authorization: auth } });
  assert.ok(!(await got.text()).includes('carla-pw'));
});

test('an ETag conflict and If-None-Match:* refuse the write and change nothing', async () => {
  const first = await fetch(api('.groups/portal'), { headers: { authorization: auth } });
  const etag = first.headers.get('etag')!;
  assert.ok(etag);
  const ok = await fetch(api('.groups/portal'), {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/json', 'if-match': etag },
    body: JSON.stringify({ displayName: 'Second', users: ((await first.json()) as { users?: unknown }).users }),
  });
  assert.equal(ok.status, 204);
  const stale = await fetch(api('.groups/portal'), {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/json', 'if-match': etag },
    body: JSON.stringify({ displayName: 'Lost update' }),
  });
  assert.equal(stale.status, 412);
  const overwrite = await fetch(api('.groups/portal'), {
    method: 'PUT',
    headers: { authorization: auth, 'content-type': 'application/json', 'if-none-match': '*' },
    body: JSON.stringify({ displayName: 'Clobbered' }),
  });
  assert.equal(overwrite.status, 412);
  const status = (await (await fetch(`${server.url}/group/portal/.status`)).json()) as { displayName: string };
  assert.equal(status.displayName, 'Second');
  assert.equal((await join('portal', 'carla', 'carla-pw')).kind, 'join', 'the user survived the conditional update');
});

test('no credentials, wrong credentials: 401', async () => {
  assert.equal((await fetch(api('.groups/'))).status, 401);
  const bad = `Basic ${Buffer.from('root:wrong').toString('base64')}`;
  assert.equal((await fetch(api('.groups/'), { headers: { authorization: bad } })).status, 401);
});

test('a stateful token created through the API is an invite link', async () => {
  const r = await fetch(api('.groups/portal/.tokens/'), {
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'guest', permissions: ['present'], expires: new Date(Date.now() + 3600e3).toISOString() }),
  });
  assert.equal(r.status, 201, await r.clone().text());
  const location = r.headers.get('location') ?? '';
  const token = decodeURIComponent(location.split('/').filter(Boolean).pop() ?? '');
  assert.ok(token.length >= 16, `token from Location: ${location}`);
  const j = await join('portal', undefined, undefined, { token });
  assert.equal(j.kind, 'join', JSON.stringify(j));
  assert.equal(j.username, 'guest');
});
