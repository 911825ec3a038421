// The down-link estimator, the probe controller and the layer choice that
// follows them (src/media/quality/downlink.ts, werift/layers.ts), driven
// tick by tick with the feedback a capped, a lossy and a clear link give.
// Pure modules, so the clock is the test's own.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DownlinkEstimator, PROBE_BACKOFF_MS, PROBE_LOSS, PROBE_MS, PROBE_SETTLE_MS, ProbeController, type LinkSample, type ProbeHalf, type ProbeMeasure } from '../../src/media/quality/downlink.ts';
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
    if (outcome?.kind === 'failed' && outcome.measured && outcome.loss > PROBE_LOSS) state.est.sustained(outcome.delivered);
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
});
