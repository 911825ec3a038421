// Down-link bandwidth estimation and probing for one subscriber, from its
// transport-cc feedback (in the spirit of GCC and of Galène's estimator, but
// for an SFU that forwards, not encodes). Engine-neutral and pure: the
// engines feed it what the feedback says each tick and do what it answers
// (send probe packets, switch layers); no clock of its own, no I/O.
//
// - DownlinkEstimator: a delay- and loss-based estimate of what the link
//   carries. It falls on congestion (heavy loss, or a standing queue) to
//   what gets through, and grows only up to 1.5 times what the subscriber
//   confirmed receiving: feedback cannot show more than is sent, so it never
//   claims room for a layer that has not been tried.
// - ProbeController: before an up-switch, extra traffic (duplicates of what
//   was just sent, on the current layer) raises the send rate to what the
//   higher layer needs for about a second; if the subscriber confirms it
//   without loss or queueing, the estimate rises and the switch is made.
//   A failed probe backs off (2 s, 4 s, 6 s) so a capped link is not
//   flooded, yet a lifted cap is found within seconds.
//
// Random loss is not congestion: up to LOSS_TOLERATED the estimate holds, so
// a lossy Wi-Fi link keeps its layer (NACK/RTX repair the loss) while a
// policer's loss (a rate cap drops everything over it) brings it down.

/** What the subscriber's transport-cc feedback says now (over about the last second). */
export interface LinkSample {
  /** bit/s the subscriber confirmed receiving; 0 without fresh feedback. */
  delivered: number;
  /** 0..1, packets reported lost among those reported. */
  loss: number;
  /** ms of queueing: one-way delay above the lowest seen lately. */
  queueDelay: number;
}

/** Loss at or below this is taken for random loss (Wi-Fi): the estimate holds. */
export const LOSS_TOLERATED = 0.12;
/** Loss above this is a link over its capacity: the estimate falls to what gets through. */
export const LOSS_CONGESTED = 0.25;
/** Loss below this lets the estimate grow. */
export const LOSS_GROW = 0.05;
/** A standing queue above this (ms) is congestion; a busy receiver's late timestamps rarely reach it. */
export const QUEUE_CONGESTED_MS = 300;
/** The estimate grows only while the queue stays under this (ms). */
export const QUEUE_GROW_MS = 80;
/** Growth per second while the link looks clear (GCC's 8 %). */
const GROWTH_PER_S = 0.08;
/** The estimate never grows above this multiple of what was confirmed. */
const DELIVERED_CAP = 1.5;

export class DownlinkEstimator {
  #estimate = 0;
  #at = 0;

  /** bit/s the link is estimated to carry (0: unknown yet). */
  get estimate(): number {
    return this.#estimate;
  }

