// A group and its members: who is in, what each may do, chat and its
// history, relayed messages, and the user and group actions. Every rule
// about permissions lives here, so every dialect gets the same answers.
import { randomBytes } from 'node:crypto';
import type { GroupDescription } from '../groups/index.ts';
import { ChatHistory, HistoryReplay } from './chat-history.ts';
import type { ChatEvent, ChatKind, Client, CoreEvent, Description, GroupInfo, IceServerInfo, Permission, UserData, UserEvent } from './client.ts';
import type { MediaEngine } from '../media/engine.ts';
import { mergeData } from './data.ts';
import { CoreError } from './errors.ts';
import { type TokenActionKind, type TokenKeeper, type TokenTemplate, tokenAction } from './invitations.ts';
import { GroupStreams } from './streams.ts';

/**
 * Kinds of relayed message that report what the server did (a kick, a token,
 * a user's address): only the server sends them, so no member can fake one.
 */
const SERVER_MESSAGE_KINDS = new Set(['kicked', 'clearchat', 'token', 'tokenlist', 'userinfo']);
/**
 * Kinds Galène's client obeys or shows only when `privileged` (sent by an
 * operator): an op may send them (`/warn`, `/wall`, `/mute`, `/muteall`).
 */
const OPERATOR_MESSAGE_KINDS = new Set(['error', 'warning', 'info', 'mute']);

/** Hooks the group calls so the rest of the server can follow what happens. */
export interface GroupObserver {
  memberAdded?(group: Group, member: Member): void;
  memberRemoved?(group: Group, member: Member): void;
  /** A member's permissions changed (media drops up-streams on unpresent). */
  permissionsChanged?(group: Group, member: Member): void;
  empty?(group: Group): void;
}

export class Member {
  private memo: UserEvent | undefined;

  constructor(
    readonly group: Group,
    readonly client: Client,
    private name: string | undefined,
    private perms: Set<Permission>,
    private userData: UserData,
    private desc: Description = null,
  ) {}

  get id(): string {
    return this.client.id;
  }

  get username(): string | undefined {
    return this.name;
  }

  /** What the back end says about this member; see Group.describeMember. */
  get description(): Description {
    return this.desc;
  }

  get permissions(): Permission[] {
    return [...this.perms];
  }

  get data(): UserData {
    return this.userData;
  }

  has(p: Permission): boolean {
    return this.perms.has(p);
  }

  setPermission(p: Permission, on: boolean): boolean {
    if (this.perms.has(p) === on) return false;
    if (on) this.perms.add(p);
    else this.perms.delete(p);
    this.memo = undefined;
    return true;
  }

  mergeData(patch: UserData): void {
    this.userData = mergeData(this.userData, patch, 'your user data');
    this.memo = undefined;
  }

  /** Use Group.rename, which checks and tells the others. */
  setUsername(username: string | undefined): void {
    this.name = username;
    this.memo = undefined;
  }

  /** Use Group.describeMember, which tells the others. */
  setDescription(description: Description): void {
    this.desc = description;
    this.memo = undefined;
  }

  /** The `user` event describing this member; the same object while nothing changes, so dialects can cache its rendering. */
  userEvent(kind: 'add' | 'change'): UserEvent {
    if (kind === 'change') return this.makeUserEvent('change');
    this.memo ??= this.makeUserEvent('add');
    return this.memo;
  }

  private makeUserEvent(kind: UserEvent['kind']): UserEvent {
    return { type: 'user', kind, id: this.id, username: this.name, permissions: this.permissions, data: this.userData, description: this.desc };
  }
}

export interface ChatInput {
  kind: ChatKind;
  dest?: string | undefined;
  value: string;
  noecho?: boolean | undefined;
}

export interface MessageInput {
  kind: string;
  dest?: string | undefined;
  value: unknown;
  noecho?: boolean | undefined;
  /**
   * Only members whose client is of this kind take part (mesh signalling
   * means nothing to the clients of another dialect): a broadcast skips the
   * others and a `dest` among them is not found.
   */
  audience?: string | undefined;
}

