// One Camus room WebSocket (`/room/<id>/ws`): the client joins the room's
// group as soon as it connects, each frame is validated and mapped to a core
// call (chat, relay, rename), and core events come back as Camus frames. The
// server, "ground control", answers ping, profile, get-room-info,
// get-ice-servers and bye itself; the rules stay in the core.
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { type ClientMessage, type ClientMessageOf, type ErrorCode, LIMITS, RELAYED_TYPES, ROOM_ADDRESS, SERVER_ADDRESS, parseClientMessage } from '@atrium/protocol/camus';
import type { Client, CoreEvent } from '../../core/client.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import type { Member } from '../../core/group.ts';
import type { GroupRegistry } from '../../core/registry.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import type { LivenessMonitor, LivePeer } from '../../transport/liveness.ts';
import { FloodGuard, TokenBucket, refuseMessage } from '../../transport/rate-limit.ts';
import { closeAfterQueued, discard, frameSize, queuedBytes, sendBatched } from '../../transport/ws-sender.ts';
import { DIALECT, KIND_PREFIX, iceServers, renderChat, renderRelayed, roomInfo, serverFrame } from './render.ts';

export { DIALECT };

/** Message rates a single connection may sustain (as the Galène dialect). */
export const RATES = {
  messagesPerSecond: 100,
  messageBurst: 200,
  textPerSecond: 10,
  textBurst: 30,
  closeAfterRefusedPerSecond: 200,
};

/** WebSocket close codes this dialect uses. */
export const CLOSE = {
  normal: 1000,
  policy: 1008,
  tooLarge: 1009,
  kicked: 4001,
  refused: 4003,
  tooSlow: 4004,
} as const;

/** Frames kept while the join is decided before the connection counts as flooding. */
const MAX_HELD = 256;

const GREETING = 'Ground control here: you are connected to an Atrium room.';

export interface CamusContext {
  registry: GroupRegistry;
  metrics: Metrics;
  log: Logger;
  liveness: LivenessMonitor;
  /** The network address a request came from, for throttling failed logins. */
  address?: ((req: { socket?: { remoteAddress?: string | undefined }; headers: Record<string, string | string[] | undefined> }) => string | undefined) | undefined;
}

export interface CamusJoin {
  room: string;
  /** The group's public URL (the audience of its tokens). */
  groupUrl: string;
  /** From the WebSocket URL's query string, for rooms a group file governs. */
  token?: string | undefined;
  username?: string | undefined;
  /** The client's network address, for throttling failed logins. */
  address?: string | undefined;
}

export class CamusConnection implements Client, LivePeer {
  readonly kind = DIALECT;
  /** 32 hex digits, as Camus's uuid4().hex. */
  readonly id = randomBytes(16).toString('hex');
  lastHeard = performance.now();
  private member: Member | undefined;
  private joining = true;
  private held: ClientMessage[] = [];
  private closed = false;
  /** The last room-info sent, so a change that alters nothing is not repeated. */
  private lastRoomInfo = '';
  private readonly bucket = new TokenBucket(RATES.messagesPerSecond, RATES.messageBurst);
  private readonly textBucket = new TokenBucket(RATES.textPerSecond, RATES.textBurst);
  private readonly flood = new FloodGuard(RATES.closeAfterRefusedPerSecond);

  constructor(
    private readonly ws: WebSocket,
    join: CamusJoin,
    private readonly ctx: CamusContext,
  ) {
    ctx.metrics.clients.inc({ dialect: DIALECT });
    ctx.liveness.add(this);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('close', () => this.cleanup());
    ws.on('error', (err) => ctx.log.debug({ err }, 'camus socket error'));
    this.sendFrame(serverFrame('greeting', this.id, GREETING));
    void this.join(join);
  }

  // -------------------------------------------------------------------
  // Client (what the core calls)

