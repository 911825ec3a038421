// Server-set member descriptions (the admin API's .clients/<id>/.description,
// what RTCPool peers get as rtc:describe) kept in Redis, so that they outlive
// the node that holds the group. A group lives on one node, so its peers all
// see a description the moment its owner sets it (a request reaching another
// node is passed to the owner); what Redis adds is the node's loss or a move:
// when the owner dies or drains, its members reconnect to the node that takes
// the group over, and each one whose username had a description gets it back
// there, and its peers are told, as if the owner had never gone.
//
// A description is kept under the member's username (a connection's id does
// not survive a reconnection); a member without a username keeps its
// description only as long as its connection, as on a single node. While
// the group lives its owner renews the key; once the group is gone (empty,
// or its node dead and nobody back) the key expires, so Redis keeps no
// descriptions of groups nobody uses. With Redis away descriptions work as
// on a single node; those set meanwhile are not kept.
//   atrium:descriptions:<group>   HASH username -> the description's JSON, PX TTL_MS
import type { Redis } from 'ioredis';
import type { Description } from '../core/client.ts';
import type { Group, Member } from '../core/group.ts';
import type { Logger } from '../log.ts';
import { PREFIX } from './cluster.ts';

/** How long a group's descriptions outlive the last renewal by its owner. */
export const DESCRIPTIONS_TTL_MS = 60_000;
/** How often the owner renews the keys of the groups it holds. */
const RENEW_EVERY_MS = 10_000;

export const descriptionsKey = (group: string): string => `${PREFIX}descriptions:${group}`;

function parse(json: string): Description | undefined {
  try {
    const v = JSON.parse(json) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export class SharedDescriptions {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    /** Whether Redis answers now (nothing is asked of it otherwise: commands would wait in ioredis's queue). */
    private readonly redisUp: () => boolean,
    /** The groups this node holds now. */
    private readonly groups: () => Group[],
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.renew(), RENEW_EVERY_MS);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** The owner set (or, with null, removed) a member's description: kept for its username. */
  async remember(group: string, member: Pick<Member, 'username'>, description: Description): Promise<void> {
    if (member.username === undefined || !this.redisUp()) return;
    const key = descriptionsKey(group);
    try {
      if (description === null) await this.redis.hdel(key, member.username);
      else await this.redis.multi().hset(key, member.username, JSON.stringify(description)).pexpire(key, DESCRIPTIONS_TTL_MS).exec();
    } catch (e) {
      this.log.warn({ group, username: member.username, err: (e as Error).message }, 'Redis did not keep a description: it lasts as long as the member’s connection');
    }
  }

  /** A member arrived on this node: if its username has a kept description that it lacks, it gets it, and its peers are told. */
  async restore(group: Group, member: Member): Promise<void> {
    if (member.username === undefined || !this.redisUp()) return;
    let json: string | null;
    try {
      json = await this.redis.hget(descriptionsKey(group.name), member.username);
    } catch {
      return;
    }
    if (json === null) return;
    const kept = parse(json);
    if (kept === undefined) {
      this.log.warn({ group: group.name, username: member.username }, 'a description kept in Redis is not a JSON object: ignored');
      return;
    }
    if (JSON.stringify(member.description) === JSON.stringify(kept)) return;
    // The kept one was set by an administrator after the member's token (and its claim) was made: it wins.
    group.describeMember(member, kept);
  }

  private async renew(): Promise<void> {
    const names = this.groups().map((g) => g.name);
    if (names.length === 0 || !this.redisUp()) return;
    const p = this.redis.pipeline();
    for (const n of names) p.pexpire(descriptionsKey(n), DESCRIPTIONS_TTL_MS);
    try {
      await p.exec();
    } catch {
      /* Redis went away: renewed when it is back, or the keys expire */
    }
  }
}
