// The set of live groups and the way in: finds (or creates) a group from its
// description, authenticates a client and admits it. Dialects call `join`;
// they never build groups themselves.
import { EventEmitter } from 'node:events';
import { type GroupDescription, validateGroupName } from '../groups/index.ts';
import type { MediaEngine } from '../media/engine.ts';
import type { Client, IceServerInfo, Permission, UserData } from './client.ts';
import { CoreError } from './errors.ts';
import { Group, type GroupObserver, type Member } from './group.ts';

export interface Credentials {
  username?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
}

export interface Identity {
  username: string | undefined;
  permissions: Permission[];
}

/** Decides who a client is and what it may do in a group; throws CoreError when refused. */
export interface Authenticator {
  authenticate(desc: GroupDescription, groupName: string, creds: Credentials, groupUrl: string): Promise<Identity>;
}

/** Where group descriptions come from (the group files). */
export interface DescriptionSource {
  get(name: string): GroupDescription | undefined;
  list(): GroupDescription[];
  on(event: 'change', listener: (name: string, desc: GroupDescription | undefined) => void): unknown;
  off(event: 'change', listener: (name: string, desc: GroupDescription | undefined) => void): unknown;
}

export interface JoinRequest extends Credentials {
  group: string;
  data?: UserData | undefined;
  /** The group's public URL, the audience of its tokens. */
  groupUrl: string;
}

export type JoinOutcome = { kind: 'joined'; member: Member } | { kind: 'redirect'; url: string };

export interface RegistryEvents {
  memberAdded: [group: Group, member: Member];
  memberRemoved: [group: Group, member: Member];
  permissionsChanged: [group: Group, member: Member];
}

export class GroupRegistry extends EventEmitter<RegistryEvents> {
  private readonly live = new Map<string, Group>();
  private readonly onChange = (name: string, desc: GroupDescription | undefined): void => this.descriptionChanged(name, desc);
  private readonly observer: GroupObserver = {
    memberAdded: (g, m) => this.emit('memberAdded', g, m),
    memberRemoved: (g, m) => this.emit('memberRemoved', g, m),
    permissionsChanged: (g, m) => this.emit('permissionsChanged', g, m),
    empty: (g) => this.maybeForget(g),
  };

  constructor(
    private readonly source: DescriptionSource,
    private readonly auth: Authenticator,
    private readonly iceServersFor: (username: string | undefined) => IceServerInfo[],
    private readonly media: { engine?: MediaEngine | undefined; onStreamError?: (member: Member, e: unknown) => void } = {},
  ) {
    super();
    source.on('change', this.onChange);
  }

  close(): void {
    this.source.off('change', this.onChange);
  }

  /** The description that governs `name`: its own file, or its parent's when the parent has auto-subgroups. */
  describe(name: string): GroupDescription | undefined {
    // A name no group file could have ("a/..", "a//b") names no group, even
    // under a parent with auto-subgroups.
    if (!isValidGroupName(name)) return undefined;
    const own = this.source.get(name);
    if (own) return own;
    const cut = name.lastIndexOf('/');
    if (cut <= 0) return undefined;
    const parent = this.describe(name.slice(0, cut));
    if (!parent?.autoSubgroups) return undefined;
    return { ...parent, name, public: false };
  }

  /** A live group, created on first use. */
  open(name: string): Group | undefined {
    const existing = this.live.get(name);
    if (existing) return existing;
    const desc = this.describe(name);
    if (!desc) return undefined;
    const group = new Group(name, desc, {
      observer: this.observer,
      iceServersFor: this.iceServersFor,
      subgroupsOf: (n) => this.subgroupsOf(n),
      engine: this.media.engine,
      onStreamError: this.media.onStreamError,
    });
    this.live.set(name, group);
    return group;
  }

  /** Every group that has a file of its own. */
  describeAll(): GroupDescription[] {
    return this.source.list();
  }

  get(name: string): Group | undefined {
    return this.live.get(name);
  }

  groups(): Group[] {
    return [...this.live.values()];
  }

  async join(client: Client, req: JoinRequest): Promise<JoinOutcome> {
    const desc = this.describe(req.group);
    if (!desc) throw new CoreError('no-such-group', `there is no group called "${req.group}" on this server`);
    if (desc.redirect) return { kind: 'redirect', url: desc.redirect };
    const who = await this.auth.authenticate(desc, req.group, req, req.groupUrl);
    // The group may have been created or changed while we awaited.
    const group = this.open(req.group);
    if (!group) throw new CoreError('no-such-group', `group "${req.group}" was deleted`);
    return { kind: 'joined', member: group.admit(client, who.username, who.permissions, req.data ?? {}) };
  }

  private subgroupsOf(name: string): { name: string; clientCount: number }[] {
    const prefix = `${name}/`;
    const names = new Set<string>();
    for (const d of this.source.list()) if (d.name.startsWith(prefix)) names.add(d.name);
    for (const g of this.live.keys()) if (g.startsWith(prefix)) names.add(g);
    return [...names].sort().map((n) => ({ name: n, clientCount: this.live.get(n)?.size ?? 0 }));
  }

  private descriptionChanged(name: string, desc: GroupDescription | undefined): void {
    for (const [gname, group] of this.live) {
      if (gname !== name && !gname.startsWith(`${name}/`)) continue;
      const next = this.describe(gname);
      if (next) {
        group.setDescription(next);
      } else {
        for (const m of [...group.allMembers()]) group.kick(m, undefined, `group "${gname}" was deleted`);
        this.live.delete(gname);
      }
    }
    void desc;
  }

  private maybeForget(group: Group): void {
    // An empty group with no history holds nothing worth keeping.
    if (group.size === 0 && group.history.size === 0) this.live.delete(group.name);
  }
}

function isValidGroupName(name: string): boolean {
  try {
    validateGroupName(name);
    return true;
  } catch {
    return false;
  }
}
