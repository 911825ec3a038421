// ServerConnection: the group state fed by one connection to a Galène
// protocol v2 server (Atrium or Galène itself): the group joined, the users
// in it and every media stream and file transfer that goes with it. The
// socket, its handshake, liveness and reconnection are the ConnectionEngine's
// (connection-engine.ts); frames reach this class checked against the
// shared schemas. The surface is Galène's `protocol.js` (seed 003), typed:
// `onX` callbacks as Galène's client sets them, and the same events as
// typed listeners (`sc.on('chat', ...)`, ServerConnectionEvents).
//
// Reconnection (on by default, `reconnect: false` turns it off): when the
// socket closes without the application asking (server restart, network
// loss, no answer to pings), the connection reopens it with exponential
// backoff, joins the same group again with the same credentials, asks for
// the same media (`request`) and offers the same up-streams again (same
// Stream objects and tracks, new peer connections). Meanwhile
// `onreconnecting` is called before each attempt and `onreconnected` when
// the server answers again; `onclose` is only called when the connection
// is over for good (`close()`, kicked, or reconnection given up).
import type { ClientFrame, ClientMessage, FileTransferValue, GroupActionKind, GroupStatus, ServerMessage, ServerMessageOf, StreamRequest, UserActionKind } from '@atrium/protocol/galene';
import type { ReconnectPolicy } from './backoff.ts';
import { ConnectionEngine, type ConnectionState, type EngineHost, type EngineOptions, type WebSocketLike } from './connection-engine.ts';
import { type Credentials, isCredentials, joinMessage } from './credentials.ts';
import { TypedEmitter } from './emitter.ts';
import { AtriumClientError, describeError } from './errors.ts';
import { TransferredFile } from './file-transfer.ts';
import { newLocalId, newRandomId } from './ids.ts';
import { offersVersion1, parseFileTransfer, parseTime } from './messages.ts';
import { Stream, type StreamHost } from './stream.ts';

export type { ConnectionState, WebSocketLike };

/** A member of the group, as `users[id]`. */
export interface User {
  username: string | undefined;
  permissions: string[];
  data: Record<string, unknown>;
  /** What the user sends: label → media kind → true (e.g. `{camera: {audio: true, video: true}}`). */
  streams: Record<string, Record<string, boolean>>;
}

export type JoinedKind = 'join' | 'fail' | 'change' | 'leave' | 'redirect';
export type UserKind = 'add' | 'change' | 'delete';
export type { GroupActionKind, UserActionKind };
/** The group status sent with `joined` (fields are optional there). */
export type JoinedStatus = Partial<GroupStatus>;
export type ServerConnectionOptions = EngineOptions;

/**
 * The typed events of a ServerConnection: the same as its `onX` callbacks,
 * with the same arguments, for any number of listeners. A listener that
 * throws does not disturb the others nor the SDK.
 */
export interface ServerConnectionEvents {
  connected: [];
  close: [code: number, reason: string];
  error: [error: unknown];
  user: [id: string, kind: UserKind];
  joined: [kind: JoinedKind, group: string, perms: string[], status: JoinedStatus, data: Record<string, unknown>, error: string | null, message: string];
  chat: [id: string | undefined, dest: string | undefined, username: string | undefined, time: Date | null, privileged: boolean, history: boolean, kind: string, message: string];
  clearchat: [];
  usermessage: [id: string | undefined, dest: string | undefined, username: string | undefined, time: Date | null, privileged: boolean, kind: string, error: string | undefined, message: unknown];
  downstream: [stream: Stream];
  filetransfer: [transfer: TransferredFile];
  reconnecting: [attempt: number, delayMs: number, code: number, reason: string];
  reconnected: [];
}

/** The `onX` callback of each event. */
type Callback<K extends keyof ServerConnectionEvents> = ((this: ServerConnection, ...args: ServerConnectionEvents[K]) => void) | null;

interface JoinRequest {
  group: string;
  username: string | undefined;
  credentials: Credentials;
  data: Record<string, unknown> | undefined;
}

