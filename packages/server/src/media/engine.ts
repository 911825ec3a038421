// The boundary of the SFU media plane. Everything here is engine-neutral:
// no type of any WebRTC library appears, so that the Galène dialect (and
// WHIP, the recorder…) can drive werift today and a faster engine later.
//
// Vocabulary (as in Galène): an up-stream is what one publisher sends over
// one peer connection (the publisher offers, sendonly); its up-tracks are
// the audio and video tracks in it, a simulcast up-track having several
// layers. A down-stream is what one subscriber receives of one up-stream
// over its own peer connection (the SERVER offers); its down-tracks are fed
// from the up-tracks, each rewriting SSRC, payload type, sequence numbers
// and timestamps so that layer switches are seamless.

export type TrackKind = 'audio' | 'video';

/** Codecs the engine forwards. */
export type CodecName = 'vp8' | 'vp9' | 'h264' | 'opus';

export const ALL_CODECS: readonly CodecName[] = ['vp8', 'vp9', 'h264', 'opus'];

/** Same shape as the browser's RTCIceServer. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** Same shape as the browser's RTCIceCandidateInit. */
export interface IceCandidate {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

export type ConnectionState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

/** What a subscriber asked for (Galène's `request`: audio, video, video-low). */
export interface DownRequest {
  audio: boolean;
  /** 'high': the best layer the subscriber's bandwidth allows; 'low': the lowest layer. */
  video: 'high' | 'low' | 'none';
}

/** Typed events: `on` returns the function that removes the listener. */
export interface Emitter<E extends { [K in keyof E]: unknown[] }> {
  on<K extends keyof E>(event: K, listener: (...args: E[K]) => void): () => void;
}

/** Statistics of one direction of one track, over the last second or so. */
export interface TrackStats {
  trackId: string;
  kind: TrackKind;
  codec: CodecName | undefined;
  /** Bits per second (payload), smoothed over about one second. */
  bitrate: number;
  packets: number;
  bytes: number;
  /** Up: packets missing from the publisher's sequence. Down: as reported by the subscriber (RTCP RR). */
  packetsLost: number;
  /** 0..1, over the last report interval. */
  fractionLost: number;
  /** Seconds (RFC 3550 interarrival jitter). */
  jitter: number;
  /** Audio only: 0..1 linear level from the RFC 6464 header extension (recent peak); undefined without it. */
  audioLevel?: number;
  /** Simulcast up-track: rid of each layer, highest first, with its own stats. */
  layers?: { rid: string; bitrate: number; packets: number; width?: number }[];
  /** Down video: rid of the layer being forwarded (undefined when not simulcast). */
  layer?: string;
  /** Keyframe requests: up = PLIs sent to the publisher, down = PLI/FIR received from the subscriber. */
  keyframeRequests: number;
  /** NACKed packets: up = asked of the publisher, down = asked by the subscriber. */
  nacks: number;
  /** Down: packets resent in answer to NACKs (absent when the engine does not count them). */
  retransmitted?: number;
  /** Down video: of those, sent on the RTX stream (RFC 4588) the subscriber accepted. */
  retransmittedRtx?: number;
  /** Down video: second copies of retransmissions, sent when the subscriber's link loses a lot (not in `retransmitted`). */
  retransmittedRedundant?: number;
  /** Up video: packets recovered from the publisher's RTX stream (RFC 4588), forwarded as the packets they repair. */
  rtxRecovered?: number;
  /** Up video: RTX packets that repaired nothing we asked for (the publisher's bandwidth probes, late copies), dropped. */
  rtxUnneeded?: number;
  /** Down video: bytes of bandwidth-probe traffic sent (see media/quality/downlink.ts). */
  probeBytes?: number;
}

export interface StreamStats {
  id: string;
  state: ConnectionState;
  tracks: TrackStats[];
  /**
   * Down-streams: the down-link estimate in bit/s (media/quality/downlink.ts),
   * else the subscriber's REMB, else the throughput its TWCC feedback
   * confirms; absent when unknown.
   */
  availableBitrate?: number;
  /** Down-streams: bandwidth probes before up-switches, and how they ended. */
  probes?: { probes: number; succeeded: number; failed: number };
}

export interface UpTrack {
  /** Stable within the up-stream (the mid of its m-line). */
  readonly id: string;
  readonly kind: TrackKind;
  /** Negotiated codec (known once the answer is made). */
  readonly codec: CodecName | undefined;
  /** The negotiated codec in full (clock rate, channels, fmtp), known with `codec`. */
  readonly parameters: CodecParameters | undefined;
  /** Simulcast rids, highest first; empty when the publisher sends one encoding. */
  readonly layers: readonly string[];
  /**
   * Attaches a sink: from now on the track's packets reach it in batches
   * (see TrackSink) until the tap is detached or the track ends. Any number
   * of taps may be attached; each has its own queue, so a slow sink only
   * loses its own packets. Throws when the up-stream is closed.
   */
  attach(sink: TrackSink, options?: TrackTapOptions): TrackTap;
}

// ---------------------------------------------------------------------------
// The track-level seam. Besides down-streams (a subscriber's peer
// connection), two things plug into the media plane at the level of single
// tracks: a *tap* reads an up-track's RTP packets (the recorder, WHEP
// monitors, a pipe to another node), and a *source stream* is an up-stream
// the server itself feeds with packets (the other end of such a pipe, a
// file played into a group) from which ordinary down-streams are made.
// Both are engine-neutral: packets are plain data, and an engine that runs
// media on other threads or processes moves them across in batches (one
// message per batch, never one per packet). Real-time media cannot wait, so
// back-pressure is a bounded queue per tap or source: what does not fit is
// dropped and counted, a video tap resumes at the next keyframe, and the
// producer learns of it (`dropped`, a `false` from `write`, 'drain').

/** A codec as negotiated: enough for a muxer or a depacketizer. */
export interface CodecParameters {
  name: CodecName;
  /** As in SDP, e.g. 'video/VP8', 'audio/opus'. */
  mimeType: string;
  /** RTP clock rate (90000 for video, 48000 for Opus). */
  clockRate: number;
  /** Audio channels (2 for Opus as negotiated; the stream itself may be mono). */
  channels?: number;
  /** The a=fmtp parameters, e.g. 'profile-level-id=42e01f;packetization-mode=1'. */
  fmtp?: string;
}

/** One RTP packet of an up-track, as a tap delivers it. */
export interface TrackPacket {
  /** Simulcast layer index, 0 the highest (as in UpTrack.layers); 0 without simulcast. */
  layer: number;
  /** As the publisher sent it: each layer has its own sequence space. */
  sequenceNumber: number;
  /** As the publisher sent it: each layer may have its own timestamp base. */
  timestamp: number;
  ssrc: number;
  payloadType: number;
  /** The RTP marker bit: last packet of a video frame. */
  marker: boolean;
  /** First packet of a video keyframe, where a decoder can start (always false for audio). */
  keyframe: boolean;
  /** When the packet reached the server: ms since 1970 (Date.now()'s clock), fractional. */
  arrival: number;
  /** The RTP payload (header and padding removed). Padding-only packets are not delivered. */
  payload: Uint8Array;
}

/** An RTCP sender report of one layer: maps its RTP timestamps to the publisher's wall clock (audio/video sync). */
export interface SenderReport {
  layer: number;
  /** The publisher's wall clock at `rtpTimestamp`: ms since 1970, fractional (NTP time converted). */
  ntpTime: number;
  rtpTimestamp: number;
  /** When the report reached the server (Date.now()'s clock). */
  arrival: number;
}

/** What a tap hands its sink at once. */
export interface PacketBatch {
  /** In arrival order (not reordered: loss and reordering are the sink's business). */
  packets: readonly TrackPacket[];
  /** Sender reports that arrived since the previous batch. */
  senderReports: readonly SenderReport[];
  /** Packets dropped since the previous batch because the sink was behind (see TrackTapOptions.maxQueuedBytes). */
  dropped: number;
}

/** The consumer side of a tap. */
export interface TrackSink {
  /**
   * A batch of packets. The sink may return a promise: until it settles the
   * tap delivers nothing more and queues what arrives (up to
   * maxQueuedBytes), so a sink that writes to disk slows its tap, never the
   * media plane. A sink that throws or rejects is detached and ended.
   */
  packets(batch: PacketBatch): void | Promise<void>;
  /**
   * No more packets will come, called once: 'ended' when the up-track's
   * stream closed, 'detached' after TrackTap.detach(), 'failed' when the
   * sink threw or the engine lost the track (a media worker died).
   */
  end(reason: 'ended' | 'detached' | 'failed'): void;
}

export interface TrackTapOptions {
  /** Layers to deliver (indexes into UpTrack.layers); default every layer. */
  layers?: readonly number[];
  /**
   * Bytes of payload the tap may hold while its sink is busy (default
   * 1 MiB, about 8 s of a 1 Mbit/s video). Past it the queue is dropped and,
   * on a video track, packets are dropped until the next keyframe of their
   * layer, which the tap asks the publisher for.
   */
  maxQueuedBytes?: number;
  /** Longest time a packet waits to be batched, ms (default 20). */
  maxDelayMs?: number;
}

/** An attached sink, as its owner holds it. */
export interface TrackTap {
  readonly track: UpTrack;
  /** Asks the publisher for a keyframe of one layer (or of all), rate-limited like subscribers' requests. */
  requestKeyframe(layer?: number): void;
  /** Changes the layers delivered (undefined: all). */
  setLayers(layers: readonly number[] | undefined): void;
  /** Packets delivered and dropped so far. */
  readonly delivered: number;
  readonly dropped: number;
  /** Stops the packets; the sink's end('detached') is called. Idempotent. */
  detach(): void;
}

/** One track of a source stream. */
export interface SourceTrackOptions {
  /** Stable within the stream (down-streams name it like an up-track's mid). */
  id: string;
  kind: TrackKind;
  codec: CodecParameters;
  /** Simulcast rids, highest first; omit (or empty) for one encoding. */
  layers?: readonly string[];
}

export interface SourceStreamOptions {
  id: string;
  /** Galène label (opaque to the engine). */
  label: string;
  tracks: readonly SourceTrackOptions[];
  /** As for up-streams: the source lives where the streams with this key live. */
  placement?: string;
  /**
   * Bytes of payload write() may hold before the engine has taken them
   * (default 1 MiB); past it write() returns false and drops, until 'drain'.
   */
  maxQueuedBytes?: number;
}

/** A packet written into a source track: the engine numbers nothing, the writer's values are forwarded (rewritten per subscriber as usual). */
export interface SourcePacket {
  /** Layer index, 0 the highest; default 0. */
  layer?: number;
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

export interface SourceStreamEvents {
  /** A subscriber asked for a keyframe of this track and layer: the writer should send one soon. */
  keyframe: [trackId: string, layer: number];
  /** write() returned false earlier and the queue has room again. */
  drain: [];
  close: [];
}

/** An up-stream the server feeds itself (a pipe from another node, a file): see MediaEngine.createSourceStream. */
export interface SourceStream extends Emitter<SourceStreamEvents> {
  readonly id: string;
  /** The up-stream it feeds: use it as the source of down-streams and taps; it has no peer connection (answer() throws). */
  readonly up: UpStream;
  readonly closed: boolean;
  /**
   * Hands packets of one track to the engine (batched across threads).
   * Returns false when they did not all fit in the queue (the rest was
   * dropped): wait for 'drain'.
   */
  write(trackId: string, packets: readonly SourcePacket[]): boolean;
  /** Ends the stream: its up-stream closes with every down-stream and tap fed by it. */
  close(): void;
}

export interface UpStreamOptions {
  id: string;
  /** Galène label: camera, screenshare, video… (opaque to the engine). */
  label: string;
  /** The configured ICE servers (empty in tests); never a public default. */
  iceServers: IceServer[];
  /** Only these codecs are negotiated (default: all of ALL_CODECS). */
  codecs?: CodecName[];
  /**
   * Streams with the same placement key are handled together (the group
   * name): an engine that spreads work over threads keeps them on one, so
   * forwarding never crosses threads. Down-streams follow their source.
   */
  placement?: string;
}

export interface UpStreamEvents {
  /** A local candidate to send to the publisher. */
  candidate: [IceCandidate];
  /** A new up-track appeared (after an answer). */
  track: [UpTrack];
  state: [ConnectionState];
  /**
   * The publisher must restart ICE and send a new offer (answer() it): the
   * server continues the stream elsewhere (a media worker was replaced and
   * kept the stream's DTLS and SRTP state).
   */
  renegotiate: [];
  close: [];
}

export interface UpStream extends Emitter<UpStreamEvents> {
  readonly id: string;
  readonly label: string;
  readonly tracks: readonly UpTrack[];
  readonly state: ConnectionState;
  readonly closed: boolean;
  /** Takes the publisher's offer (first, renegotiation or ICE restart), returns the answer SDP. */
  answer(offerSdp: string): Promise<string>;
  /** A remote candidate; null or '' for end-of-candidates. */
  addIceCandidate(candidate: IceCandidate | null): Promise<void>;
  /** Asks the publisher for a keyframe on every video track (rate-limited). */
  requestKeyframe(): void;
  stats(): Promise<StreamStats>;
  /** Closes the peer connection and every down-stream fed by it. */
  close(): void;
}

export interface DownStreamOptions {
  id: string;
  source: UpStream;
  request: DownRequest;
  iceServers: IceServer[];
}

export interface DownStreamEvents {
  candidate: [IceCandidate];
  state: [ConnectionState];
  /** The stream needs a new offer (a newly requested kind, or the source gained a track): call offer() again. */
  renegotiate: [];
  close: [];
}

export interface DownStream extends Emitter<DownStreamEvents> {
  readonly id: string;
  readonly source: UpStream;
  readonly request: DownRequest;
  readonly state: ConnectionState;
  readonly closed: boolean;
  /** Creates the server's offer (first, renegotiation, or ICE restart). */
  offer(options?: { iceRestart?: boolean }): Promise<string>;
  /**
   * The other way round (WHEP): takes the subscriber's offer (recvonly
   * m-lines; first, or an ICE restart) and returns the server's answer,
   * each of the source's wanted tracks sent on the matching m-line. A
   * down-stream is negotiated one way or the other, never both.
   */
  answer(offerSdp: string): Promise<string>;
  setAnswer(answerSdp: string): Promise<void>;
  addIceCandidate(candidate: IceCandidate | null): Promise<void>;
  /** Changes what is forwarded; may emit 'renegotiate' when a track must be added. */
  setRequest(request: DownRequest): void;
  stats(): Promise<StreamStats>;
  close(): void;
}

// ---------------------------------------------------------------------------
// Bundle sessions. Jitsi's clients (lib-jitsi-meet) keep ONE peer connection
// with the focus for a whole conference: the server offers it once, and from
// then on sources come and go by signalling alone (Jingle source-add and
// source-remove), which the client applies to its copy of the remote SDP and
// answers locally. So the server must start sending a new SSRC on a
// transport it already has, and take the client's own sources from that
// same transport, with no new answer. A bundle session is that transport. It
// is built on the track-level seam: what it sends comes from taps of
// up-tracks, what it receives is written into a source stream, so it works
// with whatever engine carries the up-streams.

export interface BundleSessionOptions {
  id: string;
  iceServers: IceServer[];
  /** Where the source streams it feeds live (the group's name), as for up-streams. */
  placement?: string;
}

/** An up-track being sent to the remote end. */
export interface BundleSend {
  /** The SSRC the remote end sees it under (what a source-add announces). */
  readonly ssrc: number;
  readonly kind: TrackKind;
  readonly track: UpTrack;
  /** Packets sent so far. */
  readonly packets: number;
  /** Index of the simulcast layer forwarded now (into track.layers; 0 without simulcast, -1 none yet or none wanted). */
  readonly layer: number;
  /**
   * Video: which layer to forward ('high' the highest, 'low' the lowest,
   * each falling back to the nearest that carries media; 'none' nothing).
   * Default 'high'. The switch is made at a keyframe of the new layer
   * (asked of the publisher); the SSRC stays, the receiver sees one stream.
   */
  setVideo(video: DownRequest['video']): void;
  /** This direction's statistics, as a down-track's (NACKs asked and answered, the receiver's reports). */
  stats(): TrackStats;
  /** Stops sending it (the tap is detached). */
  stop(): void;
}

/** One track of the remote end's sources, as its signalling declares it. */
export interface BundleReceiveTrack {
  /** Stable within the stream. */
  id: string;
  kind: TrackKind;
  /** The SSRC of each layer, highest first (one SSRC without simulcast). */
  ssrcs: readonly number[];
}

export interface BundleSessionEvents {
  candidate: [IceCandidate];
  state: [ConnectionState];
  close: [];
}

export interface BundleSession extends Emitter<BundleSessionEvents> {
  readonly id: string;
  readonly state: ConnectionState;
  readonly closed: boolean;
  /** The server's offer: one audio and one video m-line, each sending and receiving, with no sources of its own. */
  offer(): Promise<string>;
  setAnswer(answerSdp: string): Promise<void>;
  addIceCandidate(candidate: IceCandidate | null): Promise<void>;
  /** Starts sending an up-track (its highest layer until BundleSend.setVideo says otherwise) under a new SSRC: no renegotiation, the caller announces the SSRC. */
  send(track: UpTrack): BundleSend;
  /** What it sends now. */
  sends(): readonly BundleSend[];
  /** The remote end's bandwidth estimate for what it receives (REMB, bit/s; 0 when it sends none). */
  readonly availableBitrate: number;
  /**
   * Takes what the remote end sends with these SSRCs as a stream of its own:
   * the returned up-stream (a source stream's) is published like any other.
   * Only after setAnswer (the codecs are the negotiated ones).
   */
  receive(options: { id: string; label: string; tracks: readonly BundleReceiveTrack[] }): SourceStream;
  close(): void;
}

export interface MediaEngine {
  readonly name: string;
  createUpStream(options: UpStreamOptions): UpStream;
  createDownStream(options: DownStreamOptions): DownStream;
  /** An up-stream fed by the server with write(); its `up` works as a source of down-streams and taps like any other. */
  createSourceStream(options: SourceStreamOptions): SourceStream;
  /** A bundle session (see above); absent on an engine that cannot make one, and a dialect that needs one says so. */
  createBundleSession?(options: BundleSessionOptions): BundleSession;
  /** Closes every stream. */
  close(): void;
}
