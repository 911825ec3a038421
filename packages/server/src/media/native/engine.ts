// The native media engine: werift for ICE, DTLS and SDP; the packet plane
// (packages/native, a Node-API addon) for every RTP and RTCP packet. It runs
// in a media worker *process* (see ../workers): it patches werift for the
// whole process (mux.ts), and a fault in native code must cost one worker,
// not the server.
//
// One 20 ms timer drains the plane's facts and gives each stream its turn
// (NACKs, transport-cc feedback, receiver reports, layer choice, sender
// report counters); STUN and DTLS come in as they arrive.
import type { DownStream, DownStreamOptions, MediaEngine, SourceStream, SourceStreamOptions, UpStream, UpStreamOptions } from '../engine.ts';
import { NTP_UNIX_OFFSET } from '../rtp.ts';
import type { WeriftEngineOptions } from '../werift/config.ts';
import { type NativeAddon, type Plane, EV, decodeEvents, loadNativeAddon } from './addon.ts';
import { NativeDownStream, type NativeDownTrack } from './down-stream.ts';
import type { SrtpResume } from './link.ts';
import { Mux } from './mux.ts';
import { NativeSourceStream, NativeSourceUp } from './source-stream.ts';
import { NativeUpStream, type NativeUpTrack } from './up-stream.ts';

const TIMER_MS = 20;
/** Bytes of an EV_TAP record before the payload. */
const TAP_HEADER = 25;
/** Kernel buffers of the media socket: every stream of the worker shares it. */
const RECV_BUFFER = 8 << 20;
const SEND_BUFFER = 8 << 20;

/** ATRIUM_NATIVE_DEBUG: a peer connection's ICE and DTLS states and nominated pair. */
function iceDebug(pc: { iceConnectionState: string; connectionState: string }): string {
  const t = (pc as unknown as { dtlsTransports?: { state: string; role: string; iceTransport: { state: string; connection: { nominated?: { remoteAddr: unknown } } } }[] }).dtlsTransports?.[0];
  const c = t?.iceTransport.connection as unknown as
    | {
        remoteUsername?: string;
        localUsername?: string;
        remoteCandidates?: { host: string; port: number }[];
        checkList?: { state: number; remoteAddr: unknown; nominated?: boolean }[];
        atriumIn?: number;
      }
    | undefined;
  const pairs = c?.checkList?.map((p) => `${JSON.stringify(p.remoteAddr)}:${p.state}${p.nominated ? 'N' : ''}`).join(' ');
  return `pc=${pc.connectionState}/${pc.iceConnectionState} ice=${t?.iceTransport.state} dtls=${t?.state}/${t?.role} nominated=${JSON.stringify(t?.iceTransport.connection.nominated?.remoteAddr)} ufrags=${c?.localUsername}:${c?.remoteUsername} remote=${c?.remoteCandidates?.map((r) => `${r.host}:${r.port}`).join(',')} pairs=[${pairs}] in=${c?.atriumIn ?? 0}`;
}

export interface NativeEngineOptions extends WeriftEngineOptions {
  log?: { warn(obj: object, msg: string): void };
}

export class NativeEngine implements MediaEngine {
  readonly name = 'native';
  readonly plane: Plane;
  readonly mux: Mux;
  readonly port: number;
  readonly log: NativeEngineOptions['log'];
  readonly upTracks = new Map<number, NativeUpTrack>();
  readonly downTracks = new Map<number, NativeDownTrack>();
  /** Plane session id -> the stream whose transport it is. */
  readonly sessions = new Map<number, NativeUpStream | NativeDownStream>();
  #ups = new Set<NativeUpStream>();
  #sources = new Set<NativeSourceStream>();
  #downs = new Set<NativeDownStream>();
  #timer: NodeJS.Timeout;
  #closed = false;

