// The recorder's jitter buffer and clocks, fed packets by hand (they are
// pure: time comes with the packets): reordering, a loss repaired in time
// (as a NACK does) or not (then everything up to the next keyframe is
// dropped and a keyframe is asked for), a start that waits for a keyframe,
// a restarted sender, audio losses skipped; RTP timestamps put on one
// timeline by sender reports, through a wrap-around.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TrackPacket } from '../../src/media/engine.ts';
import { RtpClock, SyncClock } from '../../src/recording/clock.ts';
import { JitterBuffer } from '../../src/recording/jitter.ts';

/**
 * A VP8 packet: payload descriptor (S bit on the first packet of a frame)
 * then bytes naming the frame and the packet; the first byte of a keyframe's
 * VP8 header has its low bit clear (RFC 6386 §9.1), a delta frame's set.
 */
function vp8(seq: number, frame: number, part: number, parts: number, key: boolean, arrival: number): TrackPacket {
  const header = part === 0 ? [0x10, key ? 0x00 : 0x01] : [0x00];
  return {
    layer: 0,
    sequenceNumber: seq & 0xffff,
    timestamp: frame * 3000,
    ssrc: 1,
    payloadType: 96,
    marker: part === parts - 1,
    keyframe: key && part === 0,
    arrival,
    payload: new Uint8Array([...header, frame, part]),
  };
}

/** Frame `f` of `parts` packets from sequence number `seq`. */
const frame = (seq: number, f: number, parts: number, key: boolean, arrival: number) => Array.from({ length: parts }, (_, i) => vp8(seq + i, f, i, parts, key, arrival));

/** The frame numbers of what came out (a frame's data: its VP8 header byte, then its number). */
const numbers = (frames: { data: Uint8Array }[]) => frames.map((f) => f.data[1]);

test('reordered packets come out as whole frames, in order', () => {
  const jb = new JitterBuffer({ codec: 'vp8' });
  const packets = [...frame(100, 0, 3, true, 0), ...frame(103, 1, 2, false, 33), ...frame(105, 2, 2, false, 66)];
  const order = [0, 2, 1, 4, 3, 6, 5];
  const out = order.flatMap((i) => jb.push(packets[i]!));
  assert.deepEqual(numbers(out), [0, 1, 2]);
  assert.equal(out[0]!.keyframe, true);
  // a keyframe's three packets joined: descriptor removed, VP8 data concatenated
  assert.deepEqual([...out[0]!.data], [0x00, 0, 0, 0, 1, 0, 2]);
  assert.equal(jb.losses, 0);
});

test('nothing is written before the first keyframe', () => {
  const jb = new JitterBuffer({ codec: 'vp8' });
  const out = [...frame(10, 0, 1, false, 0), ...frame(11, 1, 1, false, 33), ...frame(12, 2, 2, true, 66), ...frame(14, 3, 1, false, 99)].flatMap((p) => jb.push(p));
  assert.deepEqual(numbers(out), [2, 3]);
  assert.equal(out[0]!.keyframe, true);
});

test('a missing packet that arrives within the wait (a NACK answered) loses nothing', () => {
  let asked = 0;
  const jb = new JitterBuffer({ codec: 'vp8', maxWaitMs: 250, onLoss: () => asked++ });
  const packets = [...frame(0, 0, 1, true, 0), ...frame(1, 1, 2, false, 33), ...frame(3, 2, 1, false, 66), ...frame(4, 3, 1, false, 100)];
  const out = [packets[0]!, packets[1]!, packets[3]!, packets[4]!].flatMap((p) => jb.push(p));
  assert.deepEqual(numbers(out), [0], 'frame 1 waits for its second packet, and frames 2 and 3 behind it');
  out.push(...jb.push({ ...packets[2]!, arrival: 200 }));
  assert.deepEqual(numbers(out), [0, 1, 2, 3]);
  assert.equal(asked, 0);
  assert.equal(jb.losses, 0);
});

