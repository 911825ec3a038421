// The rtcpool-style transceiver adapter and the Camus-style facade (Manager,
// Signaler, VideoPeer), wired to a Pool, against stand-ins: a transceiver
// the test plays the server through, a Camus WebSocket the test plays ground
// control through, and a peer connection that records what is done to it.
// (Real negotiation and media: packages/server/test/mesh-browser.)
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { Manager, type VideoPeer } from './camus-client.ts';
import type { ManagedConnection } from './connection.ts';
import { Pool } from './pool.ts';
import { ScriptedSocket } from './scripted-socket.test-support.ts';
import { RtcPoolTransceiver, Transceiver } from './transceiver.ts';

/** A peer connection that negotiates nothing and records senders, channels and configuration. */
class FakePeerConnection extends EventTarget {
  static made: FakePeerConnection[] = [];
  readonly senders: { track: MediaStreamTrack | null; streams: MediaStream[]; replaceTrack(t: MediaStreamTrack | null): Promise<void> }[] = [];
  readonly channels: (EventTarget & { label: string; init: RTCDataChannelInit })[] = [];
  connectionState: RTCPeerConnectionState = 'new';
  iceConnectionState: RTCIceConnectionState = 'new';
  signalingState: RTCSignalingState = 'stable';
  iceRestarts = 0;

  constructor(public config: RTCConfiguration) {
    super();
    FakePeerConnection.made.push(this);
  }

  addTrack(track: MediaStreamTrack, ...streams: MediaStream[]) {
    const sender = {
      track: track as MediaStreamTrack | null,
      streams,
      replaceTrack: async (t: MediaStreamTrack | null) => {
        sender.track = t;
      },
    };
    this.senders.push(sender);
    return sender;
  }
  getSenders() {
    return this.senders;
  }
  getTransceivers() {
    return [];
  }
  createDataChannel(label: string, init: RTCDataChannelInit) {
    const channel = Object.assign(new EventTarget(), { label, init });
    this.channels.push(channel);
    return channel;
  }
  getConfiguration() {
    return this.config;
  }
  setConfiguration(config: RTCConfiguration) {
    this.config = config;
  }
  restartIce() {
    this.iceRestarts++;
  }
  close() {
    this.connectionState = 'closed';
    this.signalingState = 'closed';
  }
}

class FakeStream {
  private readonly tracks: MediaStreamTrack[] = [];
  addTrack(t: MediaStreamTrack) {
    this.tracks.push(t);
  }
  removeTrack(t: MediaStreamTrack) {
    this.tracks.splice(this.tracks.indexOf(t), 1);
  }
  getTracks() {
    return [...this.tracks];
  }
}

const g = globalThis as Record<string, unknown>;
const STUBS = { WebSocket: ScriptedSocket, RTCPeerConnection: FakePeerConnection, RTCRtpSender: class {}, MediaStream: FakeStream };
let saved: Record<string, unknown> = {};
beforeEach(() => {
  saved = {};
  for (const [k, v] of Object.entries(STUBS)) {
    saved[k] = g[k];
    g[k] = v;
  }
  FakePeerConnection.made = [];
});
afterEach(() => {
  for (const k of Object.keys(STUBS)) g[k] = saved[k];
});

const tick = () => new Promise((r) => setTimeout(r, 0));
const track = (kind: 'audio' | 'video', id: string) => ({ kind, id, enabled: true, stop() {} }) as unknown as MediaStreamTrack;
const pcOf = (conn: ManagedConnection | VideoPeer) => FakePeerConnection.made.find((pc) => (pc.senders as unknown) === ('connection' in conn ? conn.connection : conn).getSenders())!;

// ---------------------------------------------------------------------------
// RtcPoolTransceiver

/** A custom transceiver as rtcpool documents one: the test is its server. */
class TestTransceiver extends Transceiver {
  readonly sent: [string, unknown][] = [];
  closed = false;
  send(type: string, data: unknown): void {
    this.sent.push([type, data]);
  }
  override close(): void {
    this.closed = true;
  }
  serve(type: string, data: unknown): void {
    this.deliver(type, data);
  }
}

