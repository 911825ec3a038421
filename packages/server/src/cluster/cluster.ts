// This node's membership of a cluster, through Redis (ioredis): it
// registers itself (addresses, region, load, draining) under a key that
// expires unless its heartbeat renews it, holds a lease on each group it
// serves, places new groups on the least loaded live node, and keeps a
// snapshot of the other nodes for the pages and lists. No consensus of our
// own: the owner of a group is one Redis key, set atomically (a Lua script:
// set if absent, or if the node holding it is gone) and renewed while the
// group lives here; a dead node's keys simply expire.
//
// Keys (PREFIX = "atrium:"):
//   atrium:node:<id>      JSON NodeRecord, PX NODE_TTL, renewed every heartbeat
//   atrium:nodes          SET of node ids (pruned of ids whose record expired)
//   atrium:owner:<group>  the id of the node that holds the group, PX LEASE
//
// When Redis is unreachable the node goes on alone: it keeps its groups,
// places new ones on itself, and says "degraded" on /readyz; when Redis is
// back it registers again and re-takes its leases (a group some other node
// took meanwhile is handed over: its members here are sent to reconnect).
import { Redis } from 'ioredis';
import type { RemoteNode } from '../core/registry.ts';
import type { Logger } from '../log.ts';

export const PREFIX = 'atrium:';

export interface ClusterTimings {
  /** How often the node renews its record and its leases (default 1000 ms). */
  heartbeatMs: number;
  /** How long a node's record lives without a heartbeat: a node silent this long is dead (default 3000 ms). */
  nodeTtlMs: number;
  /** How long a group's lease lives without renewal (default 6000 ms). */
  leaseMs: number;
}

export const DEFAULT_TIMINGS: ClusterTimings = { heartbeatMs: 1000, nodeTtlMs: 3000, leaseMs: 6000 };

export interface ClusterOptions {
  redisUrl: string;
  nodeId: string;
  /** This node's base URL for clients (through the load balancer). */
  publicUrl: string;
  /** This node's base URL for the other nodes (known once it listens). */
  internalUrl: () => string;
  /** Groups whose file names a region are placed on nodes of that region when one is live. */
  region?: string | undefined;
  labels?: string[] | undefined;
  timings?: Partial<ClusterTimings> | undefined;
  log: Logger;
  /** What this node carries now, for placement and the other nodes' pages. */
  load(): NodeLoad;
}

/** A group as its owner reports it (for the other nodes' .status and lists). */
export interface GroupSummary {
  clients: number;
  locked: boolean;
}

export interface NodeLoad {
  clients: number;
  streams: number;
  groups: Record<string, GroupSummary>;
}

/** What a node says of itself in Redis. */
export interface NodeRecord extends RemoteNode {
  region?: string | undefined;
  labels: string[];
  draining: boolean;
  clients: number;
  streams: number;
  /** CPU used by the process over the last heartbeat, in percent of one core. */
  cpu: number;
  groups: Record<string, GroupSummary>;
  startedAt: string;
}

export type RedisState = 'connecting' | 'up' | 'down';

export interface ClusterEvents {
  /** A group this node served is held by another node now (Redis came back, or this node was cut off too long). */
  leaseLost(group: string, owner: string): void;
  /** Redis answers again, or stopped answering. */
  redis(state: RedisState): void;
}

/** Set the owner if there is none, or if the node holding it is gone; returns the owner. */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur and redis.call('EXISTS', ARGV[3] .. cur) == 1 then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]`;

/** Renews each lease held by ARGV[1], re-takes those that expired or whose holder is gone; returns the others' holders ('' where renewed). */
const RENEW = `
local out = {}
for i, k in ipairs(KEYS) do
  local cur = redis.call('GET', k)
  if cur == ARGV[1] then
    redis.call('PEXPIRE', k, ARGV[2])
    out[i] = ''
  elseif (not cur) or redis.call('EXISTS', ARGV[3] .. cur) == 0 then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
    out[i] = ''
  else
    out[i] = cur
  end
