// Issue 10, row 6: a lone UTF-16 surrogate as a group or pool name got an
// "internal" error and an error-level log line with a stack trace (888
// lines, 869 KB in 10 s from one connection). Every name from the network
// is now checked to be well-formed Unicode before use: the client gets a
// "bad-message" error that says why, and the log stays quiet.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

const LONE = ['\ud800', '\udfff', 'a\udc00b', '\ud83d'];
let server: RunningServer;

before(async () => {
  server = await startServer({
    args: ['--no-media', '--log-level', 'info'],
    config: { writableGroups: true, users: { root: { password: 'rootpw', permissions: 'admin' } } },
    groups: { g: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
  });
});
after(() => server?.stop());

function errorLines(): string[] {
  return server
    .output()
    .split('\n')
    .filter((l) => /"level":(50|60)/.test(l) || l.includes('"stack"'));
}

test('Galène: group, username, client id and dest with a lone surrogate get bad-message, never internal', async () => {
  for (const bad of LONE) {
    const c = await GaleneTestClient.connect(server.wsUrl);
    // A frame that fails its schema gets a usermessage error (docs/bad-input.md).
    const refused = async (msg: Record<string, unknown>) => {
      c.send(msg);
      const e = await c.next((f) => (f.type === 'usermessage' && f.kind === 'error') || f.type === 'joined');
      assert.equal(e.error, 'bad-message', JSON.stringify(e));
      assert.match(e.value, /well-formed Unicode/);
    };
    await refused({ type: 'join', kind: 'join', group: `g${bad}`, username: 'u' });
    await refused({ type: 'join', kind: 'join', group: 'g', username: `u${bad}` });
    assert.equal((await c.join('g', 'fine')).kind, 'join');
    c.send({ type: 'usermessage', kind: 'hello', dest: bad, value: 1 });
    assert.equal((await c.next((f) => f.type === 'usermessage' && f.kind === 'error')).error, 'bad-message');
    c.close();
    const h = await GaleneTestClient.connect(server.wsUrl, { handshake: false });
    h.send({ type: 'handshake', version: ['2'], id: bad });
    assert.equal((await h.next((f) => f.type === 'usermessage')).error, 'bad-message');
    h.close();
  }
  assert.deepEqual(errorLines(), []);
});

test('RTCPool over WebSocket and socket.io, and a Camus receiver: the same', async () => {
  const base = server.url.replace('http', 'ws');
  for (const bad of LONE) {
    const ws = new WebSocket(`${base}/pool/ws`);
    const reason = new Promise<string>((resolve) => ws.on('message', (d) => resolve(JSON.parse(d.toString()).data.reason)));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'rtc:join', data: { pool: `p${bad}` } }));
    assert.equal(await reason, 'bad-message');
    ws.close();

    const sio = io(server.url, { transports: ['websocket'], forceNew: true });
    const sioReason = new Promise<string>((resolve) => sio.on('rtc:error', (d: { reason: string }) => resolve(d.reason)));
    await new Promise<void>((r) => sio.once('connect', () => r()));
    sio.emit('rtc:join', { pool: bad });
    assert.equal(await sioReason, 'bad-message');
    sio.close();

    // A username presented in socket.io's auth is checked when the endpoint joins.
    const named = io(server.url, { transports: ['websocket'], forceNew: true, auth: { username: `n${bad}` } });
    const namedReason = new Promise<string>((resolve) => named.on('rtc:error', (d: { reason: string }) => resolve(d.reason)));
    await new Promise<void>((r) => named.once('connect', () => r()));
    named.emit('rtc:join', { pool: 'g' });
    assert.equal(await namedReason, 'bad-message');
    named.close();

    const cam = new WebSocket(`${base}/room/r1/ws`);
    const frames: { type: string; data: unknown }[] = [];
    cam.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise((r) => cam.once('open', r));
    cam.send(JSON.stringify({ type: 'text', receiver: bad, data: { text: 'hi' } }));
    cam.send(JSON.stringify({ type: 'profile', receiver: 'ground control', data: { username: bad } }));
    cam.send(JSON.stringify({ type: 'ping', receiver: 'ground control', data: 1 }));
    await new Promise<void>((resolve) => cam.on('message', () => frames.some((f) => f.type === 'pong') && resolve()));
    const errors = frames.filter((f) => f.type === 'error').map((f) => String(f.data));
    assert.equal(errors.length, 2, JSON.stringify(frames));
    for (const e of errors) assert.match(e, /well-formed Unicode/);
    cam.close();
  }
  assert.deepEqual(errorLines(), []);
});

test('the admin API: a name that does not decode, or a token body naming a lone surrogate, gets 400', async () => {
  const auth = { authorization: `Basic ${Buffer.from('root:rootpw').toString('base64')}` };
  const r = await fetch(`${server.url}/galene-api/v0/.groups/a%ED%A0%80/`, { headers: auth });
  assert.equal(r.status, 400);
  const t = await fetch(`${server.url}/galene-api/v0/.groups/g/.tokens/`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{"username":"\\ud800","expires":"2099-01-01T00:00:00Z"}',
  });
  assert.equal(t.status, 400, await t.text());
  assert.deepEqual(errorLines(), []);
});

test('a flood of such joins leaves no error in the log', async () => {
  const c = await GaleneTestClient.connect(server.wsUrl);
  for (let i = 0; i < 150; i++) c.send({ type: 'join', kind: 'join', group: `x\ud800${i}`, username: 'u' });
  await c.roundTrip();
  const errors = c.all('usermessage', 'error');
  // Over the rate limit, the excess is dropped with one warning a second; none is internal.
  assert.ok(errors.length > 0);
  assert.ok(
    errors.every((f) => f.error === 'bad-message' || f.error === 'rate-limited'),
    JSON.stringify(errors.slice(0, 3)),
  );
  c.close();
  assert.deepEqual(errorLines(), []);
});