export type UserActionKind = 'op' | 'unop' | 'present' | 'unpresent' | 'shutup' | 'unshutup' | 'kick' | 'identify' | 'setdata';
export type GroupActionKind = 'clearchat' | 'lock' | 'unlock' | 'record' | 'unrecord' | 'subgroups' | 'setdata';
export type { TokenActionKind, TokenKeeper, TokenTemplate };

/** The permission each permission-changing user action gives (true) or takes (false). */
const PERMISSION_ACTIONS: Record<string, [Permission, boolean]> = {
  op: ['op', true],
  unop: ['op', false],
  present: ['present', true],
  unpresent: ['present', false],
  shutup: ['message', false],
  unshutup: ['message', true],
};

export class Group {
  private readonly members = new Map<string, Member>();
  private lock: { message: string | undefined } | undefined;
  private groupData: UserData = {};
  /** Usernames an operator banned; they stay out while the group lives. */
  private readonly banned = new Set<string>();
  readonly history: ChatHistory;
  /** History still on its way to members that just joined. */
  private readonly replays = new Map<Member, HistoryReplay>();
  /** The group's media streams; undefined on a server without a media engine. */
  readonly streams: GroupStreams | undefined;
  /** Created on first join for a name with no group file, and forgotten when empty. */
  readonly ephemeral: boolean;

  constructor(
    readonly name: string,
    private desc: GroupDescription,
    private readonly env: {
      observer: GroupObserver;
      iceServersFor: (username: string | undefined) => GroupIceServers;
      subgroupsOf: (name: string) => { name: string; clientCount: number }[];
      engine?: MediaEngine | undefined;
      onStreamError?: (member: Member, e: unknown) => void;
      /** The server's stateful tokens (invitations); without it token actions are refused. */
      tokens?: TokenKeeper | undefined;
      /** Whether members may change their own password (the server's `writableGroups`). */
      canChangePassword?: (() => boolean) | undefined;
      /** Created for a room or pool that has no group file: forgotten as soon as it is empty. */
      ephemeral?: boolean | undefined;
    },
  ) {
    this.ephemeral = env.ephemeral ?? false;
    this.history = new ChatHistory(desc.maxHistoryAge);
    if (env.engine) {
      this.streams = new GroupStreams({
        engine: env.engine,
        placement: name,
        iceServers: () => env.iceServersFor(undefined),
        codecs: () => this.desc.codecs,
        members: () => this.members.values(),
        onError: (m, e) => env.onStreamError?.(m, e),
      });
    }
    if (desc.autolock) this.lock = { message: undefined };
  }

  get description(): GroupDescription {
    return this.desc;
  }

  /** The group file changed on disk or through the admin API. */
  setDescription(desc: GroupDescription): void {
    const wasAutolock = this.desc.autolock;
    this.desc = desc;
    this.history.setMaxAge(desc.maxHistoryAge);
    if (desc.autolock && !wasAutolock && !this.hasOperator()) this.lock = { message: undefined };
    this.broadcastJoined('change');
  }

  get size(): number {
    return this.members.size;
  }

  get locked(): boolean {
    return this.lock !== undefined;
  }

  member(id: string): Member | undefined {
    return this.members.get(id);
  }

  allMembers(): IterableIterator<Member> {
    return this.members.values();
  }

  info(): GroupInfo {
    const d = this.desc;
    const info: GroupInfo = { name: this.name, locked: this.locked, clientCount: this.members.size, data: this.groupData };
    if (d.displayName !== undefined) info.displayName = d.displayName;
    if (d.description !== undefined) info.description = d.description;
    if (d.authServer !== undefined) info.authServer = d.authServer;
    if (d.authPortal !== undefined) info.authPortal = d.authPortal;
    if (this.lock?.message) info.lockMessage = this.lock.message;
    if (this.env.canChangePassword?.()) info.canChangePassword = true;
    return info;
  }

