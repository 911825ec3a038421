// Three Atrium nodes and a real redis-server on loopback, signalling only:
// the rules of a cluster, checked with the protocols' own clients over real
// sockets. A group lives on one node and every join, through any node, ends
// in it (Galène, Camus, RTCPool over WebSocket and socket.io); a definition
// changed through one node's admin API takes effect on another; the admin
// API reaches members on another node; a token made on one node opens the
// group through every node, and once revoked through none; when the owner is killed its group
// goes to a survivor and Redis keeps no trace of the dead node; a drained
// node empties and exits; with Redis gone a node goes on alone, and when
// Redis is back it registers again without a restart. (The multi-host test
// beside this one does the same through HAProxy with browsers and media.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { until } from '../support/browser.ts';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { CamusTestClient, PoolTestClient } from '../mesh/support.ts';
import { type Service, randomPort, startRedis } from './support/services.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'atrium.mjs');
const OPEN = { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } };
const ADMIN = { user: 'root', password: 'rootpw' };
const admin = { authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` };

let redisPort = 0;
let redis: Service;
let db: Redis;
const nodes = new Map<string, RunningServer>();
const clients: { close(): void }[] = [];

async function startNode(id: string): Promise<RunningServer> {
  const s = await startServer({
    startTimeoutMs: 240_000,
    groups: { g: OPEN, other: OPEN },
    config: { users: { [ADMIN.user]: { password: ADMIN.password, permissions: 'admin' } }, writableGroups: true },
    args: [
      '--redis',
      `redis://127.0.0.1:${redisPort}`,
      '--node-id',
      id,
      '--public-url',
      `https://lb.example/node/${id}`,
      '--region',
      `r-${id}`,
      ...(id === 'n2' ? ['--label', 'gpu', '--label', 'eu'] : []),
      '--no-media',
      '--drain-timeout',
      '300',
    ],
  });
  nodes.set(id, s);
  return s;
}

const node = (id: string) => nodes.get(id)!;

async function clusterView(id: string): Promise<{ redis: string; nodes: { id: string; draining: boolean; labels?: string[]; groups: Record<string, { clients: number }> }[] }> {
  const r = await fetch(`${node(id).url}/galene-api/v0/.cluster`, { headers: admin });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()) as Awaited<ReturnType<typeof clusterView>>;
}

/** The node whose record lists the group (as a node's snapshot shows it). */
async function ownerSeenBy(id: string, group: string): Promise<string | undefined> {
  const holders = (await clusterView(id)).nodes.filter((n) => n.groups[group] !== undefined).map((n) => n.id);
  assert.ok(holders.length <= 1, `group ${group} is on one node at most, not on ${holders.join(', ')}`);
  return holders[0];
}

/** Creates a group through one node's admin API, open to anyone (the wildcard user), as an administrator would. */
async function defineGroup(via: string, name: string, definition: Record<string, unknown>): Promise<void> {
  const base = `${node(via).url}/galene-api/v0/.groups/${name}`;
  const steps: [string, string, unknown, number][] = [
    ['PUT', '', definition, 201],
    ['PUT', '/.wildcard-user', { permissions: 'present' }, 201],
    ['PUT', '/.wildcard-user/.password', { type: 'wildcard' }, 204],
  ];
  for (const [method, path, body, status] of steps) {
    const r = await fetch(`${base}${path}`, { method, headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, status, `${method} ${name}${path}: ${await r.text()}`);
  }
  // Pushed through Redis to every node (a second at most on an idle machine): the same file, so the same ETag.
  const etag = (await fetch(base, { headers: admin })).headers.get('etag');
  await until(`every node has the whole definition of ${name}`, async () => {
    for (const s of nodes.values()) if ((await fetch(`${s.url}/galene-api/v0/.groups/${name}`, { headers: admin })).headers.get('etag') !== etag) return false;
    return true;
  });
}

async function galene(id: string, group: string, username: string): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(node(id).wsUrl);
  clients.push(c);
  const joined = await c.join(group, username, 'x');
  assert.equal(joined.kind, 'join', `${username} through ${id}: ${JSON.stringify(joined)}`);
  return c;
}

