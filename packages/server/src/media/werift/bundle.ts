// A bundle session (see BundleSession in ../engine.ts) on a werift peer
// connection in the server's own thread: one ICE/DTLS transport with one
// audio and one video m-line, both ways. Sending: each up-track handed to
// send() gets a tap and a fresh SSRC; its packets go out on the transport
// with that SSRC and the payload type negotiated here. A simulcast track is
// forwarded one layer at a time, chosen by setVideo() (the receiver's
// constraints): bundle-forward.ts rewrites sequence numbers, timestamps and
// VP8 picture ids so a switch, made at a keyframe of the new layer (asked of
// the publisher), is seamless. What was sent is kept about a second to
// answer the receiver's NACKs (resent on the same SSRC: no RTX is offered),
// each SSRC gets RTCP sender reports (from the publisher's own when there
// are some, so audio and video stay in sync), and the receiver's PLI or
// FIR asks the publisher for a keyframe. Receiving: receive() maps the
// SSRCs the signalling declared to the tracks of a source stream of the
// given engine (so the media of a Jitsi client joins the group's other
// streams wherever they run), and that stream's keyframe requests become
// PLIs to the client. Packets of SSRCs nobody declared (RTX, a source not
// announced yet) are dropped. No congestion control: the receiver's REMB
// is read into the stats only.
import { randomInt } from 'node:crypto';
import {
  GenericNack,
  PictureLossIndication,
  ReceiverEstimatedMaxBitrate,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtcpRrPacket,
  RtcpSenderInfo,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  RtpHeader,
  type RtpPacket,
  useFIR,
  useNACK,
  usePLI,
  useREMB,
} from 'werift';
import type {
  BundleReceiveTrack,
  BundleSend,
  BundleSession,
  BundleSessionEvents,
  BundleSessionOptions,
  CodecName,
  CodecParameters,
  ConnectionState,
  DownRequest,
  IceCandidate,
  MediaEngine,
  PacketBatch,
  SourceStream,
  TrackKind,
  TrackStats,
  TrackTap,
  UpTrack,
} from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import { RateMeter, tsAdd } from '../rtp.ts';
import { LayerForwarder } from './bundle-forward.ts';
import { codecName, type WeriftEngineOptions } from './config.ts';
import { ntpFromMs } from './down-stream.ts';
import { holdEarlyDtls } from './dtls.ts';
import { PacketCache } from './packet-cache.ts';
import { fromCandidate, toCandidate } from './up-stream.ts';

type DtlsTransport = NonNullable<RTCRtpTransceiver['receiver']['dtlsTransport']>;

/** What a bundle session carries: Opus and VP8 (what Jitsi clients send and every browser decodes). */
export const BUNDLE_CODECS: Record<TrackKind, CodecName> = { audio: 'opus', video: 'vp8' };

/** How often layer choices are revisited and sender reports sent (ms). */
const TICK_MS = 500;
/** A sender report per SSRC about this often (ms; RFC 3550 allows 5 s, libwebrtc sends about 1 s). */
const SR_EVERY_MS = 1000;
/** While a switch waits for its keyframe, the publisher is asked again this often (ms). */
const KEYFRAME_AGAIN_MS = 1000;

class Send implements BundleSend {
  packets = 0;
  bytes = 0;
  readonly meter = new RateMeter();
  keyframeRequests = 0;
  nacks = 0;
  retransmitted = 0;
  packetsLost = 0;
  fractionLost = 0;
  jitter = 0;
  tap: TrackTap | undefined;
  readonly forwarder: LayerForwarder;
  /** What was sent, for NACK answers (video only). */
  readonly cache: PacketCache | undefined;
  /** The tap's layers as last set (a key of wanted()). */
  deliverKey = '';
  keyframeAskedAt = 0;
  srSentAt = 0;
  /** The publisher's newest sender report of the layer forwarded: its clock at an input timestamp. */
  publisherSr: { layer: number; ntpTime: number; rtpTimestamp: number; arrival: number } | undefined;
  readonly clockRate: number;

  constructor(
    readonly ssrc: number,
    readonly kind: TrackKind,
    readonly track: UpTrack,
    private readonly session: WeriftBundleSession,
  ) {
    this.clockRate = track.parameters?.clockRate ?? (kind === 'audio' ? 48000 : 90000);
    this.forwarder = new LayerForwarder(kind, track.codec, Math.max(1, track.layers.length), this.clockRate);
    if (kind === 'video') this.cache = new PacketCache();
  }

