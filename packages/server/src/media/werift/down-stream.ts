// Subscriber side: one werift peer connection per down-stream; the server offers.
import {
  GenericNack,
  MediaStream,
  RTCPeerConnection,
  RtcpPayloadSpecificFeedback,
  RtcpRrPacket,
  RtcpSrPacket,
  RtcpTransportLayerFeedback,
  RtpHeader,
  TransportWideCC,
  type RtcpPacket,
  type RTCRtpSender,
} from 'werift';
import type { ConnectionState, DownRequest, DownStream, DownStreamEvents, DownStreamOptions, IceCandidate, StreamStats, TrackStats } from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import { RateMeter, isKeyframeStart, seqAdd, seqDiff, tsAdd } from '../rtp.ts';
import { downConfig, type CodecDescription, type WeriftEngineOptions } from './config.ts';
import { holdEarlyDtls } from './dtls.ts';
import { DOWN_RECV_BUFFER, FastRtpSender, raiseSocketBuffers, type DtlsTransportLike } from './fast-send.ts';
import { DownlinkEstimator, LOSS_TOLERATED, PROBE_MS, ProbeController, type LinkSample, type ProbeMeasure } from '../quality/downlink.ts';
import { LayerChooser, lowestActiveLayer, type BandwidthEstimate } from './layers.ts';
import { PacketCache } from './packet-cache.ts';
import { rtpHeaderLength, writeRtpHeader } from './srtp.ts';
import { TWCC_URI, TwccSendHistory, type ParsedTwcc } from './twcc.ts';
import { fromCandidate, toCandidate, type PacketSink, type RtpLike, type WeriftSource, type WeriftUpTrack } from './up-stream.ts';

const TICK_MS = 250;
/**
 * Probe padding owed is sent right after a video frame's last packet, at
 * most this much (ms of it) at once. Right after the frame, not on a timer:
 * a policer's bucket refills between frames, and padding sent just before a
 * frame would take what the frame needs; sent after it, the padding is what
 * a drained bucket drops, the media passes.
 */
const PROBE_OWED_MAX_MS = 250;
/**
 * A padding-only RTP packet's payload (RFC 3550 §5.1: the last byte counts
 * the padding). Probes are padding, not duplicates: the subscriber's SRTP
 * replay check drops a duplicate before its transport-cc feedback sees it.
 */
const PADDING = Buffer.alloc(255, 0);
PADDING[254] = 255;
/** At most this many padding packets after one frame. */
const PROBE_BURST = 40;
/** How long a probe's traffic stays in the delivered window after it stopped (twcc.ts's window), ms. */
const PROBE_WINDOW_MS = 1000;
/** Transport-cc feedback older than this no longer counts as an estimate. */
const TWCC_STALE_MS = 2000;
/** Rough per-packet overhead on the wire besides the payload (RTP header, extensions, SRTP tag). */
const PACKET_OVERHEAD = 40;
/**
 * How far behind the newest packet the switch point may lag. It drops what
 * the publisher sent before the last layer switch; left where the switch
 * was, 32,768 packets later every packet compares as older than it on the
 * 16-bit circle and the subscriber gets nothing more (the soak's stall).
 */
const SWITCH_LAG = 0x4000;
/** Loss (fraction, transport-cc's long window) from which NACK answers are sent twice, and the copy's delay (ms): see DownTrack.onNack. */
const REDUNDANT_RTX_LOSS = 0.04;
const REDUNDANT_RTX_DELAY_MS = 10;

type DtlsTransport = NonNullable<RTCRtpSender['dtlsTransport']>;

const random16 = () => Math.floor(Math.random() * 0x10000);
const random32 = () => Math.floor(Math.random() * 0x100000000) >>> 0;

/** Seconds from the NTP epoch (1900) to the Unix epoch. */
const NTP_UNIX_OFFSET = 2208988800;

/** A wall-clock time (ms since 1970) as a 64-bit NTP timestamp (RFC 3550 §4). */
export function ntpFromMs(ms: number): bigint {
  const s = Math.floor(ms / 1000);
  const frac = Math.floor(((ms - s * 1000) / 1000) * 0x100000000);
  return (BigInt(s + NTP_UNIX_OFFSET) << 32n) | BigInt(frac >>> 0);
}

/** The fields of werift's RTCRtpSender that its sender reports (runRtcp) and getStats read. */
interface SenderCounters {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  headerBytesSent: number;
  runRtcp(): Promise<void>;
}

/** How often our counters are copied into werift's sender, for its SRs (ms). */
const SR_SYNC_MS = 20;