before(async () => {
  redisPort = randomPort();
  redis = await startRedis('127.0.0.1', redisPort);
  db = new Redis(redisPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  db.on('error', () => {});
  await db.connect();
  await Promise.all(['n1', 'n2', 'n3'].map((id) => startNode(id)));
  await until('three nodes registered', async () => (await db.smembers('atrium:nodes')).length === 3, 10_000);
});

after(async () => {
  for (const c of clients) c.close();
  for (const s of nodes.values()) await s.stop();
  db?.disconnect();
  await redis?.stop();
});

test('a group lives on one node: .status on any node names it, and joins through every node end in the one group', async () => {
  const status = (await (await fetch(`${node('n3').url}/group/g/.status`)).json()) as { endpoint: string };
  const owner = /\/node\/(n\d)\/ws$/.exec(status.endpoint)?.[1];
  assert.ok(owner, `the endpoint names the owner's path: ${status.endpoint}`);
  assert.equal(await db.get('atrium:owner:g'), owner, 'Redis holds the lease');
  for (const id of ['n1', 'n2']) {
    const again = (await (await fetch(`${node(id).url}/group/g/.status`)).json()) as { endpoint: string };
    assert.equal(again.endpoint, status.endpoint, `${id} gives the same endpoint`);
  }

  const a = await galene('n1', 'g', 'alice');
  const b = await galene('n2', 'g', 'bob');
  const c = await galene('n3', 'g', 'carol');
  for (const [who, client] of [
    ['alice', a],
    ['bob', b],
    ['carol', c],
  ] as const) {
    await until(`${who} sees the three members`, async () => new Set(client.all('user', 'add').map((f) => f.username)).size === 3, 5000);
  }
  b.chat('hello from bob, through n2');
  for (const client of [a, c]) assert.equal((await client.next((f) => f.type === 'chat', 5000, 'chat')).value, 'hello from bob, through n2');
  await until(
    'the owner reports the group with its three members',
    async () => (await ownerSeenBy('n2', 'g')) === owner && (await clusterView('n1')).nodes.find((n) => n.id === owner)?.groups.g?.clients === 3,
    5000,
  );
  for (const x of [a, b, c]) assert.deepEqual(x.violations, []);
});

test('Camus rooms and RTCPool pools (WebSocket and socket.io) follow the same rule', async () => {
  const room = (id: string) => `${node(id).url.replace(/^http/, 'ws')}/room/lobby/ws`;
  const x = await CamusTestClient.connect(room('n1'));
  const y = await CamusTestClient.connect(room('n3'));
  clients.push(x, y);
  await until('both Camus clients in one room', async () => {
    const info = await y.roomInfo();
    return (info.data?.clients ?? []).length === 2 && info;
  });
  const offer = { type: 'offer', sdp: 'v=0\r\n' };
  x.send({ receiver: y.id, type: 'offer', data: offer });
  assert.deepEqual(await y.next((f) => f.type === 'offer', 'offer'), { sender: x.id, receiver: y.id, type: 'offer', data: offer });
  assert.equal(x.all('greeting').length + y.all('greeting').length, 2, `one greeting each, from the room's node: ${JSON.stringify([x.received, y.received])}`);
  assert.deepEqual([...x.violations, ...y.violations], []);

  const p = await PoolTestClient.connect(node('n2').url, 'websocket');
  const q = await PoolTestClient.connect(node('n3').url, 'socket.io');
  const r = await PoolTestClient.connect(node('n1').url, 'socket.io');
  clients.push(p, q, r);
  assert.equal((await p.join('pool1')).type, 'rtc:joined');
  assert.equal((await q.join('pool1')).type, 'rtc:joined');
  assert.equal((await r.join('pool1')).type, 'rtc:joined');
  assert.deepEqual(await p.next('rtc:peer', (d) => d.id === q.id), { id: q.id, uid: q.id });
  await p.next('rtc:peer', (d) => d.id === r.id);
  const sdp = { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n' };
  q.send('rtc:sdp', { to: p.id, description: sdp });
  assert.deepEqual(await p.next('rtc:sdp'), { peer: q.id, description: sdp }, 'signalling relayed between endpoints on different nodes');
  const lobby = await until('the room is reported by its node', () => ownerSeenBy('n1', 'lobby'));
  const pool = await until('the pool is reported by its node', () => ownerSeenBy('n1', 'pool1'));
  const holders = new Set([lobby, pool]);

  // A description set through any node's admin API reaches the peers on the pool's node.
  const via = ['n1', 'n2', 'n3'].find((id) => id !== (holders.size === 1 ? [...holders][0] : undefined)) ?? 'n1';
  const put = await fetch(`${node(via).url}/galene-api/v0/.groups/pool1/.clients/${q.id}/.description`, {
    method: 'PUT',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'speaker' }),
  });
  assert.equal(put.status, 204, await put.text());
  assert.deepEqual((await p.next('rtc:describe', (d) => d.id === q.id)).description, { role: 'speaker' });
});

