// One RTCPool endpoint speaking "ssp v2", over a raw WebSocket or socket.io
// (the transport is a detail: see transports.ts). `rtc:join` joins the core
// group named like the pool; `rtc:sdp` and `rtc:candidate` are relayed
// through the core to one peer with the sender set by the server; the core's
// member events come back as `rtc:peer`, `rtc:close` and `rtc:describe`.
// The connection shell is the dialect kit's (../kit/).
import { randomUUID } from 'node:crypto';
import {
  type ClientEvent,
  type Description,
  LIMITS,
  type ServerEventData,
  type ServerEventType,
  parseClientEvent,
  parseClientFrame,
  sessionDescription,
  serverEventSchemas,
} from '@atrium/protocol/rtcpool';
import type { CoreEvent, MessageEvent, UserEvent } from '../../core/client.ts';
import { CoreError } from '../../core/errors.ts';
import type { Group } from '../../core/group.ts';
import type { ErrorCode } from '../../core/vocabulary.ts';
import { DialectConnection, type DialectContext, type Parsed, CLOSE as SHELL_CLOSE, type Transport, type WsFrame, jsonFrame } from '../kit/index.ts';
import { wireErrorCode } from './vocabulary.ts';

export const DIALECT = 'rtcpool';

/** Relayed signalling travels through the core as messages of these kinds. */
const SDP_KIND = 'rtcpool:sdp';
const CANDIDATE_KIND = 'rtcpool:candidate';

/** Event rates a single endpoint may sustain (as the Galène dialect). */
export const RATES = {
  messagesPerSecond: 100,
  messageBurst: 200,
  closeAfterRefusedPerSecond: 200,
};

/** Events nobody waits for: they may be batched a little (never reordered). */
const PRESENCE = new Set<ServerEventType>(['rtc:peer', 'rtc:close', 'rtc:describe']);

/** Close codes (WebSocket) for the reasons an endpoint is dropped: the kit's, and "stopped" (rtc:stop). */
export const CLOSE = { ...SHELL_CLOSE, stopped: 4001 } as const;

/** An event for an endpoint: its type and data, and the JSON the raw WebSocket sends (made once, on demand). */
export class PoolFrame {
  #json: string | undefined;

  constructor(
    readonly type: ServerEventType,
    readonly data: object,
  ) {}

  /** `{type, data}`, as a raw WebSocket frame carries it. */
  get json(): string {
    this.#json ??= JSON.stringify({ type: this.type, data: this.data });
    return this.#json;
  }
}

/** A socket.io event as received: its name and its (one) argument. */
export interface SocketIoEvent {
  event: unknown;
  data: unknown;
}

/** What an endpoint receives: a raw WebSocket frame, or a socket.io event. */
export type PoolInput = WsFrame | SocketIoEvent;

export type PoolContext = DialectContext;

/** What the endpoint presented when it connected (URL query, socket.io auth). */
export interface PoolCredentials {
  token?: string | undefined;
  username?: string | undefined;
  /** The public URL of a group (the audience of its tokens). */
  groupUrl(name: string): string;
  /** The endpoint's network address, for throttling failed logins. */
  address?: string | undefined;
}

export class PoolConnection extends DialectConnection<ClientEvent, PoolInput, PoolFrame> {
  /** A UUID, as PyRTC assigns. */
  readonly id = randomUUID();
  private group: Group | undefined;
  /** The peers this endpoint was told about, with the description it last got for each (as JSON). */
  private readonly peers = new Map<string, string>();

  constructor(
    transport: Transport<PoolFrame, PoolInput>,
    private readonly creds: PoolCredentials,
    ctx: PoolContext,
  ) {
    super(transport, ctx, { dialect: DIALECT, rates: RATES, maxFrameBytes: LIMITS.frameBytes, noun: 'events', tellTooLarge: true });
  }

  // -------------------------------------------------------------------
  // Client (what the core calls)

  deliver(event: CoreEvent): void {
    switch (event.type) {
      case 'joined':
        if (event.kind === 'join') this.joined(event.group);
        return;
      case 'user':
        return this.userEvent(event);
      case 'message':
        return this.relayed(event);
      default:
        return;
    }
  }

  /** The pool is closed for this endpoint (kicked, group deleted, server stopping). */
  terminate(reason: string): void {
    this.emit('rtc:stop', {});
    this.close(CLOSE.stopped, reason);
  }

  // -------------------------------------------------------------------
  // The dialect's part of the shell

  protected parse(input: PoolInput): Parsed<ClientEvent> {
    let parsed: ReturnType<typeof parseClientEvent>;
    if ('event' in input) {
      parsed = parseClientEvent(input.event, input.data);
    } else {
      const json = jsonFrame(input, { protocol: 'ssp', textHint: 'JSON text {"type": ..., "data": {...}}', jsonHint: '{"type": "rtc:...", "data": {...}}' });
      if (!json.ok) return json;
      parsed = parseClientFrame(json.value);
    }
    return parsed.ok ? { ok: true, message: parsed.event, type: parsed.event.type } : parsed;
  }

