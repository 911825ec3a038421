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
// - ProbeController: before an up-switch, extra traffic (padding on the
//   current layer) raises the send rate to what the higher layer needs for
//   1.5 s. The probe is judged on its own packets' fates, as the feedback
//   reports them (ProbeMeasure: every packet sent while it ran is tagged):
//   it succeeds when the subscriber received them, in its late half too, at
//   the rate probed. The late half matters: a policer's token bucket (nft's
//   holds a whole second of its rate) or a link buffer absorbs the start of
//   a probe, so a probe judged on its first second, or on a 1-s window of
//   delivered bytes, "confirms" twice the cap. A failed probe says what the
//   link sustained (its late half's received rate), and the estimate falls
//   to that. A probe stops at the first sign that the link is full (its
//   packets lost beyond the link's usual loss, or a queue building): a
//   policer's bucket, once drained, drops media along with the padding, and
//   every 100 ms of that is a frame the subscriber waits for. It backs off
//   (2 s, 4 s, 8 s) so a capped link is not flooded, yet a lifted cap is
//   found within seconds.
//
// Random loss is not congestion: up to LOSS_TOLERATED (judged over a 2-s
// window, LinkSample.lossLong: a 1-s fraction of 10 % random loss at 50
// packets a second wanders from 2 to 17 %) the estimate holds, and is no
// lower than what was sent (the link carried the lost packets too), so a
// lossy Wi-Fi link keeps its layer (NACK/RTX repair the loss); a policer's
// loss (a rate cap drops everything over it) brings it down. A probe over a
// lossy link is judged against that link's own loss, measured before it.

/** What the subscriber's transport-cc feedback says now (over about the last second). */
export interface LinkSample {
  /** bit/s the subscriber confirmed receiving; 0 without fresh feedback. */
  delivered: number;
  /** 0..1, packets reported lost among those reported. */
  loss: number;
  /** 0..1, the same over a longer window (2 s: twcc.ts LOSS_WINDOW_MS), which random loss and congestion are told apart on; absent: `loss`. */
  lossLong?: number;
  /** ms of queueing: one-way delay above the lowest seen lately. */
  queueDelay: number;
}

/** Loss (over the long window) at or below this is taken for random loss (Wi-Fi): the estimate holds. */
export const LOSS_TOLERATED = 0.15;
/** Loss above this is a link over its capacity: the estimate falls to what gets through. */
export const LOSS_CONGESTED = 0.25;
/** Loss below this lets the estimate grow. */
export const LOSS_GROW = 0.05;
/** A standing queue above this (ms) is congestion; a busy receiver's late timestamps rarely reach it… */
export const QUEUE_CONGESTED_MS = 300;
/** …and must last this many ticks: one late feedback from a stalled browser is not a queue. */
const QUEUE_CONGESTED_TICKS = 2;
/** The estimate grows only while the queue stays under this (ms). */
export const QUEUE_GROW_MS = 80;
/** Growth per second while the link looks clear (GCC's 8 %). */
const GROWTH_PER_S = 0.08;
/** The estimate never grows above this multiple of what was confirmed. */
const DELIVERED_CAP = 1.5;

export class DownlinkEstimator {
  #estimate = 0;
  #at = 0;
  #queuedTicks = 0;

  /** bit/s the link is estimated to carry (0: unknown yet). */
  get estimate(): number {
    return this.#estimate;
  }

