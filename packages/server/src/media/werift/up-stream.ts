// Publisher side: one werift peer connection per up-stream; werift answers.
import {
  GenericNack,
  RTCPeerConnection,
  RTP_EXTENSION_URI,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  type MediaStreamTrack,
  type RTCRtpReceiver,
  type RTCRtpTransceiver,
  type RtpPacket,
} from 'werift';
import type {
  CodecName,
  CodecParameters,
  ConnectionState,
  IceCandidate,
  StreamStats,
  TrackKind,
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
import { ReceiveStats, isKeyframeStart, keyframeWidth, ntpToMs, seqAdd, seqDiff } from '../rtp.ts';
import { QueuedTrackTap } from '../tap-queue.ts';
import { codecName, upConfig, type CodecDescription, type WeriftEngineOptions } from './config.ts';
import { holdEarlyDtls, preferDtlsServer } from './dtls.ts';
import { UP_RECV_BUFFER, raiseSocketBuffers, type DtlsTransportLike } from './fast-send.ts';
import { TwccFeedback, readTwccSeq, twccExtensionId } from './twcc.ts';

/**
 * A video layer that was silent this long (the publisher's network dropped
 * out) and starts again gets a keyframe request at once: what was lost is
 * past what NACKs can recover, and subscribers would otherwise wait for
 * their own decoders to ask.
 */
export const RESUME_KEYFRAME_AFTER_MS = 500;

/** At most one keyframe request per layer in this interval. */
export const KEYFRAME_REQUEST_INTERVAL_MS = 300;
const NACK_INTERVAL_MS = 20;
const NACK_RETRY_MS = 60;
const NACK_MAX_TRIES = 5;
const NACK_MAX_AGE_MS = 1000;
const NACK_MAX_GAP = 200;
/** Transport-cc feedback to the publisher this often (Chromium's own receiver uses 50–250 ms). */
const TWCC_INTERVAL_MS = 50;

type DtlsTransport = NonNullable<RTCRtpReceiver['dtlsTransport']>;

/** The parts of an RTP packet the forwarding path reads: werift's RtpPacket, or a packet a source stream was given. */
export interface RtpLike {
  header: { sequenceNumber: number; timestamp: number; marker: boolean; ssrc: number; payloadType: number };
  payload: Buffer;
}

/** A consumer of an up-track's packets (a down-track, a tap). */
export interface PacketSink {
  onPacket(layer: number, packet: RtpLike, now: number): void;
  /** An RTCP sender report of one layer (ntpTime in ms since 1970). */
  onSenderReport?(layer: number, ntpTime: number, rtpTimestamp: number, now: number): void;
  onUpTrackEnded(): void;
}

/** One encoding of an up-track (one SSRC). */
class Layer {
  ssrc: number | undefined;
  stats: ReceiveStats;
  lastKeyframeRequest = 0;
  keyframeRequests = 0;
  firSeq = 0;
  width: number | undefined;
  lastMedia = 0;
  // publisher-loss NACK state
  #highest = -1;
  #missing = new Map<number, { tries: number; next: number; since: number }>();
  nacks = 0;
  /** Packets recovered from the publisher's RTX stream (RFC 4588), and RTX packets that repaired nothing (its probes, late copies). */
  rtxRecovered = 0;
  rtxUnneeded = 0;
  constructor(
    readonly rid: string | undefined,
    clockRate: number,
  ) {
    this.stats = new ReceiveStats(clockRate);
  }
  trackLoss(seq: number, now: number): void {
    if (this.#highest < 0) {
      this.#highest = seq;
      return;
    }
    const d = seqDiff(seq, this.#highest);
    if (d > 0) {
      if (d > 1 && d <= NACK_MAX_GAP) {
        for (let s = seqAdd(this.#highest, 1); s !== seq; s = seqAdd(s, 1)) this.#missing.set(s, { tries: 0, next: now, since: now });
      }
      this.#highest = seq;
    } else {
      this.#missing.delete(seq);
    }
  }
  /** Whether `seq` is one we are NACKing (a repair for it is wanted). */
  isMissing(seq: number): boolean {
    return this.#missing.has(seq);
  }
  /** Sequence numbers to NACK now. */
  dueNacks(now: number): number[] {
    const due: number[] = [];
    for (const [seq, m] of this.#missing) {
      if (m.tries >= NACK_MAX_TRIES || now - m.since > NACK_MAX_AGE_MS) {
        this.#missing.delete(seq);
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

export class WeriftUpTrack implements UpTrack {
  readonly layerList: Layer[] = [];
  /** The down-tracks and taps fed by this track (an array: the per-packet loop allocates no iterator). */
  #sinks: PacketSink[] = [];
  readonly weriftTracks = new Set<MediaStreamTrack>();
  codec: CodecName | undefined;
  codecDescription: CodecDescription | undefined;
  #audioLevel: { level: number; at: number } | undefined;
  #ended = false;

  /**
   * `receiver`: the publisher's, for PLI, FIR and NACK; undefined for a
   * track of a source stream, whose keyframe requests go to `onKeyframeRequest`.
   */
  constructor(
    readonly id: string,
    readonly kind: TrackKind,
    readonly receiver: RTCRtpReceiver | undefined,
    readonly clockRate: number,
    private readonly onKeyframeRequest?: (layer: number) => void,
  ) {
    receiver?.onRtcp.subscribe((p) => {
      if (p.type !== RtcpSrPacket.type || this.#ended) return;
      const sr = p as RtcpSrPacket;
      const layer = this.layerList.findIndex((l) => l.ssrc === sr.ssrc);
      if (layer < 0) return;
      const now = Date.now();
      const ntp = ntpToMs(sr.senderInfo.ntpTimestamp);
      for (const sink of this.#sinks) sink.onSenderReport?.(layer, ntp, sr.senderInfo.rtpTimestamp, now);
    });
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
    const tap = new WeriftTrackTap(this, sink, options);
    this.addSink(tap);
    return tap;
  }

  get sinks(): readonly PacketSink[] {
    return this.#sinks;
  }
  addSink(sink: PacketSink): void {
    if (!this.#sinks.includes(sink)) this.#sinks = [...this.#sinks, sink];
  }
  removeSink(sink: PacketSink): void {
    this.#sinks = this.#sinks.filter((s) => s !== sink);
  }

  get layers(): readonly string[] {
    return this.layerList.flatMap((l) => (l.rid === undefined ? [] : [l.rid]));
  }

  /** A layer declared up front (a source stream's), with the SSRC its packets will carry; returns its index. */
  addLayer(rid: string | undefined, ssrc: number): number {
    const layer = new Layer(rid, this.clockRate);
    layer.ssrc = ssrc;
    this.layerList.push(layer);
    return this.layerList.length - 1;
  }

  /** Layer index of a werift track: simulcast layers by rid (in SDP order, highest first), else one layer. */
  layerFor(track: MediaStreamTrack): number {
    const rid = track.rid;
    let i = this.layerList.findIndex((l) => l.rid === rid);
    if (i < 0) {
      this.layerList.push(new Layer(rid, this.clockRate));
      i = this.layerList.length - 1;
    }
    return i;
  }

  onPacket(layerIndex: number, packet: RtpLike, levelExt: { v: boolean; level: number } | undefined): void {
    const now = Date.now();
    const layer = this.layerList[layerIndex]!;
    const h = packet.header;
    layer.ssrc = h.ssrc;
    const resumed = this.kind === 'video' && packet.payload.length > 0 && layer.lastMedia > 0 && now - layer.lastMedia > RESUME_KEYFRAME_AFTER_MS;
    if (packet.payload.length > 0) layer.lastMedia = now;
    layer.stats.add(h.sequenceNumber, h.timestamp, packet.payload.length, now);
    if (this.kind === 'video') {
      layer.trackLoss(h.sequenceNumber, now);
      const w = keyframeWidth(this.codec, packet.payload);
      if (w) layer.width = w;
    }
    if (levelExt) {
      const prev = this.#audioLevel;
      // keep the loudest (smallest -dBov) over ~300 ms
      if (!prev || now - prev.at > 300 || levelExt.level < prev.level) this.#audioLevel = { level: levelExt.level, at: now };
    }
    if (resumed) this.requestKeyframe(layerIndex);
    // a copy-on-write array: a sink removed while we loop still gets this packet, harmlessly
    const sinks = this.#sinks;
    for (let i = 0; i < sinks.length; i++) sinks[i]!.onPacket(layerIndex, packet, now);
  }

  /**
   * A packet unwrapped from the publisher's RTX stream: forwarded when it
   * repairs one we NACKed; anything else on RTX (Chromium probes bandwidth
   * by resending old packets there) is counted and dropped, or every
   * subscriber would get each probe packet as a duplicate.
   */
  onRepair(layerIndex: number, packet: RtpLike): void {
    const layer = this.layerList[layerIndex];
    if (!layer) return;
    if (!layer.isMissing(packet.header.sequenceNumber)) {
      layer.rtxUnneeded++;
      return;
    }
    layer.rtxRecovered++;
    this.onPacket(layerIndex, packet, undefined);
  }

  /** PLI to the publisher for one layer (or all), at most once per KEYFRAME_REQUEST_INTERVAL_MS per layer. */
  requestKeyframe(layerIndex?: number): void {
    if (this.kind !== 'video' || this.#ended) return;
    const now = Date.now();
    const targets = layerIndex === undefined ? this.layerList : [this.layerList[layerIndex]];
    for (const layer of targets) {
      if (!layer || layer.ssrc === undefined) continue;
      if (now - layer.lastKeyframeRequest < KEYFRAME_REQUEST_INTERVAL_MS) continue;
      layer.lastKeyframeRequest = now;
      layer.keyframeRequests++;
      const receiver = this.receiver;
      if (!receiver) this.onKeyframeRequest?.(this.layerList.indexOf(layer));
      else if (this.#keyframeBy(receiver) === 'fir') this.#sendFir(receiver, layer);
      else receiver.sendRtcpPLI(layer.ssrc).catch(() => {});
    }
  }

  /** PLI when the publisher negotiated 'nack pli', else FIR when it negotiated 'ccm fir' (PLI if neither). */
  #keyframeBy(receiver: RTCRtpReceiver): 'pli' | 'fir' {
    const fb = (receiver as unknown as { codecArray?: { rtcpFeedback?: { type: string; parameter?: string }[] }[] }).codecArray?.[0]?.rtcpFeedback ?? [];
    if (fb.some((f) => f.type === 'nack' && f.parameter === 'pli')) return 'pli';
    return fb.some((f) => f.type === 'ccm' && f.parameter === 'fir') ? 'fir' : 'pli';
  }

  /** RFC 5104 §4.3.1: media SSRC 0, one FCI entry (SSRC, sequence number). */
  #sendFir(receiver: RTCRtpReceiver, layer: Layer): void {
    const b = Buffer.alloc(20);
    b[0] = 0x80 | 4;
    b[1] = 206;
    b.writeUInt16BE(4, 2);
    b.writeUInt32BE(receiver.rtcpSsrc >>> 0, 4);
    b.writeUInt32BE(layer.ssrc! >>> 0, 12);
    b[16] = layer.firSeq;
    layer.firSeq = (layer.firSeq + 1) & 0xff;
    const packet = { serialize: () => b };
    receiver.dtlsTransport?.sendRtcp([packet as unknown as RtcpTransportLayerFeedback]).catch(() => {});
  }

  /** Bits per second of each layer; a layer with media in the last 5 s counts as active (at least 1). */
  layerRates(now = Date.now()): number[] {
    return this.layerList.map((l) => l.stats.meter.rate(now) || (now - l.lastMedia < 5000 ? 1 : 0));
  }

  sendNacks(now: number): void {
    const receiver = this.receiver;
    if (!receiver) return;
    for (const layer of this.layerList) {
      if (layer.ssrc === undefined) continue;
      const lost = layer.dueNacks(now);
      if (lost.length === 0) continue;
      layer.nacks += lost.length;
      const nack = new GenericNack({ senderSsrc: receiver.rtcpSsrc, mediaSourceSsrc: layer.ssrc, lost });
      receiver.dtlsTransport?.sendRtcp([new RtcpTransportLayerFeedback({ feedback: nack })]).catch(() => {});
    }
  }

  stats(): TrackStats {
    const now = Date.now();
    let packets = 0;
    let bytes = 0;
    let lost = 0;
    let jitter = 0;
    let expected = 0;
    let bitrate = 0;
    let fraction = 0;
    for (const l of this.layerList) {
      l.stats.sample();
      packets += l.stats.packets;
      bytes += l.stats.bytes;
      lost += l.stats.lost;
      expected += l.stats.expected;
      jitter = Math.max(jitter, l.stats.jitter);
      bitrate += l.stats.meter.rate(now);
      fraction = Math.max(fraction, l.stats.fractionLost);
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
    if (this.kind === 'video' && this.receiver) {
      s.rtxRecovered = this.layerList.reduce((a, l) => a + l.rtxRecovered, 0);
      s.rtxUnneeded = this.layerList.reduce((a, l) => a + l.rtxUnneeded, 0);
    }
    if (this.kind === 'audio' && this.#audioLevel) {
      // RFC 6464: level is -dBov (0 loudest, 127 silence); stale readings count as silence.
      s.audioLevel = now - this.#audioLevel.at > 1000 ? 0 : 10 ** (-this.#audioLevel.level / 20);
    }
    if (this.layers.length > 0) {
      s.layers = this.layerList.map((l) => ({ rid: l.rid ?? '', bitrate: l.stats.meter.rate(now), packets: l.stats.packets, ...(l.width ? { width: l.width } : {}) }));
    }
    void expected;
    return s;
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const sinks = this.#sinks;
    this.#sinks = [];
    for (const sink of sinks) sink.onUpTrackEnded();
  }
}

/** What a werift down-stream needs of its source: a peer connection's up-stream, or a source stream's. */
export interface WeriftSource extends UpStream {
  readonly tracks: readonly WeriftUpTrack[];
  /** The down-streams fed by it, closed with it. */
  readonly downs: Set<{ close(): void }>;
}

/** A sink attached to a werift up-track: packets go through a TapQueue to the owner's TrackSink. */
export class WeriftTrackTap extends QueuedTrackTap<WeriftUpTrack> implements PacketSink {
  onPacket(layer: number, packet: RtpLike, now: number): void {
    const payload = packet.payload;
    if (payload.length === 0 || !this.queue.wants(layer)) return;
    const h = packet.header;
    this.queue.push({
      layer,
      sequenceNumber: h.sequenceNumber,
      timestamp: h.timestamp,
      ssrc: h.ssrc,
      payloadType: h.payloadType,
      marker: h.marker,
      keyframe: this.track.kind === 'video' && isKeyframeStart(this.track.codec, payload),
      arrival: now,
      payload,
    });
  }

  onSenderReport(layer: number, ntpTime: number, rtpTimestamp: number, now: number): void {
    this.report(layer, ntpTime, rtpTimestamp, now);
  }

  protected removeFromTrack(): void {
    this.track.removeSink(this);
  }
}

export class WeriftUpStream extends TypedEmitter<UpStreamEvents> implements WeriftSource {
  readonly id: string;
  readonly label: string;
  readonly pc: RTCPeerConnection;
  readonly downs = new Set<{ close(): void }>();
  #tracks = new Map<string, WeriftUpTrack>();
  /** RTX payload type -> the payload type it repairs (apt), from our answer; empty when the publisher offered no RTX. */
  #rtxApt = new Map<number, number>();
  /** RTX SSRC -> the layer it repairs, learnt from its repaired-rtp-stream-id (or the SDP's FID group). */
  #rtxLayer = new Map<number, { track: WeriftUpTrack; layer: number }>();
  #state: ConnectionState = 'new';
  #closed = false;
  #timer: NodeJS.Timeout;
  /** Our transport-cc feedback (werift's own is broken, see twcc.ts); undefined until negotiated. */
  #twcc: TwccFeedback | undefined;
  #twccId: number | undefined;
  #twccTransport: DtlsTransport | undefined;
  #twccMediaSsrc = 0;
  #twccLast = 0;

  constructor(
    engine: WeriftEngineOptions,
    options: UpStreamOptions,
    private readonly onClosed: (s: WeriftUpStream) => void,
  ) {
    super();
    this.id = options.id;
    this.label = options.label;
    this.pc = new RTCPeerConnection(upConfig(engine, options.iceServers, options.codecs));
    this.#interceptRtx();
    this.pc.onIceCandidate.subscribe((c) => {
      if (c?.candidate) this.emit('candidate', toCandidate(c.toJSON()));
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (this.#closed) return;
      this.#state = state;
      if (state === 'connected') this.raiseBuffers();
      this.emit('state', state);
      if (state === 'failed') this.close();
    });
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const t of this.#tracks.values()) if (t.kind === 'video') t.sendNacks(now);
      if (this.#twcc && now - this.#twccLast >= TWCC_INTERVAL_MS) {
        this.#twccLast = now;
        this.#sendTwcc();
      }
    }, NACK_INTERVAL_MS);
  }

  /**
   * A larger kernel receive buffer on the publisher's (nominated) socket:
   * packets keep arriving while the loop fans the previous ones out, and the
   * default (~208 KB, ~90 packets) overflowed. Returns the size in effect (0: none yet).
   */
  raiseBuffers(): number {
    const dtls = this.pc.getTransceivers().find((t) => t.receiver.dtlsTransport)?.receiver.dtlsTransport;
    return raiseSocketBuffers(dtls as unknown as DtlsTransportLike | undefined, UP_RECV_BUFFER);
  }

  get tracks(): readonly WeriftUpTrack[] {
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
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    preferDtlsServer(this.pc, offerSdp);
    holdEarlyDtls(this.pc);
    const added: WeriftUpTrack[] = [];
    for (const transceiver of this.pc.getTransceivers()) {
      const t = this.#adopt(transceiver);
      if (t) added.push(t);
    }
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    holdEarlyDtls(this.pc);
    this.#setupTwcc(this.pc.localDescription!.sdp);
    this.#rtxApt.clear();
    for (const t of this.pc.getTransceivers()) {
      for (const c of t.codecs) {
        const apt = /(?:^|;)\s*apt=(\d+)/.exec(c.parameters ?? '');
        if (c.mimeType.toLowerCase() === 'video/rtx' && apt) this.#rtxApt.set(c.payloadType, Number(apt[1]));
      }
    }
    for (const t of added) this.emit('track', t);
    return this.pc.localDescription!.sdp;
  }

  #adopt(transceiver: RTCRtpTransceiver): WeriftUpTrack | undefined {
    const mid = transceiver.mid ?? `${this.#tracks.size}`;
    const codec = transceiver.codecs.find((c) => codecName(c.mimeType));
    let track = this.#tracks.get(mid);
    let fresh = false;
    if (!track) {
      if (!codec) return undefined;
      track = new WeriftUpTrack(mid, transceiver.kind as TrackKind, transceiver.receiver, codec.clockRate);
      // werift's own NACK generator keeps one state per receiver and mixes the
      // SSRCs of simulcast layers; we NACK per layer ourselves instead.
      const nack = (transceiver.receiver as unknown as { nack?: { addPacket: (p: RtpPacket) => void } }).nack;
      if (nack) nack.addPacket = () => {};
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
    }
    const up = track;
    const hook = (wt: MediaStreamTrack) => {
      if (up.weriftTracks.has(wt)) return;
      up.weriftTracks.add(wt);
      const layer = up.layerFor(wt);
      wt.onReceiveRtp.subscribe((packet, ext) => {
        const level = ext?.[RTP_EXTENSION_URI.audioLevelIndication] as { v: boolean; level: number } | undefined;
        up.onPacket(layer, packet, level);
      });
    };
    // rid tracks first, in SDP order (highest first), then a plain SSRC track
    const ordered = [...transceiver.receiver.tracks].sort((a, b) => (a.rid ? 0 : 1) - (b.rid ? 0 : 1));
    for (const wt of ordered) hook(wt);
    if (fresh) {
      transceiver.onTrack.subscribe((wt) => hook(wt));
      if (transceiver.receiver.tracks.length === 0) {
        // An SSRC not signalled in the SDP: werift delivers it on the receiver's default track.
        hook(transceiver.receiver.track);
      }
    }
    return fresh ? track : undefined;
  }

  /**
   * RTX (RFC 4588) from the publisher. werift unwraps RTX only for SSRCs
   * signalled in the SDP and routes simulcast by rid, so a simulcast
   * layer's RTX stream (which carries a repaired-rtp-stream-id, not a rid)
   * is dropped as unknown: we take RTX packets before its router, find the
   * layer they repair and hand the unwrapped packet to that layer.
   */
  #interceptRtx(): void {
    const router = (this.pc as unknown as { router: unknown }).router as { routeRtp: (p: RtpPacket) => void; extIdUriMap: Record<number, string> };
    const route = router.routeRtp;
    router.routeRtp = (packet: RtpPacket) => {
      const apt = this.#rtxApt.get(packet.header.payloadType);
      if (apt === undefined) return route(packet);
      const target = this.#rtxTarget(packet, router.extIdUriMap);
      // padding-only RTX (a bandwidth probe) or a stream we cannot place: nothing to repair
      if (!target || packet.payload.length < 2) return;
      const layer = target.track.layerList[target.layer];
      if (layer?.ssrc === undefined) return;
      const h = packet.header;
      target.track.onRepair(target.layer, {
        header: { sequenceNumber: packet.payload.readUInt16BE(0), timestamp: h.timestamp, marker: h.marker, ssrc: layer.ssrc, payloadType: apt },
        payload: packet.payload.subarray(2),
      });
    };
  }

  #rtxTarget(packet: RtpPacket, extIdUriMap: Record<number, string>): { track: WeriftUpTrack; layer: number } | undefined {
    const ssrc = packet.header.ssrc;
    const known = this.#rtxLayer.get(ssrc);
    if (known) return known;
    let mid: string | undefined;
    let rrid: string | undefined;
    for (const e of packet.header.extensions) {
      const uri = extIdUriMap[e.id];
      if (uri === RTP_EXTENSION_URI.sdesMid) mid = e.payload.toString();
      else if (uri === RTP_EXTENSION_URI.repairedRtpStreamId) rrid = e.payload.toString();
    }
    let found: { track: WeriftUpTrack; layer: number } | undefined;
    for (const track of this.#tracks.values()) {
      if (track.kind !== 'video' || (mid !== undefined && track.id !== mid)) continue;
      if (rrid !== undefined) {
        const i = track.layerList.findIndex((l) => l.rid === rrid);
        if (i >= 0) found = { track, layer: i };
      } else {
        // an SSRC-signalled stream: the SDP's FID group pairs it with its media SSRC (werift parsed it)
        const media = (track.receiver as unknown as { ssrcByRtx?: Record<number, number> } | undefined)?.ssrcByRtx?.[ssrc];
        const i = media === undefined ? -1 : track.layerList.findIndex((l) => l.ssrc === media);
        if (i >= 0) found = { track, layer: i };
      }
      if (found) break;
    }
    if (found) this.#rtxLayer.set(ssrc, found);
    return found;
  }

  /** Records the transport-wide sequence number of every packet on the (bundled) transport, once transport-cc is in our answer. */
  #setupTwcc(answerSdp: string): void {
    const id = twccExtensionId(answerSdp);
    for (const t of this.pc.getTransceivers()) {
      // werift's per-receiver generator: silenced, we answer for the whole transport
      (t.receiver as unknown as { receiverTWCC?: unknown }).receiverTWCC = { handleTWCC() {}, twccRunning: false };
    }
    if (id === undefined) return;
    this.#twccId = id;
    const transport = this.pc.getTransceivers().find((t) => t.receiver.dtlsTransport)?.receiver.dtlsTransport;
    if (!transport || transport === this.#twccTransport) return;
    this.#twccTransport = transport;
    this.#twcc = new TwccFeedback(this.pc.getTransceivers()[0]?.receiver.rtcpSsrc ?? 1);
    const twcc = this.#twcc;
    transport.onRtp.subscribe((packet) => {
      if (this.#twccId === undefined || twcc !== this.#twcc) return;
      const seq = readTwccSeq(packet.header.extensions, this.#twccId);
      if (seq < 0) return;
      this.#twccMediaSsrc = packet.header.ssrc;
      twcc.record(seq, performance.now() * 1000);
    });
  }

  #sendTwcc(): void {
    const twcc = this.#twcc;
    const transport = this.#twccTransport;
    if (!twcc || !transport || !twcc.pending || transport.state !== 'connected') return;
    const packets = twcc.build(this.#twccMediaSsrc).map((b) => ({ serialize: () => b }));
    if (packets.length) transport.sendRtcp(packets as unknown as Parameters<DtlsTransport['sendRtcp']>[0]).catch(() => {});
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate || !candidate.candidate) return;
    await this.pc.addIceCandidate(fromCandidate(candidate));
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
    clearInterval(this.#timer);
    for (const t of this.#tracks.values()) t.end();
    for (const d of [...this.downs]) d.close();
    this.pc.close().catch(() => {});
    this.#state = 'closed';
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
    this.onClosed(this);
  }
}

export function toCandidate(c: { candidate: string; sdpMid?: string | undefined; sdpMLineIndex?: number | undefined; usernameFragment?: string | undefined }): IceCandidate {
  return { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null, ...(c.usernameFragment ? { usernameFragment: c.usernameFragment } : {}) };
}

export function fromCandidate(c: IceCandidate): { candidate: string; sdpMid?: string; sdpMLineIndex?: number; usernameFragment?: string } {
  return {
    candidate: c.candidate,
    ...(c.sdpMid != null ? { sdpMid: c.sdpMid } : {}),
    ...(c.sdpMLineIndex != null ? { sdpMLineIndex: c.sdpMLineIndex } : {}),
    ...(c.usernameFragment ? { usernameFragment: c.usernameFragment } : {}),
  };
}
