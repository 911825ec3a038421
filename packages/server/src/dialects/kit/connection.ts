// The connection shell every dialect shares (see index.ts for the whole
// kit). A dialect's connection extends DialectConnection and writes only
// what is its own: how a frame parses, what each message does in core
// calls, how a core event and an error look on its wire. The shell does the
// rest, the same way for every dialect: rate limits and the frame-size
// limit on input, the queue of messages held while a join is decided,
// batched output bounded in bytes (a reader that cannot keep up is closed),
// the join timeout, liveness, closing with a reason, and the cleanup.
import type { Client, CoreEvent } from '../../core/client.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import type { Member } from '../../core/group.ts';
import type { GroupRegistry, JoinOutcome, JoinRequest } from '../../core/registry.ts';
import type { ErrorCode } from '../../core/vocabulary.ts';
import type { Logger } from '../../log.ts';
import type { Metrics } from '../../metrics.ts';
import type { LivenessMonitor, LivePeer } from '../../transport/liveness.ts';
import { FloodGuard, TokenBucket, refuseMessage } from '../../transport/rate-limit.ts';
import { MAX_QUEUED_BYTES, Outbox } from './outbox.ts';
import type { Transport, TransportSink } from './transport.ts';

/** How long a connection may stay without joining a group, by default. */
export const DEFAULT_JOIN_TIMEOUT_MS = 30_000;

/** Messages kept while a join is pending before the connection counts as flooding. */
export const MAX_HELD_DURING_JOIN = 256;

/** Close codes the shell uses (WebSocket's; 4000-4999 are application codes). A dialect may add its own. */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooLarge: 1009,
  kicked: 4001,
  tooSlow: 4004,
} as const;

/** What the server lends every connection of every dialect. */
export interface DialectContext {
  registry: GroupRegistry;
  metrics: Metrics;
  log: Logger;
  liveness: LivenessMonitor;
  /** A connection that has not joined a group within this many milliseconds is closed (0: never). */
  joinTimeoutMs: number;
}

/** Message rates a single connection may sustain. */
export interface Rates {
  messagesPerSecond: number;
  messageBurst: number;
  /** Refused messages per second after which the connection is closed. */
  closeAfterRefusedPerSecond: number;
}

/** What a dialect tells the shell about itself. */
export interface ShellOptions {
  /** The dialect's name: Client.kind, and the `dialect` label of the metrics. */
  dialect: string;
  rates: Rates;
  /** Largest frame accepted, in bytes; a larger one closes the connection (1009) with the reason. */
  maxFrameBytes: number;
  /** What the peer sends, in sentences: "messages" (default), "events", "stanzas". */
  noun?: Noun;
  /** Send the dialect's error before closing for a too-large frame (default: just close, with the reason). */
  tellTooLarge?: boolean;
  /** The sentence for a peer that sends too much while its join is pending. */
  holdOverflow?: string;
  /** Output a connection may have waiting, in bytes (default MAX_QUEUED_BYTES). */
  maxQueuedBytes?: number;
}

/** What a dialect calls its peer's frames in sentences (the plural; the singular drops the final s). */
export type Noun = 'messages' | 'events' | 'stanzas';

/** A parsed frame: the message and its type (for the metrics), or why it was refused. */
export type Parsed<Msg> = { ok: true; message: Msg; type: string } | { ok: false; error: ErrorCode; message: string };

/**
 * One connection of a dialect: a core Client over a Transport. `Msg` is a
 * parsed message, `In` a frame as the transport receives it, `Out` a frame
 * as the transport sends it.
 */
export abstract class DialectConnection<Msg, In, Out = string> implements Client, LivePeer, TransportSink<In> {
  abstract readonly id: string;
  readonly kind: string;
  /** performance.now() of the last sign of life from the peer. */
  lastHeard = performance.now();
  /** True once the connection is closed, by either side; nothing is sent after. */
  protected closed = false;
  #member: Member | undefined;
  /** In a group (the member, or for XMPP, any of its rooms): the join timeout does not apply. */
  #joined = false;
  #joining = false;
  #held: Msg[] = [];
  #joinTimer: NodeJS.Timeout | undefined;
  /** The join timeout passed while a join was being decided: it is applied when the join ends. */
  #joinOverdue = false;
  readonly #outbox: Outbox<Out>;
  readonly #bucket: TokenBucket;
  readonly #flood: FloodGuard;
  readonly #noun: Noun;
  #closedListeners: (() => void)[] = [];

  constructor(
    protected readonly transport: Transport<Out, In>,
    protected readonly ctx: DialectContext,
    private readonly shell: ShellOptions,
  ) {
    this.kind = shell.dialect;
    this.#noun = shell.noun ?? 'messages';
    this.#outbox = new Outbox(transport, shell.maxQueuedBytes ?? MAX_QUEUED_BYTES);
    this.#bucket = new TokenBucket(shell.rates.messagesPerSecond, shell.rates.messageBurst);
    this.#flood = new FloodGuard(shell.rates.closeAfterRefusedPerSecond);
    ctx.metrics.clients.inc({ dialect: shell.dialect });
    if (!transport.keepsItselfAlive) ctx.liveness.add(this);
    this.#armJoinTimer();
    transport.attach(this);
  }

