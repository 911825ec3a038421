// One Galène protocol v2 WebSocket connection: validates each frame, maps it
// to a core call, and renders core events back as frames. No rules live
// here; the core decides who may do what. The connection shell (rate
// limits, held messages, batched output, join timeout, liveness, close) is
// the dialect kit's (../kit/).
import { randomBytes } from 'node:crypto';
import { type ClientMessage, type ClientMessageOf, LIMITS, describeIssues, fileTransferValue, parseClientMessage, tokenTemplate } from '@atrium/protocol/galene';
import type { CoreEvent } from '../../core/client.ts';
import { CoreError } from '../../core/errors.ts';
import type { Member } from '../../core/group.ts';
import type { GroupStreams } from '../../core/streams.ts';
import type { ErrorCode, MediaRequest } from '../../core/vocabulary.ts';
import { DialectConnection, type DialectContext, type Parsed, CLOSE as SHELL_CLOSE, type Transport, type WsFrame, jsonFrame } from '../kit/index.ts';
import { TokenBucket } from '../../transport/rate-limit.ts';
import { type Place, renderEvent } from './render.ts';
import { corePermissions, layerRequest, mediaRequest, wireErrorCode } from './vocabulary.ts';

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

/** WebSocket close codes this dialect uses: the kit's, and two of its own. */
export const CLOSE = {
  ...SHELL_CLOSE,
  duplicateId: 4002,
  badVersion: 4003,
} as const;

export interface GaleneContext extends DialectContext {
  /** Client ids in use on this server. */
  activeIds: Set<string>;
}

const STREAM_TYPES = new Set(['offer', 'answer', 'ice', 'renegotiate', 'requestStream', 'close', 'abort']);
/** Answered even while a join is being decided. */
const UNHELD_TYPES = new Set(['handshake', 'ping', 'pong']);

export class GaleneConnection extends DialectConnection<ClientMessage, WsFrame> {
  id = '';
  private handshaken = false;
  private readonly chatBucket = new TokenBucket(RATES.chatPerSecond, RATES.chatBurst);
  /** What the client asked to receive; kept for the media plane. */
  requested: MediaRequest = {};

  constructor(
    transport: Transport<string, WsFrame>,
    private readonly place: Place,
    protected override readonly ctx: GaleneContext,
    /** The client's network address: for throttling failed logins, and an operator's identify. */
    readonly address?: string | undefined,
  ) {
    super(transport, ctx, { dialect: DIALECT, rates: RATES, maxFrameBytes: LIMITS.frameBytes });
  }

  // -------------------------------------------------------------------
  // Client (what the core calls)

  deliver(event: CoreEvent): void {
    // Presence updates may wait a little to be written with others.
    this.send(renderEvent(event, this.place), event.type !== 'user');
  }

  terminate(reason: string, why: 'kicked' | 'shutdown' = 'kicked'): void {
    this.close(why === 'shutdown' ? CLOSE.goingAway : CLOSE.kicked, reason);
  }

  // -------------------------------------------------------------------
  // The dialect's part of the shell

  protected parse(input: WsFrame): Parsed<ClientMessage> {
    const json = jsonFrame(input, { protocol: 'the Galène protocol' });
    if (!json.ok) return json;
    const parsed = parseClientMessage(json.value);
    return parsed.ok ? { ok: true, message: parsed.message, type: parsed.message.type } : parsed;
  }

  /** Sends an unsolicited error, as `usermessage` of kind `error`. */
  protected renderError(code: ErrorCode, message: string): string {
    return JSON.stringify({ type: 'usermessage', kind: 'error', error: wireErrorCode(code), value: message, privileged: true });
  }

  protected override pingFrame(): string {
    return '{"type":"ping"}';
  }

  protected override heldDuringJoin(msg: ClientMessage): boolean {
    return !UNHELD_TYPES.has(msg.type);
  }

  protected override onClosed(): void {
    if (this.handshaken) this.ctx.activeIds.delete(this.id);
  }

  // -------------------------------------------------------------------