test('a loss that is not repaired in time drops frames up to the next keyframe and asks for one', () => {
  let asked = 0;
  const jb = new JitterBuffer({ codec: 'vp8', maxWaitMs: 250, onLoss: () => asked++ });
  const out = [
    ...frame(0, 0, 1, true, 0),
    // frame 1 loses its second packet (seq 2) for good
    vp8(1, 1, 0, 2, false, 33),
    ...frame(3, 2, 1, false, 66),
    ...frame(4, 3, 1, false, 100),
    // 300 ms after the hole was found: given up
    ...frame(5, 4, 1, false, 400),
  ].flatMap((p) => jb.push(p));
  assert.deepEqual(numbers(out), [0], 'the delta frames after the loss cannot be decoded: dropped');
  assert.equal(asked, 1, 'a keyframe is asked for');
  assert.equal(jb.losses, 1);
  assert.equal(jb.waitingForKeyframe, true);
  out.push(...[...frame(6, 5, 1, false, 430), ...frame(7, 6, 2, true, 460), ...frame(9, 7, 1, false, 490)].flatMap((p) => jb.push(p)));
  assert.deepEqual(numbers(out), [0, 6, 7], 'resumes at the keyframe');
  assert.equal(jb.waitingForKeyframe, false);
});

test('sequence numbers wrap around; a restarted sender waits for a keyframe again', () => {
  const jb = new JitterBuffer({ codec: 'vp8' });
  const out = [...frame(65534, 0, 2, true, 0), ...frame(0, 1, 1, false, 33), ...frame(1, 2, 1, false, 66)].flatMap((p) => jb.push(p));
  assert.deepEqual(numbers(out), [0, 1, 2], 'across 65535 → 0');
  out.push(...[...frame(30000, 3, 1, false, 99), ...frame(30001, 4, 1, true, 132)].flatMap((p) => jb.push(p)));
  assert.deepEqual(numbers(out), [0, 1, 2, 4], 'a far jump starts over at a keyframe');
});

test('audio: reordered packets in order, a lost one skipped after the wait', () => {
  const jb = new JitterBuffer({ codec: 'opus', maxWaitMs: 80 });
  const opus = (seq: number, arrival: number): TrackPacket => ({
    layer: 0,
    sequenceNumber: seq,
    timestamp: seq * 960,
    ssrc: 2,
    payloadType: 111,
    marker: false,
    keyframe: false,
    arrival,
    payload: new Uint8Array([0x78, seq]),
  });
  const out = [opus(1, 0), opus(3, 40), opus(2, 41), opus(5, 80), opus(6, 100), opus(7, 200)].flatMap((p) => jb.push(p));
  assert.deepEqual(
    out.map((f) => f.data[1]),
    [1, 2, 3, 5, 6, 7],
    'packet 4 never came: skipped once it was waited for',
  );
  assert.equal(jb.losses, 1);
});

test('sender reports put audio and video on one clock, through a timestamp wrap-around', () => {
  const sync = new SyncClock();
  const audio = new RtpClock(48000);
  const video = new RtpClock(90000);
  // The publisher's wall clock: t0 = 1000 s. Audio's timestamp base is near the
  // 32-bit wrap; video's is elsewhere. Both arrive 50 ms after they were sent
  // (video's first packet late, at 80 ms).
  const t0 = 1_000_000;
  const aBase = 0xffffffff - 48000 / 2; // wraps half a second in
  const vBase = 123456;
  audio.report(aBase, t0);
  video.report(vBase, t0);
  const a = (ms: number) => audio.unwrap((aBase + ms * 48) >>> 0);
  const v = (ms: number) => video.unwrap((vBase + ms * 90) >>> 0);
  sync.observe(video, v(0), t0 + 80);
  sync.observe(audio, a(0), t0 + 50);
  const a1 = a(1000); // past the wrap
  sync.observe(audio, a1, t0 + 1050);
  const v1 = v(1000);
  sync.observe(video, v1, t0 + 1050);
  assert.equal(sync.time(audio, a1), t0 + 1050);
  assert.equal(sync.time(video, v1), t0 + 1050, 'a video frame sent with an audio frame is placed with it');
  assert.equal(sync.time(video, v(0)), t0 + 50, "the late packet does not shift the stream's clock");
});
