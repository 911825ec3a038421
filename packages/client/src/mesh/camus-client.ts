// Camus's own client classes, by name and main methods: a `Signaler` that
// sends and receives Camus messages, a `VideoPeer` per other client in the
// room, and a `Manager` that owns them both and the local media. They are a
// thin layer over the rest of the SDK: the Signaler over CamusSignaling, the
// Manager over a Pool, each VideoPeer over a ManagedConnection. Negotiation
// is the one PerfectNegotiator every connection has; nothing here offers,
// answers or applies candidates.
//
//   const manager = new Manager({ server: 'https://atrium.example', room: 'lobby' });
//   manager.on('videopeer', (peer) => peer.on('track', (track) => show(peer.id, track)));
//   await manager.setVideoTrack(cameraTrack);
//   await manager.start();
import { type ClientMessage, DEFAULT_USERNAME, type IceServerEntry, ROOM_ADDRESS, type RoomInfo, SERVER_ADDRESS, type ServerMessage, type ServerMessageOf } from '@atrium/protocol/camus';
import { CamusSignaling, type CamusSignalingOptions, type CamusSocketState, type CamusText } from './camus-signaling.ts';
import type { CloseReason, ManagedConnection } from './connection.ts';
import { TypedEmitter } from '../emitter.ts';
import { MeshError, describe } from './errors.ts';
import { Pool } from './pool.ts';
import type { Description, JoinedInfo } from './signaling.ts';

// ---------------------------------------------------------------------------
// Signaler

export interface SignalerEvents {
  /** Every well-formed message from ground control or a peer. */
  message: [message: ServerMessage];
  error: [error: MeshError];
  /** The room connection is gone (left, kicked, socket closed). */
  close: [reason: string];
  /** `shutdown()` was called. */
  shutdown: [];
}

/** Fields a response must have, compared with `===` (Camus's `sendReceive(data, responseParams)`). */
export interface ResponseParams {
  sender?: string;
  receiver?: string;
  type?: ServerMessage['type'];
  data?: string | number | boolean | null;
}

const GREETING = "This is Major Tom to Ground Control: I'm stepping through the door. And the stars look very different today.";

/** Camus's Signaler: Camus messages over the room's WebSocket (a CamusSignaling). */
export class Signaler extends TypedEmitter<SignalerEvents> {
  readonly signaling: CamusSignaling;
  private pingSeq = 0;

  /** A server URL (and options), or a CamusSignaling to share. */
  constructor(server: string | CamusSignaling, options: CamusSignalingOptions = {}) {
    super();
    this.signaling = typeof server === 'string' ? new CamusSignaling(server, options) : server;
    this.signaling.on('message', (m) => this.emit('message', m));
    this.signaling.on('error', (e) => this.emit('error', e));
    this.signaling.on('end', (reason) => this.emit('close', reason));
  }

  /** connecting, open, closing, closed (idle before `connect`). */
  get connectionState(): CamusSocketState {
    return this.signaling.socketState;
  }

  /** Enters `room` (a Manager does this through its Pool; use it for a Signaler alone). */
  connect(room: string): Promise<JoinedInfo> {
    return this.signaling.join(room);
  }

  send(message: ClientMessage): void {
    this.signaling.sendMessage(message);
  }

  /** Sends `message`; resolves with the first message whose fields equal `responseParams`. */
  sendReceive(message: ClientMessage, responseParams: ResponseParams): Promise<ServerMessage> {
    const want = Object.entries(responseParams) as [keyof ResponseParams, unknown][];
    return this.signaling.sendReceive(message, (m) => want.every(([k, v]) => m[k] === v));
  }

  async ping(): Promise<ServerMessageOf<'pong'>> {
    const data = Date.now() * 1000 + (++this.pingSeq % 1000);
    const m = await this.sendReceive({ receiver: SERVER_ADDRESS, type: 'ping', data }, { sender: SERVER_ADDRESS, type: 'pong', data });
    return m as ServerMessageOf<'pong'>;
  }

  async getRoomInfo(): Promise<RoomInfo> {
    const m = await this.sendReceive({ receiver: SERVER_ADDRESS, type: 'get-room-info' }, { sender: SERVER_ADDRESS, type: 'room-info' });
    return (m as ServerMessageOf<'room-info'>).data;
  }

  /** The ICE servers as Camus lists them (with `kind`). */
  async fetchIceServers(): Promise<IceServerEntry[]> {
    const m = await this.sendReceive({ receiver: SERVER_ADDRESS, type: 'get-ice-servers' }, { sender: SERVER_ADDRESS, type: 'ice-servers' });
    return (m as ServerMessageOf<'ice-servers'>).data;
  }

  /** A chat message to the room, or to one client. */
  text(text: string, from: string, receiver: string = ROOM_ADDRESS, time: number = Date.now()): void {
    this.send({ receiver, type: 'text', data: { from, time, text } });
  }

