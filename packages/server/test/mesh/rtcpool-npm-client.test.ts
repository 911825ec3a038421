// The npm package rtcpool@3.0.2, unchanged, against a real server process:
// its Pool and its two signalling channels (raw WebSocket and socket.io) run
// in Node. Node has no RTCPeerConnection, so a stand-in that negotiates the
// way a browser's does (offer/answer states, trickled candidates ending with
// null) lets the Pool's own perfect negotiation run end to end through the
// server. Media needs a browser: that part is tested with Chromium elsewhere.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { hashPassword } from '../../src/groups/index.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

const require = createRequire(import.meta.url);

/** A peer connection without media: enough for negotiation to run as in a browser. */
class StandInPeerConnection extends EventTarget {
  signalingState: 'stable' | 'have-local-offer' | 'have-remote-offer' | 'closed' = 'stable';
  iceConnectionState = 'new';
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: { type: string; sdp: string } | null = null;
  readonly candidates: unknown[] = [];
  private gathered = 0;

  constructor(readonly config: unknown) {
    super();
  }

  async setLocalDescription(desc?: { type: string; sdp?: string }): Promise<void> {
    await Promise.resolve();
    const type = desc?.type ?? (this.signalingState === 'have-remote-offer' ? 'answer' : 'offer');
    this.localDescription = { type, sdp: `v=0\r\ns=stand-in ${type} ${++this.gathered}\r\n` };
    this.signalingState = type === 'offer' ? 'have-local-offer' : 'stable';
    // Trickle ICE: one host candidate, then the end of candidates.
    setTimeout(() => {
      this.emitCandidate({ candidate: `candidate:${this.gathered} 1 udp 2122260223 127.0.0.1 ${50000 + this.gathered} typ host`, sdpMid: '0', sdpMLineIndex: 0 });
      this.emitCandidate(null);
    }, 5);
  }

  async setRemoteDescription(desc: { type: string; sdp: string }): Promise<void> {
    await Promise.resolve();
    this.remoteDescription = { type: desc.type, sdp: desc.sdp };
    this.signalingState = desc.type === 'offer' ? 'have-remote-offer' : 'stable';
  }

  async addIceCandidate(candidate: unknown): Promise<void> {
    this.candidates.push(candidate);
  }

  /** What adding a track or a data channel does in a browser. */
  needNegotiation(): void {
    this.dispatchEvent(new Event('negotiationneeded'));
  }

  restartIce(): void {}

  close(): void {
    this.signalingState = 'closed';
  }

  private emitCandidate(candidate: unknown): void {
    const e = new Event('icecandidate') as Event & { candidate: unknown };
    e.candidate = candidate;
    this.dispatchEvent(e);
  }
}

interface NpmPool {
  readonly id: string | null;
  readonly nconnections: number;
  readonly _raw_connections: StandInPeerConnection[];
  readonly events: EventTarget;
  join(pool: string): void;
  close(): void;
  getConnection(id: string): { id: string; description: unknown } | null;
}

let server: RunningServer;
const adminAuth = `Basic ${Buffer.from('root:rootpw').toString('base64')}`;

before(async () => {
  server = await startServer({ config: { users: { root: { password: await hashPassword('rootpw'), permissions: 'admin' } } } });
  (globalThis as Record<string, unknown>).RTCPeerConnection = StandInPeerConnection;
});
after(async () => {
  delete (globalThis as Record<string, unknown>).RTCPeerConnection;
  await server.stop();
});

// biome-ignore lint/suspicious/noExplicitAny: the npm client's events carry untyped details
function once(target: EventTarget, type: string, timeoutMs = 5000): Promise<Event & { detail?: any }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${type}" event within ${timeoutMs} ms`)), timeoutMs);
    target.addEventListener(
      type,
      (e) => {
        clearTimeout(timer);
        // biome-ignore lint/suspicious/noExplicitAny: as above
        resolve(e as Event & { detail?: any });
      },
      { once: true },
    );
  });
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('rtcpool 3.0.2 as published: Pools over both signalling channels join, negotiate, describe and close through Atrium', async () => {
  const rtcpool = require('rtcpool') as {
    Pool: new (config: unknown, signaller: unknown) => NpmPool;
    signalling: { websocket: new (ws: unknown) => unknown; socket: { io: new (socket: unknown) => unknown } };
  };
  const wsUrl = `${server.url.replace(/^http/, 'ws')}/pool/ws`;
  const a = new rtcpool.Pool({ iceServers: [] }, new rtcpool.signalling.websocket(new WebSocket(wsUrl)));
  const b = new rtcpool.Pool({ iceServers: [] }, new rtcpool.signalling.socket.io(io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true })));

  // Join: a first, then b, which sees a as a peer; a is told of b.
  const aJoined = once(a.events, 'join');
  a.join('npm-pool');
  await aJoined;
  assert.match(a.id!, /^[0-9a-f-]{36}$/);
  const aPeer = once(a.events, 'peer');
  const bJoined = once(b.events, 'join');
  b.join('npm-pool');
  await bJoined;
  await aPeer;
  assert.equal(b.nconnections, 1);
  assert.equal(a.nconnections, 1);
  assert.ok(b.getConnection(a.id!));
  assert.ok(a.getConnection(b.id!));

  // Negotiation as the Pool does it: a offers, b (polite) answers, candidates trickle both ways.
  const pcA = a._raw_connections[0]!;
  const pcB = b._raw_connections[0]!;
  pcA.needNegotiation();
  await until(() => pcA.remoteDescription?.type === 'answer', "a to get b's answer");
  assert.equal(pcB.remoteDescription?.type, 'offer');
  assert.equal(pcB.localDescription?.type, 'answer');
  assert.equal(pcA.signalingState, 'stable');
  assert.equal(pcB.signalingState, 'stable');
  await until(() => pcA.candidates.length >= 2 && pcB.candidates.length >= 2, 'candidates both ways');
  assert.match(JSON.stringify(pcB.candidates[0]), /typ host/);
  assert.equal(pcB.candidates.at(-1), null, 'the end of candidates arrives as null');

  // A description set by the back end reaches the peer's Pool.
  const described = once(a.events, 'describe');
  const put = await fetch(`${server.url}/galene-api/v0/.groups/npm-pool/.clients/${b.id}/.description`, {
    method: 'PUT',
    headers: { authorization: adminAuth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Bea' }),
  });
  assert.equal(put.status, 204);
  const d = await described;
  assert.deepEqual(d.detail.description, { name: 'Bea' });
  assert.deepEqual(a.getConnection(b.id!)!.description, { name: 'Bea' });

  // b leaves: a's Pool closes its connection to b.
  const closed = once(a.events, 'close');
  b.close();
  await closed;
  assert.equal(a.nconnections, 0);
  a.close();
});
