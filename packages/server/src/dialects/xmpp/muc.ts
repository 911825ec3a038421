// Multi-user chat (XEP-0045) on Atrium groups: the room `room@conference.<domain>`
// is the group `room` (subgroups JID-escaped, see jid.ts), and its occupants
// are the group's members, whatever dialect they speak. Each room an XMPP
// session is in is one core Client (an Occupant): the core decides who may
// join and do what; this file turns presence, messages and admin IQs into
// core calls, and core events back into MUC stanzas.
import { randomBytes } from 'node:crypto';
import type { ChatEvent, Client, CoreEvent, JoinedEvent, MessageEvent, Permission, TrackConsumer, UserEvent } from '../../core/client.ts';
import { CoreError, isCoreError } from '../../core/errors.ts';
import type { Group, Member } from '../../core/group.ts';
import type { Registry } from '../../core/registry.ts';
import { TokenBucket } from '../../transport/rate-limit.ts';
import { LIMITS } from '../../core/vocabulary.ts';
import { ENDPOINT_MESSAGE_KIND, SpeakerWatch } from './colibri.ts';
import { roomDiscoInfo } from './disco.ts';
import { FOCUS_NICK, focusPresence, MediaSessions } from './focus.ts';
import { type Jid, formatJid, groupOfRoom, roomOfGroup } from './jid.ts';
import type { XmppSession } from './session.ts';
import { NS, StanzaError, conditionOf, errorElement } from './stanza.ts';
import { type Element, XML_LIMITS, XmlError, attr, childElements, el, parseElement, withoutControlChars } from './xml.ts';

/** The client kind of XMPP occupants (core relays limited to XMPP peers use it as audience). */
export const XMPP_KIND = 'xmpp';

/** Key of the user data holding an XMPP occupant's presence extensions (show, status, caps, Jitsi's elements). */
export const PRESENCE_DATA_KEY = 'xmpp-presence';
/** Largest presence extension payload kept, serialized. */
export const MAX_PRESENCE_EXTRAS = 8 * 1024;

/** Relayed message kinds that only XMPP occupants receive. */
const RELAY_GROUPCHAT = 'xmpp-groupchat';
const RELAY_PRIVATE = 'xmpp-private';

export const CHAT_RATE = { perSecond: 10, burst: 30 };

/** Presence children that are not "extensions" kept for others: MUC's own, and the nick (the username). */
function isOwnPresenceChild(c: Element): boolean {
  const ns = c.getNS();
  return ns === NS.muc || ns === NS.mucUser || ns === NS.nick;
}

// ---------------------------------------------------------------------
// Rooms: nicks of every member, whatever its dialect.

/** The XMPP side of one group: a nick for each member, unique in the room. */
export class XmppRoom {
  private readonly nicks = new Map<string, string>();
  private readonly ids = new Map<string, string>();
  readonly occupants = new Set<Occupant>();
  /** Parsed presence extensions by member id, with the string they came from. */
  private readonly extras = new Map<string, { raw: string; els: Element[] }>();
  /** Each member's streams, numbered in the order first seen (source names: <nick>-v0, <nick>-v1…). */
  private readonly ordinals = new Map<string, Map<string, number>>();
  /** The dominant speaker, while a bridge channel is open in the room. */
  readonly speakers = new SpeakerWatch(this);

  constructor(
    readonly group: string,
    readonly jid: string,
  ) {
    // The focus sits in every room for Jitsi clients.
    this.ids.set(FOCUS_NICK, '');
  }

  nickTaken(nick: string, byId?: string): boolean {
    const id = this.ids.get(nick);
    return id !== undefined && id !== byId;
  }

  reserve(nick: string, id: string): void {
    this.ids.set(nick, id);
    this.nicks.set(id, nick);
  }

  /** The member's nick, given on first sight: its username, made unique with a number. */
  nickOf(id: string, username: string | undefined): string {
    const known = this.nicks.get(id);
    if (known !== undefined) return known;
    const base = nickFromUsername(username);
    let nick = base;
    for (let n = 2; this.ids.has(nick); n++) nick = `${base} (${n})`;
    this.reserve(nick, id);
    return nick;
  }

  /** The member's nick if it has one already (none is given). */
  knownNick(id: string): string | undefined {
    return this.nicks.get(id);
  }

  /** The number of a member's stream among its streams, the same for every receiver. */
  streamOrdinal(id: string, stream: string): number {
    let m = this.ordinals.get(id);
    if (!m) {
      m = new Map();
      this.ordinals.set(id, m);
    }
    let n = m.get(stream);
    if (n === undefined) {
      n = m.size;
      m.set(stream, n);
    }
    return n;
  }

  idOf(nick: string): string | undefined {
    const id = this.ids.get(nick);
    return id === '' ? undefined : id;
  }

  forget(id: string): void {
    const nick = this.nicks.get(id);
    if (nick === undefined) return;
    this.nicks.delete(id);
    if (this.ids.get(nick) === id) this.ids.delete(nick);
    this.extras.delete(id);
    this.ordinals.delete(id);
  }

