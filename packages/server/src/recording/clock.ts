// Turning RTP timestamps into one timeline per recorded stream, so that
// audio and video stay in sync and a layer switch (each simulcast layer
// has its own timestamp base) does not jump. Each track and layer has an
// RtpClock; the stream's SyncClock puts them on the server's clock:
//   - once a layer has an RTCP sender report, its timestamps map to the
//     publisher's wall clock (the same for audio and video: that is what
//     sender reports are for), shifted by one offset per stream, the least
//     (arrival − publisher time) seen, i.e. clock difference plus the
//     shortest transit;
//   - before that, by arrival: the least (arrival − timestamp/rate) seen.
// Pure: times are passed in.

/** RTP timestamps of one layer of one track. */
export class RtpClock {
  readonly #rate: number;
  /** The last timestamp seen, unwrapped. */
  #last: number | undefined;
  /** Least (arrival ms − unwrapped timestamp in ms). */
  #arrivalBase = Number.POSITIVE_INFINITY;
  /** The newest sender report: unwrapped RTP timestamp and publisher time (ms). */
  #report: { rtp: number; ntp: number } | undefined;

  constructor(clockRate: number) {
    this.#rate = clockRate;
  }

  get clockRate(): number {
    return this.#rate;
  }

  /** A 32-bit timestamp unwrapped near the previous one (they may go back a little: reordering, B-frames). */
  unwrap(ts: number): number {
    if (this.#last === undefined) {
      this.#last = ts;
      return ts;
    }
    const d = ((ts - this.#last + 0x80000000) >>> 0) - 0x80000000;
    const u = this.#last + d;
    if (d > 0) this.#last = u;
    return u;
  }

  /** A packet arrived at `arrival` (ms) with this unwrapped timestamp. */
  observe(unwrapped: number, arrival: number): void {
    const base = arrival - (unwrapped * 1000) / this.#rate;
    if (base < this.#arrivalBase) this.#arrivalBase = base;
  }

  /** An RTCP sender report: `rtpTimestamp` (32-bit) was the publisher's wall-clock `ntpTime` (ms). */
  report(rtpTimestamp: number, ntpTime: number): void {
    this.#report = { rtp: this.unwrap(rtpTimestamp), ntp: ntpTime };
  }

  get hasReport(): boolean {
    return this.#report !== undefined;
  }

  /** The publisher's wall-clock time of an unwrapped timestamp (ms); undefined before the first sender report. */
  publisherTime(unwrapped: number): number | undefined {
    const r = this.#report;
    return r && r.ntp + ((unwrapped - r.rtp) * 1000) / this.#rate;
  }

  /** The server's time by arrival alone (ms); undefined before the first packet. */
  arrivalTime(unwrapped: number): number | undefined {
    return Number.isFinite(this.#arrivalBase) ? this.#arrivalBase + (unwrapped * 1000) / this.#rate : undefined;
  }
}

/** The common timeline of one recorded stream (all its tracks and layers). */
export class SyncClock {
  /** Least (arrival − publisher time) over every packet of a layer with a sender report. */
  #offset = Number.POSITIVE_INFINITY;

  /** A packet of `clock` arrived: refines the stream's offset when its layer has a report. */
  observe(clock: RtpClock, unwrapped: number, arrival: number): void {
    clock.observe(unwrapped, arrival);
    const t = clock.publisherTime(unwrapped);
    if (t !== undefined && arrival - t < this.#offset) this.#offset = arrival - t;
  }

  /** The server-clock time (ms) of an unwrapped timestamp of `clock`. */
  time(clock: RtpClock, unwrapped: number): number | undefined {
    const t = clock.publisherTime(unwrapped);
    if (t !== undefined && Number.isFinite(this.#offset)) return t + this.#offset;
    return clock.arrivalTime(unwrapped);
  }
}

/** Duration of an Opus packet from its TOC byte (RFC 6716 §3.1), in ms; 20 when unreadable. */
export function opusPacketMs(packet: Uint8Array): number {
  if (packet.length < 1) return 20;
  const toc = packet[0]!;
  const config = toc >> 3;
  let frameMs: number;
  if (config < 12) frameMs = [10, 20, 40, 60][config & 3]!;
  else if (config < 16) frameMs = (config & 1) === 0 ? 10 : 20;
  else frameMs = [2.5, 5, 10, 20][config & 3]!;
  const code = toc & 3;
  const frames = code === 0 ? 1 : code < 3 ? 2 : packet.length > 1 ? packet[1]! & 0x3f : 1;
  return frameMs * Math.max(1, frames);
}

/** How far the timeline may drift from the stream's clock before it is set back on it (ms). */
const RESYNC_MS = 150;
/** How much each frame may move towards the stream's clock (ms): small enough that nobody sees it. */
const NUDGE_MS = 0.5;

/**
 * The times of one track's frames in its file, in milliseconds. Frames of
 * one layer keep their exact RTP spacing; the stream clock (SyncClock) only
 * places the first frame, the first after a layer switch, and pulls the
 * rest gently when it refines (a sender report arrived). Times are whole,
 * strictly increasing milliseconds, at least one frame apart after a jump.
 */
export class TrackTimeline {
  #layer = -1;
  #lastUnwrapped = 0;
  /** Unrounded time of the last frame. */
  #last = Number.NEGATIVE_INFINITY;
  #lastMs = -1;
  /** Spacing of the last two frames on one layer (ms). */
  #spacing: number;

  constructor(defaultSpacingMs: number) {
    this.#spacing = defaultSpacingMs;
  }

  /** The file time (ms) of a frame at `clockMs` by the stream clock (relative to the file's start). */
  place(layer: number, unwrapped: number, clockRate: number, clockMs: number): number {
    let t: number;
    if (layer !== this.#layer || !Number.isFinite(this.#last)) {
      t = Math.max(clockMs, this.#last + this.#spacing);
    } else {
      const step = ((unwrapped - this.#lastUnwrapped) * 1000) / clockRate;
      const continued = this.#last + step;
      const drift = clockMs - continued;
      t = Math.abs(drift) > RESYNC_MS ? Math.max(clockMs, this.#last + this.#spacing) : continued + Math.max(-NUDGE_MS, Math.min(NUDGE_MS, drift));
      if (step > 0) this.#spacing = step;
    }
    this.#layer = layer;
    this.#lastUnwrapped = unwrapped;
    this.#last = t;
    const ms = Math.max(this.#lastMs + 1, Math.round(t));
    this.#lastMs = ms;
    return ms;
  }
}
