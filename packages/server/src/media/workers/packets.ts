// Packets across the thread boundary: a batch of RTP packets (a tap's, or
// what a source stream was given) packed into one ArrayBuffer, transferred
// with one postMessage, and read back as views on that buffer (no copy).
// Structured clone of one object per packet would cost more than the
// forwarding itself.
//
// Layout, per packet, 4-byte aligned:
//   0 f64 arrival   8 u32 timestamp   12 u32 ssrc   16 u32 payload length
//  20 u16 sequence number   22 u8 layer   23 u8 flags (1 marker, 2 keyframe)
//  24 u8 payload type   25 u8 track index (source writes)   26 u16 unused
//  28 payload, then padding to a multiple of 4
import type { TrackPacket } from '../engine.ts';

const HEADER = 28;
const MARKER = 1;
const KEYFRAME = 2;

/** A packet as packed: a TrackPacket plus the index of its track in the batch's track list. */
export interface PackedPacket extends TrackPacket {
  track: number;
}

const padded = (n: number) => (n + 3) & ~3;

/** Packs packets into one buffer; `track` gives each packet's track index (0 when omitted). */
export function packPackets(packets: readonly (Omit<TrackPacket, 'ssrc' | 'payloadType' | 'arrival' | 'keyframe'> & Partial<TrackPacket>)[], track?: (i: number) => number): ArrayBuffer {
  let size = 0;
  for (const p of packets) size += HEADER + padded(p.payload.byteLength);
  const buffer = new ArrayBuffer(size);
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  let o = 0;
  for (let i = 0; i < packets.length; i++) {
    const p = packets[i]!;
    const n = p.payload.byteLength;
    view.setFloat64(o, p.arrival ?? 0, true);
    view.setUint32(o + 8, p.timestamp >>> 0, true);
    view.setUint32(o + 12, (p.ssrc ?? 0) >>> 0, true);
    view.setUint32(o + 16, n, true);
    view.setUint16(o + 20, p.sequenceNumber & 0xffff, true);
    view.setUint8(o + 22, p.layer & 0xff);
    view.setUint8(o + 23, (p.marker ? MARKER : 0) | (p.keyframe ? KEYFRAME : 0));
    view.setUint8(o + 24, (p.payloadType ?? 0) & 0x7f);
    view.setUint8(o + 25, track ? track(i) & 0xff : 0);
    bytes.set(p.payload, o + HEADER);
    o += HEADER + padded(n);
  }
  return buffer;
}

/** Reads a packed buffer back; payloads are Buffer views on it. Throws on a malformed buffer (a bug, never input from the network). */
export function unpackPackets(buffer: ArrayBuffer): PackedPacket[] {
  const view = new DataView(buffer);
  const out: PackedPacket[] = [];
  let o = 0;
  while (o < buffer.byteLength) {
    if (o + HEADER > buffer.byteLength) throw new Error(`packed packets: a header is cut off at byte ${o} of ${buffer.byteLength}`);
    const n = view.getUint32(o + 16, true);
    if (o + HEADER + n > buffer.byteLength) throw new Error(`packed packets: a payload of ${n} bytes at byte ${o} runs past the end (${buffer.byteLength})`);
    const flags = view.getUint8(o + 23);
    out.push({
      arrival: view.getFloat64(o, true),
      timestamp: view.getUint32(o + 8, true),
      ssrc: view.getUint32(o + 12, true),
      sequenceNumber: view.getUint16(o + 20, true),
      layer: view.getUint8(o + 22),
      marker: (flags & MARKER) !== 0,
      keyframe: (flags & KEYFRAME) !== 0,
      payloadType: view.getUint8(o + 24),
      track: view.getUint8(o + 25),
      payload: Buffer.from(buffer, o + HEADER, n),
    });
    o += HEADER + padded(n);
  }
  return out;
}

/** Payload bytes of packets (what queue limits count). */
export function payloadBytes(packets: readonly { payload: Uint8Array }[]): number {
  let n = 0;
  for (const p of packets) n += p.payload.byteLength;
  return n;
}