test('RtcPoolTransceiver: a Pool joins, meets peers, relays signalling and leaves over any transceiver', async () => {
  const t = new TestTransceiver();
  const pool = new Pool(new RtcPoolTransceiver(t), { rtcConfiguration: { iceServers: [{ urls: 'stun:stun.test' }] } });
  const seen: string[] = [];
  pool.on('peer', (c) => seen.push(`peer ${c.id} polite=${c.polite}`));
  pool.on('describe', (c, d) => seen.push(`describe ${c.id} ${JSON.stringify(d)}`));
  pool.on('close', (c, r) => seen.push(`close ${c.id} ${r}`));
  const errors: string[] = [];
  pool.on('error', (e) => errors.push(`${e.code}: ${e.message}`));

  const joining = pool.join('standup');
  await tick();
  assert.deepEqual(t.sent, [['rtc:join', { pool: 'standup' }]]);
  t.serve('rtc:joined', { client_id: 'me', peers: ['p1', 'me'], descriptions: { p1: { name: 'P' } }, pool: 'standup' });
  const info = await joining;
  assert.equal(info.id, 'me');
  assert.equal(pool.get_description('p1'), pool.getDescription('p1'));
  assert.deepEqual(pool.get_description('p1'), { name: 'P' });

  t.serve('rtc:peer', { id: 'p2', uid: 'p2' });
  t.serve('rtc:describe', { id: 'p2', uid: 'p2', description: { name: 'Q' } });
  // The payload may also come as a MessageEvent's `data`.
  t.dispatchEvent(new MessageEvent('rtc:close', { data: { id: 'p1', uid: 'p1' } }));
  // A malformed event and a transceiver's own error are reported, not believed.
  t.serve('rtc:peer', { who: 'p3' });
  t.dispatchEvent(new CustomEvent('error', { detail: { message: 'Server sent invalid signalling message', data: '{' } }));
  assert.deepEqual(seen, ['peer p1 polite=true', 'peer p2 polite=false', 'describe p2 {"name":"Q"}', 'close p1 left']);
  assert.deepEqual(
    errors.map((e) => e.split(':')[0]),
    ['bad-frame', 'bad-frame'],
  );
  assert.match(errors[1]!, /invalid signalling message/);
  assert.deepEqual(
    pool.connections.map((c) => c.id),
    ['p2'],
  );
  assert.deepEqual(FakePeerConnection.made[1]!.config, { iceServers: [{ urls: 'stun:stun.test' }] });

  // What the negotiator sends goes out through `send(type, data)`.
  pool.signaling.sendDescription('p2', { type: 'offer', sdp: 'v=0' });
  pool.signaling.sendCandidate('p2', { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0 });
  assert.deepEqual(t.sent.slice(1), [
    ['rtc:sdp', { to: 'p2', description: { type: 'offer', sdp: 'v=0' } }],
    ['rtc:candidate', { for: 'p2', candidate: { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null } }],
  ]);

  const ended: string[] = [];
  pool.on('end', (r) => ended.push(r));
  pool.close();
  assert.equal(t.closed, true);
  assert.deepEqual(ended, ['left the pool']);
  // Nothing is listened to any more.
  t.serve('rtc:peer', { id: 'p4', uid: 'p4' });
  assert.equal(pool.connections.length, 0);
});

test('RtcPoolTransceiver: a refused join rejects; a plain EventTarget with send() works, and its close event ends the pool', async () => {
  const refusing = new TestTransceiver();
  const r = new Pool(new RtcPoolTransceiver(refusing)).join('full');
  await tick();
  refusing.serve('rtc:error', { message: 'could not join pool "full": the pool is full', reason: 'group-full' });
  await assert.rejects(r, (e: Error & { code?: string }) => e.code === 'join-refused' && /full/.test(e.message));
  assert.equal(refusing.closed, true);

  const sent: unknown[] = [];
  const plain = Object.assign(new EventTarget(), { send: (type: string, data: unknown) => sent.push([type, data]) });
  const pool = new Pool(new RtcPoolTransceiver(plain));
  const joining = pool.join('p');
  await tick();
  assert.deepEqual(sent, [['rtc:join', { pool: 'p' }]]);
  plain.dispatchEvent(new CustomEvent('rtc:joined', { detail: { client_id: 'me', peers: [], descriptions: {}, pool: 'p' } }));
  await joining;
  const ended = pool.next('end');
  plain.dispatchEvent(new Event('close'));
  assert.deepEqual(await ended, ['the transceiver closed']);
});

// ---------------------------------------------------------------------------
// Manager / Signaler / VideoPeer

const GC = 'ground control';
const ME = 'b'.repeat(32);
const ANN = 'a'.repeat(32);
const CY = 'c'.repeat(32);

