// The track seam's plumbing without a network: the tap queue (batching,
// back-pressure, drop-to-keyframe, failing sinks) and the packing of packet
// batches that cross the thread boundary.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PacketBatch, TrackPacket, TrackSink } from '../../src/media/engine.ts';
import { TapQueue } from '../../src/media/tap-queue.ts';
import { packPackets, unpackPackets } from '../../src/media/workers/packets.ts';

function packet(seq: number, opts: Partial<TrackPacket> = {}): TrackPacket {
  return { layer: 0, sequenceNumber: seq, timestamp: seq * 3000, ssrc: 1234, payloadType: 96, marker: false, keyframe: false, arrival: 1000 + seq, payload: Buffer.alloc(100, seq & 0xff), ...opts };
}

/** A sink that records batches; `hold` makes it busy until release() is called. */
function recordingSink(hold = false) {
  const batches: PacketBatch[] = [];
  const ends: string[] = [];
  let release: (() => void) | undefined;
  const sink: TrackSink = {
    packets(batch) {
      batches.push(batch);
      if (!hold) return;
      return new Promise<void>((r) => (release = r));
    },
    end(reason) {
      ends.push(reason);
    },
  };
  return { sink, batches, ends, release: () => release?.() };
}

test('a tap batches packets and sender reports and delivers them in order', async () => {
  const s = recordingSink();
  const q = new TapQueue(s.sink, { video: true, maxDelayMs: 5, onKeyframeWanted: () => {}, onFailed: () => {} });
  for (let i = 0; i < 10; i++) q.push(packet(i));
  q.report({ layer: 0, ntpTime: 5, rtpTimestamp: 7, arrival: 9 });
  await sleep(30);
  assert.equal(s.batches.length, 1, 'one batch for a burst');
  assert.deepEqual(
    s.batches[0]!.packets.map((p) => p.sequenceNumber),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.equal(s.batches[0]!.senderReports.length, 1);
  assert.equal(q.delivered, 10);
  q.end('detached');
  assert.deepEqual(s.ends, ['detached']);
  q.push(packet(11));
  await sleep(20);
  assert.equal(s.batches.length, 1, 'nothing after the end');
});

test('a busy sink holds the next batch; what overflows is dropped and video resumes at a keyframe', async () => {
  const s = recordingSink(true);
  const wanted: number[] = [];
  const q = new TapQueue(s.sink, { video: true, maxDelayMs: 1, maxQueuedBytes: 1000, onKeyframeWanted: (l) => wanted.push(l), onFailed: () => {} });
  q.push(packet(0, { keyframe: true }));
  await sleep(10);
  assert.equal(s.batches.length, 1, 'the first batch is out and the sink is busy');
  for (let i = 1; i <= 10; i++) q.push(packet(i)); // 1000 bytes: fits
  await sleep(10);
  assert.equal(s.batches.length, 1, 'nothing more while the sink is busy');
  q.push(packet(11)); // 1100 > 1000: the queue is dropped, and 11 with it (not a keyframe)
  assert.equal(q.dropped, 11);
  assert.deepEqual(wanted, [0], 'a keyframe is asked for');
  q.push(packet(12)); // still waiting for a keyframe
  q.push(packet(13, { keyframe: true }));
  q.push(packet(14));
  s.release();
  await sleep(10);
  assert.equal(s.batches.length, 2);
  const second = s.batches[1]!;
  assert.deepEqual(
    second.packets.map((p) => p.sequenceNumber),
    [13, 14],
  );
  assert.equal(second.dropped, 12, 'the batch says how many were dropped since the last one');
  assert.equal(q.dropped, 12);
});

test('an audio tap drops the queue on overflow and carries on without waiting', async () => {
  const s = recordingSink(true);
  const q = new TapQueue(s.sink, { video: false, maxDelayMs: 1, maxQueuedBytes: 250, onKeyframeWanted: () => assert.fail('audio has no keyframes'), onFailed: () => {} });
  q.push(packet(0));
  await sleep(5);
  q.push(packet(1));
  q.push(packet(2));
  q.push(packet(3)); // overflow: 1 and 2 dropped, 3 kept
  s.release();
  await sleep(5);
  assert.deepEqual(
    s.batches[1]!.packets.map((p) => p.sequenceNumber),
    [3],
  );
  assert.equal(s.batches[1]!.dropped, 2);
});

test('layers filter what a tap delivers', async () => {
  const s = recordingSink();
  const q = new TapQueue(s.sink, { video: true, maxDelayMs: 1, layers: [1], onKeyframeWanted: () => {}, onFailed: () => {} });
  q.push(packet(1, { layer: 0 }));
  q.push(packet(2, { layer: 1 }));
  await sleep(5);
  q.setLayers(undefined);
  q.push(packet(3, { layer: 0 }));
  await sleep(5);
  assert.deepEqual(
    s.batches.flatMap((b) => b.packets.map((p) => `${p.layer}:${p.sequenceNumber}`)),
    ['1:2', '0:3'],
  );
});

test('a sink that throws or rejects is ended with "failed" and its tap told', async () => {
  for (const bad of ['throws', 'rejects'] as const) {
    const ends: string[] = [];
    let failed = 0;
    const q = new TapQueue(
      {
        packets() {
          if (bad === 'throws') throw new Error('disk on fire');
          return Promise.reject(new Error('disk on fire'));
        },
        end: (r) => ends.push(r),
      },
      { video: false, maxDelayMs: 1, onKeyframeWanted: () => {}, onFailed: () => failed++ },
    );
    q.push(packet(1));
    await sleep(10);
    assert.deepEqual(ends, ['failed'], bad);
    assert.equal(failed, 1, bad);
    assert.ok(q.ended);
  }
});

test('packed batches read back field by field, payloads as views', () => {
  const packets = [
    packet(65535, { marker: true, keyframe: true, layer: 2, arrival: 1733.25, payloadType: 111 }),
    packet(0, { payload: Buffer.from([1, 2, 3]) }),
    packet(7, { payload: Buffer.alloc(0) }),
  ];
  const buffer = packPackets(packets, (i) => i);
  assert.equal(buffer.byteLength % 4, 0);
  const back = unpackPackets(buffer);
  assert.equal(back.length, 3);
  for (const [i, p] of back.entries()) {
    const o = packets[i]!;
    assert.deepEqual({ ...p, payload: Buffer.from(p.payload).toString('hex') }, { ...o, track: i, payload: Buffer.from(o.payload).toString('hex') });
    assert.equal((p.payload as Buffer).buffer, buffer, 'no copy');
  }
  assert.throws(() => unpackPackets(buffer.slice(0, 30)), /runs past the end|cut off/);
});
