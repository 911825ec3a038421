// One Galène protocol v2 WebSocket connection: validates each frame, maps it
// to a core call, and renders core events back as frames. No rules live
// here; the core decides who may do what.
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { type ClientMessage, type ClientMessageOf, type ErrorCode, LIMITS, describeIssues, fileTransferValue, makeTokenValue, parseClientMessage } from '@atrium/protocol/galene';
import type { Client, CoreEvent } from '../../core/client.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import type { Member } from '../../core/group.ts';
import type { GroupStreams } from '../../core/streams.ts';
import type { GroupRegistry } from '../../core/registry.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import type { LivenessMonitor, LivePeer } from '../../transport/liveness.ts';
import { FloodGuard, TokenBucket, refuseMessage } from '../../transport/rate-limit.ts';
import { closeAfterQueued, discard, frameSize, queuedBytes, sendBatched } from '../../transport/ws-sender.ts';
import type { MediaRequest } from '../../core/vocabulary.ts';
import { type Place, renderEvent } from './render.ts';
import { corePermissions, layerRequest, mediaRequest } from './vocabulary.ts';

export const DIALECT = 'galene';

/** Message rates a single connection may sustain. */
export const RATES = {
  messagesPerSecond: 100,
  messageBurst: 200,
  chatPerSecond: 10,
  chatBurst: 30,
  /** Refused messages per second after which the connection is closed. */
  closeAfterRefusedPerSecond: 200,
};

/** WebSocket close codes this dialect uses (4000-4999 are application codes). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  kicked: 4001,
  duplicateId: 4002,
  badVersion: 4003,
  tooSlow: 4004,
  tooLarge: 1009,
} as const;

/** Messages kept while a join is pending before the connection counts as flooding. */
const MAX_HELD = 256;

export interface GaleneContext {
  registry: GroupRegistry;
  metrics: Metrics;
  log: Logger;
  liveness: LivenessMonitor;
  /** Client ids in use on this server. */
  activeIds: Set<string>;
}

const STREAM_TYPES = new Set(['offer', 'answer', 'ice', 'renegotiate', 'requestStream', 'close', 'abort']);

export class GaleneConnection implements Client, LivePeer {
  readonly kind = DIALECT;
  id = '';
  lastHeard = performance.now();
  private handshaken = false;
  private member: Member | undefined;
  private joining = false;
  /** Messages that arrived while a join was being decided, handled once it is. */
  private held: ClientMessage[] = [];
  private closed = false;
  private readonly bucket = new TokenBucket(RATES.messagesPerSecond, RATES.messageBurst);
  private readonly chatBucket = new TokenBucket(RATES.chatPerSecond, RATES.chatBurst);
  private readonly flood = new FloodGuard(RATES.closeAfterRefusedPerSecond);
  /** What the client asked to receive; kept for the media plane. */
  requested: MediaRequest = {};

  constructor(
    private readonly ws: WebSocket,
    private readonly place: Place,
    private readonly ctx: GaleneContext,
    /** The client's network address, for throttling failed logins. */
    private readonly address?: string | undefined,
  ) {
    ctx.metrics.clients.inc({ dialect: DIALECT });
    ctx.liveness.add(this);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('close', () => this.cleanup());
    ws.on('error', (err) => ctx.log.debug({ err }, 'galene socket error'));
  }

  // -------------------------------------------------------------------
  // Client (what the core calls)

  deliver(event: CoreEvent): void {
    // Presence updates may wait a little to be written with others.
    this.sendFrame(renderEvent(event, this.place), event.type !== 'user');
  }

  terminate(reason: string, why: 'kicked' | 'shutdown' = 'kicked'): void {
    this.close(why === 'shutdown' ? CLOSE.goingAway : CLOSE.kicked, reason);
  }

  outputBacklog(): number {
    return queuedBytes(this.ws);
  }

  // LivePeer
  ping(): void {
    this.send({ type: 'ping' });
  }

  expire(): void {
    this.close(CLOSE.policy, 'no answer to ping within 75 seconds');
  }