export class ServerConnection extends TypedEmitter<ServerConnectionEvents> {
  /** The group joined, or null. */
  group: string | null = null;
  /** The username we joined as, or null. */
  username: string | null = null;
  /** Everyone in the group, ourselves included, by id. */
  users: Record<string, User> = {};
  /** Our up-streams, by id. */
  up: Record<string, Stream> = {};
  /** Our down-streams, by id. */
  down: Record<string, Stream> = {};
  /** The ICE configuration the server gave at join time. */
  rtcConfiguration: RTCConfiguration | null = null;
  /** Our permissions in the group. */
  permissions: string[] = [];
  /** File transfers in progress, by `TransferredFile.fullid()`. */
  transferredFiles: Record<string, TransferredFile> = {};
  /** Free for the application; the SDK does not touch it. */
  userdata: Record<string, unknown> = {};

  /** The handshake with the server completed (not called again after a reconnection). */
  onconnected: ((this: ServerConnection) => void) | null = null;
  /** The connection is over; every stream has been closed by then. */
  onclose: ((this: ServerConnection, code: number, reason: string) => void) | null = null;
  /** Something went wrong: a bad frame from the server, a socket error. */
  onerror: ((this: ServerConnection, error: unknown) => void) | null = null;
  /** Called before each peer connection; may return an RTCConfiguration to use instead of the server's. */
  onpeerconnection: ((this: ServerConnection) => RTCConfiguration | null) | null = null;
  /** A user joined, changed or left; `users` is already updated. */
  onuser: ((this: ServerConnection, id: string, kind: UserKind) => void) | null = null;
  /**
   * We joined, failed to join, were changed, left, or are redirected
   * (`message` is then the URL to go to).
   */
  onjoined: ((this: ServerConnection, kind: JoinedKind, group: string, perms: string[], status: JoinedStatus, data: Record<string, unknown>, error: string | null, message: string) => void) | null =
    null;
  /** A chat message; `history` is true for messages replayed when joining. */
  onchat:
    | ((
        this: ServerConnection,
        id: string | undefined,
        dest: string | undefined,
        username: string | undefined,
        time: Date | null,
        privileged: boolean,
        history: boolean,
        kind: string,
        message: string,
      ) => void)
    | null = null;
  /** The chat history was cleared. When not set, `onusermessage` gets kind `clearchat` instead. */
  onclearchat: ((this: ServerConnection) => void) | null = null;
  /**
   * A message for the application, from a user (`id`) or from the server
   * (`id` undefined): kinds `error`, `warning`, `info`, `kicked`, `mute`...
   */
  onusermessage:
    | ((
        this: ServerConnection,
        id: string | undefined,
        dest: string | undefined,
        username: string | undefined,
        time: Date | null,
        privileged: boolean,
        kind: string,
        error: string | undefined,
        message: unknown,
      ) => void)
    | null = null;
  /** The server pushes a new stream; set up its callbacks here. */
  ondownstream: ((this: ServerConnection, stream: Stream) => void) | null = null;
  /** A file transfer starts, from a peer or from `sendFile`; throw to refuse it. */
  onfiletransfer: ((this: ServerConnection, transfer: TransferredFile) => void) | null = null;
  /** The socket was lost; attempt number `attempt` comes in `delayMs`. */
  onreconnecting: ((this: ServerConnection, attempt: number, delayMs: number, code: number, reason: string) => void) | null = null;
  /** The server answers again; the group is being rejoined and the up-streams restored. */
  onreconnected: ((this: ServerConnection) => void) | null = null;

  private readonly engine: ConnectionEngine;
  /** The group we want to be in (what to rejoin after a reconnection). */
  private wanted: JoinRequest | null = null;
  private lastRequest: StreamRequest | null = null;
  /** Between a reconnection and the answer to our rejoin. */
  private rejoining = false;
  /** Our own user data as the server last told it (what setdata changed), for rejoining. */
  private ownData: Record<string, unknown> | undefined;
  /** Newest chat time seen, so replayed history is not shown twice after a rejoin. */
  private lastChatTime = 0;
  private readonly streamHost: StreamHost;

