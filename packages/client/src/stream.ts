// A Stream is a set of related tracks carried by one peer connection to the
// server: "up" when this page sends it, "down" when the server pushes it.
// Negotiation is hidden in a Negotiator; the Stream adds the Galène-shaped
// surface (label, source, callbacks, stats, close/abort, ICE restart).
import type { ClientFrame } from '@atrium/protocol/galene';
import { AtriumClientError, describeError } from './errors.ts';
import { Negotiator, candidateForWire } from './negotiator.ts';
import type { ServerConnection } from './server-connection.ts';
import { type StreamStats, computeStats, sampleStats } from './stats.ts';

/** What a down-stream may carry: `requestStream` values. */
export type MediaKind = 'audio' | 'video' | 'video-low';

/**
 * The stream's health, from the peer connection: ICE states, and `failed`
 * also when DTLS fails. `connected` and `completed` mean media flows.
 */
export type StreamStatus = RTCIceConnectionState;

/** The low simulcast layer's bit rate, as in Galène's client. */
export const SIMULCAST_LOW_RATE = 100_000;

export interface AddTrackOptions {
  /** Send video as two rid layers, high first, the low one at about 100 kbit/s. */
  simulcast?: boolean;
  /** Cap of the (high) video encoding, in bits per second. */
  maxBitrate?: number;
  /** How much smaller the low layer is in each dimension (default 2). */
  lowScale?: number;
}

/** Send encodings for simulcast: `h` (full size) then `l` (smaller, ~100 kbit/s). */
export function simulcastEncodings(options: { maxBitrate?: number; lowScale?: number } = {}): RTCRtpEncodingParameters[] {
  const high: RTCRtpEncodingParameters = { rid: 'h' };
  if (options.maxBitrate !== undefined) high.maxBitrate = options.maxBitrate;
  return [high, { rid: 'l', scaleResolutionDownBy: options.lowScale ?? 2, maxBitrate: SIMULCAST_LOW_RATE }];
}

/** What a stream needs from its ServerConnection; not part of the public API. */
export interface StreamHost {
  readonly connection: ServerConnection;
  /** Whether stream signalling can flow (socket open and group joined). */
  canSignal(): boolean;
  /** Sends a message; throws if the socket is not open. */
  send(message: ClientFrame): void;
  /** The stream closed: forget it and update the user's stream list. */
  closed(stream: Stream): void;
  /** The stream's tracks changed: update the user's stream list. */
  tracksChanged(stream: Stream): void;
}

export interface StreamInit {
  id: string;
  localId: string;
  up: boolean;
  pc: RTCPeerConnection;
}

export class Stream {
  /** The id the server and the other clients know this stream by. */
  readonly id: string;
  /** An id local to this page; kept by a stream that replaces another. */
  readonly localId: string;
  /** True for a stream this page sends, false for one it receives. */
  readonly up: boolean;
  /**
   * The peer connection carrying the stream. Add tracks to it (up-streams);
   * negotiation starts by itself. After a reconnection an up-stream gets a
   * new peer connection carrying the same tracks.
   */
  pc: RTCPeerConnection;
  /** The tracks as a MediaStream (up: pass it to `pc.addTrack`; down: what arrived). */
  stream: MediaStream;
  /** `camera`, `screenshare` or `video`. */
  label: string;
  /** Down-streams: the id of the client that sends it. */
  source: string | null = null;
  /** Down-streams: the username of the client that sends it. */
  username: string | null = null;
  /** Up-streams: the id of the stream this one replaces, until the first offer says so. */
  replace: string | null = null;
  /** The last statistics, see `setStatsInterval`. */
  stats: StreamStats = {};
  /** Free for the application; the SDK does not touch it. */
  userdata: Record<string, unknown> = {};

  /** The stream was closed; `replace` is true when a new stream with the same localId takes over. */
  onclose: ((this: Stream, replace: boolean) => void) | null = null;
  /** Something failed; the stream is closed afterwards when it cannot recover. */
  onerror: ((this: Stream, error: unknown) => void) | null = null;
  /** Down-streams: a track arrived. */
  ondowntrack: ((this: Stream, track: MediaStreamTrack, transceiver: RTCRtpTransceiver, stream: MediaStream) => void) | null = null;
  /** The connection's status changed. */
  onstatus: ((this: Stream, status: StreamStatus) => void) | null = null;
  /** New statistics, every `setStatsInterval` milliseconds. */
  onstats: ((this: Stream, stats: StreamStats) => void) | null = null;
  /** A round of (re)negotiation completed. */
  onnegotiationcompleted: ((this: Stream) => void) | null = null;

  private host: StreamHost | null;
  private negotiator: Negotiator;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private status: StreamStatus | null = null;
  private detachPc: () => void = () => {};

  /** Streams are made by `ServerConnection.newUpStream` and by offers from the server. */
  constructor(host: StreamHost, init: StreamInit) {
    this.host = host;
    this.id = init.id;
    this.localId = init.localId;
    this.up = init.up;
    this.pc = init.pc;
    this.label = init.up ? 'camera' : '';
    this.stream = new MediaStream();
    this.negotiator = this.attach(init.pc);
  }