  // -------------------------------------------------------------------
  // What the dialect writes.

  /** Decodes and validates one frame; may throw (the error is reported as `internal`). */
  protected abstract parse(input: In): Parsed<Msg>;

  /** Does what a message asks, in core calls; a thrown CoreError (or a rejected promise) becomes the dialect's error. */
  protected abstract handle(msg: Msg): void | Promise<void>;

  /** The dialect's error frame; undefined when its wire has no way to say it. */
  protected abstract renderError(code: ErrorCode, message: string): Out | undefined;

  /** Hands the client a core event (Client.deliver): render it and `send` it. */
  abstract deliver(event: CoreEvent): void;

  /** Ends the session (Client.terminate): say goodbye the dialect's way, then `close`. */
  abstract terminate(reason: string, why?: 'kicked' | 'shutdown'): void;

  /** The dialect's own ping frame; undefined to use the transport's (a WebSocket ping). */
  protected pingFrame(): Out | undefined {
    return undefined;
  }

  /** Whether a message that arrives while a join is pending waits for it (default: all do). */
  protected heldDuringJoin(_msg: Msg): boolean {
    return true;
  }

  /** Called once when the connection is closed, after the member has left: the dialect's own cleanup. */
  protected onClosed(): void {}

  // -------------------------------------------------------------------
  // Input (TransportSink).

  receive(input: In, size: number): void {
    this.lastHeard = performance.now();
    if (this.closed) return;
    const { rates, maxFrameBytes } = this.shell;
    if (!this.#bucket.take()) return this.refuse(`too many ${this.#noun}: at most ${rates.messagesPerSecond} per second`);
    if (size > maxFrameBytes) {
      const why = `a frame of ${size} bytes is over the ${maxFrameBytes}-byte limit`;
      if (this.shell.tellTooLarge) this.error('too-large', why);
      else this.count('too-large');
      return this.close(CLOSE.tooLarge, why);
    }
    let parsed: Parsed<Msg>;
    try {
      parsed = this.parse(input);
    } catch (e) {
      return this.fail(e);
    }
    if (!parsed.ok) return this.error(parsed.error, parsed.message);
    this.ctx.metrics.messages.inc({ dialect: this.kind, type: parsed.type });
    if (this.#joining && this.heldDuringJoin(parsed.message)) {
      // Keep order: what follows a join is handled as if the join had finished.
      if (this.#held.length >= MAX_HELD_DURING_JOIN) return this.refuse(this.shell.holdOverflow ?? `too many ${this.#noun} while a join is pending`);
      this.#held.push(parsed.message);
      return;
    }
    this.#run(parsed.message);
  }

  heard(): void {
    this.lastHeard = performance.now();
  }

  transportClosed(): void {
    this.#cleanup();
  }

  #run(msg: Msg): void {
    try {
      const p = this.handle(msg);
      if (p) p.catch((e: unknown) => this.fail(e));
    } catch (e) {
      this.fail(e);
    }
  }

  // -------------------------------------------------------------------
  // Membership.

  /** The member this connection is, once a join succeeded. */
  protected get member(): Member | undefined {
    return this.#member;
  }

  /** Whether a join is being decided. */
  protected get joining(): boolean {
    return this.#joining;
  }

  /**
   * Runs a join: messages that arrive meanwhile wait (see heldDuringJoin)
   * and are handled, in order, once `work` is done. `work` decides the
   * outcome and calls `setMember` when the client is in.
   */
  protected async whileJoining(work: () => Promise<void>): Promise<void> {
    this.#joining = true;
    try {
      await work();
    } finally {
      this.#joining = false;
      if (this.#joinOverdue && !this.#joined) this.#joinTimedOut();
      this.#releaseHeld();
    }
  }

  /**
   * Asks the registry to admit this client (call it inside whileJoining).
   * Joined: the client is now that member. 'closed': the connection went
   * away meanwhile (the member, if admitted, has left again). Throws a
   * CoreError when the join is refused.
   */
  protected async joinGroup(req: Omit<JoinRequest, 'via'>): Promise<JoinOutcome | { kind: 'closed' }> {
    const outcome = await this.ctx.registry.join(this, { ...req, via: this.kind });
    if (this.closed) {
      if (outcome.kind === 'joined') outcome.member.group.remove(outcome.member, { notify: false });
      return { kind: 'closed' };
    }
    if (outcome.kind === 'joined') this.setMember(outcome.member);
    return outcome;
  }

  /** The client is now this member (a join succeeded), or none (it left; the join timeout starts again). */
  protected setMember(member: Member | undefined): void {
    this.#member = member;
    this.setJoined(member !== undefined);
  }

  /**
   * For a dialect whose members are not the connection itself (XMPP: one
   * per room, each a Client of its own, which outlive the connection when
   * the session is resumable): the connection is in a group now, so the join
   * timeout stops, or in none any more, so it starts again. The shell
   * removes no member of these at cleanup; the dialect does.
   */
  protected setJoined(joined: boolean): void {
    this.#joined = joined;
    if (joined) {
      clearTimeout(this.#joinTimer);
      this.#joinTimer = undefined;
      this.#joinOverdue = false;
    } else if (this.#joinTimer === undefined) {
      this.#armJoinTimer();
    }
  }

  #releaseHeld(): void {
    const held = this.#held;
    this.#held = [];
    for (let i = 0; i < held.length; i++) {
      if (this.closed) return;
      this.#run(held[i]!);
      // A held join starts another wait: keep the rest for after it.
      if (this.#joining) {
        this.#held = held.slice(i + 1).concat(this.#held);
        return;
      }
    }
  }

  #armJoinTimer(): void {
    const ms = this.ctx.joinTimeoutMs;
    if (!(ms > 0) || this.closed) return;
    this.#joinTimer = setTimeout(() => {
      this.#joinTimer = undefined;
      if (this.closed || this.#joined) return;
      if (this.#joining) this.#joinOverdue = true;
      else this.#joinTimedOut();
    }, ms);
    this.#joinTimer.unref();
  }

  #joinTimedOut(): void {
    this.#joinOverdue = false;
    const seconds = Math.round(this.ctx.joinTimeoutMs / 100) / 10;
    const why = `no group joined within ${seconds} second${seconds === 1 ? '' : 's'}`;
    this.error('not-joined', `${why}: join as soon as you connect; the connection is closed`);
    this.close(CLOSE.policy, why);
  }

