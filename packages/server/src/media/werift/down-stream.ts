// Subscriber side: one werift peer connection per down-stream; the server offers.
import { MediaStream, RTCPeerConnection, RtcpRrPacket, RtcpSrPacket, RtpHeader, RtpPacket, type RtcpPacket, type RTCRtpSender } from 'werift';
import type { ConnectionState, DownRequest, DownStream, DownStreamEvents, DownStreamOptions, IceCandidate, StreamStats, TrackStats } from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import { RateMeter, isKeyframeStart, seqAdd, seqDiff, tsAdd } from '../rtp.ts';
import { downConfig, type CodecDescription, type WeriftEngineOptions } from './config.ts';
import { fromCandidate, toCandidate, type PacketSink, type WeriftUpStream, type WeriftUpTrack } from './up-stream.ts';

const TICK_MS = 250;
/** Go up a layer only when the estimate exceeds its rate by this factor… */
const UP_MARGIN = 1.15;
/** …for this many consecutive ticks. */
const UP_TICKS = 4;
/** Go down when the estimate falls below the current layer's rate times this… */
const DOWN_MARGIN = 0.85;
/** …for this many consecutive ticks. */
const DOWN_TICKS = 4;
/** REMB cannot rise much above what is sent, so after a down-switch we retry the higher layer after this long. */
const PROBE_AFTER_MS = 15000;

/** What the subscriber's feedback says about its bandwidth. */
interface Estimate {
  /** REMB bit/s, 0 when the subscriber sends none. */
  remb: number;
  /** werift's TWCC delay-based detector says the path is congested (informational: unreliable in werift 0.24). */
  congested: boolean;
}

const random16 = () => Math.floor(Math.random() * 0x10000);
const random32 = () => Math.floor(Math.random() * 0x100000000) >>> 0;

/** Forwards one up-track to one subscriber, rewriting SSRC/PT/seq/timestamps. */
class DownTrack implements PacketSink {
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
  #lastTime = 0;
  #upTicks = 0;
  #downTicks = 0;
  #lastDownSwitch = 0;
  #lastMode: DownRequest['video'] | undefined;
  packets = 0;
  bytes = 0;
  readonly meter = new RateMeter();
  keyframeRequests = 0;
  nacks = 0;
  packetsLost = 0;
  fractionLost = 0;
  jitter = 0;

  constructor(
    readonly up: WeriftUpTrack,
    readonly sender: RTCRtpSender,
    private readonly owner: WeriftDownStream,
  ) {
    sender.onPictureLossIndication.subscribe(() => {
      this.keyframeRequests++;
      this.up.requestKeyframe(this.current >= 0 ? this.current : this.target >= 0 ? this.target : undefined);
    });
    sender.onGenericNack.subscribe((n) => {
      this.nacks += n.lost.length; // werift answers them from the sender's packet history
    });
    sender.onRtcp.subscribe((p: RtcpPacket) => {
      if (p.type !== RtcpRrPacket.type && p.type !== RtcpSrPacket.type) return;
      for (const r of (p as RtcpRrPacket).reports) {
        if (r.ssrc !== sender.ssrc) continue;
        this.packetsLost = r.packetsLost;
        this.fractionLost = r.fractionLost / 256;
        this.jitter = r.jitter / this.up.clockRate;
      }
    });
    up.sinks.add(this);
  }

  get connected(): boolean {
    return this.sender.dtlsTransport?.state === 'connected' && this.sender.codec !== undefined;
  }