test('a group whose file names labels is placed on the node that has them, whichever node the join goes through', async () => {
  assert.deepEqual((await clusterView('n1')).nodes.find((n) => n.id === 'n2')?.labels, ['gpu', 'eu'], '.cluster shows each node’s labels');
  // Labels come before the region: r-n3 is n3's region, but only n2 has both labels.
  await defineGroup('n1', 'render', { labels: ['gpu', 'eu'], region: 'r-n3' });
  await galene('n3', 'render', 'ivy');
  assert.equal(await db.get('atrium:owner:render'), 'n2');
  await galene('n1', 'render', 'jack');
  await until('n3 sees render on n2', async () => (await ownerSeenBy('n3', 'render')) === 'n2', 5000);
  // A label no live node has does not make the group unreachable: it is placed as if it had none (in its region here).
  await defineGroup('n2', 'nowhere', { labels: ['quantum'], region: 'r-n1' });
  await galene('n2', 'nowhere', 'kim');
  assert.equal(await db.get('atrium:owner:nowhere'), 'n1');
});

test('a group defined through one node’s admin API is joinable through another at once', async () => {
  await defineGroup('n1', 'fresh', { displayName: 'Fresh' });
  const seen = await until('n3 knows the new group', async () => {
    const r = await fetch(`${node('n3').url}/group/fresh/.status`);
    return r.ok && ((await r.json()) as { displayName?: string });
  });
  assert.equal(seen.displayName, 'Fresh');
  await galene('n3', 'fresh', 'dana');
  const del = await fetch(`${node('n2').url}/galene-api/v0/.groups/fresh`, { method: 'DELETE', headers: admin });
  assert.equal(del.status, 204, await del.text());
  await until('n1 forgets it', async () => (await fetch(`${node('n1').url}/group/fresh/.status`)).status === 404);
  const stats = await fetch(`${node('n2').url}/galene-api/v0/.stats`, { headers: admin });
  const names = ((await stats.json()) as { name: string }[]).map((s) => s.name);
  assert.ok(names.includes('g') && names.includes('pool1'), `.stats on any node covers every node: ${names.join(', ')} ${JSON.stringify((await clusterView('n2')).nodes)}`);
});

