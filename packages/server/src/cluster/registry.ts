// The registry of a node in a cluster: the node's own GroupRegistry for the
// groups it serves, and the cluster (Redis) to decide which node serves a
// group. The rule every dialect follows: a group lives on exactly one node;
// the first join places it (least loaded node, of its `labels` and `region`); a
// join that reaches another node is answered `elsewhere`, and the dialect
// kit hands the connection to the owner (kit/forward.ts). With Redis away,
// a node serves what it holds and places new groups on itself.
import type { Client } from '../core/client.ts';
import type { Group, Member } from '../core/group.ts';
import type { GroupLocation, GroupRegistry, JoinOutcome, JoinRequest, Registry } from '../core/registry.ts';
import type { GroupDescription } from '../groups/index.ts';
import type { Logger } from '../log.ts';
import type { Cluster, NodeRecord } from './cluster.ts';

export interface PlacementCounter {
  inc(labels: { outcome: 'here' | 'elsewhere' | 'local' }): void;
}

export class ClusterRegistry implements Registry {
  readonly clustered = true;
  constructor(
    readonly local: GroupRegistry,
    private readonly cluster: Cluster,
    private readonly log: Logger,
    private readonly placements?: PlacementCounter,
  ) {
    local.on('groupClosed', (name) => void cluster.release(name));
    cluster.on('leaseLost', (name, owner) => local.evict(name, `this group is now served by node "${owner}" of the cluster; reconnecting you there`));
  }

  on(event: 'memberRemoved', listener: (group: Group, member: Member) => void): this {
    this.local.on(event, listener);
    return this;
  }

  describe(name: string): GroupDescription | undefined {
    return this.local.describe(name);
  }

  describeAll(): GroupDescription[] {
    return this.local.describeAll();
  }

  get(name: string): Group | undefined {
    return this.local.get(name);
  }

  groups(): Group[] {
    return this.local.groups();
  }

  async join(client: Client, req: JoinRequest): Promise<JoinOutcome> {
    const desc = this.local.describe(req.group);
    // No such group, a group file's redirect, a bad name: the local registry says so.
    if ((!desc && !req.ephemeral) || desc?.redirect) return this.local.join(client, req);
    const where = await this.place(req.group, desc);
    if (where === 'here') return this.local.join(client, req);
    return { kind: 'elsewhere', node: where };
  }

  /** 'here', or the node that holds (or was just given) the group. */
  private async place(name: string, desc: GroupDescription | undefined): Promise<'here' | NodeRecord> {
    if (this.local.get(name) && this.cluster.holds(name)) return 'here';
    if (this.cluster.redisState !== 'up') return this.alone(name);
    let owner: NodeRecord | undefined;
    try {
      owner = await this.cluster.locate(name, { place: true, region: desc?.region, labels: desc?.labels });
    } catch (e) {
      this.log.warn({ group: name, err: (e as Error).message }, 'Redis did not answer while placing a group');
      return this.alone(name);
    }
    if (owner === undefined || owner.id === this.cluster.nodeId) {
      this.cluster.hold(name);
      this.placements?.inc({ outcome: 'here' });
      return 'here';
    }
    // A group this node still had (it lost the lease meanwhile) is not served twice.
    if (this.local.get(name)) this.local.evict(name, `this group is now served by node "${owner.id}" of the cluster; reconnecting you there`);
    this.placements?.inc({ outcome: 'elsewhere' });
    return owner;
  }

  /** Redis is away: the group's last known owner if it is another node, else this node. */
  private alone(name: string): 'here' | NodeRecord {
    const known = this.cluster.cachedOwner(name);
    if (known && known.id !== this.cluster.nodeId && !this.local.get(name)) return known;
    this.cluster.hold(name);
    this.placements?.inc({ outcome: 'local' });
    return 'here';
  }

  async locate(name: string, opts: { place?: boolean } = {}): Promise<GroupLocation> {
    if (this.local.get(name) && this.cluster.holds(name)) return { kind: 'here' };
    if (this.cluster.redisState !== 'up') return this.locateCached(name);
    try {
      const desc = this.local.describe(name);
      const owner = await this.cluster.locate(name, { place: opts.place ?? false, region: desc?.region, labels: desc?.labels });
      return owner === undefined || owner.id === this.cluster.nodeId ? { kind: 'here' } : elsewhere(name, owner);
    } catch {
      return this.locateCached(name);
    }
  }

  locateCached(name: string): GroupLocation {
    const owner = this.cluster.cachedOwner(name);
    return owner === undefined || owner.id === this.cluster.nodeId ? { kind: 'here' } : elsewhere(name, owner);
  }
}

function elsewhere(name: string, owner: NodeRecord): GroupLocation {
  const g = owner.groups[name];
  return { kind: 'elsewhere', node: { id: owner.id, internalUrl: owner.internalUrl, publicUrl: owner.publicUrl }, clientCount: g?.clients ?? 0, locked: g?.locked ?? false };
}
