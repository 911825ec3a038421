// One Camus room WebSocket (`/room/<id>/ws`): the client joins the room's
// group as soon as it connects, each frame is validated and mapped to a core
// call (chat, relay, rename), and core events come back as Camus frames. The
// server, "ground control", answers ping, profile, get-room-info,
// get-ice-servers and bye itself; the rules stay in the core, the
// connection shell is the dialect kit's (../kit/).
import { randomBytes } from 'node:crypto';
import { type ClientMessage, type ClientMessageOf, LIMITS, RELAYED_TYPES, ROOM_ADDRESS, SERVER_ADDRESS, parseClientMessage } from '@atrium/protocol/camus';
import type { CoreEvent } from '../../core/client.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import type { Member } from '../../core/group.ts';
import type { ErrorCode } from '../../core/vocabulary.ts';
import { TokenBucket } from '../../transport/rate-limit.ts';
import { DialectConnection, type DialectContext, type Parsed, CLOSE as SHELL_CLOSE, type Transport, type WsFrame, jsonFrame } from '../kit/index.ts';
import { DIALECT, KIND_PREFIX, iceServers, renderChat, renderRelayed, roomInfo, serverFrame, serverText } from './render.ts';

export { DIALECT };

/** Message rates a single connection may sustain (as the Galène dialect). */
export const RATES = {
  messagesPerSecond: 100,
  messageBurst: 200,
  textPerSecond: 10,
  textBurst: 30,
  closeAfterRefusedPerSecond: 200,
};

/** WebSocket close codes this dialect uses: the kit's, and "refused" for a room it may not enter. */
export const CLOSE = { ...SHELL_CLOSE, refused: 4003 } as const;

const GREETING = 'Ground control here: you are connected to an Atrium room.';

export type CamusContext = DialectContext;

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

export class CamusConnection extends DialectConnection<ClientMessage, WsFrame> {
  /** 32 hex digits, as Camus's uuid4().hex. */
  readonly id = randomBytes(16).toString('hex');
  /** The last room-info sent, so a change that alters nothing is not repeated. */
  private lastRoomInfo = '';
  private readonly textBucket = new TokenBucket(RATES.textPerSecond, RATES.textBurst);
  /** Where the client connects from, for an operator's identify. */
  readonly address: string | undefined;

  constructor(transport: Transport<string, WsFrame>, join: CamusJoin, ctx: CamusContext) {
    super(transport, ctx, { dialect: DIALECT, rates: RATES, maxFrameBytes: LIMITS.frameBytes, holdOverflow: 'too many messages while entering the room' });
    this.address = join.address;
    this.send(serverFrame('greeting', this.id, GREETING));
    this.join(join);
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
        if (frame !== null) this.send(frame);
        return;
      }
      case 'message': {
        if (!event.kind.startsWith(KIND_PREFIX)) return;
        const frame = renderRelayed(event);
        if (frame !== null) this.send(frame);
        return;
      }
      default:
        return;
    }
  }

  terminate(reason: string, why: 'kicked' | 'shutdown' = 'kicked'): void {
    this.send(serverFrame('bye', this.id, Date.now()));
    this.close(why === 'shutdown' ? CLOSE.goingAway : CLOSE.kicked, reason);
  }

  // -------------------------------------------------------------------
  // The dialect's part of the shell

  protected parse(input: WsFrame): Parsed<ClientMessage> {
    const json = jsonFrame(input, { protocol: 'the Camus protocol' });
    if (!json.ok) return json;
    const parsed = parseClientMessage(json.value);
    return parsed.ok ? { ok: true, message: parsed.message, type: parsed.message.type } : parsed;
  }

  /** A refusal, as a `text` from ground control: the one way to tell Camus's client that it shows (see serverText). */
  protected renderError(code: ErrorCode, message: string): string {
    return serverText(this.id, message, code);
  }

  protected override pingFrame(): string {
    return serverFrame('ping', this.id, Date.now());
  }

  /** Pings to ground control are answered at once; the rest waits for the room. */
  protected override heldDuringJoin(msg: ClientMessage): boolean {
    return !(msg.receiver === SERVER_ADDRESS && (msg.type === 'ping' || msg.type === 'pong'));
  }

  protected handle(msg: ClientMessage): void {
    if (msg.receiver === SERVER_ADDRESS) this.toServer(msg);
    else this.relay(msg);
  }

  // -------------------------------------------------------------------

  private join(req: CamusJoin): void {
    void this.whileJoining(async () => {
      try {
        const outcome = await this.joinGroup({
          group: req.room,
          groupUrl: req.groupUrl,
          token: req.token,
          username: req.username,
          // Camus's client enters first and gives its name with `profile`.
          namedLater: req.username === undefined,
          ephemeral: true,
          address: req.address,
        });
        if (outcome.kind === 'redirect') {
          this.error('no-such-group', `room "${req.room}" has moved to ${outcome.url}`);
          this.close(CLOSE.refused, 'the room has moved');
        }
      } catch (e) {
        const err = this.asCoreError(e);
        this.error(err.code, `you cannot enter room "${req.room}": ${err.message}`);
        this.close(CLOSE.refused, err.message);
      }
    });
  }

  /** Messages for "ground control". */
  private toServer(msg: ClientMessage): void {
    switch (msg.type) {
      case 'ping':
        return this.send(serverFrame('pong', this.id, msg.data ?? null));
      case 'pong':
      case 'greeting':
        return;
      case 'get-room-info':
        return this.sendRoomInfo(true);
      case 'get-ice-servers': {
        const member = this.joined(msg.type);
        return this.send(serverFrame('ice-servers', this.id, iceServers(member.group.iceServersFor(member))));
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
    this.send(frame, urgent);
  }

  /** `bye` to ground control: leave the room (the others get room-info), then the socket closes. */
  private leave(): void {
    const member = this.member;
    this.setMember(undefined);
    member?.group.remove(member, { notify: false });
    this.send(serverFrame('bye', this.id, Date.now()));
    this.close(CLOSE.normal, 'bye');
  }
}