/** Plays ground control through a Manager's start(); returns the socket. */
async function start(manager: Manager, clients: { id: string; username: string }[]): Promise<ScriptedSocket> {
  const starting = manager.start();
  await tick();
  const ws = ScriptedSocket.last!;
  const ping = await ws.sentWhere((f) => f.type === 'ping');
  ws.receive({ sender: GC, receiver: ME, type: 'pong', data: ping.data });
  await ws.sentWhere((f) => f.type === 'get-ice-servers');
  ws.receive({ sender: GC, receiver: ME, type: 'ice-servers', data: [{ urls: ['stun:stun.test:3478'], kind: 'stun' }] });
  await ws.sentWhere((f) => f.type === 'get-room-info');
  ws.receive({ sender: GC, receiver: ME, type: 'room-info', data: { room_id: 'lobby', clients } });
  await starting;
  return ws;
}

test('Manager: VideoPeers for the room, local tracks on each, usernames, comings and goings, text', async () => {
  const manager = new Manager({ server: 'http://atrium.test', room: 'lobby', username: 'Major Tom' });
  const events: string[] = [];
  manager.on('videopeer', (p) => {
    events.push(`videopeer ${p.id[0]} ${p.username} polite=${p.polite}`);
    p.on('usernamechange', (u) => events.push(`usernamechange ${p.id[0]} ${u}`));
    p.on('shutdown', (r) => events.push(`shutdown ${p.id[0]} ${r}`));
  });
  manager.on('videopeerremoved', (p, r) => events.push(`videopeerremoved ${p.id[0]} ${r}`));
  manager.on('text', (t) => events.push(`text ${t.from}: ${t.text}`));

  const camera = track('video', 'cam');
  await manager.setVideoTrack(camera);
  const ws = await start(manager, [
    { id: ANN, username: 'Ann' },
    { id: ME, username: 'Major Tom' },
  ]);
  assert.match(ws.url, /^ws:\/\/atrium\.test\/room\/lobby\/ws\?username=Major\+Tom$/);
  assert.equal(manager.id, ME);
  assert.deepEqual(manager.iceServers, [{ urls: ['stun:stun.test:3478'] }]);
  const ann = manager.getVideoPeer(ANN)!;
  assert.equal(ann.client_id, ANN);
  // The camera went to the peer at once, with the local stream.
  assert.deepEqual(
    pcOf(ann).senders.map((s) => [s.track?.id, s.streams[0] === manager.localVideoStream]),
    [['cam', true]],
  );
  assert.deepEqual(manager.localVideoStream.getTracks(), [camera]);

  // A new camera replaces the old one on the same sender; a microphone is added.
  await manager.setVideoTrack(track('video', 'cam2'));
  await manager.setAudioTrack(track('audio', 'mic'));
  assert.deepEqual(
    pcOf(ann).senders.map((s) => s.track?.id),
    ['cam2', 'mic'],
  );
  assert.deepEqual(
    manager.localVideoStream.getTracks().map((t) => t.id),
    ['cam2', 'mic'],
  );
  assert.equal(ann.getTrack('audio')?.id, 'mic');

  // Someone comes (gets both tracks), Ann renames herself, and a chat message arrives.
  ws.receive({
    sender: GC,
    receiver: ME,
    type: 'room-info',
    data: {
      room_id: 'lobby',
      clients: [
        { id: ANN, username: 'Anna' },
        { id: ME, username: 'Major Tom' },
        { id: CY, username: 'Cy' },
      ],
    },
  });
  assert.deepEqual(
    pcOf(manager.getVideoPeer(CY)!).senders.map((s) => s.track?.id),
    ['cam2', 'mic'],
  );
  ws.receive({ sender: CY, receiver: 'room', type: 'text', data: { from: 'Cy', time: 1, text: 'hi' } });
  assert.equal(manager.textMessages.length, 1);

  // Signaler: raw messages, sendReceive, and a room-info it asked for still updates the peers.
  const seenRaw: string[] = [];
  manager.addMessageListener({ sender: CY, type: 'text' }, (m) => seenRaw.push(m.type));
  ws.receive({ sender: CY, receiver: ME, type: 'text', data: { from: 'Cy', time: 2, text: 'psst' } });
  assert.deepEqual(seenRaw, ['text']);
  const finding = manager.findPeers();
  await ws.sentWhere((f) => f.type === 'get-room-info' && ws.sent.filter((x) => x.type === 'get-room-info').length === 2);
  ws.receive({
    sender: GC,
    receiver: ME,
    type: 'room-info',
    data: {
      room_id: 'lobby',
      clients: [
        { id: ME, username: 'Major Tom' },
        { id: CY, username: 'Cy' },
      ],
    },
  });
  assert.deepEqual(
    (await finding).clients.map((c) => c.username),
    ['Major Tom', 'Cy'],
  );

  // We drop Cy ourselves: bye to Cy, and the peer is removed.
  manager.removeVideoPeer(CY);
  assert.deepEqual(ws.sent.at(-1), { receiver: CY, type: 'bye', data: ws.sent.at(-1)!.data });
  assert.equal(manager.videoPeers.size, 0);

  assert.deepEqual(events, [
    `videopeer a Ann polite=false`,
    `usernamechange a Anna`,
    `videopeer c Cy polite=true`,
    `text Cy: hi`,
    `text Cy: psst`,
    `videopeerremoved a left`,
    `shutdown a left`,
    `videopeerremoved c closed`,
    `shutdown c closed`,
  ]);

  // Leaving: bye to ground control, `shutdown`, and a socket closed.
  const down = manager.next('shutdown');
  manager.shutdown();
  await down;
  assert.deepEqual([ws.sent.at(-1)!.receiver, ws.sent.at(-1)!.type], [GC, 'bye']);
  assert.equal(manager.signaler.connectionState, 'closed');
});

