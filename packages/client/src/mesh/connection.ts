// A ManagedConnection is our RTCPeerConnection to one peer of a pool, with
// negotiation handled inside (negotiator.ts): the application adds and
// removes tracks, opens data channels and listens for the peer's tracks and
// channels; offers, answers and candidates are none of its business. The
// Pool makes them and closes them.
import type { Description } from '@atrium/protocol/rtcpool';
import { TypedEmitter } from '../emitter.ts';
import { MeshError } from './errors.ts';
import { type NegotiationSignals, type NegotiationStats, PerfectNegotiator } from './negotiator.ts';

/** A track the peer sends us. */
export interface RemoteTrack {
  track: MediaStreamTrack;
  streams: readonly MediaStream[];
  receiver: RTCRtpReceiver;
  transceiver: RTCRtpTransceiver;
}

/** Why a connection closed. */
export type CloseReason =
  /** The peer left the pool (or its signalling went away). */
  | 'left'
  /** The peer closed its connection to us (Camus `bye`). */
  | 'bye'
  /** We closed it (`close()`). */
  | 'closed'
  /** Our pool ended (we left, or the server stopped it). */
  | 'ended';

export interface ConnectionEvents {
  track: [event: RemoteTrack];
  datachannel: [channel: RTCDataChannel];
  /** A round of offer and answer completed; the connection is `stable`. */
  negotiated: [];
  /** The connection state changed (new, connecting, connected, disconnected, failed, closed). */
  statechange: [state: RTCPeerConnectionState];
  describe: [description: Description];
  close: [reason: CloseReason];
}

/** What the pool gives a connection it makes (not for applications). */
export interface ConnectionInternals {
  pc: RTCPeerConnection;
  polite: boolean;
  description: Description;
  /** Carries our descriptions and candidates to the peer. */
  signals: NegotiationSignals;
  /** Negotiation went wrong somewhere (the connection goes on). */
  onerror(error: unknown): void;
  /** Called once, when the connection closes for any reason. */
  onclose(reason: CloseReason): void;
}

export class ManagedConnection extends TypedEmitter<ConnectionEvents> {
  private readonly pc: RTCPeerConnection;
  private readonly negotiator: PerfectNegotiator;
  private readonly onclose: (reason: CloseReason) => void;
  private desc: Description;
  private readonly remote: RemoteTrack[] = [];
  /** Receiver tracks a `track` event was emitted for. */
  private readonly announced = new WeakSet<MediaStreamTrack>();
  private late = 0;
  private isClosed = false;

  /** Made by a Pool; applications get connections from the pool's events and `connections`. */
  constructor(
    /** The peer's id in the pool. */
    readonly id: string,
    internals: ConnectionInternals,
  ) {
    super();
    this.pc = internals.pc;
    this.negotiator = new PerfectNegotiator(internals.pc, internals.polite, internals.signals, {
      error: (e) => internals.onerror(e),
      negotiated: () => {
        this.announceMissedTracks();
        this.emit('negotiated');
      },
    });
    this.desc = internals.description;
    this.onclose = internals.onclose;
    this.pc.addEventListener('track', (e: RTCTrackEvent) => this.announce({ track: e.track, streams: e.streams, receiver: e.receiver, transceiver: e.transceiver }));
    this.pc.addEventListener('datachannel', (e: RTCDataChannelEvent) => this.emit('datachannel', e.channel));
    this.pc.addEventListener('connectionstatechange', () => this.emit('statechange', this.pc.connectionState));
  }

  /** Whether we yield when our offers collide with the peer's. */
  get polite(): boolean {
    return this.negotiator.polite;
  }

