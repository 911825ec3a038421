// A bundle session (see BundleSession in ../engine.ts) on a werift peer
// connection in the server's own thread: one ICE/DTLS transport with one
// audio and one video m-line, both ways. Sending: each up-track handed to
// send() gets a tap (its highest layer) and a fresh SSRC; its packets go out
// on the transport with that SSRC and the payload type negotiated here,
// sequence numbers and timestamps as the publisher wrote them (one layer, so
// they stay continuous). The remote end's PLI or FIR for that SSRC asks the
// publisher for a keyframe. Receiving: receive() maps the SSRCs the
// signalling declared to the tracks of a source stream of the given engine
// (so the media of a Jitsi client joins the group's other streams wherever
// they run), and that stream's keyframe requests become PLIs to the client.
// Packets of SSRCs nobody declared (RTX, a source not announced yet) are
// dropped. No NACK answers, no congestion control: the forwarded layer is
// fixed; this is the smallest session that serves lib-jitsi-meet.
import { randomInt } from 'node:crypto';
import {
  PictureLossIndication,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  type RtcpPacket,
  RtcpPayloadSpecificFeedback,
  RtpHeader,
  type RtpPacket,
  useFIR,
  useNACK,
  usePLI,
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
  IceCandidate,
  MediaEngine,
  PacketBatch,
  SourceStream,
  TrackKind,
  TrackTap,
  UpTrack,
} from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import { codecName, type WeriftEngineOptions } from './config.ts';
import { holdEarlyDtls } from './dtls.ts';
import { fromCandidate, toCandidate } from './up-stream.ts';

type DtlsTransport = NonNullable<RTCRtpTransceiver['receiver']['dtlsTransport']>;

/** What a bundle session carries: Opus and VP8 (what Jitsi clients send and every browser decodes). */
export const BUNDLE_CODECS: Record<TrackKind, CodecName> = { audio: 'opus', video: 'vp8' };

class Send implements BundleSend {
  packets = 0;
  tap: TrackTap | undefined;
  constructor(
    readonly ssrc: number,
    readonly kind: TrackKind,
    readonly track: UpTrack,
    private readonly session: WeriftBundleSession,
  ) {}
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
        video: [new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, rtcpFeedback: [useNACK(), usePLI(), useFIR()] })],
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
  }

  get state(): ConnectionState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#closed;
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
      throw new Error(`bundle session ${this.id} carries ${want} ${track.kind} only, and up-track ${track.id} is ${track.codec}: publish ${want} to reach Jitsi clients`);
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
      { layers: [0], maxDelayMs: 5 },
    );
    if (track.kind === 'video') s.tap.requestKeyframe(0);
    return s;
  }

  stopSend(s: Send): void {
    if (this.#sends.get(s.ssrc) === s) this.#sends.delete(s.ssrc);
    s.tap?.detach();
  }

  #forward(s: Send, batch: PacketBatch): void {
    const transport = this.#transport;
    if (this.#closed || !transport || transport.state !== 'connected' || this.#sends.get(s.ssrc) !== s) return;
    const pt = this.#negotiated(s.kind)?.payloadType;
    if (pt === undefined) return;
    for (const p of batch.packets) {
      const header = new RtpHeader({ payloadType: pt, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, ssrc: s.ssrc, marker: p.marker });
      const payload = Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength);
      transport.sendRtp(payload, header).catch(() => {});
      s.packets++;
    }
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
      if (this.#closed || transport !== this.#transport || p.type !== RtcpPayloadSpecificFeedback.type) return;
      const fb = (p as RtcpPayloadSpecificFeedback).feedback as unknown as { count: number; mediaSsrc?: number; fir?: { ssrc: number }[] };
      // PLI names the SSRC in its media field; FIR (RFC 5104) in its entries
      const ssrcs = fb.count === 4 ? (fb.fir ?? []).map((e) => e.ssrc) : fb.count === 1 && fb.mediaSsrc !== undefined ? [fb.mediaSsrc] : [];
      for (const ssrc of ssrcs) {
        const s = this.#sends.get(ssrc);
        if (s?.kind === 'video') s.tap?.requestKeyframe(0);
      }
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of [...this.#sends.values()]) this.stopSend(s);
    for (const source of [...this.#sources]) source.close();
    this.#receiving.clear();
    this.#state = 'closed';
    this.#pc.close().catch(() => {});
    this.emit('close');
    this.removeAllListeners();
  }
}
