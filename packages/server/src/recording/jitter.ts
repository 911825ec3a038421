// The recorder's jitter buffer, one per track and layer: puts packets back
// in sequence order, waits a little for the missing ones (the media plane
// NACKs the publisher meanwhile), joins the packets of each frame, and
// after a loss it cannot wait out drops everything up to the next
// keyframe and asks for one. Audio frames are single packets and a lost
// one is just skipped. Pure: time comes in with the packets.
import type { CodecName, TrackPacket } from '../media/engine.ts';
import { seqDiff } from '../media/rtp.ts';
import { concat, parsePayload, vp9FrameEnd, vp9Superframe } from './codecs.ts';

/** One assembled frame (audio: one packet). */
export interface Frame {
  /** RTP timestamp, unwrapped by the caller's clock. */
  timestamp: number;
  data: Uint8Array;
  keyframe: boolean;
  /** Arrival time of its first packet (ms). */
  arrival: number;
}

export interface JitterOptions {
  codec: CodecName;
  /** How long a missing packet is waited for once later ones have come (ms). */
  maxWaitMs?: number;
  /** More packets held than this is a loss too (a long burst). */
  maxPackets?: number;
  /** A loss that cannot be repaired: the caller asks the publisher for a keyframe. */
  onLoss?: () => void;
}

const VIDEO_WAIT_MS = 250;
const AUDIO_WAIT_MS = 80;
const MAX_PACKETS = 1500;
/** A sequence jump this large is a restarted sender, not a loss. */
const RESET_JUMP = 3000;

export class JitterBuffer {
  readonly #codec: CodecName;
  readonly #video: boolean;
  readonly #maxWait: number;
  readonly #maxPackets: number;
  readonly #onLoss: () => void;
  /** Packets held, by extended sequence number. */
  #held = new Map<number, TrackPacket>();
  /** Highest extended sequence number seen. */
  #max: number | undefined;
  /** The next extended sequence number to emit; undefined until a starting point is known. */
  #next: number | undefined;
  /** When the packet at #next was first found missing. */
  #gapSince: number | undefined;
  /** Video: nothing is emitted until a keyframe starts (at first, and after a loss). */
  #waitKeyframe: boolean;
  losses = 0;
  frames = 0;

  constructor(options: JitterOptions) {
    this.#codec = options.codec;
    this.#video = options.codec !== 'opus';
    this.#maxWait = options.maxWaitMs ?? (this.#video ? VIDEO_WAIT_MS : AUDIO_WAIT_MS);
    this.#maxPackets = options.maxPackets ?? MAX_PACKETS;
    this.#onLoss = options.onLoss ?? (() => {});
    this.#waitKeyframe = this.#video;
  }

  /** Whether the buffer is waiting for a keyframe to start or resume. */
  get waitingForKeyframe(): boolean {
    return this.#waitKeyframe;
  }

