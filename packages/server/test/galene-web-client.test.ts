// What Galène's own web client needs of the server besides the WebSocket,
// against a real `atrium serve --static DIR`: its files at /, its
// galene.html at every group page, .status (and the .status.json its main
// page asks for), the status fields it reads after joining
// (canChangePassword), and the password change its dialog
// (change-password.js) makes through /galene-api/.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

let server: RunningServer;
let staticDir: string;
const clients: GaleneTestClient[] = [];

before(async () => {
  // A stand-in for Galène's static/ folder: the files the server must serve as they are.
  staticDir = await mkdtemp(join(tmpdir(), 'atrium-static-'));
  await writeFile(join(staticDir, 'galene.html'), '<!DOCTYPE html><title>Galène</title><script src="/galene.js"></script>');
  await writeFile(join(staticDir, 'index.html'), '<!DOCTYPE html><title>main page</title>');
  await writeFile(join(staticDir, 'galene.js'), "'use strict';");
  await writeFile(join(staticDir, 'change-password.html'), '<!DOCTYPE html><title>Change password</title>');
  await mkdir(join(staticDir, 'third-party', 'toastify'), { recursive: true });
  await writeFile(join(staticDir, 'third-party', 'toastify', 'toastify.css'), '.toastify{}');
  server = await startServer({
    args: ['--static', staticDir],
    config: { writableGroups: true },
    groups: {
      open: { public: true, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      private: { users: { alice: { password: 'old-pw', permissions: 'present' }, bob: { password: 'bob-pw', permissions: 'op' } } },
    },
  });
});

after(async () => {
  for (const c of clients) c.close();
  await server.stop();
  await rm(staticDir, { recursive: true, force: true });
});

test("--static DIR: its files at /, its galene.html at every group page; Atrium's API stays", async () => {
  const page = await fetch(`${server.url}/group/open/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await page.text(), /<title>Galène<\/title>/);
  assert.match(await (await fetch(`${server.url}/group/private/`)).text(), /<title>Galène<\/title>/);
  assert.match(await (await fetch(`${server.url}/`)).text(), /main page/);
  const js = await fetch(`${server.url}/galene.js`);
  assert.match(js.headers.get('content-type') ?? '', /javascript/);
  assert.equal(await js.text(), "'use strict';");
  assert.equal((await fetch(`${server.url}/third-party/toastify/toastify.css`)).status, 200);
  assert.equal((await fetch(`${server.url}/change-password.html`)).status, 200);
  assert.equal((await fetch(`${server.url}/nothing-here.js`)).status, 404);
  assert.equal((await fetch(`${server.url}/group/nope/`)).status, 404);
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${server.url}/public-groups.json`)).status, 200);
});

test('--static with a directory that is not a web client is refused at start, saying why', async () => {
  const bad = await startServer({ args: ['--static', join(staticDir, 'third-party')] }).then(
    () => assert.fail('the server started'),
    (e: Error) => e,
  );
  assert.match(bad.message, /has no galene\.html, the page served at \/group\/<name>\//);
});

test('.status: what the client reads; locked and the count for public groups only (as Galène); .status.json redirects', async () => {
  const open = (await (await fetch(`${server.url}/group/open/.status`)).json()) as Record<string, unknown>;
  assert.deepEqual(open, { name: 'open', location: `${server.url}/group/open/`, endpoint: server.wsUrl, clientCount: 0 });
  const priv = (await (await fetch(`${server.url}/group/private/.status`)).json()) as Record<string, unknown>;
  assert.deepEqual(priv, { name: 'private', location: `${server.url}/group/private/`, endpoint: server.wsUrl });
  // mainpage.js: HEAD /group/<name>/.status.json
  const head = await fetch(`${server.url}/group/open/.status.json`, { method: 'HEAD', redirect: 'manual' });
  assert.equal(head.status, 308);
  assert.equal(head.headers.get('location'), '/group/open/.status');
  assert.equal((await fetch(`${server.url}/group/open/.status.json`, { method: 'HEAD' })).status, 200);
  assert.equal((await fetch(`${server.url}/group/nope/.status.json`, { method: 'HEAD' })).status, 404);
});

test("joined carries canChangePassword (writableGroups), and the client's change-password dialog works through /galene-api/", async () => {
  const c = await GaleneTestClient.connect(server.wsUrl);
  clients.push(c);
  const j = await c.join('private', 'alice', 'old-pw');
  assert.equal(j.kind, 'join');
  assert.equal(j.status.canChangePassword, true);
  assert.equal(j.status.clientCount, 1, 'members see the count');

  // change-password.js: setPassword(group, user, false, new1, old) → POST .password, text/plain, Basic user:old.
  const change = (user: string, old: string, next: string) =>
    fetch(`${server.url}/galene-api/v0/.groups/private/.users/${user}/.password`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain', Authorization: `Basic ${Buffer.from(`${user}:${old}`).toString('base64')}` },
      body: next,
    });
  assert.equal((await change('alice', 'wrong', 'x')).status, 401, 'the old password must be right');
  const r = await change('alice', 'old-pw', 'new-pw');
  assert.equal(r.status, 204, await r.text());
  const again = await GaleneTestClient.connect(server.wsUrl);
  clients.push(again);
  assert.equal((await again.join('private', 'alice', 'new-pw')).kind, 'join');
  const stale = await GaleneTestClient.connect(server.wsUrl);
  clients.push(stale);
  assert.equal((await stale.join('private', 'alice', 'old-pw')).kind, 'fail');
  // Only one's own password: bob's is not alice's to change.
  const other = await fetch(`${server.url}/galene-api/v0/.groups/private/.users/bob/.password`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain', Authorization: `Basic ${Buffer.from('alice:new-pw').toString('base64')}` },
    body: 'hijacked',
  });
  assert.equal(other.status, 401);
});
