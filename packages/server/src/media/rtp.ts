// Engine-neutral RTP helpers: keyframe detection per codec, 16/32-bit
// arithmetic, and the receive statistics of RFC 3550 (loss, jitter).
import type { CodecName } from './engine.ts';

export const seqAdd = (a: number, b: number): number => (a + b) & 0xffff;
export const tsAdd = (a: number, b: number): number => (a + b) >>> 0;
/** Signed distance a - b on the 16-bit sequence circle. */
export function seqDiff(a: number, b: number): number {
  const d = (a - b) & 0xffff;
  return d >= 0x8000 ? d - 0x10000 : d;
}

/**
 * True when this packet is the FIRST packet of a keyframe, i.e. a point
 * where a decoder (or a layer switch) can start.
 */
export function isKeyframeStart(codec: CodecName | undefined, payload: Buffer): boolean {
  if (payload.length < 1) return false;
  switch (codec) {
    case 'vp8':
      return vp8KeyframeStart(payload);
    case 'vp9':
      return vp9KeyframeStart(payload);
    case 'h264':
      return h264KeyframeStart(payload);
    default:
      return false;
  }
}

// RFC 7741 §4.2: X R N S R PID | [I L T K RSV] [M PictureID(7|15)] [TL0PICIDX] [TID Y KEYIDX]
function vp8KeyframeStart(p: Buffer): boolean {
  const b0 = p[0]!;
  const start = (b0 & 0x10) !== 0;
  const pid = b0 & 0x07;
  if (!start || pid !== 0) return false;
  let i = 1;
  if (b0 & 0x80) {
    if (p.length < 2) return false;
    const x = p[1]!;
    i = 2;
    if (x & 0x80) i += p.length > i && p[i]! & 0x80 ? 2 : 1; // picture id
    if (x & 0x40) i += 1; // TL0PICIDX
    if (x & 0x30) i += 1; // TID/KEYIDX
  }
  if (p.length <= i) return false;
  // VP8 payload header: bit 0 of the first byte is P (inverse key frame flag).
  return (p[i]! & 0x01) === 0;
}

// draft-ietf-payload-vp9 §4.2: I P L F B E V Z; P=0 (no inter-picture
// prediction) and B=1 (start of frame) on spatial layer 0.
function vp9KeyframeStart(p: Buffer): boolean {
  const b0 = p[0]!;
  const interPredicted = (b0 & 0x40) !== 0;
  const begin = (b0 & 0x08) !== 0;
  if (interPredicted || !begin) return false;
  if (b0 & 0x20) {
    // layer indices follow the picture id
    let i = 1;
    if (b0 & 0x80) i += p.length > i && p[i]! & 0x80 ? 2 : 1;
    if (p.length <= i) return false;
    const sid = (p[i]! >> 1) & 0x07;
    return sid === 0;
  }
  return true;
}

// RFC 6184: single NAL (1-23), STAP-A (24), FU-A (28). IDR = 5, SPS = 7.
function h264KeyframeStart(p: Buffer): boolean {
  const type = p[0]! & 0x1f;
  if (type === 5 || type === 7) return true;
  if (type === 24) {
    let i = 1;
    while (i + 2 < p.length) {
      const size = p.readUInt16BE(i);
      const nal = p[i + 2]! & 0x1f;
      if (nal === 5 || nal === 7) return true;
      i += 2 + size;
    }
    return false;
  }
  if (type === 28 && p.length > 1) {
    const fu = p[1]!;
    const nal = fu & 0x1f;
    return (fu & 0x80) !== 0 && (nal === 5 || nal === 7);
  }
  return false;
}

/** Width of a keyframe, read from the bitstream when cheap (VP8 only); undefined otherwise. */
export function keyframeWidth(codec: CodecName | undefined, payload: Buffer): number | undefined {
  if (codec !== 'vp8' || !vp8KeyframeStart(payload)) return undefined;
  const b0 = payload[0]!;
  let i = 1;
  if (b0 & 0x80) {
    const x = payload[1]!;
    i = 2;
    if (x & 0x80) i += payload[i]! & 0x80 ? 2 : 1;
    if (x & 0x40) i += 1;
    if (x & 0x30) i += 1;
  }
  // 3-byte frame tag, 3-byte start code 9d 01 2a, then 14-bit width.
  if (payload.length < i + 10 || payload[i + 3] !== 0x9d || payload[i + 4] !== 0x01 || payload[i + 5] !== 0x2a) return undefined;
  return payload.readUInt16LE(i + 6) & 0x3fff;
}