  /**
   * One tick's feedback; returns the new estimate. While a probe runs
   * (`probing`) the window holds its traffic, which a policer's bucket may
   * pass for a while: the estimate does not grow on it (the probe's own
   * verdict raises it), it only falls.
   */
  update(s: LinkSample, now: number, probing = false): number {
    const dt = this.#at > 0 ? Math.min(1, Math.max(0, (now - this.#at) / 1000)) : 0;
    this.#at = now;
    if (s.delivered <= 0) return this.#estimate;
    const loss = s.lossLong ?? s.loss;
    // under random loss the link carried what it lost too: that much was sent and fits
    const carried = loss <= LOSS_TOLERATED ? s.delivered / (1 - loss) : s.delivered;
    if (this.#estimate <= 0) {
      this.#estimate = loss > LOSS_TOLERATED ? s.delivered : carried * (1 + GROWTH_PER_S);
      return this.#estimate;
    }
    this.#queuedTicks = s.queueDelay > QUEUE_CONGESTED_MS ? this.#queuedTicks + 1 : 0;
    if (loss > LOSS_CONGESTED || this.#queuedTicks >= QUEUE_CONGESTED_TICKS) {
      // GCC's multiplicative decrease, to what gets through
      this.#estimate = Math.min(this.#estimate, s.delivered * 0.9);
    } else if (loss > LOSS_TOLERATED) {
      // more loss than random loss explains: decrease gently while it lasts
      this.#estimate *= 1 - 0.5 * (loss - 0.1) * dt * 4;
      if (!probing) this.#estimate = Math.max(this.#estimate, s.delivered * 0.9);
    } else if (!probing && s.queueDelay < QUEUE_GROW_MS) {
      // random loss: hold, no lower than what is sent (a probe's window is not: a bucket may pass it for a while)
      if (this.#estimate < carried) this.#estimate = carried;
      const cap = s.delivered * DELIVERED_CAP;
      if (loss < LOSS_GROW && this.#estimate < cap) this.#estimate = Math.min(cap, Math.max(s.delivered, this.#estimate * (1 + GROWTH_PER_S * dt)));
    }
    return this.#estimate;
  }

  /** A probe showed the link carries `bitsPerSecond`. */
  probed(bitsPerSecond: number): void {
    if (bitsPerSecond > this.#estimate) this.#estimate = bitsPerSecond;
  }

  /** A probe lost packets over what the link sustained, `bitsPerSecond`: the estimate is no higher than that. */
  sustained(bitsPerSecond: number): void {
    if (bitsPerSecond > 0 && bitsPerSecond < this.#estimate) this.#estimate = bitsPerSecond;
  }
}

/** How long one probe raises the send rate (ms). */
export const PROBE_MS = 1500;
/** After the probe, its packets' feedback is awaited at most this long (ms). */
export const PROBE_SETTLE_MS = 750;
/** A probe succeeds when the subscriber received, in each half, at least this share of its target rate… */
export const PROBE_DELIVERED = 0.8;
/** …losing no more than this share of its packets in either half, or than the link's own loss before it plus PROBE_LOSS_OVER (random loss does not grow with the rate; a full link's does)… */
export const PROBE_LOSS = 0.15;
export const PROBE_LOSS_OVER = 0.1;
/** …with no more queueing (ms, from the 1-s window). */
export const PROBE_QUEUE_MS = 150;
/** Waits between probes after a failure (ms), doubling; the last one repeats. */
export const PROBE_BACKOFF_MS = [2000, 4000, 8000] as const;
/** A probe whose packets are lost this much (so far, both halves) is abandoned at once… */
const PROBE_ABORT_LOSS = 0.3;
/** …and so is one whose half being sent has this many packets reported, lost more than the probe may (the first sign of a drained bucket)… */
const PROBE_ABORT_REPORTED = 20;
/** …by this much more than the verdict allows (a few packets' fraction is noisy)… */
const PROBE_ABORT_MARGIN = 0.1;
/** …or while a queue this long (ms) builds. */
const PROBE_ABORT_QUEUE_MS = 2 * 150;
/** Share of a probe's packets that must be reported before it is judged ahead of PROBE_SETTLE_MS. */
const PROBE_REPORTED = 0.95;

/** What the feedback said of the packets sent during one half of a probe (media and padding alike). */
export interface ProbeHalf {
  /** Packets sent. */
  packets: number;
  /** Of those, reported by the feedback so far (received or lost). */
  reported: number;
  lost: number;
  sentBytes: number;
  receivedBytes: number;
  /** How long the half lasted at the sender (ms). */
  sendMs: number;
  /** From the first to the last arrival the feedback reported (ms, the subscriber's clock). */
  arrivalMs: number;
}

/** A probe's packets' fates, by half (send time), from the send records tagged with the probe. */
export interface ProbeMeasure {
  early: ProbeHalf;
  late: ProbeHalf;
  /** The newest PROBE_RECENT of its packets the feedback reported (by transport-wide number): a drained bucket shows here first. */
  recent?: { reported: number; lost: number };
}

/** How many of a probe's newest reported packets `ProbeMeasure.recent` covers. */
export const PROBE_RECENT = 25;

/** bit/s a half of a probe got through: received bytes over the longer of its send and arrival spans (a queue stretches the arrivals). */
export function receivedRate(h: ProbeHalf): number {
  const ms = Math.max(h.sendMs, h.arrivalMs);
  return ms > 0 ? (h.receivedBytes * 8000) / ms : 0;
}

/** bit/s a probe showed the link sustains: its late half's (the early one may have drained a bucket), or the early half's when the late one has no feedback yet. */
export function sustainedRate(m: ProbeMeasure): number {
  return m.late.reported > m.late.lost ? receivedRate(m.late) : receivedRate(m.early);
}

/** 0..1, the reported packets of a half that were lost. */
export function lossOf(h: ProbeHalf): number {
  return h.reported > 0 ? h.lost / h.reported : 0;
}

export type ProbeOutcome =
  | { kind: 'started'; target: number }
  | { kind: 'succeeded'; delivered: number }
  /**
   * `delivered`: bit/s the link sustained (the late half's, when measured); `loss`: the worse half's;
   * `overLoss`: that loss was over what the link loses anyway (the link is full at `delivered`).
   */
  | { kind: 'failed'; delivered: number; loss: number; queueDelay: number; measured: boolean; overLoss: boolean };

export interface ProbeCounters {
  probes: number;
  succeeded: number;
  failed: number;
}

/**
 * Runs probes: `tag` names the current one (the engine tags what it sends
 * meanwhile with it); `sending` says whether probe traffic goes out now (the
 * first PROBE_MS), after which the verdict waits for the feedback on its
 * packets.
 */
export class ProbeController {
  /** bit/s the link is being probed at (0: no probe running or awaiting its verdict). */
  target = 0;
  /** The current (or last) probe's number; tags its packets. */
  tag = 0;
  /** When the current probe started (ms). */
  startedAt = 0;
  #sending = false;
  #notBefore = 0;
  #failures = 0;
  /** The current probe may lose this share of its packets (the link's own loss before it, plus PROBE_LOSS_OVER). */
  #lossAllowed = PROBE_LOSS;
  readonly counters: ProbeCounters = { probes: 0, succeeded: 0, failed: 0 };

  /** A probe is running or awaiting its verdict. */
  get probing(): boolean {
    return this.target > 0;
  }

  /** Probe traffic is to be sent now. */
  get sending(): boolean {
    return this.#sending;
  }

  /** A layer switch happened (either way): the next probe waits the shortest backoff from now. */
  switched(now: number): void {
    this.#failures = 0;
    this.#notBefore = now + PROBE_BACKOFF_MS[0];
  }

  /**
   * One tick. `wanted`: the bit/s the next higher layer needs in all (0: no
   * up-switch wanted); `measure`: the fates of the current probe's packets
   * so far (an engine without per-packet records passes none, and the 1-s
   * window `link` judges). Starts, continues or concludes a probe.
   */
  tick(wanted: number, link: LinkSample, now: number, measure?: ProbeMeasure): ProbeOutcome | undefined {
    if (this.target > 0) return this.#running(link, now, measure);
    if (wanted <= 0 || now < this.#notBefore) return undefined;
    // only from a clear link: a probe cannot tell anything through congestion
    if (link.delivered <= 0 || link.loss > LOSS_TOLERATED || link.queueDelay > QUEUE_GROW_MS) return undefined;
    this.target = wanted;
    this.#lossAllowed = Math.max(PROBE_LOSS, (link.lossLong ?? link.loss) + PROBE_LOSS_OVER);
    this.startedAt = now;
    this.#sending = true;
    this.tag++;
    this.counters.probes++;
    return { kind: 'started', target: wanted };
  }

  #running(link: LinkSample, now: number, m: ProbeMeasure | undefined): ProbeOutcome | undefined {
    const elapsed = now - this.startedAt;
    const allowed = this.#lossAllowed;
    const sofar = m ? lossOf({ ...m.early, reported: m.early.reported + m.late.reported, lost: m.early.lost + m.late.lost }) : link.loss;
    const abortLoss = Math.max(PROBE_ABORT_LOSS, allowed + PROBE_ABORT_MARGIN);
    // the first sign the link is full ends the probe: a half losing more than the probe may, or a queue building
    const halfFull = (h: ProbeHalf) => h.reported >= PROBE_ABORT_REPORTED && lossOf(h) > allowed + PROBE_ABORT_MARGIN;
    const recentFull = m?.recent !== undefined && m.recent.reported >= PROBE_RECENT && m.recent.lost / m.recent.reported > allowed + PROBE_ABORT_MARGIN;
    const full = this.#sending && m !== undefined && (halfFull(m.early) || halfFull(m.late) || recentFull);
    const queued = this.#sending && link.queueDelay > PROBE_ABORT_QUEUE_MS;
    if (full || queued || (elapsed >= PROBE_MS / 3 && (sofar > abortLoss || link.loss > abortLoss))) {
      const loss = m ? Math.max(lossOf(m.early), lossOf(m.late), sofar) : link.loss;
      return this.#fail(now, m ? sustainedRate(m) : link.delivered, loss, link.queueDelay, m !== undefined, loss > allowed);
    }
    if (elapsed < PROBE_MS) return undefined;
    this.#sending = false;
    if (!m) {
      // no per-packet records: the window that ends with the probe judges it
      const ok = link.delivered >= this.target * PROBE_DELIVERED && link.loss <= allowed && link.queueDelay <= PROBE_QUEUE_MS;
      return ok ? this.#succeed(now, link.delivered) : this.#fail(now, link.delivered, link.loss, link.queueDelay, false, link.loss > allowed);
    }
    const packets = m.early.packets + m.late.packets;
    const reported = m.early.reported + m.late.reported;
    if (reported < packets * PROBE_REPORTED && elapsed < PROBE_MS + PROBE_SETTLE_MS) return undefined;
    const loss = Math.max(lossOf(m.early), lossOf(m.late));
    const rate = Math.min(receivedRate(m.early), receivedRate(m.late));
    const need = this.target * PROBE_DELIVERED;
    if (m.early.packets > 0 && m.late.packets > 0 && rate >= need && loss <= allowed && link.queueDelay <= PROBE_QUEUE_MS) return this.#succeed(now, Math.max(rate, this.target));
    return this.#fail(now, sustainedRate(m), loss, link.queueDelay, true, loss > allowed);
  }

  #succeed(now: number, delivered: number): ProbeOutcome {
    this.target = 0;
    this.#sending = false;
    this.counters.succeeded++;
    this.#failures = 0;
    this.#notBefore = now + PROBE_BACKOFF_MS[0];
    return { kind: 'succeeded', delivered };
  }

  #fail(now: number, delivered: number, loss: number, queueDelay: number, measured: boolean, overLoss: boolean): ProbeOutcome {
    this.target = 0;
    this.#sending = false;
    this.counters.failed++;
    this.#notBefore = now + PROBE_BACKOFF_MS[Math.min(this.#failures, PROBE_BACKOFF_MS.length - 1)]!;
    this.#failures++;
    return { kind: 'failed', delivered, loss, queueDelay, measured, overLoss };
  }

  /** Bytes of probe traffic to send now, `elapsedMs` after the last call, when `sendingBps` is being sent already. */
  budget(sendingBps: number, elapsedMs: number): number {
    if (!this.#sending) return 0;
    const extra = this.target - sendingBps;
    return extra > 0 ? (extra * elapsedMs) / 8000 : 0;
  }
}