  /** The ServerConnection this stream belongs to; null once closed. */
  get sc(): ServerConnection | null {
    return this.host?.connection ?? null;
  }

  get closed(): boolean {
    return this.host === null;
  }

  /** Whether an offer or answer for this stream has been sent to the server. */
  get localDescriptionSent(): boolean {
    return this.negotiator.localDescriptionSent;
  }

  /**
   * Up-streams: adds a track to send, optionally as simulcast (high layer
   * first, then a low layer of about 100 kbit/s). Same as
   * `pc.addTrack(track, stream)` when no option is given.
   */
  addTrack(track: MediaStreamTrack, options: AddTrackOptions = {}): RTCRtpTransceiver {
    if (!this.up) throw new AtriumClientError('bad-argument', 'tracks are only added to up-streams');
    if (!this.stream.getTracks().includes(track)) this.stream.addTrack(track);
    const init: RTCRtpTransceiverInit = { direction: 'sendonly', streams: [this.stream] };
    if (track.kind === 'video') {
      if (options.simulcast) init.sendEncodings = simulcastEncodings(options);
      else if (options.maxBitrate !== undefined) init.sendEncodings = [{ maxBitrate: options.maxBitrate }];
    }
    return this.pc.addTransceiver(track, init);
  }

  /** Up-streams: sets the MediaStream the tracks belong to. */
  setStream(stream: MediaStream): void {
    this.stream = stream;
    this.host?.tracksChanged(this);
  }

  /**
   * Closes the stream. Up-streams: may be called at any time; the server is
   * told. Down-streams: called when the server closes them (use `abort` to
   * ask for that).
   */
  close(replace = false): void {
    const host = this.host;
    if (!host) return;
    this.setStatsInterval(0);
    this.negotiator.close();
    this.detachPc();
    this.pc.close();
    if (this.up && !replace && this.negotiator.localDescriptionSent && host.canSignal()) {
      try {
        host.send({ type: 'close', id: this.id });
      } catch {
        /* the server forgets the stream with the connection anyway */
      }
    }
    host.closed(this);
    this.host = null;
    this.call(this.onclose, replace);
  }

  /** Down-streams: asks the server to stop sending this stream. */
  abort(): void {
    if (this.up) throw new AtriumClientError('bad-argument', 'abort is for down-streams; close an up-stream instead');
    this.host?.send({ type: 'abort', id: this.id });
  }

  /**
   * Restarts ICE. Up-streams: renegotiates with new ICE credentials (done by
   * itself when ICE fails). Down-streams: asks the server to do so.
   */
  restartIce(): void {
    const host = this.host;
    if (!host) return;
    if (this.up) this.negotiator.restartIce();
    else if (host.canSignal()) host.send({ type: 'renegotiate', id: this.id });
  }

  /**
   * Down-streams: what this stream should carry, overriding
   * `ServerConnection.request`; null goes back to what that asks for this
   * stream's label (Galène's client does so when a video grows again).
   */
  request(what: MediaKind[] | null): void {
    if (this.up) throw new AtriumClientError('bad-argument', 'request is for down-streams');
    this.host?.send({ type: 'requestStream', id: this.id, request: what });
  }

  /** Computes `stats` and calls `onstats` every `ms` milliseconds; 0 stops. */
  setStatsInterval(ms: number): void {
    if (this.statsTimer !== null) {
      clearInterval(this.statsTimer);
      this.statsTimer = null;
    }
    if (!(ms > 0) || this.closed) return;
    this.statsTimer = setInterval(() => void this.updateStats(), ms);
  }

  /** Recomputes `stats` now and calls `onstats`. */
  async updateStats(): Promise<void> {
    if (this.closed) return;
    const samples = await sampleStats(this.pc).catch(() => []);
    if (this.closed) return;
    this.stats = computeStats(this.stats, samples);
    this.call(this.onstats, this.stats);
  }

  // -------------------------------------------------------------------
  // Used by ServerConnection.

  /** @internal Up-streams: negotiate now if something waited for signalling. */
  resume(): void {
    this.negotiator.resume();
  }

  /** @internal Up-streams: the server's answer. */
  gotAnswer(sdp: string): void {
    this.negotiator.remoteAnswer(sdp).catch((e) => {
      this.fail(new AtriumClientError('negotiation', `the server's answer for stream ${this.id} could not be applied: ${describeError(e)}`, { cause: e }));
    });
  }

  /** @internal Down-streams: an offer from the server (new or renegotiation). */
  gotOffer(sdp: string): void {
    this.negotiator.remoteOffer(sdp).catch((e) => {
      this.call(this.onerror, new AtriumClientError('negotiation', `the server's offer for stream ${this.id} could not be answered: ${describeError(e)}`, { cause: e }));
      try {
        this.abort();
      } catch {
        /* the socket is gone; so is the stream */
      }
    });
  }