  /**
   * Admits an authenticated client. Checks the group's own rules (opening
   * times, lock, capacity); who the client is was settled by the caller.
   */
  admit(client: Client, username: string | undefined, permissions: Permission[], data: UserData, now = new Date(), description: Description = null): Member {
    const d = this.desc;
    const isOp = permissions.includes('op');
    if (d.notBefore && now < d.notBefore) {
      throw new CoreError('group-not-open', `group "${this.name}" opens at ${d.notBefore.toISOString()}`);
    }
    if (d.expires && now >= d.expires) {
      throw new CoreError('group-expired', `group "${this.name}" expired at ${d.expires.toISOString()}`);
    }
    if (this.lock && !isOp) {
      const why = this.lock.message ? `: ${this.lock.message}` : '';
      throw new CoreError('group-locked', `group "${this.name}" is locked${why}`);
    }
    if (d.maxClients !== undefined && d.maxClients > 0 && this.members.size >= d.maxClients && !isOp) {
      throw new CoreError('too-many-clients', `group "${this.name}" is full (at most ${d.maxClients} clients)`);
    }
    if (username !== undefined && this.banned.has(username)) {
      throw new CoreError('not-permitted', `user "${username}" is banned from group "${this.name}"`);
    }
    if (this.members.has(client.id)) {
      throw new CoreError('already-joined', `client id "${client.id}" is already in group "${this.name}"`);
    }

    const member = new Member(this, client, username, new Set(permissions), data, description);
    this.members.set(client.id, member);
    if (isOp && this.lock && d.autolock && this.lock.message === undefined) this.lock = undefined;

    client.deliver(this.joinedEvent('join', member));
    const add = member.userEvent('add');
    for (const m of this.members.values()) {
      client.deliver(m.userEvent('add'));
      if (m !== member) m.client.deliver(add);
    }
    const history = this.history.replay(now.getTime());
    if (history.length > 0) {
      const replay = new HistoryReplay(client, history, () => {
        if (this.replays.get(member) === replay) this.replays.delete(member);
      });
      this.replays.set(member, replay);
      replay.start();
    }
    this.env.observer.memberAdded?.(this, member);
    return member;
  }

  /** Removes a member; the client is told unless it is already gone. `reason` says an operator removed it. */
  remove(member: Member, opts: { notify?: boolean; reason?: 'kicked' | 'banned' } = {}): void {
    if (this.members.get(member.id) !== member) return;
    this.members.delete(member.id);
    this.replays.get(member)?.cancel();
    this.streams?.memberLeft(member);
    if (opts.notify ?? true) member.client.deliver(this.joinedEvent('leave', member));
    const gone: UserEvent = { type: 'user', kind: 'delete', id: member.id, username: member.username, permissions: [], data: {}, description: null };
    if (opts.reason) gone.reason = opts.reason;
    this.broadcast(gone);
    this.env.observer.memberRemoved?.(this, member);
    this.checkOperators();
    if (this.members.size === 0) this.env.observer.empty?.(this);
  }

  // ---------------------------------------------------------------------
  // Chat and relayed messages.

  chat(from: Member, input: ChatInput, now = new Date()): void {
    const needed: Permission = input.kind === 'caption' ? 'caption' : 'message';
    this.require(from, needed, input.kind === 'caption' ? 'send captions' : 'send chat messages');
    const event: ChatEvent = {
      type: 'chat',
      id: input.dest ? undefined : randomBytes(8).toString('base64url'),
      history: false,
      kind: input.kind,
      source: from.id,
      username: from.username,
      dest: input.dest || undefined,
      privileged: from.has('op'),
      time: now,
      value: input.value,
    };
    if (event.dest !== undefined) {
      this.deliverTo(this.target(event.dest), event);
      return;
    }
    this.history.add(event, now.getTime());
    this.broadcast(event, input.noecho ? from : undefined);
  }

