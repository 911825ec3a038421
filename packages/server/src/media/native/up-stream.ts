// Publisher side of the native engine: werift answers the offer and runs
// ICE/DTLS; the packet plane receives, decrypts and fans out the RTP. This
// side keeps what is decided per track and per layer: NACKs to the
// publisher (from the plane's sequence-gap facts), keyframe requests,
// transport-cc feedback (from the plane's arrival times) and receiver
// reports (from the plane's counters). Taps (UpTrack.attach) get the
// plane's copies of the decrypted packets in its event batches.
import { RTCPeerConnection, type RTCRtpTransceiver } from 'werift';
import type {
  CodecName,
  CodecParameters,
  ConnectionState,
  IceCandidate,
  StreamStats,
  TrackKind,
  TrackPacket,
  TrackSink,
  TrackStats,
  TrackTap,
  TrackTapOptions,
  UpStream,
  UpStreamEvents,
  UpStreamOptions,
  UpTrack,
} from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import { RateMeter, seqAdd, seqDiff } from '../rtp.ts';
import { QueuedTrackTap } from '../tap-queue.ts';
import { type CodecDescription, codecName, upConfig } from '../werift/config.ts';
import { holdEarlyDtls, preferDtlsServer } from '../werift/dtls.ts';
import { TwccFeedback } from '../werift/twcc.ts';
import { fromCandidate, KEYFRAME_REQUEST_INTERVAL_MS, toCandidate } from '../werift/up-stream.ts';
import { UP } from './addon.ts';
import type { NativeEngine } from './engine.ts';
import { NativeLink, type SrtpResume, withoutGeneration } from './link.ts';
import { EXT, extensionId, mediaSections, type MediaSection } from './sdp.ts';

const NACK_RETRY_MS = 60;
const NACK_MAX_TRIES = 5;
const NACK_MAX_AGE_MS = 1000;
const TWCC_INTERVAL_MS = 50;
const RR_INTERVAL_MS = 1000;
const RATE_SAMPLE_MS = 100;

/** One encoding of an up-track as this side sees it. */
class NativeLayer {
  ssrc = 0;
  width: number | undefined;
  lastMediaMs = 0;
  readonly meter = new RateMeter();
  lastKeyframeRequest = 0;
  keyframeRequests = 0;
  firSeq = 0;
  nacks = 0;
  #bytes = 0;
  // for the RR's fraction lost over the interval
  #expectedPrior = 0;
  #receivedPrior = 0;
  fractionLost = 0;
  readonly missing = new Map<number, { tries: number; next: number; since: number }>();
  constructor(readonly rid: string | undefined) {}

  /** Feeds the rate meter from the plane's byte counter. */
  sample(bytes: number, now: number): void {
    if (bytes > this.#bytes) this.meter.add(bytes - this.#bytes, now);
    this.#bytes = bytes;
  }
  /** Fraction lost since the previous call (RFC 3550 A.3). */
  interval(expected: number, received: number): number {
    const e = expected - this.#expectedPrior;
    const r = received - this.#receivedPrior;
    this.#expectedPrior = expected;
    this.#receivedPrior = received;
    this.fractionLost = e > 0 ? Math.max(0, (e - r) / e) : 0;
    return this.fractionLost;
  }
  dueNacks(now: number): number[] {
    const due: number[] = [];
    for (const [seq, m] of this.missing) {
      if (m.tries >= NACK_MAX_TRIES || now - m.since > NACK_MAX_AGE_MS) {
        this.missing.delete(seq);
        continue;
      }
      if (m.next <= now) {
        due.push(seq);
        m.tries++;
        m.next = now + NACK_RETRY_MS;
      }
    }
    return due;
  }
}

/** What a track needs of the stream it belongs to: a publisher's up-stream, or a source stream's. */
export interface NativeTrackOwner {
  readonly engine: NativeEngine;
  readonly keyframeBy: 'pli' | 'fir';
  readonly rtcpSsrc: number;
  /** The publisher's audio packets carry RFC 6464 levels (the extension was negotiated); a source stream's do not. */
  readonly audioLevels?: boolean;
  /** RTCP to the publisher (keyframe requests, NACKs). */
  sendRtcp(packet: Buffer): void;
  /** From the plane: an SSRC was bound to a layer. */
  onSsrc(track: NativeUpTrack, layer: number, ssrc: number): void;
}

export class NativeUpTrack implements UpTrack {
  readonly layerList: NativeLayer[] = [];
  /** The plane's id of this track (0 until the transport is handed over). */
  #planeId = 0;
  codec: CodecName | undefined;
  codecDescription: CodecDescription | undefined;
  payloadTypes: number[] = [];
  /** RTX (RFC 4588) negotiated for this track: [rtx payload type, the payload type it repairs, ...]. */
  rtx: number[] = [];
  signalledSsrcs: number[] = [];
  signalledRtxSsrcs: number[] = [];
  #lastStats: Float64Array | undefined;
  #ended = false;
  readonly downs = new Set<{ onUpTrackEnded(): void }>();
  readonly #taps = new Set<NativeTrackTap>();

