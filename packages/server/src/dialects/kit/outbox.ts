// Batched output, bounded in bytes. A join in a group of N members sends a
// frame to each of them; written one by one, a join storm costs N system
// calls per join. Frames are queued per connection and handed to its
// transport together: at the end of the current turn of the event loop when
// one of them is urgent (chat, replies), or within LAZY_FLUSH_MS when all are
// presence updates, which nobody waits for. A connection's frames always
// leave in the order queued. One immediate and one timer serve every
// connection of every dialect.
import type { Transport } from './transport.ts';

/** How long presence-only output (user add/change/delete) may wait. */
export const LAZY_FLUSH_MS = 150;

/**
 * Output a connection may have waiting, in bytes: what is queued here plus
 * what its transport holds (ws, the socket, engine.io, a BOSH session). A
 * reader that lets more pile up is too slow and is closed.
 */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

const urgent = new Set<Outbox<unknown>>();
const lazy = new Set<Outbox<unknown>>();
let immediate: NodeJS.Immediate | undefined;
let lazyTimer: NodeJS.Timeout | undefined;

function flushUrgent(): void {
  immediate = undefined;
  for (const box of [...urgent]) box.flush();
}

function flushLazy(): void {
  lazyTimer = undefined;
  for (const box of [...lazy]) box.flush();
}

/** The output queue of one connection. */
export class Outbox<Out> {
  private frames: Out[] = [];
  private sizes: number[] = [];
  /** Bytes queued here, not yet handed to the transport. */
  bytes = 0;

  constructor(
    private readonly transport: Transport<Out>,
    private readonly maxBytes = MAX_QUEUED_BYTES,
  ) {}

  /** Bytes waiting for this connection: queued here and held by the transport. */
  get backlog(): number {
    return this.bytes + this.transport.bufferedAmount;
  }

  /**
   * Queues a frame. Returns false, queueing nothing and dropping what was
   * queued, when the connection is over its byte limit: the caller closes it.
   */
  push(frame: Out, isUrgent: boolean): boolean {
    const size = this.transport.sizeOf(frame);
    if (this.backlog + size > this.maxBytes) {
      this.discard();
      return false;
    }
    this.frames.push(frame);
    this.sizes.push(size);
    this.bytes += size;
    if (isUrgent) {
      urgent.add(this as Outbox<unknown>);
      if (immediate === undefined) immediate = setImmediate(flushUrgent);
    } else {
      lazy.add(this as Outbox<unknown>);
      if (lazyTimer === undefined) lazyTimer = setTimeout(flushLazy, LAZY_FLUSH_MS);
    }
    return true;
  }

  /** Hands everything queued to the transport now (before a close, say). */
  flush(): void {
    urgent.delete(this as Outbox<unknown>);
    lazy.delete(this as Outbox<unknown>);
    if (this.frames.length === 0) return;
    const { frames, sizes } = this;
    this.frames = [];
    this.sizes = [];
    this.bytes = 0;
    if (this.transport.sendBatch) this.transport.sendBatch(frames, sizes);
    else for (const f of frames) this.transport.send(f);
  }

  /** Forgets what is queued (the connection is gone, or too slow to be worth it). */
  discard(): void {
    urgent.delete(this as Outbox<unknown>);
    lazy.delete(this as Outbox<unknown>);
    this.frames = [];
    this.sizes = [];
    this.bytes = 0;
  }
}