  // -------------------------------------------------------------------
  // Output.

  /** Queues a frame; `urgent: false` lets it wait a little (presence), never overtaking. */
  protected send(frame: Out, urgent = true): void {
    if (this.closed) return;
    if (!this.#outbox.push(frame, urgent)) {
      this.count('too-slow');
      this.close(CLOSE.tooSlow, `the connection cannot keep up with the ${this.#noun} sent to it`);
    }
  }

  /** Bytes queued for this client and not yet on the network (Client.outputBacklog). */
  outputBacklog(): number {
    return this.#outbox.backlog;
  }

  /** Reports a refusal the dialect's way, counted in the metrics. */
  protected error(code: ErrorCode, message: string): void {
    this.count(code);
    const frame = this.renderError(code, message);
    if (frame !== undefined) this.send(frame);
  }

  /** Reports a failure: a CoreError as it is, anything else as `internal` (and logged, with its stack). */
  protected fail(e: unknown): void {
    const err = this.asCoreError(e);
    this.error(err.code, err.message);
  }

  protected asCoreError(e: unknown): CoreError {
    if (isCoreError(e)) return e;
    const what = this.#noun.slice(0, -1);
    this.ctx.log.error({ err: e }, `unexpected error while handling a ${this.kind} ${what}`);
    return new CoreError('internal', `the server failed to handle this ${what}; it was logged`);
  }

  /** A message dropped for exceeding a rate: one warning a second, then a close if the peer keeps going. */
  protected refuse(message: string): void {
    refuseMessage(this.#flood, message, this.#noun, {
      close: (reason) => this.close(CLOSE.policy, reason),
      warn: (text) => this.error('rate-limited', text),
      count: (kind) => this.count(kind),
    });
  }

  /** Counts an error or a close for abuse in the metrics. */
  protected count(kind: string): void {
    this.ctx.metrics.errors.inc({ dialect: this.kind, kind });
  }

  // -------------------------------------------------------------------
  // Liveness (LivePeer) and the end.

  ping(): void {
    const frame = this.pingFrame();
    if (frame !== undefined) this.send(frame);
    else this.transport.ping?.();
  }

  expire(): void {
    this.close(CLOSE.policy, 'no answer to ping within 75 seconds');
  }

  /** Calls `listener` once the connection is closed, by either side. */
  onceClosed(listener: () => void): void {
    if (this.closed) listener();
    else this.#closedListeners.push(listener);
  }

  /** Closes for a reason of ours, after what is queued (an error, a goodbye) has gone out. */
  protected close(code: number, reason: string): void {
    if (this.closed) return;
    this.#outbox.flush();
    this.transport.close(code, reason);
    this.#cleanup();
  }

  #cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.#held = [];
    this.#outbox.discard();
    clearTimeout(this.#joinTimer);
    this.#joinTimer = undefined;
    this.ctx.liveness.delete(this);
    this.ctx.metrics.clients.dec({ dialect: this.kind });
    const member = this.#member;
    this.#member = undefined;
    member?.group.remove(member, { notify: false });
    this.onClosed();
    const listeners = this.#closedListeners;
    this.#closedListeners = [];
    for (const l of listeners) l();
  }
}