  relay(from: Member, input: MessageInput): void {
    if (SERVER_MESSAGE_KINDS.has(input.kind)) {
      throw new CoreError('not-permitted', `only the server may send messages of kind "${input.kind}"`);
    }
    // Mesh signalling (audience) is the room's own traffic; other messages are the member speaking.
    if (input.audience === undefined) this.require(from, 'message', 'send messages');
    if (OPERATOR_MESSAGE_KINDS.has(input.kind)) {
      this.require(from, 'op', input.kind === 'mute' ? 'mute other users' : `send messages of kind "${input.kind}"`);
    }
    const audience = input.audience;
    const event = {
      type: 'message' as const,
      kind: input.kind,
      source: from.id,
      username: from.username,
      dest: input.dest || undefined,
      privileged: from.has('op'),
      value: input.value,
    };
    if (event.dest !== undefined) {
      const to = this.target(event.dest);
      if (audience !== undefined && to.client.kind !== audience) throw this.noSuchUser(event.dest);
      to.client.deliver(event);
      return;
    }
    if (audience === undefined) {
      this.broadcast(event, input.noecho ? from : undefined);
      return;
    }
    for (const m of this.members.values()) {
      if (m.client.kind === audience && !(input.noecho && m === from)) m.client.deliver(event);
    }
  }

  /**
   * A member changes its own name. A name that belongs to a user of the
   * group file stays that user's.
   */
  rename(member: Member, username: string | undefined): void {
    if (member.username === username) return;
    if (username !== undefined && Object.hasOwn(this.desc.users, username)) {
      throw new CoreError('not-permitted', `the username "${username}" belongs to a registered user of group "${this.name}"; choose another one`);
    }
    member.setUsername(username);
    this.broadcast(member.userEvent('change'));
  }

  /** The back end (token claims, admin API) changes what it says about a member; everyone is told. */
  describeMember(member: Member, description: Description): void {
    if (this.members.get(member.id) !== member) return;
    member.setDescription(description);
    this.broadcast(member.userEvent('change'));
  }

  /** The ICE servers a member should use now (TURN credentials are made afresh). */
  iceServersFor(member: Member): IceServerInfo[] {
    return this.env.iceServersFor(member.username);
  }

  // ---------------------------------------------------------------------
  // Actions.

  userAction(from: Member, kind: UserActionKind, dest: string | undefined, value: unknown): void {
    if (kind === 'setdata') {
      if (dest && dest !== from.id) throw new CoreError('not-permitted', 'you may only set your own user data');
      if (!isPlainObject(value)) throw new CoreError('bad-message', 'setdata needs an object as its value');
      from.mergeData(value);
      this.broadcast(from.userEvent('change'));
      return;
    }
    const what = kind === 'kick' ? 'kick users' : kind === 'identify' ? 'identify users' : 'change permissions';
    this.require(from, 'op', what);
    if (!dest) throw new CoreError('bad-message', `useraction "${kind}" needs a "dest" user id`);
    const target = this.target(dest);
    const change = PERMISSION_ACTIONS[kind];
    if (change) {
      const [perm, on] = change;
      let changed = target.setPermission(perm, on);
      // As in Galène: an operator of a group that allows recording may record.
      if (perm === 'op') changed = target.setPermission('record', on && this.desc.allowRecording) || changed;
      if (changed) this.permissionsChanged(target);
      return;
    }
    switch (kind) {
      case 'kick': {
        const reason = typeof value === 'string' && value ? value : undefined;
        this.kick(target, from, reason ?? `you were kicked out by ${from.username ?? 'an operator'}`);
        return;
      }
      case 'identify':
        this.identify(from, target);
        return;
    }
  }