  /** `rtc:error {message, reason}`: reason is the stable code, message a sentence. */
  protected renderError(code: ErrorCode, message: string): PoolFrame {
    return new PoolFrame('rtc:error', { message, reason: wireErrorCode(code) });
  }

  /** A second rtc:join is answered at once; the rest waits for the join. */
  protected override heldDuringJoin(event: ClientEvent): boolean {
    return event.type !== 'rtc:join';
  }

  protected handle(event: ClientEvent): void {
    if (event.type === 'rtc:join') return this.join(event.data.pool);
    this.relay(event);
  }

  protected override onClosed(): void {
    this.group = undefined;
  }

  // -------------------------------------------------------------------

  private relay(event: ClientEvent): void {
    const member = this.member;
    if (!member) throw new CoreError('not-joined', `join a pool (rtc:join) before sending "${event.type}"`);
    const to = event.type === 'rtc:sdp' ? event.data.to : event.type === 'rtc:candidate' ? event.data.for : undefined;
    if (to === undefined) return;
    if (to === this.id) throw new CoreError('bad-message', `"${event.type}" is addressed to yourself; address a peer`);
    const value = event.type === 'rtc:sdp' ? event.data.description : event.type === 'rtc:candidate' ? event.data.candidate : undefined;
    member.group.relay(member, { kind: event.type === 'rtc:sdp' ? SDP_KIND : CANDIDATE_KIND, dest: to, value, audience: DIALECT });
  }

  private join(pool: string): void {
    if (this.member || this.joining) {
      const where = this.member ? `pool "${this.member.group.name}"` : 'a pool';
      return this.error('already-joined', `this endpoint is already in ${where}; open another connection for another pool`);
    }
    void this.whileJoining(async () => {
      try {
        const { token, username, address } = this.creds;
        const outcome = await this.joinGroup({ group: pool, groupUrl: this.creds.groupUrl(pool), token, username, ephemeral: true, address });
        if (outcome.kind === 'redirect') this.error('no-such-group', `pool "${pool}" has moved to ${outcome.url}`);
      } catch (e) {
        const err = this.asCoreError(e);
        this.error(err.code, `could not join pool "${pool}": ${err.message}`);
        this.group = undefined;
        this.peers.clear();
      }
    });
  }

  /** The core admitted us: the pool as it is now. */
  private joined(name: string): void {
    const group = this.ctx.registry.get(name);
    if (!group) return;
    this.group = group;
    const descriptions: Record<string, Description> = {};
    for (const m of group.allMembers()) {
      if (m.client.kind !== DIALECT) continue;
      descriptions[m.id] = m.description;
      if (m.id !== this.id) this.peers.set(m.id, JSON.stringify(m.description));
    }
    this.emit('rtc:joined', { client_id: this.id, peers: [...this.peers.keys()], descriptions, pool: name });
  }

  private userEvent(event: UserEvent): void {
    const group = this.group;
    if (!group || event.id === this.id) return;
    const known = this.peers.get(event.id);
    if (event.kind === 'delete') {
      if (known === undefined) return;
      this.peers.delete(event.id);
      this.emit('rtc:close', { id: event.id, uid: event.id });
      return;
    }
    if (known === undefined) {
      // Members of other dialects cannot negotiate with this endpoint.
      if (group.member(event.id)?.client.kind !== DIALECT) return;
      this.peers.set(event.id, JSON.stringify(event.description));
      this.emit('rtc:peer', { id: event.id, uid: event.id });
      if (event.description !== null) this.emit('rtc:describe', { id: event.id, uid: event.id, description: event.description });
      return;
    }
    const now = JSON.stringify(event.description);
    if (now === known) return;
    this.peers.set(event.id, now);
    this.emit('rtc:describe', { id: event.id, uid: event.id, description: event.description });
  }

  /** Signalling from a peer. Only peers this endpoint knows are heard (the client has no connection for others). */
  private relayed(event: MessageEvent): void {
    const from = event.source;
    if (from === undefined || !this.peers.has(from)) return;
    if (event.kind === SDP_KIND) {
      const description = sessionDescription.safeParse(event.value);
      if (description.success) this.emit('rtc:sdp', { peer: from, description: description.data });
    } else if (event.kind === CANDIDATE_KIND) {
      const data = serverEventSchemas['rtc:candidate'].safeParse({ from, candidate: event.value });
      if (data.success) this.emit('rtc:candidate', data.data);
    }
  }

  private emit<K extends ServerEventType>(type: K, data: ServerEventData<K>): void {
    this.send(new PoolFrame(type, data), !PRESENCE.has(type));
  }
}
