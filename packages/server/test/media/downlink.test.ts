// The down-link estimator, the probe controller and the layer choice that
// follows them (src/media/quality/downlink.ts, werift/layers.ts), driven
// tick by tick with the feedback a capped, a lossy and a clear link give.
// Pure modules, so the clock is the test's own.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DownlinkEstimator, PROBE_BACKOFF_MS, PROBE_MS, ProbeController, type LinkSample } from '../../src/media/quality/downlink.ts';
import { LayerChooser } from '../../src/media/werift/layers.ts';

const TICK = 250;
/** Layer rates, highest first: 1.2 Mbit/s and 120 kbit/s. */
const RATES = [1_200_000, 120_000];

/**
 * A subscriber behind a link of `capacity` bit/s with `randomLoss`: what
 * its feedback says when `sent` bit/s go out (a policer drops the excess).
 */
function link(capacity: number, sent: number, randomLoss = 0): LinkSample {
  const through = Math.min(sent, capacity) * (1 - randomLoss);
  return { delivered: through, loss: sent > 0 ? 1 - through / sent : 0, queueDelay: 5 };
}

/** Runs estimator + prober + chooser as the engine does, for `ms`; returns the layers chosen, one per tick. */
function drive(state: { est: DownlinkEstimator; probe: ProbeController; chooser: LayerChooser; t: number; want: number }, capacity: () => number, ms: number, randomLoss = 0): number[] {
  const out: number[] = [];
  for (const end = state.t + ms; state.t < end; state.t += TICK) {
    const layer = Math.max(state.chooser.target, 0);
    const sent = RATES[layer]! + (state.probe.probing ? Math.max(0, state.probe.target - RATES[layer]!) : 0);
    const s = link(capacity(), sent, randomLoss);
    state.est.update(s, state.t);
    const outcome = state.probe.tick(state.want, s, state.t);
    if (outcome?.kind === 'succeeded') state.est.probed(outcome.delivered);
    const before = state.chooser.target;
    const fresh = before < 0;
    const chosen = state.chooser.choose(
      RATES,
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

const fresh = () => ({ est: new DownlinkEstimator(), probe: new ProbeController(), chooser: new LayerChooser(), t: 1_000_000, want: 0 });

describe('down-link estimation and probing', () => {
  test('a clear link keeps the high layer and never probes', () => {
    const s = fresh();
    const layers = drive(s, () => 10_000_000, 20_000);
    assert.ok(layers.every((l) => l === 0));
    assert.equal(s.probe.counters.probes, 0);
  });

  test('a 300 kbit/s cap brings the low layer within seconds, probes fail and back off, the lifted cap is found again', () => {
    const s = fresh();
    let capacity = 10_000_000;
    drive(s, () => capacity, 5000);
    capacity = 300_000;
    const capped = drive(s, () => capacity, 20_000);
    const downAt = capped.indexOf(1);
    assert.ok(downAt >= 0 && downAt * TICK <= 3000, `the low layer after ${downAt * TICK} ms`);
    // on the cap: it stays low; probes were tried and failed, spaced by the backoff
    assert.ok(
      capped.slice(downAt).every((l) => l === 1),
      'stays on the low layer under the cap',
    );
    assert.ok(s.probe.counters.probes >= 2 && s.probe.counters.succeeded === 0, JSON.stringify(s.probe.counters));
    const maxProbes = Math.ceil(20_000 / (PROBE_MS + PROBE_BACKOFF_MS[0]));
    assert.ok(s.probe.counters.probes <= maxProbes, `${s.probe.counters.probes} probes in 20 s`);
    assert.ok(s.est.estimate < 400_000, `estimate ${s.est.estimate}`);
    capacity = 10_000_000;
    const lifted = drive(s, () => capacity, 15_000);
    const upAt = lifted.indexOf(0);
    assert.ok(upAt >= 0 && upAt * TICK <= PROBE_BACKOFF_MS.at(-1)! + PROBE_MS + 1000, `back to high after ${upAt * TICK} ms`);
    assert.ok(s.probe.counters.succeeded >= 1);
  });

  test('10 % random loss is not congestion: the high layer stays', () => {
    const s = fresh();
    const layers = drive(s, () => 10_000_000, 20_000, 0.1);
    assert.ok(
      layers.every((l) => l === 0),
      'never leaves the high layer',
    );
  });

  test('a cap just under the high layer (30 % loss) brings it down', () => {
    const s = fresh();
    drive(s, () => 10_000_000, 3000);
    const layers = drive(s, () => 850_000, 10_000);
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

  test('the probe budget tops up what is sent to the target', () => {
    const p = new ProbeController();
    p.tick(1_000_000, { delivered: 200_000, loss: 0, queueDelay: 0 }, 0);
    assert.equal(p.budget(200_000, 20), (800_000 * 20) / 8000);
    assert.equal(p.budget(2_000_000, 20), 0);
  });
});
