// What a bundle session (bundle.ts) does to each packet of one up-track it
// sends: the layer choice and the rewriting that lets it switch simulcast
// layers under ONE SSRC, as a down-track does (down-stream.ts), so that the
// receiver sees one continuous stream. Sequence numbers and timestamps
// continue across a switch; for VP8, the picture id and TL0PICIDX of the
// payload descriptor (RFC 7741 §4.2) continue too, because libwebrtc's VP8
// reference finder orders frames by picture id and drops those that look
// older than what it has. A switch happens only at a keyframe of the new
// layer (the caller asks the publisher for one). Pure (no werift): the
// unit tests feed it packets.
import type { CodecName, DownRequest, TrackPacket } from '../engine.ts';
import { seqAdd, seqDiff, tsAdd } from '../rtp.ts';

const random16 = () => Math.floor(Math.random() * 0x10000);
const random32 = () => Math.floor(Math.random() * 0x100000000) >>> 0;

/** How far behind the newest packet the switch point may lag (see SWITCH_LAG in down-stream.ts: the 16-bit circle). */
const SWITCH_LAG = 0x4000;
/** A layer that delivered nothing for this long is taken as off (the publisher dropped it), ms. */
export const LAYER_IDLE_MS = 1500;

/** Where the VP8 payload descriptor keeps its picture id and TL0PICIDX (RFC 7741 §4.2), if present. */
export interface Vp8Fields {
  /** Byte offset of the picture id (-1: absent). */
  pidAt: number;
  /** 7 or 15 bits. */
  pidBits: 7 | 15;
  pid: number;
  /** Byte offset of TL0PICIDX (-1: absent). */
  tl0At: number;
  tl0: number;
}

export function vp8Fields(p: Uint8Array): Vp8Fields {
  const f: Vp8Fields = { pidAt: -1, pidBits: 7, pid: 0, tl0At: -1, tl0: 0 };
  if (p.length < 2 || (p[0]! & 0x80) === 0) return f;
  const x = p[1]!;
  let i = 2;
  if (x & 0x80) {
    if (p.length <= i) return f;
    f.pidAt = i;
    if (p[i]! & 0x80) {
      if (p.length <= i + 1) return { ...f, pidAt: -1 };
      f.pidBits = 15;
      f.pid = ((p[i]! & 0x7f) << 8) | p[i + 1]!;
      i += 2;
    } else {
      f.pid = p[i]! & 0x7f;
      i += 1;
    }
  }
  if (x & 0x40 && p.length > i) {
    f.tl0At = i;
    f.tl0 = p[i]!;
  }
  return f;
}

/** Output of one forwarded packet. */
export interface Forwarded {
  sequenceNumber: number;
  timestamp: number;
  /** The payload to send: the tap's own bytes, or a rewritten copy (never the tap's bytes modified). */
  payload: Uint8Array;
}

/**
 * The layer state of one sent track. `target` is the layer wanted (-1:
 * none), `current` the one being forwarded; they differ during a switch,
 * until a keyframe of the target arrives. Layers are indexed highest first.
 */
export class LayerForwarder {
  current = -1;
  target = -1;
  /** What the receiver asked for ('high' until told otherwise). */
  request: DownRequest['video'] = 'high';
  /** Switches made (the first layer picked counts as none). */
  switches = 0;
  #started = false;
  #seqOffset = 0;
  #tsOffset = 0;
  #switchSeq = 0;
  #lastSeq = 0;
  #lastTs = 0;
  #lastTime = 0;
  #pidOffset = 0;
  #lastPid = -1;
  #tl0Offset = 0;
  #lastTl0 = -1;
  /** When each layer last delivered a packet (Date.now() ms; 0 never). */
  readonly #seen: number[];
  /** Since when every layer is delivered (0: only the current one). */
  #watchFrom = 0;

  constructor(
    readonly kind: 'audio' | 'video',
    readonly codec: CodecName | undefined,
    /** Number of layers (1 without simulcast). */
    readonly layers: number,
    readonly clockRate: number,
  ) {
    this.#seen = new Array(Math.max(1, layers)).fill(0);
    this.target = 0;
  }

  /** The packets of which layers the tap should deliver now (undefined: all). */
  wanted(): readonly number[] | undefined {
    if (this.target < 0) return [];
    if (this.layers <= 1) return [0];
    // While switching or falling back, every layer: an idle one shows, and the current one keeps playing.
    return this.current === this.target && this.#watchFrom === 0 ? [this.current] : undefined;
  }

