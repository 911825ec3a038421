// The werift engine's feedback machinery without a browser: transport-cc
// feedback we write (checked against werift's own parser), the send-side
// reading of a subscriber's feedback, the layer-choice rules fed fake
// estimates, and the packet cache answering NACKs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RtcpPacketConverter, RtcpTransportLayerFeedback, TransportWideCC } from 'werift';
import { LayerChooser, DOWN_TICKS, UP_TICKS, lowestActiveLayer, type BandwidthEstimate } from '../../src/media/werift/layers.ts';
import { PacketCache } from '../../src/media/werift/packet-cache.ts';
import { TwccFeedback, TwccSendHistory, readTwccSeq, twccExtensionId, type ParsedTwcc } from '../../src/media/werift/twcc.ts';

function parse(buf: Buffer): TransportWideCC {
  const [p] = RtcpPacketConverter.deSerialize(buf);
  assert.ok(p instanceof RtcpTransportLayerFeedback, 'a transport-layer feedback packet');
  assert.ok(p.feedback instanceof TransportWideCC, 'transport-cc feedback');
  return p.feedback;
}

/** Statuses and arrival times (µs) of a parsed feedback, per sequence number. */
function decode(fb: ParsedTwcc): Map<number, number | null> {
  const out = new Map<number, number | null>();
  let seq = fb.baseSequenceNumber;
  let left = fb.packetStatusCount;
  let d = 0;
  let t = fb.referenceTime * 64000;
  const one = (s: number) => {
    if (left-- <= 0) return;
    if (s === 1 || s === 2) {
      t += fb.recvDeltas[d++]!.delta!;
      out.set(seq, t);
    } else out.set(seq, null);
    seq = (seq + 1) & 0xffff;
  };
  for (const c of fb.packetChunks) {
    if (c.symbolList) c.symbolList.forEach(one);
    else for (let r = 0; r < c.runLength!; r++) one(c.packetStatus!);
  }
  return out;
}

describe('transport-cc feedback to publishers', () => {
  test('reports every sequence number once, with arrival times to 250 µs, across the 16-bit wrap', () => {
    const fb = new TwccFeedback(0x1234);
    const arrivals = new Map<number, number>();
    const lost = new Set([65533, 2, 3, 40]);
    let t = 10_000_000.3;
    for (let i = 0; i < 120; i++) {
      const seq = (65520 + i) & 0xffff;
      t += i === 60 ? 120_000 : 1_000 + (i % 7) * 300; // one large gap (a large delta)
      if (lost.has(seq)) continue;
      fb.record(seq, t);
      arrivals.set(seq, t);
    }
    const packets = fb.build(0xabcd);
    assert.equal(packets.length, 1);
    assert.equal(packets[0]!.length % 4, 0);
    const parsed = parse(packets[0]!);
    assert.equal(parsed.baseSequenceNumber, 65520);
    assert.equal(parsed.packetStatusCount, 120);
    const got = decode(parsed as unknown as ParsedTwcc);
    assert.equal(got.size, 120);
    for (const [seq, at] of got) {
      if (lost.has(seq)) assert.equal(at, null, `${seq} reported lost`);
      else assert.ok(at !== null && Math.abs(at - arrivals.get(seq)!) <= 250, `${seq} arrival ${at} vs ${arrivals.get(seq)}`);
    }
    assert.equal(fb.pending, false);
    assert.deepEqual(fb.build(0xabcd), [], 'nothing left to report');
    // the next feedback starts after the last one, and its counter advanced
    fb.record(101, t + 1000); // reported already (in 65520…103 across the wrap)
    assert.equal(fb.pending, false);
    fb.record(104, t + 1000);
    const next = parse(fb.build(0xabcd)[0]!);
    assert.equal(next.baseSequenceNumber, 104);
    assert.equal(next.fbPktCount, 1);
  });

  test('a long burst is split into several packets; a packet arriving after its report is ignored', () => {
    const fb = new TwccFeedback(1);
    for (let i = 0; i < 1000; i++) fb.record(i, 1_000_000 + i * 100);
    const packets = fb.build(2);
    assert.ok(packets.length >= 3);
    let total = 0;
    for (const p of packets) total += parse(p).packetStatusCount;
    assert.equal(total, 1000);
    fb.record(500, 2_000_000);
    assert.equal(fb.pending, false);
  });

  test('the extension id is read from the SDP and from packets', () => {
    assert.equal(twccExtensionId('v=0\r\na=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n'), 7);
    assert.equal(twccExtensionId('v=0\r\n'), undefined);
    const payload = Buffer.from([0x12, 0x34]);
    assert.equal(
      readTwccSeq(
        [
          { id: 3, payload: Buffer.from('0') },
          { id: 7, payload },
        ],
        7,
      ),
      0x1234,
    );
    assert.equal(readTwccSeq([{ id: 3, payload }], 7), -1);
  });
});

describe("a subscriber's transport-cc feedback", () => {
  test('gives the delivered rate, the loss and the queueing delay', () => {
    const history = new TwccSendHistory();
    const gen = new TwccFeedback(1);
    // 100 packets of 1000 bytes over 500 ms; every 10th lost; the last 20 queue up to +200 ms
    for (let i = 0; i < 100; i++) {
      const sentAt = 1000 + i * 5;
      history.sent(i, 1000, sentAt);
      if (i % 10 === 9) continue;
      const queue = i >= 80 ? (i - 79) * 10 : 0;
      gen.record(i, (sentAt + 20 + queue) * 1000);
    }
    for (const p of gen.build(2)) history.onFeedback(parse(p) as unknown as ParsedTwcc, 1600);
    const e = history.estimate(1600);
    assert.equal(e.loss, 9 / 99, 'the last one (lost) is not reported yet');
    assert.equal(e.delivered, 90 * 1000 * 8);
    assert.ok(e.queueDelay > 50, `queue delay ${e.queueDelay}`);
    assert.equal(history.estimate(5000).delivered, 0, 'a second later without feedback nothing is confirmed');
  });
});

