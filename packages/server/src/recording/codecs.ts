// What the recorder needs to know of each codec's RTP payload: where a
// frame starts, how its packets join into one frame (RFC 7741 VP8, RFC 9628
// VP9, RFC 6184 H.264, RFC 7587 Opus), and a keyframe's picture size and
// codec string for the container's track header. Pure functions on bytes.
import type { CodecName } from '../media/engine.ts';

/** One RTP payload as the depacketizer sees it. */
export interface PayloadInfo {
  /** First packet of a frame (of a layer frame for VP9). */
  frameStart: boolean;
  /** The codec bytes of this packet, payload descriptor removed (H.264: Annex B NAL units, FU-A fragments as they come). */
  data: Uint8Array;
}

/** Splits one RTP payload into its descriptor and its codec bytes; undefined when malformed. */
export function parsePayload(codec: CodecName, payload: Uint8Array): PayloadInfo | undefined {
  switch (codec) {
    case 'vp8':
      return vp8Payload(payload);
    case 'vp9':
      return vp9Payload(payload);
    case 'h264':
      return h264Payload(payload);
    case 'opus':
      return payload.length > 0 ? { frameStart: true, data: payload } : undefined;
  }
}

// RFC 7741 §4.2: X R N S R PID | [I L T K RSV] [M PictureID] [TL0PICIDX] [TID Y KEYIDX]
function vp8Payload(p: Uint8Array): PayloadInfo | undefined {
  if (p.length < 1) return undefined;
  const b0 = p[0]!;
  let i = 1;
  if (b0 & 0x80) {
    if (p.length < 2) return undefined;
    const x = p[1]!;
    i = 2;
    if (x & 0x80) i += p.length > i && p[i]! & 0x80 ? 2 : 1;
    if (x & 0x40) i += 1;
    if (x & 0x30) i += 1;
  }
  if (i >= p.length) return undefined;
  return { frameStart: (b0 & 0x10) !== 0 && (b0 & 0x07) === 0, data: p.subarray(i) };
}

// RFC 9628 §4.2: I P L F B E V Z | [picture id] [layer indices] [reference indices] [scalability structure]
function vp9Payload(p: Uint8Array): PayloadInfo | undefined {
  if (p.length < 1) return undefined;
  const b0 = p[0]!;
  const flexible = (b0 & 0x10) !== 0;
  let i = 1;
  if (b0 & 0x80) i += p.length > i && p[i]! & 0x80 ? 2 : 1;
  if (b0 & 0x20) i += flexible ? 1 : 2;
  if (flexible && b0 & 0x40) {
    // up to 3 reference indices, each with a "more follow" bit
    for (let n = 0; n < 3 && i < p.length; n++) if (!(p[i++]! & 0x01)) break;
  }
  if (b0 & 0x02) {
    if (i >= p.length) return undefined;
    const ss = p[i++]!;
    const layers = (ss >> 5) + 1;
    if (ss & 0x10) i += 4 * layers;
    if (ss & 0x08) {
      if (i >= p.length) return undefined;
      const groups = p[i++]!;
      for (let g = 0; g < groups && i < p.length; g++) {
        const refs = (p[i]! >> 2) & 0x03;
        i += 1 + refs;
      }
    }
  }
  if (i >= p.length) return undefined;
  return { frameStart: (b0 & 0x08) !== 0, data: p.subarray(i) };
}

/** Whether a VP9 payload ends a layer frame (the E bit). */
export function vp9FrameEnd(payload: Uint8Array): boolean {
  return payload.length > 0 && (payload[0]! & 0x04) !== 0;
}

const START_CODE = Uint8Array.of(0, 0, 0, 1);

// RFC 6184 §5.6–5.8: single NAL unit (1–23), STAP-A (24), FU-A (28).
function h264Payload(p: Uint8Array): PayloadInfo | undefined {
  if (p.length < 1) return undefined;
  const type = p[0]! & 0x1f;
  if (type >= 1 && type <= 23) return { frameStart: true, data: concat([START_CODE, p]) };
  if (type === 24) {
    const parts: Uint8Array[] = [];
    let i = 1;
    while (i + 2 <= p.length) {
      const size = (p[i]! << 8) | p[i + 1]!;
      i += 2;
      if (size === 0 || i + size > p.length) return undefined;
      parts.push(START_CODE, p.subarray(i, i + size));
      i += size;
    }
    return parts.length ? { frameStart: true, data: concat(parts) } : undefined;
  }
  if (type === 28) {
    if (p.length < 3) return undefined;
    const fu = p[1]!;
    if (fu & 0x80) {
      const header = (p[0]! & 0xe0) | (fu & 0x1f);
      return { frameStart: true, data: concat([START_CODE, Uint8Array.of(header), p.subarray(2)]) };
    }
    return { frameStart: false, data: p.subarray(2) };
  }
  return undefined;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const part of parts) n += part.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const part of parts) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}

