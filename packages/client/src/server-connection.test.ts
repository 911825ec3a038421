// ServerConnection driven frame by frame through a scripted socket: the
// callbacks get Galène's exact arguments, bad frames are reported and not
// thrown, and an unexpected close leads to a reconnection that rejoins.
import assert from 'node:assert/strict';
import { afterEach, mock, test } from 'node:test';
import { AtriumClientError } from './errors.ts';
import { ServerConnection, type ServerConnectionOptions } from './server-connection.ts';
import { FakeSocket, createFakeSocket } from './test-support.ts';

afterEach(() => {
  FakeSocket.all.length = 0;
  mock.timers.reset();
});

function connection(options: ServerConnectionOptions = {}): { sc: ServerConnection; calls: unknown[][] } {
  const sc = new ServerConnection({ createSocket: createFakeSocket, ...options });
  const calls: unknown[][] = [];
  sc.onconnected = function () {
    calls.push(['connected']);
  };
  sc.onjoined = function (...args) {
    calls.push(['joined', ...args]);
  };
  sc.onuser = function (id, kind) {
    calls.push(['user', id, kind]);
  };
  sc.onchat = function (...args) {
    calls.push(['chat', ...args]);
  };
  sc.onusermessage = function (...args) {
    calls.push(['usermessage', ...args]);
  };
  sc.onclose = function (code, reason) {
    calls.push(['close', code, reason]);
  };
  sc.onerror = function (e) {
    calls.push(['error', e]);
  };
  sc.onreconnecting = function (attempt, delay, code) {
    calls.push(['reconnecting', attempt, code, delay > 0]);
  };
  sc.onreconnected = function () {
    calls.push(['reconnected']);
  };
  return { sc, calls };
}

const joined = (extra: Record<string, unknown> = {}) => ({
  type: 'joined',
  kind: 'join',
  group: 'g',
  username: 'alice',
  permissions: ['present', 'message'],
  status: { name: 'g', location: 'http://x/group/g/', endpoint: 'ws://x/ws' },
  data: {},
  rtcConfiguration: { iceServers: [{ urls: 'turn:example.org', username: 'u', credential: 'c' }] },
  ...extra,
});

test("handshake, join, joined, users, chat and messages reach the callbacks with Galène's arguments", async () => {
  const { sc, calls } = connection();
  sc.onconnected = function () {
    calls.push(['connected']);
    void this.join('g', 'alice', 'secret', { mood: 'ok' });
  };
  sc.connect('ws://x/ws');
  const ws = FakeSocket.latest();
  ws.accept();
  assert.deepEqual(ws.sent[0], { type: 'handshake', version: ['2'], id: sc.id });
  await Promise.resolve();
  assert.deepEqual(ws.sentOf('join')[0], { type: 'join', kind: 'join', group: 'g', username: 'alice', password: 'secret', data: { mood: 'ok' } });

  ws.deliver(joined());
  assert.deepEqual(calls.at(-1), ['joined', 'join', 'g', ['present', 'message'], { name: 'g', location: 'http://x/group/g/', endpoint: 'ws://x/ws' }, {}, null, '']);
  assert.equal(sc.group, 'g');
  assert.equal(sc.username, 'alice');
  assert.deepEqual(sc.rtcConfiguration, { iceServers: [{ urls: 'turn:example.org', username: 'u', credential: 'c' }] });

  ws.deliver({ type: 'user', kind: 'add', id: sc.id, username: 'alice', permissions: ['present'], data: {} });
  ws.deliver({ type: 'user', kind: 'add', id: 'bob-id', username: 'bob', permissions: [], data: { a: 1 } });
  ws.deliver({ type: 'user', kind: 'change', id: 'bob-id', username: 'bob', permissions: ['op'], data: { a: 2 } });
  assert.deepEqual(sc.users['bob-id'], { username: 'bob', permissions: ['op'], data: { a: 2 }, streams: {} });
  ws.deliver({ type: 'chathistory', source: 'bob-id', username: 'bob', time: '2024-05-01T10:00:00.000Z', privileged: false, value: 'old' });
  ws.deliver({ type: 'chat', kind: 'me', source: 'bob-id', username: 'bob', dest: sc.id, time: '2024-05-01T10:00:01.000Z', privileged: true, value: 'waves' });
  ws.deliver({ type: 'usermessage', kind: 'info', source: 'bob-id', username: 'bob', dest: sc.id, privileged: false, value: { x: 1 } });
  ws.deliver({ type: 'usermessage', kind: 'error', error: 'not-permitted', privileged: true, value: 'no' });
  ws.deliver({ type: 'user', kind: 'delete', id: 'bob-id' });
  assert.equal(sc.users['bob-id'], undefined);

  const rest = calls.slice(calls.findIndex((c) => c[0] === 'joined') + 1);
  assert.deepEqual(rest, [
    ['user', sc.id, 'add'],
    ['user', 'bob-id', 'add'],
    ['user', 'bob-id', 'change'],
    ['chat', 'bob-id', undefined, 'bob', new Date('2024-05-01T10:00:00.000Z'), false, true, '', 'old'],
    ['chat', 'bob-id', sc.id, 'bob', new Date('2024-05-01T10:00:01.000Z'), true, false, 'me', 'waves'],
    ['usermessage', 'bob-id', sc.id, 'bob', null, false, 'info', undefined, { x: 1 }],
    ['usermessage', undefined, undefined, undefined, null, true, 'error', 'not-permitted', 'no'],
    ['user', 'bob-id', 'delete'],
  ]);

  ws.deliver({ type: 'ping' });
  assert.deepEqual(ws.sent.at(-1), { type: 'pong' });
});

