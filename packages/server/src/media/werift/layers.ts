// Simulcast layer choice for one subscriber, from what its feedback says
// about its bandwidth. Pure (no werift): unit-tested with fake feedback.
// Layers are indexed highest first, as the publisher lists its rids.
//
// With a down-link estimate (`BandwidthEstimate.link`, from
// quality/downlink.ts) the choice follows it both ways: down when the
// estimate no longer carries the layer, up only once it carries the next one
// — and when it does not yet, `wantProbe` says what a probe must show. Without
// one (an engine that gives no estimate) the higher layer is retried on a
// timer, as before.

/** Go up a layer only when REMB exceeds its rate by this factor… */
export const UP_MARGIN = 1.15;
/** …for this many consecutive ticks. */
export const UP_TICKS = 4;
/** Go down when the estimate falls below the current layer's rate times this (or on loss / queueing)… */
export const DOWN_MARGIN = 0.85;
/** …for this many consecutive ticks. */
export const DOWN_TICKS = 4;
/** Loss (0..1) above which the current layer is too much. */
export const LOSS_DOWN = 0.1;
/** Loss below which a probe upwards is allowed. */
export const LOSS_PROBE = 0.02;
/** Queueing delay (ms, from transport-cc feedback) above which the current layer is too much. */
export const QUEUE_DOWN_MS = 300;
/** Neither REMB nor TWCC can show more than is sent, so after a switch we retry the higher layer after this long. */
export const PROBE_AFTER_MS = 15_000;

/** What the subscriber's feedback says, at one tick. */
export interface BandwidthEstimate {
  /** REMB, bit/s, for the video (audio subtracted); 0 when the subscriber sends none. */
  remb: number;
  /** bit/s the subscriber confirmed receiving through transport-cc feedback; 0 without it. */
  delivered: number;
  /** 0..1, the worse of RTCP RR and transport-cc feedback. */
  loss: number;
  /** ms of queueing seen through transport-cc feedback; 0 without it. */
  queueDelay: number;
  /** bit/s the down-link estimator gives the video (audio subtracted); absent or 0: no estimate. */
  link?: number;
  /** A probe has just shown `link` carries the next layer: switch up without waiting more ticks. */
  probed?: boolean;
}

/** Loss above which a layer is dropped whatever the estimate says (a link in trouble). */
export const LOSS_DOWN_HARD = 0.3;

export class LayerChooser {
  #upTicks = 0;
  #downTicks = 0;
  #lastSwitch = -Infinity;
  /** The layer chosen last (-1 none). */
  target = -1;
  /** bit/s the next higher layer needs for an up-switch the estimate does not allow yet (0: none). */
  wantProbe = 0;

  constructor(private readonly probeAfterMs = PROBE_AFTER_MS) {}

  /**
   * The layer to forward for a 'high' request. `rates` holds each layer's
   * current bit rate (0: inactive); `fresh` restarts on the best layer.
   */
  choose(rates: readonly number[], estimate: BandwidthEstimate, now: number, fresh = false): number {
    const active: number[] = [];
    for (let i = 0; i < rates.length; i++) if (rates[i]! > 0) active.push(i);
    if (active.length === 0) return (this.target = Math.max(this.target, 0));
    const best = active[0]!;
    const lowest = active[active.length - 1]!;
    const cur = !fresh && this.target >= 0 && rates[this.target]! > 0 ? this.target : -1;
    this.wantProbe = 0;
    if (cur >= 0 && estimate.link !== undefined && estimate.link > 0) return this.#follow(rates, active, cur, estimate, now);
    if (cur < 0) {
      this.#upTicks = this.#downTicks = 0;
      return (this.target = best);
    }
    const { remb, delivered, loss, queueDelay } = estimate;
    const bad = (remb > 0 && remb < rates[cur]! * DOWN_MARGIN) || loss > LOSS_DOWN || queueDelay > QUEUE_DOWN_MS;
    if (cur !== lowest && bad) {
      if (++this.#downTicks < DOWN_TICKS) return cur;
      this.#downTicks = this.#upTicks = 0;
      this.#lastSwitch = now;
      // the highest lower layer that fits what gets through
      const budget = remb > 0 ? remb : delivered;
      const fits = budget > 0 ? active.find((i) => i > cur && rates[i]! <= budget * DOWN_MARGIN) : active.find((i) => i > cur);
      return (this.target = fits ?? lowest);
    }
    this.#downTicks = 0;
    let next = -1;
    for (const i of active) if (i < cur) next = i; // the nearest higher layer
    if (next < 0) {
      this.#upTicks = 0;
      return cur;
    }
    const allowed = remb > 0 && remb >= rates[next]! * UP_MARGIN;
    const probe = now - this.#lastSwitch > this.probeAfterMs && loss < LOSS_PROBE && queueDelay < QUEUE_DOWN_MS / 3;
    if (!allowed && !probe) {
      this.#upTicks = 0;
      return cur;
    }
    if (++this.#upTicks < UP_TICKS) return cur;
    this.#upTicks = 0;
    this.#lastSwitch = now;
    return (this.target = next);
  }

  /** The choice from a down-link estimate: down when it no longer carries the layer, up when it carries the next. */
  #follow(rates: readonly number[], active: number[], cur: number, estimate: BandwidthEstimate, now: number): number {
    const link = estimate.link!;
    const lowest = active[active.length - 1]!;
    const bad = link < rates[cur]! * DOWN_MARGIN || estimate.loss > LOSS_DOWN_HARD || estimate.queueDelay > QUEUE_DOWN_MS;
    if (cur !== lowest && bad) {
      this.#upTicks = 0;
      if (++this.#downTicks < DOWN_TICKS) return cur;
      this.#downTicks = 0;
      this.#lastSwitch = now;
      return (this.target = active.find((i) => i > cur && rates[i]! <= link * DOWN_MARGIN) ?? lowest);
    }
    this.#downTicks = 0;
    let next = -1;
    for (const i of active) if (i < cur) next = i; // the nearest higher layer
    if (next < 0 || bad) {
      this.#upTicks = 0;
      return cur;
    }
    // a probe that just succeeded was sent at the margin already: the layer's own rate is enough now
    const need = rates[next]! * (estimate.probed ? 1 : UP_MARGIN);
    if (link < need && !(estimate.remb > 0 && estimate.remb >= need)) {
      this.#upTicks = 0;
      this.wantProbe = need;
      return cur;
    }
    if (!estimate.probed && ++this.#upTicks < UP_TICKS) return cur;
    this.#upTicks = 0;
    this.#lastSwitch = now;
    return (this.target = next);
  }
}

/**
 * The layer to forward for a 'low' request (Galène's `video-low`): the
 * lowest layer that carries media. A publisher may declare a layer it never
 * sends — Chromium drops simulcast layers that its source is too small for
 * (Galène's client asks for `l` at half size even for a 320×240 file) — and
 * forwarding that one would leave the subscriber with no video at all, so,
 * as Galène's server does (it forwards the last layer that arrived), the
 * lowest active layer wins; with none active yet, the lowest declared one.
 */
export function lowestActiveLayer(rates: readonly number[]): number {
  for (let i = rates.length - 1; i >= 0; i--) if (rates[i]! > 0) return i;
  return Math.max(1, rates.length) - 1;
}