  /**
   * An operator learns who a member is and where it connects from (Galène's
   * `userinfo`); the member is told that its address was given away.
   */
  private identify(from: Member, target: Member): void {
    const value: Record<string, string> = { id: target.id };
    if (target.username !== undefined && target.username !== '') value.username = target.username;
    if (target.client.address !== undefined) value.address = target.client.address;
    const by = from.username ?? 'an operator';
    target.client.deliver({
      type: 'message',
      kind: 'warning',
      source: undefined,
      username: undefined,
      dest: target.id,
      privileged: true,
      value: `Your IP address has been communicated to user ${by}.`,
    });
    from.client.deliver({ type: 'message', kind: 'userinfo', source: undefined, username: undefined, dest: from.id, privileged: true, value });
  }

  groupAction(from: Member, kind: GroupActionKind, value: unknown): void {
    switch (kind) {
      case 'record':
      case 'unrecord':
        this.require(from, 'record', 'record this group');
        throw new CoreError('not-supported', 'recording is not available yet on this server');
      case 'clearchat': {
        this.require(from, 'op', 'clear the chat');
        // Everything, or (Galène's chat menu) one user's messages, or one message of that user.
        let id: string | undefined;
        let userId: string | undefined;
        if (value !== undefined) {
          if (!isPlainObject(value)) throw new CoreError('bad-message', 'clearchat takes nothing, or {userId} or {id, userId}');
          id = typeof value.id === 'string' && value.id !== '' ? value.id : undefined;
          userId = typeof value.userId === 'string' && value.userId !== '' ? value.userId : undefined;
          if (id !== undefined && userId === undefined) throw new CoreError('bad-message', 'clearchat of one message needs the "userId" of its sender too');
        }
        this.history.clear(id, userId);
        for (const r of this.replays.values()) r.clearHistory(id, userId);
        this.broadcast({ type: 'message', kind: 'clearchat', source: from.id, username: from.username, dest: undefined, privileged: true, value });
        return;
      }
      case 'lock':
        this.require(from, 'op', 'lock the group');
        this.lock = { message: typeof value === 'string' && value ? value : undefined };
        this.broadcastJoined('change');
        return;
      case 'unlock':
        this.require(from, 'op', 'unlock the group');
        this.lock = undefined;
        this.broadcastJoined('change');
        return;
      case 'subgroups': {
        this.require(from, 'op', 'list subgroups');
        // As Galène: a private chat message from "Server", one line per subgroup.
        const subs = this.env.subgroupsOf(this.name);
        const text = subs.length === 0 ? '(no subgroups)\n' : subs.map((s) => `${s.name} (${s.clientCount} client${s.clientCount === 1 ? '' : 's'})\n`).join('');
        from.client.deliver({ type: 'chat', history: false, kind: '', source: undefined, username: 'Server', dest: from.id, privileged: true, time: new Date(), value: text });
        return;
      }
      case 'setdata': {
        this.require(from, 'op', 'set group data');
        if (!isPlainObject(value)) throw new CoreError('bad-message', 'setdata needs an object as its value');
        this.groupData = mergeData(this.groupData, value, 'the group data');
        this.broadcastJoined('change');
        return;
      }
    }
  }

  /**
   * `maketoken`, `edittoken`, `listtokens`: invitations to this group (the
   * rules are in invitations.ts). The answer, or the refusal, comes back to
   * the member as a `token` or `tokenlist` message.
   */
  tokenAction(from: Member, kind: TokenActionKind, template: TokenTemplate | undefined, now = Date.now()): Promise<void> {
    return tokenAction(this, from, kind, template, this.env.tokens, now);
  }

  /**
   * An operator bans a member: it is kicked, and its username may not join
   * again while the group lives (an anonymous member is only kicked).
   */
  ban(from: Member, targetId: string, reason?: string): void {
    this.require(from, 'op', 'ban users');
    const target = this.target(targetId);
    if (target.username !== undefined) this.banned.add(target.username);
    this.kick(target, from, reason || `you were banned by ${from.username ?? 'an operator'}`, 'banned');
  }

  /** An operator lifts a ban; returns whether the username was banned. */
  unban(from: Member, username: string): boolean {
    this.require(from, 'op', 'lift bans');
    return this.banned.delete(username);
  }

