// The negotiation core against a stand-in peer connection whose every
// operation takes a while: steps never overlap, offers go out one at a time,
// candidates wait for the descriptions they belong to.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Negotiator, type Signaling } from './negotiator.ts';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** Just enough of RTCPeerConnection, with slow operations that must not overlap. */
class SlowPeerConnection extends EventTarget {
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: { type: string; sdp: string } | null = null;
  readonly ops: string[] = [];
  readonly added: string[] = [];
  failNext: string | null = null;
  private busy = false;
  private offers = 0;

  private async op<T>(name: string, f: () => T): Promise<T> {
    if (this.busy) throw new Error(`${name} overlapped another operation`);
    this.busy = true;
    this.ops.push(name);
    await tick(Math.random() * 5);
    this.busy = false;
    if (this.failNext === name) {
      this.failNext = null;
      throw new Error(`${name} failed`);
    }
    return f();
  }

  createOffer(options?: { iceRestart?: boolean }) {
    return this.op('createOffer', () => ({ type: 'offer' as const, sdp: `offer-${++this.offers}${options?.iceRestart ? '-restart' : ''}` }));
  }
  createAnswer() {
    return this.op('createAnswer', () => ({ type: 'answer' as const, sdp: `answer-to-${this.remoteDescription?.sdp}` }));
  }
  setLocalDescription(d: { type: string; sdp: string }) {
    return this.op('setLocal', () => void (this.localDescription = d));
  }
  setRemoteDescription(d: { type: string; sdp: string }) {
    return this.op('setRemote', () => void (this.remoteDescription = d));
  }
  addIceCandidate(c: { candidate: string }) {
    return this.op('addIce', () => void this.added.push(c.candidate));
  }
  restartIce() {
    this.dispatchEvent(new Event('negotiationneeded'));
  }
  /** The browser found a local candidate. */
  gather(candidate: string) {
    const e = new Event('icecandidate') as Event & { candidate: unknown };
    e.candidate = { toJSON: () => ({ candidate, sdpMid: '0' }) };
    this.dispatchEvent(e);
  }
  needNegotiation() {
    this.dispatchEvent(new Event('negotiationneeded'));
  }
}

function setup(role: 'offerer' | 'answerer') {
  const pc = new SlowPeerConnection();
  const sent: string[] = [];
  const errors: unknown[] = [];
  let negotiated = 0;
  let up = true;
  const signaling: Signaling = {
    canSend: () => up,
    sendDescription: (type, sdp) => void sent.push(`${type}:${sdp}`),
    sendCandidate: (c) => void sent.push(`ice:${c.candidate}`),
  };
  const n = new Negotiator(pc as unknown as RTCPeerConnection, role, signaling, {
    onerror: (e) => void errors.push(e),
    onnegotiated: () => void negotiated++,
  });
  return {
    pc,
    n,
    sent,
    errors,
    negotiated: () => negotiated,
    setUp: (v: boolean) => {
      up = v;
    },
  };
}

async function until(what: string, f: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (f()) return;
    await tick(2);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('offerer: one offer at a time; a need that arises meanwhile is met after the answer', async () => {
  const t = setup('offerer');
  t.pc.needNegotiation();
  t.pc.needNegotiation();
  await until('the first offer', () => t.sent.length === 1);
  assert.deepEqual(t.sent, ['offer:offer-1']);
  t.pc.needNegotiation();
  await tick(20);
  assert.equal(t.sent.length, 1, 'no second offer while the first is unanswered');
  await t.n.remoteAnswer('answer-1');
  await until('the second offer', () => t.sent.length === 2);
  assert.equal(t.sent[1], 'offer:offer-2');
  await t.n.remoteAnswer('answer-2');
  assert.equal(t.negotiated(), 2);
  assert.deepEqual(t.errors, []);
});

test('offerer: while signalling is down the need is kept; resume() offers', async () => {
  const t = setup('offerer');
  t.setUp(false);
  t.pc.needNegotiation();
  await tick(20);
  assert.deepEqual(t.sent, []);
  t.setUp(true);
  t.n.resume();
  await until('the offer', () => t.sent.length === 1);
});

test('local candidates wait for our first description; remote ones for theirs', async () => {
  const t = setup('offerer');
  t.pc.gather('early-local');
  t.n.remoteCandidate({ candidate: 'early-remote-1' });
  t.n.remoteCandidate({ candidate: 'early-remote-2' });
  t.pc.needNegotiation();
  await until('the offer and the held candidate', () => t.sent.length === 2);
  assert.deepEqual(t.sent, ['offer:offer-1', 'ice:early-local']);
  t.pc.gather('late-local');
  assert.equal(t.sent.at(-1), 'ice:late-local', 'sent at once after the description');
  assert.deepEqual(t.pc.added, []);
  await t.n.remoteAnswer('answer-1');
  assert.deepEqual(t.pc.added, ['early-remote-1', 'early-remote-2']);
  t.n.remoteCandidate({ candidate: 'late-remote' });
  await until('the late candidate', () => t.pc.added.length === 3);
  assert.deepEqual(t.pc.ops.slice(0, 3), ['createOffer', 'setLocal', 'setRemote']);
});

test('answerer: offers back to back are answered in order, never overlapping', async () => {
  const t = setup('answerer');
  const a = t.n.remoteOffer('o1');
  t.n.remoteCandidate({ candidate: 'c1' });
  const b = t.n.remoteOffer('o2-restart');
  await Promise.all([a, b]);
  assert.deepEqual(t.sent, ['answer:answer-to-o1', 'answer:answer-to-o2-restart']);
  assert.deepEqual(t.pc.ops, ['setRemote', 'createAnswer', 'setLocal', 'addIce', 'setRemote', 'createAnswer', 'setLocal']);
  assert.equal(t.negotiated(), 2);
});

test('a failed step is reported to its caller and the queue goes on', async () => {
  const t = setup('answerer');
  t.pc.failNext = 'setRemote';
  await assert.rejects(() => t.n.remoteOffer('bad'), /setRemote failed/);
  await t.n.remoteOffer('good');
  assert.deepEqual(t.sent, ['answer:answer-to-good']);

  const o = setup('offerer');
  o.pc.failNext = 'createOffer';
  o.pc.needNegotiation();
  await until('the error', () => o.errors.length === 1);
  o.n.resume();
  await until('the retried offer', () => o.sent.length === 1);
});

test('restartIce offers again with an ICE restart; close() stops everything', async () => {
  const t = setup('offerer');
  t.pc.needNegotiation();
  await until('the offer', () => t.sent.length === 1);
  await t.n.remoteAnswer('a1');
  t.n.restartIce();
  await until('the restart offer', () => t.sent.length === 2);
  assert.match(t.sent[1]!, /-restart$/);
  await t.n.remoteAnswer('a2');
  t.n.close();
  t.pc.needNegotiation();
  t.pc.gather('after-close');
  await tick(20);
  assert.equal(t.sent.length, 2);
});