  /** @internal A remote ICE candidate. */
  gotCandidate(candidate: RTCIceCandidateInit): void {
    this.negotiator.remoteCandidate(candidate);
  }

  /**
   * @internal Up-streams, after a reconnection: moves the tracks (with their
   * encodings) to a new peer connection and offers them to the server again.
   */
  restore(pc: RTCPeerConnection): void {
    if (!this.host) {
      pc.close();
      return;
    }
    const old = this.pc;
    for (const t of old.getTransceivers()) {
      const track = t.sender.track;
      if (!track || t.currentDirection === 'stopped' || t.direction === 'inactive' || t.direction === 'stopped') continue;
      const init: RTCRtpTransceiverInit = { direction: 'sendonly', streams: [this.stream] };
      const encodings = copyEncodings(track.kind, t.sender.getParameters().encodings);
      if (encodings) init.sendEncodings = encodings;
      pc.addTransceiver(track, init);
    }
    this.negotiator.close();
    this.detachPc();
    old.close();
    this.replace = null;
    this.status = null;
    this.pc = pc;
    this.negotiator = this.attach(pc);
  }

  // -------------------------------------------------------------------

  private attach(pc: RTCPeerConnection): Negotiator {
    const negotiator = new Negotiator(
      pc,
      this.up ? 'offerer' : 'answerer',
      {
        canSend: () => this.host?.canSignal() ?? false,
        sendDescription: (type, sdp) => this.sendDescription(type, sdp),
        sendCandidate: (candidate) => this.host?.send({ type: 'ice', id: this.id, candidate: candidateForWire(candidate) }),
      },
      {
        onerror: (e) => this.fail(new AtriumClientError('negotiation', `negotiating stream ${this.id} failed: ${describeError(e)}`, { cause: e })),
        onnegotiated: () => {
          if (this.up) this.host?.tracksChanged(this);
          this.call(this.onnegotiationcompleted);
        },
      },
    );
    const onState = () => this.statusChanged(pc);
    const onTrack = (e: RTCTrackEvent) => this.gotTrack(e);
    pc.addEventListener('iceconnectionstatechange', onState);
    pc.addEventListener('connectionstatechange', onState);
    if (!this.up) pc.addEventListener('track', onTrack);
    this.detachPc = () => {
      pc.removeEventListener('iceconnectionstatechange', onState);
      pc.removeEventListener('connectionstatechange', onState);
      pc.removeEventListener('track', onTrack);
    };
    return negotiator;
  }

  private sendDescription(type: 'offer' | 'answer', sdp: string): void {
    const host = this.host;
    if (!host) return;
    if (type === 'answer') {
      host.send({ type: 'answer', id: this.id, sdp });
      return;
    }
    const sc = host.connection;
    // As Galène's client: `replace` is always there, null unless this stream replaces another.
    const offer: ClientFrame = { type: 'offer', id: this.id, label: this.label, source: sc.id, sdp, replace: this.replace };
    if (sc.username !== null) offer.username = sc.username;
    host.send(offer);
    this.replace = null;
  }

  private statusChanged(pc: RTCPeerConnection): void {
    if (pc !== this.pc || this.closed) return;
    const status: StreamStatus = pc.connectionState === 'failed' ? 'failed' : pc.iceConnectionState;
    if (status === this.status) return;
    this.status = status;
    this.call(this.onstatus, status);
    if (status === 'failed') this.restartIce();
  }

  private gotTrack(e: RTCTrackEvent): void {
    if (this.closed) return;
    const given = e.streams[0];
    if (given) this.stream = given;
    else if (!this.stream.getTracks().includes(e.track)) this.stream.addTrack(e.track);
    this.host?.tracksChanged(this);
    this.call(this.ondowntrack, e.track, e.transceiver, this.stream);
  }

  private fail(error: unknown): void {
    if (this.closed) return;
    this.call(this.onerror, error);
    this.close();
  }

  /** Calls an application callback; what it throws is logged, never thrown into the SDK. */
  private call<A extends unknown[]>(cb: ((this: Stream, ...args: A) => void) | null, ...args: A): void {
    if (!cb) return;
    try {
      cb.apply(this, args);
    } catch (e) {
      console.error('atrium: a Stream callback threw:', e);
    }
  }
}

/** The settable parts of a sender's encodings, to send the same layers again. */
function copyEncodings(kind: string, encodings: readonly RTCRtpEncodingParameters[] | undefined): RTCRtpEncodingParameters[] | undefined {
  if (!encodings || encodings.length === 0) return undefined;
  return encodings.map((e) => {
    const c: RTCRtpEncodingParameters = {};
    if (e.rid !== undefined && encodings.length > 1) c.rid = e.rid;
    if (e.active !== undefined) c.active = e.active;
    if (e.maxBitrate !== undefined) c.maxBitrate = e.maxBitrate;
    if (kind === 'video') {
      if (e.maxFramerate !== undefined) c.maxFramerate = e.maxFramerate;
      if (e.scaleResolutionDownBy !== undefined) c.scaleResolutionDownBy = e.scaleResolutionDownBy;
    }
    return c;
  });
}