  constructor(
    addon: NativeAddon,
    readonly options: NativeEngineOptions = {},
  ) {
    this.log = options.log;
    this.plane = new addon.Plane((datagrams, eager) => {
      if (datagrams) this.mux.onDatagrams(datagrams);
      if (eager) this.#drain(Date.now());
    });
    const range = options.portRange;
    this.port = this.plane.open({ ...(range ? { min: range[0], max: range[1] } : {}), recvBuffer: RECV_BUFFER, sendBuffer: SEND_BUFFER });
    this.mux = new Mux(this.plane, this.port);
    this.#timer = setInterval(() => this.#onTimer(), TIMER_MS);
    if (process.env.ATRIUM_NATIVE_DEBUG) this.#debugTimer = setInterval(() => this.#dump(), 2000);
  }
  #debugTimer: NodeJS.Timeout | undefined;

  /** ATRIUM_NATIVE_DEBUG=1: every stream and its plane counters on stderr, every 2 s. */
  #dump(): void {
    const lines: string[] = [`native engine pid ${process.pid} port ${this.port}: ${JSON.stringify(this.debug())}`];
    for (const u of this.#ups) {
      const s = u.link.session ? this.plane.sessionStats(u.link.session.id) : null;
      lines.push(
        `  up ${u.id} ${u.state} ${iceDebug(u.pc)} keyed=${u.link.keyed} session=${u.link.session?.id} remote=${u.link.remote} [${s ? [...s].join(',') : ''}] tracks ${u.tracks.map((t) => `${t.id}/${t.kind}/plane${t.planeId} ssrcs=${t.layerList.map((l) => l.ssrc).join('|')}`).join(' ')}`,
      );
    }
    for (const d of this.#downs) {
      const s = d.link.session ? this.plane.sessionStats(d.link.session.id) : null;
      const tracks = [...this.downTracks.values()].filter((t) => t.owner === d).map((t) => `${t.up.kind}:plane${t.planeId} cur=${t.current} tgt=${t.target} pkts=${t.stats?.[0] ?? '-'}`);
      lines.push(`  down ${d.id} ${d.state} ${iceDebug(d.pc)} keyed=${d.link.keyed} session=${d.link.session?.id} remote=${d.link.remote} [${s ? [...s].join(',') : ''}] ${tracks.join(' ')}`);
    }
    console.error(lines.join('\n'));
  }

  /** `resume`: the stream continues a dead worker's transport (link.ts). */
  createUpStream(options: UpStreamOptions & { resume?: SrtpResume | undefined }): UpStream {
    if (this.#closed) throw new Error(`up-stream ${options.id}: the native media engine is closed`);
    const up = new NativeUpStream(this, options, (s) => this.#ups.delete(s));
    this.#ups.add(up);
    return up;
  }

  createSourceStream(options: SourceStreamOptions): SourceStream {
    if (this.#closed) throw new Error(`source stream ${options.id}: the native media engine is closed`);
    const source = new NativeSourceStream(this, options, (s) => this.#sources.delete(s));
    this.#sources.add(source);
    return source;
  }

  createDownStream(options: DownStreamOptions & { resume?: SrtpResume | undefined }): DownStream {
    const source = options.source;
    const ours = (source instanceof NativeUpStream && this.#ups.has(source)) || (source instanceof NativeSourceUp && [...this.#sources].some((s) => s.up === source));
    if (!ours || source.closed) {
      throw new Error(`down-stream ${options.id}: its source ${source.id} is not an open up-stream of this native engine`);
    }
    const down = new NativeDownStream(this, { ...options, source: source as NativeUpStream | NativeSourceUp }, (s) => this.#downs.delete(s));
    this.#downs.add(down);
    return down;
  }

  #onTimer(): void {
    const now = Date.now();
    this.#drain(now);
    for (const u of this.#ups) u.onTimer(now);
    for (const d of this.#downs) d.onTimer(now);
  }

  #drain(now: number): void {
    const buf = this.plane.drain();
    if (!buf) return;
    decodeEvents(buf, (type, b, o, length) => {
      switch (type) {
        case EV.ssrc: {
          const t = this.upTracks.get(b.readUInt32LE(o));
          t?.owner.onSsrc(t, b[o + 4]!, b.readUInt32LE(o + 5));
          return;
        }
        case EV.gap:
          this.upTracks.get(b.readUInt32LE(o))?.onGap(b[o + 4]!, b.readUInt16LE(o + 5), b.readUInt16LE(o + 7), now);
          return;
        case EV.recovered:
          this.upTracks.get(b.readUInt32LE(o))?.onRecovered(b[o + 4]!, b.readUInt16LE(o + 5));
          return;
        case EV.keyframe: {
          const t = this.upTracks.get(b.readUInt32LE(o));
          const l = t?.layerList[b[o + 4]!];
          const width = b.readUInt16LE(o + 5);
          if (l && width) l.width = width;
          return;
        }
        case EV.twccIn: {
          const s = this.sessions.get(b.readUInt32LE(o));
          if (s instanceof NativeUpStream) s.onTwccArrivals(b, o + 6, b.readUInt16LE(o + 4));
          return;
        }
        case EV.switched: {
          const d = this.downTracks.get(b.readUInt32LE(o));
          if (d) d.current = b.readInt8(o + 4);
          return;
        }
        case EV.pli:
        case EV.fir:
          this.downTracks.get(b.readUInt32LE(o))?.keyframeRequest();
          return;
        case EV.nack: {
          const d = this.downTracks.get(b.readUInt32LE(o));
          if (d) d.nacks += b.readUInt16LE(o + 4);
          return;
        }
        case EV.remb: {
          const s = this.sessions.get(b.readUInt32LE(o));
          if (s instanceof NativeDownStream) s.remb = b.readDoubleLE(o + 4);
          return;
        }
        case EV.twccOut: {
          const s = this.sessions.get(b.readUInt32LE(o));
          if (s instanceof NativeDownStream) s.onTwccReports(b, o + 6, b.readUInt16LE(o + 4), now);
          return;
        }
        case EV.tap: {
          // up u32, layer u8, flags u8, arrival f64, seq u16, ts u32, ssrc u32, pt u8, payload
          const t = this.upTracks.get(b.readUInt32LE(o));
          if (!t || length < TAP_HEADER) return;
          const flags = b[o + 5]!;
          t.onTapPacket({
            layer: b[o + 4]!,
            marker: (flags & 1) !== 0,
            keyframe: (flags & 2) !== 0,
            arrival: b.readDoubleLE(o + 6),
            sequenceNumber: b.readUInt16LE(o + 14),
            timestamp: b.readUInt32LE(o + 16),
            ssrc: b.readUInt32LE(o + 20),
            payloadType: b[o + 24]!,
            payload: b.subarray(o + TAP_HEADER, o + length),
          });
          return;
        }
        case EV.sr: {
          // up u32, layer u8, NTP seconds u32, NTP fraction u32, RTP timestamp u32
          const t = this.upTracks.get(b.readUInt32LE(o));
          if (!t) return;
          const ntpMs = (b.readUInt32LE(o + 5) - NTP_UNIX_OFFSET) * 1000 + (b.readUInt32LE(o + 9) / 0x100000000) * 1000;
          t.onSenderReport(b[o + 4]!, ntpMs, b.readUInt32LE(o + 13), now);
          return;
        }
        default:
          return;
      }
    });
  }

  /** Live streams and plane objects (diagnostics, leak checks). */
  debug(): { ups: number; sources: number; downs: number; sessions: number; upTracks: number; downTracks: number; sendDrops: number; unknownMedia: number } {
    return {
      ups: this.#ups.size,
      sources: this.#sources.size,
      downs: this.#downs.size,
      sessions: this.mux.sessionCount,
      upTracks: this.upTracks.size,
      downTracks: this.downTracks.size,
      sendDrops: this.plane.info().sendDrops,
      unknownMedia: this.plane.info().unknownMedia,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of [...this.#downs]) d.close();
    for (const u of [...this.#ups]) u.close();
    for (const s of [...this.#sources]) s.close();
    clearInterval(this.#timer);
    clearInterval(this.#debugTimer);
    this.mux.close();
  }
}

/** The native engine, or the reason it cannot run here. */
export function createNativeEngine(options: NativeEngineOptions = {}): NativeEngine {
  const load = loadNativeAddon();
  if (!load.ok) throw new Error(`the native media engine is not available: ${load.reason}`);
  return new NativeEngine(load.addon, options);
}
