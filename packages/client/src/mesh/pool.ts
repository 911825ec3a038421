// A Pool is our place in a mesh: a Camus room or an RTCPool pool. It joins
// through a Signaling channel, keeps one ManagedConnection per peer (made
// when the peer appears, closed when it leaves), routes the peer's
// descriptions and candidates to it, and re-emits what the connections see
// (tracks, data channels) with the connection they came on. RTCPool's Pool
// semantics: `connections`, `getConnection(id)`, `getDescription(id)`, and
// the events join, peer, close, describe, track and datachannel.
//
//   const pool = new Pool(new RtcPoolWebSocket('https://atrium.example'));
//   pool.on('track', (conn, { track }) => show(conn.id, track));
//   pool.publish(cameraTrack, cameraStream);
//   await pool.join('standup');
import { type CloseReason, ManagedConnection, type RemoteTrack } from './connection.ts';
import { TypedEmitter } from '../emitter.ts';
import { MeshError, describe } from './errors.ts';
import type { Description, JoinedInfo, PeerInfo, SignalingChannel, SignalingEvents } from './signaling.ts';

export interface PoolOptions {
  /**
   * Configuration of every peer connection. Its `iceServers`, when given,
   * replace those the server hands out (Camus does; RTCPool does not).
   */
  rtcConfiguration?: RTCConfiguration;
}

export type PoolState = 'new' | 'joining' | 'joined' | 'ended';

export interface PoolEvents {
  /** We are in the pool; connections to the peers already there exist (their `peer` events came first). */
  join: [info: JoinedInfo];
  /** A connection to a new peer: add tracks or data channels here. */
  peer: [connection: ManagedConnection];
  /** A connection closed (the peer left, said bye, we closed it, or the pool ended). */
  close: [connection: ManagedConnection, reason: CloseReason];
  /** A peer's description changed. */
  describe: [connection: ManagedConnection, description: Description];
  track: [connection: ManagedConnection, track: RemoteTrack];
  datachannel: [connection: ManagedConnection, channel: RTCDataChannel];
  /** Something went wrong that did not end the pool; `connection` is set when it concerns one peer. */
  error: [error: MeshError, connection: ManagedConnection | null];
  /** The pool ended (we left, the server stopped it, the signalling channel closed). */
  end: [reason: string];
}

interface Published {
  track: MediaStreamTrack;
  streams: MediaStream[];
}

export class Pool<S extends SignalingChannel = SignalingChannel> extends TypedEmitter<PoolEvents> {
  private readonly conns = new Map<string, ManagedConnection>();
  private readonly descriptions = new Map<string, Description>();
  private readonly published: Published[] = [];
  private serverIceServers: RTCIceServer[] | undefined;
  private poolState: PoolState = 'new';
  private info: JoinedInfo | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private rtcConfiguration: RTCConfiguration | undefined;

  constructor(
    /** The signalling channel (CamusSignaling, RtcPoolWebSocket, RtcPoolSocketIo, or your own). */
    readonly signaling: S,
    options: PoolOptions = {},
  ) {
    super();
    this.rtcConfiguration = options.rtcConfiguration;
    // The base events, whatever else this channel emits.
    const on = <K extends keyof SignalingEvents>(event: K, listener: (...args: SignalingEvents[K]) => void) => this.unsubscribe.push(signaling.on(event, listener));
    on('joined', (info) => this.joined(info));
    on('peer', (peer) => this.addPeer(peer));
    on('gone', (id) => this.conns.get(id)?.shutdown('left'));
    on('bye', (id) => this.conns.get(id)?.shutdown('bye'));
    on('describe', (id, description) => {
      this.descriptions.set(id, description);
      const conn = this.conns.get(id);
      if (!conn) return;
      conn.setDescription(description);
      this.emit('describe', conn, description);
    });
    on('description', (from, description) => {
      void this.conns.get(from)?.receiveDescription(description);
    });
    on('candidate', (from, candidate) => {
      void this.conns.get(from)?.receiveCandidate(candidate);
    });
    on('error', (error) => this.emit('error', error, null));
    on('end', (reason) => this.ended(reason));
  }

  /** Our id in the pool, once joined. */
  get id(): string | null {
    return this.info?.id ?? null;
  }

  /** The pool's name as the server has it, once joined. */
  get name(): string | null {
    return this.info?.pool ?? null;
  }

  get state(): PoolState {
    return this.poolState;
  }

  /** The connections to every peer, in the order they came. */
  get connections(): ManagedConnection[] {
    return [...this.conns.values()];
  }

  get nconnections(): number {
    return this.conns.size;
  }

  getConnection(id: string): ManagedConnection | undefined {
    return this.conns.get(id);
  }