  constructor(options: ServerConnectionOptions = {}) {
    super();
    const host: EngineHost = {
      connected: (reconnected) => this.connected(reconnected),
      message: (m) => this.dispatch(m),
      socketLost: () => {
        this.rejoining = false;
      },
      suspended: () => this.suspend(),
      reconnecting: (attempt, delay, code, reason) => this.notify('reconnecting', this.onreconnecting, attempt, delay, code, reason),
      closed: (code, reason) => this.finish(code, reason),
      error: (e) => this.report(e),
    };
    this.engine = new ConnectionEngine(host, options);
    this.streamHost = {
      connection: this,
      canSignal: () => this.engine.isOpen() && this.group !== null && !this.rejoining,
      send: (m) => this.send(m),
      closed: (s) => this.streamClosed(s),
      tracksChanged: (s) => this.updateUserStreams(s.up ? this.id : s.source),
    };
  }

  // -------------------------------------------------------------------
  // Connection

  /** Our client id (may change after a reconnection if the server still knew the old one). */
  get id(): string {
    return this.engine.id;
  }

  set id(id: string) {
    this.engine.id = id;
  }

  /** The WebSocket in use, or null between sockets. */
  get socket(): WebSocketLike | null {
    return this.engine.socket;
  }

  /** The negotiated protocol version ("2"), or null before the handshake. */
  get version(): string | null {
    return this.engine.version;
  }

  /** Where the connection stands. */
  get state(): ConnectionState {
    return this.engine.state;
  }

  /** The reconnection policy in force; set `reconnect.enabled = false` to stop reconnecting. */
  get reconnect(): ReconnectPolicy {
    return this.engine.reconnect;
  }

  /** Opens the WebSocket to `url` (the group status's `endpoint`). */
  connect(url: string): void {
    this.engine.connect(url);
  }

  /** Closes the connection for good; `onclose` follows. */
  close(): void {
    this.engine.close();
  }

  /** Sends one message; throws if the socket is not open. */
  send(message: ClientFrame): void {
    this.engine.send(message);
  }

  // -------------------------------------------------------------------
  // Group

  /**
   * Joins a group. `credentials` is a password, or `{type: 'token', token}`,
   * `{type: 'password', password}`, `{type: 'authServer', authServer,
   * location, password}`. `onjoined` tells the outcome.
   */
  join(group: string, username: string | undefined, credentials: Credentials, data?: Record<string, unknown>): Promise<void>;
  /** The form of Galène's README.FRONTEND: `join(group, 'join', username, password)`. */
  join(group: string, kind: 'join', username: string | undefined, credentials: Credentials): Promise<void>;
  async join(group: string, second: string | undefined, third: Credentials | string | undefined, fourth?: Record<string, unknown> | Credentials): Promise<void> {
    let request: JoinRequest;
    if (second === 'join' && isCredentials(fourth)) {
      request = { group, username: typeof third === 'string' ? third : undefined, credentials: fourth, data: undefined };
    } else {
      if (third === undefined || !isCredentials(third)) {
        throw new AtriumClientError('bad-argument', 'join needs credentials: a password string, {type: "token", token} or {type: "authServer", ...}');
      }
      request = { group, username: second, credentials: third, data: fourth as Record<string, unknown> | undefined };
    }
    if (this.rejoining && this.wanted?.group === group) {
      // The SDK is already joining this group again (after a reconnection): it will use these credentials next time.
      this.wanted = request;
      return;
    }
    this.wanted = request;
    this.ownData = undefined;
    this.lastChatTime = 0;
    await this.sendJoin(request);
  }

  /** Leaves the group; `onjoined` is called with kind `leave`. */
  leave(group?: string): void {
    const name = group ?? this.group ?? this.wanted?.group;
    this.wanted = null;
    if (name === undefined || name === null) return;
    if (this.state === 'reconnecting') {
      // Not in the group on the server now: just do not go back.
      this.leftLocally(name);
      return;
    }
    this.send({ type: 'join', kind: 'leave', group: name });
  }

  /** What to receive: label → media, `''` for the default, e.g. `{'': ['audio', 'video']}`. */
  request(what: StreamRequest): void {
    this.lastRequest = what;
    // While reconnecting, the request is sent when the group is joined again.
    if (this.state === 'reconnecting') return;
    this.send({ type: 'request', request: what });
  }