/** Forwards one up-track to one subscriber, rewriting SSRC/PT/seq/timestamps. */
export class DownTrack implements PacketSink {
  /** Layer being forwarded (-1: none yet / waiting for a keyframe). */
  current = -1;
  /** Layer wanted (-1: nothing). */
  target = -1;
  #started = false;
  #seqOffset = 0;
  #tsOffset = 0;
  #switchSeq = 0;
  #lastSeq = 0;
  /** Input sequence number of the newest packet forwarded. */
  #lastIn = 0;
  #lastTs = 0;
  /** The newest packet forwarded ended a frame: padding may follow it. */
  #lastMarker = false;
  #lastTime = 0;
  #lastMode: DownRequest['video'] | undefined;
  #lastFirSeq = -1;
  readonly chooser: LayerChooser;
  /** What we sent, to answer the subscriber's NACKs (video only). */
  readonly cache: PacketCache | undefined;
  packets = 0;
  bytes = 0;
  readonly meter = new RateMeter();
  keyframeRequests = 0;
  nacks = 0;
  retransmitted = 0;
  /** Bytes of probe traffic (padding) sent. */
  probeBytes = 0;
  packetsLost = 0;
  fractionLost = 0;
  jitter = 0;
  /** Transport-cc extension id this track's packets carry (0: not negotiated). */
  twccId = 0;
  /** Next sequence number on this track's RTX stream. */
  #rtxSeq = random16();
  /** Retransmissions sent on the RTX stream (RFC 4588), a part of `retransmitted`. */
  rtxPackets = 0;
  /** Second copies of retransmissions sent on a lossy link (see onNack). */
  redundantRetransmissions = 0;
  // Sender-report state, kept here and copied into werift's sender every
  // SR_SYNC_MS: writing its fields per packet is slower (an object of 50+
  // fields), and its ntpTime() per packet formatted a string (with a wrong fraction).
  /** Wall-clock time (ms) of the newest packet sent: the SR's NTP time, paired with #srRtp. */
  #srAt = 0;
  #srRtp = 0;
  #srPackets = 0;
  #srOctets = 0;
  #srHeaderBytes = 0;
  #srSyncedAt = 0;
  #rtcpStarted = false;

  constructor(
    readonly up: WeriftUpTrack,
    readonly sender: RTCRtpSender,
    private readonly owner: WeriftDownStream,
    probeAfterMs?: number,
  ) {
    this.chooser = new LayerChooser(probeAfterMs);
    if (up.kind === 'video') {
      this.cache = new PacketCache();
      // werift's own history (128 packets) would answer NACKs a second time:
      // a zero-length typed array silently drops its writes.
      (sender as unknown as { rtpCache: unknown }).rtpCache = new Uint8Array(0);
    }
    sender.onPictureLossIndication.subscribe(() => this.keyframeRequest());
    sender.onRtcp.subscribe((p: RtcpPacket) => {
      if (p.type !== RtcpRrPacket.type && p.type !== RtcpSrPacket.type) return;
      for (const r of (p as RtcpRrPacket).reports) {
        if (r.ssrc !== sender.ssrc) continue;
        this.packetsLost = r.packetsLost;
        this.fractionLost = r.fractionLost / 256;
        this.jitter = r.jitter / this.up.clockRate;
      }
    });
    up.addSink(this);
  }

  get connected(): boolean {
    return this.sender.dtlsTransport?.state === 'connected' && this.sender.codec !== undefined;
  }

  /** A PLI or FIR from the subscriber: a keyframe of the layer it gets (rate-limited upstream). */
  keyframeRequest(): void {
    this.keyframeRequests++;
    this.up.requestKeyframe(this.current >= 0 ? this.current : this.target >= 0 ? this.target : undefined);
  }

