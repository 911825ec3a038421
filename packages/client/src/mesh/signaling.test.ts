// The signalling channels against a scripted server on a stand-in
// WebSocket: what they send, and what they make of what the server says.
// (Negotiation and media run in Chromium: packages/server/test/mesh-browser.)
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { CamusSignaling } from './camus-signaling.ts';
import { RtcPoolWebSocket } from './rtcpool-signaling.ts';
import type { PeerInfo } from './signaling.ts';
import { ScriptedSocket } from './scripted-socket.test-support.ts';

const g = globalThis as { WebSocket?: unknown };
let saved: unknown;
beforeEach(() => {
  saved = g.WebSocket;
  g.WebSocket = ScriptedSocket;
});
afterEach(() => {
  g.WebSocket = saved;
});

const GC = 'ground control';
const ME = 'b'.repeat(32);
const LOWER = 'a'.repeat(32);
const HIGHER = 'c'.repeat(32);

/** Plays ground control through a Camus join; returns the socket. */
async function camusJoin(sig: CamusSignaling, clients: { id: string; username: string }[]): Promise<ScriptedSocket> {
  const joining = sig.join('lobby');
  await new Promise((r) => setTimeout(r, 0));
  const ws = ScriptedSocket.last!;
  assert.match(ws.url, /^ws:\/\/atrium\.test\/room\/lobby\/ws\?token=t$/);
  ws.receive({ sender: GC, receiver: ME, type: 'greeting', data: 'hello' });
  const ping = await ws.sentWhere((f) => f.type === 'ping');
  assert.equal(ping.receiver, GC);
  ws.receive({ sender: GC, receiver: ME, type: 'pong', data: ping.data });
  await ws.sentWhere((f) => f.type === 'get-ice-servers');
  ws.receive({ sender: GC, receiver: ME, type: 'ice-servers', data: [{ urls: ['stun:stun.test:3478'], kind: 'stun' }] });
  await ws.sentWhere((f) => f.type === 'get-room-info');
  ws.receive({ sender: GC, receiver: ME, type: 'room-info', data: { room_id: 'lobby', clients } });
  const info = await joining;
  assert.equal(info.id, ME);
  assert.deepEqual(info.iceServers, [{ urls: ['stun:stun.test:3478'] }]);
  return ws;
}

test('Camus: id from the first pong, ICE servers, the roster, and polite = ownId < peerId', async () => {
  const sig = new CamusSignaling('http://atrium.test', { token: 't' });
  const joined: PeerInfo[][] = [];
  sig.on('joined', (info) => joined.push(info.peers));
  await camusJoin(sig, [
    { id: LOWER, username: 'Ann' },
    { id: ME, username: 'Major Tom' },
    { id: HIGHER, username: 'Cy' },
  ]);
  assert.deepEqual(joined, [
    [
      { id: LOWER, polite: false, description: { username: 'Ann' } },
      { id: HIGHER, polite: true, description: { username: 'Cy' } },
    ],
  ]);
  assert.equal(sig.id, ME);
});

