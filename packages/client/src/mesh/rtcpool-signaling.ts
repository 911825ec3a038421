// RTCPool's signalling protocol "ssp v2" (npm rtcpool 3.x), over its two
// transports: a raw WebSocket (`/pool/ws`, frames `{type, data}`) and
// socket.io (events named like the type). One endpoint joins one pool; the
// joiner is polite towards the peers already there, and they are impolite
// towards it. Every event from the server is checked against the shared
// schemas of @atrium/protocol before it is believed.
import { type ClientEvent, type ServerEventData, type ServerEventType, serverEventSchemas } from '@atrium/protocol/rtcpool';
import { MeshError, describe } from './errors.ts';
import { type JoinedInfo, Signaling } from './signaling.ts';

type ServerEvent = { [K in ServerEventType]: { type: K; data: ServerEventData<K> } }[ServerEventType];

/** Checks one event from the server; a sentence when it does not fit. */
function parseServerEvent(type: unknown, data: unknown): ServerEvent | string {
  if (typeof type !== 'string' || !Object.hasOwn(serverEventSchemas, type)) return `unknown event type ${JSON.stringify(type)}`;
  const schema = serverEventSchemas[type as ServerEventType];
  const r = schema.safeParse(data);
  if (!r.success) return `bad "${type}" event: ${r.error.issues.map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`).join('; ')}`;
  return { type, data: r.data } as ServerEvent;
}

type IceCandidateWire = Extract<ClientEvent, { type: 'rtc:candidate' }>['data']['candidate'];

/** RTCIceCandidateInit -> the wire shape (nulls rather than undefined, as a browser's toJSON). */
export function candidateToWire(c: RTCIceCandidateInit | null): IceCandidateWire {
  if (c === null) return null;
  return { candidate: c.candidate ?? '', sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null, usernameFragment: c.usernameFragment ?? null };
}

/** The wire shape -> RTCIceCandidateInit. */
export function candidateFromWire(c: NonNullable<IceCandidateWire>): RTCIceCandidateInit {
  const init: RTCIceCandidateInit = { candidate: c.candidate };
  if (c.sdpMid != null) init.sdpMid = c.sdpMid;
  if (c.sdpMLineIndex != null) init.sdpMLineIndex = c.sdpMLineIndex;
  if (c.usernameFragment != null) init.usernameFragment = c.usernameFragment;
  return init;
}

type State = 'idle' | 'joining' | 'joined' | 'ended';

/** ssp v2 itself; the transports below carry it. */
export abstract class RtcPoolSignaling extends Signaling {
  readonly protocol = 'rtcpool' as const;
  private ownId: string | null = null;
  private state: State = 'idle';
  private pending: { resolve(info: JoinedInfo): void; reject(e: MeshError): void } | undefined;

  get id(): string | null {
    return this.ownId;
  }

  /** Opens the transport (rejects if it cannot). */
  protected abstract open(): Promise<void>;
  /** Sends one event. */
  protected abstract write(type: ClientEvent['type'], data: ClientEvent['data']): void;
  /** Closes the transport; it then calls `transportClosed`. */
  protected abstract shut(): void;

  async join(pool: string): Promise<JoinedInfo> {
    if (this.state !== 'idle') throw new MeshError('already-joined', 'an RTCPool endpoint joins one pool; make another Signaling for another pool');
    this.state = 'joining';
    try {
      await this.open();
    } catch (e) {
      this.state = 'ended';
      throw new MeshError('connect-failed', `could not reach the signalling server: ${describe(e)}`, { cause: e });
    }
    if (this.state !== 'joining') throw new MeshError('connect-failed', 'the signalling channel closed while connecting');
    return new Promise<JoinedInfo>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.send({ type: 'rtc:join', data: { pool } });
    });
  }

  sendDescription(to: string, description: RTCSessionDescriptionInit): void {
    if (description.type === 'rollback') return;
    this.send({ type: 'rtc:sdp', data: { to, description: { type: description.type, sdp: description.sdp ?? '' } } });
  }

  sendCandidate(to: string, candidate: RTCIceCandidateInit | null): void {
    this.send({ type: 'rtc:candidate', data: { for: to, candidate: candidateToWire(candidate) } });
  }

  closePeer(): void {
    // ssp has no word for it: the peer sees the connection end.
  }

  leave(): void {
    if (this.state === 'ended') return;
    this.shut();
    this.transportClosed('left the pool');
  }

  // -------------------------------------------------------------------
  // For the transports

  /** One event from the server. */
  protected receive(type: unknown, data: unknown): void {
    if (this.state === 'ended') return;
    const event = parseServerEvent(type, data);
    if (typeof event === 'string') {
      this.emit('error', new MeshError('bad-frame', `the server sent ${event}`));
      return;
    }
    switch (event.type) {
      case 'rtc:joined': {
        if (this.state !== 'joining') return;
        const d = event.data;
        this.ownId = d.client_id;
        this.state = 'joined';
        // We came last: polite towards everyone already here.
        const info: JoinedInfo = {
          id: d.client_id,
          pool: d.pool,
          peers: d.peers.filter((p) => p !== d.client_id).map((id) => ({ id, polite: true, description: d.descriptions[id] ?? null })),
        };
        this.emit('joined', info);
        this.pending?.resolve(info);
        this.pending = undefined;
        return;
      }
      case 'rtc:error': {
        const err = new MeshError(this.state === 'joining' ? 'join-refused' : 'server-error', `${event.data.message} (${event.data.reason})`);
        if (this.state === 'joining' && this.pending) {
          const p = this.pending;
          this.pending = undefined;
          this.state = 'ended';
          this.shut();
          p.reject(err);
          this.emit('end', err.message);
          return;
        }
        this.emit('error', err);
        return;
      }
      case 'rtc:stop':
        this.shut();
        this.transportClosed('the server stopped the pool');
        return;
      default:
        break;
    }
    if (this.state !== 'joined') return;
    switch (event.type) {
      case 'rtc:peer':
        // The newcomer is polite towards us, so we are not towards it.
        this.emit('peer', { id: event.data.id, polite: false, description: null });
        return;
      case 'rtc:close':
        this.emit('gone', event.data.id);
        return;
      case 'rtc:describe':
        this.emit('describe', event.data.id, event.data.description);
        return;
      case 'rtc:sdp': {
        const d = event.data.description;
        if (d.type === 'rollback') return;
        this.emit('description', event.data.peer, { type: d.type, sdp: d.sdp ?? '' });
        return;
      }
      case 'rtc:candidate':
        this.emit('candidate', event.data.from, event.data.candidate === null ? null : candidateFromWire(event.data.candidate));
        return;
      default:
        return;
    }
  }

  /** The transport is gone (or we closed it). */
  protected transportClosed(reason: string): void {
    if (this.state === 'ended') return;
    const wasJoining = this.state === 'joining';
    this.state = 'ended';
    if (wasJoining && this.pending) {
      const p = this.pending;
      this.pending = undefined;
      p.reject(new MeshError('connect-failed', `the signalling channel closed before the join completed: ${reason}`));
    }
    this.emit('end', reason);
  }

  private send(event: ClientEvent): void {
    if (this.state === 'ended' || this.state === 'idle') return;
    try {
      this.write(event.type, event.data);
    } catch (e) {
      this.emit('error', new MeshError('closed', `could not send "${event.type}": ${describe(e)}`, { cause: e }));
    }
  }
}

/** Turns an http(s) or ws(s) base URL into a ws(s) URL for `path`, with a query. */
export function socketUrl(base: string, path: string, query: Record<string, string | undefined>): string {
  const url = new URL(path, base.replace(/^http/, 'ws').replace(/\/?$/, '/'));
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') url.searchParams.set(k, v);
  return url.toString();
}

export interface RtcPoolWebSocketOptions {
  /** A token for the pool (a JWT or a stateful token), sent as `?token=`. */
  token?: string;
  /** A username, for pools that ask for one. */
  username?: string;
  /** The WebSocket path; `/pool/ws` on Atrium. */
  path?: string;
}

/** ssp v2 over a raw WebSocket: `new RtcPoolWebSocket('https://atrium.example')`. */
export class RtcPoolWebSocket extends RtcPoolSignaling {
  private ws: WebSocket | undefined;

  constructor(
    private readonly serverUrl: string,
    private readonly options: RtcPoolWebSocketOptions = {},
  ) {
    super();
  }

  protected open(): Promise<void> {
    const url = socketUrl(this.serverUrl, this.options.path ?? '/pool/ws', { token: this.options.token, username: this.options.username });
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener('message', (e: MessageEvent) => {
      if (typeof e.data !== 'string') return this.receive('(binary)', null);
      let frame: unknown;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return this.receive('(not JSON)', null);
      }
      const f = typeof frame === 'object' && frame !== null ? (frame as { type?: unknown; data?: unknown }) : {};
      this.receive(f.type, f.data);
    });
    return new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('close', (e: CloseEvent) => {
        reject(new Error(`WebSocket closed (${e.code}${e.reason ? ` ${e.reason}` : ''})`));
        this.transportClosed(`the WebSocket closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
      });
    });
  }

  protected write(type: ClientEvent['type'], data: ClientEvent['data']): void {
    if (this.ws?.readyState !== WebSocket.OPEN) throw new Error('the WebSocket is not open');
    this.ws.send(JSON.stringify({ type, data }));
  }

  protected shut(): void {
    this.ws?.close(1000, 'bye');
  }
}

