// Subscriber side of the native engine: werift makes the offer and runs
// ICE/DTLS; the packet plane rewrites and sends every packet and answers the
// subscriber's NACKs from its cache (on its RTX stream when it has one).
// This side decides which layer each down-track gets (LayerChooser, from
// the down-link estimate of media/quality/downlink.ts fed with the
// transport-cc facts the plane resolves, or REMB), runs the bandwidth probes
// before an up-switch (the plane sends the padding: Plane.probe), asks for
// keyframes, and feeds werift's sender reports with the plane's counters.
import { MediaStream, RTCPeerConnection, type RTCRtpSender } from 'werift';
import type { ConnectionState, DownRequest, DownStream, DownStreamEvents, DownStreamOptions, IceCandidate, StreamStats, TrackStats } from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import { RateMeter } from '../rtp.ts';
import { type CodecDescription, downConfig } from '../werift/config.ts';
import { DownlinkEstimator, type LinkSample, PROBE_LOSS, PROBE_MS, type ProbeHalf, type ProbeMeasure, ProbeController } from '../quality/downlink.ts';
import { seqDiff } from '../rtp.ts';
import { ntpFromMs } from '../werift/down-stream.ts';
import { holdEarlyDtls, preferDtlsServer } from '../werift/dtls.ts';
import { type BandwidthEstimate, LayerChooser, lowestActiveLayer } from '../werift/layers.ts';
import { TWCC_URI, TwccSendHistory } from '../werift/twcc.ts';
import { fromCandidate, toCandidate } from '../werift/up-stream.ts';
import { DOWN, SESSION } from './addon.ts';
import type { NativeEngine } from './engine.ts';
import { NativeLink, type SrtpResume, withoutGeneration } from './link.ts';
import type { NativeSource, NativeUpTrack } from './up-stream.ts';

const TICK_MS = 250;
const SR_SYNC_MS = 100;
const TWCC_STALE_MS = 2000;
/** Probe padding per packet (the most RFC 3550 padding can count), and what the feedback counts per packet besides it. */
const PROBE_PADDING = 255;
const PROBE_PACKET_BYTES = PROBE_PADDING + 40;
/** At most this many probe packets per timer tick (20 ms). */
const PROBE_BURST = 40;
/** How long a probe's traffic stays in the 1-s delivered window after it stopped (ms). */
const PROBE_WINDOW_MS = 1000;

/**
 * The fates of the packets sent while one probe ran (media and padding
 * alike: all of it is the probe's traffic), by transport-wide sequence
 * number, as the plane's resolved feedback reports them. The plane keeps the
 * send records; this side knows the range of numbers each half of the probe
 * used (the session's counter when the probe started, at its middle and
 * when it stopped sending).
 */
export class ProbeFates {
  readonly #fates = new Map<number, { size: number; arrivalUs: number }>();
  /** First number of the late half (-1: the middle not reached yet). */
  mid = -1;
  /** Last number sent under the probe so far. */
  last: number;

  constructor(readonly first: number) {
    this.last = (first - 1) & 0xffff;
  }

