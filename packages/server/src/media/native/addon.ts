// The native packet plane (packages/native) as TypeScript sees it: its
// loader, the Plane object's methods, and the decoders of the binary
// records it hands over (STUN/DTLS datagrams at once, everything else in the
// batches drain() returns). Field layouts match packages/native/src/plane.h.
import { createRequire } from 'node:module';

export interface PlaneOpenOptions {
  port?: number;
  min?: number;
  max?: number;
  recvBuffer?: number;
  sendBuffer?: number;
}

export interface UpTrackSpec {
  codec: string;
  video: boolean;
  clockRate: number;
  mid: string;
  rids: string[];
  ssrcs: number[];
  payloadTypes: number[];
  /** RTX (RFC 4588) the publisher may send: [rtx payload type, the payload type it repairs, ...]. */
  rtx?: number[];
  /** Per layer, its RTX SSRC when the SDP signals it (0: learnt from the packets). */
  rtxSsrcs?: number[];
}

/** The addon's Plane (one per media worker process). Ids are positive; 0 means "refused". */
export interface Plane {
  open(options: PlaneOpenOptions): number;
  close(): void;
  createSession(): number;
  closeSession(session: number): void;
  bindAddress(session: number, ip: string, port: number): boolean;
  setRemote(session: number, ip: string, port: number): boolean;
  setKeys(session: number, profile: number, localKey: Buffer, localSalt: Buffer, remoteKey: Buffer, remoteSalt: Buffer): boolean;
  setExtensions(session: number, mid: number, rid: number, rrid: number, twcc: number, audioLevel: number): boolean;
  /** What a replacement worker needs to continue the session's SRTP (SRTCP index, per received SSRC its rollover counter and highest sequence number); null before the keys. */
  srtpState(session: number): Uint32Array | null;
  /** After setKeys: continue from a previous worker's srtpState (SRTCP numbering `rtcpMargin` past it). */
  resumeSrtp(session: number, state: Uint32Array, rtcpMargin: number): boolean;
  send(session: number, data: Buffer, ip: string, port: number): number;
  sendRtcp(session: number, rtcp: Buffer): number;
  createUp(session: number, spec: UpTrackSpec): number;
  closeUp(up: number): void;
  setTap(up: number, on: boolean): boolean;
  /** `rtxSsrc`/`rtxPayloadType`: the subscriber's RTX stream, where NACKs are answered (omitted or 0: on the media SSRC). */
  createDown(session: number, up: number, ssrc: number, payloadType: number, twccId: number, rtxSsrc?: number, rtxPayloadType?: number): number;
  closeDown(down: number): void;
  setTarget(down: number, layer: number): boolean;
  /** Bandwidth probe: up to `count` (≤ 64) padding-only packets of `size` (1..255) padding bytes on the down-track's RTX stream, now. Returns the packets sent (0 without RTX or before media), -1 for an unknown track. */
  probe(down: number, count: number, size: number): number;
  /** Packets for a session-less up-track (a source stream's): records of layer u8, marker u8, seq u16, ts u32, length u16, payload (LE). Returns the number taken, -1 for an unknown track. */
  write(up: number, records: Buffer): number;
  drain(): Buffer | null;
  upStats(up: number): Float64Array | null;
  downStats(down: number): Float64Array | null;
  sessionStats(session: number): Float64Array | null;
  info(): { sendDrops: number; fd: number; unknownMedia: number };
}

export interface NativeAddon {
  Plane: new (onDatagrams: (datagrams: Buffer | null, eager: boolean) => void) => Plane;
  srtp(op: 'protect-rtp' | 'unprotect-rtp' | 'protect-rtcp' | 'unprotect-rtcp', profile: number, masterKey: Buffer, masterSalt: Buffer, packet: Buffer, rocOrIndex: number): Buffer | null;
  faultForTest(): never;
  abiVersion: number;
}

export type AddonLoad = { ok: true; addon: NativeAddon } | { ok: false; reason: string };

let loaded: AddonLoad | undefined;

