// The set of live groups and the way in: finds (or creates) a group from its
// description, authenticates a client and admits it. Dialects call `join`;
// they never build groups themselves.
import { EventEmitter } from 'node:events';
import { isWellFormed } from '@atrium/protocol/text';
import { type GroupDescription, parseGroupDescription, validateGroupName } from '../groups/index.ts';
import type { MediaEngine } from '../media/engine.ts';
import type { Client, Description, IceServerInfo, Permission, UserData } from './client.ts';
import { CoreError } from './errors.ts';
import { Group, type GroupObserver, type Member, type TokenKeeper } from './group.ts';

export interface Credentials {
  username?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  /**
   * The client enters without a name and gives one later (Camus's client
   * sends `profile` once inside): it is let in as the group's wildcard user,
   * not refused as anonymous, and its name is checked when it gives it.
   */
  namedLater?: boolean | undefined;
  /** The client's network address, for throttling failed logins. */
  address?: string | undefined;
  /** The way in ('galene', 'camus', 'rtcpool'…), for logs and metrics. */
  via?: string | undefined;
}

export interface Identity {
  username: string | undefined;
  permissions: Permission[];
  /** What the back end says about the client (e.g. a claim of a verified token). */
  description?: Description | undefined;
}

/** Decides who a client is and what it may do in a group; throws CoreError when refused. */
export interface Authenticator {
  authenticate(desc: GroupDescription, groupName: string, creds: Credentials, groupUrl: string): Promise<Identity>;
}

/** Where group descriptions come from (the group files). */
export interface DescriptionSource {
  get(name: string): GroupDescription | undefined;
  /** The description governing `name`: its own file, or an ancestor's with auto-subgroups. */
  resolve(name: string): GroupDescription | undefined;
  list(): GroupDescription[];
  on(event: 'change', listener: (name: string, desc: GroupDescription | undefined) => void): unknown;
  off(event: 'change', listener: (name: string, desc: GroupDescription | undefined) => void): unknown;
}

export interface JoinRequest extends Credentials {
  group: string;
  data?: UserData | undefined;
  /** The group's public URL, the audience of its tokens. */
  groupUrl: string;
  /**
   * A name with no group file is an ephemeral group (mesh rooms and pools):
   * created on first join, open to anyone with present and message,
   * forgotten as soon as it is empty. A group file of the same name, when
   * there is one, governs it instead.
   */
  ephemeral?: boolean | undefined;
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
    private readonly media: {
      engine?: MediaEngine | undefined;
      onStreamError?: (member: Member, e: unknown) => void;
      /** The server's stateful tokens, for invitations made inside groups. */
      tokens?: TokenKeeper;
      /** Whether members may change their own password (the server's `writableGroups`). */
      canChangePassword?: () => boolean;
    } = {},
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
    return this.source.resolve(name);
  }

  /** A live group, created on first use (an ephemeral one when asked and no file describes it). */
  open(name: string, opts: { ephemeral?: boolean | undefined } = {}): Group | undefined {
    const existing = this.live.get(name);
    if (existing) return existing;
    let desc = this.describe(name);
    let ephemeral = false;
    if (!desc && opts.ephemeral && isValidGroupName(name)) {
      desc = ephemeralDescription(name);
      ephemeral = true;
    }
    if (!desc) return undefined;
    const group = new Group(name, desc, {
      ephemeral,
      observer: this.observer,
      iceServersFor: this.iceServersFor,
      subgroupsOf: (n) => this.subgroupsOf(n),
      engine: this.media.engine,
      onStreamError: this.media.onStreamError,
      tokens: this.media.tokens,
      canChangePassword: this.media.canChangePassword,
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
    // Every dialect's schema checks this already; a name that is not text names nothing.
    if (!isWellFormed(req.group)) throw new CoreError('bad-message', 'the group name is not well-formed Unicode (it holds a lone UTF-16 surrogate)');
    if (req.username !== undefined && !isWellFormed(req.username)) throw new CoreError('bad-message', 'the username is not well-formed Unicode (it holds a lone UTF-16 surrogate)');
    let desc = this.describe(req.group);
    if (!desc && req.ephemeral) {
      if (!isValidGroupName(req.group)) throw new CoreError('bad-message', `"${req.group}" cannot name a room or pool: use letters, digits, "-" and "_" (no leading "." nor "//")`);
      desc = ephemeralDescription(req.group);
    }
    if (!desc) throw new CoreError('no-such-group', `there is no group called "${req.group}" on this server`);
    if (desc.redirect) return { kind: 'redirect', url: desc.redirect };
    const who = await this.auth.authenticate(desc, req.group, req, req.groupUrl);
    // The group may have been created or changed while we awaited.
    const group = this.open(req.group, { ephemeral: req.ephemeral });
    if (!group) throw new CoreError('no-such-group', `group "${req.group}" was deleted`);
    return { kind: 'joined', member: group.admit(client, who.username, who.permissions, req.data ?? {}, new Date(), who.description ?? null) };
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
      const next = this.describe(gname) ?? (group.ephemeral ? ephemeralDescription(gname) : undefined);
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
    // An empty group with no history holds nothing worth keeping; an
    // ephemeral one keeps nothing at all once it is empty.
    if (group.size === 0 && (group.ephemeral || group.history.size === 0) && this.live.get(group.name) === group) this.live.delete(group.name);
  }
}

/** The rules of a room or pool that has no group file: anyone may join, with present and message. */
function ephemeralDescription(name: string): GroupDescription {
  return parseGroupDescription(name, `(no group file: "${name}" is an ephemeral room)`, {
    'allow-anonymous': true,
    'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
  });
}

function isValidGroupName(name: string): boolean {
  try {
    validateGroupName(name);
    return true;
  } catch {
    return false;
  }
}
