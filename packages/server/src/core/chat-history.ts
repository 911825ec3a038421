// The chat history of one group: public messages, oldest first, pruned by
// age (the group's max-history-age), by count and by bytes so memory stays
// bounded whatever the members post; and its replay to a joiner, in pages
// that wait for the joiner's connection to drain, so a long history never
// arrives as one burst that a connection cannot take.
import type { ChatEvent, Client, CoreEvent } from './client.ts';

/** At most this many messages are kept per group. */
export const MAX_HISTORY_ENTRIES = 500;

/** At most this many bytes of messages are kept per group (see `historyBytes`); the oldest go first. */
export const MAX_HISTORY_BYTES = 1024 * 1024;

/** A replay hands a joiner at most this many bytes at a time… */
export const REPLAY_PAGE_BYTES = 64 * 1024;

/** …and waits while more than this is still queued for its connection. */
export const REPLAY_HIGH_WATER_BYTES = 256 * 1024;

/** How often a replay looks again at a connection that is still busy. */
const REPLAY_POLL_MS = 20;

/** What the frame around a message costs on the wire, roughly: type, kind, ids, time. */
const FRAME_OVERHEAD_BYTES = 160;

/**
 * What one message costs, in bytes as it goes on the wire: its text and
 * names as JSON strings (escapes included) and the frame around them.
 */
export function historyBytes(e: ChatEvent): number {
  return FRAME_OVERHEAD_BYTES + jsonBytes(e.value) + jsonBytes(e.username ?? '') + jsonBytes(e.source ?? '');
}

function jsonBytes(s: string): number {
  return Buffer.byteLength(JSON.stringify(s));
}

interface Entry {
  event: ChatEvent;
  bytes: number;
}

export class ChatHistory {
  private entries: Entry[] = [];
  private total = 0;

  constructor(
    private maxAgeSeconds: number,
    private readonly maxBytes = MAX_HISTORY_BYTES,
  ) {}

  setMaxAge(seconds: number): void {
    this.maxAgeSeconds = seconds;
  }

  add(event: ChatEvent, now = Date.now()): void {
    const bytes = historyBytes(event);
    this.entries.push({ event, bytes });
    this.total += bytes;
    let drop = 0;
    let total = this.total;
    while (drop < this.entries.length - 1 && (this.entries.length - drop > MAX_HISTORY_ENTRIES || total > this.maxBytes)) {
      total -= this.entries[drop]!.bytes;
      drop++;
    }
    this.dropOldest(drop);
    this.prune(now);
  }

  /** Entries young enough to replay, oldest first, marked as history. */
  replay(now = Date.now()): ChatEvent[] {
    this.prune(now);
    return this.entries.map((e) => ({ ...e.event, history: true }));
  }

  /** Everything; or, as Galène, the messages of one user (`userId`), or just one of them (`id`). */
  clear(id?: string, userId?: string): void {
    if (!id && !userId) {
      this.entries = [];
      this.total = 0;
      return;
    }
    this.entries = this.entries.filter((e) => !(e.event.source === userId && (!id || e.event.id === id)));
    this.total = this.entries.reduce((sum, e) => sum + e.bytes, 0);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Bytes held, as `historyBytes` counts them. */
  get bytes(): number {
    return this.total;
  }

  private prune(now: number): void {
    const oldest = now - this.maxAgeSeconds * 1000;
    let drop = 0;
    while (drop < this.entries.length && this.entries[drop]!.event.time.getTime() < oldest) drop++;
    this.dropOldest(drop);
  }

  private dropOldest(n: number): void {
    if (n === 0) return;
    for (let i = 0; i < n; i++) this.total -= this.entries[i]!.bytes;
    this.entries.splice(0, n);
  }
}

/**
 * The history on its way to one joiner. The first page goes at once; each
 * next one when the connection has written out most of what it holds
 * (`Client.outputBacklog`), so the joiner gets everything however slow its
 * link, and the server never holds more than a page or two for it. Chat
 * that arrives meanwhile is queued behind the history, so the joiner sees
 * everything in order; the queue is bounded like the history itself.
 */
export class HistoryReplay {
  private queue: Entry[];
  private queued: number;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly client: Client,
    history: ChatEvent[],
    private readonly onDone: () => void,
  ) {
    this.queue = history.map((event) => ({ event, bytes: historyBytes(event) }));
    this.queued = this.queue.reduce((n, e) => n + e.bytes, 0);
  }

  /** Sends the first page; the rest follows on its own. */
  start(): void {
    this.pump();
  }

  /** A chat event for the joiner while the replay runs: it goes out after the history. */
  push(event: CoreEvent): void {
    const bytes = event.type === 'chat' ? historyBytes(event) : FRAME_OVERHEAD_BYTES;
    this.queue.push({ event: event as ChatEvent, bytes });
    this.queued += bytes;
    // A joiner that reads nothing must not make the server hold an unbounded queue for it.
    while (this.queued > 2 * MAX_HISTORY_BYTES && this.queue.length > 1) this.queued -= this.queue.shift()!.bytes;
  }

  /**
   * The chat was cleared: nothing still queued (all of it older than the
   * clear) is sent; or, when only one user's messages (or one of them) were
   * deleted, none of those.
   */
  clearHistory(id?: string, userId?: string): void {
    if (!id && !userId) {
      this.queue = [];
      this.queued = 0;
      return;
    }
    this.queue = this.queue.filter((e) => !(e.event.type === 'chat' && e.event.source === userId && (!id || e.event.id === id)));
    this.queued = this.queue.reduce((sum, e) => sum + e.bytes, 0);
  }

  /** The joiner left: nothing more is sent. */
  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.queued = 0;
    this.finish();
  }

  private pump(): void {
    this.timer = undefined;
    if (this.done) return;
    let sent = 0;
    while (this.queue.length > 0 && sent < REPLAY_PAGE_BYTES && (this.client.outputBacklog?.() ?? 0) <= REPLAY_HIGH_WATER_BYTES) {
      const e = this.queue.shift()!;
      this.queued -= e.bytes;
      sent += e.bytes;
      this.client.deliver(e.event);
    }
    if (this.queue.length === 0) return this.finish();
    // Nothing went out: the connection is still busy with what it has.
    this.timer = setTimeout(() => this.pump(), sent === 0 ? REPLAY_POLL_MS : 0);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
  }
}
