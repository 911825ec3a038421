// One RTCPool endpoint speaking "ssp v2", over a raw WebSocket or socket.io
// (the transport is a detail: see transports.ts). `rtc:join` joins the core
// group named like the pool; `rtc:sdp` and `rtc:candidate` are relayed
// through the core to one peer with the sender set by the server; the core's
// member events come back as `rtc:peer`, `rtc:close` and `rtc:describe`.
import { randomUUID } from 'node:crypto';
import {
  type ClientEvent,
  type Description,
  type ErrorCode,
  type ServerEventData,
  type ServerEventType,
  parseClientEvent,
  parseClientFrame,
  sessionDescription,
  serverEventSchemas,
} from '@atrium/protocol/rtcpool';
import type { Client, CoreEvent, MessageEvent, UserEvent } from '../../core/client.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import type { Group, Member } from '../../core/group.ts';
import type { GroupRegistry } from '../../core/registry.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import { FloodGuard, TokenBucket, refuseMessage } from '../../transport/rate-limit.ts';
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

/** Events kept while a join is decided before the endpoint counts as flooding. */
const MAX_HELD = 256;

/** How an endpoint's events reach it: a WebSocket or a socket.io socket. */
export interface PoolTransport {
  /** Sends one event; false when the peer cannot keep up. Presence (not urgent) may wait a little, never overtaking. */
  send(type: ServerEventType, data: object, urgent: boolean): boolean;
  /** Ends the transport; the code and reason go where the transport can carry them. */
  close(code: number, reason: string): void;
}

/** Close codes (WebSocket) for the reasons an endpoint is dropped. */
export const CLOSE = { normal: 1000, policy: 1008, tooLarge: 1009, stopped: 4001, tooSlow: 4004 } as const;

export interface PoolContext {
  registry: GroupRegistry;
  metrics: Metrics;
  log: Logger;
}

/** What the endpoint presented when it connected (URL query, socket.io auth). */
export interface PoolCredentials {
  token?: string | undefined;
  username?: string | undefined;
  /** The public URL of a group (the audience of its tokens). */
  groupUrl(name: string): string;
  /** The endpoint's network address, for throttling failed logins. */
  address?: string | undefined;
}

export class PoolConnection implements Client {
  readonly kind = DIALECT;
  /** A UUID, as PyRTC assigns. */
  readonly id = randomUUID();
  private member: Member | undefined;
  private group: Group | undefined;
  private joining = false;
  private held: ClientEvent[] = [];
  private closed = false;
  /** The peers this endpoint was told about, with the description it last got for each (as JSON). */
  private readonly peers = new Map<string, string>();
  private readonly bucket = new TokenBucket(RATES.messagesPerSecond, RATES.messageBurst);
  private readonly flood = new FloodGuard(RATES.closeAfterRefusedPerSecond);

  constructor(
    private readonly transport: PoolTransport,
    private readonly creds: PoolCredentials,
    private readonly ctx: PoolContext,
  ) {
    ctx.metrics.clients.inc({ dialect: DIALECT });
  }

  // -------------------------------------------------------------------
  // Input from the transport