  /** Usernames banned from this group. */
  bannedUsernames(): string[] {
    return [...this.banned];
  }

  /** Removes a member with a message saying why; the client's session ends. */
  kick(target: Member, by: Member | undefined, message: string, reason: 'kicked' | 'banned' = 'kicked'): void {
    target.client.deliver({
      type: 'message',
      kind: 'kicked',
      source: by?.id,
      username: by?.username,
      dest: target.id,
      privileged: true,
      value: message,
      ...(reason === 'banned' ? { banned: true } : {}),
    });
    this.remove(target, { reason });
    target.client.terminate(message);
  }

  /**
   * Ends the group at once (the server is stopping): every member is told
   * why and dropped, without the N² user-delete broadcast of N leaves.
   */
  dissolve(message: string): void {
    this.announce('warning', message);
    const members = [...this.members.values()];
    this.members.clear();
    for (const r of [...this.replays.values()]) r.cancel();
    for (const m of members) {
      this.streams?.memberLeft(m);
      this.env.observer.memberRemoved?.(this, m);
    }
    this.streams?.close();
    for (const m of members) m.client.terminate(message, 'shutdown');
  }

  /** Tells every member something from the server (e.g. the server is stopping). */
  announce(kind: 'info' | 'warning' | 'error', text: string): void {
    this.broadcast({ type: 'message', kind, source: undefined, username: undefined, dest: undefined, privileged: true, value: text });
  }

  // ---------------------------------------------------------------------

  private permissionsChanged(target: Member): void {
    target.client.deliver(this.joinedEvent('change', target));
    this.broadcast(target.userEvent('change'));
    this.streams?.permissionsChanged(target);
    this.env.observer.permissionsChanged?.(this, target);
    this.checkOperators();
  }

  /** autolock / autokick: what happens when no operator is left. */
  private checkOperators(): void {
    if (this.hasOperator()) return;
    if (this.desc.autolock && !this.lock) {
      this.lock = { message: undefined };
      this.broadcastJoined('change');
    }
    if (this.desc.autokick) {
      for (const m of [...this.members.values()]) this.kick(m, undefined, 'there is no operator left in this group');
    }
  }

  private hasOperator(): boolean {
    for (const m of this.members.values()) if (m.has('op')) return true;
    return false;
  }

  private require(member: Member, p: Permission, what: string): void {
    if (!member.has(p)) throw new CoreError('not-permitted', `you need the "${p}" permission to ${what}`);
  }

  private target(id: string): Member {
    const m = this.members.get(id);
    if (!m) throw this.noSuchUser(id);
    return m;
  }

  private noSuchUser(id: string): CoreError {
    return new CoreError('no-such-user', `there is no user with id "${id}" in group "${this.name}"`);
  }

  private joinedEvent(kind: 'join' | 'change' | 'leave', member: Member): CoreEvent {
    return {
      type: 'joined',
      kind,
      group: this.name,
      username: member.username,
      permissions: kind === 'leave' ? [] : member.permissions,
      info: this.info(),
      iceServers: kind === 'leave' ? [] : this.env.iceServersFor(member.username),
    };
  }

  private broadcastJoined(kind: 'change'): void {
    for (const m of this.members.values()) m.client.deliver(this.joinedEvent(kind, m));
  }

  private broadcast(event: CoreEvent, except?: Member): void {
    if (event.type === 'chat' && this.replays.size > 0) {
      for (const m of this.members.values()) if (m !== except) this.deliverTo(m, event);
      return;
    }
    for (const m of this.members.values()) if (m !== except) m.client.deliver(event);
  }

  /** Chat for one member: behind its history when that is still being replayed, so it arrives in order. */
  private deliverTo(m: Member, event: CoreEvent): void {
    const replay = this.replays.get(m);
    if (replay !== undefined) replay.push(event);
    else m.client.deliver(event);
  }
}

export type GroupIceServers = import('./client.ts').IceServerInfo[];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