test('sending: chat (both forms), messages, actions, request, leave', async () => {
  const { sc } = connection();
  sc.connect('ws://x/ws');
  const ws = FakeSocket.latest();
  ws.accept();
  await sc.join('g', 'join', 'alice', { type: 'token', token: 'jwt' });
  assert.deepEqual(ws.sentOf('join')[0], { type: 'join', kind: 'join', group: 'g', username: 'alice', token: 'jwt' });
  ws.deliver(joined());
  sc.chat('', '', 'hello');
  sc.chat('alice', '', 'bob-id', 'Hi!');
  sc.userMessage('poke', 'bob-id', { n: 1 }, true);
  sc.usermessage('poke', '', undefined);
  sc.userAction('op', 'bob-id');
  sc.useraction('setdata', sc.id, { raised: true });
  sc.groupAction('lock', 'closed for lunch');
  sc.groupaction('clearchat');
  sc.request({ '': ['audio', 'video'], screenshare: ['video-low'] });
  sc.leave();
  const id = sc.id;
  assert.deepEqual(ws.sent.slice(2), [
    { type: 'chat', kind: '', source: id, value: 'hello', username: 'alice' },
    { type: 'chat', kind: '', source: id, value: 'Hi!', dest: 'bob-id', username: 'alice' },
    { type: 'usermessage', kind: 'poke', source: id, dest: 'bob-id', username: 'alice', value: { n: 1 }, noecho: true },
    { type: 'usermessage', kind: 'poke', source: id, username: 'alice' },
    { type: 'useraction', kind: 'op', source: id, dest: 'bob-id', username: 'alice' },
    { type: 'useraction', kind: 'setdata', source: id, dest: id, username: 'alice', value: { raised: true } },
    { type: 'groupaction', kind: 'lock', source: id, username: 'alice', value: 'closed for lunch' },
    { type: 'groupaction', kind: 'clearchat', source: id, username: 'alice' },
    { type: 'request', request: { '': ['audio', 'video'], screenshare: ['video-low'] } },
    { type: 'join', kind: 'leave', group: 'g' },
  ]);
  await assert.rejects(() => sc.join('g', 'alice', undefined as unknown as string), AtriumClientError);
});

test('sending on a closed connection throws a coded error', () => {
  const { sc } = connection();
  assert.throws(
    () => sc.chat('', '', 'x'),
    (e: unknown) => e instanceof AtriumClientError && e.code === 'not-connected',
  );
});

test('bad frames are reported through onerror and the connection carries on', () => {
  const { sc, calls } = connection();
  sc.connect('ws://x/ws');
  const ws = FakeSocket.latest();
  ws.open();
  ws.deliver({ type: 'joined', kind: 'join', group: 'g' });
  ws.deliver({ type: 'handshake', version: ['2'] });
  ws.deliver('{oops');
  ws.deliver({ type: 'warp-drive' });
  ws.deliver({ type: 'user', kind: 'add' });
  ws.deliver({ type: 'usermessage', kind: 'filetransfer', source: 'b', value: { type: 'invite' } });
  ws.deliver({ type: 'answer', id: 'nope', sdp: 'v=0' });
  const errors = calls.filter((c) => c[0] === 'error').map((c) => c[1] as AtriumClientError);
  assert.equal(errors.length, 5);
  assert.ok(
    errors.every((e) => e instanceof AtriumClientError && e.code === 'bad-frame'),
    errors.map(String).join('\n'),
  );
  assert.equal(sc.state, 'connected');
  ws.deliver(joined());
  assert.equal(sc.group, 'g');
});