  /** The peer's description (RTCPool: set by the back end; Camus: `{username}`), or null. */
  get description(): Description {
    return this.desc;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get connectionState(): RTCPeerConnectionState {
    return this.pc.connectionState;
  }

  get iceConnectionState(): RTCIceConnectionState {
    return this.pc.iceConnectionState;
  }

  get signalingState(): RTCSignalingState {
    return this.pc.signalingState;
  }

  /** How negotiation went so far (offers, collisions, rollbacks, ICE restarts). */
  get negotiation(): Readonly<NegotiationStats> {
    return this.negotiator.stats;
  }

  /** The tracks the peer sends us now (not those it stopped sending). */
  get remoteTracks(): readonly RemoteTrack[] {
    return this.remote.filter((t) => {
      const d = t.transceiver.currentDirection;
      return t.track.readyState === 'live' && d !== 'sendonly' && d !== 'inactive' && d !== 'stopped';
    });
  }

  /** Sends a track to the peer (negotiated by itself). */
  addTrack(track: MediaStreamTrack, ...streams: MediaStream[]): RTCRtpSender {
    this.assertOpen('addTrack');
    return this.pc.addTrack(track, ...streams);
  }

  /** Stops sending a track, given its sender or the track itself. */
  removeTrack(senderOrTrack: RTCRtpSender | MediaStreamTrack): void {
    this.assertOpen('removeTrack');
    const sender = senderOrTrack instanceof RTCRtpSender ? senderOrTrack : this.pc.getSenders().find((s) => s.track === senderOrTrack);
    if (!sender) throw new MeshError('negotiation', 'removeTrack: this track is not sent on this connection');
    this.pc.removeTrack(sender);
  }

  /** Swaps what a sender sends without negotiating (same kind); null sends nothing. */
  async replaceTrack(senderOrTrack: RTCRtpSender | MediaStreamTrack, track: MediaStreamTrack | null): Promise<void> {
    this.assertOpen('replaceTrack');
    const sender = senderOrTrack instanceof RTCRtpSender ? senderOrTrack : this.pc.getSenders().find((s) => s.track === senderOrTrack);
    if (!sender) throw new MeshError('negotiation', 'replaceTrack: this track is not sent on this connection');
    await sender.replaceTrack(track);
  }

  /** A data channel, returned at once (it opens later; the peer gets a `datachannel` event). */
  createDataChannel(label: string, init?: RTCDataChannelInit): RTCDataChannel {
    this.assertOpen('createDataChannel');
    return this.pc.createDataChannel(label, init);
  }

  /** A data channel once it is open (the same as `dataChannel(label, init)`). */
  openDataChannel(label: string, init?: RTCDataChannelInit): Promise<RTCDataChannel> {
    return this.dataChannel(label, init);
  }

  /**
   * rtcpool's `dataChannel(label, options = {}, raw = false)`: creates a data
   * channel with `options` as given (in-band by default; `{negotiated: true,
   * id}` for one both sides create themselves) and resolves with it once it
   * is open; with `raw` true, returns the channel at once instead. Unlike
   * rtcpool, the promise rejects if the channel closes before it opens.
   */
  dataChannel(label: string, options?: RTCDataChannelInit, raw?: false): Promise<RTCDataChannel>;
  dataChannel(label: string, options: RTCDataChannelInit | undefined, raw: true): RTCDataChannel;
  dataChannel(label: string, options?: RTCDataChannelInit, raw?: boolean): Promise<RTCDataChannel> | RTCDataChannel;
  dataChannel(label: string, options: RTCDataChannelInit = {}, raw = false): Promise<RTCDataChannel> | RTCDataChannel {
    const channel = this.createDataChannel(label, options);
    if (raw) return channel;
    return new Promise((resolve, reject) => {
      channel.addEventListener('open', () => resolve(channel), { once: true });
      channel.addEventListener('close', () => reject(new MeshError('closed', `data channel "${label}" closed before it opened`)), { once: true });
    });
  }

  getSenders(): RTCRtpSender[] {
    return this.pc.getSenders();
  }

  getReceivers(): RTCRtpReceiver[] {
    return this.pc.getReceivers();
  }

  /** The transceivers, to look at (changing their direction is negotiated like anything else). */
  getTransceivers(): RTCRtpTransceiver[] {
    return this.pc.getTransceivers();
  }

  getStats(selector?: MediaStreamTrack | null): Promise<RTCStatsReport> {
    return this.pc.getStats(selector);
  }

  getConfiguration(): RTCConfiguration {
    return this.pc.getConfiguration();
  }

  /** Changes the connection's configuration (new ICE servers apply from the next ICE restart). */
  setConfiguration(configuration: RTCConfiguration): void {
    this.assertOpen('setConfiguration');
    this.pc.setConfiguration(configuration);
  }

  /** Negotiates new ICE credentials (done by itself when ICE fails). */
  restartIce(): void {
    this.negotiator.restartIce();
  }

  /** Closes the connection to this peer (Camus tells the peer `bye`). */
  close(): void {
    this.shutdown('closed');
  }

  /**
   * `track` events the browser did not fire and the connection emitted
   * itself after a negotiation (see announceMissedTracks); 0 in a healthy run.
   */
  get lateTrackEvents(): number {
    return this.late;
  }

  // -------------------------------------------------------------------
  // For the pool

  /** @internal An offer or answer from the peer. */
  receiveDescription(description: RTCSessionDescriptionInit): Promise<void> {
    return this.negotiator.receiveDescription(description);
  }

  /** @internal A candidate from the peer. */
  receiveCandidate(candidate: RTCIceCandidateInit | null): Promise<void> {
    return this.negotiator.receiveCandidate(candidate);
  }

  /** @internal */
  setDescription(description: Description): void {
    this.desc = description;
    this.emit('describe', description);
  }

  /** @internal */
  shutdown(reason: CloseReason): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.negotiator.close();
    this.pc.close();
    this.onclose(reason);
    this.emit('close', reason);
    this.removeAllListeners();
  }

  private announce(t: RemoteTrack): void {
    if (this.announced.has(t.track)) return;
    this.announced.add(t.track);
    this.remote.push(t);
    t.track.addEventListener('ended', () => {
      const i = this.remote.indexOf(t);
      if (i >= 0) this.remote.splice(i, 1);
    });
    this.emit('track', t);
  }

  /**
   * After each negotiation, every transceiver that now receives has had its
   * `track` event: a browser that skipped one (seen rarely in Chromium when
   * offers collide) does not leave the application without the track.
   */
  private announceMissedTracks(): void {
    for (const transceiver of this.pc.getTransceivers()) {
      const d = transceiver.currentDirection;
      if ((d !== 'sendrecv' && d !== 'recvonly') || this.announced.has(transceiver.receiver.track)) continue;
      this.late++;
      this.announce({ track: transceiver.receiver.track, streams: [], receiver: transceiver.receiver, transceiver });
    }
  }

  private assertOpen(what: string): void {
    if (this.isClosed) throw new MeshError('closed', `${what}: the connection to ${this.id} is closed`);
  }
}
