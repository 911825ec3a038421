// The Camus room protocol: one WebSocket at `/room/<id>/ws` carrying
// `{sender, receiver, type, data}`. The server is "ground control"; we learn
// our own id from the receiver of its first pong, the roster from
// `room-info`, and relay `offer`, `answer`, `icecandidate`, `bye` and `text`
// to one peer. The polite peer of a pair is the one with the smaller id.
// Every frame from the server is checked against @atrium/protocol's schemas.
import { type ClientMessage, type IceServerEntry, type RoomInfo, ROOM_ADDRESS, SERVER_ADDRESS, type ServerMessage, type ServerMessageType, serverMessageSchemas } from '@atrium/protocol/camus';
import { MeshError, describe } from './errors.ts';
import { candidateFromWire, socketUrl } from './rtcpool-signaling.ts';
import { type Description, type JoinedInfo, type PeerInfo, Signaling } from './signaling.ts';

/** A chat message in a room. */
export interface CamusText {
  /** The sender's client id. */
  sender: string;
  /** Its username, as it wrote it. */
  from: string;
  /** Milliseconds since the epoch, as the server stamped it. */
  time: number;
  text: string;
  /** Whether it was addressed to us alone rather than to the room. */
  private: boolean;
}

export interface CamusEvents {
  /** Every well-formed message from the server or a peer, before the SDK acts on it (for Camus's `Signaler`). */
  message: [message: ServerMessage];
  text: [message: CamusText];
  /** The roster as the server last sent it (ourselves included). */
  roster: [info: RoomInfo];
}

export interface CamusSignalingOptions {
  /** A token for rooms a group file governs, sent as `?token=`. */
  token?: string;
  /** A username sent with the connection (`?username=`); `profile` changes it later. */
  username?: string;
}

function parseServerMessage(frame: unknown): ServerMessage | string {
  if (typeof frame !== 'object' || frame === null) return 'a frame that is not a JSON object';
  const type = (frame as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(serverMessageSchemas, type)) return `a message of unknown type ${JSON.stringify(type)}`;
  const r = serverMessageSchemas[type as ServerMessageType].safeParse(frame);
  if (!r.success) return `a bad "${type}" message: ${r.error.issues.map((i) => `${i.path.join('.') || '(frame)'}: ${i.message}`).join('; ')}`;
  return r.data as ServerMessage;
}

/** Camus lists ICE servers with a `kind`; RTCPeerConnection wants plain RTCIceServers. */
function toRtcIceServers(entries: IceServerEntry[]): RTCIceServer[] {
  return entries.map((e) => {
    const s: RTCIceServer = { urls: e.urls };
    if (e.username !== undefined) s.username = e.username;
    if (e.credential !== undefined) s.credential = e.credential;
    return s;
  });
}

type State = 'idle' | 'joining' | 'joined' | 'ended';

/** The WebSocket's state in Camus's words (`idle` before `join`). */
export type CamusSocketState = 'idle' | 'connecting' | 'open' | 'closing' | 'closed';

/** A Camus room: `new CamusSignaling('https://atrium.example')`, then `pool.join('room')`. */
export class CamusSignaling extends Signaling<CamusEvents> {
  readonly protocol = 'camus' as const;
  private ws: WebSocket | undefined;
  private ownId: string | null = null;
  private state: State = 'idle';
  /** Peers we know, with their usernames. */
  private readonly roster = new Map<string, string>();
  /** Peers in the room that said `bye` to us: not peers again until they offer (or leave and come back). */
  private readonly dismissed = new Set<string>();
  private lastError = '';
  private waiters: { match(m: ServerMessage): boolean; resolve(m: ServerMessage): void; reject(e: MeshError): void }[] = [];
  private pingSeq = 0;

  constructor(
    private readonly serverUrl: string,
    private readonly options: CamusSignalingOptions = {},
  ) {
    super();
  }

  get id(): string | null {
    return this.ownId;
  }

  get socketState(): CamusSocketState {
    switch (this.ws?.readyState) {
      case undefined:
        return 'idle';
      case WebSocket.CONNECTING:
        return 'connecting';
      case WebSocket.OPEN:
        return 'open';
      case WebSocket.CLOSING:
        return 'closing';
      default:
        return 'closed';
    }
  }

  /** Sends one message as it is (dropped if the socket is not open). */
  sendMessage(message: ClientMessage): void {
    this.send(message);
  }

