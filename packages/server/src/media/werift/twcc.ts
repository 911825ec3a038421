// Transport-wide congestion control (draft-holmer-rmcat-transport-wide-cc-extensions-01).
//
// Receive side (publishers): werift 0.24's own feedback generator is not
// usable (one instance per receiver although sequence numbers are
// transport-wide, a reference time that does not match the deltas, gaps
// reported as received, no wrap-around), so Chromium's send-side estimate
// never left its 300 kbit/s start value and the high simulcast layer starved.
// TwccFeedback records arrival times per transport and writes correct
// feedback packets itself.
//
// Send side (subscribers): TwccSendHistory remembers what was sent under each
// transport-wide sequence number and turns the subscriber's feedback into
// a delivered rate, a loss fraction and a queueing delay; packets sent during
// a probe carry its tag, and their own fates (arrival time or loss) judge it
// (measureProbe), not the 1-s window.
import { PROBE_RECENT, type ProbeHalf, type ProbeMeasure } from '../quality/downlink.ts';
import { seqDiff } from '../rtp.ts';

export const TWCC_URI = 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01';

const RING = 8192; // power of two, well above what arrives between two feedbacks
const MASK = RING - 1;
/** Statuses in one feedback packet (keeps it well under the MTU). */
const MAX_STATUSES = 400;

/** The extension id of transport-cc in an SDP (bundle: the same on every m-line), or undefined. */
export function twccExtensionId(sdp: string): number | undefined {
  const m = /^a=extmap:(\d+)(?:\/\w+)? http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01\s*$/m.exec(sdp);
  return m ? Number(m[1]) : undefined;
}

/** Reads the transport-wide sequence number of a packet's header extensions; -1 when absent. */
export function readTwccSeq(extensions: readonly { id: number; payload: Buffer }[], id: number): number {
  for (let i = 0; i < extensions.length; i++) {
    const e = extensions[i]!;
    if (e.id === id) return e.payload.length >= 2 ? e.payload.readUInt16BE(0) : -1;
  }
  return -1;
}

/** Receive side: arrival times in, RTCP transport-cc feedback packets out. */
export class TwccFeedback {
  /** Arrival time in µs, per slot. */
  #arrival = new Float64Array(RING);
  /** Extended sequence number held by each slot (-1: none). */
  #slot = new Float64Array(RING).fill(-1);
  #highest = -1;
  /** First extended sequence number not yet reported. */
  #next = -1;
  #count = 0;
  #statuses = new Uint8Array(MAX_STATUSES);
  #deltas = new Int32Array(MAX_STATUSES);
  #lastRef = 0;

  constructor(private readonly senderSsrc: number) {}