end
return out`;

/** Deletes a lease if ARGV[1] still holds it. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

interface ClusterRedis extends Redis {
  atriumClaim(key: string, candidate: string, leaseMs: number, nodePrefix: string): Promise<string>;
  atriumRenew(...args: (string | number)[]): Promise<string[]>;
  atriumRelease(key: string, node: string): Promise<number>;
}

/** Redis options for a node: fail fast while Redis is away (the node goes on alone), reconnect forever. */
export function redisOptions(name: string) {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 1500,
    connectTimeout: 2000,
    connectionName: name,
    retryStrategy: (times: number) => Math.min(200 * times, 1000),
  };
}

export class Cluster {
  readonly nodeId: string;
  readonly redis: ClusterRedis;
  private readonly opts: ClusterOptions;
  private readonly timings: ClusterTimings;
  private readonly log: Logger;
  private readonly listeners: { [E in keyof ClusterEvents]: ClusterEvents[E][] } = { leaseLost: [], redis: [] };
  /** Groups whose lease this node holds, with when it took them (a lease nobody used is let go). */
  private readonly held = new Map<string, number>();
  /** The other live nodes as the last heartbeat saw them. */
  private nodes = new Map<string, NodeRecord>();
  /** Placements made since the last snapshot, so that a burst of new groups spreads. */
  private readonly recentlyPlaced = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private state: RedisState = 'connecting';
  private draining = false;
  private beating = false;
  private stopped = false;
  private cpuMark = { usage: process.cpuUsage(), at: performance.now() };
  private cpuPercent = 0;
  private readonly startedAt = new Date().toISOString();

  constructor(opts: ClusterOptions) {
    this.opts = opts;
    this.nodeId = opts.nodeId;
    this.log = opts.log.child({ node: opts.nodeId });
    this.timings = { ...DEFAULT_TIMINGS, ...opts.timings };
    this.redis = new Redis(opts.redisUrl, redisOptions(`atrium-${opts.nodeId}`)) as ClusterRedis;
    this.redis.defineCommand('atriumClaim', { numberOfKeys: 1, lua: CLAIM });
    this.redis.defineCommand('atriumRenew', { lua: RENEW });
    this.redis.defineCommand('atriumRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis.on('error', (e: Error) => {
      if (this.state !== 'down') this.log.debug({ err: e.message }, 'Redis connection error');
    });
    this.redis.on('ready', () => this.setState('up'));
    this.redis.on('close', () => {
      if (!this.stopped) this.setState('down');
    });
  }

  on<E extends keyof ClusterEvents>(event: E, listener: ClusterEvents[E]): void {
    this.listeners[event].push(listener);
  }

  /** Connects (waiting at most a few seconds: a node starts even while Redis is away) and starts the heartbeat. */
  async start(): Promise<void> {
    try {
      await this.redis.connect();
    } catch (e) {
      this.log.warn({ err: (e as Error).message, redis: redactUrl(this.opts.redisUrl) }, 'Redis is unreachable: this node starts alone and joins the cluster when Redis answers');
      this.setState('down');
    }
    this.timer = setInterval(() => void this.heartbeat(), this.timings.heartbeatMs);
    this.timer.unref();
    if (this.state === 'up') await this.heartbeat();
  }

  /** Leaves the cluster: releases the leases, removes the record. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.state === 'up') {
      try {
        for (const g of this.held.keys()) await this.redis.atriumRelease(ownerKey(g), this.nodeId);
        await this.redis.multi().del(nodeKey(this.nodeId)).srem(`${PREFIX}nodes`, this.nodeId).exec();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'could not unregister from Redis; the record expires by itself');
      }
    }
    this.held.clear();
    this.redis.disconnect();
  }

  get redisState(): RedisState {
    return this.state;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** This node as the others see it. */
  get self(): RemoteNode {
    return { id: this.nodeId, internalUrl: this.opts.internalUrl(), publicUrl: this.opts.publicUrl };
  }

  /** Takes no new groups from now on (the groups it holds stay until they empty). */
  async drain(): Promise<void> {
    this.draining = true;
    await this.heartbeat();
  }

  /** Whether this node holds the lease of `group` (or, with Redis away, has taken it alone). */
  holds(group: string): boolean {
    return this.held.has(group);
  }

  /** This node serves `group` now: renew its lease from now on (taken while Redis is away: re-taken when it returns). */
  hold(group: string): void {
    if (!this.held.has(group)) this.held.set(group, performance.now());
  }

  /** The group is no longer live here: let its lease go. */
  async release(group: string): Promise<void> {
    if (!this.held.delete(group) || this.state !== 'up') return;
    try {
      await this.redis.atriumRelease(ownerKey(group), this.nodeId);
    } catch {
      /* it expires by itself */
    }
  }

  /** The live nodes as last seen, this one included. */
  liveNodes(): NodeRecord[] {
    return [this.record(), ...[...this.nodes.values()].filter((n) => n.id !== this.nodeId)];
  }

  /** The node holding `group` according to the last snapshot (what the owners report), or undefined. */
  cachedOwner(group: string): NodeRecord | undefined {
    if (this.held.has(group)) return this.record();
    for (const n of this.nodes.values()) if (n.id !== this.nodeId && n.groups[group] !== undefined) return n;
    return undefined;
  }

  /**
   * The node that holds `group`, or, when none does and `place` is set, the
   * one chosen now (least loaded, of `region` when one of that region is
   * live). Undefined when nobody holds it and `place` is not set. Throws
   * when Redis cannot be asked.
   */
  async locate(group: string, opts: { place: boolean; region?: string | undefined; labels?: string[] | undefined }): Promise<NodeRecord | undefined> {
    const owner = await this.redis.get(ownerKey(group));
    if (owner !== null) {
      const rec = owner === this.nodeId ? this.record() : (this.nodes.get(owner) ?? (await this.fetchNode(owner)));
      if (rec !== undefined) return rec;
    }
    if (!opts.place) return undefined;
    // The snapshot is as old as the last heartbeat, which a busy process may run late: a node that started (or
    // died) since would be missed, and the group placed outside its region. A placement reads the live set first.
    await this.refreshSnapshot({ keepRecent: true });
    const candidate = this.choose(group, opts.region, opts.labels ?? []);
    const actual = await this.redis.atriumClaim(ownerKey(group), candidate.id, this.timings.leaseMs, `${PREFIX}node:`);
    if (actual === this.nodeId) {
      this.hold(group);
      return this.record();
    }
    this.recentlyPlaced.set(actual, (this.recentlyPlaced.get(actual) ?? 0) + 1);
    return this.nodes.get(actual) ?? (await this.fetchNode(actual)) ?? candidate;
  }

  /**
   * The least loaded live node that takes new groups: of those that have
   * every one of `labels`, preferring `region` among them. A group whose
   * labels no live node has is placed as if it had none (and the log says
   * so): a missing node must not make a group unreachable.
   */
  private choose(group: string, region: string | undefined, labels: string[]): NodeRecord {
    const open = this.liveNodes().filter((n) => !n.draining);
    const labelled = labels.length === 0 ? open : open.filter((n) => labels.every((l) => n.labels.includes(l)));
    if (labelled.length === 0 && open.length > 0) this.log.warn({ group, labels }, 'no live node has every label the group asks for: placing it on another node');
    const base = labelled.length > 0 ? labelled : open;
    const inRegion = region === undefined ? base : base.filter((n) => n.region === region);
    const pool = inRegion.length > 0 ? inRegion : base.length > 0 ? base : [this.record()];
    let best: NodeRecord | undefined;
    let bestScore = Infinity;
    for (const n of pool) {
      // Clients and streams are the work; groups and CPU break ties; recent placements count as groups.
      const score = n.clients + 2 * n.streams + Object.keys(n.groups).length + (this.recentlyPlaced.get(n.id) ?? 0) + n.cpu / 100 + Math.random() * 0.01;
      if (score < bestScore) {
        best = n;
        bestScore = score;
      }
    }
    return best!;
  }

  private async fetchNode(id: string): Promise<NodeRecord | undefined> {
    const json = await this.redis.get(nodeKey(id));
    if (json === null) return undefined;
    const rec = parseRecord(json);
    if (rec) this.nodes.set(id, rec);
    return rec;
  }

  private record(): NodeRecord {
    const load = this.opts.load();
    return {
      ...this.self,
      region: this.opts.region,
      labels: this.opts.labels ?? [],
      draining: this.draining,
      clients: load.clients,
      streams: load.streams,
      cpu: this.cpuPercent,
      groups: load.groups,
      startedAt: this.startedAt,
    };
  }

  private setState(state: RedisState): void {
    if (this.state === state) return;
    const was = this.state;
    this.state = state;
    if (state === 'down') this.log.warn('Redis stopped answering: this node keeps its groups and places new ones on itself until it is back');
    else if (state === 'up' && was === 'down') this.log.info('Redis answers again: registering this node and its groups');
    for (const l of this.listeners.redis) l(state);
    if (state === 'up' && !this.stopped) void this.heartbeat();
  }

  /** Renews the record and the leases, then refreshes the snapshot of the other nodes. */
  async heartbeat(): Promise<void> {
    if (this.state !== 'up' || this.beating || this.stopped) return;
    this.beating = true;
    try {
      this.measureCpu();
      const rec = this.record();
      await this.redis.multi().set(nodeKey(this.nodeId), JSON.stringify(rec), 'PX', this.timings.nodeTtlMs).sadd(`${PREFIX}nodes`, this.nodeId).exec();
      await this.renewLeases(rec);
      await this.refreshSnapshot();
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'heartbeat failed');
    } finally {
      this.beating = false;
    }
  }

  private async renewLeases(rec: NodeRecord): Promise<void> {
    const now = performance.now();
    // A lease taken for a client that never came is let go once it would have expired.
    for (const [g, since] of this.held) {
      if (rec.groups[g] === undefined && now - since > this.timings.leaseMs) {
        this.held.delete(g);
        await this.redis.atriumRelease(ownerKey(g), this.nodeId);
      }
    }
    const groups = [...this.held.keys()];
    for (let i = 0; i < groups.length; i += 500) {
      const batch = groups.slice(i, i + 500);
      const others = await this.redis.atriumRenew(batch.length, ...batch.map(ownerKey), this.nodeId, this.timings.leaseMs, `${PREFIX}node:`);
      batch.forEach((g, j) => {
        const owner = others[j];
        if (owner) {
          this.held.delete(g);
          this.log.warn({ group: g, owner }, 'another node holds this group now: handing it over');
          for (const l of this.listeners.leaseLost) l(g, owner);
        }
      });
    }
  }

  private async refreshSnapshot(opts: { keepRecent?: boolean } = {}): Promise<void> {
    const ids = await this.redis.smembers(`${PREFIX}nodes`);
    const others = ids.filter((id) => id !== this.nodeId);
    const values = others.length > 0 ? await this.redis.mget(...others.map(nodeKey)) : [];
    const nodes = new Map<string, NodeRecord>();
    const gone: string[] = [];
    others.forEach((id, i) => {
      const rec = values[i] ? parseRecord(values[i]!) : undefined;
      if (rec) nodes.set(id, rec);
      else gone.push(id);
    });
    // A node whose record expired is dead: no trace of it stays.
    if (gone.length > 0) await this.redis.srem(`${PREFIX}nodes`, ...gone);
    this.nodes = nodes;
    // The placements since the last heartbeat count until the owners' records show them.
    if (!opts.keepRecent) this.recentlyPlaced.clear();
  }

  private measureCpu(): void {
    const usage = process.cpuUsage();
    const at = performance.now();
    const used = (usage.user - this.cpuMark.usage.user + usage.system - this.cpuMark.usage.system) / 1000;
    const elapsed = at - this.cpuMark.at;
    if (elapsed > 0) this.cpuPercent = Math.round((100 * used) / elapsed);
    this.cpuMark = { usage, at };
  }
}

export function ownerKey(group: string): string {
  return `${PREFIX}owner:${group}`;
}

export function nodeKey(id: string): string {
  return `${PREFIX}node:${id}`;
}

function parseRecord(json: string): NodeRecord | undefined {
  try {
    const v = JSON.parse(json) as NodeRecord;
    return typeof v.id === 'string' && typeof v.internalUrl === 'string' && typeof v.publicUrl === 'string' ? { ...v, groups: v.groups ?? {}, labels: v.labels ?? [] } : undefined;
  } catch {
    return undefined;
  }
}

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}