test("VideoPeer: dataChannel as rtcpool (open channel, or raw at once), ICE servers, and the Signaler's words", async () => {
  const manager = new Manager({ server: 'https://atrium.test', room: 'r', rtcConfiguration: { iceServers: [{ urls: 'stun:mine.test' }] } });
  const ws = await start(manager, [
    { id: ME, username: 'Major Tom' },
    { id: CY, username: 'Cy' },
  ]);
  const cy = manager.getVideoPeer(CY)!;
  const pc = pcOf(cy);
  assert.deepEqual(pc.config.iceServers, [{ urls: 'stun:mine.test' }]);

  const raw = cy.dataChannel('raw', { negotiated: true, id: 7 }, true);
  assert.equal(raw.label, 'raw');
  assert.deepEqual(pc.channels[0]!.init, { negotiated: true, id: 7 });
  const box: { opened?: RTCDataChannel } = {};
  const chat = cy.dataChannel('chat').then((c) => (box.opened = c));
  assert.deepEqual(pc.channels[1]!.init, {});
  await tick();
  assert.equal(box.opened, undefined);
  pc.channels[1]!.dispatchEvent(new Event('open'));
  assert.equal((await chat).label, 'chat');
  const doomed = cy.connection.dataChannel('doomed');
  pc.channels[2]!.dispatchEvent(new Event('close'));
  await assert.rejects(doomed, (e: Error & { code?: string }) => e.code === 'closed');

  // New ICE servers: present peers restart ICE with them, future ones start with them.
  manager.iceServers = [{ urls: 'turn:turn.test', username: 'u', credential: 'c' }];
  assert.deepEqual(pc.config.iceServers, [{ urls: 'turn:turn.test', username: 'u', credential: 'c' }]);
  assert.equal(pc.iceRestarts, 1);
  ws.receive({
    sender: GC,
    receiver: ME,
    type: 'room-info',
    data: {
      room_id: 'r',
      clients: [
        { id: ME, username: 'x' },
        { id: CY, username: 'Cy' },
        { id: ANN, username: 'Ann' },
      ],
    },
  });
  assert.deepEqual(pcOf(manager.getVideoPeer(ANN)!).config.iceServers, [{ urls: 'turn:turn.test', username: 'u', credential: 'c' }]);

  // The Signaler speaks Camus.
  const s = manager.signaler;
  assert.equal(s.connectionState, 'open');
  const pinging = s.ping();
  const ping = await ws.sentWhere((f) => f.type === 'ping' && f.data !== ws.sent[0]!.data);
  ws.receive({ sender: GC, receiver: ME, type: 'pong', data: ping.data });
  assert.equal((await pinging).receiver, ME);
  const fetching = s.fetchIceServers();
  await tick();
  ws.receive({ sender: GC, receiver: ME, type: 'ice-servers', data: [{ urls: ['turn:t.test'], username: 'a', credential: 'b', kind: 'turn' }] });
  assert.deepEqual(await fetching, [{ urls: ['turn:t.test'], username: 'a', credential: 'b', kind: 'turn' }]);
  s.text('hello', 'Major Tom', CY, 5);
  s.greeting();
  manager.setUsername('Ziggy');
  assert.deepEqual(ws.sent.slice(-3), [
    { receiver: CY, type: 'text', data: { from: 'Major Tom', time: 5, text: 'hello' } },
    { receiver: GC, type: 'greeting', data: ws.sent.at(-2)!.data },
    { receiver: GC, type: 'profile', data: { username: 'Ziggy' } },
  ]);

  // A request still pending when the room connection ends is rejected, not left hanging.
  const pending = s.getRoomInfo();
  const closed = s.next('shutdown');
  s.shutdown();
  await closed;
  await assert.rejects(pending, (e: Error & { code?: string }) => e.code === 'closed');
  assert.equal(manager.videoPeers.size, 0);
});
