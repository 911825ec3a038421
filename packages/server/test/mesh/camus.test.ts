// Camus rooms against a real server process, over real WebSockets: how a
// client learns its id, when room-info comes, relaying to one peer only and
// only within the room, the server setting `sender`, TURN credentials in
// ice-servers, group files governing rooms, and bad frames answered without
// disturbing anyone else — always in a type Camus's own client handles (a
// refusal is a `text` from ground control carrying an error code).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { CamusTestClient, type Frame, GROUND_CONTROL, isRefusal, sleep } from './support.ts';

let server: RunningServer;
const open: CamusTestClient[] = [];

before(async () => {
  server = await startServer({
    groups: {
      // A group file of the same name governs the room: here, its capacity.
      duo: { 'max-clients': 2, 'allow-anonymous': true, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      closed: { users: { alice: { password: 'pw', permissions: 'present' } } },
      // Camus's client enters nameless and names itself with profile: the wildcard user lets it in.
      governed: { users: { boss: { password: 'pw', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
    },
    iceServers: [{ urls: ['stun:stun.example.org:3478'] }],
    args: ['--turn', 'turn:turn.example.org:3478', '--turn-secret', 'camus-secret'],
  });
});
after(async () => {
  for (const c of open) c.close();
  await server.stop();
});

const roomUrl = (room: string) => `${server.url.replace(/^http/, 'ws')}/room/${room}/ws`;

async function enter(room: string, opts: { learnId?: boolean } = {}): Promise<CamusTestClient> {
  const c = await CamusTestClient.connect(roomUrl(room), opts);
  open.push(c);
  return c;
}

const ids = (info: Frame): string[] => (info.data.clients as { id: string }[]).map((c) => c.id).sort();

test('the room page is served, and a client learns its id from the receiver of its first pong', async () => {
  const page = await fetch(`${server.url}/room/lobby`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /lobby/);

  const c = await enter('lobby', { learnId: false });
  const greeting = await c.next((f) => f.type === 'greeting', 'greeting');
  assert.equal(greeting.sender, GROUND_CONTROL);
  c.send({ receiver: GROUND_CONTROL, type: 'ping', data: 1234 });
  const pong = await c.next((f) => f.type === 'pong', 'pong');
  assert.deepEqual(pong, { sender: GROUND_CONTROL, receiver: greeting.receiver, type: 'pong', data: 1234 });
  assert.match(pong.receiver, /^[0-9a-f]{32}$/);
  const info = await c.roomInfo();
  assert.deepEqual(info.data, { room_id: 'lobby', clients: [{ id: pong.receiver, username: 'Major Tom' }] });
  assert.deepEqual(c.violations, []);
  c.close();
});

test('room-info: to the others on join, to everyone on profile, to those who stay on bye', async () => {
  const a = await enter('r-info');
  const b = await enter('r-info');
  // A hears of B at once; B asks (it could not know its own id before its first pong).
  const seenByA = await a.next((f) => f.type === 'room-info' && f.data.clients.length === 2, 'room-info with B');
  assert.deepEqual(ids(seenByA), [a.id, b.id].sort());
  assert.equal(seenByA.receiver, a.id);
  assert.equal(b.all('room-info').length, 0, 'the joiner gets no room-info before it asks');
  assert.deepEqual(ids(await b.roomInfo()), [a.id, b.id].sort());

  b.send({ receiver: GROUND_CONTROL, type: 'profile', data: { username: 'Bowie' } });
  for (const c of [a, b]) {
    const info = await c.next((f) => f.type === 'room-info' && f.data.clients.some((x: { username: string }) => x.username === 'Bowie'), 'room-info after profile');
    assert.equal(info.receiver, c.id);
    assert.deepEqual(
      info.data.clients.find((x: { id: string }) => x.id === b.id),
      { id: b.id, username: 'Bowie' },
    );
  }

  b.send({ receiver: GROUND_CONTROL, type: 'bye', data: Date.now() });
  const byeBack = await b.next((f) => f.type === 'bye', 'bye from ground control');
  assert.equal(byeBack.sender, GROUND_CONTROL);
  assert.equal((await b.closed).code, 1000);
  const after = await a.next((f) => f.type === 'room-info' && f.data.clients.length === 1, 'room-info after bye');
  assert.deepEqual(ids(after), [a.id]);
  assert.deepEqual([...a.violations, ...b.violations], []);
});

test('relay: to one peer only, sender set by the server; "room" reaches everyone, the sender too', async () => {
  const [a, b, c] = [await enter('r-relay'), await enter('r-relay'), await enter('r-relay')];
  const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n' };
  a.send({ sender: c.id, receiver: b.id, type: 'offer', data: offer }); // a spoofed sender
  const got = await b.next((f) => f.type === 'offer', 'offer');
  assert.deepEqual(got, { sender: a.id, receiver: b.id, type: 'offer', data: offer });

  b.send({ receiver: a.id, type: 'answer', data: { type: 'answer', sdp: 'v=0\r\n' } });
  b.send({ receiver: a.id, type: 'icecandidate', data: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
  assert.equal((await a.next((f) => f.type === 'answer', 'answer')).sender, b.id);
  const cand = await a.next((f) => f.type === 'icecandidate', 'icecandidate');
  assert.equal(cand.sender, b.id);
  assert.equal(cand.data.sdpMLineIndex, 0);

  a.send({ receiver: 'room', type: 'text', data: { from: 'someone else', time: 1, text: 'hello room' } });
  for (const x of [a, b, c]) {
    const t = await x.next((f) => f.type === 'text', 'text');
    assert.equal(t.sender, a.id);
    assert.equal(t.receiver, 'room');
    assert.equal(t.data.text, 'hello room');
    assert.equal(t.data.from, 'Major Tom', "from is the sender's name as the server knows it");
    assert.equal(typeof t.data.time, 'number');
  }
  // Everything a and b sent was handled before c's pong comes back: c got none of the private messages.
  await a.ping();
  await b.ping();
  await c.ping();
  assert.deepEqual(
    c.received.filter((f) => ['offer', 'answer', 'icecandidate'].includes(f.type)),
    [],
  );
  assert.deepEqual([...a.violations, ...b.violations, ...c.violations], []);
});

test('relay across rooms is refused with an error, and the other room hears nothing', async () => {
  const a = await enter('r-one');
  const z = await enter('r-two');
  z.send({ receiver: a.id, type: 'offer', data: { type: 'offer', sdp: 'v=0\r\n' } });
  const err = await z.next(isRefusal, 'error');
  assert.equal(err.sender, GROUND_CONTROL);
  assert.match(err.data.text, new RegExp(a.id));
  assert.equal(err.data.error, 'no-such-user');
  z.send({ receiver: 'nobody-here', type: 'text', data: { text: 'psst' } });
  assert.match((await z.next(isRefusal, 'error')).data.text, /nobody-here/);
  // bye to a peer that is not there: nothing to do, no error.
  z.send({ receiver: 'gone-already', type: 'bye', data: 1 });
  await z.ping();
  assert.equal(z.all('text').filter(isRefusal).length, 2);
  await a.ping();
  assert.deepEqual(
    a.received.filter((f) => ['offer', 'text'].includes(f.type)),
    [],
  );
});

test("unknown types get Camus's sentence (in a text, which Camus's client shows); server types sent to a peer are refused", async () => {
  const a = await enter('r-unknown');
  const b = await enter('r-unknown');
  a.send({ receiver: GROUND_CONTROL, type: 'teleport', data: 1 });
  const unknown = await a.next(isRefusal, 'error');
  assert.equal(unknown.receiver, a.id);
  assert.deepEqual({ ...unknown.data, time: 0 }, { from: 'Ground control', time: 0, text: 'Unknown message type: teleport', error: 'unknown-type' });
  a.send({ receiver: GROUND_CONTROL, type: 'offer', data: { type: 'offer', sdp: 'v=0' } });
  assert.equal((await a.next(isRefusal, 'error')).data.text, 'Unknown message type: offer');
  a.send({ receiver: b.id, type: 'get-room-info' });
  assert.match((await a.next(isRefusal, 'error')).data.text, /ground control/);
  assert.deepEqual([...a.violations, ...b.violations], []);
  await b.ping();
  assert.equal(b.all('get-room-info').length, 0);
});

test('ice-servers: URL arrays with their kind, TURN credentials made from the shared secret', async () => {
  const a = await enter('r-ice');
  a.send({ receiver: GROUND_CONTROL, type: 'get-ice-servers' });
  const m = await a.next((f) => f.type === 'ice-servers', 'ice-servers');
  const stun = m.data.find((s: { kind: string }) => s.kind === 'stun');
  const turn = m.data.find((s: { kind: string }) => s.kind === 'turn');
  assert.deepEqual(stun, { urls: ['stun:stun.example.org:3478'], kind: 'stun' });
  assert.deepEqual(turn.urls, ['turn:turn.example.org:3478']);
  const expiry = Number(String(turn.username).split(':')[0]);
  assert.ok(expiry > Date.now() / 1000, `TURN username ${turn.username} starts with a future expiry`);
  const { createHmac } = await import('node:crypto');
  assert.equal(turn.credential, createHmac('sha1', 'camus-secret').update(turn.username).digest('base64'));
  assert.ok(!JSON.stringify(m).includes('camus-secret'));
});

test('a group file governs the room of its name: capacity, and who may enter', async () => {
  const a = await enter('duo');
  const b = await enter('duo');
  const c = await CamusTestClient.connect(roomUrl('duo'), { learnId: false });
  const err = await c.next(isRefusal, 'refusal');
  assert.match(err.data.text, /full/);
  assert.equal((await c.closed).code, 4003);
  const shut = await CamusTestClient.connect(roomUrl('closed'), { learnId: false });
  assert.match((await shut.next(isRefusal, 'refusal')).data.text, /wildcard user/);
  assert.deepEqual([...c.violations, ...shut.violations], []);
  await shut.closed;
  // The two inside never heard of either.
  await a.ping();
  assert.deepEqual(ids(await b.roomInfo()), [a.id, b.id].sort());
});

test('a room governed by a group file with a wildcard user admits the nameless Camus client; profile names it, but not as a registered user', async () => {
  const a = await enter('governed');
  const b = await enter('governed');
  a.send({ receiver: GROUND_CONTROL, type: 'profile', data: { username: 'ann' } });
  await b.next((f) => f.type === 'room-info' && f.data.clients.some((c: { id: string; username: string }) => c.id === a.id && c.username === 'ann'), 'room-info naming ann');
  b.send({ receiver: GROUND_CONTROL, type: 'profile', data: { username: 'boss' } });
  const refused = await b.next(isRefusal, 'refusal of a registered name');
  assert.equal(refused.data.error, 'not-permitted');
  assert.match(refused.data.text, /registered user/);
  // Still in, chatting, under the default name.
  b.send({ receiver: 'room', type: 'text', data: { from: 'Major Tom', time: 1, text: 'hello' } });
  const heard = await a.next((f) => f.type === 'text' && f.sender === b.id, 'text from b');
  assert.equal(heard.data.text, 'hello');
  assert.deepEqual([...a.violations, ...b.violations], []);
});

test('bad frames get an error and disturb nobody', async () => {
  const a = await enter('r-bad');
  const b = await enter('r-bad');
  await a.next((f) => f.type === 'room-info', 'room-info with b');
  const bad: [string | Buffer, boolean][] = [
    ['not json', false],
    ['[1,2,3]', false],
    ['{"type":"ping"}', false],
    [JSON.stringify({ receiver: b.id, type: 'offer', data: { type: 'offer' } }), false],
    [JSON.stringify({ receiver: b.id, type: 'icecandidate', data: 'candidate' }), false],
    [JSON.stringify({ receiver: GROUND_CONTROL, type: 'profile', data: { username: 42 } }), false],
    [JSON.stringify({ receiver: 'room', type: 'text', data: { text: 'x'.repeat(40_000) } }), false],
    [JSON.stringify({ receiver: GROUND_CONTROL, type: 7 }), false],
    ['['.repeat(100) + ']'.repeat(100), false],
    [Buffer.from([1, 2, 3]), true],
  ];
  for (const [frame, binary] of bad) {
    a.sendRaw(frame, binary);
    const e = await a.next(isRefusal, `error for ${String(frame).slice(0, 40)}`);
    assert.equal(e.sender, GROUND_CONTROL);
    assert.equal(typeof e.data.text, 'string');
  }
  // Still in the room, still working, and b saw nothing but its own replies.
  await a.ping();
  await b.ping();
  assert.deepEqual(
    b.received.filter((f) => !['greeting', 'pong', 'room-info'].includes(f.type)),
    [],
  );
  // A frame over the size limit closes that connection only.
  a.sendRaw(JSON.stringify({ receiver: 'room', type: 'text', data: { text: 'y'.repeat(300_000) } }));
  assert.equal((await a.closed).code, 1009);
  const info = await b.next((f) => f.type === 'room-info' && f.data.clients.length === 1, 'room-info without a');
  assert.deepEqual(ids(info), [b.id]);
  assert.deepEqual([...a.violations, ...b.violations], []);
});

test('an ephemeral room is dropped when its last client leaves', async () => {
  const before = (await (await fetch(`${server.url}/healthz`)).json()) as { groups: number };
  const a = await enter('r-ephemeral');
  const during = (await (await fetch(`${server.url}/healthz`)).json()) as { groups: number };
  assert.equal(during.groups, before.groups + 1);
  a.send({ receiver: 'room', type: 'text', data: { text: 'this is not kept' } });
  a.close();
  await a.closed;
  await sleep(100);
  const later = (await (await fetch(`${server.url}/healthz`)).json()) as { groups: number };
  assert.equal(later.groups, before.groups);
  // Coming back starts afresh.
  const b = await enter('r-ephemeral');
  await b.ping();
  assert.equal(b.all('text').length, 0);
});

test('rate limits: a burst over the limit is dropped with one error, and the client stays', async () => {
  const a = await enter('r-flood');
  for (let i = 0; i < 260; i++) a.send({ receiver: GROUND_CONTROL, type: 'greeting', data: i });
  const e = await a.next(isRefusal, 'rate-limit error');
  assert.match(e.data.text, /too many messages/);
  await sleep(100);
  await a.ping();
  assert.equal(a.all('text').filter(isRefusal).length, 1);
});
