// The down-link estimator, the probe controller and the layer choice that
// follows them (src/media/quality/downlink.ts, werift/layers.ts), driven
// tick by tick with the feedback a capped, a lossy and a clear link give.
// Pure modules, so the clock is the test's own.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DownlinkEstimator, PROBE_BACKOFF_MS, PROBE_MS, PROBE_SETTLE_MS, ProbeController, type LinkSample, type ProbeHalf, type ProbeMeasure } from '../../src/media/quality/downlink.ts';
import { LayerChooser } from '../../src/media/werift/layers.ts';

const TICK = 250;
/** Layer rates, highest first: 1.2 Mbit/s and 120 kbit/s. */
const RATES = [1_200_000, 120_000];

/**
 * A subscriber behind a policer of `capacity` bit/s whose token bucket holds
 * `bucketS` seconds of it (nft's byte limiter holds a whole second), with
 * `randomLoss` on top: what passes of what is sent, tick by tick.
 */
class Link {
  tokens: number;
  constructor(
    public capacity: number,
    readonly bucketS = 0.1,
    readonly randomLoss = 0,
  ) {
    this.tokens = capacity * bucketS;
  }
  /** bits that get through when `sent` bits go out over `dt` s. */
  pass(sent: number, dt: number): number {
    this.tokens = Math.min(this.capacity * this.bucketS, this.tokens + this.capacity * dt);
    const through = Math.min(sent, this.tokens);
    this.tokens -= through;
    return through * (1 - this.randomLoss);
  }
}

const PACKET_BITS = 300 * 8;
const half = (): ProbeHalf => ({ packets: 0, reported: 0, lost: 0, sentBytes: 0, receivedBytes: 0, sendMs: 0, arrivalMs: 0 });

interface State {
  est: DownlinkEstimator;
  probe: ProbeController;
  chooser: LayerChooser;
  t: number;
  want: number;
  /** The fates of the current probe's packets, as the engine's send records give them (undefined: judged on the window). */
  measure?: ProbeMeasure;
  perPacket: boolean;
  /** Layer rates, highest first. */
  rates: readonly number[];
}

/** Runs estimator + prober + chooser as the engine does, for `ms`; returns the layers chosen, one per tick. */
function drive(state: State, link: Link, ms: number): number[] {
  const out: number[] = [];
  const dt = TICK / 1000;
  for (const end = state.t + ms; state.t < end; state.t += TICK) {
    const layer = Math.max(state.chooser.target, 0);
    const rate = state.rates[layer]! + (state.probe.sending ? Math.max(0, state.probe.target - state.rates[layer]!) : 0);
    const through = link.pass(rate * dt, dt);
    const s: LinkSample = { delivered: through / dt, loss: rate > 0 ? 1 - through / (rate * dt) : 0, queueDelay: 5 };
    if (state.probe.sending && state.perPacket) {
      // this tick's packets, fed back at once, in the half they were sent in
      const m = (state.measure ??= { early: half(), late: half() });
      const h = state.t - state.probe.startedAt < PROBE_MS / 2 ? m.early : m.late;
      const packets = Math.round((rate * dt) / PACKET_BITS);
      const received = Math.round(through / PACKET_BITS);
      h.packets += packets;
      h.reported += packets;
      h.lost += packets - received;
      h.sentBytes += (packets * PACKET_BITS) / 8;
      h.receivedBytes += (received * PACKET_BITS) / 8;
      h.sendMs += TICK;
      h.arrivalMs += TICK;
    }
    state.est.update(s, state.t, state.probe.probing);
    const outcome = state.probe.tick(state.want, s, state.t, state.perPacket ? state.measure : undefined);
    if (outcome?.kind === 'started') state.measure = undefined;
    if (outcome?.kind === 'succeeded') state.est.probed(outcome.delivered);
    if (outcome?.kind === 'failed' && outcome.measured && outcome.overLoss) state.est.sustained(outcome.delivered);
    const before = state.chooser.target;
    const fresh = before < 0;
    const chosen = state.chooser.choose(
      state.rates,
      { remb: 0, delivered: s.delivered, loss: s.loss, queueDelay: s.queueDelay, link: state.est.estimate, probed: outcome?.kind === 'succeeded' },
      state.t,
      fresh,
    );
    if (before >= 0 && chosen !== before) state.probe.switched(state.t);
    state.want = state.chooser.wantProbe;
    out.push(chosen);
  }
  return out;
}