  profile(username: string): void {
    this.signaling.setUsername(username);
  }

  offer(receiver: string, description: RTCSessionDescriptionInit): void {
    this.signaling.sendDescription(receiver, description);
  }

  answer(receiver: string, description: RTCSessionDescriptionInit): void {
    this.signaling.sendDescription(receiver, description);
  }

  icecandidate(receiver: string, candidate: RTCIceCandidateInit): void {
    this.signaling.sendCandidate(receiver, candidate);
  }

  bye(receiver: string): void {
    this.send({ receiver, type: 'bye', data: Date.now() });
  }

  greeting(receiver: string = SERVER_ADDRESS, text: string = GREETING): void {
    this.send({ receiver, type: 'greeting', data: text });
  }

  /** Says bye to ground control and closes the socket. */
  shutdown(): void {
    this.signaling.leave();
    this.emit('shutdown');
  }
}

// ---------------------------------------------------------------------------
// VideoPeer

export interface VideoPeerEvents {
  track: [track: MediaStreamTrack, streams: readonly MediaStream[]];
  datachannel: [channel: RTCDataChannel];
  connectionstatechange: [state: RTCPeerConnectionState];
  usernamechange: [username: string];
  /** The connection closed (`reason` says why); the peer is finished. */
  shutdown: [reason: CloseReason];
}

/** A Camus description is `{username}`. */
function usernameOf(description: Description): string {
  if (typeof description === 'object' && description !== null && !Array.isArray(description)) {
    const u = (description as { username?: unknown }).username;
    if (typeof u === 'string') return u;
  }
  return DEFAULT_USERNAME;
}

/** Camus's VideoPeer: another client of the room, over one ManagedConnection. */
export class VideoPeer extends TypedEmitter<VideoPeerEvents> {
  private name: string;

  constructor(
    /** The connection to the peer (negotiation inside). */
    readonly connection: ManagedConnection,
  ) {
    super();
    this.name = usernameOf(connection.description);
    connection.on('track', (t) => this.emit('track', t.track, t.streams));
    connection.on('datachannel', (channel) => this.emit('datachannel', channel));
    connection.on('statechange', (state) => this.emit('connectionstatechange', state));
    connection.on('describe', (d) => (this.username = usernameOf(d)));
    connection.on('close', (reason) => {
      this.emit('shutdown', reason);
      this.removeAllListeners();
    });
  }

  /** The peer's client id (Camus's name). */
  get client_id(): string {
    return this.connection.id;
  }

  get id(): string {
    return this.connection.id;
  }

  get polite(): boolean {
    return this.connection.polite;
  }

  get username(): string {
    return this.name;
  }

  set username(username: string) {
    if (username === this.name) return;
    this.name = username;
    this.emit('usernamechange', username);
  }

  get iceServers(): RTCIceServer[] {
    return this.connection.getConfiguration().iceServers ?? [];
  }

  /** New ICE servers, used from an ICE restart done at once (as Camus). */
  set iceServers(iceServers: RTCIceServer[]) {
    this.connection.setConfiguration({ ...this.connection.getConfiguration(), iceServers });
    this.connection.restartIce();
  }

  get connectionState(): RTCPeerConnectionState {
    return this.connection.connectionState;
  }

  get iceConnectionState(): RTCIceConnectionState {
    return this.connection.iceConnectionState;
  }

  get signalingState(): RTCSignalingState {
    return this.connection.signalingState;
  }

  /** Sends `track`, in place of the track of the same kind we send already (no renegotiation then). */
  async setTrack(track: MediaStreamTrack, stream: MediaStream | null = null): Promise<void> {
    const current = this.getTrack(track.kind === 'audio' ? 'audio' : 'video');
    if (current) {
      await this.connection.replaceTrack(current, track);
      return;
    }
    if (stream) this.connection.addTrack(track, stream);
    else this.connection.addTrack(track);
  }

  /** The track of `kind` we send, or null. */
  getTrack(kind: 'audio' | 'video'): MediaStreamTrack | null {
    return this.connection.getSenders().find((s) => s.track?.kind === kind)?.track ?? null;
  }

  addTrack(track: MediaStreamTrack, ...streams: MediaStream[]): RTCRtpSender {
    return this.connection.addTrack(track, ...streams);
  }

  removeTrack(senderOrTrack: RTCRtpSender | MediaStreamTrack): void {
    this.connection.removeTrack(senderOrTrack);
  }

  /** As ManagedConnection.dataChannel (rtcpool's): the open channel, or with `raw` the channel at once. */
  dataChannel(label: string, options?: RTCDataChannelInit, raw?: false): Promise<RTCDataChannel>;
  dataChannel(label: string, options: RTCDataChannelInit | undefined, raw: true): RTCDataChannel;
  dataChannel(label: string, options?: RTCDataChannelInit, raw = false): Promise<RTCDataChannel> | RTCDataChannel {
    return this.connection.dataChannel(label, options, raw);
  }