/** Bytes per second over a sliding window, cheap to update per packet. */
export class RateMeter {
  #buckets: number[];
  #start = 0;
  #slot: number;
  constructor(
    private readonly windowMs = 1000,
    slots = 10,
  ) {
    this.#buckets = new Array(slots).fill(0);
    this.#slot = windowMs / slots;
  }
  #advance(now: number): void {
    const index = Math.floor(now / this.#slot);
    if (this.#start === 0 || index - this.#start >= this.#buckets.length * 2) {
      this.#buckets.fill(0);
      this.#start = index;
      return;
    }
    while (this.#start < index) {
      this.#start++;
      this.#buckets[this.#start % this.#buckets.length] = 0;
    }
  }
  add(bytes: number, now = Date.now()): void {
    this.#advance(now);
    this.#buckets[this.#start % this.#buckets.length]! += bytes;
  }
  /** Bits per second. */
  rate(now = Date.now()): number {
    this.#advance(now);
    const total = this.#buckets.reduce((a, b) => a + b, 0);
    return (total * 8 * 1000) / this.windowMs;
  }
}

/** Receive statistics of one RTP source (RFC 3550 A.3 and A.8). */
export class ReceiveStats {
  packets = 0;
  bytes = 0;
  readonly meter = new RateMeter();
  #baseSeq = -1;
  #maxExt = 0;
  #cycles = 0;
  #maxSeq = 0;
  #jitter = 0; // in timestamp units
  #lastTransit: number | undefined;
  #expectedPrior = 0;
  #receivedPrior = 0;
  fractionLost = 0;
  constructor(private readonly clockRate: number) {}

  add(seq: number, timestamp: number, size: number, now = Date.now()): void {
    this.packets++;
    this.bytes += size;
    this.meter.add(size, now);
    if (this.#baseSeq < 0) {
      this.#baseSeq = seq;
      this.#maxSeq = seq;
      this.#maxExt = seq;
    } else {
      const d = seqDiff(seq, this.#maxSeq);
      if (d > 0) {
        if (seq < this.#maxSeq) this.#cycles += 0x10000;
        this.#maxSeq = seq;
        this.#maxExt = this.#cycles + seq;
      }
    }
    const arrival = (now * this.clockRate) / 1000;
    const transit = arrival - timestamp;
    if (this.#lastTransit !== undefined) {
      let d = Math.abs(transit - this.#lastTransit);
      if (d > 0x7fffffff) d = 0; // timestamp wrap
      this.#jitter += (d - this.#jitter) / 16;
    }
    this.#lastTransit = transit;
  }

  get expected(): number {
    return this.#baseSeq < 0 ? 0 : this.#maxExt - this.#baseSeq + 1;
  }
  get lost(): number {
    return Math.max(0, this.expected - this.packets);
  }
  /** Seconds. */
  get jitter(): number {
    return this.#jitter / this.clockRate;
  }
  /** Updates fractionLost over the interval since the last call. */
  sample(): void {
    const expected = this.expected - this.#expectedPrior;
    const received = this.packets - this.#receivedPrior;
    this.#expectedPrior = this.expected;
    this.#receivedPrior = this.packets;
    this.fractionLost = expected > 0 ? Math.max(0, (expected - received) / expected) : 0;
  }
}

/** Seconds from the NTP epoch (1900) to the Unix epoch. */
export const NTP_UNIX_OFFSET = 2208988800;

/** A 64-bit NTP timestamp (RFC 3550 §4) as ms since 1970, fractional. */
export function ntpToMs(ntp: bigint): number {
  const seconds = Number(ntp >> 32n) - NTP_UNIX_OFFSET;
  return seconds * 1000 + (Number(ntp & 0xffffffffn) / 0x100000000) * 1000;
}