const fresh = (perPacket = true, rates = RATES): State => ({ est: new DownlinkEstimator(), probe: new ProbeController(), chooser: new LayerChooser(), t: 1_000_000, want: 0, perPacket, rates });

describe('down-link estimation and probing', () => {
  test('a clear link keeps the high layer and never probes', () => {
    const s = fresh();
    const layers = drive(s, new Link(10_000_000), 20_000);
    assert.ok(layers.every((l) => l === 0));
    assert.equal(s.probe.counters.probes, 0);
  });

  /** A 300 kbit/s cap on a link whose policer holds `bucketS` s of it: down, probes fail, lifted, back up. */
  function capAndLift(bucketS: number, s = fresh()) {
    const link = new Link(10_000_000, bucketS);
    drive(s, link, 5000);
    link.capacity = 300_000;
    const capped = drive(s, link, 20_000);
    const downAt = capped.indexOf(1);
    assert.ok(downAt >= 0 && downAt * TICK <= 3000, `the low layer after ${downAt * TICK} ms`);
    // on the cap: it stays low; probes were tried and failed, spaced by the backoff
    assert.ok(
      capped.slice(downAt).every((l) => l === 1),
      `stays on the low layer under the cap: ${capped.slice(downAt).join('')}`,
    );
    assert.ok(s.probe.counters.probes >= 2 && s.probe.counters.succeeded === 0, JSON.stringify(s.probe.counters));
    const maxProbes = Math.ceil(20_000 / (PROBE_MS + PROBE_BACKOFF_MS[0]));
    assert.ok(s.probe.counters.probes <= maxProbes, `${s.probe.counters.probes} probes in 20 s`);
    assert.ok(s.est.estimate < 400_000, `estimate ${s.est.estimate}`);
    link.capacity = 10_000_000;
    const lifted = drive(s, link, 15_000);
    const upAt = lifted.indexOf(0);
    assert.ok(upAt >= 0 && upAt * TICK <= PROBE_BACKOFF_MS.at(-1)! + PROBE_MS + PROBE_SETTLE_MS + 1000, `back to high after ${upAt * TICK} ms`);
    assert.ok(s.probe.counters.succeeded >= 1);
    return s;
  }

  test('a 300 kbit/s cap (a shallow policer) brings the low layer within seconds, probes fail and back off, the lifted cap is found again', () => {
    capAndLift(0.1);
  });

  test("a 300 kbit/s cap whose policer holds a second of traffic (nft's limiter): the probe's late half fails it", () => {
    // a 500 kbit/s high layer (what Chromium's fake camera encodes): the bucket passes the
    // probe's first half whole, only the late half shows the cap
    const s = capAndLift(1, fresh(true, [500_000, 120_000]));
    assert.ok(s.probe.counters.failed >= 2);
  });

  test('10 % random loss is not congestion: the high layer stays', () => {
    const s = fresh();
    const layers = drive(s, new Link(10_000_000, 0.1, 0.1), 20_000);
    assert.ok(
      layers.every((l) => l === 0),
      'never leaves the high layer',
    );
  });

  test('a cap just under the high layer (30 % loss) brings it down', () => {
    const s = fresh();
    const link = new Link(10_000_000);
    drive(s, link, 3000);
    link.capacity = 850_000;
    const layers = drive(s, link, 10_000);
    assert.ok(layers.includes(1));
  });

  test('a probe is not started through congestion, and one that loses heavily is cut short', () => {
    const p = new ProbeController();
    assert.equal(p.tick(1_000_000, { delivered: 100_000, loss: 0.3, queueDelay: 0 }, 0), undefined);
    assert.equal(p.tick(1_000_000, { delivered: 100_000, loss: 0, queueDelay: 0 }, 10)?.kind, 'started');
    assert.equal(p.tick(1_000_000, { delivered: 100_000, loss: 0.5, queueDelay: 0 }, 10 + PROBE_MS / 2)?.kind, 'failed');
    assert.equal(p.probing, false);
    assert.equal(p.budget(100_000, 20), 0);
  });

  test("a probe waits for its own packets' feedback, then is judged on both halves", () => {
    const p = new ProbeController();
    const clear = { delivered: 200_000, loss: 0, queueDelay: 0 };
    p.tick(1_000_000, clear, 0);
    const h = (packets: number, reported: number, lost: number): ProbeHalf => ({
      packets,
      reported,
      lost,
      sentBytes: packets * 150,
      receivedBytes: (reported - lost) * 150,
      sendMs: PROBE_MS / 2,
      arrivalMs: PROBE_MS / 2,
    });
    // 1 Mbit/s for 0.75 s = 625 packets of 150 bytes per half
    assert.equal(p.tick(1_000_000, clear, PROBE_MS, { early: h(625, 625, 0), late: h(625, 300, 0) }), undefined, 'half the late packets unreported: wait');
    assert.equal(p.sending, false);
    assert.equal(p.budget(0, 20), 0, 'no probe traffic while the verdict waits');
    const v = p.tick(1_000_000, clear, PROBE_MS + 250, { early: h(625, 625, 0), late: h(625, 625, 300) });
    assert.equal(v?.kind, 'failed', 'the late half lost half its packets');
    assert.ok(v?.kind === 'failed' && v.measured && v.delivered < 600_000 && v.loss > 0.4, JSON.stringify(v));
    p.switched(0); // no backoff wait for the next one
    p.tick(1_000_000, clear, 10_000);
    const ok = p.tick(1_000_000, clear, 10_000 + PROBE_MS, { early: h(625, 625, 10), late: h(625, 620, 20) });
    assert.equal(ok?.kind, 'succeeded');
  });

  test('the probe budget tops up what is sent to the target', () => {
    const p = new ProbeController();
    p.tick(1_000_000, { delivered: 200_000, loss: 0, queueDelay: 0 }, 0);
    assert.equal(p.budget(200_000, 20), (800_000 * 20) / 8000);
    assert.equal(p.budget(2_000_000, 20), 0);
  });
  /**
   * What the engine sees of a link losing `loss` of its packets at random:
   * the transport-cc fractions over the last 1 s and 2 s (sampled every tick,
   * as twcc.ts keeps them), from packets of 1200 bytes lost one by one with a
   * seeded generator, so a second of 10 % loss reads anything from 2 to 20 %.
   */
  function noisyDrive(state: State, loss: number, ms: number, seed: number, queueDelay = () => 5): { layers: number[]; estimates: number[] } {
    let x = seed >>> 0;
    const random = () => {
      // xorshift32: the same draws on every run
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x / 0x100000000;
    };
    // the windows start full, as the clear link before left them
    const first = Math.round((state.rates[Math.max(state.chooser.target, 0)]! * (TICK / 1000)) / 9600);
    const ticks = Array.from({ length: 8 }, () => ({ recv: first, lost: 0, bits: first * 9600 }));
    const layers: number[] = [];
    const estimates: number[] = [];
    const dt = TICK / 1000;
    for (const end = state.t + ms; state.t < end; state.t += TICK) {
      const layer = Math.max(state.chooser.target, 0);
      const rate = state.rates[layer]! + (state.probe.sending ? Math.max(0, state.probe.target - state.rates[layer]!) : 0);
      const packets = Math.max(1, Math.round((rate * dt) / 9600));
      let recv = 0;
      let lost = 0;
      for (let k = 0; k < packets; k++) random() < loss ? lost++ : recv++;
      ticks.push({ recv, lost, bits: recv * 9600 });
      const last = (n: number) => ticks.slice(-n).reduce((a, t) => ({ recv: a.recv + t.recv, lost: a.lost + t.lost, bits: a.bits + t.bits }), { recv: 0, lost: 0, bits: 0 });
      const w1 = last(4);
      const w2 = last(8);
      const s: LinkSample = { delivered: w1.bits, loss: w1.lost / (w1.recv + w1.lost), lossLong: w2.lost / (w2.recv + w2.lost), queueDelay: queueDelay() };
      if (state.probe.sending) {
        const m = (state.measure ??= { early: half(), late: half() });
        const h = state.t - state.probe.startedAt < PROBE_MS / 2 ? m.early : m.late;
        h.packets += packets;
        h.reported += packets;
        h.lost += lost;
        h.sentBytes += packets * 1200;
        h.receivedBytes += recv * 1200;
        h.sendMs += TICK;
        h.arrivalMs += TICK;
      }
      state.est.update(s, state.t, state.probe.probing);
      const outcome = state.probe.tick(state.want, s, state.t, state.measure);
      if (outcome?.kind === 'started') state.measure = undefined;
      if (outcome?.kind === 'succeeded') state.est.probed(outcome.delivered);
      if (outcome?.kind === 'failed' && outcome.measured && outcome.overLoss) state.est.sustained(outcome.delivered);
      const before = state.chooser.target;
      const chosen = state.chooser.choose(
        state.rates,
        { remb: 0, delivered: s.delivered, loss: s.lossLong!, queueDelay: s.queueDelay, link: state.est.estimate, probed: outcome?.kind === 'succeeded' },
        state.t,
        before < 0,
      );
      if (before >= 0 && chosen !== before) state.probe.switched(state.t);
      state.want = state.chooser.wantProbe;
      layers.push(chosen);
      estimates.push(state.est.estimate);
    }
    return { layers, estimates };
  }

  test('5 % and 10 % random loss, noisy as packets give it, for a minute: the high layer stays and the estimate does not drift down', () => {
    // Chromium's fake camera: a 500 kbit/s high layer (about 52 packets a second), 100 kbit/s low
    for (const loss of [0.05, 0.1]) {
      for (const seed of [1, 2, 3, 4, 5]) {
        const s = fresh(true, [500_000, 100_000]);
        drive(s, new Link(10_000_000), 3000);
        const { layers, estimates } = noisyDrive(s, loss, 60_000, seed);
        const left = layers.findIndex((l) => l !== 0);
        assert.equal(left, -1, `${loss * 100} % loss, seed ${seed}: left the high layer at ${left * TICK} ms`);
        assert.ok(Math.min(...estimates) >= 500_000 * 0.85, `${loss * 100} % loss, seed ${seed}: the estimate fell to ${Math.min(...estimates)}`);
      }
    }
  });

  test("under 10 % random loss, a subscriber knocked down to the low layer is probed back up: the probe is judged against the link's own loss", () => {
    let back = 0;
    for (const seed of [1, 2, 3, 4, 5]) {
      const s = fresh(true, [500_000, 100_000]);
      drive(s, new Link(10_000_000), 3000);
      // a second of a standing queue (a congested moment) takes it down
      let q = 400;
      noisyDrive(s, 0.1, 2500, seed, () => q);
      assert.equal(s.chooser.target, 1, `seed ${seed}: a standing queue brought the low layer`);
      q = 5;
      const { layers } = noisyDrive(s, 0.1, 20_000, seed + 100, () => q);
      if (layers.includes(0)) back++;
    }
    assert.ok(back >= 4, `back on the high layer in ${back} of 5 runs`);
  });

  test('one late feedback (a stalled browser) is not a standing queue; two ticks of one are', () => {
    const e = new DownlinkEstimator();
    const clear: LinkSample = { delivered: 600_000, loss: 0, queueDelay: 5 };
    e.update(clear, 0);
    for (let t = 250; t <= 5000; t += 250) e.update(clear, t);
    const before = e.estimate;
    e.update({ delivered: 200_000, loss: 0, queueDelay: 500 }, 5250);
    assert.equal(e.estimate, before, 'one tick of queueing: held');
    e.update({ delivered: 200_000, loss: 0, queueDelay: 500 }, 5500);
    assert.ok(e.estimate <= 200_000, `two ticks: down to what got through (${e.estimate})`);
  });

  test('a probe whose half being sent starts losing heavily stops at once, without waiting for the half to end', () => {
    const p = new ProbeController();
    p.tick(1_000_000, { delivered: 200_000, loss: 0, queueDelay: 0 }, 0);
    const h = (packets: number, lost: number): ProbeHalf => ({ packets, reported: packets, lost, sentBytes: packets * 300, receivedBytes: (packets - lost) * 300, sendMs: 200, arrivalMs: 200 });
    // 200 ms in: 30 packets reported, 3 lost: random loss, go on
    assert.equal(p.tick(1_000_000, { delivered: 200_000, loss: 0, queueDelay: 0 }, 200, { early: h(30, 3), late: h(0, 0) }), undefined);
    // 300 ms in: 40 reported, 16 lost: the bucket is drained
    const v = p.tick(1_000_000, { delivered: 200_000, loss: 0, queueDelay: 0 }, 300, { early: h(40, 16), late: h(0, 0) });
    assert.equal(v?.kind, 'failed');
    assert.ok(v?.kind === 'failed' && v.overLoss);
    assert.equal(p.sending, false);
    // the newest packets reported tell first: a late half that lost little so far, but its newest 25 lost 10
    p.switched(0);
    p.tick(1_000_000, { delivered: 200_000, loss: 0, queueDelay: 0 }, 10_000);
    const late = p.tick(1_000_000, { delivered: 200_000, loss: 0, queueDelay: 0 }, 11_000, { early: h(60, 0), late: h(60, 10), recent: { reported: 25, lost: 10 } });
    assert.equal(late?.kind, 'failed', 'cut short on its newest packets');
  });
});