  /** Sends a chat message: kind `''` or `'me'`, to `dest` (a user id) or to everyone (`''`). */
  chat(kind: string, dest: string, value: string): void;
  /** The form of Galène's README.FRONTEND: `chat(username, kind, dest, value)`; the username is the one we joined with. */
  chat(username: string, kind: string, dest: string, value: string): void;
  chat(a: string, b: string, c: string, d?: string): void {
    const [kind, dest, value] = d === undefined ? [a, b, c] : [b, c, d];
    const m: ClientMessage = { type: 'chat', kind: chatKind(kind), source: this.id, value };
    if (dest) m.dest = dest;
    if (this.username !== null) m.username = this.username;
    this.send(m);
  }

  /** Sends an application message (not kept in the history) to `dest`, or to everyone when `dest` is empty. */
  userMessage(kind: string, dest: string | null | undefined, value?: unknown, noecho?: boolean): void {
    const m: ClientMessage = { type: 'usermessage', kind, source: this.id };
    if (dest) m.dest = dest;
    if (this.username !== null) m.username = this.username;
    if (value !== undefined) m.value = value;
    if (noecho) m.noecho = true;
    this.send(m);
  }

  /** Same as `userMessage`. */
  usermessage(kind: string, dest: string | null | undefined, value?: unknown, noecho?: boolean): void {
    this.userMessage(kind, dest, value, noecho);
  }

  /** Asks the server to act on a user: op, unop, present, unpresent, kick, setdata. */
  userAction(kind: UserActionKind, dest: string, value?: unknown): void {
    const m: ClientMessage = { type: 'useraction', kind, source: this.id, dest };
    if (this.username !== null) m.username = this.username;
    if (value !== undefined) m.value = value;
    this.send(m);
  }

  /** Same as `userAction`. */
  useraction(kind: UserActionKind, dest: string, value?: unknown): void {
    this.userAction(kind, dest, value);
  }

  /** Asks the server to act on the group: clearchat, lock, unlock, record, unrecord, subgroups, setdata. */
  groupAction(kind: GroupActionKind, value?: unknown): void {
    const m: ClientMessage = { type: 'groupaction', kind, source: this.id };
    if (this.username !== null) m.username = this.username;
    if (value !== undefined) m.value = value;
    this.send(m);
  }

  /** Same as `groupAction`. */
  groupaction(kind: GroupActionKind, value?: unknown): void {
    this.groupAction(kind, value);
  }

  // -------------------------------------------------------------------
  // Streams

  /**
   * A new up-stream. Add tracks to its `pc` (`s.pc.addTrack(track,
   * s.stream)`, or `s.addTrack(track, {simulcast: true})`); it is offered to
   * the server by itself. Given the `localId` of an existing up-stream, that
   * stream is closed and the server told the new one replaces it.
   */
  newUpStream(localId?: string): Stream {
    const id = newRandomId();
    const pc = this.newPeerConnection();
    let replaced: Stream | null = null;
    if (localId) {
      replaced = this.findByLocalId(localId);
      replaced?.close(true);
    }
    const s = new Stream(this.streamHost, { id, localId: localId || newLocalId(), up: true, pc });
    if (replaced) {
      s.label = replaced.label;
      // The server only needs `replace` if it knew the old stream.
      if (replaced.localDescriptionSent) s.replace = replaced.id;
    }
    this.up[id] = s;
    return s;
  }

  /** The up-stream with this localId, or null. */
  findByLocalId(localId: string): Stream | null {
    if (!localId) return null;
    for (const s of Object.values(this.up)) if (s.localId === localId) return s;
    return null;
  }

  /** The configuration for new peer connections: `onpeerconnection`'s, else the server's. */
  getRTCConfiguration(): RTCConfiguration | null {
    if (this.onpeerconnection) {
      const conf = this.onpeerconnection.call(this);
      if (conf) return conf;
    }
    return this.rtcConfiguration;
  }

  // -------------------------------------------------------------------
  // Files