  /** The presence extensions a member's data carries, checked as XML; none when they do not parse. */
  extrasOf(id: string, data: Record<string, unknown>): Element[] {
    const raw = data[PRESENCE_DATA_KEY];
    if (typeof raw !== 'string' || raw === '' || raw.length > MAX_PRESENCE_EXTRAS) return [];
    const cached = this.extras.get(id);
    if (cached?.raw === raw) return cached.els;
    let els: Element[] = [];
    try {
      // Any member can set its own data; what reaches an XMPP stream must be XML.
      els = childElements(parseElement(`<x xmlns="${NS.client}">${raw}</x>`, { ...XML_LIMITS, maxChars: MAX_PRESENCE_EXTRAS + 64, maxDepth: 8, maxElements: 256 }));
    } catch (e) {
      if (!(e instanceof XmlError)) throw e;
    }
    this.extras.set(id, { raw, els });
    return els;
  }
}

function nickFromUsername(username: string | undefined): string {
  const s = withoutControlChars(username ?? '').trim();
  return s === '' ? 'anonymous' : s.slice(0, 128);
}

/** The XMPP rooms of live groups; a room is forgotten when its last XMPP occupant leaves. */
export class RoomDirectory {
  private readonly rooms = new Map<string, XmppRoom>();

  constructor(
    registry: Registry,
    private readonly mucDomain: string,
  ) {
    registry.on('memberRemoved', (g, m) => this.rooms.get(g.name)?.forget(m.id));
  }

  room(group: string): XmppRoom {
    let r = this.rooms.get(group);
    if (!r) {
      r = new XmppRoom(group, `${roomOfGroup(group)}@${this.mucDomain}`);
      this.rooms.set(group, r);
    }
    return r;
  }

  get(group: string): XmppRoom | undefined {
    return this.rooms.get(group);
  }

  release(room: XmppRoom): void {
    if (room.occupants.size === 0 && this.rooms.get(room.group) === room) this.rooms.delete(room.group);
  }
}

// ---------------------------------------------------------------------
// Roles and affiliations from permissions.

export function roleOf(perms: readonly Permission[]): 'moderator' | 'participant' | 'visitor' {
  if (perms.includes('op')) return 'moderator';
  if (perms.includes('present') || perms.includes('message')) return 'participant';
  return 'visitor';
}

export function affiliationOf(perms: readonly Permission[]): 'owner' | 'member' | 'none' {
  if (perms.includes('op')) return 'owner';
  if (perms.includes('present')) return 'member';
  return 'none';
}

// ---------------------------------------------------------------------
// The occupant: one XMPP session in one group.

interface JoinOptions {
  /** XEP-0045 §7.2.15 history limits. */
  history: { maxstanzas?: number; maxchars?: number; seconds?: number; since?: Date };
}

export class Occupant implements Client {
  readonly kind = XMPP_KIND;
  readonly id = randomBytes(12).toString('base64url');
  member: Member | undefined;
  /** Events that arrive while the join is decided; sent in XEP-0045's order once it is. */
  private held: CoreEvent[] | undefined = [];
  private perms: Permission[] = [];
  private subject: string | undefined;
  private kickedBy: { by: string | undefined; message: string } | undefined;
  private gone = false;
  /** The id of the groupchat message being sent, so its reflection carries it. */
  private echoId: string | undefined;
  readonly chatBucket = new TokenBucket(CHAT_RATE.perSecond, CHAT_RATE.burst);
  readonly media: MediaSessions;

  constructor(
    readonly session: XmppSession,
    readonly room: XmppRoom,
    readonly nick: string,
    private readonly options: JoinOptions,
  ) {
    this.media = new MediaSessions(this);
  }

  /** In Jicofo mode the occupant takes the group's streams at track level (its bundle session sends them). */
  get tracks(): TrackConsumer | undefined {
    return this.media.jicofo;
  }

  get occupantJid(): string {
    return `${this.room.jid}/${this.nick}`;
  }

  get isModerator(): boolean {
    return this.perms.includes('op');
  }

  // Client --------------------------------------------------------------

  deliver(event: CoreEvent): void {
    if (this.gone) return;
    if (this.held) {
      this.held.push(event);
      return;
    }
    this.render(event);
  }

  terminate(reason: string, why: 'kicked' | 'shutdown' = 'kicked'): void {
    if (this.gone) return;
    if (why === 'shutdown') this.sendSelfUnavailable(['332'], reason);
    else if (!this.kickedBy) this.sendSelfUnavailable(['307'], reason);
    this.finish();
  }

  // ---------------------------------------------------------------------