  onPacket(layer: number, packet: RtpPacket, now: number): void {
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
      this.current = layer;
    } else if (seqDiff(h.sequenceNumber, this.#switchSeq) < 0) {
      return; // older than the switch point
    }
    const seq = seqAdd(h.sequenceNumber, this.#seqOffset);
    const ts = tsAdd(h.timestamp, this.#tsOffset);
    if (seqDiff(seq, this.#lastSeq) > 0) {
      this.#lastIn = h.sequenceNumber;
      this.#lastSeq = seq;
      this.#lastTs = ts;
      this.#lastTime = now;
    }
    const header = new RtpHeader({
      payloadType: this.sender.codec!.payloadType,
      sequenceNumber: seq,
      timestamp: ts,
      ssrc: this.sender.ssrc,
      marker: h.marker,
      extensions: [],
    });
    this.packets++;
    this.bytes += packet.payload.length;
    this.meter.add(packet.payload.length, now);
    // werift's sendRtp adds its own header extensions, keeps the packet for
    // NACK answers (its history holds 128 packets) and sends SRs.
    this.sender.sendRtp(new RtpPacket(header, packet.payload)).catch(() => {});
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
  tick(request: DownRequest, estimate: Estimate, now: number): void {
    const layers = Math.max(1, this.up.layerList.length);
    let target: number;
    if (this.up.kind === 'audio') target = request.audio ? 0 : -1;
    else if (request.video === 'none') target = -1;
    else if (request.video === 'low' || layers === 1) target = layers - 1;
    else target = this.#chooseHigh(estimate, now, this.#lastMode !== 'high');
    this.#lastMode = request.video;
    if (target < 0) {
      this.current = -1;
    }
    this.target = target;
    if (this.up.kind === 'video' && target >= 0 && this.connected && this.current !== target) {
      this.up.requestKeyframe(target);
    }
  }

  /**
   * Layer choice for video 'high': start on the best active layer; go down
   * (with hysteresis) when REMB is below the layer's rate or when the
   * subscriber reports heavy loss (RTCP RR); go up when REMB allows it or, as neither REMB nor werift's TWCC
   * estimate can exceed what is actually sent, as a probe after a quiet spell.
   */
  #chooseHigh(estimate: Estimate, now: number, fresh: boolean): number {
    const rates = this.up.layerRates(now);
    const active = rates.map((r, i) => (r > 0 ? i : -1)).filter((i) => i >= 0);
    if (active.length === 0) return this.target >= 0 ? this.target : 0;
    const best = active[0]!;
    const lowest = active[active.length - 1]!;
    const cur = !fresh && this.target >= 0 && rates[this.target]! > 0 ? this.target : -1;
    if (cur < 0) {
      this.#upTicks = this.#downTicks = 0;
      return best;
    }
    const remb = estimate.remb;
    // werift's TWCC congestion flag stays true on an idle loopback, so it is not used.
    const bad = (remb > 0 && remb < rates[cur]! * DOWN_MARGIN) || this.fractionLost > 0.1;
    // going down (towards the last index)
    if (cur !== lowest && bad) {
      if (++this.#downTicks >= DOWN_TICKS) {
        this.#downTicks = 0;
        this.#upTicks = 0;
        this.#lastDownSwitch = now;
        const fits = remb > 0 ? active.find((i) => i > cur && rates[i]! <= remb) : active.find((i) => i > cur);
        return fits ?? lowest;
      }
      return cur;
    }
    this.#downTicks = 0;
    // going up (towards index 0), one step at a time
    const higher = active.filter((i) => i < cur);
    const next = higher[higher.length - 1];
    if (next === undefined) return cur;
    const allowed = remb > 0 && remb >= rates[next]! * UP_MARGIN;
    const probe = now - this.#lastDownSwitch > PROBE_AFTER_MS && this.fractionLost < 0.02;
    if (allowed || probe) {
      if (++this.#upTicks >= UP_TICKS) {
        this.#upTicks = 0;
        this.#lastDownSwitch = now;
        return next;
      }
    } else this.#upTicks = 0;
    return cur;
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
    };
    const rid = this.up.layerList[this.current]?.rid;
    if (rid !== undefined) s.layer = rid;
    return s;
  }

  detach(): void {
    this.up.sinks.delete(this);
  }
}

export class WeriftDownStream extends TypedEmitter<DownStreamEvents> implements DownStream {
  readonly id: string;
  readonly source: WeriftUpStream;
  readonly pc: RTCPeerConnection;
  #request: DownRequest;
  #tracks = new Map<string, DownTrack>();
  #state: ConnectionState = 'new';
  #closed = false;
  #timer: NodeJS.Timeout;
  #stream: MediaStream;

  constructor(engine: WeriftEngineOptions, options: DownStreamOptions & { source: WeriftUpStream }, private readonly onClosed: (s: WeriftDownStream) => void) {
    super();
    this.id = options.id;
    this.source = options.source;
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
      if (c && c.candidate) this.emit('candidate', toCandidate(c.toJSON()));
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (this.#closed) return;
      this.#state = state;
      this.emit('state', state);
      if (state === 'connected') this.#tick();
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
    for (const up of this.source.tracks) {
      if (this.#tracks.has(up.id) || !this.#wanted(up) || !up.codecDescription) continue;
      const transceiver = this.pc.addTransceiver(up.kind, { direction: 'sendonly', streams: [this.#stream] });
      this.#tracks.set(up.id, new DownTrack(up, transceiver.sender, this));
    }
    const offer = await this.pc.createOffer(options.iceRestart ? { iceRestart: true } : {});
    await this.pc.setLocalDescription(offer);
    return this.pc.localDescription!.sdp;
  }

  async setAnswer(answerSdp: string): Promise<void> {
    if (this.#closed) return;
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    this.#tick();
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

  /** The subscriber's REMB, bit/s; 0 when it sends none. */
  get remb(): number {
    let min = 0;
    for (const t of this.#tracks.values()) {
      const remb = Number(t.sender.receiverEstimatedMaxBitrate ?? 0n);
      if (remb > 0 && (min === 0 || remb < min)) min = remb;
    }
    return min;
  }

  /** Throughput seen by werift's TWCC estimator (what got through, not the capacity), bit/s. */
  get twccThroughput(): number {
    let sum = 0;
    for (const t of this.#tracks.values()) sum += t.sender.senderBWE.availableBitrate || 0;
    return sum;
  }

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    const remb = this.remb;
    // audio is subtracted from REMB before choosing a video layer
    let audio = 0;
    for (const t of this.#tracks.values()) if (t.up.kind === 'audio' && t.target >= 0) audio += t.meter.rate(now);
    const congested = [...this.#tracks.values()].some((t) => t.sender.senderBWE.congestion);
    const estimate: Estimate = { remb: remb > 0 ? Math.max(1, remb - audio) : 0, congested };
    for (const t of this.#tracks.values()) t.tick(this.#request, estimate, now);
  }

  /** Called when one of the source's tracks ended (the up-stream is closing). */
  upTrackEnded(): void {
    if (this.source.closed) this.close();
  }

  async stats(): Promise<StreamStats> {
    const s: StreamStats = { id: this.id, state: this.#state, tracks: [...this.#tracks.values()].map((t) => t.stats()) };
    const available = this.remb || this.twccThroughput;
    if (available > 0) s.availableBitrate = available;
    return s;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
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
