// RTCPool's "ssp v2" against a real server process, over both transports
// (raw WebSocket at /pool/ws and socket.io at /socket.io/): joining, peer
// notices, relaying with the sender set by the server, close on leave,
// descriptions from token claims and from the admin API, refusals, and bad
// events answered with rtc:error without disturbing anyone else.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { hashPassword } from '../../src/groups/index.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { CamusTestClient, PoolTestClient, type PoolTransportName, isRefusal, sleep } from './support.ts';

let server: RunningServer;
const open: PoolTestClient[] = [];
const hsSecret = new TextEncoder().encode('exactly thirty-two bytes, secret');
const adminAuth = `Basic ${Buffer.from('root:rootpw').toString('base64')}`;

before(async () => {
  const anyone = { 'allow-anonymous': true, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } };
  server = await startServer({
    config: { users: { root: { password: await hashPassword('rootpw'), permissions: 'admin' } } },
    groups: {
      solo: { ...anyone, 'max-clients': 1 },
      signed: { authKeys: [{ kty: 'oct', alg: 'HS256', kid: 'hs', k: Buffer.from(hsSecret).toString('base64url') }] },
    },
  });
});
after(async () => {
  for (const c of open) c.close();
  await server.stop();
});

async function endpoint(transport: PoolTransportName, opts: { token?: string; username?: string } = {}): Promise<PoolTestClient> {
  const c = await PoolTestClient.connect(server.url, transport, opts);
  open.push(c);
  return c;
}

async function joined(transport: PoolTransportName, pool: string): Promise<PoolTestClient> {
  const c = await endpoint(transport);
  const e = await c.join(pool);
  assert.equal(e.type, 'rtc:joined', JSON.stringify(e));
  return c;
}

function setDescription(pool: string, id: string, description: unknown): Promise<Response> {
  return fetch(`${server.url}/galene-api/v0/.groups/${pool}/.clients/${id}/.description`, {
    method: 'PUT',
    headers: { authorization: adminAuth, 'content-type': 'application/json' },
    body: JSON.stringify(description),
  });
}

