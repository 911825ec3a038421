// Group definitions shared by the nodes of a cluster. Each node keeps its
// own groups directory (the watched GroupStore, as on a single node); this
// mirror copies every change of it (the admin API's, or an edit on disk) to
// Redis and publishes it, and writes the changes other nodes publish into
// the local directory, so that a definition changed on one node takes
// effect on every node within a second. At start, and whenever Redis comes
// back (it may have lost everything), the node adds what Redis lacks and
// takes what Redis has.
//   atrium:groupdefs           HASH group name -> the file's JSON
//   atrium:groupdefs (channel) {"node": id, "group": name} after each change
import type { Redis } from 'ioredis';
import { GroupNotFoundError, type GroupStore } from '../groups/store.ts';
import type { Logger } from '../log.ts';
import { PREFIX } from './cluster.ts';

const KEY = `${PREFIX}groupdefs`;
const CHANNEL = `${PREFIX}groupdefs`;

/** The bytes a definition is stored as, on disk and in Redis, so that every node computes the same ETag. */
function serialise(json: Record<string, unknown>): string {
  return `${JSON.stringify(json, null, 4)}\n`;
}

export class SharedGroups {
  /** What each group was last synchronised as (undefined: deleted), to tell our own changes from the cluster's. */
  private readonly synced = new Map<string, string | undefined>();
  /** Groups being written from the cluster's copy: their change events are not sent back. */
  private readonly applying = new Set<string>();
  private readonly onLocal = (name: string) => void this.localChanged(name);
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: GroupStore,
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {}

  /** Follows local changes and the cluster's; synchronises once Redis answers (and again each time it comes back). */
  start(): void {
    this.store.on('change', this.onLocal);
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === CHANNEL) void this.remoteChanged(message);
    });
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(CHANNEL).catch((e: Error) => this.log.warn({ err: e.message }, 'cannot subscribe to group definition changes'));
    });
    this.redis.on('ready', () => void this.serial(() => this.synchronise()));
    if (this.redis.status === 'ready') void this.serial(() => this.synchronise());
    // Connects in the background and again whenever Redis comes back (the cluster's options: retry forever).
    this.subscriber.on('error', () => {});
    this.subscriber.connect().catch(() => undefined);
  }

  close(): void {
    this.store.off('change', this.onLocal);
    this.subscriber.disconnect();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const run = this.queue.then(fn, fn).catch((e: Error) => {
      this.log.warn({ err: e.message }, 'group definitions: could not synchronise with Redis');
      return undefined;
    });
    this.queue = run;
    return run;
  }

  /** Adds what Redis lacks, then takes what Redis has that differs. */
  private async synchronise(): Promise<void> {
    for (const desc of this.store.list()) {
      const raw = await this.store.readRaw(desc.name);
      if (raw === undefined) continue;
      await this.redis.hsetnx(KEY, desc.name, serialise(raw.json));
    }
    const all = await this.redis.hgetall(KEY);
    for (const [name, bytes] of Object.entries(all)) {
      const raw = await this.store.readRaw(name).catch(() => undefined);
      if (raw === undefined || serialise(raw.json) !== bytes) await this.apply(name, bytes);
      else this.synced.set(name, bytes);
    }
  }

  private localChanged(name: string): void {
    if (this.applying.has(name)) return;
    void this.serial(async () => {
      const raw = await this.store.readRaw(name).catch(() => undefined);
      const bytes = raw === undefined ? undefined : serialise(raw.json);
      if (this.synced.has(name) && this.synced.get(name) === bytes) return;
      if (bytes === undefined) await this.redis.hdel(KEY, name);
      else await this.redis.hset(KEY, name, bytes);
      this.synced.set(name, bytes);
      await this.redis.publish(CHANNEL, JSON.stringify({ node: this.nodeId, group: name }));
    });
  }

  private async remoteChanged(message: string): Promise<void> {
    let m: { node?: unknown; group?: unknown };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    if (m.node === this.nodeId || typeof m.group !== 'string') return;
    const name = m.group;
    await this.serial(async () => {
      const bytes = await this.redis.hget(KEY, name);
      await this.apply(name, bytes ?? undefined);
    });
  }

  /** Writes the cluster's copy of a definition into the local directory (or deletes it). */
  private async apply(name: string, bytes: string | undefined): Promise<void> {
    this.applying.add(name);
    try {
      if (bytes === undefined) {
        await this.store.deleteRaw(name).catch((e: unknown) => {
          if (!(e instanceof GroupNotFoundError)) throw e;
        });
      } else {
        await this.store.writeRaw(name, JSON.parse(bytes) as Record<string, unknown>);
      }
      this.synced.set(name, bytes);
      this.log.info({ group: name }, bytes === undefined ? 'group deleted by another node of the cluster' : 'group definition from the cluster applied');
    } catch (e) {
      this.log.warn({ group: name, err: (e as Error).message }, 'the cluster has a group definition this node cannot use; keeping the local one');
    } finally {
      this.applying.delete(name);
    }
  }
}