  deliver(event: CoreEvent): void {
    // Until the join completes, the client does not know its own id: it asks
    // for the room itself (get-room-info) once it does.
    if (!this.member) return;
    switch (event.type) {
      case 'user':
        return this.sendRoomInfo(false, false);
      case 'chat': {
        const frame = renderChat(event);
        if (frame !== null) this.sendFrame(frame);
        return;
      }
      case 'message': {
        if (!event.kind.startsWith(KIND_PREFIX)) return;
        const frame = renderRelayed(event);
        if (frame !== null) this.sendFrame(frame);
        return;
      }
      default:
        return;
    }
  }

  terminate(reason: string, why: 'kicked' | 'shutdown' = 'kicked'): void {
    this.sendFrame(serverFrame('bye', this.id, Date.now()));
    this.close(why === 'shutdown' ? 1001 : CLOSE.kicked, reason);
  }

  outputBacklog(): number {
    return queuedBytes(this.ws);
  }

  // LivePeer
  ping(): void {
    this.sendFrame(serverFrame('ping', this.id, Date.now()));
  }

  expire(): void {
    this.close(CLOSE.policy, 'no answer to ping within 75 seconds');
  }

  // -------------------------------------------------------------------

  private async join(req: CamusJoin): Promise<void> {
    try {
      const outcome = await this.ctx.registry.join(this, {
        group: req.room,
        groupUrl: req.groupUrl,
        token: req.token,
        username: req.username,
        ephemeral: true,
        address: req.address,
        via: DIALECT,
      });
      if (outcome.kind === 'redirect') {
        this.error('no-such-group', `room "${req.room}" has moved to ${outcome.url}`);
        return this.close(CLOSE.refused, 'the room has moved');
      }
      if (this.closed) {
        outcome.member.group.remove(outcome.member, { notify: false });
        return;
      }
      this.member = outcome.member;
    } catch (e) {
      const err = this.asCoreError(e);
      this.error(err.code, `you cannot enter room "${req.room}": ${err.message}`);
      return this.close(CLOSE.refused, err.message);
    } finally {
      this.joining = false;
    }
    const held = this.held;
    this.held = [];
    for (const msg of held) this.handle(msg);
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.lastHeard = performance.now();
    if (this.closed) return;
    if (!this.bucket.take()) return this.refuse('too many messages: at most 100 per second');
    const size = frameSize(data);
    if (size > LIMITS.frameBytes) {
      this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: 'too-large' });
      return this.close(CLOSE.tooLarge, `a frame of ${size} bytes is over the ${LIMITS.frameBytes}-byte limit`);
    }
    if (isBinary) return this.error('bad-message', 'binary frames are not part of the Camus protocol; send JSON text');
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      return this.error('bad-json', 'the frame is not valid JSON');
    }
    const parsed = parseClientMessage(frame);
    if (!parsed.ok) return this.error(parsed.error, parsed.message);
    const msg = parsed.message;
    this.ctx.metrics.messages.inc({ dialect: DIALECT, type: msg.type });
    if (msg.receiver === SERVER_ADDRESS && (msg.type === 'ping' || msg.type === 'pong')) return this.handle(msg);
    if (this.joining) {
      if (this.held.length >= MAX_HELD) return this.refuse('too many messages while entering the room');
      this.held.push(msg);
      return;
    }
    this.handle(msg);
  }

  private handle(msg: ClientMessage): void {
    if (this.closed) return;
    try {
      if (msg.receiver === SERVER_ADDRESS) this.toServer(msg);
      else this.relay(msg);
    } catch (e) {
      const err = this.asCoreError(e);
      this.error(err.code, err.message);
    }
  }

  /** Messages for "ground control". */
  private toServer(msg: ClientMessage): void {
    switch (msg.type) {
      case 'ping':
        return this.sendFrame(serverFrame('pong', this.id, msg.data ?? null));
      case 'pong':
      case 'greeting':
        return;
      case 'get-room-info':
        return this.sendRoomInfo(true);
      case 'get-ice-servers': {
        const member = this.joined(msg.type);
        return this.sendFrame(serverFrame('ice-servers', this.id, iceServers(member.group.iceServersFor(member))));
      }
      case 'profile': {
        const member = this.joined(msg.type);
        const name = msg.data.username || undefined;
        const before = member.username;
        if (name !== undefined) member.group.rename(member, name);
        // The others heard of a change through the core; the sender always gets the room.
        if (member.username === before) this.sendRoomInfo(true);
        return;
      }
      case 'bye':
        return this.leave();
      default:
        // As Camus: what the server does not handle itself is an unknown type to it.
        throw new CoreError('unknown-type', `Unknown message type: ${msg.type}`);
    }
  }

  /** Messages for "room" or another client. */
  private relay(msg: ClientMessage): void {
    if (!RELAYED_TYPES.includes(msg.type)) {
      throw new CoreError('bad-message', `"${msg.type}" is for "${SERVER_ADDRESS}"; only ${RELAYED_TYPES.join(', ')} are relayed to "${ROOM_ADDRESS}" or another client`);
    }
    const member = this.joined(msg.type);
    const dest = msg.receiver === ROOM_ADDRESS ? undefined : msg.receiver;
    if (msg.type === 'text') {
      if (!this.textBucket.take()) return this.refuse('too many text messages: at most 10 per second');
      member.group.chat(member, { kind: '', dest, value: (msg as ClientMessageOf<'text'>).data.text });
      return;
    }
    try {
      member.group.relay(member, { kind: KIND_PREFIX + msg.type, dest, value: msg.data ?? null, audience: DIALECT });
    } catch (e) {
      // Saying bye to a client that has already gone achieves what it asks.
      if (msg.type === 'bye' && isCoreError(e) && e.code === 'no-such-user') return;
      throw e;
    }
  }

  private joined(type: string): Member {
    if (!this.member) throw new CoreError('not-joined', `you are not in a room any more ("${type}" ignored)`);
    return this.member;
  }

  /** `always`: an answer, sent even when nothing changed; otherwise presence, which may wait a little. */
  private sendRoomInfo(always: boolean, urgent = true): void {
    const member = this.member;
    if (!member) throw new CoreError('not-joined', 'you are not in a room any more');
    const frame = serverFrame('room-info', this.id, roomInfo(member.group));
    if (!always && frame === this.lastRoomInfo) return;
    this.lastRoomInfo = frame;
    this.sendFrame(frame, urgent);
  }

  /** `bye` to ground control: leave the room (the others get room-info), then the socket closes. */
  private leave(): void {
    const member = this.member;
    this.member = undefined;
    member?.group.remove(member, { notify: false });
    this.sendFrame(serverFrame('bye', this.id, Date.now()));
    this.close(CLOSE.normal, 'bye');
  }

  private asCoreError(e: unknown): CoreError {
    if (isCoreError(e)) return e;
    this.ctx.log.error({ err: e }, 'unexpected error while handling a camus message');
    return new CoreError('internal', 'the server failed to handle this message; it was logged');
  }

  /** Camus has one kind of error: `{type: "error", data: "<sentence>"}` from ground control. */
  private error(code: ErrorCode, message: string): void {
    this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: code });
    this.sendFrame(serverFrame('error', this.id, message));
  }

  private refuse(message: string): void {
    refuseMessage(this.flood, message, 'messages', {
      close: (reason) => this.close(CLOSE.policy, reason),
      warn: (text) => this.error('rate-limited', text),
      count: (kind) => this.ctx.metrics.errors.inc({ dialect: DIALECT, kind }),
    });
  }

  private sendFrame(frame: string, urgent = true): void {
    if (this.closed) return;
    if (!sendBatched(this.ws, frame, urgent)) {
      this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: 'too-slow' });
      this.close(CLOSE.tooSlow, 'the connection cannot keep up with the messages sent to it');
    }
  }

  private close(code: number, reason: string): void {
    if (this.closed) return;
    // What is queued (an error, a bye) leaves before the close frame.
    closeAfterQueued(this.ws, code, reason);
    this.cleanup();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.held = [];
    discard(this.ws);
    this.ctx.liveness.delete(this);
    this.ctx.metrics.clients.dec({ dialect: DIALECT });
    const member = this.member;
    this.member = undefined;
    member?.group.remove(member, { notify: false });
  }
}