  /** One tick's feedback; returns the new estimate. */
  update(s: LinkSample, now: number): number {
    const dt = this.#at > 0 ? Math.min(1, Math.max(0, (now - this.#at) / 1000)) : 0;
    this.#at = now;
    if (s.delivered <= 0) return this.#estimate;
    if (this.#estimate <= 0) {
      this.#estimate = s.loss > LOSS_TOLERATED ? s.delivered : s.delivered * (1 + GROWTH_PER_S);
      return this.#estimate;
    }
    if (s.loss > LOSS_CONGESTED || s.queueDelay > QUEUE_CONGESTED_MS) {
      // GCC's multiplicative decrease, to what gets through
      this.#estimate = Math.min(this.#estimate, s.delivered * 0.9);
    } else if (s.loss > LOSS_TOLERATED) {
      // more loss than random loss explains: decrease gently while it lasts
      this.#estimate *= 1 - 0.5 * (s.loss - 0.1) * dt * 4;
      this.#estimate = Math.max(this.#estimate, s.delivered * 0.9);
    } else if (s.loss < LOSS_GROW && s.queueDelay < QUEUE_GROW_MS) {
      const cap = s.delivered * DELIVERED_CAP;
      if (this.#estimate < cap) this.#estimate = Math.min(cap, Math.max(s.delivered, this.#estimate * (1 + GROWTH_PER_S * dt)));
    }
    return this.#estimate;
  }

  /** A probe showed the link carries `bitsPerSecond`. */
  probed(bitsPerSecond: number): void {
    if (bitsPerSecond > this.#estimate) this.#estimate = bitsPerSecond;
  }
}

/** How long one probe raises the send rate (ms). */
export const PROBE_MS = 1500;
/** A probe succeeds when the subscriber confirms at least this share of its target rate… */
export const PROBE_DELIVERED = 0.8;
/** …with no more loss than this… */
export const PROBE_LOSS = 0.15;
/** …and no more queueing (ms). */
export const PROBE_QUEUE_MS = 150;
/** Waits between probes after a failure (ms); the last one repeats. */
export const PROBE_BACKOFF_MS = [2000, 4000, 6000] as const;
/** A probe that loses this much half-way is abandoned at once. */
const PROBE_ABORT_LOSS = 0.3;

export type ProbeOutcome = { kind: 'started'; target: number } | { kind: 'succeeded'; delivered: number } | { kind: 'failed'; delivered: number; loss: number; queueDelay: number };

export interface ProbeCounters {
  probes: number;
  succeeded: number;
  failed: number;
}

export class ProbeController {
  /** bit/s the link is being probed at (0: no probe running). */
  target = 0;
  #startedAt = 0;
  #notBefore = 0;
  #failures = 0;
  readonly counters: ProbeCounters = { probes: 0, succeeded: 0, failed: 0 };

  get probing(): boolean {
    return this.target > 0;
  }

  /** A layer switch happened (either way): the next probe waits the shortest backoff from now. */
  switched(now: number): void {
    this.#failures = 0;
    this.#notBefore = now + PROBE_BACKOFF_MS[0];
  }

  /**
   * One tick. `wanted`: the bit/s the next higher layer needs in all (0: no
   * up-switch wanted). Starts, continues or concludes a probe.
   */
  tick(wanted: number, link: LinkSample, now: number): ProbeOutcome | undefined {
    if (this.target > 0) {
      const elapsed = now - this.#startedAt;
      const aborted = elapsed >= PROBE_MS / 3 && link.loss > PROBE_ABORT_LOSS;
      if (elapsed < PROBE_MS && !aborted) return undefined;
      const ok = !aborted && link.delivered >= this.target * PROBE_DELIVERED && link.loss <= PROBE_LOSS && link.queueDelay <= PROBE_QUEUE_MS;
      this.target = 0;
      if (ok) {
        this.counters.succeeded++;
        this.#failures = 0;
        this.#notBefore = now + PROBE_BACKOFF_MS[0];
        return { kind: 'succeeded', delivered: link.delivered };
      }
      this.counters.failed++;
      this.#notBefore = now + PROBE_BACKOFF_MS[Math.min(this.#failures, PROBE_BACKOFF_MS.length - 1)]!;
      this.#failures++;
      return { kind: 'failed', delivered: link.delivered, loss: link.loss, queueDelay: link.queueDelay };
    }
    if (wanted <= 0 || now < this.#notBefore) return undefined;
    // only from a clear link: a probe cannot tell anything through congestion
    if (link.delivered <= 0 || link.loss > LOSS_TOLERATED || link.queueDelay > QUEUE_GROW_MS) return undefined;
    this.target = wanted;
    this.#startedAt = now;
    this.counters.probes++;
    return { kind: 'started', target: wanted };
  }

  /** Bytes of probe traffic to send now, `elapsedMs` after the last call, when `sendingBps` is being sent already. */
  budget(sendingBps: number, elapsedMs: number): number {
    if (this.target <= 0) return 0;
    const extra = this.target - sendingBps;
    return extra > 0 ? (extra * elapsedMs) / 8000 : 0;
  }
}