test('Camus: room-info changes become peer, gone and describe; pings are answered; relayed signalling reaches the pool', async () => {
  const sig = new CamusSignaling('http://atrium.test', { token: 't' });
  const ws = await camusJoin(sig, [
    { id: ME, username: 'Major Tom' },
    { id: LOWER, username: 'Ann' },
  ]);
  const seen: string[] = [];
  sig.on('peer', (p) => seen.push(`peer ${p.id[0]} ${p.polite}`));
  sig.on('gone', (id) => seen.push(`gone ${id[0]}`));
  sig.on('describe', (id, d) => seen.push(`describe ${id[0]} ${JSON.stringify(d)}`));
  sig.on('description', (from, d) => seen.push(`${d.type} from ${from[0]}`));
  sig.on('candidate', (from, c) => seen.push(`candidate from ${from[0]} ${c?.sdpMid}`));
  sig.on('bye', (from) => seen.push(`bye from ${from[0]}`));
  const errors: string[] = [];
  sig.on('error', (e) => errors.push(e.code));

  ws.receive({
    sender: GC,
    receiver: ME,
    type: 'room-info',
    data: {
      room_id: 'lobby',
      clients: [
        { id: ME, username: 'x' },
        { id: LOWER, username: 'Anna' },
        { id: HIGHER, username: 'Cy' },
      ],
    },
  });
  ws.receive({ sender: GC, receiver: ME, type: 'ping', data: 42 });
  assert.deepEqual(ws.sent.at(-1), { receiver: GC, type: 'pong', data: 42 });
  ws.receive({ sender: HIGHER, receiver: ME, type: 'offer', data: { type: 'offer', sdp: 'v=0' } });
  ws.receive({ sender: HIGHER, receiver: ME, type: 'icecandidate', data: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
  // A stranger's offer makes it a peer (as Camus does).
  const STRANGER = 'd'.repeat(32);
  ws.receive({ sender: STRANGER, receiver: ME, type: 'offer', data: { type: 'offer', sdp: 'v=0' } });
  // A peer that says bye stays away while it is in the room...
  ws.receive({ sender: LOWER, receiver: ME, type: 'bye', data: 1 });
  ws.receive({ sender: LOWER, receiver: ME, type: 'answer', data: { type: 'answer', sdp: 'v=0' } });
  ws.receive({
    sender: GC,
    receiver: ME,
    type: 'room-info',
    data: {
      room_id: 'lobby',
      clients: [
        { id: ME, username: 'x' },
        { id: LOWER, username: 'Anna' },
        { id: STRANGER, username: 'Dee' },
      ],
    },
  });
  ws.receive({ type: 'nonsense' });
  assert.deepEqual(seen, [
    `describe a {"username":"Anna"}`,
    'peer c true',
    'offer from c',
    'candidate from c 0',
    'peer d true',
    'offer from d',
    'bye from a',
    'gone c',
    `describe d {"username":"Dee"}`,
  ]);
  assert.deepEqual(errors, ['bad-frame']);

  const ended: string[] = [];
  sig.on('end', (r) => ended.push(r));
  sig.closePeer(HIGHER);
  sig.leave();
  assert.deepEqual(
    ws.sent.slice(-2).map((f) => [f.receiver, f.type]),
    [
      [HIGHER, 'bye'],
      [GC, 'bye'],
    ],
  );
  assert.equal(ended.length, 1);
});

test("Camus: a refused join rejects with the server's sentence", async () => {
  const sig = new CamusSignaling('https://atrium.test');
  const joining = sig.join('closed');
  await new Promise((r) => setTimeout(r, 0));
  const ws = ScriptedSocket.last!;
  assert.match(ws.url, /^wss:\/\/atrium\.test\/room\/closed\/ws$/);
  ws.receive({ sender: GC, receiver: ME, type: 'error', data: 'you cannot enter room "closed": not permitted' });
  ws.close(4003, 'not permitted');
  await assert.rejects(joining, (e: Error & { code?: string }) => e.code === 'join-refused' && /not permitted/.test(e.message));
});

test('RTCPool over a WebSocket: join, roles, relayed signalling, and a refused join', async () => {
  const sig = new RtcPoolWebSocket('http://atrium.test/', { token: 'jwt' });
  const joining = sig.join('standup');
  await new Promise((r) => setTimeout(r, 0));
  const ws = ScriptedSocket.last!;
  assert.equal(ws.url, 'ws://atrium.test/pool/ws?token=jwt');
  assert.deepEqual(await ws.sentWhere((f) => f.type === 'rtc:join'), { type: 'rtc:join', data: { pool: 'standup' } });
  ws.receive({ type: 'rtc:joined', data: { client_id: 'me', peers: ['p1'], descriptions: { p1: { name: 'P' }, me: null }, pool: 'standup' } });
  const info = await joining;
  assert.deepEqual(info.peers, [{ id: 'p1', polite: true, description: { name: 'P' } }]);

  const seen: unknown[] = [];
  sig.on('peer', (p) => seen.push(['peer', p]));
  sig.on('describe', (id, d) => seen.push(['describe', id, d]));
  sig.on('description', (from, d) => seen.push(['sdp', from, d.type]));
  sig.on('candidate', (from, c) => seen.push(['candidate', from, c]));
  sig.on('gone', (id) => seen.push(['gone', id]));
  ws.receive({ type: 'rtc:peer', data: { id: 'p2', uid: 'p2' } });
  ws.receive({ type: 'rtc:describe', data: { id: 'p2', uid: 'p2', description: { name: 'Q' } } });
  ws.receive({ type: 'rtc:sdp', data: { peer: 'p2', description: { type: 'offer', sdp: 'v=0' } } });
  ws.receive({ type: 'rtc:candidate', data: { from: 'p2', candidate: { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null } } });
  ws.receive({ type: 'rtc:candidate', data: { from: 'p2', candidate: null } });
  ws.receive({ type: 'rtc:close', data: { id: 'p1', uid: 'p1' } });
  assert.deepEqual(seen, [
    ['peer', { id: 'p2', polite: false, description: null }],
    ['describe', 'p2', { name: 'Q' }],
    ['sdp', 'p2', 'offer'],
    ['candidate', 'p2', { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0 }],
    ['candidate', 'p2', null],
    ['gone', 'p1'],
  ]);

  sig.sendCandidate('p2', null);
  sig.sendDescription('p2', { type: 'answer', sdp: 'v=0' });
  assert.deepEqual(ws.sent.slice(-2), [
    { type: 'rtc:candidate', data: { for: 'p2', candidate: null } },
    { type: 'rtc:sdp', data: { to: 'p2', description: { type: 'answer', sdp: 'v=0' } } },
  ]);

  const refused = new RtcPoolWebSocket('http://atrium.test');
  const r = refused.join('full');
  await new Promise((res) => setTimeout(res, 0));
  ScriptedSocket.last!.receive({ type: 'rtc:error', data: { message: 'could not join pool "full": the pool is full', reason: 'group-full' } });
  await assert.rejects(r, (e: Error & { code?: string }) => e.code === 'join-refused' && /full/.test(e.message));
});