  /** Offers `file` to the user `id`; `onfiletransfer` is called with the upload. */
  sendFile(id: string, file: Blob & { name?: string }): void {
    const user = this.users[id];
    if (!user) throw new AtriumClientError('bad-argument', `there is no user with id "${id}" in the group`);
    const f = new TransferredFile(this.transferHost(), {
      userid: id,
      id: newRandomId(),
      up: true,
      username: user.username,
      name: file.name ?? 'file',
      mimetype: file.type,
      size: file.size,
    });
    f.file = file;
    this.transferredFiles[f.fullid()] = f;
    try {
      this.offerTransfer(f, 'this application does not handle file transfers (set onfiletransfer)');
    } catch (e) {
      f.cancel(asCancelReason(e));
      return;
    }
    if (f.state === 'closed' || f.state === 'cancelled') return;
    try {
      f.invite();
    } catch (e) {
      f.fail(asCancelReason(e));
      throw e;
    }
  }

  getTransferredFile(userid: string, fileid: string): TransferredFile | undefined {
    return this.transferredFiles[`${userid}-${fileid}`];
  }

  // -------------------------------------------------------------------
  // What the engine tells

  /**
   * The socket is gone but we mean to come back: what the server forgets
   * (down-streams, the user list) goes; up-streams stay, to be offered again.
   */
  private suspend(): void {
    for (const s of Object.values(this.down)) s.close();
    this.clearUsers();
    this.failUnconnectedTransfers();
  }

  /** Transfers still being negotiated need the server; those connected go on peer to peer. */
  private failUnconnectedTransfers(): void {
    for (const f of Object.values(this.transferredFiles)) {
      if (f.state === '' || f.state === 'inviting' || f.state === 'connecting') f.fail('the connection to the server was lost');
    }
  }

  /** The connection is over for good. */
  private finish(code: number, reason: string): void {
    this.permissions = [];
    for (const s of Object.values(this.up)) s.close();
    for (const s of Object.values(this.down)) s.close();
    this.clearUsers();
    this.failUnconnectedTransfers();
    const group = this.group;
    this.group = null;
    this.username = null;
    this.wanted = null;
    if (group !== null) this.notify('joined', this.onjoined, 'leave', group, [], {}, {}, null, '');
    this.notify('close', this.onclose, code, reason);
  }

  /** Leaves while the socket is down: nothing to tell the server, which has forgotten us. */
  private leftLocally(group: string): void {
    for (const s of Object.values(this.up)) s.close();
    this.group = null;
    this.username = null;
    this.permissions = [];
    this.notify('joined', this.onjoined, 'leave', group, [], {}, {}, null, '');
  }

  private clearUsers(): void {
    for (const id of Object.keys(this.users)) {
      delete this.users[id];
      this.notify('user', this.onuser, id, 'delete');
    }
  }

  // -------------------------------------------------------------------
  // Frames from the server

  private dispatch(m: ServerMessage): void {
    switch (m.type) {
      case 'joined':
        return this.gotJoined(m);
      case 'user':
        return this.gotUser(m);
      case 'chat':
      case 'chathistory':
        return this.gotChat(m);
      case 'usermessage':
        return this.gotUserMessage(m);
      case 'offer':
        return this.gotOffer(m);
      case 'answer': {
        const s = this.up[m.id];
        if (!s) return console.warn(`atrium: answer for unknown up-stream ${m.id}`);
        return s.gotAnswer(m.sdp);
      }
      case 'renegotiate': {
        const s = this.up[m.id];
        if (!s) return console.warn(`atrium: renegotiate for unknown up-stream ${m.id}`);
        return s.restartIce();
      }
      case 'close': {
        const s = this.down[m.id];
        if (!s) return console.warn(`atrium: close for unknown down-stream ${m.id}`);
        return s.close();
      }
      case 'abort': {
        const s = this.up[m.id];
        if (!s) return console.warn(`atrium: abort for unknown up-stream ${m.id}`);
        return s.close();
      }
      case 'ice': {
        const s = this.up[m.id] ?? this.down[m.id];
        if (!s) return console.warn(`atrium: ICE candidate for unknown stream ${m.id}`);
        return s.gotCandidate(m.candidate);
      }
    }
  }

  /** The handshake is done: the application hears of it; after a reconnection, the group is joined again. */
  private connected(reconnected: boolean): void {
    if (!reconnected) {
      this.notify('connected', this.onconnected);
      return;
    }
    this.notify('reconnected', this.onreconnected);
    const wanted = this.wanted;
    if (wanted) {
      this.rejoining = true;
      // Rejoin with our latest user data (setdata may have changed it).
      const data = this.ownData ?? wanted.data;
      this.sendJoin({ ...wanted, data }).catch((e) => {
        this.rejoining = false;
        this.report(e);
      });
    } else {
      this.group = null;
      for (const s of Object.values(this.up)) s.close();
    }
  }