  // -------------------------------------------------------------------

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.lastHeard = performance.now();
    if (this.closed) return;
    if (!this.bucket.take()) return this.refuse('too many messages: at most 100 per second');
    const size = frameSize(data);
    if (size > LIMITS.frameBytes) {
      this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: 'too-large' });
      return this.close(CLOSE.tooLarge, `a frame of ${size} bytes is over the ${LIMITS.frameBytes}-byte limit`);
    }
    if (isBinary) return this.error('bad-message', 'binary frames are not part of the Galène protocol; send JSON text');
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      return this.error('bad-json', 'the frame is not valid JSON');
    }
    try {
      const parsed = parseClientMessage(frame);
      if (!parsed.ok) return this.error(parsed.error, parsed.message);
      const msg = parsed.message;
      this.ctx.metrics.messages.inc({ dialect: DIALECT, type: msg.type });
      this.dispatch(msg);
    } catch (e) {
      this.fail(e);
    }
  }

  private dispatch(msg: ClientMessage): void {
    if (msg.type === 'handshake') return this.handshake(msg);
    if (msg.type === 'ping') return this.send({ type: 'pong' });
    if (msg.type === 'pong') return;
    if (!this.handshaken) {
      throw new CoreError('bad-message', `send a "handshake" before "${msg.type}"`);
    }
    if (this.joining) {
      // Keep order: what follows a join is handled as if the join had finished.
      if (this.held.length >= MAX_HELD) return this.refuse('too many messages while a join is pending');
      this.held.push(msg);
      return;
    }
    if (msg.type === 'join') {
      void this.join(msg);
      return;
    }
    if (msg.type === 'request') {
      this.requested = mediaRequest(msg.request);
      this.member?.group.streams?.setRequest(this.member, this.requested);
      return;
    }
    const member = this.member;
    if (!member) throw new CoreError('not-joined', `join a group before sending "${msg.type}"`);
    const group = member.group;
    if (STREAM_TYPES.has(msg.type)) {
      const streams = group.streams;
      if (!streams) throw new CoreError('not-supported', `this server runs without a media engine ("${msg.type}" ignored)`);
      this.stream(streams, member, msg);
      return;
    }
    switch (msg.type) {
      case 'chat':
        if (!this.chatBucket.take()) return this.refuse('too many chat messages: at most 10 per second');
        group.chat(member, { kind: msg.kind ?? '', dest: msg.dest ?? undefined, value: msg.value, noecho: msg.noecho });
        return;
      case 'usermessage':
        if (msg.kind === 'filetransfer') checkFileTransfer(msg);
        group.relay(member, { kind: msg.kind, dest: msg.dest ?? undefined, value: msg.value, noecho: msg.noecho });
        return;
      case 'useraction':
        group.userAction(member, msg.kind, msg.dest ?? undefined, msg.value);
        return;
      case 'groupaction': {
        if (msg.kind === 'maketoken') {
          const v = makeTokenValue.safeParse(msg.value);
          if (!v.success) throw new CoreError('bad-message', `bad maketoken value: ${describeIssues(v.error)}`);
          if (v.data?.group && v.data.group !== group.name) throw new CoreError('not-permitted', 'you can only invite to the group you are in');
          const req = { username: v.data?.username, permissions: v.data?.permissions && corePermissions(v.data.permissions), expires: v.data?.expires, notBefore: v.data?.['not-before'] };
          group.makeInvite(member, req).catch((e) => this.fail(e));
          return;
        }
        group.groupAction(member, msg.kind, msg.value);
        return;
      }
    }
  }

  /** Stream negotiation: asynchronous, so errors are reported when they happen. */
  private stream(streams: GroupStreams, member: Member, msg: ClientMessage): void {
    const done = (p: Promise<void> | void) => {
      if (p) p.catch((e) => this.fail(e));
    };
    switch (msg.type) {
      case 'offer':
        return done(streams.offer(member, { id: msg.id, label: msg.label ?? '', sdp: msg.sdp, replace: msg.replace }));
      case 'answer':
        return done(streams.answer(member, msg.id, msg.sdp));
      case 'ice':
        return done(streams.candidate(member, msg.id, msg.candidate));
      case 'renegotiate':
        return done(streams.renegotiate(member, msg.id));
      case 'requestStream':
        return streams.requestStream(member, msg.id, layerRequest(msg.request));
      case 'close':
        return streams.closeUp(member, msg.id);
      case 'abort':
        return streams.abort(member, msg.id);
    }
  }

  private handshake(msg: ClientMessageOf<'handshake'>): void {
    if (this.handshaken) throw new CoreError('bad-message', 'the handshake was already done');
    if (!msg.version.includes('2')) {
      this.error('bad-version', `this server speaks Galène protocol version "2"; you offered ${JSON.stringify(msg.version)}`);
      this.close(CLOSE.badVersion, 'unsupported protocol version');
      return;
    }
    const id = msg.id || randomBytes(12).toString('base64url');
    if (this.ctx.activeIds.has(id)) {
      this.error('bad-message', `client id "${id}" is already in use on this server; pick a new random id`);
      this.close(CLOSE.duplicateId, 'duplicate client id');
      return;
    }
    this.id = id;
    this.ctx.activeIds.add(id);
    this.handshaken = true;
    this.send({ type: 'handshake', version: ['2'] });
  }

  private async join(msg: ClientMessageOf<'join'>): Promise<void> {
    if (msg.kind === 'leave') {
      const member = this.member;
      if (!member || member.group.name !== msg.group) {
        return this.error('not-joined', `you are not in group "${msg.group}"`);
      }
      this.member = undefined;
      member.group.remove(member);
      return;
    }
    if (this.member || this.joining) {
      const current = this.member ? `"${this.member.group.name}"` : 'another group';
      return this.joinFailed(msg, new CoreError('already-joined', `this connection is already in ${current}; leave it first`));
    }
    this.joining = true;
    try {
      const outcome = await this.ctx.registry.join(this, {
        group: msg.group,
        username: msg.username,
        password: msg.password,
        token: msg.token,
        data: msg.data,
        groupUrl: this.place.groupUrl(msg.group),
        address: this.address,
        via: DIALECT,
      });
      if (this.closed) {
        if (outcome.kind === 'joined') outcome.member.group.remove(outcome.member, { notify: false });
        return;
      }
      if (outcome.kind === 'redirect') {
        this.send({ type: 'joined', kind: 'redirect', group: msg.group, value: outcome.url });
        return;
      }
      this.member = outcome.member;
      if (Object.keys(this.requested).length > 0) outcome.member.group.streams?.setRequest(outcome.member, this.requested);
    } catch (e) {
      this.joinFailed(msg, e);
    } finally {
      this.joining = false;
      this.releaseHeld();
    }
  }

  private releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (let i = 0; i < held.length; i++) {
      if (this.closed) return;
      try {
        this.dispatch(held[i]!);
      } catch (e) {
        this.fail(e);
      }
      // A held join starts another wait: keep the rest for after it.
      if (this.joining) {
        this.held = held.slice(i + 1).concat(this.held);
        return;
      }
    }
  }

  private joinFailed(msg: ClientMessageOf<'join'>, e: unknown): void {
    const err = this.asCoreError(e);
    this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: err.code });
    const reply: ClientMessageOf<'join'> | Record<string, unknown> = {
      type: 'joined',
      kind: 'fail',
      group: msg.group,
      error: err.code,
      value: err.message,
      permissions: [],
    };
    if (msg.username !== undefined) reply.username = msg.username;
    this.sendFrame(JSON.stringify(reply));
  }

  private fail(e: unknown): void {
    const err = this.asCoreError(e);
    this.error(err.code, err.message);
  }

  private asCoreError(e: unknown): CoreError {
    if (isCoreError(e)) return e;
    this.ctx.log.error({ err: e }, 'unexpected error while handling a galene message');
    return new CoreError('internal', 'the server failed to handle this message; it was logged');
  }

  /** Sends an unsolicited error, as `usermessage` of kind `error`. */
  private error(code: ErrorCode, message: string): void {
    this.ctx.metrics.errors.inc({ dialect: DIALECT, kind: code });
    this.send({ type: 'usermessage', kind: 'error', error: code, value: message, privileged: true });
  }

  private refuse(message: string): void {
    refuseMessage(this.flood, message, 'messages', {
      close: (reason) => this.close(CLOSE.policy, reason),
      warn: (text) => this.error('rate-limited', text),
      count: (kind) => this.ctx.metrics.errors.inc({ dialect: DIALECT, kind }),
    });
  }

  private send(msg: Record<string, unknown> & { type: string }): void {
    this.sendFrame(JSON.stringify(msg));
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
    // Let queued frames (an error, a kick message) leave before the close frame.
    closeAfterQueued(this.ws, code, reason);
    this.cleanup();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    discard(this.ws);
    this.ctx.liveness.delete(this);
    this.ctx.metrics.clients.dec({ dialect: DIALECT });
    if (this.handshaken) this.ctx.activeIds.delete(this.id);
    const member = this.member;
    this.member = undefined;
    member?.group.remove(member, { notify: false });
  }
}

/** File-transfer control messages go to one peer and follow their own schema. */
function checkFileTransfer(msg: ClientMessageOf<'usermessage'>): void {
  if (!msg.dest) throw new CoreError('bad-message', 'a filetransfer message needs a "dest" user id');
  const r = fileTransferValue.safeParse(msg.value);
  if (!r.success) throw new CoreError('bad-message', `bad filetransfer value: ${describeIssues(r.error)}`);
}
