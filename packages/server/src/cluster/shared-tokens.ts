// Stateful tokens (invitations) shared by the nodes of a cluster. Each node
// keeps its own token file (auth/tokens.ts, as on a single node, and what
// it goes on with while Redis is away); this mirror copies every change of
// it to Redis and takes the other nodes' changes into the file. A token made
// on one node opens its group on every node at once: each token check
// refreshes the store, and the refresh first compares one counter in Redis
// with the one last seen (one round trip; nothing when Redis is down).
// A removed token stays in Redis as a tombstone, so that a node that was
// away when it was removed drops it instead of bringing it back.
//   atrium:tokens            HASH token -> its JSON, or {"removed": <ms>}
//   atrium:tokens:version    counter, incremented after each change
//   atrium:tokens (channel)  {"node": id} after each change (the others pull)
import type { Redis } from 'ioredis';
import type { StatefulToken, TokenStore } from '../auth/tokens.ts';
import type { Logger } from '../log.ts';
import { PREFIX } from './cluster.ts';

const KEY = `${PREFIX}tokens`;
const VERSION = `${PREFIX}tokens:version`;
const CHANNEL = `${PREFIX}tokens`;

type Stored = StatefulToken | { removed: number };

function parse(bytes: string): Stored | undefined {
  try {
    const v = JSON.parse(bytes) as unknown;
    if (typeof v !== 'object' || v === null) return undefined;
    if (typeof (v as { removed?: unknown }).removed === 'number') return { removed: (v as { removed: number }).removed };
    if (typeof (v as { token?: unknown }).token === 'string' && typeof (v as { group?: unknown }).group === 'string') return v as StatefulToken;
  } catch {
    // Not ours: ignored below.
  }
  return undefined;
}

export class SharedTokens {
  /** The version of Redis's tokens this node has taken in (undefined: not synchronised yet). */
  private seen: string | undefined;
  /** Tokens being written from the cluster's copy: their change events are not sent back. */
  private readonly applying = new Set<string>();
  /** Local changes Redis has not got yet (it was away): pushed when it is back, over what Redis has. */
  private readonly unsent = new Set<string>();
  private stopFollowing: (() => void) | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: TokenStore,
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {}

  /** Follows local changes and the cluster's; synchronises once Redis answers (and again each time it comes back). */
  start(): void {
    this.stopFollowing = this.store.onChange((token) => this.localChanged(token));
    this.store.setBeforeRefresh(() => this.pullIfChanged());
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== CHANNEL) return;
      try {
        if ((JSON.parse(message) as { node?: unknown }).node === this.nodeId) return;
      } catch {
        return;
      }
      void this.pullIfChanged();
    });
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(CHANNEL).catch((e: Error) => this.log.warn({ err: e.message }, 'cannot subscribe to token changes'));
    });
    this.redis.on('ready', () => void this.serial(() => this.synchronise()));
    if (this.redis.status === 'ready') void this.serial(() => this.synchronise());
    this.subscriber.on('error', () => {});
    this.subscriber.connect().catch(() => undefined);
  }

  close(): void {
    this.stopFollowing?.();
    this.store.setBeforeRefresh(undefined);
    this.subscriber.disconnect();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const run = this.queue.then(fn, fn).catch((e: Error) => {
      this.log.warn({ err: e.message }, 'stateful tokens: could not synchronise with Redis');
      return undefined;
    });
    this.queue = run;
    return run;
  }

  /** Adds what Redis lacks (and what changed here while it was away), then takes what Redis has. */
  private async synchronise(): Promise<void> {
    for (const t of this.store.list()) {
      if (this.unsent.has(t.token)) await this.redis.hset(KEY, t.token, JSON.stringify(t));
      else await this.redis.hsetnx(KEY, t.token, JSON.stringify(t));
    }
    for (const token of this.unsent) {
      if (this.store.get(token) === undefined) await this.redis.hset(KEY, token, JSON.stringify({ removed: Date.now() }));
    }
    if (this.unsent.size > 0) await this.redis.incr(VERSION);
    this.unsent.clear();
    this.seen = undefined;
    await this.pull();
  }

  /** Pulls when the counter moved since the last pull. Quiet when Redis is away: the node goes on with its own file. */
  private pullIfChanged(): Promise<void> {
    if (this.redis.status !== 'ready') return Promise.resolve();
    return this.serial(async () => {
      const version = await this.redis.get(VERSION);
      if (this.seen !== undefined && version === this.seen) return;
      await this.pull();
    }).then(() => undefined);
  }

  private async pull(): Promise<void> {
    const version = (await this.redis.get(VERSION)) ?? '0';
    const all = await this.redis.hgetall(KEY);
    for (const [token, bytes] of Object.entries(all)) {
      const stored = parse(bytes);
      if (stored === undefined) continue;
      const mine = this.store.get(token);
      if ('removed' in stored) {
        if (mine !== undefined) await this.apply(token, undefined);
      } else if (mine === undefined || JSON.stringify(mine) !== JSON.stringify(stored)) {
        await this.apply(token, stored);
      }
    }
    this.seen = version;
  }

  private async apply(token: string, t: StatefulToken | undefined): Promise<void> {
    this.applying.add(token);
    try {
      if (t === undefined) await this.store.delete(token);
      else await this.store.put(t);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'the cluster has a token this node cannot store; keeping the local copy');
    } finally {
      this.applying.delete(token);
    }
  }

  private localChanged(token: string): void {
    if (this.applying.has(token)) return;
    this.unsent.add(token);
    if (this.redis.status !== 'ready') return;
    void this.serial(async () => {
      if (!this.unsent.has(token)) return;
      const current = this.store.get(token);
      await this.redis.hset(KEY, token, JSON.stringify(current ?? { removed: Date.now() }));
      const version = await this.redis.incr(VERSION);
      this.unsent.delete(token);
      // Our own change is in; the next pull need not fetch it back unless someone else changed something too.
      if (this.seen !== undefined && Number(this.seen) === version - 1) this.seen = String(version);
      await this.redis.publish(CHANNEL, JSON.stringify({ node: this.nodeId }));
    });
  }
}