  /** Takes one packet; returns the frames it completed, in order. */
  push(p: TrackPacket): Frame[] {
    const ext = this.#extend(p.sequenceNumber);
    if (this.#next !== undefined && ext < this.#next) return []; // late or duplicate: already past it
    if (this.#held.has(ext)) return [];
    this.#held.set(ext, p);
    return this.#drain(p.arrival);
  }

  /** What is complete now (at the end of a recording): frames that were only waiting on a gap are lost. */
  flush(): Frame[] {
    const out = this.#drain(Number.POSITIVE_INFINITY);
    this.#held.clear();
    return out;
  }

  #extend(seq: number): number {
    if (this.#max === undefined) {
      this.#max = seq + 0x10000; // room below for reordering
      return this.#max;
    }
    const ext = this.#max + seqDiff(seq, this.#max & 0xffff);
    if (Math.abs(ext - this.#max) > RESET_JUMP) {
      // the sender started over: forget the old sequence space
      this.#held.clear();
      this.#next = undefined;
      this.#gapSince = undefined;
      if (this.#video) this.#waitKeyframe = true;
      this.#max = seq + 0x10000;
      return this.#max;
    }
    if (ext > this.#max) this.#max = ext;
    return ext;
  }

  #drain(now: number): Frame[] {
    const out: Frame[] = [];
    for (;;) {
      if (this.#next === undefined || this.#waitKeyframe) {
        if (!this.#findStart()) return out;
      }
      const frame = this.#video ? this.#videoFrame() : this.#audioFrame();
      if (frame) {
        this.#gapSince = undefined;
        this.frames++;
        out.push(frame);
        continue;
      }
      // Nothing complete at #next. Packets in order with the newest still to
      // come is no loss; a hole (held packets beyond a missing one) is, once
      // it has lasted too long or too much piles up behind it.
      if (this.#held.size === 0) return out;
      const hole = this.#held.size < this.#max! - this.#next! + 1;
      if (!hole && this.#held.size <= this.#maxPackets) return out;
      this.#gapSince ??= now;
      if (now - this.#gapSince < this.#maxWait && this.#held.size <= this.#maxPackets) return out;
      this.#loss();
    }
  }

  /** A starting point: audio, the oldest packet held; video, the oldest keyframe start. */
  #findStart(): boolean {
    let best: number | undefined;
    for (const [ext, p] of this.#held) {
      if (this.#video && !p.keyframe) continue;
      if (best === undefined || ext < best) best = ext;
    }
    if (best === undefined) return false;
    for (const ext of this.#held.keys()) if (ext < best) this.#held.delete(ext);
    this.#next = best;
    this.#waitKeyframe = false;
    this.#gapSince = undefined;
    return true;
  }

  #loss(): void {
    this.losses++;
    this.#gapSince = undefined;
    if (this.#video) {
      this.#waitKeyframe = true;
      // skip the broken frame; a keyframe already held lets us resume at once
      for (const ext of this.#held.keys()) if (ext <= this.#next!) this.#held.delete(ext);
      this.#onLoss();
      return;
    }
    let first: number | undefined;
    for (const ext of this.#held.keys()) if (first === undefined || ext < first) first = ext;
    this.#next = first;
  }

  #audioFrame(): Frame | undefined {
    const p = this.#held.get(this.#next!);
    if (!p) return undefined;
    this.#held.delete(this.#next!);
    this.#next! += 1;
    return { timestamp: p.timestamp, data: p.payload, keyframe: true, arrival: p.arrival };
  }

  /** The frame starting at #next, if all its packets are here (up to the marker bit). */
  #videoFrame(): Frame | undefined {
    const start = this.#next!;
    const first = this.#held.get(start);
    if (!first) return undefined;
    let end = start;
    for (;;) {
      const p = this.#held.get(end);
      if (!p) return undefined; // a hole inside the frame
      if (p.marker) break;
      // the next frame began without a marker on this one (a lost marker packet is a hole, this is a sender quirk)
      const after = this.#held.get(end + 1);
      if (after && after.timestamp !== p.timestamp) break;
      end++;
      if (end - start > this.#maxPackets) return undefined;
    }
    const packets: TrackPacket[] = [];
    for (let e = start; e <= end; e++) {
      packets.push(this.#held.get(e)!);
      this.#held.delete(e);
    }
    this.#next = end + 1;
    const data = this.#assemble(packets);
    if (!data) {
      // unreadable: resume at the next keyframe
      this.#waitKeyframe = true;
      this.#onLoss();
      return this.#findStart() ? this.#videoFrame() : undefined;
    }
    return { timestamp: first.timestamp, data, keyframe: first.keyframe, arrival: first.arrival };
  }

  #assemble(packets: TrackPacket[]): Uint8Array | undefined {
    if (this.#codec === 'vp9') {
      // one picture: one layer frame per spatial layer, joined as a superframe
      const frames: Uint8Array[] = [];
      let current: Uint8Array[] = [];
      for (const p of packets) {
        const info = parsePayload('vp9', p.payload);
        if (!info) return undefined;
        if (info.frameStart && current.length) return undefined; // a layer frame without its end
        current.push(info.data);
        if (vp9FrameEnd(p.payload)) {
          frames.push(concat(current));
          current = [];
        }
      }
      if (current.length) frames.push(concat(current));
      return frames.length ? vp9Superframe(frames) : undefined;
    }
    const parts: Uint8Array[] = [];
    for (const [i, p] of packets.entries()) {
      const info = parsePayload(this.#codec, p.payload);
      if (!info || (i === 0 && !info.frameStart)) return undefined;
      parts.push(info.data);
    }
    return concat(parts);
  }
}