/**
 * Several VP9 layer frames of one picture (spatial layers) as one VP9
 * superframe (VP9 bitstream spec, Annex B): the frames, then an index
 * a decoder reads from the end.
 */
export function vp9Superframe(frames: readonly Uint8Array[]): Uint8Array {
  if (frames.length === 1) return frames[0]!;
  const largest = Math.max(...frames.map((f) => f.length));
  const bytes = largest < 1 << 8 ? 1 : largest < 1 << 16 ? 2 : largest < 1 << 24 ? 3 : 4;
  const marker = 0xc0 | ((bytes - 1) << 3) | (frames.length - 1);
  const index = new Uint8Array(2 + bytes * frames.length);
  index[0] = marker;
  frames.forEach((f, k) => {
    for (let b = 0; b < bytes; b++) index[1 + k * bytes + b] = (f.length >> (8 * b)) & 0xff;
  });
  index[index.length - 1] = marker;
  return concat([...frames, index]);
}

/** Whether an assembled frame is a keyframe. */
export function isKeyframe(codec: CodecName, frame: Uint8Array): boolean {
  switch (codec) {
    case 'vp8':
      return frame.length > 0 && (frame[0]! & 0x01) === 0;
    case 'vp9': {
      const h = vp9Header(frame);
      return h?.keyframe === true;
    }
    case 'h264':
      return nalUnits(frame).some((n) => (n[0]! & 0x1f) === 5);
    case 'opus':
      return true;
  }
}

/** Picture size and the WebCodecs codec string of a keyframe; undefined when it cannot be read. */
export function keyframeInfo(codec: CodecName, frame: Uint8Array): { width: number; height: number; codecString: string } | undefined {
  switch (codec) {
    case 'vp8': {
      // RFC 6386 §9.1: 3-byte frame tag, start code 9d 01 2a, 14-bit width and height
      if (frame.length < 10 || frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) return undefined;
      return { width: (frame[6]! | (frame[7]! << 8)) & 0x3fff, height: (frame[8]! | (frame[9]! << 8)) & 0x3fff, codecString: 'vp8' };
    }
    case 'vp9': {
      const h = vp9Header(frame);
      if (!h?.keyframe || h.width === undefined || h.height === undefined) return undefined;
      return { width: h.width, height: h.height, codecString: `vp09.0${h.profile}.10.${h.bitDepth === 8 ? '08' : String(h.bitDepth)}` };
    }
    case 'h264': {
      const sps = nalUnits(frame).find((n) => (n[0]! & 0x1f) === 7);
      if (!sps) return undefined;
      const size = spsSize(sps);
      if (!size) return undefined;
      const hex = (b: number) => b.toString(16).padStart(2, '0');
      return { ...size, codecString: `avc1.${hex(sps[1]!)}${hex(sps[2]!)}${hex(sps[3]!)}` };
    }
    case 'opus':
      return undefined;
  }
}

/** The NAL units of an Annex B byte stream (start codes removed). */
export function nalUnits(annexB: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = -1;
  for (let i = 0; i + 2 < annexB.length; i++) {
    if (annexB[i] === 0 && annexB[i + 1] === 0 && annexB[i + 2] === 1) {
      if (start >= 0) out.push(trimZeros(annexB.subarray(start, i)));
      start = i + 3;
      i += 2;
    }
  }
  if (start >= 0 && start < annexB.length) out.push(annexB.subarray(start));
  return out.filter((n) => n.length > 0);
}

function trimZeros(n: Uint8Array): Uint8Array {
  let end = n.length;
  while (end > 0 && n[end - 1] === 0) end--;
  return n.subarray(0, end);
}