  private async sendJoin(r: JoinRequest): Promise<void> {
    this.send(await joinMessage(r.group, r.username, r.credentials, r.data));
  }

  private gotJoined(m: ServerMessageOf<'joined'>): void {
    const rejoin = this.rejoining;
    this.rejoining = false;
    const message = m.value === undefined || m.value === null ? '' : typeof m.value === 'string' ? m.value : JSON.stringify(m.value);
    const perms = m.permissions ?? [];
    switch (m.kind) {
      case 'join':
      case 'change':
        if (m.kind === 'change' && this.group !== null && m.group !== this.group) {
          console.warn(`atrium: "joined" change for group ${m.group} while in ${this.group}`);
          return;
        }
        this.group = m.group;
        this.username = m.username ?? null;
        this.permissions = perms;
        this.rtcConfiguration = toRtcConfiguration(m.rtcConfiguration) ?? this.rtcConfiguration;
        if (m.kind === 'join' && rejoin && this.lastRequest) {
          try {
            this.send({ type: 'request', request: this.lastRequest });
          } catch {
            /* the socket closed again; the next rejoin asks again */
          }
        }
        break;
      // biome-ignore lint/suspicious/noFallthroughSwitchClause: any other failure leaves the group, as 'leave' does
      case 'fail':
        if (m.error === 'already-joined' && m.group === this.group) {
          // A second join of the group we are in: we are still in it.
          this.notify('joined', this.onjoined, m.kind, m.group, perms, m.status ?? {}, m.data ?? {}, m.error ?? null, message);
          return;
        }
      // falls through
      case 'leave':
      case 'redirect':
        this.clearUsers();
        for (const s of Object.values(this.up)) s.close();
        for (const s of Object.values(this.down)) s.close();
        this.group = null;
        this.username = null;
        this.permissions = [];
        this.rtcConfiguration = null;
        this.wanted = null;
        break;
    }
    this.notify('joined', this.onjoined, m.kind, m.group, perms, m.status ?? {}, m.data ?? {}, m.error ?? null, message);
    if (m.kind === 'join' || m.kind === 'change') this.resumeUpStreams(rejoin);
  }

  /** After a join: offer up-streams that waited, and after a rejoin those that had been offered before. */
  private resumeUpStreams(rejoin: boolean): void {
    for (const s of Object.values(this.up)) {
      if (rejoin && s.localDescriptionSent) s.restore(this.newPeerConnection());
      else s.resume();
    }
  }

  private gotUser(m: ServerMessageOf<'user'>): void {
    const fresh = (): User => ({ username: m.username, permissions: m.permissions ?? [], data: m.data ?? {}, streams: {} });
    if (m.id === this.id && m.kind !== 'delete' && m.data) this.ownData = m.data;
    switch (m.kind) {
      case 'add': {
        const known = this.users[m.id];
        if (known) {
          known.username = m.username;
          known.permissions = m.permissions ?? [];
          known.data = m.data ?? {};
        } else {
          this.users[m.id] = fresh();
        }
        if (m.id === this.id) this.computeUserStreams(m.id);
        break;
      }
      case 'change': {
        const known = this.users[m.id];
        if (!known) {
          this.users[m.id] = fresh();
        } else {
          known.username = m.username;
          known.permissions = m.permissions ?? [];
          known.data = m.data ?? {};
        }
        break;
      }
      case 'delete':
        for (const f of Object.values(this.transferredFiles)) if (f.userid === m.id) f.fail('the user has left');
        delete this.users[m.id];
        break;
    }
    this.notify('user', this.onuser, m.id, m.kind);
  }

  private gotChat(m: ServerMessageOf<'chat'> | ServerMessageOf<'chathistory'>): void {
    const time = parseTime(m.time);
    const history = m.type === 'chathistory';
    if (time) {
      const t = time.getTime();
      // After a rejoin the server replays its history: skip what was already shown.
      if (history && t <= this.lastChatTime) return;
      if (t > this.lastChatTime) this.lastChatTime = t;
    }
    this.notify('chat', this.onchat, m.source, m.dest, m.username, time, m.privileged ?? false, history, m.kind ?? '', m.value);
  }