  #inRange(seq: number): boolean {
    return seqDiff(seq, this.first) >= 0 && seqDiff(seq, this.last) <= 0;
  }

  /** One packet of a feedback: arrival in µs on the subscriber's clock, or -1 when reported lost. */
  report(seq: number, size: number, arrivalUs: number): void {
    if (!this.#inRange(seq)) return;
    const known = this.#fates.get(seq);
    // reported lost, unless an earlier feedback had it arriving
    if (known && (known.arrivalUs >= 0 || arrivalUs < 0)) return;
    this.#fates.set(seq, { size, arrivalUs });
  }

  /** The two halves (by send time: `start`–`midMs`–`end`) as the probe controller judges them. */
  measure(startMs: number, midMs: number, endMs: number): ProbeMeasure {
    const span = seqDiff(this.last, this.first) + 1;
    const midAt = this.mid < 0 ? span : Math.max(0, Math.min(span, seqDiff(this.mid, this.first)));
    const half = (packets: number, from: number, to: number): ProbeHalf & { firstUs: number; lastUs: number } => ({
      packets,
      reported: 0,
      lost: 0,
      sentBytes: 0,
      receivedBytes: 0,
      sendMs: Math.max(0, to - from),
      arrivalMs: 0,
      firstUs: Infinity,
      lastUs: -Infinity,
    });
    const early = half(midAt, startMs, midMs);
    const late = half(span - midAt, midMs, endMs);
    for (const [seq, f] of this.#fates) {
      if (!this.#inRange(seq)) continue;
      const h = seqDiff(seq, this.first) < midAt ? early : late;
      h.reported++;
      h.sentBytes += f.size;
      if (f.arrivalUs < 0) {
        h.lost++;
        continue;
      }
      h.receivedBytes += f.size;
      if (f.arrivalUs < h.firstUs) h.firstUs = f.arrivalUs;
      if (f.arrivalUs > h.lastUs) h.lastUs = f.arrivalUs;
    }
    const done = ({ firstUs, lastUs, ...h }: ReturnType<typeof half>): ProbeHalf => ({ ...h, arrivalMs: lastUs > firstUs ? (lastUs - firstUs) / 1000 : 0 });
    return { early: done(early), late: done(late) };
  }
}

/** The fields of werift's RTCRtpSender that its sender reports read. */
interface SenderCounters {
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  runRtcp(): Promise<void>;
}

export class NativeDownTrack {
  planeId = 0;
  current = -1;
  target = -1;
  readonly chooser: LayerChooser;
  readonly meter = new RateMeter();
  keyframeRequests = 0;
  nacks = 0;
  #bytes = 0;
  #lastMode: DownRequest['video'] | undefined;
  #rtcpStarted = false;
  /** The subscriber accepted an RTX stream for this track (NACK answers and probe padding go there). */
  rtx = false;
  stats: Float64Array | undefined;

  constructor(
    readonly up: NativeUpTrack,
    readonly sender: RTCRtpSender,
    readonly owner: NativeDownStream,
    probeAfterMs?: number,
  ) {
    this.chooser = new LayerChooser(probeAfterMs);
    up.downs.add(this);
  }

  /** The plane's counters; feeds the rate meter. */
  sample(now: number): Float64Array | undefined {
    if (!this.planeId) return undefined;
    const s = this.owner.engine.plane.downStats(this.planeId) ?? undefined;
    this.stats = s;
    if (s) {
      const bytes = s[DOWN.bytes]!;
      if (bytes > this.#bytes) this.meter.add(bytes - this.#bytes, now);
      this.#bytes = bytes;
      this.current = s[DOWN.current]!;
    }
    return s;
  }

  keyframeRequest(): void {
    this.keyframeRequests++;
    this.up.requestKeyframe(this.current >= 0 ? this.current : this.target >= 0 ? this.target : undefined);
  }

  /** Picks the target layer and tells the plane; asks for a keyframe while the plane waits for one. */
  tick(request: DownRequest, estimate: BandwidthEstimate, now: number): void {
    const layers = Math.max(1, this.up.layerList.length);
    let target: number;
    if (this.up.kind === 'audio') target = request.audio ? 0 : -1;
    else if (request.video === 'none') target = -1;
    else if (layers === 1) target = 0;
    // The lowest layer that carries media, not a declared one that never comes (as the JavaScript engine).
    else if (request.video === 'low') target = lowestActiveLayer(this.up.layerRates(now));
    else {
      const fraction = this.stats ? this.stats[DOWN.rrFraction]! : 0;
      target = this.chooser.choose(this.up.layerRates(now), { ...estimate, loss: Math.max(estimate.loss, fraction) }, now, this.#lastMode !== 'high');
    }
    this.#lastMode = request.video;
    if (target !== this.target && this.planeId) this.owner.engine.plane.setTarget(this.planeId, target);
    this.target = target;
    if (target < 0) this.current = -1;
    if (this.up.kind === 'video' && target >= 0 && this.planeId && this.current !== target) this.up.requestKeyframe(target);
  }

  /** Copies the plane's counters into werift's sender, whose loop sends the sender reports; starts that loop once. */
  syncSenderReport(): void {
    const s = this.stats;
    if (!s?.[DOWN.started]) return;
    const w = this.sender as unknown as SenderCounters;
    w.ntpTimestamp = ntpFromMs(s[DOWN.lastSentMs]!);
    w.rtpTimestamp = s[DOWN.lastRtpTs]! >>> 0;
    w.packetCount = s[DOWN.packets]! >>> 0;
    w.octetCount = s[DOWN.bytes]! >>> 0;
    if (!this.#rtcpStarted) {
      this.#rtcpStarted = true;
      w.runRtcp().catch(() => {});
    }
  }

  onUpTrackEnded(): void {
    this.target = -1;
    this.current = -1;
    this.owner.upTrackEnded();
  }

  trackStats(): TrackStats {
    const s = this.sample(Date.now());
    const r: TrackStats = {
      trackId: this.up.id,
      kind: this.up.kind,
      codec: this.up.codec,
      bitrate: this.meter.rate(),
      packets: s ? s[DOWN.packets]! : 0,
      bytes: s ? s[DOWN.bytes]! : 0,
      packetsLost: s ? s[DOWN.rrLost]! : 0,
      fractionLost: s ? s[DOWN.rrFraction]! : 0,
      jitter: s ? s[DOWN.rrJitter]! / this.up.clockRate : 0,
      keyframeRequests: this.keyframeRequests,
      nacks: this.nacks,
    };
    if (s && this.up.kind === 'video') {
      r.retransmitted = s[DOWN.resent]!;
      r.retransmittedRtx = s[DOWN.rtxSent]!;
      r.probeBytes = s[DOWN.probeBytes]!;
    }
    const rid = this.up.layerList[this.current]?.rid;
    if (rid !== undefined) r.layer = rid;
    return r;
  }

  detach(): void {
    this.up.downs.delete(this);
    if (this.planeId) {
      this.owner.engine.plane.closeDown(this.planeId);
      this.owner.engine.downTracks.delete(this.planeId);
      this.planeId = 0;
    }
  }
}

export class NativeDownStream extends TypedEmitter<DownStreamEvents> implements DownStream {
  readonly id: string;
  readonly source: NativeSource;
  readonly pc: RTCPeerConnection;
  readonly link: NativeLink;
  readonly twcc = new TwccSendHistory();
  #request: DownRequest;
  #tracks = new Map<string, NativeDownTrack>();
  #state: ConnectionState = 'new';
  #closed = false;
  #stream: MediaStream;
  #probeAfterMs: number | undefined;
  /** How this down-stream is negotiated: the server offers (Galène), or answers the subscriber's offer (WHEP). */
  #role: 'offerer' | 'answerer' | undefined;
  #tickAt = 0;
  #srAt = 0;
  remb = 0;
  readonly estimator = new DownlinkEstimator();
  readonly prober = new ProbeController();
  #fates: ProbeFates | undefined;
  /** When the current probe stopped sending (0: still sending, or none). */
  #probeEnd = 0;
  #probeAt = 0;
  #probeOwed = 0;
  /** bit/s the next higher layer needs, as the layer choice asked at the last tick (0: no up-switch wanted). */
  #wantProbe = 0;

  constructor(
    readonly engine: NativeEngine,
    options: DownStreamOptions & { source: NativeSource; resume?: SrtpResume | undefined },
    private readonly onClosed: (s: NativeDownStream) => void,
  ) {
    super();
    this.id = options.id;
    this.source = options.source;
    this.#probeAfterMs = engine.options.probeAfterMs;
    this.#request = { ...options.request };
    if (this.source.closed) throw new Error(`down-stream ${this.id}: its source up-stream ${this.source.id} is closed`);
    const describe = (kind: string) => {
      const seen = new Map<string, CodecDescription>();
      for (const t of this.source.tracks) if (t.kind === kind && t.codecDescription) seen.set(`${t.codecDescription.mimeType} ${t.codecDescription.parameters ?? ''}`, t.codecDescription);
      return [...seen.values()];
    };
    this.pc = new RTCPeerConnection({ ...downConfig(engine.options, options.iceServers, describe('audio'), describe('video')), iceFilterStunResponse: engine.mux.marker });
    this.link = new NativeLink(
      engine.mux,
      this.pc,
      () => this.#handedOver(),
      (why) => {
        this.engine.log?.warn({ stream: this.id }, `native media engine: down-stream ${this.id}: ${why}; the stream is closed`);
        this.close();
      },
    );
    this.link.resume = options.resume;
    this.#stream = new MediaStream({ id: this.source.id });
    this.pc.onIceCandidate.subscribe((c) => {
      if (c?.candidate) this.emit('candidate', toCandidate(c.toJSON()));
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (this.#closed) return;
      // A resumed transport never finishes werift's DTLS: it is connected once it has the keys (onTimer).
      if (this.link.resume && state !== 'failed' && state !== 'closed') return;
      this.#state = state;
      this.emit('state', state);
      if (state === 'connected') this.#tick(Date.now());
      if (state === 'failed') this.close();
    });
    this.source.downs.add(this);
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

  #wanted(t: NativeUpTrack): boolean {
    return t.kind === 'audio' ? this.#request.audio : this.#request.video !== 'none';
  }

  async offer(options: { iceRestart?: boolean } = {}): Promise<string> {
    if (this.#closed) throw new Error(`down-stream ${this.id} is closed; no offer can be made`);
    if (this.#role === 'answerer') throw new Error(`down-stream ${this.id} answers its subscriber's offers; it cannot make one`);
    this.#role = 'offerer';
    for (const up of this.source.tracks) {
      if (this.#tracks.has(up.id) || !this.#wanted(up) || !up.codecDescription) continue;
      const transceiver = this.pc.addTransceiver(up.kind, { direction: 'sendonly', streams: [this.#stream] });
      this.#tracks.set(up.id, new NativeDownTrack(up, transceiver.sender, this, this.#probeAfterMs));
    }
    const offer = await this.pc.createOffer(options.iceRestart ? { iceRestart: true } : {});
    await this.pc.setLocalDescription(offer);
    holdEarlyDtls(this.pc);
    this.link.hook();
    return this.pc.localDescription!.sdp;
  }

  async answer(offerSdp: string): Promise<string> {
    if (this.#closed) throw new Error(`down-stream ${this.id} is closed; the offer cannot be answered`);
    if (this.#role === 'offerer') throw new Error(`down-stream ${this.id} makes its own offers; it cannot answer one`);
    this.#role = 'answerer';
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    preferDtlsServer(this.pc, offerSdp);
    holdEarlyDtls(this.pc);
    this.link.hook();
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
      this.#tracks.set(up.id, new NativeDownTrack(up, transceiver.sender, this, this.#probeAfterMs));
    }
    if (this.#tracks.size === 0) throw new Error(`down-stream ${this.id}: the offer has no audio or video m-line for what stream ${this.source.id} sends`);
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    holdEarlyDtls(this.pc);
    this.link.hook();
    this.#configure();
    this.#tick(Date.now());
    return this.pc.localDescription!.sdp;
  }

  async setAnswer(answerSdp: string): Promise<void> {
    if (this.#closed) return;
    if (this.link.resume) answerSdp = withoutGeneration(answerSdp);
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
    holdEarlyDtls(this.pc);
    this.link.hook();
    this.#configure();
    this.#tick(Date.now());
  }

  /** Makes the plane's down-tracks for the negotiated senders (once the transport is handed over). */
  #configure(): void {
    const s = this.link.session;
    if (!s) return;
    for (const t of this.#tracks.values()) {
      if (t.planeId || !t.up.planeId) continue;
      const codec = t.sender.codec;
      if (!codec) continue;
      const exts = (t.sender as unknown as { headerExtensions?: { uri: string; id: number }[] }).headerExtensions;
      const twcc = exts?.find((e) => e.uri === TWCC_URI)?.id ?? 0;
      // NACKs answered on the RTX stream (RFC 4588) when the subscriber accepted it (werift sets rtxPayloadType from the answer's apt)
      const rtxPt = t.up.kind === 'video' ? (t.sender as unknown as { rtxPayloadType?: number }).rtxPayloadType : undefined;
      const rtx: [number, number] | [] = rtxPt !== undefined && t.sender.rtxSsrc ? [t.sender.rtxSsrc >>> 0, rtxPt] : [];
      t.planeId = this.engine.plane.createDown(s.id, t.up.planeId, t.sender.ssrc >>> 0, codec.payloadType, twcc <= 14 ? twcc : 0, ...rtx);
      if (t.planeId) {
        this.engine.downTracks.set(t.planeId, t);
        t.target = -1;
        t.rtx = rtx.length > 0;
      }
    }
  }

  #handedOver(): void {
    this.engine.sessions.set(this.link.session!.id, this);
    this.#configure();
  }

  /** The engine's 20 ms timer. */
  onTimer(now: number): void {
    if (!this.#closed && this.link.resumePending()) {
      this.#state = 'connected';
      this.emit('state', 'connected');
      this.#tick(now);
    }
    if (this.#closed || !this.link.keyed) return;
    this.link.tick();
    if (now - this.#tickAt >= TICK_MS) this.#tick(now);
    if (this.prober.sending) this.#sendProbe(now);
    if (now - this.#srAt >= SR_SYNC_MS) {
      this.#srAt = now;
      for (const t of this.#tracks.values()) {
        t.sample(now);
        t.syncSenderReport();
      }
    }
  }

  /** The subscriber's bandwidth as its feedback shows it now. */
  estimate(now = Date.now()): BandwidthEstimate & { available: number } {
    const t = this.twcc.estimate(now);
    const fresh = t.lastFeedback > 0 && now - t.lastFeedback < TWCC_STALE_MS;
    const delivered = fresh ? t.delivered : 0;
    return { remb: this.remb, delivered, loss: fresh ? t.loss : 0, queueDelay: fresh ? t.queueDelay : 0, available: this.remb || delivered };
  }

  /** Probes need the plane's padding on an RTX stream: a video track the subscriber accepted RTX for. */
  #canProbe(): boolean {
    for (const t of this.#tracks.values()) if (t.up.kind === 'video' && t.rtx && t.planeId) return true;
    return false;
  }

  /**
   * Every TICK_MS: the down-link estimate (media/quality/downlink.ts) from
   * the feedback, the probe's progress or verdict, then each track's layer,
   * as the werift engine's down-stream does. Without RTX (no probe traffic
   * possible) the estimate is not used for the layer choice, which then
   * retries the higher layer on its timer: an estimate that can only grow to
   * 1.5 times what is delivered would keep it on the low layer for good.
   */
  #tick(now: number): void {
    if (this.#closed) return;
    this.#tickAt = now;
    if (!this.link.keyed) return;
    this.#configure();
    const e = this.estimate(now);
    const sample: LinkSample = { delivered: e.delivered, loss: e.loss, queueDelay: e.queueDelay };
    // the 1-s window holds a probe's traffic until a second after it stopped: no growth on it
    this.estimator.update(sample, now, this.prober.probing || (this.#probeEnd > 0 && now - this.#probeEnd < PROBE_WINDOW_MS));
    let audio = 0;
    for (const t of this.#tracks.values()) {
      t.sample(now);
      if (t.up.kind === 'audio' && t.target >= 0) audio += t.meter.rate(now);
    }
    const probes = this.#canProbe();
    const outcome = probes || this.prober.probing ? this.prober.tick(probes && this.#wantProbe > 0 ? this.#wantProbe + audio : 0, sample, now, this.#probeMeasure(now)) : undefined;
    if (outcome?.kind === 'started') this.#startProbe(now);
    else if (outcome) this.#probeEnd ||= now;
    if (this.prober.probing && !this.prober.sending && this.#probeEnd === 0) this.#probeEnd = now;
    if (outcome?.kind === 'succeeded') this.estimator.probed(outcome.delivered);
    // the link dropped what the probe sent over what it sustains: that is the estimate now
    if (outcome?.kind === 'failed' && outcome.measured && outcome.loss > PROBE_LOSS) this.estimator.sustained(outcome.delivered);
    const estimate: BandwidthEstimate = {
      remb: e.remb > 0 ? Math.max(1, e.remb - audio) : 0,
      delivered: e.delivered > 0 ? Math.max(1, e.delivered - audio) : 0,
      loss: e.loss,
      queueDelay: e.queueDelay,
      link: probes && this.estimator.estimate > 0 ? Math.max(1, this.estimator.estimate - audio) : 0,
      probed: outcome?.kind === 'succeeded',
    };
    if (process.env.ATRIUM_MEDIA_DEBUG && (outcome || now % 1000 < TICK_MS)) {
      const v = [...this.#tracks.values()].find((t) => t.up.kind === 'video');
      console.error(
        `[q native ${this.id}] del ${Math.round(e.delivered / 1000)}k loss ${e.loss.toFixed(2)} q ${Math.round(e.queueDelay)} est ${Math.round(this.estimator.estimate / 1000)}k want ${Math.round(this.#wantProbe / 1000)}k rates ${v?.up.layerRates(now).map((r) => Math.round(r / 1000))} cur ${v?.current} ${outcome ? JSON.stringify(outcome) : ''}`,
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

  /** The session's last transport-wide sequence number sent (the plane numbers every packet). */
  #twccSeq(): number {
    const s = this.link.session ? this.engine.plane.sessionStats(this.link.session.id) : null;
    return s ? s[SESSION.twccSeq]! : 0;
  }

  #startProbe(now: number): void {
    this.#probeAt = now;
    this.#probeOwed = 0;
    this.#probeEnd = 0;
    this.#fates = new ProbeFates((this.#twccSeq() + 1) & 0xffff);
  }

  /** The fates of the current probe's packets so far (undefined: no probe running). */
  #probeMeasure(now: number): ProbeMeasure | undefined {
    const f = this.#fates;
    if (!this.prober.probing || !f) return undefined;
    const start = this.prober.startedAt;
    return f.measure(start, start + PROBE_MS / 2, this.#probeEnd || now);
  }

  /** One slice of probe traffic (the engine's 20 ms timer), on the first video track being forwarded. */
  #sendProbe(now: number): void {
    const f = this.#fates;
    if (!f) return;
    const elapsed = Math.min(100, now - this.#probeAt);
    this.#probeAt = now;
    let sending = 0;
    let video: NativeDownTrack | undefined;
    for (const t of this.#tracks.values()) {
      if (t.target < 0) continue;
      sending += t.meter.rate(now);
      if (t.up.kind === 'video' && t.rtx && t.current >= 0 && t.planeId) video ??= t;
    }
    // what a slice could not send is owed to the next, up to 100 ms of it
    this.#probeOwed = Math.min(this.prober.budget(sending, 100), this.#probeOwed + this.prober.budget(sending, elapsed));
    if (video && this.#probeOwed > 0) {
      const count = Math.min(PROBE_BURST, Math.ceil(this.#probeOwed / PROBE_PACKET_BYTES));
      const sent = Math.max(0, this.engine.plane.probe(video.planeId, count, PROBE_PADDING));
      this.#probeOwed = Math.max(0, this.#probeOwed - sent * PROBE_PACKET_BYTES);
    }
    // the packets numbered so far are the probe's; those from the middle on are its late half
    const seq = this.#twccSeq();
    if (f.mid < 0 && now - this.prober.startedAt >= PROBE_MS / 2) f.mid = (seq + 1) & 0xffff;
    f.last = seq;
  }

  /** Resolved transport-cc feedback from the plane: (seq u16, size u16, sent ms f64, arrival µs f64 | -1) records. */
  onTwccReports(b: Buffer, at: number, count: number, now: number): void {
    const batch = this.twcc.beginFeedback(now);
    const fates = this.prober.probing ? this.#fates : undefined;
    for (let k = 0, o = at; k < count; k++, o += 20) {
      const size = b.readUInt16LE(o + 2);
      const arrival = b.readDoubleLE(o + 12);
      this.twcc.report(batch, size, b.readDoubleLE(o + 4), arrival);
      fates?.report(b.readUInt16LE(o), size, arrival);
    }
    this.twcc.endFeedback(batch, now);
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate?.candidate) return;
    await this.pc.addIceCandidate(fromCandidate(this.link.resume ? { ...candidate, candidate: withoutGeneration(candidate.candidate) } : candidate));
  }

  setRequest(request: DownRequest): void {
    this.#request = { ...request };
    const missing = this.source.tracks.some((t) => this.#wanted(t) && !this.#tracks.has(t.id));
    this.#tick(Date.now());
    if (missing) this.emit('renegotiate');
  }

  upTrackEnded(): void {
    if (this.source.closed) this.close();
  }

  async stats(): Promise<StreamStats> {
    const s: StreamStats = { id: this.id, state: this.#state, tracks: [...this.#tracks.values()].map((t) => t.trackStats()) };
    const available = this.estimator.estimate || this.estimate().available;
    if (available > 0) s.availableBitrate = Math.round(available);
    s.probes = { ...this.prober.counters };
    return s;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#tracks.values()) t.detach();
    this.source.downs.delete(this);
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
