// Issue 10, row 2: an RTCPool socket.io client paused its socket while a
// peer sent it 131 KB rtc:sdp events at the allowed rate; the server's RSS
// went from 209 MB to 1.29 GB and the reader was never dropped (the
// socket.io cap counted packets, not bytes). Every dialect's output is now
// bounded in bytes, socket.io's queue included: a reader that does not read
// is closed, the others see it leave, and the server's memory stays put.
// The same for a raw /pool/ws endpoint and a Galène member (their queues are
// the dialect kit's; XMPP's is shown in test/xmpp/xmpp-kit.test.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { PoolTestClient } from '../mesh/support.ts';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

/** An SDP as large as RTCPool allows a description to be, about. */
const SDP = `v=0\r\n${'a=x\r\n'.repeat(24_000)}`;
/** Events sent at most: what a packet-counting cap would still hold, many times what a byte limit allows. */
const MAX_EVENTS = 800;

let server: RunningServer;

before(async () => {
  server = await startServer({ args: ['--no-media'], groups: { 'slow-galene': { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } } });
});
after(() => server?.stop());

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function tooSlowCount(dialect = 'rtcpool'): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = new RegExp(`^atrium_errors_total\\{dialect="${dialect}",kind="too-slow"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Stops reading a ws WebSocket: its TCP socket is paused, so the server's output piles up. */
function pause(ws: unknown): void {
  (ws as { _socket: { pause(): void } })._socket.pause();
}

test('a socket.io reader that stops reading is closed once its queue is too large in bytes; its peer sees it go', async () => {
  const pid = server.process.pid!;
  const rssBefore = rssMiB(pid);

  // The slow reader: socket.io over a WebSocket whose TCP socket stops reading.
  const slow = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise<void>((resolve, reject) => {
    slow.once('connect', () => resolve());
    slow.once('connect_error', reject);
  });
  const joined = new Promise<{ client_id: string }>((resolve) => slow.once('rtc:joined', resolve));
  slow.emit('rtc:join', { pool: 'slow' });
  const slowId = (await joined).client_id;

  const peer = await PoolTestClient.connect(server.url, 'websocket');
  assert.equal((await peer.join('slow')).type, 'rtc:joined');

  const engine = slow.io.engine as unknown as { transport: { ws: { _socket: { pause(): void } } } };
  engine.transport.ws._socket.pause();

  // 80 events a second, under the rate limit of 100: all of them are relayed.
  let sent = 0;
  let gone = false;
  const left = peer
    .next('rtc:close', (d) => d.id === slowId, 120_000)
    .then(() => {
      gone = true;
    });
  while (!gone && sent < MAX_EVENTS) {
    for (let i = 0; i < 8; i++) peer.send('rtc:sdp', { to: slowId, description: { type: 'offer', sdp: SDP } });
    sent += 8;
    await sleep(100);
  }
  await Promise.race([left, sleep(15_000)]);
  assert.ok(gone, `the reader was not dropped after ${sent} events of ${SDP.length} bytes (${Math.round((sent * SDP.length) / 2 ** 20)} MiB)`);
  assert.ok(sent < MAX_EVENTS, 'it was dropped for its bytes, long before a count of packets would have');
  assert.ok((await tooSlowCount()) >= 1, 'the metrics count it as too slow');

  // The others are undisturbed, and the server holds nothing for the reader that went.
  peer.send('rtc:sdp', { to: slowId, description: { type: 'offer', sdp: 'v=0\r\n' } });
  assert.equal((await peer.next('rtc:error')).reason, 'no-such-user');
  const growth = rssMiB(pid) - rssBefore;
  assert.ok(growth < 256, `the server's memory grew by ${Math.round(growth)} MiB`);
  slow.close();
  peer.close();
});

test('a raw /pool/ws endpoint that stops reading is closed the same way', async () => {
  const before = await tooSlowCount();
  const slow = await PoolTestClient.connect(server.url, 'websocket');
  const slowId = String((await slow.join('slow-ws')).data.client_id);
  const peer = await PoolTestClient.connect(server.url, 'websocket');
  assert.equal((await peer.join('slow-ws')).type, 'rtc:joined');
  pause((slow as unknown as { ws: unknown }).ws);
  let sent = 0;
  let gone = false;
  const left = peer.next('rtc:close', (d) => d.id === slowId, 120_000).then(() => (gone = true));
  while (!gone && sent < MAX_EVENTS) {
    for (let i = 0; i < 8; i++) peer.send('rtc:sdp', { to: slowId, description: { type: 'offer', sdp: SDP } });
    sent += 8;
    await sleep(100);
  }
  await Promise.race([left, sleep(15_000)]);
  assert.ok(gone, `the reader was not dropped after ${sent} events of ${SDP.length} bytes`);
  assert.ok((await tooSlowCount()) > before, 'the metrics count it as too slow');
  slow.close();
  peer.close();
});

test('a Galène member that stops reading is closed once its queue is too large in bytes; the others see it leave and keep chatting', async () => {
  const slow = await GaleneTestClient.connect(server.wsUrl);
  assert.equal((await slow.join('slow-galene', 'slow', 'x')).kind, 'join');
  const chatters = await Promise.all([1, 2, 3, 4].map(() => GaleneTestClient.connect(server.wsUrl)));
  for (const [i, c] of chatters.entries()) assert.equal((await c.join('slow-galene', `chatter${i}`, 'x')).kind, 'join');
  pause((slow as unknown as { ws: unknown }).ws);
  // Four chatters at 8 chats of 32,768 characters a second each, under the rate limit: 1 MiB/s for the reader.
  const text = 'x'.repeat(32 * 1024);
  let gone = false;
  const left = chatters[0]!.next((f) => f.type === 'user' && f.kind === 'delete' && f.id === slow.id, 120_000, 'the slow member leaving').then(() => (gone = true));
  let sent = 0;
  while (!gone && sent < MAX_EVENTS) {
    for (const c of chatters) c.chat(text);
    sent += chatters.length;
    await sleep(125);
  }
  await Promise.race([left, sleep(15_000)]);
  assert.ok(gone, `the reader was not dropped after ${sent} chats of ${text.length} characters`);
  assert.ok((await tooSlowCount('galene')) >= 1, 'the metrics count it as too slow');
  // The others are undisturbed.
  const mark = `still here ${Math.random()}`;
  chatters[1]!.chat(mark);
  await chatters[2]!.next((f) => f.type === 'chat' && f.value === mark, 10_000, 'a chat after the slow reader went');
  for (const c of [slow, ...chatters]) c.close();
});