describe('layer choice from bandwidth (fake feedback)', () => {
  const rates = [1_500_000, 100_000];
  const est = (e: Partial<BandwidthEstimate>): BandwidthEstimate => ({ remb: 0, delivered: 0, loss: 0, queueDelay: 0, ...e });

  test('starts on the best layer, goes down after four bad ticks, not after three', () => {
    const c = new LayerChooser(15_000);
    let now = 0;
    assert.equal(c.choose(rates, est({}), now, true), 0);
    for (let i = 1; i < DOWN_TICKS; i++) assert.equal(c.choose(rates, est({ loss: 0.3, delivered: 300_000 }), (now += 250)), 0);
    assert.equal(c.choose(rates, est({ loss: 0.01 }), (now += 250)), 0, 'one good tick resets the count');
    for (let i = 1; i < DOWN_TICKS; i++) c.choose(rates, est({ loss: 0.3, delivered: 300_000 }), (now += 250));
    assert.equal(c.choose(rates, est({ loss: 0.3, delivered: 300_000 }), (now += 250)), 1);
  });

  test('REMB below the layer rate moves down; REMB well above the higher layer moves up, with hysteresis', () => {
    const c = new LayerChooser(15_000);
    let now = 0;
    c.choose(rates, est({}), now, true);
    for (let i = 0; i < DOWN_TICKS; i++) c.choose(rates, est({ remb: 1_200_000 }), (now += 250));
    assert.equal(c.target, 1, '1.2 Mbit/s < 0.85 × 1.5 Mbit/s');
    for (let i = 0; i < 10; i++) assert.equal(c.choose(rates, est({ remb: 1_600_000 }), (now += 250)), 1, 'not 1.15 × above');
    for (let i = 1; i < UP_TICKS; i++) assert.equal(c.choose(rates, est({ remb: 2_000_000 }), (now += 250)), 1);
    assert.equal(c.choose(rates, est({ remb: 2_000_000 }), (now += 250)), 0);
  });

  test('queueing delay moves down; without REMB a quiet spell probes the higher layer again', () => {
    const c = new LayerChooser(5_000);
    let now = 0;
    c.choose(rates, est({}), now, true);
    for (let i = 0; i < DOWN_TICKS; i++) c.choose(rates, est({ queueDelay: 500, delivered: 200_000 }), (now += 250));
    assert.equal(c.target, 1);
    const down = now;
    while (now - down <= 5_000) assert.equal(c.choose(rates, est({ delivered: 120_000 }), (now += 250)), 1);
    for (let i = 1; i < UP_TICKS; i++) c.choose(rates, est({ delivered: 120_000 }), (now += 250));
    assert.equal(c.choose(rates, est({ delivered: 120_000 }), (now += 250)), 0, 'probed up');
    // loss blocks the probe
    for (let i = 0; i < DOWN_TICKS; i++) c.choose(rates, est({ loss: 0.5, delivered: 200_000 }), (now += 250));
    assert.equal(c.target, 1);
    now += 20_000;
    for (let i = 0; i < 2 * UP_TICKS; i++) assert.equal(c.choose(rates, est({ loss: 0.05 }), (now += 250)), 1);
  });

  test('an inactive layer is skipped', () => {
    const c = new LayerChooser();
    assert.equal(c.choose([0, 100_000], est({}), 0, true), 1);
  });

  test('video-low: the lowest layer that carries media, not one the publisher declared and never sends', () => {
    assert.equal(lowestActiveLayer([1_500_000, 100_000]), 1);
    assert.equal(lowestActiveLayer([300_000, 0]), 0, 'Chromium sends no `l` for a 320×240 source');
    assert.equal(lowestActiveLayer([0, 0, 0]), 2, 'nothing yet: the lowest declared');
    assert.equal(lowestActiveLayer([900_000, 1, 0]), 1, 'a layer with media in the last seconds counts');
    assert.equal(lowestActiveLayer([]), 0);
  });
});

describe('the packet cache answers NACKs', () => {
  test('a NACKed packet is resent as sent, once per gap, only while fresh', () => {
    const cache = new PacketCache(16, 1000, 40);
    for (let i = 0; i < 10; i++) cache.store((65530 + i) & 0xffff, 1000 + i * 3000, i % 3 === 0, Buffer.from(`payload ${i}`), 100 + i);
    const resent: { seq: number; ts: number; marker: boolean; payload: string }[] = [];
    const resend = (seq: number, ts: number, marker: boolean, payload: Buffer) => resent.push({ seq, ts, marker, payload: payload.toString() });
    assert.equal(cache.answerNack([65533, 2, 7777], 200, resend), 2);
    assert.deepEqual(resent, [
      { seq: 65533, ts: 10000, marker: true, payload: 'payload 3' },
      { seq: 2, ts: 25000, marker: false, payload: 'payload 8' },
    ]);
    assert.equal(cache.answerNack([65533], 220, resend), 0, 'not again within 40 ms');
    assert.equal(cache.answerNack([65533], 260, resend), 1);
    assert.equal(cache.answerNack([2], 1200, resend), 0, 'older than a second');
  });

  test('the ring grows so that it holds about a second at any packet rate', () => {
    const cache = new PacketCache(16, 1000);
    for (let i = 0; i < 1000; i++) cache.store(i, i, false, Buffer.alloc(1), i * 0.5); // 2000 packets/s
    assert.ok(cache.size >= 1000, `size ${cache.size}`);
    assert.ok(cache.get(0, 500), 'the first packet is still there');
  });
});
