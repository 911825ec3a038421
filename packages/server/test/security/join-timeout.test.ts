// Issue 10, row 7: `/pool/ws` and socket.io connections that never joined
// were never closed (WebSocket and engine.io pongs satisfied liveness, and
// there was no join timeout). Every dialect's connection now has to join a
// group within --join-timeout seconds (default 30), else it is told why and
// closed; a member is left alone however long it stays.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

/** The server's join timeout here, in seconds. */
const TIMEOUT_S = 1;
/** How long a test waits for the close before it calls the server wrong (generous: the machine is shared). */
const WAIT_MS = 15_000;

let server: RunningServer;

before(async () => {
  server = await startServer({
    args: ['--no-media', '--join-timeout', String(TIMEOUT_S)],
    groups: { g: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
  });
});
after(() => server?.stop());

function within<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT_MS} ms`)), WAIT_MS))]);
}

test('a Galène connection that shook hands but joined no group is told why and closed', async () => {
  const c = await GaleneTestClient.connect(server.wsUrl);
  const error = await within(
    c.next((f) => f.type === 'usermessage' && f.kind === 'error', WAIT_MS, 'the error'),
    'the join-timeout error',
  );
  assert.equal(error.error, 'not-joined');
  assert.match(error.value, /no group joined within 1 second\b/);
  const closed = await within(c.closed, 'the close');
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /no group joined/);
});

test('a raw /pool/ws endpoint that never sends rtc:join is told why and closed', async () => {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/pool/ws`);
  const frames: { type: string; data: Record<string, unknown> }[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const { code, reason } = await within(closed, 'the close of /pool/ws');
  assert.equal(code, 1008);
  assert.match(reason, /no group joined/);
  assert.deepEqual(
    frames.map((f) => [f.type, f.data.reason]),
    [['rtc:error', 'not-joined']],
  );
});

test('a socket.io endpoint that never sends rtc:join is told why and disconnected', async () => {
  const sio = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
  const errors: Record<string, unknown>[] = [];
  sio.on('rtc:error', (d: Record<string, unknown>) => errors.push(d));
  const gone = new Promise<string>((resolve) => sio.on('disconnect', (why) => resolve(why)));
  const why = await within(gone, 'the socket.io disconnect');
  assert.equal(why, 'io server disconnect', 'the server ended it');
  assert.deepEqual(
    errors.map((e) => e.reason),
    ['not-joined'],
  );
  assert.match(String(errors[0]!.message), /no group joined within 1 second\b/);
});

test('members stay: a joined connection outlives the timeout many times over', async () => {
  const member = await GaleneTestClient.connect(server.wsUrl);
  const joined = await member.join('g', 'alice', '');
  assert.equal(joined.kind, 'join');
  await new Promise((r) => setTimeout(r, 4 * TIMEOUT_S * 1000));
  member.send({ type: 'ping' });
  await member.next((f) => f.type === 'pong');
  assert.equal(member.isClosed, false);
  member.close();
});