  /** The join went through: what was held goes out — others, then self, then history, then the subject. */
  joined(member: Member): void {
    this.member = member;
    const held = this.held ?? [];
    this.held = undefined;
    if (this.session.focusRequested) this.session.send(focusPresence(this));
    const self: UserEvent[] = [];
    const history: ChatEvent[] = [];
    const rest: CoreEvent[] = [];
    for (const e of held) {
      if (e.type === 'joined') this.noteJoined(e);
      else if (e.type === 'user' && e.kind === 'add') (e.id === this.id ? self : rest).push(e);
      else if (e.type === 'chat' && e.history) history.push(e);
      else rest.push(e);
    }
    const others = rest.filter((e) => e.type === 'user');
    for (const e of others) this.render(e);
    for (const e of self) this.render(e);
    for (const e of this.filterHistory(history)) this.render(e);
    this.session.send(el('message', { type: 'groupchat', from: this.room.jid, id: randomBytes(6).toString('hex') }, el('subject', {}, this.subject ?? '')));
    for (const e of rest) if (e.type !== 'user') this.render(e);
    this.media.joined();
    this.session.roomsChanged();
  }

  /** Bytes waiting to go to this occupant's client (the history replay paces itself on it). */
  outputBacklog(): number {
    return this.session.outputBacklog();
  }

  /** The join was refused: nothing was sent for it but the error. */
  failed(): void {
    this.held = undefined;
    this.finish();
  }

  /** The session leaves the room (presence unavailable, or the session ended). */
  leave(reason: string, opts: { tell: boolean } = { tell: false }): void {
    const m = this.member;
    if (m) m.group.remove(m, { notify: opts.tell });
    if (!this.gone && opts.tell && !m) this.sendSelfUnavailable([], reason);
    this.finish();
  }

  private finish(): void {
    if (this.gone) return;
    this.gone = true;
    this.media.close();
    this.member = undefined;
    if (this.session.occupants.get(this.room.group) === this) this.session.occupants.delete(this.room.group);
    this.room.occupants.delete(this);
    this.session.ctx.rooms.release(this.room);
    this.session.roomsChanged();
  }

  /** Sends a groupchat message through the core; its reflection keeps the client's id. */
  chat(member: Member, kind: '' | 'me', value: string, id: string | undefined): void {
    this.echoId = id;
    try {
      member.group.chat(member, { kind, value });
    } finally {
      this.echoId = undefined;
    }
  }

  private filterHistory(entries: ChatEvent[]): ChatEvent[] {
    const h = this.options.history;
    let out = entries;
    const since = h.since?.getTime() ?? (h.seconds !== undefined ? Date.now() - h.seconds * 1000 : undefined);
    if (since !== undefined) out = out.filter((e) => e.time.getTime() >= since);
    if (h.maxstanzas !== undefined) out = h.maxstanzas === 0 ? [] : out.slice(-h.maxstanzas);
    if (h.maxchars !== undefined) {
      let budget = h.maxchars;
      const kept: ChatEvent[] = [];
      for (let i = out.length - 1; i >= 0; i--) {
        // Counted as XEP-0045 says: the characters of the whole stanza, roughly.
        const cost = out[i]!.value.length + 200;
        if (cost > budget) break;
        budget -= cost;
        kept.unshift(out[i]!);
      }
      out = kept;
    }
    return out;
  }

  private noteJoined(e: JoinedEvent): void {
    this.perms = e.permissions;
    const s = e.info.data.subject;
    this.subject = typeof s === 'string' ? s : undefined;
  }

  private render(event: CoreEvent): void {
    switch (event.type) {
      case 'joined':
        return this.renderJoined(event);
      case 'user':
        return this.renderUser(event);
      case 'chat':
        return this.renderChat(event);
      case 'message':
        return this.renderMessage(event);
      case 'stream':
        return this.media.streamEvent(event);
    }
  }

  private renderJoined(e: JoinedEvent): void {
    if (e.kind === 'leave') {
      if (this.kickedBy) return;
      this.sendSelfUnavailable([], undefined);
      return;
    }
    const before = this.subject;
    this.noteJoined(e);
    if (e.kind === 'change' && this.subject !== before) {
      this.session.send(el('message', { type: 'groupchat', from: this.room.jid, id: randomBytes(6).toString('hex') }, el('subject', {}, this.subject ?? '')));
    }
  }

  private renderUser(e: UserEvent): void {
    const self = e.id === this.id;
    const nick = self ? this.nick : this.room.nickOf(e.id, e.username);
    const from = `${this.room.jid}/${nick}`;
    if (e.kind === 'delete') {
      const codes = e.reason === 'kicked' ? ['307'] : e.reason === 'banned' ? ['301'] : [];
      const item = el('item', { affiliation: e.reason === 'banned' ? 'outcast' : 'none', role: 'none' });
      this.session.send(el('presence', { type: 'unavailable', from }, el('x', { xmlns: NS.mucUser }, item, ...codes.map((c) => el('status', { code: c })))), false);
      return;
    }
    const member = this.member?.group.member(e.id);
    const realJid = member?.client instanceof Occupant && (this.isModerator || self) ? member.client.session.fullJid : undefined;
    const x = el('x', { xmlns: NS.mucUser }, el('item', { affiliation: affiliationOf(e.permissions), role: roleOf(e.permissions), jid: realJid }));
    if (self) x.cnode(el('status', { code: '110' }));
    const presence = el('presence', { from }, ...this.room.extrasOf(e.id, e.data));
    if (e.username !== undefined) presence.cnode(el('nick', { xmlns: NS.nick }, e.username));
    presence.cnode(x);
    this.session.send(presence, self);
  }