test('a token made on one node opens the group through every node; revoked on another, it opens it nowhere', async () => {
  const owner = (await db.get('atrium:owner:g')) ?? 'n1';
  const maker = ['n1', 'n2', 'n3'].find((id) => id !== owner)!;
  const made = await fetch(`${node(maker).url}/galene-api/v0/.groups/g/.tokens/`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'invited', permissions: ['present'], expires: new Date(Date.now() + 3600_000).toISOString() }),
  });
  assert.equal(made.status, 201, await made.text());
  const token = decodeURIComponent(made.headers.get('location')!);
  // At once, through each node (the owner checks it: a connection reaching another node is handed there).
  for (const id of ['n1', 'n2', 'n3']) {
    const c = await GaleneTestClient.connect(node(id).wsUrl);
    clients.push(c);
    const joined = await c.join('g', undefined, undefined, { token });
    assert.equal(joined.kind, 'join', `the token made on ${maker} works through ${id}: ${JSON.stringify(joined)}`);
    assert.equal(joined.username, 'invited');
    c.close();
  }
  await until('every node lists it', async () => {
    for (const s of nodes.values()) {
      const r = await fetch(`${s.url}/galene-api/v0/.groups/g/.tokens/`, { headers: admin });
      if (!((await r.json()) as string[]).includes(token)) return false;
    }
    return true;
  });
  const revoker = ['n1', 'n2', 'n3'].find((id) => id !== maker)!;
  const del = await fetch(`${node(revoker).url}/galene-api/v0/.groups/g/.tokens/${encodeURIComponent(token)}`, { method: 'DELETE', headers: admin });
  assert.equal(del.status, 204, await del.text());
  for (const id of ['n1', 'n2', 'n3']) {
    const c = await GaleneTestClient.connect(node(id).wsUrl);
    clients.push(c);
    const refused = await c.join('g', undefined, undefined, { token });
    assert.equal(refused.kind, 'fail', `revoked on ${revoker}, refused through ${id}: ${JSON.stringify(refused)}`);
    c.close();
  }
  assert.equal(JSON.parse((await db.hget('atrium:tokens', token))!).removed > 0, true, 'Redis keeps a tombstone, so a node that was away drops it too');
});

// The pool of the next three tests: on the node the kill test kills (its region is that node's).
let stageOwner = '';

test('an RTCPool description set through another node reaches the pool’s peers and is kept in Redis for the username', async () => {
  stageOwner = (await db.get('atrium:owner:g'))!;
  await defineGroup('n1', 'stage', { region: `r-${stageOwner}` });
  const others = ['n1', 'n2', 'n3'].filter((id) => id !== stageOwner);
  const ann = await PoolTestClient.connect(node(others[0]!).url, 'websocket', { username: 'ann' });
  const ben = await PoolTestClient.connect(node(others[1]!).url, 'socket.io', { username: 'ben' });
  clients.push(ann, ben);
  assert.equal((await ann.join('stage')).type, 'rtc:joined');
  assert.equal((await ben.join('stage')).type, 'rtc:joined');
  assert.equal(await db.get('atrium:owner:stage'), stageOwner, 'the pool is on the node of its region');
  await ann.next('rtc:peer', (d) => d.id === ben.id);
  // Set through a node that does not hold the pool (it passes the request to the owner).
  const put = await fetch(`${node(others[1]!).url}/galene-api/v0/.groups/stage/.clients/${ann.id}/.description`, {
    method: 'PUT',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ role: 'speaker', seat: 3 }),
  });
  assert.equal(put.status, 204, await put.text());
  assert.deepEqual((await ben.next('rtc:describe', (d) => d.id === ann.id)).description, { role: 'speaker', seat: 3 });
  assert.deepEqual(JSON.parse((await db.hget('atrium:descriptions:stage', 'ann')) ?? 'null'), { role: 'speaker', seat: 3 }, 'kept in Redis under the username');
  assert.ok((await db.pttl('atrium:descriptions:stage')) > 0, 'with an expiry: Redis keeps nothing of a group nobody uses');
  assert.deepEqual([...ann.violations, ...ben.violations], []);
});