  /** A peer's description (rtcpool's `get_description`): undefined for an unknown peer, null when it has none. */
  getDescription(id: string): Description | undefined {
    return this.descriptions.get(id);
  }

  /** rtcpool's name for `getDescription`. */
  get_description(id: string): Description | undefined {
    return this.getDescription(id);
  }

  /** The configuration of connections made from now on (those made already keep theirs). */
  setConfiguration(configuration: RTCConfiguration): void {
    this.rtcConfiguration = { ...configuration };
  }

  /** Joins the pool (RTCPool) or room (Camus) `name`; rejects with a MeshError (`join-refused`, `connect-failed`, …). */
  async join(name: string): Promise<JoinedInfo> {
    if (this.poolState !== 'new') throw new MeshError('already-joined', `this pool is ${this.poolState}; a Pool joins once`);
    this.poolState = 'joining';
    try {
      return await this.signaling.join(name);
    } catch (e) {
      this.poolState = 'ended';
      throw e;
    }
  }

  /** Sends a track to every peer, present and future. */
  publish(track: MediaStreamTrack, ...streams: MediaStream[]): void {
    if (this.published.some((p) => p.track === track)) return;
    this.published.push({ track, streams });
    for (const conn of this.conns.values()) this.tryAdd(conn, track, streams);
  }

  /** Stops sending a published track to every peer. */
  unpublish(track: MediaStreamTrack): void {
    const i = this.published.findIndex((p) => p.track === track);
    if (i < 0) return;
    this.published.splice(i, 1);
    for (const conn of this.conns.values()) {
      const sender = conn.getSenders().find((s) => s.track === track);
      if (sender) conn.removeTrack(sender);
    }
  }

  /** Leaves: closes every connection (Camus says bye to each peer) and the signalling channel. */
  close(): void {
    if (this.poolState === 'ended') return;
    for (const conn of [...this.conns.values()]) {
      this.signaling.closePeer(conn.id);
      conn.shutdown('ended');
    }
    this.signaling.leave();
    this.ended('left');
  }

  // -------------------------------------------------------------------

  private joined(info: JoinedInfo): void {
    this.info = info;
    this.serverIceServers = info.iceServers;
    this.poolState = 'joined';
    for (const peer of info.peers) this.addPeer(peer);
    this.emit('join', info);
  }

  private addPeer(peer: PeerInfo): void {
    if (this.poolState !== 'joined') return;
    const existing = this.conns.get(peer.id);
    if (existing && !existing.closed) return;
    this.descriptions.set(peer.id, peer.description);
    const config: RTCConfiguration = { ...this.rtcConfiguration };
    if (!config.iceServers && this.serverIceServers) config.iceServers = this.serverIceServers;
    const pc = new RTCPeerConnection(config);
    const id = peer.id;
    const conn: ManagedConnection = new ManagedConnection(id, {
      pc,
      polite: peer.polite,
      description: peer.description,
      signals: {
        sendDescription: (d) => this.signaling.sendDescription(id, d),
        sendCandidate: (c) => this.signaling.sendCandidate(id, c),
      },
      onerror: (e) => this.emit('error', e instanceof MeshError ? e : new MeshError('negotiation', `with ${id}: ${describe(e)}`, { cause: e }), conn),
      onclose: (reason) => {
        if (this.conns.get(id) === conn) this.conns.delete(id);
        if (reason === 'closed') this.signaling.closePeer(id);
        if (reason === 'left') this.descriptions.delete(id);
        this.emit('close', conn, reason);
      },
    });
    this.conns.set(id, conn);
    conn.on('track', (t) => this.emit('track', conn, t));
    conn.on('datachannel', (ch) => this.emit('datachannel', conn, ch));
    this.emit('peer', conn);
    if (conn.closed) return;
    for (const p of this.published) this.tryAdd(conn, p.track, p.streams);
  }

  private tryAdd(conn: ManagedConnection, track: MediaStreamTrack, streams: MediaStream[]): void {
    if (conn.getSenders().some((s) => s.track === track)) return;
    try {
      conn.addTrack(track, ...streams);
    } catch (e) {
      this.emit('error', new MeshError('negotiation', `could not send track ${track.id} to ${conn.id}: ${describe(e)}`, { cause: e }), conn);
    }
  }

  private ended(reason: string): void {
    if (this.poolState === 'ended' && this.conns.size === 0 && this.unsubscribe.length === 0) return;
    this.poolState = 'ended';
    for (const conn of [...this.conns.values()]) conn.shutdown('ended');
    for (const off of this.unsubscribe.splice(0)) off();
    this.emit('end', reason);
  }
}