  /**
   * Sets the target from the receiver's request and what arrives: 'high'
   * the highest layer, 'low' the lowest; when that layer carries nothing
   * (a publisher drops the layers its bandwidth or its camera cannot fill),
   * the nearest one that does, until it comes back. Called on each request
   * and on a timer. Returns true when the target changed (the caller asks
   * the publisher for a keyframe of it); wanted() may change either way.
   */
  choose(request: DownRequest['video'], now: number): boolean {
    this.request = request;
    let t: number;
    let preferred = 0;
    if (this.kind === 'audio') t = 0;
    else if (request === 'none') t = -1;
    else if (this.layers <= 1) t = 0;
    else {
      preferred = request === 'low' ? this.layers - 1 : 0;
      const live = (i: number) => now - this.#seen[i]! < LAYER_IDLE_MS;
      // Only while every layer is delivered can a silent one be told from one not asked for.
      const known = this.#watchFrom > 0 && now - this.#watchFrom >= LAYER_IDLE_MS;
      const order = [...Array(this.layers).keys()];
      if (request === 'low') order.reverse();
      t = known && !live(preferred) ? (order.find(live) ?? preferred) : preferred;
      const settled = t === this.current && t === preferred && live(t);
      if (settled) this.#watchFrom = 0;
      else if (this.#watchFrom === 0) this.#watchFrom = now;
    }
    if (t < 0) {
      this.current = -1;
      this.#watchFrom = 0;
    }
    if (t === this.target) return false;
    this.target = t;
    return true;
  }

  /** Whether a switch is waiting for a keyframe of the target. */
  get switching(): boolean {
    return this.target >= 0 && this.current !== this.target;
  }

  /** One packet from the tap: what to send, or undefined (another layer, before the switch point, nothing wanted). */
  forward(p: TrackPacket, now: number): Forwarded | undefined {
    if (p.layer < this.#seen.length) this.#seen[p.layer] = now;
    if (this.target < 0) return undefined;
    if (p.layer !== this.current) {
      if (p.layer !== this.target) return undefined;
      if (this.kind === 'video' && !p.keyframe) return undefined;
      if (this.current >= 0) this.switches++;
      this.#rebase(p, now);
      this.current = p.layer;
    } else if (seqDiff(p.sequenceNumber, this.#switchSeq) < 0) {
      return undefined; // older than the switch point
    }
    const sequenceNumber = seqAdd(p.sequenceNumber, this.#seqOffset);
    const timestamp = tsAdd(p.timestamp, this.#tsOffset);
    const newest = seqDiff(sequenceNumber, this.#lastSeq) > 0;
    if (newest) {
      if (seqDiff(p.sequenceNumber, this.#switchSeq) > SWITCH_LAG) this.#switchSeq = seqAdd(p.sequenceNumber, -SWITCH_LAG);
      this.#lastSeq = sequenceNumber;
      this.#lastTs = timestamp;
      this.#lastTime = now;
    }
    let payload = p.payload;
    if (this.codec === 'vp8') {
      const f = vp8Fields(payload);
      if (f.pidAt >= 0 || f.tl0At >= 0) {
        payload = Uint8Array.prototype.slice.call(payload);
        if (f.pidAt >= 0) {
          const pid = (f.pid + this.#pidOffset) & 0x7fff;
          if (f.pidBits === 15) {
            payload[f.pidAt] = 0x80 | (pid >> 8);
            payload[f.pidAt + 1] = pid & 0xff;
          } else payload[f.pidAt] = pid & 0x7f;
          if (newest) this.#lastPid = pid;
        }
        if (f.tl0At >= 0) {
          const tl0 = (f.tl0 + this.#tl0Offset) & 0xff;
          payload[f.tl0At] = tl0;
          if (newest) this.#lastTl0 = tl0;
        }
      }
    }
    return { sequenceNumber, timestamp, payload };
  }

  /** The output timestamp of the newest packet and when it was sent (for sender reports). */
  get last(): { timestamp: number; at: number } | undefined {
    return this.#started ? { timestamp: this.#lastTs, at: this.#lastTime } : undefined;
  }

  /** Maps a timestamp of a layer's input to the output (sender reports); undefined for another layer. */
  outputTimestamp(layer: number, timestamp: number): number | undefined {
    return this.#started && layer === this.current ? tsAdd(timestamp, this.#tsOffset) : undefined;
  }

  #rebase(p: TrackPacket, now: number): void {
    const nextSeq = this.#started ? seqAdd(this.#lastSeq, 1) : random16();
    const elapsed = this.#started ? Math.max(1, Math.round(((now - this.#lastTime) * this.clockRate) / 1000)) : 0;
    const nextTs = this.#started ? tsAdd(this.#lastTs, elapsed) : random32();
    this.#seqOffset = (nextSeq - p.sequenceNumber) & 0xffff;
    this.#tsOffset = (nextTs - p.timestamp) >>> 0;
    this.#switchSeq = p.sequenceNumber;
    if (this.codec === 'vp8') {
      const f = vp8Fields(p.payload);
      if (f.pidAt >= 0) this.#pidOffset = this.#lastPid < 0 ? 0 : (this.#lastPid + 1 - f.pid) & 0x7fff;
      if (f.tl0At >= 0) this.#tl0Offset = this.#lastTl0 < 0 ? 0 : (this.#lastTl0 + 1 - f.tl0) & 0xff;
    }
    if (!this.#started) {
      this.#lastSeq = seqAdd(nextSeq, -1);
      this.#lastTs = nextTs;
      this.#lastTime = now;
    }
    this.#started = true;
  }
}