test('a callback that throws does not break the connection', () => {
  const { sc } = connection();
  sc.onuser = () => {
    throw new Error('app bug');
  };
  const original = console.error;
  console.error = () => {};
  try {
    sc.connect('ws://x/ws');
    const ws = FakeSocket.latest();
    ws.accept();
    ws.deliver(joined());
    ws.deliver({ type: 'user', kind: 'add', id: 'b', username: 'b' });
    ws.deliver({ type: 'user', kind: 'add', id: 'c', username: 'c' });
    assert.deepEqual(Object.keys(sc.users).sort(), ['b', 'c']);
  } finally {
    console.error = original;
  }
});

test('an unexpected close reconnects with backoff, rejoins with the same credentials and asks for the same media', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const { sc, calls } = connection({ reconnect: { initialDelayMs: 100, jitter: 0 } });
  sc.onconnected = function () {
    void this.join('g', 'alice', { type: 'password', password: 'pw' });
  };
  sc.connect('ws://x/ws');
  const first = FakeSocket.latest();
  first.accept();
  await Promise.resolve();
  first.deliver(joined());
  sc.request({ '': ['video'] });
  first.deliver({ type: 'user', kind: 'add', id: sc.id, username: 'alice', data: { hand: 'up' } });
  first.deliver({ type: 'user', kind: 'add', id: 'b', username: 'bob' });
  first.deliver({ type: 'chathistory', source: 'b', time: '2024-05-01T10:00:00.000Z', value: 'seen' });

  first.drop(1006);
  assert.equal(sc.state, 'reconnecting');
  assert.deepEqual(Object.keys(sc.users), []);
  assert.equal(sc.group, 'g', 'the group is kept while reconnecting');
  assert.ok(calls.some((c) => c[0] === 'user' && c[1] === 'b' && c[2] === 'delete'));
  assert.ok(!calls.some((c) => c[0] === 'close'), 'onclose is not called');
  assert.deepEqual(calls.at(-1), ['reconnecting', 1, 1006, true]);

  // The first attempt fails: the wait doubles.
  mock.timers.tick(100);
  const second = FakeSocket.latest();
  assert.notEqual(second, first);
  second.drop(1006);
  assert.deepEqual(calls.at(-1), ['reconnecting', 2, 1006, true]);
  mock.timers.tick(199);
  assert.equal(FakeSocket.latest(), second);
  mock.timers.tick(1);
  const third = FakeSocket.latest();
  third.accept();
  assert.ok(calls.some((c) => c[0] === 'reconnected'));
  assert.ok(!calls.some((c) => c[0] === 'connected' && calls.indexOf(c) > 0), 'onconnected is not called again');
  await Promise.resolve();
  assert.deepEqual(third.sentOf('join')[0], { type: 'join', kind: 'join', group: 'g', username: 'alice', password: 'pw', data: { hand: 'up' } });
  third.deliver(joined());
  assert.deepEqual(third.sentOf('request')[0], { type: 'request', request: { '': ['video'] } });
  // History already shown is not shown twice; newer history is.
  third.deliver({ type: 'chathistory', source: 'b', time: '2024-05-01T10:00:00.000Z', value: 'seen' });
  third.deliver({ type: 'chathistory', source: 'b', time: '2024-05-01T10:00:05.000Z', value: 'missed' });
  const chats = calls.filter((c) => c[0] === 'chat').map((c) => c[8]);
  assert.deepEqual(chats, ['seen', 'missed']);
  assert.equal(sc.state, 'connected');
  sc.close();
});

test('no reconnection after close(), after a kick, or when turned off', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  {
    const { sc, calls } = connection();
    sc.connect('ws://x/ws');
    const ws = FakeSocket.latest();
    ws.accept();
    await sc.join('g', 'a', 'x');
    ws.deliver(joined());
    sc.close();
    assert.deepEqual(ws.closedWith, { code: 1000, reason: 'Close requested by client' });
    assert.deepEqual(calls.slice(-2), [
      ['joined', 'leave', 'g', [], {}, {}, null, ''],
      ['close', 1000, 'Close requested by client'],
    ]);
    assert.equal(sc.state, 'closed');
  }
  {
    const { sc, calls } = connection();
    sc.connect('ws://x/ws');
    const ws = FakeSocket.latest();
    ws.accept();
    ws.deliver(joined());
    ws.deliver({ type: 'usermessage', kind: 'kicked', source: 'op', username: 'op', privileged: true, value: 'bye' });
    ws.deliver({ type: 'joined', kind: 'leave', group: 'g', permissions: [] });
    ws.drop(4001, 'bye');
    assert.equal(sc.state, 'closed');
    assert.ok(!calls.some((c) => c[0] === 'reconnecting'));
    assert.deepEqual(calls.at(-1), ['close', 4001, 'bye']);
  }
  {
    const { sc, calls } = connection({ reconnect: false });
    sc.connect('ws://x/ws');
    FakeSocket.latest().accept();
    FakeSocket.latest().drop(1006);
    assert.deepEqual(calls.at(-1), ['close', 1006, '']);
  }
  {
    // Never connected: the application hears about it and decides.
    const { sc, calls } = connection();
    sc.connect('ws://x/ws');
    FakeSocket.latest().drop(1006);
    assert.deepEqual(calls.at(-1), ['close', 1006, '']);
  }
});