/** A bit reader over RBSP bytes (emulation prevention removed when `h264`). */
class Bits {
  #bytes: Uint8Array;
  #pos = 0;
  constructor(bytes: Uint8Array, h264 = false) {
    if (!h264) {
      this.#bytes = bytes;
      return;
    }
    // emulation prevention (§7.4.1): 00 00 03 xx stands for 00 00 xx
    const out: number[] = [];
    let zeros = 0;
    for (const b of bytes) {
      if (zeros >= 2 && b === 3) {
        zeros = 0;
        continue;
      }
      out.push(b);
      zeros = b === 0 ? zeros + 1 : 0;
    }
    this.#bytes = Uint8Array.from(out);
  }
  get left(): number {
    return this.#bytes.length * 8 - this.#pos;
  }
  bit(): number {
    if (this.#pos >= this.#bytes.length * 8) throw new RangeError('bitstream ended');
    const b = (this.#bytes[this.#pos >> 3]! >> (7 - (this.#pos & 7))) & 1;
    this.#pos++;
    return b;
  }
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 2 + this.bit();
    return v;
  }
  /** Exp-Golomb ue(v). */
  ue(): number {
    let zeros = 0;
    while (this.bit() === 0) if (++zeros > 31) throw new RangeError('bad exp-Golomb code');
    return (1 << zeros) - 1 + this.bits(zeros);
  }
  se(): number {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -(k / 2);
  }
}

/** VP9 uncompressed header (VP9 bitstream spec §6.2): frame type and, on keyframes, the size. */
function vp9Header(frame: Uint8Array): { keyframe: boolean; profile: number; bitDepth: number; width?: number; height?: number } | undefined {
  try {
    const r = new Bits(frame);
    if (r.bits(2) !== 2) return undefined;
    const low = r.bit();
    const profile = (r.bit() << 1) | low;
    if (profile === 3) r.bit();
    if (r.bit()) return { keyframe: false, profile, bitDepth: 8 }; // show_existing_frame
    const keyframe = r.bit() === 0;
    r.bit(); // show_frame
    r.bit(); // error_resilient_mode
    if (!keyframe) return { keyframe, profile, bitDepth: 8 };
    if (r.bits(24) !== 0x498342) return undefined;
    let bitDepth = 8;
    if (profile >= 2) bitDepth = r.bit() ? 12 : 10;
    const colorSpace = r.bits(3);
    if (colorSpace !== 7) {
      r.bit(); // color_range
      if (profile === 1 || profile === 3) r.bits(3);
    } else if (profile === 1 || profile === 3) {
      r.bit();
    }
    return { keyframe, profile, bitDepth, width: r.bits(16) + 1, height: r.bits(16) + 1 };
  } catch {
    return undefined;
  }
}

/** Picture size from an H.264 sequence parameter set (ITU-T H.264 §7.3.2.1.1), cropping applied. */
export function spsSize(sps: Uint8Array): { width: number; height: number } | undefined {
  try {
    const r = new Bits(sps.subarray(1), true);
    const profile = r.bits(8);
    r.bits(16); // constraint flags, level
    r.ue(); // seq_parameter_set_id
    let chroma = 1;
    if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
      chroma = r.ue();
      if (chroma === 3) r.bit();
      r.ue(); // bit_depth_luma_minus8
      r.ue(); // bit_depth_chroma_minus8
      r.bit(); // qpprime_y_zero_transform_bypass_flag
      if (r.bit()) {
        for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) {
          if (!r.bit()) continue;
          let last = 8;
          let next = 8;
          for (let j = 0; j < (i < 6 ? 16 : 64); j++) {
            if (next !== 0) next = (last + r.se() + 256) % 256;
            last = next === 0 ? last : next;
          }
        }
      }
    }
    r.ue(); // log2_max_frame_num_minus4
    const pocType = r.ue();
    if (pocType === 0) r.ue();
    else if (pocType === 1) {
      r.bit();
      r.se();
      r.se();
      const n = r.ue();
      for (let i = 0; i < n; i++) r.se();
    }
    r.ue(); // max_num_ref_frames
    r.bit(); // gaps_in_frame_num_value_allowed_flag
    const widthMbs = r.ue() + 1;
    const heightUnits = r.ue() + 1;
    const frameMbsOnly = r.bit();
    if (!frameMbsOnly) r.bit();
    r.bit(); // direct_8x8_inference_flag
    let width = widthMbs * 16;
    let height = heightUnits * 16 * (2 - frameMbsOnly);
    if (r.bit()) {
      const [left, right, top, bottom] = [r.ue(), r.ue(), r.ue(), r.ue()];
      const cropX = chroma === 0 || chroma === 3 ? 1 : 2;
      const cropY = (chroma === 1 ? 2 : 1) * (2 - frameMbsOnly);
      width -= (left + right) * cropX;
      height -= (top + bottom) * cropY;
    }
    return width > 0 && height > 0 ? { width, height } : undefined;
  } catch {
    return undefined;
  }
}

/** The Opus identification header (RFC 7845 §5.1) a Matroska A_OPUS track carries as CodecPrivate. */
export function opusHead(channels: number, preSkip = 0): Uint8Array {
  const b = new Uint8Array(19);
  b.set(new TextEncoder().encode('OpusHead'), 0);
  b[8] = 1;
  b[9] = channels;
  b[10] = preSkip & 0xff;
  b[11] = preSkip >> 8;
  new DataView(b.buffer).setUint32(12, 48000, true);
  return b;
}