  /** Stops receiving the peer's video (renegotiated). */
  disableRemoteVideo(): void {
    for (const t of this.videoTransceivers()) t.direction = t.sender.track ? 'sendonly' : 'inactive';
  }

  /** Receives the peer's video again (renegotiated). */
  enableRemoteVideo(): void {
    for (const t of this.videoTransceivers()) t.direction = t.sender.track ? 'sendrecv' : 'recvonly';
  }

  restartIce(): void {
    this.connection.restartIce();
  }

  /** Closes the connection and says bye to the peer. */
  shutdown(): void {
    this.connection.close();
  }

  private videoTransceivers(): RTCRtpTransceiver[] {
    return this.connection.getTransceivers().filter((t) => t.receiver.track.kind === 'video' && t.currentDirection !== 'stopped');
  }
}

// ---------------------------------------------------------------------------
// Manager

export interface ManagerOptions extends CamusSignalingOptions {
  /** The server; the page's origin when omitted. */
  server?: string;
  /** The room; taken from the page's path `/room/<id>` when omitted, as Camus. */
  room?: string;
  /** Configuration of every peer connection (its `iceServers` replace the server's). */
  rtcConfiguration?: RTCConfiguration;
}

export interface ManagerEvents {
  /** A peer came: its connection exists, our tracks are on it. */
  videopeer: [peer: VideoPeer];
  /** A peer went (it left or said bye, we removed it, or we shut down). */
  videopeerremoved: [peer: VideoPeer, reason: CloseReason];
  track: [peer: VideoPeer, track: MediaStreamTrack, streams: readonly MediaStream[]];
  datachannel: [peer: VideoPeer, channel: RTCDataChannel];
  text: [message: CamusText];
  /** The room's clients as ground control last listed them (ourselves included). */
  roster: [info: RoomInfo];
  error: [error: MeshError, peer: VideoPeer | null];
  /** We are out of the room. */
  shutdown: [reason: string];
}

type Matcher = ResponseParams;

/** Camus's Manager: the Signaler, a VideoPeer per other client, and our local tracks. */
export class Manager extends TypedEmitter<ManagerEvents> {
  readonly signaler: Signaler;
  readonly pool: Pool<CamusSignaling>;
  readonly videoPeers = new Map<string, VideoPeer>();
  readonly textMessages: CamusText[] = [];
  videoTrack: MediaStreamTrack | null = null;
  audioTrack: MediaStreamTrack | null = null;
  username: string;
  private readonly room: string;
  private stream: MediaStream | undefined;
  private rtcConfiguration: RTCConfiguration;
  private fromServer: RTCIceServer[] = [];

  constructor(options: ManagerOptions = {}) {
    super();
    const loc = (globalThis as { location?: { origin: string; pathname: string } }).location;
    const server = options.server ?? loc?.origin;
    const room = options.room ?? loc?.pathname.match(/\/room\/([^/]+)/)?.[1];
    if (!server || !room) throw new MeshError('connect-failed', 'a Manager needs a server and a room (options.server, options.room) outside a Camus room page');
    this.room = decodeURIComponent(room);
    this.username = options.username ?? DEFAULT_USERNAME;
    this.rtcConfiguration = { ...options.rtcConfiguration };
    this.signaler = new Signaler(server, { token: options.token, username: options.username });
    this.pool = new Pool(this.signaler.signaling, options.rtcConfiguration ? { rtcConfiguration: options.rtcConfiguration } : {});

    const signaling = this.signaler.signaling;
    signaling.on('text', (t) => {
      this.textMessages.push(t);
      this.emit('text', t);
    });
    signaling.on('roster', (info) => this.emit('roster', info));
    this.pool.on('join', (info) => (this.fromServer = info.iceServers ?? []));
    this.pool.on('peer', (conn) => this.addPeer(conn));
    this.pool.on('close', (conn, reason) => {
      const peer = this.videoPeers.get(conn.id);
      if (!peer || peer.connection !== conn) return;
      this.videoPeers.delete(conn.id);
      this.emit('videopeerremoved', peer, reason);
    });
    this.pool.on('track', (conn, t) => this.withPeer(conn, (peer) => this.emit('track', peer, t.track, t.streams)));
    this.pool.on('datachannel', (conn, channel) => this.withPeer(conn, (peer) => this.emit('datachannel', peer, channel)));
    this.pool.on('error', (e, conn) => this.emit('error', e, conn ? (this.videoPeers.get(conn.id) ?? null) : null));
    this.pool.on('end', (reason) => this.emit('shutdown', reason));
  }