  /** A packet with this transport-wide sequence number arrived at `nowUs` (a monotonic clock in µs). */
  record(seq: number, nowUs: number): void {
    let ext: number;
    if (this.#highest < 0) {
      ext = seq + 0x10000; // keep room below for reordering
      this.#highest = ext;
      this.#next = ext;
    } else {
      ext = this.#highest + seqDiff(seq, this.#highest & 0xffff);
      if (ext > this.#highest) {
        this.#highest = ext;
        // a jump beyond the ring: what lies before it can no longer be reported
        if (ext - this.#next >= RING) this.#next = ext - RING + 1;
      }
      if (ext < this.#next) return; // already reported
    }
    const i = ext & MASK;
    this.#slot[i] = ext;
    this.#arrival[i] = nowUs;
  }

  /** True when packets wait to be reported. */
  get pending(): boolean {
    return this.#next >= 0 && this.#next <= this.#highest;
  }

  /** Feedback packets covering everything received since the last call (usually one). */
  build(mediaSsrc: number): Buffer[] {
    const out: Buffer[] = [];
    while (this.pending) {
      const b = this.#buildOne(mediaSsrc);
      if (!b) break;
      out.push(b);
    }
    return out;
  }

  #buildOne(mediaSsrc: number): Buffer | undefined {
    const base = this.#next;
    const avail = Math.min(this.#highest - base + 1, MAX_STATUSES);
    const statuses = this.#statuses;
    const deltas = this.#deltas;
    // reference time: the first received packet, in 64 ms units; deltas in 250 µs
    let ref = -1;
    for (let k = 0; k < avail; k++) {
      const i = (base + k) & MASK;
      if (this.#slot[i] === base + k) {
        ref = Math.floor(this.#arrival[i]! / 64000);
        break;
      }
    }
    if (ref < 0) ref = this.#lastRef;
    this.#lastRef = ref;
    let prev = ref * 256;
    let n = 0;
    let deltaBytes = 0;
    for (; n < avail; n++) {
      const i = (base + n) & MASK;
      if (this.#slot[i] !== base + n) {
        statuses[n] = 0;
        continue;
      }
      const q = Math.round(this.#arrival[i]! / 250);
      const d = q - prev;
      if (d >= 0 && d <= 255) {
        statuses[n] = 1;
        deltaBytes += 1;
      } else if (d >= -32768 && d <= 32767) {
        statuses[n] = 2;
        deltaBytes += 2;
      } else if (n > 0) {
        break; // too far from the previous one: the next feedback starts here
      } else {
        statuses[n] = 0; // cannot happen for the first one (it defines the reference)
        continue;
      }
      deltas[n] = d;
      prev = q;
    }
    if (n === 0) return undefined;
    // chunks
    const chunks: number[] = [];
    let k = 0;
    while (k < n) {
      const s = statuses[k]!;
      let run = 1;
      while (k + run < n && statuses[k + run] === s && run < 8191) run++;
      if (run >= 14) {
        chunks.push((s << 13) | run);
        k += run;
        continue;
      }
      const span1 = Math.min(14, n - k);
      let oneBit = true;
      for (let j = 0; j < span1; j++) if (statuses[k + j]! > 1) oneBit = false;
      if (oneBit && span1 > 7) {
        let c = 0x8000;
        for (let j = 0; j < span1; j++) c |= statuses[k + j]! << (13 - j);
        chunks.push(c);
        k += span1;
      } else if (run >= 7) {
        chunks.push((s << 13) | run);
        k += run;
      } else {
        const span2 = Math.min(7, n - k);
        let c = 0xc000;
        for (let j = 0; j < span2; j++) c |= statuses[k + j]! << (12 - 2 * j);
        chunks.push(c);
        k += span2;
      }
    }
    const body = 20 + chunks.length * 2 + deltaBytes;
    const padding = (4 - (body % 4)) % 4;
    const size = body + padding;
    const buf = Buffer.alloc(size);
    buf[0] = 0x80 | (padding ? 0x20 : 0) | 15;
    buf[1] = 205;
    buf.writeUInt16BE(size / 4 - 1, 2);
    buf.writeUInt32BE(this.senderSsrc >>> 0, 4);
    buf.writeUInt32BE(mediaSsrc >>> 0, 8);
    buf.writeUInt16BE(base & 0xffff, 12);
    buf.writeUInt16BE(n, 14);
    buf.writeUIntBE(ref & 0xffffff, 16, 3);
    buf[19] = this.#count;
    this.#count = (this.#count + 1) & 0xff;
    let o = 20;
    for (const c of chunks) {
      buf.writeUInt16BE(c, o);
      o += 2;
    }
    for (let j = 0; j < n; j++) {
      if (statuses[j] === 1) buf[o++] = deltas[j]!;
      else if (statuses[j] === 2) {
        buf.writeInt16BE(deltas[j]!, o);
        o += 2;
      }
    }
    if (padding) buf[size - 1] = padding;
    this.#next = base + n;
    return buf;
  }
}

/** The parts of werift's parsed TransportWideCC feedback that we read. */
export interface ParsedTwcc {
  baseSequenceNumber: number;
  packetStatusCount: number;
  referenceTime: number;
  packetChunks: ({ type?: number; packetStatus?: number; runLength?: number; symbolSize?: number; symbolList?: number[] } & object)[];
  recvDeltas: { delta?: number }[];
}

/** What the subscriber's feedback says, over about the last second. */
export interface TwccEstimate {
  /** Bits per second the subscriber confirmed receiving. */
  delivered: number;
  /** 0..1: packets reported lost among those reported. */
  loss: number;
  /**
   * 0..1, the same over the last LOSS_WINDOW_MS: at 50 packets a second a
   * 1-s fraction of 10 % random loss wanders from 2 to 17 %, too noisy to
   * tell random loss from a link over its capacity.
   */
  lossLong: number;
  /** Milliseconds of queueing: recent one-way delay above the lowest seen lately. */
  queueDelay: number;
  /** Time of the last feedback (ms), 0 if none. */
  lastFeedback: number;
}

/** One feedback being taken (see TwccSendHistory.beginFeedback). */
export interface FeedbackBatch {
  slot: number;
  minDelay: number;
  lastDelay: number;
  n: number;
}

const WINDOW_MS = 1000;
/** The longer window of TwccEstimate.lossLong (ms), a whole number of buckets. */
export const LOSS_WINDOW_MS = 2000;
/** A packet's fate when the feedback reported it lost. */
const LOST = -1;
const BUCKET_MS = 100;
/** Buckets in the delivered-rate window… */
const BUCKETS = WINDOW_MS / BUCKET_MS;
/** …and kept in all (the loss window). */
const KEPT = LOSS_WINDOW_MS / BUCKET_MS;
const BASELINE_MS = 10_000;

/** Send side: what went out under each transport-wide sequence number, and the subscriber's verdict on it. */
export class TwccSendHistory {
  #seq = new Int32Array(RING).fill(-1);
  #sentAt = new Float64Array(RING);
  #size = new Uint16Array(RING);
  /** The probe each packet was sent under (0: none). */
  #tag = new Int32Array(RING);
  /** What the feedback said of each packet: arrival (µs, subscriber's clock), LOST, or NaN (not reported yet). */
  #fate = new Float64Array(RING).fill(Number.NaN);
  // per-100 ms buckets of [received bytes, received packets, lost packets]
  #bytes = new Float64Array(KEPT);
  #recv = new Float64Array(KEPT);
  #lost = new Float64Array(KEPT);
  #bucket = -1;
  #baseline: { at: number; min: number }[] = [];
  #recentDelay = -1;
  lastFeedback = 0;

  /** A packet left with transport-wide sequence number `seq`, `size` bytes, at `nowMs`, under probe `tag` (0: none). */
  sent(seq: number, size: number, nowMs: number, tag = 0): void {
    const i = seq & MASK;
    this.#seq[i] = seq;
    this.#sentAt[i] = nowMs;
    this.#size[i] = Math.min(size, 0xffff);
    this.#tag[i] = tag;
    this.#fate[i] = Number.NaN;
  }

  /**
   * The fates of the packets sent under probe `tag` with transport-wide
   * sequence numbers from `firstSeq` to `lastSeq`, in two halves by send time
   * (before and from `midMs`; the probe sent from `startMs` to `endMs`).
   */
  measureProbe(tag: number, firstSeq: number, lastSeq: number, startMs: number, midMs: number, endMs: number): ProbeMeasure {
    const half = (): ProbeHalf & { firstArrival: number; lastArrival: number } => ({
      packets: 0,
      reported: 0,
      lost: 0,
      sentBytes: 0,
      receivedBytes: 0,
      sendMs: 0,
      arrivalMs: 0,
      firstArrival: Infinity,
      lastArrival: -Infinity,
    });
    const early = half();
    const late = half();
    // the fates of the newest PROBE_RECENT reported packets (1: lost), as a ring
    const recent = new Uint8Array(PROBE_RECENT);
    let reportedAll = 0;
    const n = Math.min(RING, seqDiff(lastSeq & 0xffff, firstSeq & 0xffff) + 1);
    for (let k = 0; k < n; k++) {
      const seq = (firstSeq + k) & 0xffff;
      const i = seq & MASK;
      if (this.#seq[i] !== seq || this.#tag[i] !== tag) continue;
      const h = this.#sentAt[i]! < midMs ? early : late;
      const size = this.#size[i]!;
      h.packets++;
      h.sentBytes += size;
      const fate = this.#fate[i]!;
      if (Number.isNaN(fate)) continue;
      h.reported++;
      recent[reportedAll++ % PROBE_RECENT] = fate === LOST ? 1 : 0;
      if (fate === LOST) {
        h.lost++;
        continue;
      }
      h.receivedBytes += size;
      if (fate < h.firstArrival) h.firstArrival = fate;
      if (fate > h.lastArrival) h.lastArrival = fate;
    }
    const done = (h: ReturnType<typeof half>, from: number, to: number): ProbeHalf => ({
      packets: h.packets,
      reported: h.reported,
      lost: h.lost,
      sentBytes: h.sentBytes,
      receivedBytes: h.receivedBytes,
      sendMs: Math.max(0, to - from),
      arrivalMs: h.lastArrival > h.firstArrival ? (h.lastArrival - h.firstArrival) / 1000 : 0,
    });
    // a probe cut short in its early half sent that half for less than half the probe
    let recentLost = 0;
    for (const r of recent) recentLost += r;
    return {
      early: done(early, startMs, Math.min(midMs, endMs)),
      late: done(late, midMs, Math.max(midMs, endMs)),
      recent: { reported: Math.min(reportedAll, PROBE_RECENT), lost: recentLost },
    };
  }

  #advance(nowMs: number): number {
    const b = Math.floor(nowMs / BUCKET_MS);
    if (this.#bucket < 0 || b - this.#bucket >= KEPT) {
      this.#bytes.fill(0);
      this.#recv.fill(0);
      this.#lost.fill(0);
    } else {
      for (let x = this.#bucket + 1; x <= b; x++) {
        const i = x % KEPT;
        this.#bytes[i] = this.#recv[i] = this.#lost[i] = 0;
      }
    }
    if (b > this.#bucket) this.#bucket = b;
    return this.#bucket % KEPT;
  }

  /** Takes one transport-cc feedback (as werift parsed it). */
  onFeedback(fb: ParsedTwcc, nowMs: number): void {
    const batch = this.beginFeedback(nowMs);
    let seq = fb.baseSequenceNumber;
    let left = fb.packetStatusCount;
    let d = 0;
    let arrivalUs = fb.referenceTime * 64000;
    const one = (status: number) => {
      if (left <= 0) return;
      left--;
      const i = seq & MASK;
      const known = this.#seq[i] === seq;
      if (status === 1 || status === 2) {
        arrivalUs += fb.recvDeltas[d++]?.delta ?? 0;
        if (known) {
          this.#fate[i] = arrivalUs;
          this.report(batch, this.#size[i]!, this.#sentAt[i]!, arrivalUs);
        }
      } else if (status === 0 && known) {
        // reported lost, unless an earlier feedback had it arriving
        if (Number.isNaN(this.#fate[i]!)) this.#fate[i] = LOST;
        this.report(batch, this.#size[i]!, this.#sentAt[i]!, -1);
      }
      seq = (seq + 1) & 0xffff;
    };
    for (const c of fb.packetChunks) {
      if (c.symbolList) for (const s of c.symbolList) one(s);
      else for (let r = 0; r < (c.runLength ?? 0) && left > 0; r++) one(c.packetStatus ?? 0);
    }
    this.endFeedback(batch, nowMs);
  }

  /**
   * The per-packet facts of one feedback, when the send records are kept
   * elsewhere (the native packet plane resolves feedback itself): call
   * beginFeedback, report() once per packet the feedback covers, then endFeedback.
   */
  beginFeedback(nowMs: number): FeedbackBatch {
    const slot = this.#advance(nowMs);
    this.lastFeedback = nowMs;
    return { slot, minDelay: Infinity, lastDelay: 0, n: 0 };
  }

  /** One packet of a feedback: its size and send time (ms), its arrival (µs on the subscriber's clock), or -1 when reported lost. */
  report(batch: FeedbackBatch, size: number, sentMs: number, arrivalUs: number): void {
    if (arrivalUs < 0) {
      this.#lost[batch.slot]!++;
      return;
    }
    this.#bytes[batch.slot]! += size;
    this.#recv[batch.slot]!++;
    const owd = arrivalUs / 1000 - sentMs;
    if (owd < batch.minDelay) batch.minDelay = owd;
    batch.lastDelay = owd;
    batch.n++;
  }

  endFeedback(batch: FeedbackBatch, nowMs: number): void {
    if (batch.n === 0) return;
    // the lowest one-way delay over the last ~10 s is the empty-queue baseline
    const last = this.#baseline[this.#baseline.length - 1];
    if (last && nowMs - last.at < 1000) last.min = Math.min(last.min, batch.minDelay);
    else this.#baseline.push({ at: nowMs, min: batch.minDelay });
    while (this.#baseline.length > 0 && nowMs - this.#baseline[0]!.at > BASELINE_MS) this.#baseline.shift();
    // the newest packet's delay is the queue now; lightly smoothed across feedbacks
    this.#recentDelay = this.#recentDelay < 0 ? batch.lastDelay : 0.6 * batch.lastDelay + 0.4 * this.#recentDelay;
  }

  estimate(nowMs: number): TwccEstimate {
    const newest = this.#advance(nowMs);
    let bytes = 0;
    let recv = 0;
    let lost = 0;
    let recvLong = 0;
    let lostLong = 0;
    for (let k = 0; k < KEPT; k++) {
      const i = (newest - k + KEPT) % KEPT;
      recvLong += this.#recv[i]!;
      lostLong += this.#lost[i]!;
      if (k >= BUCKETS) continue;
      bytes += this.#bytes[i]!;
      recv += this.#recv[i]!;
      lost += this.#lost[i]!;
    }
    let base = Infinity;
    for (const b of this.#baseline) if (b.min < base) base = b.min;
    return {
      delivered: (bytes * 8 * 1000) / WINDOW_MS,
      loss: recv + lost > 0 ? lost / (recv + lost) : 0,
      lossLong: recvLong + lostLong > 0 ? lostLong / (recvLong + lostLong) : 0,
      queueDelay: base === Infinity || this.#recentDelay < 0 ? 0 : Math.max(0, this.#recentDelay - base),
      lastFeedback: this.lastFeedback,
    };
  }
}