  /**
   * `onKeyframeRequest`: a source stream's track, whose keyframe requests go
   * to its writer instead of an RTCP packet to a publisher.
   */
  constructor(
    readonly owner: NativeTrackOwner,
    readonly id: string,
    readonly kind: TrackKind,
    readonly clockRate: number,
    rids: readonly (string | undefined)[],
    private readonly onKeyframeRequest?: (layer: number) => void,
  ) {
    if (rids.length === 0) this.layerList.push(new NativeLayer(undefined));
    else for (const r of rids) this.layerList.push(new NativeLayer(r));
  }

  get planeId(): number {
    return this.#planeId;
  }
  /** Set once the plane has the track (and to 0 when it is gone): taps attached before then start now. */
  set planeId(id: number) {
    this.#planeId = id;
    if (id && this.#taps.size > 0) this.owner.engine.plane.setTap(id, true);
  }

  get layers(): readonly string[] {
    return this.layerList.flatMap((l) => (l.rid === undefined ? [] : [l.rid]));
  }

  get ended(): boolean {
    return this.#ended;
  }

  get parameters(): CodecParameters | undefined {
    const d = this.codecDescription;
    if (!this.codec || !d) return undefined;
    return { name: this.codec, mimeType: d.mimeType, clockRate: d.clockRate, ...(d.channels ? { channels: d.channels } : {}), ...(d.parameters ? { fmtp: d.parameters } : {}) };
  }

  attach(sink: TrackSink, options: TrackTapOptions = {}): TrackTap {
    if (this.#ended) throw new Error(`up-track ${this.id} has ended; nothing can be attached to it`);
    const tap = new NativeTrackTap(this, sink, options);
    this.#taps.add(tap);
    if (this.#taps.size === 1 && this.#planeId) this.owner.engine.plane.setTap(this.#planeId, true);
    return tap;
  }

  /** A tap is done: when it was the last, the plane stops copying packets for taps. */
  removeTap(tap: NativeTrackTap): void {
    if (!this.#taps.delete(tap)) return;
    if (this.#taps.size === 0 && this.#planeId) this.owner.engine.plane.setTap(this.#planeId, false);
  }

  /** From the plane's event batch: one packet for the taps (`payload` is a view into the batch). */
  onTapPacket(p: TrackPacket): void {
    for (const tap of this.#taps) tap.push(p);
  }

  /** From the plane: a sender report of one layer (ntpTime in ms since 1970). */
  onSenderReport(layer: number, ntpTime: number, rtpTimestamp: number, now: number): void {
    for (const tap of this.#taps) tap.report(layer, ntpTime, rtpTimestamp, now);
  }

  /** The plane's counters, refreshed at most every RATE_SAMPLE_MS. */
  planeStats(now: number, fresh = false): Float64Array | undefined {
    if (!this.planeId) return undefined;
    if (!fresh && this.#lastStats && now - this.#sampledAt < RATE_SAMPLE_MS) return this.#lastStats;
    const s = this.owner.engine.plane.upStats(this.planeId) ?? undefined;
    this.#lastStats = s;
    this.#sampledAt = now;
    if (s) {
      for (let i = 0; i < this.layerList.length; i++) {
        const l = this.layerList[i]!;
        const o = i * UP.FIELDS;
        l.sample(s[o + UP.bytes]!, now);
        l.lastMediaMs = s[o + UP.lastMediaMs]!;
        if (s[o + UP.width]) l.width = s[o + UP.width];
      }
    }
    return s;
  }
  #sampledAt = 0;

  /** Bits per second of each layer; a layer with media in the last 5 s counts as active (at least 1). */
  layerRates(now = Date.now()): number[] {
    this.planeStats(now);
    return this.layerList.map((l) => l.meter.rate(now) || (now - l.lastMediaMs < 5000 ? 1 : 0));
  }

  onGap(layer: number, first: number, count: number, now: number): void {
    const l = this.layerList[layer];
    if (!l) return;
    for (let k = 0, s = first; k < count; k++, s = seqAdd(s, 1)) l.missing.set(s, { tries: 0, next: now, since: now });
  }
  onRecovered(layer: number, seq: number): void {
    this.layerList[layer]?.missing.delete(seq);
  }

  /** PLI (or FIR, when only that was negotiated) for one layer or all, at most once per KEYFRAME_REQUEST_INTERVAL_MS per layer. */
  requestKeyframe(layerIndex?: number): void {
    if (this.kind !== 'video' || this.#ended) return;
    const now = Date.now();
    const targets = layerIndex === undefined ? this.layerList : [this.layerList[layerIndex]];
    for (const layer of targets) {
      if (!layer?.ssrc) continue;
      if (now - layer.lastKeyframeRequest < KEYFRAME_REQUEST_INTERVAL_MS) continue;
      layer.lastKeyframeRequest = now;
      layer.keyframeRequests++;
      if (this.onKeyframeRequest) {
        this.onKeyframeRequest(this.layerList.indexOf(layer));
        continue;
      }
      const b = this.owner.keyframeBy === 'fir' ? Buffer.alloc(20) : Buffer.alloc(12);
      if (b.length === 12) {
        b[0] = 0x81; // PLI (RFC 4585 §6.3.1)
        b[1] = 206;
        b.writeUInt16BE(2, 2);
        b.writeUInt32BE(this.owner.rtcpSsrc, 4);
        b.writeUInt32BE(layer.ssrc >>> 0, 8);
      } else {
        b[0] = 0x80 | 4; // FIR (RFC 5104 §4.3.1)
        b[1] = 206;
        b.writeUInt16BE(4, 2);
        b.writeUInt32BE(this.owner.rtcpSsrc, 4);
        b.writeUInt32BE(layer.ssrc >>> 0, 12);
        b[16] = layer.firSeq;
        layer.firSeq = (layer.firSeq + 1) & 0xff;
      }
      this.owner.sendRtcp(b);
    }
  }

  sendNacks(now: number): void {
    if (this.onKeyframeRequest) return; // a source stream's track: nobody to ask
    for (const layer of this.layerList) {
      if (!layer.ssrc || layer.missing.size === 0) continue;
      const lost = layer.dueNacks(now);
      if (lost.length === 0) continue;
      layer.nacks += lost.length;
      this.owner.sendRtcp(nackPacket(this.owner.rtcpSsrc, layer.ssrc, lost));
    }
  }

  /** RFC 3550 report blocks for this track's layers. */
  reportBlocks(now: number): Buffer[] {
    const s = this.planeStats(now, true);
    if (!s) return [];
    const out: Buffer[] = [];
    for (let i = 0; i < this.layerList.length; i++) {
      const l = this.layerList[i]!;
      const o = i * UP.FIELDS;
      if (!l.ssrc || s[o + UP.highest]! < 0) continue;
      const expected = s[o + UP.expected]!;
      const received = s[o + UP.packets]!;
      const fraction = l.interval(expected, received);
      const lost = Math.max(-0x800000, Math.min(0x7fffff, Math.round(expected - received)));
      const b = Buffer.alloc(24);
      b.writeUInt32BE(l.ssrc >>> 0, 0);
      b[4] = Math.min(255, Math.floor(fraction * 256));
      b.writeIntBE(lost, 5, 3);
      b.writeUInt32BE(s[o + UP.highest]! >>> 0, 8);
      b.writeUInt32BE(Math.min(0xffffffff, Math.round(s[o + UP.jitter]! * this.clockRate)) >>> 0, 12);
      const srMid = s[o + UP.srMid]!;
      const srAt = s[o + UP.srAtMs]!;
      b.writeUInt32BE(srMid >>> 0, 16);
      b.writeUInt32BE(srAt > 0 ? Math.min(0xffffffff, Math.round(((now - srAt) / 1000) * 65536)) >>> 0 : 0, 20);
      out.push(b);
    }
    return out;
  }

  stats(): TrackStats {
    const now = Date.now();
    const st = this.planeStats(now, true);
    let packets = 0;
    let bytes = 0;
    let lost = 0;
    let jitter = 0;
    let bitrate = 0;
    let fraction = 0;
    for (let i = 0; i < this.layerList.length; i++) {
      const l = this.layerList[i]!;
      const o = i * UP.FIELDS;
      if (st) {
        packets += st[o + UP.packets]!;
        bytes += st[o + UP.bytes]!;
        lost += Math.max(0, st[o + UP.expected]! - st[o + UP.packets]!);
        jitter = Math.max(jitter, st[o + UP.jitter]!);
      }
      bitrate += l.meter.rate(now);
      fraction = Math.max(fraction, l.fractionLost);
    }
    const s: TrackStats = {
      trackId: this.id,
      kind: this.kind,
      codec: this.codec,
      bitrate,
      packets,
      bytes,
      packetsLost: lost,
      fractionLost: fraction,
      jitter,
      keyframeRequests: this.layerList.reduce((a, l) => a + l.keyframeRequests, 0),
      nacks: this.layerList.reduce((a, l) => a + l.nacks, 0),
    };
    if (this.kind === 'video' && st && this.rtx.length > 0) {
      s.rtxRecovered = 0;
      s.rtxUnneeded = 0;
      for (let i = 0; i < this.layerList.length; i++) {
        s.rtxRecovered += st[i * UP.FIELDS + UP.rtxRecovered]!;
        s.rtxUnneeded += st[i * UP.FIELDS + UP.rtxUnneeded]!;
      }
    }
    if (this.kind === 'audio' && st) {
      // RFC 6464: -dBov, 0 loudest, 127 silence (the plane reports 127 when the level is stale)
      const level = st[UP.audioLevel]!;
      // As the JavaScript engine does: a level (silence while none came in the last second) once levels can come.
      if (level < 127 || this.owner.audioLevels) {
        s.audioLevel = level >= 127 ? 0 : 10 ** (-level / 20);
      }
    }
    if (this.layers.length > 0) {
      s.layers = this.layerList.map((l, i) => ({
        rid: l.rid ?? '',
        bitrate: l.meter.rate(now),
        packets: st ? st[i * UP.FIELDS + UP.packets]! : 0,
        ...(l.width ? { width: l.width } : {}),
      }));
    }
    return s;
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const d of [...this.downs]) d.onUpTrackEnded();
    this.downs.clear();
    const taps = [...this.#taps];
    this.#taps.clear();
    if (this.#planeId) this.owner.engine.plane.setTap(this.#planeId, false);
    for (const tap of taps) tap.onUpTrackEnded();
  }
}

/** A sink attached to a native up-track: the plane's copies go through a TapQueue to the owner's TrackSink. */
export class NativeTrackTap extends QueuedTrackTap<NativeUpTrack> {
  push(p: TrackPacket): void {
    if (this.queue.wants(p.layer)) this.queue.push(p);
  }

  protected removeFromTrack(): void {
    this.track.removeTap(this);
  }
}

/** A generic NACK (RFC 4585 §6.2.1) for these sequence numbers. */
export function nackPacket(senderSsrc: number, mediaSsrc: number, lost: number[]): Buffer {
  const sorted = [...lost].sort((a, b) => seqDiff(a, b));
  const fci: [number, number][] = [];
  for (const seq of sorted) {
    const last = fci[fci.length - 1];
    const d = last ? seqDiff(seq, last[0]) : -1;
    if (last && d >= 1 && d <= 16) last[1] |= 1 << (d - 1);
    else fci.push([seq, 0]);
  }
  const b = Buffer.alloc(12 + 4 * fci.length);
  b[0] = 0x81;
  b[1] = 205;
  b.writeUInt16BE(2 + fci.length, 2);
  b.writeUInt32BE(senderSsrc >>> 0, 4);
  b.writeUInt32BE(mediaSsrc >>> 0, 8);
  fci.forEach(([pid, blp], i) => {
    b.writeUInt16BE(pid, 12 + 4 * i);
    b.writeUInt16BE(blp, 14 + 4 * i);
  });
  return b;
}

/** What a native down-stream needs of its source: a publisher's up-stream, or a source stream's. */
export interface NativeSource extends UpStream {
  readonly tracks: readonly NativeUpTrack[];
  /** The down-streams fed by it, closed with it. */
  readonly downs: Set<{ close(): void }>;
}

export class NativeUpStream extends TypedEmitter<UpStreamEvents> implements NativeSource, NativeTrackOwner {
  readonly id: string;
  readonly label: string;
  readonly pc: RTCPeerConnection;
  readonly link: NativeLink;
  readonly downs = new Set<{ close(): void }>();
  #tracks = new Map<string, NativeUpTrack>();
  #state: ConnectionState = 'new';
  #closed = false;
  #offer: MediaSection[] = [];
  #answer: MediaSection[] = [];
  #twcc: TwccFeedback | undefined;
  #twccMediaSsrc = 0;
  #twccLast = 0;
  #rrLast = 0;
  keyframeBy: 'pli' | 'fir' = 'pli';
  rtcpSsrc = 1;
  audioLevels = false;

  constructor(
    readonly engine: NativeEngine,
    options: UpStreamOptions & { resume?: SrtpResume | undefined },
    private readonly onClosed: (s: NativeUpStream) => void,
  ) {
    super();
    this.id = options.id;
    this.label = options.label;
    // RTX offered: the plane unwraps it (packages/native/src/plane.cc, handle_rtx)
    this.pc = new RTCPeerConnection({ ...upConfig(engine.options, options.iceServers, options.codecs), iceFilterStunResponse: engine.mux.marker });
    this.link = new NativeLink(
      engine.mux,
      this.pc,
      () => this.#handedOver(),
      (why) => this.#unusable(why),
    );
    this.link.resume = options.resume;
    this.pc.onIceCandidate.subscribe((c) => {
      if (c?.candidate) this.emit('candidate', toCandidate(c.toJSON()));
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (this.#closed) return;
      // A resumed transport never finishes werift's DTLS: it is connected once it has the keys (onTimer).
      if (this.link.resume && state !== 'failed' && state !== 'closed') return;
      this.#state = state;
      this.emit('state', state);
      if (state === 'failed') this.close();
    });
  }

  get tracks(): readonly NativeUpTrack[] {
    return [...this.#tracks.values()];
  }
  get state(): ConnectionState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#closed;
  }

  async answer(offerSdp: string): Promise<string> {
    if (this.#closed) throw new Error(`up-stream ${this.id} is closed; the offer cannot be answered`);
    if (this.link.resume) offerSdp = withoutGeneration(offerSdp);
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    this.#offer = mediaSections(offerSdp);
    preferDtlsServer(this.pc, offerSdp);
    holdEarlyDtls(this.pc);
    this.link.hook();
    const added: NativeUpTrack[] = [];
    for (const transceiver of this.pc.getTransceivers()) {
      const t = this.#adopt(transceiver);
      if (t) added.push(t);
    }
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.link.hook();
    const sdp = this.pc.localDescription!.sdp;
    this.#answer = mediaSections(sdp);
    this.#configure();
    for (const t of added) this.emit('track', t);
    return sdp;
  }

  #adopt(transceiver: RTCRtpTransceiver): NativeUpTrack | undefined {
    const mid = transceiver.mid ?? `${this.#tracks.size}`;
    const codec = transceiver.codecs.find((c) => codecName(c.mimeType));
    let track = this.#tracks.get(mid);
    let fresh = false;
    const section = this.#offer.find((s) => s.mid === mid);
    if (!track) {
      if (!codec) return undefined;
      track = new NativeUpTrack(this, mid, transceiver.kind as TrackKind, codec.clockRate, section?.rids ?? []);
      this.#tracks.set(mid, track);
      fresh = true;
    }
    if (codec) {
      track.codec = codecName(codec.mimeType);
      track.codecDescription = {
        mimeType: codec.mimeType,
        clockRate: codec.clockRate,
        ...(codec.channels ? { channels: codec.channels } : {}),
        ...(codec.parameters ? { parameters: codec.parameters } : {}),
      };
      track.payloadTypes = transceiver.codecs.filter((c) => codecName(c.mimeType)).map((c) => c.payloadType);
      track.rtx = transceiver.codecs.flatMap((c) => {
        const apt = /(?:^|;)\s*apt=(\d+)/.exec(c.parameters ?? '');
        return c.mimeType.toLowerCase() === 'video/rtx' && apt ? [c.payloadType, Number(apt[1])] : [];
      });
    }
    if (section && section.rids.length === 0) {
      track.signalledSsrcs = section.ssrcs.slice(0, 1);
      track.signalledRtxSsrcs = section.rtxSsrcs.slice(0, 1);
      // the plane binds signalled SSRCs at once (no event): know them here too
      if (track.signalledSsrcs[0]) {
        track.layerList[0]!.ssrc = track.signalledSsrcs[0];
        this.#twccMediaSsrc ||= track.signalledSsrcs[0];
      }
    }
    if (track.kind === 'video') {
      const fb = transceiver.codecs[0]?.rtcpFeedback ?? [];
      const pli = fb.some((f) => f.type === 'nack' && f.parameter === 'pli');
      this.keyframeBy = !pli && fb.some((f) => f.type === 'ccm' && f.parameter === 'fir') ? 'fir' : 'pli';
    }
    this.rtcpSsrc = transceiver.receiver.rtcpSsrc >>> 0 || 1;
    return fresh ? track : undefined;
  }

  /** The bundle's header extension ids, once answered. */
  #configure(): void {
    const s = this.link.session;
    if (!s) return;
    const a = this.#answer;
    const twcc = extensionId(a, EXT.twcc);
    this.audioLevels = extensionId(a, EXT.audioLevel) > 0;
    this.engine.plane.setExtensions(s.id, extensionId(a, EXT.mid), extensionId(a, EXT.rid), extensionId(a, EXT.rrid), twcc, extensionId(a, EXT.audioLevel));
    if (twcc && !this.#twcc) this.#twcc = new TwccFeedback(this.rtcpSsrc);
    for (const t of this.#tracks.values()) {
      if (t.planeId || !t.codec) continue;
      t.planeId = this.engine.plane.createUp(s.id, {
        codec: t.codec,
        video: t.kind === 'video',
        clockRate: t.clockRate,
        mid: t.id,
        rids: t.layers.slice(),
        ssrcs: t.signalledSsrcs,
        payloadTypes: t.payloadTypes,
        rtx: t.rtx,
        rtxSsrcs: t.signalledRtxSsrcs,
      });
      if (t.planeId) this.engine.upTracks.set(t.planeId, t);
    }
  }

  #handedOver(): void {
    this.engine.sessions.set(this.link.session!.id, this);
    this.#configure();
  }

  #unusable(why: string): void {
    this.engine.log?.warn({ stream: this.id }, `native media engine: up-stream ${this.id}: ${why}; the stream is closed`);
    this.close();
  }

  sendRtcp(packet: Buffer): void {
    this.link.sendRtcp(packet);
  }

  /** From the plane: an SSRC was bound to a layer. */
  onSsrc(track: NativeUpTrack, layer: number, ssrc: number): void {
    const l = track.layerList[layer];
    if (l) l.ssrc = ssrc;
    this.#twccMediaSsrc = ssrc;
  }

  onTwccArrivals(b: Buffer, at: number, count: number): void {
    const twcc = this.#twcc;
    if (!twcc) return;
    for (let k = 0, o = at; k < count; k++, o += 10) twcc.record(b.readUInt16LE(o), b.readDoubleLE(o + 2));
  }

  /** The engine's 20 ms timer. */
  onTimer(now: number): void {
    if (!this.#closed && this.link.resumePending()) {
      this.#state = 'connected';
      this.emit('state', 'connected');
    }
    if (this.#closed || !this.link.keyed) return;
    this.link.tick();
    for (const t of this.#tracks.values()) if (t.kind === 'video') t.sendNacks(now);
    if (this.#twcc?.pending && now - this.#twccLast >= TWCC_INTERVAL_MS) {
      this.#twccLast = now;
      for (const b of this.#twcc.build(this.#twccMediaSsrc)) this.link.sendRtcp(b);
    }
    if (now - this.#rrLast >= RR_INTERVAL_MS) {
      this.#rrLast = now;
      this.#sendReceiverReport(now);
    }
  }

  #sendReceiverReport(now: number): void {
    const blocks = [...this.#tracks.values()].flatMap((t) => t.reportBlocks(now)).slice(0, 31);
    if (blocks.length === 0) return;
    const head = Buffer.alloc(8);
    head[0] = 0x80 | blocks.length;
    head[1] = 201;
    head.writeUInt16BE(1 + 6 * blocks.length, 2);
    head.writeUInt32BE(this.rtcpSsrc, 4);
    this.link.sendRtcp(Buffer.concat([head, ...blocks]));
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate?.candidate) return;
    await this.pc.addIceCandidate(fromCandidate(this.link.resume ? { ...candidate, candidate: withoutGeneration(candidate.candidate) } : candidate));
  }

  requestKeyframe(): void {
    for (const t of this.#tracks.values()) t.requestKeyframe();
  }

  async stats(): Promise<StreamStats> {
    return { id: this.id, state: this.#state, tracks: this.tracks.map((t) => t.stats()) };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#tracks.values()) {
      t.end();
      if (t.planeId) {
        this.engine.plane.closeUp(t.planeId);
        this.engine.upTracks.delete(t.planeId);
        t.planeId = 0;
      }
    }
    for (const d of [...this.downs]) d.close();
    if (this.link.session) this.engine.sessions.delete(this.link.session.id);
    this.link.close();
    this.pc.close().catch(() => {});
    this.#state = 'closed';
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
    this.onClosed(this);
  }
}
