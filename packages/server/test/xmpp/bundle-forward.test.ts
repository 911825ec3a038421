// The layer forwarding of a bundle session (media/werift/bundle-forward.ts),
// fed packets directly: one SSRC's sequence numbers, timestamps and VP8
// picture ids stay continuous across simulcast switches, a switch waits for
// a keyframe of the new layer, a layer the publisher stopped sending is
// replaced by the nearest live one, and the tap's bytes are never changed.
// (lib-jitsi-meet.test.ts shows the same in Chromium's decoder.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TrackPacket } from '../../src/media/engine.ts';
import { LAYER_IDLE_MS, LayerForwarder, vp8Fields } from '../../src/media/werift/bundle-forward.ts';

/** A VP8 packet with a 15-bit picture id and TL0PICIDX (RFC 7741 §4.2). */
function vp8(layer: number, seq: number, ts: number, pid: number, tl0: number, keyframe = false): TrackPacket {
  const payload = new Uint8Array([0x90, 0xc0, 0x80 | (pid >> 8), pid & 0xff, tl0, keyframe ? 0x00 : 0x01, 0xaa, 0xbb]);
  return { layer, sequenceNumber: seq, timestamp: ts, ssrc: 1000 + layer, payloadType: 96, marker: true, keyframe, arrival: 0, payload };
}

test('a single-layer track: numbers continue from a random base, the payload is the tap’s', () => {
  const f = new LayerForwarder('video', 'vp8', 1, 90000);
  assert.deepEqual(f.wanted(), [0]);
  const a = f.forward(vp8(0, 100, 5000, 7, 3, true), 0)!;
  const b = f.forward(vp8(0, 101, 8000, 8, 3), 33)!;
  assert.equal((b.sequenceNumber - a.sequenceNumber) & 0xffff, 1);
  assert.equal((b.timestamp - a.timestamp) >>> 0, 3000);
  assert.equal(vp8Fields(b.payload).pid, 8, 'the first layer keeps its picture ids');
});

test('a switch from the high to the low layer waits for a keyframe, then continues numbers and picture ids; the tap’s bytes are not touched', () => {
  const f = new LayerForwarder('video', 'vp8', 2, 90000);
  let now = 0;
  assert.equal(f.forward(vp8(0, 500, 1000, 40, 9, false), now), undefined, 'nothing before a keyframe');
  let last = f.forward(vp8(0, 501, 1000, 40, 9, true), now)!;
  assert.equal(f.current, 0);
  assert.deepEqual(f.wanted(), [0]);
  for (let i = 1; i <= 3; i++) last = f.forward(vp8(0, 501 + i, 1000 + 3000 * i, 40 + i, 9), (now += 33))!;
  assert.equal(f.choose('low', now), true, 'the target changed');
  assert.equal(f.wanted(), undefined, 'every layer while switching');
  // the low layer's delta frames and the high layer go on until the low keyframe
  assert.equal(f.forward(vp8(1, 7000, 444000, 1200, 77), (now += 10)), undefined);
  const high = f.forward(vp8(0, 505, 13000, 44, 9), (now += 23))!;
  assert.equal((high.sequenceNumber - last.sequenceNumber) & 0xffff, 1);
  last = high;
  const key = vp8(1, 7001, 447000, 1201, 78, true);
  const copy = Uint8Array.from(key.payload);
  const low = f.forward(key, (now += 33))!;
  assert.equal(f.current, 1);
  assert.equal(f.switches, 1);
  assert.equal((low.sequenceNumber - last.sequenceNumber) & 0xffff, 1, 'sequence numbers continue');
  assert.ok((low.timestamp - last.timestamp) >>> 0 > 0 && (low.timestamp - last.timestamp) >>> 0 < 90000, 'the timestamp moves on by about the time elapsed');
  assert.equal(vp8Fields(low.payload).pid, 45, 'the picture id continues');
  assert.equal(vp8Fields(low.payload).tl0, 10, 'TL0PICIDX continues');
  assert.deepEqual(key.payload, copy, 'the tap’s packet is unchanged');
  assert.equal(f.forward(vp8(0, 506, 16000, 45, 9), (now += 1)), undefined, 'the old layer no longer goes out');
  const next = f.forward(vp8(1, 7002, 450000, 1202, 78), (now += 33))!;
  assert.equal((next.sequenceNumber - low.sequenceNumber) & 0xffff, 1);
  assert.equal((next.timestamp - low.timestamp) >>> 0, 3000);
  assert.equal(vp8Fields(next.payload).pid, 46);
  f.choose('low', now);
  assert.deepEqual(f.wanted(), [1], 'only the forwarded layer once settled');
});

test('a low layer the publisher does not send: after a while every layer is watched, the high one is forwarded instead', () => {
  const f = new LayerForwarder('video', 'vp8', 2, 90000);
  let now = 1_000_000;
  f.choose('low', now);
  assert.equal(f.target, 1);
  let seq = 10;
  let out = 0;
  for (let t = 0; t <= LAYER_IDLE_MS + 1000; t += 100) {
    now += 100;
    if (f.forward(vp8(0, seq++, seq * 3000, seq, 1, seq % 10 === 0), now)) out++;
    f.choose('low', now);
  }
  assert.equal(f.target, 0, 'the live layer is the target');
  assert.equal(f.current, 0);
  assert.ok(out > 0);
  assert.equal(f.wanted(), undefined, 'still watching every layer, for the low one to start');
  // the low layer starts: back to it at its keyframe
  f.forward(vp8(1, 900, 1, 1, 1, true), (now += 10));
  f.choose('low', now);
  assert.equal(f.target, 1);
  assert.ok(f.forward(vp8(1, 901, 3001, 2, 1, true), (now += 10)));
  assert.equal(f.current, 1);
});

test('"none" stops the video; "high" again resumes at a keyframe with continuous numbers', () => {
  const f = new LayerForwarder('video', 'vp8', 1, 90000);
  const a = f.forward(vp8(0, 1, 0, 1, 1, true), 0)!;
  f.choose('none', 10);
  assert.deepEqual(f.wanted(), []);
  assert.equal(f.forward(vp8(0, 2, 3000, 2, 1), 20), undefined);
  f.choose('high', 1000);
  assert.equal(f.forward(vp8(0, 40, 90000, 40, 1), 1010), undefined, 'a delta frame cannot start it');
  const b = f.forward(vp8(0, 41, 93000, 41, 1, true), 1020)!;
  assert.equal((b.sequenceNumber - a.sequenceNumber) & 0xffff, 1);
  assert.equal(vp8Fields(b.payload).pid, 2);
});

test('audio is forwarded whatever the video request', () => {
  const f = new LayerForwarder('audio', 'opus', 1, 48000);
  f.choose('none', 0);
  const p = { layer: 0, sequenceNumber: 9, timestamp: 960, ssrc: 5, payloadType: 111, marker: false, keyframe: false, arrival: 0, payload: new Uint8Array([1, 2, 3]) };
  assert.ok(f.forward(p, 0));
});