/** Loads the addon once; never throws (the reason says what to do). */
export function loadNativeAddon(): AddonLoad {
  if (loaded) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const pkg = require.resolve('@atrium/native/package.json');
    const file = pkg.replace(/package\.json$/, 'build/Release/atrium_native.node');
    const addon = require(file) as NativeAddon;
    if (addon.abiVersion !== 1) throw new Error(`the addon speaks version ${addon.abiVersion}, this server version 1; rebuild it`);
    loaded = { ok: true, addon };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const missing = /Cannot find module|ENOENT/.test(msg);
    loaded = {
      ok: false,
      reason: missing
        ? 'the addon is not built (run "npm run build -w @atrium/native"; it needs make, g++ and python3)'
        : `the addon could not be loaded (${msg.split('\n')[0]}); rebuild it with "npm run build -w @atrium/native"`,
    };
  }
  return loaded;
}

// ---------------------------------------------------------------------------
// Records

export interface Datagram {
  session: number;
  ip: string;
  port: number;
  /** The local address it was sent to ('' when unknown). */
  local: string;
  data: Buffer;
}

const ipOf = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

/** Splits the datagram batch: [session u32][ip 4][port u16][local ip 4][length u16][data]. */
export function decodeDatagrams(buf: Buffer, each: (d: Datagram) => void): void {
  let o = 0;
  while (o + 16 <= buf.length) {
    const session = buf.readUInt32LE(o);
    const ip = ipOf(buf, o + 4);
    const port = buf.readUInt16LE(o + 8);
    const local = buf.readUInt32BE(o + 10) === 0 ? '' : ipOf(buf, o + 10);
    const len = buf.readUInt16LE(o + 14);
    o += 16;
    if (o + len > buf.length) return;
    each({ session, ip, port, local, data: Buffer.from(buf.subarray(o, o + len)) });
    o += len;
  }
}

export const EV = {
  ssrc: 1,
  keyframe: 2,
  gap: 3,
  recovered: 4,
  switched: 5,
  pli: 6,
  fir: 7,
  nack: 8,
  remb: 9,
  twccIn: 10,
  twccOut: 11,
  tap: 12,
  sr: 13,
} as const;

/** Calls `each(type, view, offset, length)` for every record of a drain() batch; `view` reads the fields (little endian). */
export function decodeEvents(buf: Buffer, each: (type: number, b: Buffer, at: number, length: number) => void): void {
  let o = 0;
  while (o + 4 <= buf.length) {
    const type = buf[o]!;
    const len = buf.readUInt16LE(o + 2);
    if (o + 4 + len > buf.length) return;
    each(type, buf, o + 4, len);
    o += 4 + len;
  }
}

/** Per-layer fields of upStats() (UP_LAYER_FIELDS). */
export const UP = {
  ssrc: 0,
  packets: 1,
  bytes: 2,
  expected: 3,
  late: 4,
  jitter: 5,
  lastMediaMs: 6,
  width: 7,
  height: 8,
  keyframes: 9,
  srMid: 10,
  srAtMs: 11,
  highest: 12,
  audioLevel: 13,
  /** RTX packets that repaired a missing packet (unwrapped and forwarded). */
  rtxRecovered: 14,
  /** RTX packets for packets already here (dropped). */
  rtxUnneeded: 15,
  /** Padding-only RTX packets (the publisher's probes). */
  rtxPadding: 16,
  FIELDS: 17,
} as const;

/** Fields of downStats() (DOWN_FIELDS). */
export const DOWN = {
  packets: 0,
  bytes: 1,
  headerBytes: 2,
  nacks: 3,
  resent: 4,
  plis: 5,
  firs: 6,
  rrLost: 7,
  rrFraction: 8,
  rrJitter: 9,
  current: 10,
  target: 11,
  lastRtpTs: 12,
  lastSentMs: 13,
  switches: 14,
  ssrc: 15,
  started: 16,
  attached: 17,
  /** Retransmissions sent on the subscriber's RTX stream (a part of `resent`). */
  rtxSent: 18,
  /** Bandwidth-probe padding packets sent (probe()), and their padding bytes. */
  probePackets: 19,
  probeBytes: 20,
} as const;

/** Fields of sessionStats(). */
export const SESSION = { packetsIn: 0, bytesIn: 1, packetsOut: 2, bytesOut: 3, authFailures: 4, replays: 5, unroutable: 6, remb: 7, twccSeq: 8 } as const;