test('the owner is killed: its group is placed on a survivor, clients get back in, Redis keeps no trace of it', async () => {
  const owner = (await db.get('atrium:owner:g'))!;
  const survivor = ['n1', 'n2', 'n3'].find((id) => id !== owner)!;
  node(owner).process.kill('SIGKILL');
  await new Promise((r) => node(owner).process.once('exit', r));
  nodes.delete(owner);
  // A client reconnects through a survivor: its join waits while the dead node's lease is stale, then lands.
  const back = await GaleneTestClient.connect(node(survivor).wsUrl);
  clients.push(back);
  back.send({ type: 'join', kind: 'join', group: 'g', username: 'eve', password: 'x' });
  const joined = await back.next((f) => f.type === 'joined' && f.kind !== 'change', 15_000, 'joined after the owner died');
  assert.equal(joined.kind, 'join', JSON.stringify(joined));
  const next = await db.get('atrium:owner:g');
  assert.ok(next !== null && next !== owner, `a survivor holds g now (${next})`);
  await until(
    'no trace of the dead node in Redis',
    async () => {
      const [members, record, keys] = await Promise.all([db.smembers('atrium:nodes'), db.get(`atrium:node:${owner}`), db.keys('atrium:owner:*')]);
      const stale = (await Promise.all(keys.map((k) => db.get(k)))).filter((v) => v === owner);
      return !members.includes(owner) && record === null && stale.length === 0;
    },
    15_000,
  );
});

test('the pool’s node died: its peers come back through a survivor and the description set before is there again', async () => {
  assert.ok(!nodes.has(stageOwner), 'the kill test killed the pool’s node');
  const [s1, s2] = [...nodes.keys()];
  const ann = await PoolTestClient.connect(node(s1!).url, 'socket.io', { username: 'ann' });
  const ben = await PoolTestClient.connect(node(s2!).url, 'websocket', { username: 'ben' });
  clients.push(ann, ben);
  assert.equal((await ann.join('stage')).type, 'rtc:joined');
  assert.equal((await ben.join('stage')).type, 'rtc:joined');
  const owner = await db.get('atrium:owner:stage');
  assert.ok(owner !== null && owner !== stageOwner && nodes.has(owner), `a survivor holds the pool (${owner})`);
  // Ben hears of ann's description in rtc:joined (she was described before he came) or in an rtc:describe.
  await until('ben sees the description ann had before her node died', async () => {
    const atJoin = ben.all('rtc:joined').some((d) => JSON.stringify((d.descriptions as Record<string, unknown> | undefined)?.[ann.id]) === JSON.stringify({ role: 'speaker', seat: 3 }));
    const later = ben.all('rtc:describe').some((d) => d.id === ann.id && JSON.stringify(d.description) === JSON.stringify({ role: 'speaker', seat: 3 }));
    return atJoin || later;
  });
  // And the admin API of any node shows it on ann's new connection.
  const got = await fetch(`${node(s2!).url}/galene-api/v0/.groups/stage/.clients/${ann.id}/.description`, { headers: admin });
  assert.equal(got.status, 200);
  assert.deepEqual(await got.json(), { role: 'speaker', seat: 3 });
  // Removed through the admin API, it is gone from Redis too (and ben is told).
  const del = await fetch(`${node(s1!).url}/galene-api/v0/.groups/stage/.clients/${ann.id}/.description`, { method: 'DELETE', headers: admin });
  assert.equal(del.status, 204, await del.text());
  await ben.next('rtc:describe', (d) => d.id === ann.id && d.description === null);
  assert.equal(await db.hget('atrium:descriptions:stage', 'ann'), null);
  assert.deepEqual([...ann.violations, ...ben.violations], []);
});