  /** Index of the layer forwarded now (-1: none). */
  get layer(): number {
    return this.forwarder.current;
  }

  setVideo(video: DownRequest['video']): void {
    this.session.setVideo(this, video);
  }

  stats(): TrackStats {
    const s: TrackStats = {
      trackId: this.track.id,
      kind: this.kind,
      codec: this.track.codec,
      bitrate: this.meter.rate(),
      packets: this.packets,
      bytes: this.bytes,
      packetsLost: this.packetsLost,
      fractionLost: this.fractionLost,
      jitter: this.jitter,
      keyframeRequests: this.keyframeRequests,
      nacks: this.nacks,
      retransmitted: this.retransmitted,
    };
    const rid = this.track.layers[this.forwarder.current];
    if (rid !== undefined) s.layer = rid;
    return s;
  }

  stop(): void {
    this.session.stopSend(this);
  }
}

interface Receiving {
  source: SourceStream;
  trackId: string;
  layer: number;
}

export class WeriftBundleSession extends TypedEmitter<BundleSessionEvents> implements BundleSession {
  readonly id: string;
  readonly #pc: RTCPeerConnection;
  readonly #engine: MediaEngine;
  readonly #placement: string | undefined;
  readonly #sends = new Map<number, Send>();
  readonly #receiving = new Map<number, Receiving>();
  readonly #sources = new Set<SourceStream>();
  #transport: DtlsTransport | undefined;
  #state: ConnectionState = 'new';
  #closed = false;
  #answered = false;
  /** The payload type of each kind, once negotiated. */
  readonly #pt = new Map<TrackKind, number>();
  readonly #timer: NodeJS.Timeout;
  /** The receiver's latest REMB (bit/s; 0: none). */
  #remb = 0;