  /**
   * Sends a message and resolves with the first message that `match`es
   * (which the SDK then handles as usual once joined); rejects with a
   * MeshError `closed` if the channel ends first.
   */
  sendReceive(message: ClientMessage, match: (m: ServerMessage) => boolean): Promise<ServerMessage> {
    if (this.state === 'ended') return Promise.reject(new MeshError('closed', `cannot send "${message.type}": the room connection has ended`));
    return new Promise((resolve, reject) => {
      this.waiters.push({ match, resolve, reject });
      this.send(message);
    });
  }

  async join(room: string): Promise<JoinedInfo> {
    if (this.state !== 'idle') throw new MeshError('already-joined', 'a Camus connection is in one room; make another CamusSignaling for another room');
    this.state = 'joining';
    const url = socketUrl(this.serverUrl, `/room/${encodeURIComponent(room)}/ws`, { token: this.options.token, username: this.options.username });
    const ws = new WebSocket(url);
    this.ws = ws;
    const closed = new Promise<never>((_, reject) => {
      ws.addEventListener('close', (e: CloseEvent) => {
        const why = this.lastError || e.reason || `code ${e.code}`;
        reject(new MeshError(this.ownId === null && e.code !== 4003 ? 'connect-failed' : 'join-refused', `could not enter room "${room}": ${why}`));
        this.ended(`the WebSocket closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
      });
    });
    closed.catch(() => {});
    ws.addEventListener('message', (e: MessageEvent) => this.receive(e.data));
    try {
      await Promise.race([new Promise<void>((resolve) => ws.addEventListener('open', () => resolve(), { once: true })), closed]);
      // Our id is the receiver of the first pong.
      const pong = await Promise.race([this.ping(), closed]);
      this.ownId = pong.receiver;
      const ice = await Promise.race([this.request({ receiver: SERVER_ADDRESS, type: 'get-ice-servers' }, 'ice-servers'), closed]);
      const info = await Promise.race([this.request({ receiver: SERVER_ADDRESS, type: 'get-room-info' }, 'room-info'), closed]);
      if (ice.type !== 'ice-servers' || info.type !== 'room-info') throw new MeshError('bad-frame', 'unexpected answer from ground control');
      this.state = 'joined';
      const peers: PeerInfo[] = [];
      for (const c of info.data.clients) {
        if (c.id === this.ownId) continue;
        this.roster.set(c.id, c.username);
        peers.push(this.peerInfo(c.id, c.username));
      }
      const joined: JoinedInfo = { id: this.ownId, pool: info.data.room_id, peers, iceServers: toRtcIceServers(ice.data) };
      this.emit('joined', joined);
      this.emit('roster', info.data);
      return joined;
    } catch (e) {
      if (this.state === 'joining') {
        ws.close();
        this.ended(describe(e));
      }
      throw e instanceof MeshError ? e : new MeshError('connect-failed', describe(e), { cause: e });
    }
  }

  sendDescription(to: string, description: RTCSessionDescriptionInit): void {
    if (description.type === 'offer') this.send({ receiver: to, type: 'offer', data: { type: 'offer', sdp: description.sdp ?? '' } });
    else if (description.type === 'answer' || description.type === 'pranswer') this.send({ receiver: to, type: 'answer', data: { type: description.type, sdp: description.sdp ?? '' } });
  }

  sendCandidate(to: string, candidate: RTCIceCandidateInit | null): void {
    // Camus has no end-of-candidates message.
    if (candidate === null || !candidate.candidate) return;
    this.send({
      receiver: to,
      type: 'icecandidate',
      data: { candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? null, sdpMLineIndex: candidate.sdpMLineIndex ?? null, usernameFragment: candidate.usernameFragment ?? null },
    });
  }

  closePeer(to: string): void {
    this.send({ receiver: to, type: 'bye', data: Date.now() });
  }

  /** A chat message to the room, or to one peer. */
  sendText(text: string, options: { to?: string; from?: string } = {}): void {
    this.send({ receiver: options.to ?? ROOM_ADDRESS, type: 'text', data: { from: options.from ?? this.options.username ?? 'Major Tom', time: Date.now(), text } });
  }

  /** Changes our username; peers see it as a new description `{username}`. */
  setUsername(username: string): void {
    this.send({ receiver: SERVER_ADDRESS, type: 'profile', data: { username } });
  }

  leave(): void {
    if (this.state === 'ended' || this.state === 'idle') return;
    // As Camus: bye to ground control, then close.
    this.send({ receiver: SERVER_ADDRESS, type: 'bye', data: Date.now() });
    this.ws?.close(1000, 'goodbye');
    this.ended('left the room');
  }

  // -------------------------------------------------------------------

  private peerInfo(id: string, username: string): PeerInfo {
    // Camus: polite = ownId < peerId.
    return { id, polite: (this.ownId ?? '') < id, description: { username } };
  }

  private ping(): Promise<ServerMessage> {
    const data = Date.now() * 1000 + (++this.pingSeq % 1000);
    return this.request({ receiver: SERVER_ADDRESS, type: 'ping', data }, 'pong', (m) => m.type === 'pong' && m.data === data);
  }

  private request(msg: ClientMessage, type: ServerMessageType, match: (m: ServerMessage) => boolean = (m) => m.type === type): Promise<ServerMessage> {
    return this.sendReceive(msg, (m) => m.sender === SERVER_ADDRESS && match(m));
  }

  private send(msg: ClientMessage): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    try {
      ws.send(JSON.stringify(msg));
    } catch (e) {
      this.emit('error', new MeshError('closed', `could not send "${msg.type}": ${describe(e)}`, { cause: e }));
    }
  }

  private receive(raw: unknown): void {
    if (this.state === 'ended') return;
    let frame: unknown;
    try {
      frame = typeof raw === 'string' ? JSON.parse(raw) : null;
    } catch {
      frame = null;
    }
    const m = parseServerMessage(frame);
    if (typeof m === 'string') {
      this.emit('error', new MeshError('bad-frame', `the server sent ${m}`));
      return;
    }
    this.emit('message', m);
    const waiter = this.waiters.find((w) => w.match(m));
    if (waiter) {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      waiter.resolve(m);
      // While joining, answers are the join's; once joined, the room goes on as usual.
      if (this.state !== 'joined') return;
    }
    if (m.sender === SERVER_ADDRESS) return this.fromServer(m);
    if (this.state !== 'joined') return;
    this.fromPeer(m);
  }

  private fromServer(m: ServerMessage): void {
    switch (m.type) {
      case 'ping':
        this.send({ receiver: SERVER_ADDRESS, type: 'pong', data: m.data ?? null });
        return;
      case 'room-info':
        if (this.state === 'joined') this.updateRoster(m.data);
        return;
      case 'error':
        this.lastError = m.data;
        this.emit('error', new MeshError('server-error', m.data));
        return;
      case 'text':
        // Atrium tells Camus clients what it refuses in a text from ground control.
        if (m.data.error !== undefined) {
          this.lastError = m.data.text;
          this.emit('error', new MeshError('server-error', m.data.text));
        }
        return;
      case 'bye':
        // Ground control ends our stay (kicked, server stopping, or our own bye).
        this.ws?.close(1000, 'bye');
        this.ended('ground control said bye');
        return;
      default:
        return;
    }
  }

  private fromPeer(m: ServerMessage): void {
    const from = m.sender;
    if (from === this.ownId) return;
    switch (m.type) {
      case 'offer': {
        // As Camus, an offer from someone we have not heard of (or who said
        // bye) makes them a peer again.
        const known = this.roster.get(from);
        if (known === undefined || this.dismissed.has(from)) {
          this.dismissed.delete(from);
          this.roster.set(from, known ?? 'Major Tom');
          this.emit('peer', this.peerInfo(from, known ?? 'Major Tom'));
        }
        this.emit('description', from, m.data);
        return;
      }
      case 'answer':
        if (this.isPeer(from)) this.emit('description', from, m.data);
        return;
      case 'icecandidate':
        if (this.isPeer(from)) this.emit('candidate', from, candidateFromWire(m.data));
        return;
      case 'bye':
        if (!this.isPeer(from)) return;
        this.dismissed.add(from);
        this.emit('bye', from);
        return;
      case 'text':
        this.emit('text', { sender: from, from: m.data.from, time: m.data.time, text: m.data.text, private: m.receiver !== ROOM_ADDRESS });
        return;
      default:
        return;
    }
  }

  private isPeer(id: string): boolean {
    return this.roster.has(id) && !this.dismissed.has(id);
  }

  private updateRoster(info: RoomInfo): void {
    const present = new Map(info.clients.filter((c) => c.id !== this.ownId).map((c) => [c.id, c.username] as const));
    for (const id of [...this.roster.keys()]) {
      if (!present.has(id)) {
        this.roster.delete(id);
        if (!this.dismissed.delete(id)) this.emit('gone', id);
      }
    }
    for (const [id, username] of present) {
      const known = this.roster.get(id);
      if (known === undefined) {
        this.roster.set(id, username);
        this.emit('peer', this.peerInfo(id, username));
      } else if (known !== username) {
        this.roster.set(id, username);
        const description: Description = { username };
        this.emit('describe', id, description);
      }
    }
    this.emit('roster', info);
  }

  private ended(reason: string): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(new MeshError('closed', `the room connection ended: ${reason}`));
    this.emit('end', reason);
  }
}
