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
}

export interface StreamStats {
  id: string;
  state: ConnectionState;
  tracks: TrackStats[];
  /** Down-streams: the subscriber's REMB in bit/s, else the throughput its TWCC feedback confirms; absent when unknown. */
  availableBitrate?: number;
}

export interface UpTrack {
  /** Stable within the up-stream (the mid of its m-line). */
  readonly id: string;
  readonly kind: TrackKind;
  /** Negotiated codec (known once the answer is made). */
  readonly codec: CodecName | undefined;
  /** Simulcast rids, highest first; empty when the publisher sends one encoding. */
  readonly layers: readonly string[];
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
  setAnswer(answerSdp: string): Promise<void>;
  addIceCandidate(candidate: IceCandidate | null): Promise<void>;
  /** Changes what is forwarded; may emit 'renegotiate' when a track must be added. */
  setRequest(request: DownRequest): void;
  stats(): Promise<StreamStats>;
  close(): void;
}

export interface MediaEngine {
  readonly name: string;
  createUpStream(options: UpStreamOptions): UpStream;
  createDownStream(options: DownStreamOptions): DownStream;
  /** Closes every stream. */
  close(): void;
}