  private gotUserMessage(m: ServerMessageOf<'usermessage'>): void {
    if (m.kind === 'filetransfer') {
      if (m.source === undefined) return console.warn('atrium: filetransfer message without a source');
      return this.gotFileTransfer(m.source, m.username, m.value);
    }
    if (m.kind === 'kicked') this.engine.markKicked();
    if (m.kind === 'clearchat' && this.onclearchat) {
      this.notify('clearchat', this.onclearchat);
      return;
    }
    this.notify('usermessage', this.onusermessage, m.source, m.dest, m.username, parseTime(m.time), m.privileged ?? false, m.kind, m.error, m.value);
  }

  private gotOffer(m: ServerMessageOf<'offer'>): void {
    if (this.up[m.id]) {
      console.warn(`atrium: the server offered stream ${m.id}, which is one of ours`);
      this.send({ type: 'abort', id: m.id });
      return;
    }
    let oldLocalId: string | null = null;
    if (m.replace) {
      const old = this.down[m.replace];
      if (old) {
        oldLocalId = old.localId;
        old.close(true);
      }
    }
    let s = this.down[m.id];
    const isNew = !s;
    if (!s) {
      let pc: RTCPeerConnection;
      try {
        pc = this.newPeerConnection();
      } catch (e) {
        this.report(e);
        this.send({ type: 'abort', id: m.id });
        return;
      }
      s = new Stream(this.streamHost, { id: m.id, localId: oldLocalId ?? newLocalId(), up: false, pc });
      this.down[m.id] = s;
    }
    s.label = m.label ?? s.label;
    s.source = m.source ?? s.source;
    s.username = m.username ?? s.username;
    if (isNew) this.notify('downstream', this.ondownstream, s);
    if (!s.closed) s.gotOffer(m.sdp);
  }

  private gotFileTransfer(source: string, username: string | undefined, value: unknown): void {
    const parsed = parseFileTransfer(value);
    if (!parsed.ok) {
      const id = typeof (value as { id?: unknown } | null)?.id === 'string' ? (value as { id: string }).id : undefined;
      const f = id === undefined ? undefined : this.getTransferredFile(source, id);
      if (f) f.cancel(new AtriumClientError('file-transfer', parsed.message));
      else this.report(new AtriumClientError('bad-frame', parsed.message));
      return;
    }
    const v = parsed.value;
    if (v.type !== 'invite') {
      const f = this.getTransferredFile(source, v.id);
      if (!f) return console.warn(`atrium: "${v.type}" for unknown file transfer ${v.id}`);
      if (v.type === 'offer' && !offersVersion1(v.version)) {
        f.cancel(`unknown file-transfer protocol version ${JSON.stringify(v.version)}`);
        return;
      }
      f.gotMessage(v);
      return;
    }
    const refuse = (message: string) => {
      try {
        this.sendFileTransfer(source, { type: 'cancel', id: v.id, message });
      } catch {
        /* nothing more to do */
      }
    };
    if (!offersVersion1(v.version)) return refuse(`unknown file-transfer protocol version ${JSON.stringify(v.version)}; perhaps the client needs an upgrade`);
    if (this.getTransferredFile(source, v.id)) return refuse('duplicate file transfer id');
    const f = new TransferredFile(this.transferHost(), {
      userid: source,
      id: v.id,
      up: false,
      username,
      name: v.name,
      mimetype: v.mimetype ?? '',
      size: v.size,
    });
    this.transferredFiles[f.fullid()] = f;
    f.invited('1');
    try {
      this.offerTransfer(f, 'this client does not accept files');
    } catch (e) {
      f.cancel(asCancelReason(e));
    }
  }

  // -------------------------------------------------------------------
  // Helpers

  private transferHost() {
    return {
      connection: this,
      canSend: () => this.engine.isOpen(),
      send: (dest: string, value: FileTransferValue) => this.sendFileTransfer(dest, value),
      createPeerConnection: () => this.newPeerConnection(),
      forget: (f: TransferredFile) => {
        if (this.transferredFiles[f.fullid()] === f) delete this.transferredFiles[f.fullid()];
      },
    };
  }

