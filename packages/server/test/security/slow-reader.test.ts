// Issue 10, row 2: an RTCPool socket.io client paused its socket while a
// peer sent it 131 KB rtc:sdp events at the allowed rate; the server's RSS
// went from 209 MB to 1.29 GB and the reader was never dropped (the
// socket.io cap counted packets, not bytes). Every dialect's output is now
// bounded in bytes, socket.io's queue included: a reader that does not read
// is closed, the others see it leave, and the server's memory stays put.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { PoolTestClient } from '../mesh/support.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

/** An SDP as large as RTCPool allows a description to be, about. */
const SDP = `v=0\r\n${'a=x\r\n'.repeat(24_000)}`;
/** Events sent at most: what a packet-counting cap would still hold, many times what a byte limit allows. */
const MAX_EVENTS = 800;

let server: RunningServer;

before(async () => {
  server = await startServer({ args: ['--no-media'] });
});
after(() => server?.stop());

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function tooSlowCount(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = /^atrium_errors_total\{dialect="rtcpool",kind="too-slow"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
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