  private renderChat(e: ChatEvent): void {
    // Captions are not chat; XMPP has no place for them.
    if (e.kind === 'caption') return;
    const body = e.kind === 'me' ? `/me ${e.value}` : e.value;
    const from = e.source === undefined ? this.room.jid : `${this.room.jid}/${this.nickOfSource(e.source, e.username)}`;
    if (e.dest !== undefined) {
      this.session.send(el('message', { type: 'chat', from, id: randomBytes(6).toString('hex') }, el('body', {}, body), el('x', { xmlns: NS.mucUser })));
      return;
    }
    const id = e.source === this.id && this.echoId !== undefined ? this.echoId : randomBytes(6).toString('hex');
    const m = el('message', { type: 'groupchat', from, id }, el('body', {}, body));
    if (e.history) m.cnode(el('delay', { xmlns: NS.delay, from: this.room.jid, stamp: e.time.toISOString() }));
    this.session.send(m);
  }

  private nickOfSource(id: string, username: string | undefined): string {
    if (id === this.id) return this.nick;
    // A member still here has its nick; one who left (history) is shown by its username.
    if (this.member?.group.member(id)) return this.room.nickOf(id, username);
    return nickFromUsername(username);
  }

  private renderMessage(e: MessageEvent): void {
    const fromMember = e.source === undefined ? this.room.jid : `${this.room.jid}/${this.nickOfSource(e.source, e.username)}`;
    switch (e.kind) {
      case 'kicked': {
        const message = typeof e.value === 'string' ? e.value : 'you were removed from the room';
        this.kickedBy = { by: e.source === undefined ? undefined : this.nickOfSource(e.source, e.username), message };
        this.sendSelfUnavailable([e.banned ? '301' : '307'], message, this.kickedBy.by, e.banned === true);
        return;
      }
      case ENDPOINT_MESSAGE_KIND:
        // A bridge-channel message (from a channel or a Galène-protocol member): to this client's channel, if it has one open.
        if (e.source !== undefined) {
          this.media.bridge?.send({ colibriClass: 'EndpointMessage', from: this.nickOfSource(e.source, e.username), to: e.dest === undefined ? '' : this.nick, msgPayload: e.value });
        }
        return;
      case RELAY_GROUPCHAT:
      case RELAY_PRIVATE: {
        const v = e.value as { type: string; children: Element[] };
        this.session.send(el('message', { type: v.type, from: fromMember, id: randomBytes(6).toString('hex') }, ...v.children));
        return;
      }
      case 'error':
      case 'warning':
      case 'info':
        if (typeof e.value === 'string') this.session.send(el('message', { type: 'groupchat', from: this.room.jid, id: randomBytes(6).toString('hex') }, el('body', {}, e.value)));
        return;
      case 'mute':
        // An operator asks this member to mute (Galène's mute): Jitsi clients take it from the focus.
        this.session.send(
          el('iq', { type: 'set', from: `${this.room.jid}/${FOCUS_NICK}`, id: randomBytes(6).toString('hex') }, el('mute', { xmlns: 'http://jitsi.org/jitmeet/audio', actor: fromMember }, 'true')),
        );
        return;
      default:
        // Galène's own messages (file transfers, raised hands…) mean nothing to an XMPP client.
        return;
    }
  }

  private sendSelfUnavailable(codes: string[], reason: string | undefined, actor?: string, banned = false): void {
    const item = el(
      'item',
      { affiliation: banned ? 'outcast' : affiliationOf(this.perms), role: 'none' },
      actor ? el('actor', { nick: actor }) : undefined,
      reason ? el('reason', {}, reason) : undefined,
    );
    this.session.send(el('presence', { type: 'unavailable', from: this.occupantJid }, el('x', { xmlns: NS.mucUser }, item, ...['110', ...codes].map((c) => el('status', { code: c })))));
  }
}

// ---------------------------------------------------------------------
// Stanzas to rooms and occupants.

/** The group a room JID names: exactly, else the one group whose name matches without case. */
function groupNameOf(session: XmppSession, room: Jid): string {
  const name = groupOfRoom(room.local);
  const registry = session.ctx.registry;
  if (registry.describe(name) || registry.get(name)) return name;
  const lower = name.toLowerCase();
  const candidates = new Set<string>();
  for (const d of registry.describeAll()) if (d.name.toLowerCase() === lower) candidates.add(d.name);
  for (const g of registry.groups()) if (g.name.toLowerCase() === lower) candidates.add(g.name);
  return candidates.size === 1 ? [...candidates][0]! : name;
}

function presenceError(session: XmppSession, roomJid: string, nick: string, condition: StanzaError['condition'], text: string): void {
  session.send(el('presence', { type: 'error', from: `${roomJid}/${nick}` }, el('x', { xmlns: NS.muc }), errorElement(condition, text)));
}