  protected handle(msg: ClientMessage): void {
    if (msg.type === 'handshake') return this.handshake(msg);
    if (msg.type === 'ping') return this.sendMessage({ type: 'pong' });
    if (msg.type === 'pong') return;
    if (!this.handshaken) {
      throw new CoreError('bad-message', `send a "handshake" before "${msg.type}"`);
    }
    if (msg.type === 'join') return this.join(msg);
    if (msg.type === 'request') {
      // No request (or null): nothing.
      this.requested = mediaRequest(msg.request ?? {});
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
        if (msg.kind === 'maketoken' || msg.kind === 'edittoken' || msg.kind === 'listtokens') {
          const v = msg.value === undefined ? { success: true as const, data: undefined } : tokenTemplate.safeParse(msg.value);
          if (!v.success) throw new CoreError('bad-message', `bad ${msg.kind} value: ${describeIssues(v.error)}`);
          const t = v.data && { ...v.data, permissions: v.data.permissions && corePermissions(v.data.permissions) };
          group.tokenAction(member, msg.kind, t).catch((e) => this.fail(e));
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
        return streams.requestStream(member, msg.id, msg.request === undefined ? undefined : layerRequest(msg.request));
      case 'close':
        return streams.closeUp(member, msg.id);
      case 'abort':
        return streams.abort(member, msg.id);
    }
  }

  private handshake(msg: ClientMessageOf<'handshake'>): void {
    if (this.handshaken) throw new CoreError('bad-message', 'the handshake was already done');
    const id = msg.id || randomBytes(12).toString('base64url');
    if (this.ctx.activeIds.has(id)) {
      this.error('bad-message', `client id "${id}" is already in use on this server; pick a new random id`);
      this.close(CLOSE.duplicateId, 'duplicate client id');
      return;
    }
    this.id = id;
    this.ctx.activeIds.add(id);
    this.handshaken = true;
    this.sendMessage({ type: 'handshake', version: ['2'] });
    if (!msg.version?.includes('2')) {
      // As Galène: say so, and try to go on.
      this.count('bad-version');
      const offered = msg.version === undefined ? 'no version' : JSON.stringify(msg.version);
      this.sendMessage({
        type: 'usermessage',
        kind: 'warning',
        error: 'bad-version',
        dest: id,
        privileged: true,
        value: `this server speaks Galène protocol version "2" and you offered ${offered}; trying to continue, things may break (perhaps the client needs upgrading)`,
      });
    }
  }

  private join(msg: ClientMessageOf<'join'>): void {
    if (msg.kind === 'leave') {
      const member = this.member;
      if (!member || member.group.name !== msg.group) {
        return this.error('not-joined', `you are not in group "${msg.group}"`);
      }
      this.setMember(undefined);
      member.group.remove(member);
      return;
    }
    if (this.member || this.joining) {
      const current = this.member ? `"${this.member.group.name}"` : 'another group';
      return this.joinFailed(msg, new CoreError('already-joined', `this connection is already in ${current}; leave it first`));
    }
    void this.whileJoining(async () => {
      try {
        const outcome = await this.joinGroup({
          group: msg.group,
          username: msg.username,
          password: msg.password,
          token: msg.token,
          data: msg.data,
          groupUrl: this.place.groupUrl(msg.group),
          address: this.address,
        });
        if (outcome.kind === 'redirect') this.sendMessage({ type: 'joined', kind: 'redirect', group: msg.group, value: outcome.url });
        else if (outcome.kind === 'joined' && Object.keys(this.requested).length > 0) outcome.member.group.streams?.setRequest(outcome.member, this.requested);
      } catch (e) {
        this.joinFailed(msg, e);
      }
    });
  }

  private joinFailed(msg: ClientMessageOf<'join'>, e: unknown): void {
    const err = this.asCoreError(e);
    this.count(err.code);
    const reply: ClientMessageOf<'join'> | Record<string, unknown> = {
      type: 'joined',
      kind: 'fail',
      group: msg.group,
      error: wireErrorCode(err.code),
      value: err.message,
      permissions: [],
    };
    if (msg.username !== undefined) reply.username = msg.username;
    this.send(JSON.stringify(reply));
  }

  private sendMessage(msg: Record<string, unknown> & { type: string }): void {
    this.send(JSON.stringify(msg));
  }
}

/** File-transfer control messages go to one peer and follow their own schema. */
function checkFileTransfer(msg: ClientMessageOf<'usermessage'>): void {
  if (!msg.dest) throw new CoreError('bad-message', 'a filetransfer message needs a "dest" user id');
  const r = fileTransferValue.safeParse(msg.value);
  if (!r.success) throw new CoreError('bad-message', `bad filetransfer value: ${describeIssues(r.error)}`);
}