  /** Our client id, once started ('' before). */
  get id(): string {
    return this.pool.id ?? '';
  }

  /** What we send, as one stream (created on first use). */
  get localVideoStream(): MediaStream {
    this.stream ??= new MediaStream();
    return this.stream;
  }

  get iceServers(): RTCIceServer[] {
    return this.rtcConfiguration.iceServers ?? this.fromServer;
  }

  /** ICE servers for every connection: present ones restart ICE with them, future ones start with them. */
  set iceServers(iceServers: RTCIceServer[]) {
    this.rtcConfiguration = { ...this.rtcConfiguration, iceServers };
    this.pool.setConfiguration(this.rtcConfiguration);
    for (const peer of this.videoPeers.values()) peer.iceServers = iceServers;
  }

  setIceServers(iceServers: RTCIceServer[]): void {
    this.iceServers = iceServers;
  }

  /** Enters the room: peers there become VideoPeers (`videopeer` events) before this resolves. */
  async start(): Promise<void> {
    await this.pool.join(this.room);
  }

  setUsername(username: string): void {
    this.username = username;
    this.signaler.profile(username);
  }

  async setVideoTrack(track: MediaStreamTrack): Promise<void> {
    this.swapLocal(this.videoTrack, track);
    this.videoTrack = track;
    await this.setTrack(track);
  }

  async setAudioTrack(track: MediaStreamTrack): Promise<void> {
    this.swapLocal(this.audioTrack, track);
    this.audioTrack = track;
    await this.setTrack(track);
  }

  /** Sends `track` to every peer, replacing what we send of its kind. */
  async setTrack(track: MediaStreamTrack): Promise<void> {
    for (const peer of this.videoPeers.values()) await peer.setTrack(track, this.localVideoStream);
  }

  get audioEnabled(): boolean {
    return this.audioTrack?.enabled ?? false;
  }

  set audioEnabled(enabled: boolean) {
    if (this.audioTrack) this.audioTrack.enabled = enabled;
  }

  get videoEnabled(): boolean {
    return this.videoTrack?.enabled ?? false;
  }

  set videoEnabled(enabled: boolean) {
    if (this.videoTrack) this.videoTrack.enabled = enabled;
  }

  stopAudio(): void {
    if (!this.audioTrack) return;
    this.audioTrack.enabled = false;
    this.audioTrack.stop();
  }

  stopVideo(): void {
    if (!this.videoTrack) return;
    this.videoTrack.enabled = false;
    this.videoTrack.stop();
  }

  getVideoPeer(id: string): VideoPeer | undefined {
    return this.videoPeers.get(id);
  }

  /** Closes our connection to a peer and says bye to it (`videopeerremoved` follows). */
  removeVideoPeer(id: string): void {
    this.videoPeers.get(id)?.shutdown();
  }

  /** Asks ground control for the room's clients; peers that came or went are added or removed. */
  async findPeers(): Promise<RoomInfo> {
    return this.signaler.getRoomInfo();
  }

  /** A chat message to the room, or to one client. */
  text(text: string, receiver?: string): void {
    this.signaler.text(text, this.username, receiver);
  }

  /** Calls `listener` with every message whose fields equal `params` (Camus's MessageHandler). */
  addMessageListener(params: Matcher, listener: (message: ServerMessage) => void): () => void {
    const want = Object.entries(params) as [keyof Matcher, unknown][];
    return this.signaler.on('message', (m) => {
      if (want.every(([k, v]) => m[k] === v)) listener(m);
    });
  }

  /** Closes every peer connection (saying bye to each); we stay in the room. */
  shutdownVideoPeers(): void {
    for (const peer of [...this.videoPeers.values()]) peer.shutdown();
  }

  /** Leaves the room: bye to every peer and to ground control. */
  shutdown(): void {
    this.pool.close();
  }

  // -------------------------------------------------------------------

  private addPeer(conn: ManagedConnection): void {
    const peer = new VideoPeer(conn);
    this.videoPeers.set(conn.id, peer);
    for (const track of [this.videoTrack, this.audioTrack]) {
      if (!track) continue;
      peer.setTrack(track, this.localVideoStream).catch((e: unknown) => {
        this.emit('error', new MeshError('negotiation', `could not send track ${track.id} to ${conn.id}: ${describe(e)}`, { cause: e }), peer);
      });
    }
    this.emit('videopeer', peer);
  }

  private withPeer(conn: ManagedConnection, f: (peer: VideoPeer) => void): void {
    const peer = this.videoPeers.get(conn.id);
    if (peer && peer.connection === conn) f(peer);
  }

  private swapLocal(old: MediaStreamTrack | null, track: MediaStreamTrack): void {
    const stream = this.localVideoStream;
    if (old && old !== track) stream.removeTrack(old);
    if (!stream.getTracks().includes(track)) stream.addTrack(track);
  }
}