  constructor(engine: WeriftEngineOptions, options: BundleSessionOptions, media: MediaEngine) {
    super();
    this.id = options.id;
    this.#engine = media;
    this.#placement = options.placement;
    this.#pc = new RTCPeerConnection({
      iceServers: options.iceServers.map((s) => ({ ...s })),
      iceAdditionalHostAddresses: engine.additionalHostAddresses ?? [],
      ...(engine.portRange ? { icePortRange: engine.portRange } : {}),
      iceUseIpv6: false,
      bundlePolicy: 'max-bundle',
      codecs: {
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, parameters: 'minptime=10;useinbandfec=1' })],
        video: [new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, rtcpFeedback: [useNACK(), usePLI(), useFIR(), useREMB()] })],
      },
      headerExtensions: { audio: [], video: [] },
    });
    this.#pc.onIceCandidate.subscribe((c) => {
      if (c?.candidate) this.emit('candidate', toCandidate(c.toJSON()));
    });
    this.#pc.connectionStateChange.subscribe((state) => {
      if (this.#closed) return;
      this.#state = state;
      this.emit('state', state);
      if (state === 'connected') this.#hook();
      if (state === 'failed') this.close();
    });
    this.#timer = setInterval(() => this.#tick(Date.now()), TICK_MS);
    this.#timer.unref();
  }

  get state(): ConnectionState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#closed;
  }

  sends(): readonly BundleSend[] {
    return [...this.#sends.values()];
  }

  /** The receiver's REMB, bit/s (0: it sent none). */
  get availableBitrate(): number {
    return this.#remb;
  }

  async offer(): Promise<string> {
    if (this.#closed) throw new Error(`bundle session ${this.id} is closed; no offer can be made`);
    if (this.#pc.getTransceivers().length === 0) {
      this.#pc.addTransceiver('audio', { direction: 'sendrecv' });
      this.#pc.addTransceiver('video', { direction: 'sendrecv' });
    }
    await this.#pc.setLocalDescription(await this.#pc.createOffer());
    holdEarlyDtls(this.#pc);
    // werift's own senders send nothing: their SSRCs are not sources anyone should expect.
    return this.#pc.localDescription!.sdp.replace(/^a=(ssrc|ssrc-group|msid):.*\r?\n/gm, '');
  }

  async setAnswer(answerSdp: string): Promise<void> {
    if (this.#closed) return;
    await this.#pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    holdEarlyDtls(this.#pc);
    this.#answered = true;
    for (const kind of ['audio', 'video'] as const) {
      const pt = this.#negotiated(kind)?.payloadType;
      if (pt !== undefined) this.#pt.set(kind, pt);
    }
    this.#hook();
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate || !candidate.candidate) return;
    await this.#pc.addIceCandidate(fromCandidate(candidate));
  }

  #transceiver(kind: TrackKind): RTCRtpTransceiver | undefined {
    return this.#pc.getTransceivers().find((t) => t.kind === kind);
  }

  /** The codec both ends agreed on for a kind, with the payload type to send it with. */
  #negotiated(kind: TrackKind): { payloadType: number; codec: CodecParameters } | undefined {
    const c = this.#transceiver(kind)?.codecs.find((x) => codecName(x.mimeType) === BUNDLE_CODECS[kind]);
    if (!c) return undefined;
    const name = codecName(c.mimeType)!;
    return {
      payloadType: c.payloadType,
      codec: { name, mimeType: c.mimeType, clockRate: c.clockRate, ...(c.channels ? { channels: c.channels } : {}), ...(c.parameters ? { fmtp: c.parameters } : {}) },
    };
  }

  #newSsrc(): number {
    for (;;) {
      const ssrc = randomInt(1, 2 ** 32 - 1);
      if (!this.#sends.has(ssrc) && !this.#receiving.has(ssrc)) return ssrc;
    }
  }

  send(track: UpTrack): BundleSend {
    if (this.#closed) throw new Error(`bundle session ${this.id} is closed; it sends nothing more`);
    const want = BUNDLE_CODECS[track.kind];
    if (track.codec !== undefined && track.codec !== want) {
      throw new Error(
        `bundle session ${this.id} carries ${want} ${track.kind} only, and up-track ${track.id} is ${track.codec}: a Jitsi client's one session negotiates one ${track.kind} codec for every source; publish ${want} to reach Jitsi clients`,
      );
    }
    const s = new Send(this.#newSsrc(), track.kind, track, this);
    this.#sends.set(s.ssrc, s);
    s.tap = track.attach(
      {
        packets: (batch) => this.#forward(s, batch),
        end: () => {
          if (this.#sends.get(s.ssrc) === s) this.#sends.delete(s.ssrc);
        },
      },
      { layers: s.forwarder.wanted() as number[] | undefined, maxDelayMs: 5 },
    );
    s.deliverKey = String(s.forwarder.wanted());
    if (track.kind === 'video') this.#askKeyframe(s, Date.now());
    return s;
  }

  stopSend(s: Send): void {
    if (this.#sends.get(s.ssrc) === s) this.#sends.delete(s.ssrc);
    s.tap?.detach();
  }

  /** The receiver's request for one sent video: the layer to forward from now on (switching at the next keyframe). */
  setVideo(s: Send, video: DownRequest['video']): void {
    if (s.kind !== 'video' || this.#sends.get(s.ssrc) !== s) return;
    const now = Date.now();
    if (s.forwarder.choose(video, now)) this.#askKeyframe(s, now);
    this.#deliver(s);
  }

  #askKeyframe(s: Send, now: number): void {
    if (s.forwarder.target < 0) return;
    s.keyframeAskedAt = now;
    s.tap?.requestKeyframe(s.forwarder.target);
  }

  /** Gives the tap the layers the forwarder wants now. */
  #deliver(s: Send): void {
    const wanted = s.forwarder.wanted();
    const key = String(wanted);
    if (key === s.deliverKey) return;
    s.deliverKey = key;
    s.tap?.setLayers(wanted);
  }

  #forward(s: Send, batch: PacketBatch): void {
    const transport = this.#transport;
    if (this.#closed || !transport || transport.state !== 'connected' || this.#sends.get(s.ssrc) !== s) return;
    const pt = this.#pt.get(s.kind);
    if (pt === undefined) return;
    const now = Date.now();
    const fwd = s.forwarder;
    const before = fwd.current;
    for (const p of batch.packets) {
      const out = fwd.forward(p, now);
      if (!out) continue;
      const payload = Buffer.from(out.payload.buffer, out.payload.byteOffset, out.payload.byteLength);
      this.#sendRtp(transport, s, pt, out.sequenceNumber, out.timestamp, p.marker, payload);
      s.cache?.store(out.sequenceNumber, out.timestamp, p.marker, payload, now);
      s.packets++;
      s.bytes += payload.length;
      s.meter.add(payload.length, now);
    }
    for (const sr of batch.senderReports) if (sr.layer === fwd.current) s.publisherSr = { ...sr };
    if (fwd.current !== before) this.#deliver(s);
  }

  #sendRtp(transport: DtlsTransport, s: Send, payloadType: number, sequenceNumber: number, timestamp: number, marker: boolean, payload: Buffer): void {
    const header = new RtpHeader({ payloadType, sequenceNumber, timestamp, ssrc: s.ssrc, marker });
    transport.sendRtp(payload, header).catch(() => {});
  }

  /** Layer choices revisited (a layer the publisher dropped, a switch still waiting), sender reports. */
  #tick(now: number): void {
    if (this.#closed) return;
    const transport = this.#transport;
    const reports: RtcpSrPacket[] = [];
    for (const s of this.#sends.values()) {
      if (s.kind === 'video') {
        if (s.forwarder.choose(s.forwarder.request, now) || (s.forwarder.switching && now - s.keyframeAskedAt >= KEYFRAME_AGAIN_MS)) this.#askKeyframe(s, now);
        this.#deliver(s);
      }
      if (transport?.state === 'connected' && now - s.srSentAt >= SR_EVERY_MS) {
        const sr = this.#senderReport(s, now);
        if (sr) {
          s.srSentAt = now;
          reports.push(sr);
        }
      }
    }
    if (reports.length > 0) transport!.sendRtcp(reports).catch(() => {});
  }

  /**
   * A sender report for one SSRC: the publisher's clock and the output
   * timestamp at this moment, from the publisher's latest report of the
   * forwarded layer when there is one (so the receiver lines audio and
   * video up as the publisher captured them), else from our own clock and
   * the newest packet sent.
   */
  #senderReport(s: Send, now: number): RtcpSrPacket | undefined {
    const last = s.forwarder.last;
    if (!last || s.packets === 0) return undefined;
    let ntpMs: number;
    let rtp: number;
    const p = s.publisherSr;
    const mapped = p ? s.forwarder.outputTimestamp(p.layer, p.rtpTimestamp) : undefined;
    if (p && mapped !== undefined) {
      const since = now - p.arrival;
      ntpMs = p.ntpTime + since;
      rtp = tsAdd(mapped, Math.round((since * s.clockRate) / 1000));
    } else {
      ntpMs = now;
      rtp = tsAdd(last.timestamp, Math.round(((now - last.at) * s.clockRate) / 1000));
    }
    const senderInfo = new RtcpSenderInfo({ ntpTimestamp: ntpFromMs(ntpMs), rtpTimestamp: rtp, packetCount: s.packets + s.retransmitted, octetCount: s.bytes });
    return new RtcpSrPacket({ ssrc: s.ssrc, senderInfo });
  }

  receive(options: { id: string; label: string; tracks: readonly BundleReceiveTrack[] }): SourceStream {
    if (this.#closed) throw new Error(`bundle session ${this.id} is closed; it receives nothing more`);
    if (!this.#answered) throw new Error(`bundle session ${this.id}: sources can be received only once the answer is in`);
    const tracks = options.tracks.map((t) => {
      const n = this.#negotiated(t.kind);
      if (!n) throw new Error(`bundle session ${this.id}: no ${t.kind} codec was negotiated, so track ${t.id} cannot be received`);
      for (const ssrc of t.ssrcs) if (this.#receiving.has(ssrc) || this.#sends.has(ssrc)) throw new Error(`bundle session ${this.id}: SSRC ${ssrc} is already in use`);
      const layers = t.ssrcs.length > 1 ? t.ssrcs.map((_, i) => `l${i}`) : [];
      return { id: t.id, kind: t.kind, codec: n.codec, layers };
    });
    const source = this.#engine.createSourceStream({ id: options.id, label: options.label, tracks, ...(this.#placement ? { placement: this.#placement } : {}) });
    this.#sources.add(source);
    for (const t of options.tracks) for (const [layer, ssrc] of t.ssrcs.entries()) this.#receiving.set(ssrc, { source, trackId: t.id, layer });
    source.on('keyframe', (trackId, layer) => {
      const t = options.tracks.find((x) => x.id === trackId);
      const ssrc = t?.ssrcs[layer];
      if (ssrc !== undefined) this.#pli(ssrc);
    });
    source.on('close', () => {
      this.#sources.delete(source);
      for (const [ssrc, r] of this.#receiving) if (r.source === source) this.#receiving.delete(ssrc);
    });
    for (const t of options.tracks) if (t.kind === 'video') for (const ssrc of t.ssrcs) this.#pli(ssrc);
    return source;
  }

  #pli(mediaSsrc: number): void {
    const transport = this.#transport;
    if (transport?.state !== 'connected') return;
    const packet = new RtcpPayloadSpecificFeedback({ feedback: new PictureLossIndication({ senderSsrc: 1, mediaSsrc }) });
    transport.sendRtcp([packet]).catch(() => {});
  }

  /** Subscribes once to the bundled transport: every RTP packet the remote end sends, and its feedback. */
  #hook(): void {
    const transport = this.#pc.getTransceivers().find((t) => t.receiver.dtlsTransport)?.receiver.dtlsTransport;
    if (!transport || transport === this.#transport) return;
    this.#transport = transport;
    transport.onRtp.subscribe((packet: RtpPacket) => {
      if (this.#closed || transport !== this.#transport) return;
      const r = this.#receiving.get(packet.header.ssrc);
      if (!r || packet.payload.length === 0) return;
      r.source.write(r.trackId, [{ layer: r.layer, sequenceNumber: packet.header.sequenceNumber, timestamp: packet.header.timestamp, marker: packet.header.marker, payload: packet.payload }]);
    });
    transport.onRtcp.subscribe((p: RtcpPacket) => {
      if (this.#closed || transport !== this.#transport) return;
      this.#onRtcp(p, transport);
    });
  }

  #onRtcp(p: RtcpPacket, transport: DtlsTransport): void {
    if (p.type === RtcpPayloadSpecificFeedback.type) {
      const fb = (p as RtcpPayloadSpecificFeedback).feedback;
      if (fb instanceof ReceiverEstimatedMaxBitrate) {
        this.#remb = Number(fb.bitrate);
        return;
      }
      const f = fb as unknown as { count: number; mediaSsrc?: number; fir?: { ssrc: number }[] };
      // PLI names the SSRC in its media field; FIR (RFC 5104) in its entries
      const ssrcs = f.count === 4 ? (f.fir ?? []).map((e) => e.ssrc) : f.count === 1 && f.mediaSsrc !== undefined ? [f.mediaSsrc] : [];
      for (const ssrc of ssrcs) {
        const s = this.#sends.get(ssrc);
        if (s?.kind !== 'video') continue;
        s.keyframeRequests++;
        const layer = s.forwarder.current >= 0 ? s.forwarder.current : s.forwarder.target;
        if (layer >= 0) s.tap?.requestKeyframe(layer);
      }
    } else if (p.type === RtcpTransportLayerFeedback.type) {
      const fb = (p as RtcpTransportLayerFeedback).feedback;
      if (!(fb instanceof GenericNack)) return;
      const s = this.#sends.get(fb.mediaSourceSsrc);
      if (!s) return;
      s.nacks += fb.lost.length;
      const pt = this.#pt.get(s.kind);
      if (!s.cache || pt === undefined || transport.state !== 'connected') return;
      // The same packet again on the same SSRC (no RTX stream is offered): the receiver never saw that index, so SRTP takes it.
      // (werift does not wrap the bitmask's sequence numbers at 65535)
      const lost = fb.lost.map((x) => x & 0xffff);
      s.retransmitted += s.cache.answerNack(lost, Date.now(), (seq, timestamp, marker, payload) => this.#sendRtp(transport, s, pt, seq, timestamp, marker, payload));
    } else if (p.type === RtcpRrPacket.type || p.type === RtcpSrPacket.type) {
      for (const r of (p as RtcpRrPacket).reports) {
        const s = this.#sends.get(r.ssrc);
        if (!s) continue;
        s.packetsLost = r.packetsLost;
        s.fractionLost = r.fractionLost / 256;
        s.jitter = r.jitter / s.clockRate;
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const s of [...this.#sends.values()]) this.stopSend(s);
    for (const source of [...this.#sources]) source.close();
    this.#receiving.clear();
    this.#state = 'closed';
    this.#pc.close().catch(() => {});
    this.emit('close');
    this.removeAllListeners();
  }
}
