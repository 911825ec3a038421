// The server as an operator and a browser meet it: HTTP endpoints, HTTPS
// with a generated certificate, group files edited on disk, the CLI, and a
// clean stop on SIGTERM/SIGINT.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { get } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { authenticateWithPassword, parseGroupDescription } from '../src/groups/index.ts';
import { GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'atrium.mjs');
const run = promisify(execFile);
let server: RunningServer;
const clients: GaleneTestClient[] = [];

before(async () => {
  server = await startServer({
    groups: {
      lobby: { public: true, displayName: 'The Lobby', description: 'Come in', 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      hidden: { 'wildcard-user': { password: { type: 'wildcard' } } },
      'team/standup': { public: true, users: { ann: { password: 'one', permissions: 'op' } } },
    },
  });
});

after(async () => {
  for (const c of clients) c.close();
  await server.stop();
});

async function connect(): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(server.wsUrl);
  clients.push(c);
  return c;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('.status has every field, with live counts and the endpoint', async () => {
  const c = await connect();
  await c.join('lobby', 'viewer', '');
  const s = (await (await fetch(`${server.url}/group/lobby/.status`)).json()) as Record<string, unknown>;
  assert.deepEqual(s, {
    name: 'lobby',
    location: `${server.url}/group/lobby/`,
    endpoint: server.wsUrl,
    displayName: 'The Lobby',
    description: 'Come in',
    clientCount: 1,
  });
  const sub = await fetch(`${server.url}/group/team/standup/.status`);
  assert.equal(sub.status, 200);
  assert.equal(((await sub.json()) as { name: string }).name, 'team/standup');
  const missing = await fetch(`${server.url}/group/nope/.status`);
  assert.equal(missing.status, 404);
  assert.match(((await missing.json()) as { message: string }).message, /no group called "nope"/);
});

test('/public-groups.json lists public groups only; the group page is HTML', async () => {
  const list = (await (await fetch(`${server.url}/public-groups.json`)).json()) as { name: string }[];
  assert.deepEqual(
    list.map((g) => g.name),
    ['lobby', 'team/standup'],
  );
  const page = await fetch(`${server.url}/group/lobby/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  // The web app when it is built, else a placeholder naming the group.
  assert.match(await page.text(), /id="app"|The Lobby/);
  const noSlash = await fetch(`${server.url}/group/lobby`, { redirect: 'manual' });
  assert.equal(noSlash.status, 301);
});

test('/healthz and /metrics report clients, groups, messages by type and errors by kind', async () => {
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  const c = await connect();
  await c.join('lobby', 'metric-user', '');
  c.chat('count me');
  c.send({ type: 'bogus' });
  await c.next((f) => f.type === 'usermessage' && f.kind === 'error');
  const text = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(text, /atrium_connected_clients\{dialect="galene"\} [1-9]/);
  assert.match(text, /atrium_groups [1-9]/);
  assert.match(text, /atrium_messages_total\{dialect="galene",type="chat"\} [1-9]/);
  assert.match(text, /atrium_errors_total\{dialect="galene",kind="unknown-type"\} [1-9]/);
  assert.match(text, /atrium_process_resident_memory_bytes/);
});

test('a group file edited on disk takes effect without a restart; a broken edit keeps the last good one', async () => {
  const probe = async (password: string) => {
    const c = await connect();
    const j = await c.join('team/standup', 'ann', password);
    c.close();
    return j.kind;
  };
  assert.equal(await probe('one'), 'join');
  await server.writeGroup('team/standup', { public: true, users: { ann: { password: 'two', permissions: 'op' } } });
  await waitFor('the new password', async () => ((await probe('two')) === 'join' ? true : undefined));
  assert.equal(await probe('one'), 'fail');

  await writeFile(join(server.groupsDir, 'team', 'standup.json'), '{ "users": { "ann": { "password": 3 ');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await probe('two'), 'join', 'the last good version still applies');

  await server.writeGroup('brand-new', { 'wildcard-user': { password: { type: 'wildcard' } } });
  await waitFor('the new group', async () => ((await fetch(`${server.url}/group/brand-new/.status`)).status === 200 ? true : undefined));
});

test('a deleted group file kicks its members and the group disappears', async () => {
  await server.writeGroup('doomed', { 'wildcard-user': { password: { type: 'wildcard' } } });
  await waitFor('doomed', async () => ((await fetch(`${server.url}/group/doomed/.status`)).status === 200 ? true : undefined));
  const c = await connect();
  assert.equal((await c.join('doomed', 'd', '')).kind, 'join');
  await rm(join(server.groupsDir, 'doomed.json'));
  const k = await c.next((f) => f.type === 'usermessage' && f.kind === 'kicked');
  assert.match(k.value, /deleted/);
  assert.equal((await fetch(`${server.url}/group/doomed/.status`)).status, 404);
});

test('atrium hash-password prints a definition that the group file accepts', async () => {
  for (const type of ['pbkdf2', 'bcrypt']) {
    const { stdout } = await run(process.execPath, [BIN, 'hash-password', '--type', type, 's3cret']);
    const def = JSON.parse(stdout);
    assert.equal(def.type, type);
    assert.ok(!stdout.includes('s3cret'));
    const desc = parseGroupDescription('g', 'groups/g.json', { users: { u: { password: def, permissions: 'present' } } });
    assert.ok(await authenticateWithPassword(desc, 'u', 's3cret'));
    assert.equal(await authenticateWithPassword(desc, 'u', 'wrong'), null);
  }
  for (const cmd of ['serve', 'hash-password', 'token']) {
    const { stdout } = await run(process.execPath, [BIN, cmd, '--help']);
    assert.match(stdout, new RegExp(`Usage: atrium ${cmd}`));
  }
  await assert.rejects(run(process.execPath, [BIN, 'serve', '--listen', 'nonsense']), /--listen must be HOST:PORT/);
  await assert.rejects(run(process.execPath, [BIN, 'frobnicate']), /unknown command "frobnicate"/);
});

test('without --insecure the server speaks HTTPS with a generated self-signed certificate it keeps', async () => {
  const root = await mkdtemp(join(tmpdir(), 'atrium-tls-'));
  const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--data', join(root, 'data'), '--groups', join(root, 'groups'), '--log-level', 'error'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const url = await waitFor('the TLS server', async () => /Atrium is running at (https:\/\/\S+?)\/ /.exec(out)?.[1], 20_000);
  const body = await new Promise<string>((resolve, reject) => {
    get(`${url}/group/public/.status`, { rejectUnauthorized: false }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  const status = JSON.parse(body) as { endpoint: string; name: string };
  assert.equal(status.name, 'public', 'a fresh install has the default public group');
  assert.ok(status.endpoint.startsWith('wss://'));
  assert.ok(existsSync(join(root, 'data', 'cert.pem')) && existsSync(join(root, 'data', 'key.pem')));
  assert.match(await readFile(join(root, 'groups', 'public.json'), 'utf8'), /wildcard/);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGINT');
  assert.equal(await exited, 0, 'SIGINT stops the server cleanly');
  await rm(root, { recursive: true, force: true });
});

test('SIGTERM closes member connections and exits 0', async () => {
  const s = await startServer({ groups: { g: { 'wildcard-user': { password: { type: 'wildcard' } } } } });
  const c = await GaleneTestClient.connect(s.wsUrl);
  assert.equal((await c.join('g', 'u', '')).kind, 'join');
  const code = await s.stop();
  assert.equal(code, 0);
  const closed = await c.closed;
  assert.ok(closed.code === 4001 || closed.code === 1001 || closed.code === 1000 || closed.code === 1006, `closed with ${closed.code}`);
  const warn = c.all('usermessage', 'warning');
  assert.ok(
    warn.some((w) => /shutting down/.test(w.value)),
    'members are told the server is stopping',
  );
});