test('close() while waiting to reconnect ends the connection', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const { sc, calls } = connection();
  sc.connect('ws://x/ws');
  FakeSocket.latest().accept();
  FakeSocket.latest().drop(1001);
  assert.equal(sc.state, 'reconnecting');
  sc.close();
  assert.equal(sc.state, 'closed');
  assert.deepEqual(calls.at(-1), ['close', 1000, 'Close requested by client']);
  const count = FakeSocket.all.length;
  mock.timers.tick(60_000);
  assert.equal(FakeSocket.all.length, count, 'no further attempt');
});

test('a refused client id is replaced by a new one before the next attempt', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const { sc } = connection({ reconnect: { initialDelayMs: 10, jitter: 0 } });
  sc.connect('ws://x/ws');
  FakeSocket.latest().accept();
  const before = sc.id;
  FakeSocket.latest().drop(1006);
  mock.timers.tick(10);
  FakeSocket.latest().open();
  FakeSocket.latest().drop(4002, 'duplicate client id');
  assert.notEqual(sc.id, before);
  mock.timers.tick(20);
  FakeSocket.latest().open();
  assert.deepEqual(FakeSocket.latest().sent[0], { type: 'handshake', version: ['2'], id: sc.id });
  sc.close();
});

test('a silent server is pinged, then dropped and reconnected', () => {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
  const { sc, calls } = connection({ pingAfterMs: 1000, timeoutMs: 3000, reconnect: { initialDelayMs: 50, jitter: 0 } });
  sc.connect('ws://x/ws');
  const ws = FakeSocket.latest();
  ws.accept();
  mock.timers.tick(1000);
  assert.deepEqual(ws.sent.at(-1), { type: 'ping' });
  mock.timers.tick(2500);
  assert.equal(sc.state, 'reconnecting');
  assert.ok(calls.some((c) => c[0] === 'error' && (c[1] as AtriumClientError).code === 'socket'));
  assert.ok(calls.some((c) => c[0] === 'reconnecting' && c[2] === 4000));
  sc.close();
});

test('clearchat goes to onclearchat when set, else to onusermessage', () => {
  const { sc, calls } = connection();
  sc.connect('ws://x/ws');
  const ws = FakeSocket.latest();
  ws.accept();
  ws.deliver(joined());
  ws.deliver({ type: 'usermessage', kind: 'clearchat', source: 'op', privileged: true });
  assert.equal(calls.at(-1)?.[0], 'usermessage');
  sc.onclearchat = () => calls.push(['clearchat']);
  ws.deliver({ type: 'usermessage', kind: 'clearchat', source: 'op', privileged: true });
  assert.deepEqual(calls.at(-1), ['clearchat']);
});

test('file-transfer invitations: refused when the application throws or has no handler', () => {
  const { sc } = connection();
  sc.connect('ws://x/ws');
  const ws = FakeSocket.latest();
  ws.accept();
  ws.deliver(joined());
  const invite = (id: string, version = ['1']) =>
    ws.deliver({
      type: 'usermessage',
      kind: 'filetransfer',
      source: 'bob',
      username: 'bob',
      dest: sc.id,
      value: { type: 'invite', version, id, name: 'a.bin', size: 10, mimetype: 'application/octet-stream' },
    });
  invite('f1');
  assert.deepEqual(ws.sent.at(-1), {
    type: 'usermessage',
    kind: 'filetransfer',
    source: sc.id,
    dest: 'bob',
    username: 'alice',
    value: { type: 'cancel', id: 'f1', message: 'this client does not accept files' },
  });
  const states: string[] = [];
  sc.onfiletransfer = function (f) {
    f.onevent = (state) => states.push(state);
    if (f.name === 'a.bin') throw new Error('no binaries, thanks');
  };
  invite('f2');
  assert.deepEqual((ws.sent.at(-1) as { value: unknown }).value, { type: 'cancel', id: 'f2', message: 'no binaries, thanks' });
  assert.deepEqual(states, ['cancelled', 'closed']);
  invite('f3', ['7']);
  assert.match(String((ws.sent.at(-1) as { value: { message: string } }).value.message), /unknown file-transfer protocol version/);
  assert.deepEqual(sc.transferredFiles, {});
});