/**
 * What the SDK needs of a socket.io client socket (socket.io-client's
 * `Socket` fits): pass `io(url, { auth: { token } })`.
 */
export interface SocketIoLike {
  readonly connected: boolean;
  connect(): unknown;
  disconnect(): unknown;
  emit(event: string, data: unknown): unknown;
  onAny(listener: (event: string, ...args: unknown[]) => void): unknown;
  on(event: 'connect', listener: () => void): unknown;
  on(event: 'disconnect', listener: (reason: string) => void): unknown;
  on(event: 'connect_error', listener: (error: Error) => void): unknown;
}

/** ssp v2 over socket.io: `new RtcPoolSocketIo(io('https://atrium.example', { auth: { token } }))`. */
export class RtcPoolSocketIo extends RtcPoolSignaling {
  constructor(private readonly socket: SocketIoLike) {
    super();
  }

  protected open(): Promise<void> {
    const socket = this.socket;
    socket.onAny((type, data) => this.receive(type, data));
    socket.on('disconnect', (reason) => this.transportClosed(`socket.io disconnected (${reason})`));
    return new Promise((resolve, reject) => {
      if (socket.connected) return resolve();
      socket.on('connect', () => resolve());
      socket.on('connect_error', (e) => reject(e));
      socket.connect();
    });
  }

  protected write(type: ClientEvent['type'], data: ClientEvent['data']): void {
    this.socket.emit(type, data);
  }

  protected shut(): void {
    // Also stops socket.io from reconnecting: a new socket would be a new endpoint.
    this.socket.disconnect();
  }
}