  /** A text frame of the raw WebSocket transport: JSON `{type, data}`. */
  receiveFrame(text: string): void {
    if (!this.take()) return;
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return this.error('bad-json', 'the frame is not valid JSON; send {"type": "rtc:...", "data": {...}}');
    }
    const parsed = parseClientFrame(frame);
    if (!parsed.ok) return this.error(parsed.error, parsed.message);
    this.handle(parsed.event);
  }

  /** A socket.io event: its name and its (one) argument. */
  receiveEvent(type: unknown, data: unknown): void {
    if (!this.take()) return;
    const parsed = parseClientEvent(type, data);
    if (!parsed.ok) return this.error(parsed.error, parsed.message);
    this.handle(parsed.event);
  }

  /** A frame the transport refused before decoding (binary, too large). */
  refuseFrame(code: ErrorCode, message: string): void {
    this.error(code, message);
  }

  /** The transport is gone: leave the pool. */
  transportClosed(): void {
    this.cleanup();
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
    this.send('rtc:stop', {});
    this.close(CLOSE.stopped, reason);
  }

  // -------------------------------------------------------------------

  private take(): boolean {
    if (this.closed) return false;
    if (this.bucket.take()) return true;
    this.refuse('too many events: at most 100 per second');
    return false;
  }

  private handle(event: ClientEvent): void {
    this.ctx.metrics.messages.inc({ dialect: DIALECT, type: event.type });
    if (event.type === 'rtc:join') {
      void this.join(event.data.pool);
      return;
    }
    if (this.joining) {
      if (this.held.length >= MAX_HELD) return this.refuse('too many events while a join is pending');
      this.held.push(event);
      return;
    }
    this.relay(event);
  }

  private relay(event: ClientEvent): void {
    try {
      const member = this.member;
      if (!member) throw new CoreError('not-joined', `join a pool (rtc:join) before sending "${event.type}"`);
      const to = event.type === 'rtc:sdp' ? event.data.to : event.type === 'rtc:candidate' ? event.data.for : undefined;
      if (to === undefined) return;
      if (to === this.id) throw new CoreError('bad-message', `"${event.type}" is addressed to yourself; address a peer`);
      const value = event.type === 'rtc:sdp' ? event.data.description : event.type === 'rtc:candidate' ? event.data.candidate : undefined;
      member.group.relay(member, { kind: event.type === 'rtc:sdp' ? SDP_KIND : CANDIDATE_KIND, dest: to, value, audience: DIALECT });
    } catch (e) {
      this.fail(e);
    }
  }

  private async join(pool: string): Promise<void> {
    if (this.member || this.joining) {
      const where = this.member ? `pool "${this.member.group.name}"` : 'a pool';
      return this.error('already-joined', `this endpoint is already in ${where}; open another connection for another pool`);
    }
    this.joining = true;
    try {
      const outcome = await this.ctx.registry.join(this, {
        group: pool,
        groupUrl: this.creds.groupUrl(pool),
        token: this.creds.token,
        username: this.creds.username,
        ephemeral: true,
        address: this.creds.address,
        via: DIALECT,
      });
      if (outcome.kind === 'redirect') {
        this.error('no-such-group', `pool "${pool}" has moved to ${outcome.url}`);
        return;
      }
      if (this.closed) {
        outcome.member.group.remove(outcome.member, { notify: false });
        return;
      }
      this.member = outcome.member;
    } catch (e) {
      const err = this.asCoreError(e);
      this.error(err.code, `could not join pool "${pool}": ${err.message}`);
      this.group = undefined;
      this.peers.clear();
    } finally {
      this.joining = false;
    }
    const held = this.held;
    this.held = [];
    for (const e of held) this.relay(e);
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
    this.send('rtc:joined', { client_id: this.id, peers: [...this.peers.keys()], descriptions, pool: name });
  }

  private userEvent(event: UserEvent): void {
    const group = this.group;
    if (!group || event.id === this.id) return;
    const known = this.peers.get(event.id);
    if (event.kind === 'delete') {
      if (known === undefined) return;
      this.peers.delete(event.id);
      this.send('rtc:close', { id: event.id, uid: event.id });
      return;
    }
    if (known === undefined) {
      // Members of other dialects cannot negotiate with this endpoint.
      if (group.member(event.id)?.client.kind !== DIALECT) return;
      this.peers.set(event.id, JSON.stringify(event.description));
      this.send('rtc:peer', { id: event.id, uid: event.id });
      if (event.description !== null) this.send('rtc:describe', { id: event.id, uid: event.id, description: event.description });
      return;
    }
    const now = JSON.stringify(event.description);
    if (now === known) return;
    this.peers.set(event.id, now);
    this.send('rtc:describe', { id: event.id, uid: event.id, description: event.description });
  }

  /** Signalling from a peer. Only peers this endpoint knows are heard (the client has no connection for others). */
  private relayed(event: MessageEvent): void {
    const from = event.source;
    if (from === undefined || !this.peers.has(from)) return;
    if (event.kind === SDP_KIND) {
      const description = sessionDescription.safeParse(event.value);
      if (description.success) this.send('rtc:sdp', { peer: from, description: description.data });
    } else if (event.kind === CANDIDATE_KIND) {
      const data = serverEventSchemas['rtc:candidate'].safeParse({ from, candidate: event.value });
      if (data.success) this.send('rtc:candidate', data.data);
    }
  }

  private fail(e: unknown): void {
    const err = this.asCoreError(e);
    this.error(err.code, err.message);
  }

  private asCoreError(e: unknown): CoreError {
    if (isCoreError(e)) return e;
    this.ctx.log.error({ err: e }, 'unexpected error while handling an rtcpool event');
    return new CoreError('internal', 'the server failed to handle this event; it was logged');
  }

  /** `rtc:error {message, reason}`: reason is the stable code, message a sentence. */
  private error(code: ErrorCode, message: string): void {
    this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: code });
    this.send('rtc:error', { message, reason: wireErrorCode(code) });
  }

  private refuse(message: string): void {
    refuseMessage(this.flood, message, 'events', {
      close: (reason) => this.close(CLOSE.policy, reason),
      warn: (text) => this.error('rate-limited', text),
      count: (kind) => this.ctx.metrics.errors.inc({ dialect: DIALECT, kind }),
    });
  }

  private send<K extends ServerEventType>(type: K, data: ServerEventData<K>): void {
    if (this.closed) return;
    if (!this.transport.send(type, data, !PRESENCE.has(type))) {
      this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: 'too-slow' });
      this.close(CLOSE.tooSlow, 'the connection cannot keep up with the events sent to it');
    }
  }

  /** Closes for a reason of ours (the transport then reports its close, which finds us done). */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.transport.close(code, reason);
    this.cleanup();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.held = [];
    this.ctx.metrics.clients.dec({ dialect: DIALECT });
    const member = this.member;
    this.member = undefined;
    this.group = undefined;
    member?.group.remove(member, { notify: false });
  }
}