  /** A FIR: RFC 5104 repeats a request with the same sequence number until answered; one counts once. */
  onFir(seqNr: number): void {
    if (seqNr === this.#lastFirSeq) return;
    this.#lastFirSeq = seqNr;
    this.keyframeRequest();
  }

  onPacket(layer: number, packet: RtpLike, now: number): void {
    if (this.target < 0 || !this.connected) return;
    const h = packet.header;
    if (packet.payload.length === 0) {
      // Padding (the publisher probing bandwidth) is not forwarded; close the
      // sequence gap it would leave, or the subscriber NACKs it as lost.
      if (layer === this.current && h.sequenceNumber === seqAdd(this.#lastIn, 1)) {
        this.#seqOffset = seqAdd(this.#seqOffset, -1);
        this.#lastIn = h.sequenceNumber;
      }
      return;
    }
    if (layer !== this.current) {
      if (layer !== this.target) return;
      if (this.up.kind === 'video' && !isKeyframeStart(this.up.codec, packet.payload)) return;
      this.#rebase(h.sequenceNumber, h.timestamp, now);
      if (process.env.ATRIUM_MEDIA_DEBUG)
        console.error(
          `[q switch] ${this.up.kind} ${this.current} -> ${layer} at ${now} in seq ${h.sequenceNumber} ts ${h.timestamp} out seq ${seqAdd(this.#lastSeq, 1)} ts ${tsAdd(h.timestamp, this.#tsOffset)} picture ${packet.payload.subarray(0, 6).toString('hex')}`,
        );
      this.current = layer;
    } else if (seqDiff(h.sequenceNumber, this.#switchSeq) < 0) {
      return; // older than the switch point
    }
    const seq = seqAdd(h.sequenceNumber, this.#seqOffset);
    const ts = tsAdd(h.timestamp, this.#tsOffset);
    const payload = packet.payload;
    if (seqDiff(seq, this.#lastSeq) > 0) {
      this.#lastIn = h.sequenceNumber;
      // The switch point follows the newest packet at a distance: on the 16-bit
      // circle, 32,768 packets after a switch everything would compare as older.
      if (seqDiff(h.sequenceNumber, this.#switchSeq) > SWITCH_LAG) this.#switchSeq = seqAdd(h.sequenceNumber, -SWITCH_LAG);
      this.#lastSeq = seq;
      this.#lastTs = ts;
      this.#lastMarker = h.marker;
      this.#lastTime = now;
      this.#srRtp = ts;
      this.#srAt = now;
    }
    // what werift's sendRtp counted for the sender reports
    this.#srPackets = (this.#srPackets + 1) >>> 0;
    this.#srOctets += payload.length;
    this.#srHeaderBytes += rtpHeaderLength(this.twccId);
    if (now - this.#srSyncedAt >= SR_SYNC_MS) this.#syncSenderReport(now);
    this.packets++;
    this.bytes += payload.length;
    this.meter.add(payload.length, now);
    this.cache?.store(seq, ts, h.marker, payload, now);
    this.owner.send(this, seq, ts, h.marker, payload, now);
    if (h.marker && this.cache && seq === this.#lastSeq) this.owner.afterFrame(this, now);
  }

  /** Copies the SR state into werift's sender (its runRtcp loop reads it); starts that loop once. */
  #syncSenderReport(now: number): void {
    this.#srSyncedAt = now;
    const s = this.sender as unknown as SenderCounters;
    if (this.#srAt > 0) s.ntpTimestamp = ntpFromMs(this.#srAt);
    s.rtpTimestamp = this.#srRtp;
    s.packetCount = this.#srPackets;
    s.octetCount = this.#srOctets;
    s.headerBytesSent = this.#srHeaderBytes;
    if (!this.#rtcpStarted) {
      this.#rtcpStarted = true;
      s.runRtcp().catch(() => {}); // werift's SR loop (its sendRtp started it)
    }
  }

  /**
   * The subscriber's NACK: resends what our cache still holds. On a link
   * losing REDUNDANT_RTX_LOSS or more at random (lossAtRandom), each answer is
   * sent twice, the copy REDUNDANT_RTX_DELAY_MS later: at 10 % random loss
   * both ways a NACK or its answer is lost one time in five, and Chromium's
   * next NACK (a round-trip estimate later; libwebrtc assumes 100 ms without
   * one) often comes after its jitter buffer gave the frame up: a frame lost,
   * a freeze when it was a base-layer one (bench/quality: 83 % of the clean
   * frame rate, a 135-191 ms jitter buffer; 95 % and 28-44 ms sent twice).
   * Twice costs the lost fraction once more and squares the answer's loss.
   */
  onNack(lost: readonly number[], now: number): void {
    this.nacks += lost.length;
    if (!this.cache || !this.connected) return;
    const copies: [number, number, boolean, Buffer][] = [];
    const redundant = this.owner.lossAtRandom(this.fractionLost, now);
    this.retransmitted += this.cache.answerNack(lost, now, (seq, timestamp, marker, payload) => {
      this.#resend(seq, timestamp, marker, payload, now);
      if (redundant) copies.push([seq, timestamp, marker, payload]);
    });
    if (copies.length > 0)
      setTimeout(() => {
        if (!this.connected) return;
        const later = Date.now();
        for (const [seq, timestamp, marker, payload] of copies) this.#resend(seq, timestamp, marker, payload, later, false);
        this.redundantRetransmissions += copies.length;
      }, REDUNDANT_RTX_DELAY_MS).unref();
  }

  #resend(seq: number, timestamp: number, marker: boolean, payload: Buffer, now: number, counted = true): void {
    const rtxPt = this.rtxPayloadType;
    if (rtxPt === undefined) {
      this.owner.send(this, seq, timestamp, marker, payload, now);
      return;
    }
    // RFC 4588 §4: the original sequence number, then the original payload, on the RTX stream
    const osn = Buffer.allocUnsafe(2);
    osn.writeUInt16BE(seq, 0);
    if (this.owner.send(this, this.#rtxSeq, timestamp, marker, Buffer.concat([osn, payload]), now, 'rtx') && counted) this.rtxPackets++;
    this.#rtxSeq = seqAdd(this.#rtxSeq, 1);
  }

  /** The payload type of the RTX stream the subscriber accepted, if it did (werift sets it from the answer's apt). */
  get rtxPayloadType(): number | undefined {
    return (this.sender as unknown as { rtxPayloadType?: number }).rtxPayloadType;
  }

  /**
   * Probe traffic on the current layer: about `bytes` of padding-only
   * packets, numbered in the layer's sequence (the following media moves up
   * to make room), sent only between frames. Returns the bytes sent.
   */
  probe(bytes: number, now: number): number {
    if (this.up.kind !== 'video' || !this.connected || this.current < 0 || !this.#started || !this.#lastMarker) return 0;
    let sent = 0;
    for (let k = 0; k < PROBE_BURST && sent < bytes; k++) {
      const seq = seqAdd(this.#lastSeq, 1);
      if (!this.owner.send(this, seq, this.#lastTs, false, PADDING, now, 'padding')) break;
      this.#lastSeq = seq;
      this.#seqOffset = seqAdd(this.#seqOffset, 1);
      sent += PADDING.length + PACKET_OVERHEAD;
    }
    this.probeBytes += sent;
    return sent;
  }

  #rebase(seq: number, ts: number, now: number): void {
    const nextSeq = this.#started ? seqAdd(this.#lastSeq, 1) : random16();
    const elapsed = this.#started ? Math.max(1, Math.round(((now - this.#lastTime) * this.up.clockRate) / 1000)) : 0;
    const nextTs = this.#started ? tsAdd(this.#lastTs, elapsed) : random32();
    this.#seqOffset = (nextSeq - seq) & 0xffff;
    this.#tsOffset = (nextTs - ts) >>> 0;
    this.#switchSeq = seq;
    this.#lastIn = seqAdd(seq, -1);
    if (!this.#started) {
      this.#lastSeq = seqAdd(nextSeq, -1);
      this.#lastTs = nextTs;
      this.#lastTime = now;
    }
    this.#started = true;
  }

  /** Picks the target layer from the request and the subscriber's estimate; asks for a keyframe when switching. */
  tick(request: DownRequest, estimate: BandwidthEstimate, now: number): void {
    const layers = Math.max(1, this.up.layerList.length);
    let target: number;
    if (this.up.kind === 'audio') target = request.audio ? 0 : -1;
    else if (request.video === 'none') target = -1;
    else if (layers === 1) target = 0;
    else if (request.video === 'low') target = lowestActiveLayer(this.up.layerRates(now));
    else {
      // with a down-link estimate, transport-cc's long-window loss judges (an RR's fraction covers a few dozen packets)
      const e = estimate.link ? estimate : { ...estimate, loss: Math.max(estimate.loss, this.fractionLost) };
      target = this.chooser.choose(this.up.layerRates(now), e, now, this.#lastMode !== 'high');
    }
    this.#lastMode = request.video;
    if (target < 0) {
      this.current = -1;
    }
    this.target = target;
    if (this.up.kind === 'video' && target >= 0 && this.connected && this.current !== target) {
      this.up.requestKeyframe(target);
    }
  }

  onUpTrackEnded(): void {
    this.target = -1;
    this.current = -1;
    this.owner.upTrackEnded();
  }

  stats(): TrackStats {
    const s: TrackStats = {
      trackId: this.up.id,
      kind: this.up.kind,
      codec: this.up.codec,
      bitrate: this.meter.rate(),
      packets: this.packets,
      bytes: this.bytes,
      packetsLost: this.packetsLost,
      fractionLost: this.fractionLost,
      jitter: this.jitter,
      keyframeRequests: this.keyframeRequests,
      nacks: this.nacks,
      retransmitted: this.retransmitted,
      retransmittedRtx: this.rtxPackets,
      retransmittedRedundant: this.redundantRetransmissions,
      probeBytes: this.probeBytes,
    };
    const rid = this.up.layerList[this.current]?.rid;
    if (rid !== undefined) s.layer = rid;
    return s;
  }

  detach(): void {
    this.up.removeSink(this);
  }
}

export class WeriftDownStream extends TypedEmitter<DownStreamEvents> implements DownStream {
  readonly id: string;
  readonly source: WeriftSource;
  readonly pc: RTCPeerConnection;
  #request: DownRequest;
  #tracks = new Map<string, DownTrack>();
  #state: ConnectionState = 'new';
  #closed = false;
  #timer: NodeJS.Timeout;
  #stream: MediaStream;
  #probeAfterMs: number | undefined;
  /** How this down-stream is negotiated: the server offers (Galène), or answers the subscriber's offer (WHEP). */
  #role: 'offerer' | 'answerer' | undefined;
  /** The bundled transport, once known. */
  #transport: DtlsTransport | undefined;
  /** Our send path on the transport's nominated socket (undefined until the transport is known). */
  #fast: FastRtpSender | undefined;
  readonly twcc = new TwccSendHistory();
  readonly estimator = new DownlinkEstimator();
  readonly prober = new ProbeController();
  /** bit/s the choosers asked a probe for at the last tick (0: none). */
  #wantProbe = 0;
  /** When probe padding was last accounted for (ms). */
  #probeAt = 0;
  /** Probe bytes due but not sent yet (padding waits for a frame's end). */
  #probeOwed = 0;
  /** Transport-wide sequence numbers of the first and last packet sent under the current probe (-1: none yet). */
  #probeFirstSeq = -1;
  #probeLastSeq = -1;
  /** When the current probe's traffic stopped (0: still sending). */
  #probeEnd = 0;
  /** When the last probe failed (ms; 0: none). */
  #probeFailedAt = 0;
  #limiter: { rate: number; tokens: number; at: number } | undefined;

  constructor(
    engine: WeriftEngineOptions,
    options: DownStreamOptions & { source: WeriftSource },
    private readonly onClosed: (s: WeriftDownStream) => void,
  ) {
    super();
    this.id = options.id;
    this.source = options.source;
    this.#probeAfterMs = engine.probeAfterMs;
    this.#request = { ...options.request };
    if (this.source.closed) throw new Error(`down-stream ${this.id}: its source up-stream ${this.source.id} is closed`);
    const describe = (kind: string) => {
      const seen = new Map<string, CodecDescription>();
      for (const t of this.source.tracks) if (t.kind === kind && t.codecDescription) seen.set(`${t.codecDescription.mimeType} ${t.codecDescription.parameters ?? ''}`, t.codecDescription);
      return [...seen.values()];
    };
    this.pc = new RTCPeerConnection(downConfig(engine, options.iceServers, describe('audio'), describe('video')));
    this.#stream = new MediaStream({ id: this.source.id });
    this.pc.onIceCandidate.subscribe((c) => {
      if (c?.candidate) this.emit('candidate', toCandidate(c.toJSON()));
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (this.#closed) return;
      this.#state = state;
      this.emit('state', state);
      if (state === 'connected') {
        this.#hookTransport();
        raiseSocketBuffers(this.#transport as unknown as DtlsTransportLike, DOWN_RECV_BUFFER);
        this.#tick();
      }
      if (state === 'failed') this.close();
    });
    this.source.downs.add(this);
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  get request(): DownRequest {
    return { ...this.#request };
  }
  get state(): ConnectionState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#closed;
  }

  #wanted(t: WeriftUpTrack): boolean {
    return t.kind === 'audio' ? this.#request.audio : this.#request.video !== 'none';
  }

  async offer(options: { iceRestart?: boolean } = {}): Promise<string> {
    if (this.#closed) throw new Error(`down-stream ${this.id} is closed; no offer can be made`);
    if (this.#role === 'answerer') throw new Error(`down-stream ${this.id} answers its subscriber's offers; it cannot make one`);
    this.#role = 'offerer';
    for (const up of this.source.tracks) {
      if (this.#tracks.has(up.id) || !this.#wanted(up) || !up.codecDescription) continue;
      const transceiver = this.pc.addTransceiver(up.kind, { direction: 'sendonly', streams: [this.#stream] });
      this.#tracks.set(up.id, new DownTrack(up, transceiver.sender, this, this.#probeAfterMs));
    }
    const offer = await this.pc.createOffer(options.iceRestart ? { iceRestart: true } : {});
    await this.pc.setLocalDescription(offer);
    holdEarlyDtls(this.pc);
    return this.pc.localDescription!.sdp;
  }

  async answer(offerSdp: string): Promise<string> {
    if (this.#closed) throw new Error(`down-stream ${this.id} is closed; the offer cannot be answered`);
    if (this.#role === 'offerer') throw new Error(`down-stream ${this.id} makes its own offers; it cannot answer one`);
    this.#role = 'answerer';
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    // Each m-line the subscriber offered gets the first wanted up-track of its kind not sent yet.
    const bound = new Set([...this.#tracks.values()].map((t) => t.sender));
    for (const transceiver of this.pc.getTransceivers()) {
      if (bound.has(transceiver.sender)) continue;
      const up = this.source.tracks.find((t) => t.kind === transceiver.kind && this.#wanted(t) && t.codecDescription && !this.#tracks.has(t.id));
      if (!up) {
        transceiver.setDirection('inactive');
        continue;
      }
      transceiver.setDirection('sendonly');
      (transceiver.sender as unknown as { streamId?: string }).streamId = this.#stream.id;
      this.#tracks.set(up.id, new DownTrack(up, transceiver.sender, this, this.#probeAfterMs));
    }
    if (this.#tracks.size === 0) throw new Error(`down-stream ${this.id}: the offer has no audio or video m-line for what stream ${this.source.id} sends`);
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.#hookTransport();
    this.#tick();
    return this.pc.localDescription!.sdp;
  }

  async setAnswer(answerSdp: string): Promise<void> {
    if (this.#closed) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    holdEarlyDtls(this.pc);
    this.#hookTransport();
    this.#tick();
  }

  /** Subscribes once to the bundled transport's RTCP (NACK, FIR, transport-cc reach us there whatever SSRC they name). */
  #hookTransport(): void {
    let transport: DtlsTransport | undefined;
    for (const t of this.#tracks.values()) transport ??= t.sender.dtlsTransport;
    if (!transport) return;
    for (const t of this.#tracks.values()) {
      const exts = (t.sender as unknown as { headerExtensions?: { uri: string; id: number }[] }).headerExtensions;
      t.twccId = exts?.find((e) => e.uri === TWCC_URI)?.id ?? 0;
    }
    if (transport === this.#transport) return;
    this.#transport = transport;
    this.#fast = new FastRtpSender(transport as unknown as DtlsTransportLike, DOWN_RECV_BUFFER);
    transport.onRtcp.subscribe((p) => {
      if (this.#closed || transport !== this.#transport) return;
      this.#onRtcp(p);
    });
  }

  #trackBySsrc(ssrc: number): DownTrack | undefined {
    for (const t of this.#tracks.values()) if (t.sender.ssrc === ssrc) return t;
    return undefined;
  }

  #onRtcp(p: RtcpPacket): void {
    const now = Date.now();
    if (p.type === RtcpTransportLayerFeedback.type) {
      const fb = (p as RtcpTransportLayerFeedback).feedback;
      if (fb instanceof TransportWideCC) this.twcc.onFeedback(fb as unknown as ParsedTwcc, now);
      else if (fb instanceof GenericNack) this.#trackBySsrc(fb.mediaSourceSsrc)?.onNack(fb.lost, now);
    } else if (p.type === RtcpPayloadSpecificFeedback.type) {
      const fb = (p as RtcpPayloadSpecificFeedback).feedback;
      // FIR (RFC 5104): werift routes it nowhere (its media SSRC field is 0), the entries name our SSRCs
      if (fb.count === 4) for (const e of (fb as unknown as { fir: { ssrc: number; sequenceNumber: number }[] }).fir) this.#trackBySsrc(e.ssrc)?.onFir(e.sequenceNumber);
    }
  }

  /**
   * Sends one packet of a down-track (new or a NACK answer): a transport-cc
   * number and its send record, then our fast path (header bytes, SRTP, the
   * nominated socket), or werift's transport send when that path cannot.
   */
  send(track: DownTrack, seq: number, timestamp: number, marker: boolean, payload: Buffer, now: number, kind: 'media' | 'padding' | 'rtx' = 'media'): boolean {
    const transport = this.#transport;
    const codec = track.sender.codec;
    if (!transport || !codec) return false;
    const padding = kind === 'padding';
    const rtx = kind === 'rtx' ? track.rtxPayloadType : undefined;
    const payloadType = rtx ?? codec.payloadType;
    // padding-only packets go through our fast path alone (werift's header has no padding bit to set)
    if (padding && !(this.#fast && track.twccId <= 14)) return false;
    const twccId = track.twccId;
    let twccSeq = 0;
    if (twccId > 0) {
      twccSeq = transport.transportSequenceNumber = (transport.transportSequenceNumber + 1) & 0xffff;
      // everything sent while a probe runs is its traffic, judged by its own fates
      const tag = this.prober.sending ? this.prober.tag : 0;
      if (tag > 0) {
        if (this.#probeFirstSeq < 0) this.#probeFirstSeq = twccSeq;
        this.#probeLastSeq = twccSeq;
      }
      this.twcc.sent(twccSeq, payload.length + PACKET_OVERHEAD, now, tag);
    }
    // the test bottleneck drops after numbering, as a congested link would
    if (this.#limiter && !this.#admit(payload.length + PACKET_OVERHEAD)) return true;
    const ssrc = rtx !== undefined ? track.sender.rtxSsrc : track.sender.ssrc;
    const fast = this.#fast;
    if (fast && twccId <= 14) {
      // a fresh header per datagram: the kernel may still hold a queued one
      const header = Buffer.allocUnsafe(rtpHeaderLength(twccId));
      writeRtpHeader(header, payloadType, marker, seq, timestamp, ssrc, twccId, twccSeq);
      if (padding) header[0]! |= 0x20;
      if (fast.send(header, payload, ssrc, seq) >= 0) return true;
      if (padding) return false;
    }
    const extensions: { id: number; payload: Buffer }[] = [];
    if (twccId > 0) {
      const b = Buffer.allocUnsafe(2);
      b.writeUInt16BE(twccSeq, 0);
      extensions.push({ id: twccId, payload: b });
    }
    const header = new RtpHeader({ payloadType, sequenceNumber: seq, timestamp, ssrc, marker, extensions });
    transport.sendRtp(payload, header).catch(() => {});
    return true;
  }

  #admit(size: number): boolean {
    const l = this.#limiter!;
    const now = Date.now();
    // a 100 ms bucket
    l.tokens = Math.min(l.rate / 10, l.tokens + ((now - l.at) * l.rate) / 1000);
    l.at = now;
    if (l.tokens < size) return false;
    l.tokens -= size;
    return true;
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate || !candidate.candidate) return;
    await this.pc.addIceCandidate(fromCandidate(candidate));
  }

  setRequest(request: DownRequest): void {
    this.#request = { ...request };
    const missing = this.source.tracks.some((t) => this.#wanted(t) && !this.#tracks.has(t.id));
    this.#tick();
    if (missing) this.emit('renegotiate');
  }

  /**
   * Whether the link loses at random (NACK answers then go twice: DownTrack.onNack):
   * transport-cc's long-window loss from REDUNDANT_RTX_LOSS up to what the
   * estimator tolerates, and no probe running or failed lately. A full link
   * loses too (over a cap, just after a probe drained a policer's bucket), and
   * there second copies would only overflow it more. Without transport-cc,
   * the receiver's report (`rrLoss`) says.
   */
  lossAtRandom(rrLoss: number, now: number): boolean {
    const t = this.twcc.estimate(now);
    if (!(t.lastFeedback > 0 && now - t.lastFeedback < TWCC_STALE_MS)) return rrLoss >= REDUNDANT_RTX_LOSS;
    const settled = !this.prober.probing && (this.#probeFailedAt === 0 || now - this.#probeFailedAt > 2 * PROBE_WINDOW_MS);
    return settled && t.lossLong >= REDUNDANT_RTX_LOSS && t.lossLong <= LOSS_TOLERATED;
  }

  /** The subscriber's REMB, bit/s; 0 when it sends none. */
  get remb(): number {
    let min = 0;
    for (const t of this.#tracks.values()) {
      const remb = Number(t.sender.receiverEstimatedMaxBitrate ?? 0n);
      if (remb > 0 && (min === 0 || remb < min)) min = remb;
    }
    return min;
  }

  /** The subscriber's bandwidth as its feedback shows it now. */
  estimate(now = Date.now()): BandwidthEstimate & { available: number; lossLong: number } {
    const remb = this.remb;
    const t = this.twcc.estimate(now);
    const fresh = t.lastFeedback > 0 && now - t.lastFeedback < TWCC_STALE_MS;
    const delivered = fresh ? t.delivered : 0;
    return {
      remb,
      delivered,
      loss: fresh ? t.loss : 0,
      lossLong: fresh ? t.lossLong : 0,
      queueDelay: fresh ? t.queueDelay : 0,
      available: remb || delivered,
    };
  }

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    const e = this.estimate(now);
    const sample: LinkSample = { delivered: e.delivered, loss: e.loss, lossLong: e.lossLong, queueDelay: e.queueDelay };
    // the 1-s window holds a probe's traffic until a second after it stopped: no growth on it
    this.estimator.update(sample, now, this.prober.probing || (this.#probeEnd > 0 && now - this.#probeEnd < PROBE_WINDOW_MS));
    // audio is subtracted from the estimate before choosing a video layer
    let audio = 0;
    for (const t of this.#tracks.values()) if (t.up.kind === 'audio' && t.target >= 0) audio += t.meter.rate(now);
    const outcome = this.prober.tick(this.#wantProbe > 0 ? this.#wantProbe + audio : 0, sample, now, this.#probeMeasure(now));
    if (outcome?.kind === 'started') this.#startProbe(now);
    else if (outcome) {
      this.#stopProbe();
      this.#probeEnd ||= now;
    }
    if (this.prober.probing && !this.prober.sending && this.#probeEnd === 0) {
      this.#probeEnd = now;
      this.#stopProbe();
    }
    if (outcome?.kind === 'succeeded') this.estimator.probed(outcome.delivered);
    // the link dropped what the probe sent over what it sustains: that is the estimate now
    if (outcome?.kind === 'failed') this.#probeFailedAt = now;
    if (outcome?.kind === 'failed' && outcome.measured && outcome.overLoss) this.estimator.sustained(outcome.delivered);
    const estimate: BandwidthEstimate = {
      remb: e.remb > 0 ? Math.max(1, e.remb - audio) : 0,
      delivered: e.delivered > 0 ? Math.max(1, e.delivered - audio) : 0,
      // the layer choice judges loss on the long window too: a noisy second of random loss is no reason to drop a layer
      loss: e.lossLong,
      queueDelay: e.queueDelay,
      link: this.estimator.estimate > 0 ? Math.max(1, this.estimator.estimate - audio) : 0,
      probed: outcome?.kind === 'succeeded',
    };
    if (process.env.ATRIUM_MEDIA_DEBUG && (outcome || now % 1000 < TICK_MS || process.env.ATRIUM_MEDIA_DEBUG === '2')) {
      const v = [...this.#tracks.values()].find((t) => t.up.kind === 'video');
      console.error(
        `[q ${this.id}] del ${Math.round(e.delivered / 1000)}k loss ${e.loss.toFixed(2)}/${e.lossLong.toFixed(2)} q ${Math.round(e.queueDelay)} est ${Math.round(this.estimator.estimate / 1000)}k want ${Math.round(this.#wantProbe / 1000)}k rates ${v?.up.layerRates(now).map((r) => Math.round(r / 1000))} cur ${v?.current} tgt ${v?.target} rr ${v?.fractionLost.toFixed(2)} ${outcome ? JSON.stringify(outcome) : ''}`,
      );
    }
    this.#wantProbe = 0;
    for (const t of this.#tracks.values()) {
      const before = t.target;
      t.tick(this.#request, estimate, now);
      if (t.up.kind !== 'video') continue;
      if (before >= 0 && t.target >= 0 && t.target !== before) this.prober.switched(now);
      if (t.target >= 0) this.#wantProbe = Math.max(this.#wantProbe, t.chooser.wantProbe);
    }
  }

  /** The fates of the current probe's packets so far (undefined: no probe, or no transport-cc). */
  #probeMeasure(now: number): ProbeMeasure | undefined {
    if (!this.prober.probing || this.#probeFirstSeq < 0) return undefined;
    const start = this.prober.startedAt;
    return this.twcc.measureProbe(this.prober.tag, this.#probeFirstSeq, this.#probeLastSeq, start, start + PROBE_MS / 2, this.#probeEnd || now);
  }

  #startProbe(now: number): void {
    this.#probeAt = now;
    this.#probeOwed = 0;
    this.#probeFirstSeq = this.#probeLastSeq = -1;
    this.#probeEnd = 0;
  }

  #stopProbe(): void {
    this.#probeOwed = 0;
  }

  /** A video frame's last packet went out on `video`: the probe padding owed since the last frame follows it. */
  afterFrame(video: DownTrack, now: number): void {
    if (this.#closed || !this.prober.sending) return;
    const elapsed = Math.min(PROBE_OWED_MAX_MS, now - this.#probeAt);
    this.#probeAt = now;
    let sending = 0;
    for (const t of this.#tracks.values()) if (t.target >= 0) sending += t.meter.rate(now);
    const max = this.prober.budget(sending, PROBE_OWED_MAX_MS);
    this.#probeOwed = Math.min(max, this.#probeOwed + this.prober.budget(sending, elapsed));
    if (this.#probeOwed > 0) this.#probeOwed -= video.probe(this.#probeOwed, now);
  }

  /**
   * Test hook: a bottleneck of `bitsPerSecond` on the way to the subscriber
   * (packets over the budget are dropped after they got their transport-cc
   * number, as a congested link would); undefined removes it.
   */
  debugLimitBitrate(bitsPerSecond: number | undefined): void {
    if (!this.#transport) throw new Error(`down-stream ${this.id}: not connected yet, nothing to limit`);
    this.#limiter = bitsPerSecond === undefined ? undefined : { rate: bitsPerSecond / 8, tokens: bitsPerSecond / 80, at: Date.now() };
  }

  /** Called when one of the source's tracks ended (the up-stream is closing). */
  upTrackEnded(): void {
    if (this.source.closed) this.close();
  }

  async stats(): Promise<StreamStats> {
    const s: StreamStats = { id: this.id, state: this.#state, tracks: [...this.#tracks.values()].map((t) => t.stats()) };
    const available = this.estimator.estimate || this.estimate().available;
    if (available > 0) s.availableBitrate = Math.round(available);
    s.probes = { ...this.prober.counters };
    return s;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#stopProbe();
    for (const t of this.#tracks.values()) t.detach();
    this.source.downs.delete(this);
    this.pc.close().catch(() => {});
    this.#state = 'closed';
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
    this.onClosed(this);
  }
}