for (const transport of ['websocket', 'socket.io'] as const) {
  describe(`over ${transport}`, () => {
    const pool = (name: string) => `${name}-${transport === 'websocket' ? 'ws' : 'sio'}`;

    test('join: rtc:joined with the peers and their descriptions; the others get rtc:peer', async () => {
      const p = pool('join');
      const a = await endpoint(transport);
      const ja = await a.join(p);
      assert.equal(ja.type, 'rtc:joined');
      assert.match(ja.data.client_id, /^[0-9a-f-]{36}$/);
      assert.deepEqual(ja.data.peers, []);
      assert.equal(ja.data.pool, p);
      const b = await endpoint(transport);
      const jb = await b.join(p);
      assert.deepEqual(jb.data.peers, [a.id]);
      assert.deepEqual(jb.data.descriptions, { [a.id]: null, [b.id]: null });
      assert.deepEqual(await a.next('rtc:peer'), { id: b.id, uid: b.id });
      // Joining twice on one connection is refused.
      const again = await b.join(p);
      assert.equal(again.type, 'rtc:error');
      assert.equal(again.data.reason, 'already-joined');
      assert.deepEqual([...a.violations, ...b.violations], []);
    });

    test('sdp and candidates go to the one peer named, with peer/from set by the server', async () => {
      const p = pool('relay');
      const [a, b, c] = [await joined(transport, p), await joined(transport, p), await joined(transport, p)];
      const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n' };
      a.send('rtc:sdp', { to: b.id, description: offer, peer: c.id });
      assert.deepEqual(await b.next('rtc:sdp'), { peer: a.id, description: offer });
      const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
      b.send('rtc:candidate', { for: a.id, from: c.id, candidate });
      assert.deepEqual(await a.next('rtc:candidate'), { from: b.id, candidate });
      b.send('rtc:candidate', { for: a.id, from: b.id, candidate: null });
      assert.deepEqual(await a.next('rtc:candidate', (d) => d.candidate === null), { from: b.id, candidate: null });
      await a.sync();
      await b.sync();
      await c.sync();
      assert.deepEqual(c.all('rtc:sdp'), []);
      assert.deepEqual(c.all('rtc:candidate'), []);
      // Addressed to oneself, or to someone not in the pool: refused.
      a.send('rtc:sdp', { to: a.id, description: offer });
      assert.equal((await a.next('rtc:error')).reason, 'bad-message');
      const stranger = await joined(transport, pool('elsewhere'));
      stranger.send('rtc:sdp', { to: a.id, description: offer });
      const refused = await stranger.next('rtc:error');
      assert.equal(refused.reason, 'no-such-user');
      await a.sync();
      assert.equal(a.all('rtc:sdp').length, 0);
      assert.deepEqual([...a.violations, ...b.violations, ...c.violations, ...stranger.violations], []);
    });

    test('leaving: the others get rtc:close with id and uid', async () => {
      const p = pool('leave');
      const a = await joined(transport, p);
      const b = await joined(transport, p);
      await a.next('rtc:peer');
      b.close();
      assert.deepEqual(await a.next('rtc:close'), { id: b.id, uid: b.id });
    });

    test('descriptions set through the admin API are pushed to the peers as rtc:describe', async () => {
      const p = pool('describe');
      const a = await joined(transport, p);
      const b = await joined(transport, p);
      const put = await setDescription(p, b.id, { role: 'speaker', name: 'Bea' });
      assert.equal(put.status, 204, await put.text());
      assert.deepEqual(await a.next('rtc:describe'), { id: b.id, uid: b.id, description: { role: 'speaker', name: 'Bea' } });
      const got = await fetch(`${server.url}/galene-api/v0/.groups/${p}/.clients/${b.id}/.description`, { headers: { authorization: adminAuth } });
      assert.deepEqual(await got.json(), { role: 'speaker', name: 'Bea' });
      const list = await fetch(`${server.url}/galene-api/v0/.groups/${p}/.clients/`, { headers: { authorization: adminAuth } });
      assert.deepEqual(((await list.json()) as { id: string }[]).map((m) => m.id).sort(), [a.id, b.id].sort());
      // A newcomer learns it with rtc:joined.
      const c = await joined(transport, p);
      assert.deepEqual(c.all('rtc:joined')[0]!.descriptions[b.id], { role: 'speaker', name: 'Bea' });
      // The same description again changes nothing; removing it is pushed as null.
      assert.equal((await setDescription(p, b.id, { role: 'speaker', name: 'Bea' })).status, 204);
      const del = await fetch(`${server.url}/galene-api/v0/.groups/${p}/.clients/${b.id}/.description`, { method: 'DELETE', headers: { authorization: adminAuth } });
      assert.equal(del.status, 204);
      assert.deepEqual(await a.next('rtc:describe'), { id: b.id, uid: b.id, description: null });
      await b.sync();
      assert.equal(b.all('rtc:describe').length, 0, 'an endpoint is not told its own description');
      // Only administrators, only objects, only live clients.
      assert.equal((await fetch(`${server.url}/galene-api/v0/.groups/${p}/.clients/${b.id}/.description`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401);
      assert.equal((await setDescription(p, b.id, [1, 2])).status, 400);
      assert.equal((await setDescription(p, 'no-such-client', {})).status, 404);
      await a.sync();
      assert.equal(a.all('rtc:describe').length, 2);
    });

    test('a pool refuses a joiner when its group file says it is full', async () => {
      const first = await endpoint(transport);
      assert.equal((await first.join('solo')).type, 'rtc:joined');
      const second = await endpoint(transport);
      const e = await second.join('solo');
      assert.equal(e.type, 'rtc:error');
      assert.equal(e.data.reason, 'too-many-clients');
      assert.match(e.data.message, /solo/);
      first.close();
      await first.closed;
      await sleep(50);
      const third = await endpoint(transport);
      assert.equal((await third.join('solo')).type, 'rtc:joined');
      third.close();
    });

    test('a signed token lets a client in and its description claim is what peers see', async () => {
      const token = (sub: string, description: unknown) =>
        new SignJWT({ permissions: ['present'], description })
          .setProtectedHeader({ alg: 'HS256', kid: 'hs' })
          .setSubject(sub)
          .setAudience(`${server.url}/group/signed/`)
          .setIssuedAt()
          .setExpirationTime('1m')
          .sign(hsSecret);
      const anonymous = await endpoint(transport);
      assert.equal((await anonymous.join('signed')).type, 'rtc:error');
      const a = await endpoint(transport, { token: await token('ann', { role: 'host' }) });
      const ja = await a.join('signed');
      assert.equal(ja.type, 'rtc:joined', JSON.stringify(ja));
      assert.deepEqual(ja.data.descriptions[a.id], { role: 'host' });
      const b = await endpoint(transport, { token: await token('ben', { role: 'guest' }) });
      const jb = await b.join('signed');
      assert.deepEqual(jb.data.descriptions[a.id], { role: 'host' });
      assert.deepEqual(await a.next('rtc:peer'), { id: b.id, uid: b.id });
      assert.deepEqual(await a.next('rtc:describe'), { id: b.id, uid: b.id, description: { role: 'guest' } });
      const bad = await endpoint(transport, { token: await token('bad', 'not an object') });
      assert.equal((await bad.join('signed')).data.reason, 'not-authorised');
      a.close();
      b.close();
    });

    test('bad events get rtc:error and disturb nobody', async () => {
      const p = pool('bad');
      const a = await joined(transport, p);
      const b = await joined(transport, p);
      await a.next('rtc:peer');
      const events: [string, unknown][] = [
        ['rtc:sdp', { to: b.id }],
        ['rtc:sdp', { to: b.id, description: { type: 'bogus', sdp: '' } }],
        ['rtc:sdp', 'not an object'],
        ['rtc:candidate', { candidate: { candidate: 'x' } }],
        ['rtc:candidate', { for: b.id, candidate: { candidate: 42 } }],
        ['rtc:join', {}],
        ['rtc:offers', { [b.id]: 'v=0' }],
        ['rtc:sdp', { to: b.id, description: { type: 'offer', sdp: 'x'.repeat(200_000) } }],
      ];
      for (const [type, data] of events) {
        a.send(type, data);
        const e = await a.next('rtc:error');
        assert.equal(typeof e.message, 'string');
        assert.ok(['bad-message', 'unknown-type', 'already-joined', 'too-large'].includes(e.reason), `${type}: ${e.reason}`);
      }
      if (transport === 'websocket') {
        for (const raw of ['not json', '[]', '{"type":"rtc:sdp"}', '{"data":{}}']) {
          a.sendRaw(raw);
          assert.equal((await a.next('rtc:error')).reason.startsWith('bad'), true);
        }
        a.sendRaw(Buffer.from([0, 1, 2]), true);
        assert.equal((await a.next('rtc:error')).reason, 'bad-message');
      }
      // a is still in the pool and can still talk to b; b saw nothing else.
      const offer = { type: 'offer', sdp: 'v=0\r\n' };
      a.send('rtc:sdp', { to: b.id, description: offer });
      assert.deepEqual(await b.next('rtc:sdp'), { peer: a.id, description: offer });
      await b.sync();
      assert.deepEqual(b.all('rtc:error'), []);
      assert.deepEqual([...a.violations, ...b.violations], []);
    });
  });
}

test('websocket and socket.io endpoints share a pool; Camus clients of a same-named room are not peers', async () => {
  const ws = await joined('websocket', 'mixed');
  const sio = await joined('socket.io', 'mixed');
  assert.deepEqual(await ws.next('rtc:peer'), { id: sio.id, uid: sio.id });
  const answer = { type: 'answer', sdp: 'v=0\r\n' };
  sio.send('rtc:sdp', { to: ws.id, description: answer });
  assert.deepEqual(await ws.next('rtc:sdp'), { peer: sio.id, description: answer });

  const camus = await CamusTestClient.connect(`${server.url.replace(/^http/, 'ws')}/room/mixed/ws`);
  const info = await camus.roomInfo();
  assert.deepEqual(
    info.data.clients.map((c: { id: string }) => c.id),
    [camus.id],
  );
  camus.send({ receiver: ws.id, type: 'offer', data: { type: 'offer', sdp: 'v=0' } });
  assert.equal((await camus.next(isRefusal, 'refusal')).data.error, 'no-such-user');
  await ws.sync();
  assert.equal(ws.all('rtc:peer').length, 1);
  // Metrics carry the dialect.
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /atrium_connected_clients\{dialect="camus"\} [1-9]/);
  assert.match(metrics, /atrium_connected_clients\{dialect="rtcpool"\} [1-9]/);
  assert.match(metrics, /atrium_messages_total\{dialect="rtcpool",type="rtc:sdp"\} [1-9]/);
  assert.match(metrics, /atrium_messages_total\{dialect="camus",type="get-room-info"\} [1-9]/);
  assert.match(metrics, /atrium_errors_total\{dialect="rtcpool",kind="unknown-type"\} [1-9]/);
  camus.close();
});

test('rate limits: a burst over the limit is dropped with one rtc:error, and the endpoint stays', async () => {
  const a = await joined('websocket', 'flood');
  const b = await joined('socket.io', 'flood');
  for (let i = 0; i < 260; i++) a.send('rtc:candidate', { for: b.id, candidate: null });
  const e = await a.next('rtc:error');
  assert.equal(e.reason, 'rate-limited');
  await sleep(100);
  await a.sync();
  const got = await b.next('rtc:candidate');
  assert.equal(got.from, a.id);
  await b.sync();
  const relayed = b.all('rtc:candidate').length;
  assert.ok(relayed >= 190 && relayed < 260, `${relayed} candidates relayed`);
});

test('an oversized frame closes that WebSocket only; the server stopping sends rtc:stop', async () => {
  const a = await joined('websocket', 'big');
  const b = await joined('socket.io', 'big');
  a.sendRaw(JSON.stringify({ type: 'rtc:sdp', data: { to: b.id, description: { type: 'offer', sdp: 'x'.repeat(300_000) } } }));
  await a.closed;
  assert.deepEqual(await b.next('rtc:close'), { id: a.id, uid: a.id });
  const c = await joined('websocket', 'big');
  const stopped = Promise.all([b.next('rtc:stop'), c.next('rtc:stop')]);
  await server.stop();
  assert.deepEqual(await stopped, [{}, {}]);
  server = await startServer(); // for after()
});