  private sendFileTransfer(dest: string, value: FileTransferValue): void {
    this.userMessage('filetransfer', dest, value);
  }

  private newPeerConnection(): RTCPeerConnection {
    if (typeof RTCPeerConnection === 'undefined') throw new AtriumClientError('bad-argument', 'this browser does not support WebRTC');
    return new RTCPeerConnection(this.getRTCConfiguration() ?? undefined);
  }

  private streamClosed(s: Stream): void {
    if (s.up) {
      if (this.up[s.id] === s) delete this.up[s.id];
      this.updateUserStreams(this.id);
    } else {
      if (this.down[s.id] === s) delete this.down[s.id];
      this.updateUserStreams(s.source);
    }
  }

  /** Recomputes `users[id].streams`; tells the application if it changed. */
  private updateUserStreams(id: string | null): void {
    if (id === null) return;
    if (this.computeUserStreams(id)) this.notify('user', this.onuser, id, 'change');
  }

  private computeUserStreams(id: string): boolean {
    const user = this.users[id];
    if (!user) return false;
    const streams: Record<string, Record<string, boolean>> = {};
    const mine = id === this.id;
    for (const s of Object.values(mine ? this.up : this.down)) {
      if (!mine && s.source !== id) continue;
      const tracks = mine ? s.pc.getSenders().flatMap((x) => (x.track ? [x.track] : [])) : s.stream.getTracks();
      if (tracks.length === 0) continue;
      const entry = (streams[s.label] ??= {});
      for (const t of tracks) entry[t.kind] = true;
    }
    const changed = JSON.stringify(streams) !== JSON.stringify(user.streams);
    user.streams = streams;
    return changed;
  }

  /** Reports a problem to `onerror` and the `error` listeners, or to the console when there are none. */
  private report(e: unknown): void {
    let heard = this.listenerCount('error') > 0;
    if (this.onerror) {
      try {
        this.onerror.call(this, e);
        heard = true;
      } catch (err) {
        console.error('atrium: onerror threw:', err);
      }
    }
    this.emit('error', e);
    if (!heard) console.warn('atrium:', e);
  }

  /** Offers a transfer to the application: `onfiletransfer` may throw to refuse it; `filetransfer` listeners may cancel it. */
  private offerTransfer(f: TransferredFile, nobody: string): void {
    if (!this.onfiletransfer && this.listenerCount('filetransfer') === 0) throw new AtriumClientError('file-transfer', nobody);
    this.onfiletransfer?.call(this, f);
    this.emit('filetransfer', f);
  }

  /** Calls the application's `onX` callback, then the typed listeners; what they throw is reported, never thrown into the SDK. */
  private notify<K extends keyof ServerConnectionEvents>(event: K, cb: Callback<K>, ...args: ServerConnectionEvents[K]): void {
    if (cb) {
      try {
        cb.apply(this, args);
      } catch (e) {
        console.error('atrium: a ServerConnection callback threw:', e);
      }
    }
    this.emit(event, ...args);
  }
}

function chatKind(kind: string): '' | 'me' | 'caption' {
  if (kind === 'me' || kind === 'caption') return kind;
  if (kind === '' || kind === undefined || kind === null) return '';
  // The wire schema knows '', 'me' and 'caption'; Galène lets applications invent kinds.
  return kind as '';
}

function toRtcConfiguration(c: ServerMessageOf<'joined'>['rtcConfiguration']): RTCConfiguration | null {
  if (!c) return null;
  const out: RTCConfiguration = {};
  if (c.iceServers) {
    out.iceServers = c.iceServers.map((s) => {
      const server: RTCIceServer = { urls: s.urls };
      if (s.username !== undefined) server.username = s.username;
      if (s.credential !== undefined) server.credential = s.credential;
      return server;
    });
  }
  if (c.iceTransportPolicy) out.iceTransportPolicy = c.iceTransportPolicy;
  return out;
}

function asCancelReason(e: unknown): string | Error {
  return e instanceof Error || typeof e === 'string' ? e : describeError(e);
}