test('a drained node takes no new group, serves its group until it empties, then exits', async () => {
  // The earlier tests' clients leave, so that the drained node's one member decides when it is empty.
  for (const c of clients.splice(0)) c.close();
  const [d, other] = [...nodes.keys()];
  const held = `drain-${d}`;
  // A group of d's region is placed on d.
  await defineGroup(other!, held, { region: `r-${d}` });
  const member = await galene(other!, held, 'frank');
  assert.equal(await db.get(`atrium:owner:${held}`), d);

  // `atrium ctl drain --wait`, as an operator runs it, follows the node until it exits.
  const ctl = spawn(process.execPath, [BIN, 'ctl', '--server', node(d!).url, '--admin-username', ADMIN.user, '--admin-password', ADMIN.password, 'drain', '--wait'], {
    env: { ...process.env, XDG_CONFIG_HOME: node(d!).dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let said = '';
  ctl.stdout.on('data', (c) => (said += c));
  ctl.stderr.on('data', (c) => (said += c));
  const ctlDone = new Promise<number | null>((resolve) => ctl.once('close', resolve));
  // atrium ctl compiles itself through tsx first: slow on a loaded machine.
  await until('ctl says the node drains', async () => said.includes('is draining'), 120_000);
  assert.equal((await fetch(`${node(d!).url}/readyz`)).status, 503, '/readyz takes the node out of the load balancer');
  assert.equal((await fetch(`${node(d!).url}/healthz`)).status, 200, '/healthz: still alive');
  await until('the others see it draining', async () => (await clusterView(other!)).nodes.find((n) => n.id === d)?.draining === true, 5000);
  // A new group asked through the draining node goes elsewhere; its own group still works.
  const st = (await (await fetch(`${node(d!).url}/group/other/.status`)).json()) as { endpoint: string };
  assert.ok(!st.endpoint.includes(`/node/${d}/`), `a new group is not placed on the draining node: ${st.endpoint}`);
  member.chat('still served');
  assert.equal((await member.next((f) => f.type === 'chat', 15_000, 'chat')).value, 'still served');
  const exited = new Promise<number | null>((resolve) => node(d!).process.once('exit', resolve));
  await until('ctl shows the group still served', async () => said.includes(`${held} (1)`), 30_000).catch((e: Error) => {
    throw new Error(`${e.message}; atrium ctl said: ${said}`);
  });
  member.close();
  assert.equal(await exited, 0, 'the node exits once its group is empty');
  nodes.delete(d!);
  assert.equal(await ctlDone, 0, said);
  assert.match(said, /has exited/);
});

test('Redis stops: the node serves on alone and says degraded; Redis comes back and the node registers again', async () => {
  const [id] = [...nodes.keys()];
  const s = node(id!);
  const alice = await galene(id!, 'g', 'gina');
  await redis.stop();
  await until('/readyz says degraded', async () => {
    const r = await fetch(`${s.url}/readyz`);
    return r.status === 200 && ((await r.json()) as { status: string }).status === 'degraded';
  });
  alice.chat('no Redis, still here');
  assert.equal((await alice.next((f) => f.type === 'chat', 5000, 'chat')).value, 'no Redis, still here');
  const fresh = await galene(id!, 'other', 'hank');
  fresh.chat('placed alone');
  assert.equal((await fresh.next((f) => f.type === 'chat', 5000, 'chat')).value, 'placed alone');

  redis = await startRedis('127.0.0.1', redisPort);
  await until('/readyz says ready', async () => ((await (await fetch(`${s.url}/readyz`)).json()) as { status: string }).status === 'ready', 15_000);
  await until(
    'the node and its groups are in Redis again',
    async () => {
      const [members, g, other] = await Promise.all([db.smembers('atrium:nodes'), db.get('atrium:owner:g'), db.get('atrium:owner:other')]);
      return members.includes(id!) && g !== null && nodes.has(g) && other === id;
    },
    15_000,
  );
  await until('the group definitions are in Redis again', async () => (await db.hkeys('atrium:groupdefs')).includes('g'), 15_000);
  assert.equal(s.process.exitCode, null, 'nothing crashed');
});