function asStanzaError(e: unknown): StanzaError | unknown {
  if (isCoreError(e)) return new StanzaError(conditionOf(e.code), e.message);
  return e;
}

function joinedOccupant(session: XmppSession, group: string, what: string): { occupant: Occupant; member: Member } {
  const occupant = session.occupants.get(group);
  const member = occupant?.member;
  if (!occupant || !member) throw new StanzaError('not-acceptable', `join the room before you ${what}`);
  return { occupant, member };
}

export async function handleMucPresence(session: XmppSession, p: Element, room: Jid, nick: string | undefined): Promise<void> {
  const type = attr(p, 'type');
  if (type === 'error' || type === 'probe' || type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed') return;
  const group = groupNameOf(session, room);
  const roomJid = `${roomOfGroup(group)}@${session.ctx.mucDomain}`;
  const existing = session.occupants.get(group);
  if (type === 'unavailable') {
    if (existing) existing.leave(p.getChildText('status') ?? 'left the room', { tell: true });
    return;
  }
  if (type !== undefined) {
    throw new StanzaError('bad-request', `presence of type "${type}" means nothing to a room`);
  }
  if (nick === undefined) {
    // XEP-0045 §7.2.1: a join needs a nickname.
    return presenceError(session, roomJid, '', 'jid-malformed', 'join a room at room@service/nickname: the nickname is missing');
  }
  if (existing) {
    if (nick !== existing.nick) throw new StanzaError('not-acceptable', 'changing your nickname in a room is not supported; leave and join again');
    if (existing.member) updatePresence(existing, existing.member, p);
    return;
  }
  return join(session, p, group, roomJid, nick);
}

async function join(session: XmppSession, p: Element, group: string, roomJid: string, nick: string): Promise<void> {
  const ctx = session.ctx;
  const x = p.getChild('x', NS.muc);
  const password = x?.getChildText('password') ?? undefined;
  const history = parseHistory(x?.getChild('history'));
  const room = ctx.rooms.room(group);
  if (nick === FOCUS_NICK || room.nickTaken(nick)) {
    ctx.rooms.release(room);
    return presenceError(session, roomJid, nick, 'conflict', `the nickname "${nick}" is already used in this room; choose another one`);
  }
  const displayName = p.getChildText('nick', NS.nick)?.trim() || undefined;
  const login = session.login;
  const occupant = new Occupant(session, room, nick, { history });
  room.reserve(nick, occupant.id);
  room.occupants.add(occupant);
  session.occupants.set(group, occupant);
  const creds =
    login.kind === 'password'
      ? { username: login.username, password: password ?? login.password }
      : login.kind === 'token'
        ? { token: login.token, username: login.username ?? displayName ?? nick, ...(password !== undefined ? { password } : {}) }
        : { username: displayName ?? nick, password };
  let extras: string;
  try {
    extras = presenceExtras(p);
  } catch (e) {
    occupant.failed();
    room.forget(occupant.id);
    throw e;
  }
  try {
    const outcome = await ctx.registry.join(occupant, {
      group,
      ...creds,
      data: extras ? { [PRESENCE_DATA_KEY]: extras } : {},
      groupUrl: session.place.groupUrl(group),
      address: session.address,
      via: 'xmpp',
    });
    if (outcome.kind === 'redirect') {
      occupant.failed();
      room.forget(occupant.id);
      session.send(
        el(
          'presence',
          { type: 'error', from: `${roomJid}/${nick}` },
          el('x', { xmlns: NS.muc }),
          el('error', { type: 'cancel' }, el('gone', { xmlns: NS.stanzas }, outcome.url), el('text', { xmlns: NS.stanzas }, `this group moved to ${outcome.url}`)),
        ),
      );
      return;
    }
    if (outcome.kind === 'elsewhere') {
      // One XMPP stream carries every room of a session, so it cannot be handed to the node that holds this one.
      occupant.failed();
      room.forget(occupant.id);
      const url = `${outcome.node.publicUrl.replace(/^http/, 'ws')}/xmpp-websocket`;
      session.send(
        el(
          'presence',
          { type: 'error', from: `${roomJid}/${nick}` },
          el('x', { xmlns: NS.muc }),
          el(
            'error',
            { type: 'modify' },
            el('redirect', { xmlns: NS.stanzas }, url),
            el('text', { xmlns: NS.stanzas }, `room "${group}" is served by node "${outcome.node.id}" of the cluster: connect to ${url} to join it`),
          ),
        ),
      );
      return;
    }
    if (session.isEnded || session.occupants.get(group) !== occupant) {
      outcome.member.group.remove(outcome.member, { notify: false });
      return;
    }
    occupant.joined(outcome.member);
  } catch (e) {
    occupant.failed();
    room.forget(occupant.id);
    const err = asStanzaError(e);
    if (!(err instanceof StanzaError)) throw e;
    ctx.metrics.errors.inc({ dialect: 'xmpp', kind: err.condition });
    presenceError(session, roomJid, nick, err.condition, err.message);
  }
}

function parseHistory(h: Element | undefined): JoinOptions['history'] {
  if (!h) return {};
  const out: JoinOptions['history'] = {};
  const int = (name: string) => {
    const v = attr(h, name);
    if (v === undefined) return undefined;
    const n = Number(v);
    return Number.isInteger(n) && n >= 0 ? n : undefined;
  };
  const maxstanzas = int('maxstanzas');
  const maxchars = int('maxchars');
  const seconds = int('seconds');
  if (maxstanzas !== undefined) out.maxstanzas = maxstanzas;
  if (maxchars !== undefined) out.maxchars = maxchars;
  if (seconds !== undefined) out.seconds = seconds;
  const since = attr(h, 'since');
  if (since !== undefined && !Number.isNaN(Date.parse(since))) out.since = new Date(since);
  return out;
}

/** The presence children other XMPP occupants should see (everything but MUC's own and the nick), serialized. */
function presenceExtras(p: Element): string {
  const s = childElements(p)
    .filter((c) => !isOwnPresenceChild(c))
    .map((c) => c.toString())
    .join('');
  if (s.length > MAX_PRESENCE_EXTRAS) throw new StanzaError('policy-violation', `the presence extensions are ${s.length} characters, over the ${MAX_PRESENCE_EXTRAS}-character limit`);
  return s;
}

/** A presence update in a room: extensions become the member's data; a new nick element renames it. */
function updatePresence(occupant: Occupant, member: Member, p: Element): void {
  const group = member.group;
  const extras = presenceExtras(p);
  const displayName = p.getChildText('nick', NS.nick)?.trim() || undefined;
  try {
    if (displayName !== undefined && displayName !== member.username && occupant.session.login.kind !== 'password') group.rename(member, displayName);
    if ((member.data[PRESENCE_DATA_KEY] ?? '') !== extras) group.userAction(member, 'setdata', undefined, { [PRESENCE_DATA_KEY]: extras });
  } catch (e) {
    throw asStanzaError(e);
  }
}

export function handleMucMessage(session: XmppSession, m: Element, room: Jid, nick: string | undefined): void {
  const type = attr(m, 'type') ?? 'normal';
  if (type === 'error') return;
  const group = groupNameOf(session, room);
  const body = m.getChildText('body');
  if (nick === undefined) {
    if (type !== 'groupchat') {
      if (m.getChild('x', NS.mucUser)?.getChild('invite')) throw new StanzaError('feature-not-implemented', 'invitations are not supported: share the group link instead');
      throw new StanzaError('bad-request', 'messages to a room are of type "groupchat"');
    }
    const { occupant, member } = joinedOccupant(session, group, 'send messages to it');
    const subject = m.getChild('subject');
    try {
      if (subject && body === null) {
        member.group.groupAction(member, 'setdata', { subject: subject.getText() });
        return;
      }
      if (body !== null) {
        if (!occupant.chatBucket.take()) throw new StanzaError('resource-constraint', 'too many messages: at most 10 a second');
        if (body.length > LIMITS.chatChars) throw new StanzaError('not-acceptable', `a message may hold at most ${LIMITS.chatChars} characters`);
        const me = body.startsWith('/me ');
        occupant.chat(member, me ? 'me' : '', me ? body.slice(4) : body, attr(m, 'id'));
        return;
      }
      // Chat states, Jitsi's json-message and other payloads go to the XMPP occupants only.
      const children = childElements(m);
      if (children.length === 0) return;
      member.group.relay(member, { kind: RELAY_GROUPCHAT, value: { type: 'groupchat', children }, audience: XMPP_KIND, noecho: true });
    } catch (e) {
      throw asStanzaError(e);
    }
    return;
  }
  const { occupant, member } = joinedOccupant(session, group, 'send private messages in it');
  const targetId = occupant.room.idOf(nick);
  const target = targetId === undefined ? undefined : member.group.member(targetId);
  if (!target) throw new StanzaError('item-not-found', `there is nobody called "${nick}" in this room`);
  try {
    if (body !== null) {
      if (!occupant.chatBucket.take()) throw new StanzaError('resource-constraint', 'too many messages: at most 10 a second');
      if (body.length > LIMITS.chatChars) throw new StanzaError('not-acceptable', `a message may hold at most ${LIMITS.chatChars} characters`);
      const me = body.startsWith('/me ');
      member.group.chat(member, { kind: me ? 'me' : '', dest: target.id, value: me ? body.slice(4) : body });
      return;
    }
    if (target.client.kind !== XMPP_KIND) return;
    const children = childElements(m).filter((c) => c.getNS() !== NS.mucUser);
    if (children.length > 0) member.group.relay(member, { kind: RELAY_PRIVATE, dest: target.id, value: { type, children }, audience: XMPP_KIND });
  } catch (e) {
    throw asStanzaError(e);
  }
}

export function handleMucServiceIq(session: XmppSession, iq: Element): void {
  const child = childElements(iq)[0]!;
  const ns = child.getNS();
  const type = attr(iq, 'type');
  const ctx = session.ctx;
  const result = (...c: Element[]) => session.send(el('iq', { type: 'result', id: attr(iq, 'id'), from: ctx.mucDomain }, ...c));
  if (type === 'get' && ns === NS.discoInfo) {
    return result(
      el(
        'query',
        { xmlns: NS.discoInfo },
        el('identity', { category: 'conference', type: 'text', name: 'Atrium groups' }),
        ...[NS.muc, NS.discoInfo, NS.discoItems, NS.ping].map((f) => el('feature', { var: f })),
      ),
    );
  }
  if (type === 'get' && ns === NS.discoItems) {
    // Public groups, as /public-groups.json lists them.
    const items = ctx.registry
      .describeAll()
      .filter((d) => d.public)
      .map((d) => el('item', { jid: `${roomOfGroup(d.name)}@${ctx.mucDomain}`, name: d.displayName ?? d.name }));
    return result(el('query', { xmlns: NS.discoItems }, ...items));
  }
  if (type === 'get' && ns === NS.ping) return result();
  throw new StanzaError('service-unavailable', `the MUC service does not offer <${child.getName()} xmlns="${ns ?? ''}">`);
}

export async function handleMucIq(session: XmppSession, iq: Element, room: Jid, nick: string | undefined): Promise<void> {
  const child = childElements(iq)[0]!;
  const ns = child.getNS();
  const type = attr(iq, 'type');
  const ctx = session.ctx;
  const group = groupNameOf(session, room);
  const roomJid = `${roomOfGroup(group)}@${ctx.mucDomain}`;
  const from = nick === undefined ? roomJid : `${roomJid}/${nick}`;
  const result = (...c: Element[]) => session.send(el('iq', { type: 'result', id: attr(iq, 'id'), from }, ...c));
  if (nick !== undefined) {
    const occupant = session.occupants.get(group);
    if (nick === FOCUS_NICK) {
      if (!occupant?.member) throw new StanzaError('not-acceptable', 'join the room before talking to its focus');
      return occupant.media.handleIq(iq, child);
    }
    if (type === 'get' && ns === NS.ping) {
      // XEP-0410 self-ping: answered while the occupant is in the room.
      if (!occupant?.member) throw new StanzaError('not-acceptable', 'you are not in this room');
      if (occupant.room.idOf(nick) === undefined) throw new StanzaError('item-not-found', `there is nobody called "${nick}" in this room`);
      return result();
    }
    if (!occupant?.member) throw new StanzaError('not-acceptable', 'join the room before sending requests to its occupants');
    const targetId = occupant.room.idOf(nick);
    const target = targetId === undefined ? undefined : occupant.member.group.member(targetId);
    if (!target) throw new StanzaError('item-not-found', `there is nobody called "${nick}" in this room`);
    if (!(target.client instanceof Occupant)) throw new StanzaError('service-unavailable', `"${nick}" is not an XMPP client and answers no requests`);
    // Between XMPP occupants, requests go through as XEP-0045 §7.6 says, addressed by room nick.
    // Not awaited: the answer comes when the other client gives it, and nothing waits behind it meanwhile.
    const forwarded = el('iq', { type, from: occupant.occupantJid }, child);
    void target.client.session.request(forwarded).then((reply) => {
      session.send(el('iq', { type: attr(reply, 'type') === 'result' ? 'result' : 'error', id: attr(iq, 'id'), from }, ...childElements(reply)));
    });
    return;
  }
  if (type === 'get' && ns === NS.discoInfo) {
    const desc = ctx.registry.describe(group);
    if (!desc) throw new StanzaError('item-not-found', `there is no group called "${group}" on this server`);
    const live = ctx.registry.get(group);
    const needsPassword = (desc.wildcardUser?.password as { type?: string } | undefined)?.type !== 'wildcard';
    return result(roomDiscoInfo(group, live, { displayName: desc.displayName, description: desc.description, public: desc.public, needsPassword, locked: live?.locked ?? false }));
  }
  if (type === 'get' && ns === NS.discoItems) return result(el('query', { xmlns: NS.discoItems }));
  if (type === 'get' && ns === NS.ping) {
    if (!ctx.registry.describe(group)) throw new StanzaError('item-not-found', `there is no group called "${group}" on this server`);
    return result();
  }
  if (ns === NS.mucAdmin) {
    const { occupant, member } = joinedOccupant(session, group, 'administer it');
    if (type === 'set') {
      adminSet(occupant, member, child);
      return result();
    }
    return result(adminGet(occupant, member, child));
  }
  if (ns === NS.mucOwner) {
    const { member } = joinedOccupant(session, group, 'configure it');
    if (!member.has('op')) throw new StanzaError('forbidden', 'you need the "op" permission to configure this room');
    if (type === 'get') return result(el('query', { xmlns: NS.mucOwner }, roomConfigForm(member.group)));
    if (child.getChild('destroy')) throw new StanzaError('not-allowed', 'rooms are Atrium groups: delete the group file (or use the admin API) to remove one');
    // A submitted configuration (Jitsi sends one when it thinks it created the room) is accepted and changes nothing: the group file rules.
    return result();
  }
  throw new StanzaError('service-unavailable', `the room does not offer <${child.getName()} xmlns="${ns ?? ''}">`);
}

function roomConfigForm(group: Group): Element {
  const d = group.description;
  const field = (v: string, t: string, label: string, value: string) => el('field', { var: v, type: t, label }, el('value', {}, value));
  return el(
    'x',
    { xmlns: NS.dataForms, type: 'form' },
    el('title', {}, `Configuration of ${group.name} (read from its group file)`),
    field('FORM_TYPE', 'hidden', '', 'http://jabber.org/protocol/muc#roomconfig'),
    field('muc#roomconfig_roomname', 'text-single', 'Name', d.displayName ?? group.name),
    field('muc#roomconfig_roomdesc', 'text-single', 'Description', d.description ?? ''),
    field('muc#roomconfig_publicroom', 'boolean', 'Public', d.public ? '1' : '0'),
    field('muc#roomconfig_persistentroom', 'boolean', 'Persistent', '1'),
    field('muc#roomconfig_maxusers', 'text-single', 'Maximum occupants', String(d.maxClients ?? 0)),
  );
}

/** muc#admin set: roles and affiliations become the core's kick, ban, op/unop, present/unpresent. */
function adminSet(occupant: Occupant, member: Member, query: Element): void {
  const items = query.getChildren('item');
  if (items.length === 0) throw new StanzaError('bad-request', 'a muc#admin set carries <item/> elements');
  const group = member.group;
  for (const item of items) {
    const role = attr(item, 'role');
    const affiliation = attr(item, 'affiliation');
    const reason = item.getChildText('reason') ?? undefined;
    const targetNick = attr(item, 'nick');
    const targetJid = attr(item, 'jid');
    const target = findTarget(occupant, group, targetNick, targetJid);
    try {
      if (affiliation === 'outcast') {
        if (!target) throw new StanzaError('item-not-found', `nobody in this room has ${targetNick ? `the nickname "${targetNick}"` : `the address ${targetJid}`}`);
        group.ban(member, target.id, reason);
        continue;
      }
      if (affiliation === 'none' && !target && targetJid) {
        // Lifting a ban: bans are by username, which is the localpart of a password login.
        if (!group.unban(member, targetJid.split('@')[0] ?? targetJid)) throw new StanzaError('item-not-found', `${targetJid} is not banned`);
        continue;
      }
      if (!target) throw new StanzaError('item-not-found', `nobody in this room has ${targetNick ? `the nickname "${targetNick}"` : `the address ${targetJid ?? '(none given)'}`}`);
      if (role === 'none') group.userAction(member, 'kick', target.id, reason ?? '');
      else if (role === 'moderator' || affiliation === 'owner' || affiliation === 'admin') group.userAction(member, 'op', target.id, undefined);
      else if (role === 'visitor') group.userAction(member, 'unpresent', target.id, undefined);
      else if (role === 'participant' || affiliation === 'member' || affiliation === 'none') {
        if (target.has('op')) group.userAction(member, 'unop', target.id, undefined);
        if (role === 'participant' && !target.has('present')) group.userAction(member, 'present', target.id, undefined);
      } else throw new StanzaError('bad-request', 'an <item/> needs a role (none, visitor, participant, moderator) or an affiliation (outcast, none, member, admin, owner)');
    } catch (e) {
      throw asStanzaError(e);
    }
  }
}

function findTarget(occupant: Occupant, group: Group, nick: string | undefined, jid: string | undefined): Member | undefined {
  if (nick !== undefined) {
    const id = occupant.room.idOf(nick);
    return id === undefined ? undefined : group.member(id);
  }
  if (jid !== undefined) {
    for (const m of group.allMembers()) {
      if (m.client instanceof Occupant && (m.client.session.bareJid === jid || m.client.session.fullJid === jid)) return m;
    }
  }
  return undefined;
}

/** muc#admin get: the occupants with a role or affiliation (moderators only), and the banned users. */
function adminGet(occupant: Occupant, member: Member, query: Element): Element {
  if (!member.has('op')) throw new StanzaError('forbidden', 'you need the "op" permission to list roles and affiliations');
  const item = query.getChild('item');
  const role = item ? attr(item, 'role') : undefined;
  const affiliation = item ? attr(item, 'affiliation') : undefined;
  const out = el('query', { xmlns: NS.mucAdmin });
  const group = member.group;
  if (affiliation === 'outcast') {
    for (const u of group.bannedUsernames()) out.cnode(el('item', { affiliation: 'outcast', jid: `${u}@${occupant.session.ctx.domain}` }));
    return out;
  }
  for (const m of group.allMembers()) {
    const perms = m.permissions;
    if (role !== undefined && roleOf(perms) !== role) continue;
    if (affiliation !== undefined && affiliationOf(perms) !== affiliation) continue;
    out.cnode(
      el('item', { nick: occupant.room.nickOf(m.id, m.username), role: roleOf(perms), affiliation: affiliationOf(perms), jid: m.client instanceof Occupant ? m.client.session.bareJid : undefined }),
    );
  }
  return out;
}

export { CoreError, formatJid };
