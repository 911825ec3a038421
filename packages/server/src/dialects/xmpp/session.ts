// One XMPP session: a bound full JID, the rooms it is in, and stream
// management (XEP-0198) — counted, acknowledged and queued stanzas, so that
// a session whose stream drops keeps its rooms for a while and resumes on a
// new stream without losing a stanza. Routes each stanza to the server
// itself, the MUC service, a room, an occupant or the focus.
import { randomBytes } from 'node:crypto';
import type { Place } from '../../http/place.ts';
import type { XmppContext } from './context.ts';
import { handleFocusIq } from './focus.ts';
import { type Jid, JidError, bare, formatJid, parseJid } from './jid.ts';
import { type Occupant, handleMucIq, handleMucMessage, handleMucPresence, handleMucServiceIq } from './muc.ts';
import type { Login } from './sasl.ts';
import { discoInfo } from './disco.ts';
import { NS, StanzaError, errorReply } from './stanza.ts';
import type { XmppConnection } from './connection.ts';
import { type Element, attr, childElements, el } from './xml.ts';

/** Stream-management limits. */
export const SM_LIMITS = {
  /** Unacknowledged stanzas kept for a resumption; over this the session ends. */
  maxUnacked: 1000,
  maxUnackedBytes: 4 * 1024 * 1024,
  /** Ask the client for an acknowledgement after this many unacknowledged stanzas. */
  requestAfter: 10,
};

interface StreamManagement {
  id: string;
  resumable: boolean;
  /** Stanzas received from the client (the h we report). */
  inbound: number;
  /** Stanzas sent to the client. */
  outbound: number;
  /** Stanzas sent and not yet acknowledged, oldest first (outbound - queue.length were acknowledged). */
  queue: string[];
  queueBytes: number;
  /** An <r/> is out and unanswered. */
  requested: boolean;
}

/** Where a stanza is addressed, as this server sees it. */
type Target = { kind: 'server' } | { kind: 'muc-service' } | { kind: 'room'; room: Jid } | { kind: 'occupant'; room: Jid; nick: string } | { kind: 'focus' } | { kind: 'elsewhere'; jid: Jid };

export class XmppSession {
  readonly fullJid: string;
  readonly bareJid: string;
  private stream: XmppConnection | undefined;
  /** Rooms this session is in, by group name. */
  readonly occupants = new Map<string, Occupant>();
  private sm: StreamManagement | undefined;
  private hibernation: NodeJS.Timeout | undefined;
  private ended = false;
  /** Stanzas both ways are logged at level trace (`--log-level trace`). */
  private readonly trace: boolean;
  /** The client sent Jitsi's conference request: it wants media (Jingle sessions with the focus) in its rooms. */
  focusRequested = false;
  /** How the focus gives it media: one Jingle session for everything (Jicofo's way, the default), or one per stream (Atrium's). */
  focusMode: 'bundle' | 'per-stream' = 'bundle';
  /** IQs this server sent to the client, by id, waiting for the result. */
  private readonly pending = new Map<string, { resolve: (reply: Element) => void; timer: NodeJS.Timeout }>();

  constructor(
    readonly jid: Jid,
    readonly login: Login,
    readonly place: Place,
    readonly ctx: XmppContext,
    /** The client's network address when the session started, for login throttling. */
    readonly address: string | undefined,
  ) {
    this.fullJid = formatJid(jid);
    this.bareJid = bare(jid);
    this.trace = ctx.log.isLevelEnabled('trace');
    ctx.sessions.add(this);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /**
   * Whether another stream proved to be the same user (resumption is for the
   * owner only): the same user and password login, or the same token. An
   * ANONYMOUS login proves nothing, so there the stream-management id (128
   * random bits, only ever sent to this client) is the proof; a token login
   * without a user name gets a new guest JID on each stream, so the JID is
   * not compared.
   */
  sameUser(login: Login): boolean {
    if (login.kind === 'password' && this.login.kind === 'password') return login.username === this.login.username;
    if (login.kind === 'token' && this.login.kind === 'token') return login.token === this.login.token && login.username === this.login.username;
    return login.kind === 'anonymous' && this.login.kind === 'anonymous';
  }

  attach(stream: XmppConnection): void {
    this.stream = stream;
    this.roomsChanged();
  }

  /** The rooms this session is in changed (joined, left): the stream's join timeout follows. */
  roomsChanged(): void {
    this.stream?.roomsChanged([...this.occupants.values()].some((o) => o.member !== undefined));
  }

  /** Bytes waiting to go to the client (0 while the session waits for a resumption). */
  outputBacklog(): number {
    return this.stream?.backlog() ?? 0;
  }

  /** The stream ended; without resumption the session ends with it. */
  detach(stream: XmppConnection, mayHibernate: boolean): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    if (mayHibernate && this.sm?.resumable && !this.ended) {
      this.hibernation = setTimeout(() => this.end('the stream was not resumed in time'), this.ctx.resumeSeconds * 1000);
      this.hibernation.unref();
      return;
    }
    this.end('the stream ended');
  }

  /** A new stream takes this session over (XEP-0198 §5). */
  resume(stream: XmppConnection, h: number): void {
    clearTimeout(this.hibernation);
    this.hibernation = undefined;
    const old = this.stream;
    this.stream = stream;
    if (old && old !== stream) old.streamError('conflict', 'the session was resumed on another stream');
    this.roomsChanged();
    const sm = this.sm!;
    this.acknowledge(h);
    stream.write(el('resumed', { xmlns: NS.sm, h: sm.inbound, previd: sm.id }));
    for (const s of sm.queue) stream.write(s);
    sm.requested = false;
    this.requestAck();
  }

  /** Ends the session: leaves every room, forgets its queue. */
  end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.hibernation);
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const o of [...this.occupants.values()]) o.leave(reason);
    this.ctx.sessions.remove(this);
    const s = this.stream;
    this.stream = undefined;
    if (s && !s.isClosed) s.streamError('system-shutdown', reason);
  }

  // -------------------------------------------------------------------
  // Output

  /** Sends a stanza to the client (counted and kept until acknowledged when stream management is on). */
  send(stanza: Element, urgent = true): void {
    if (this.ended) return;
    if (stanza.attrs.xmlns === undefined) stanza.attrs.xmlns = NS.client;
    if (stanza.attrs.to === undefined) stanza.attrs.to = this.fullJid;
    const xml = stanza.toString();
    if (this.trace) this.ctx.log.trace({ jid: this.fullJid, xml }, 'xmpp out');
    const sm = this.sm;
    if (sm) {
      sm.outbound = (sm.outbound + 1) % 2 ** 32;
      sm.queue.push(xml);
      sm.queueBytes += xml.length;
      if (sm.queue.length > SM_LIMITS.maxUnacked || sm.queueBytes > SM_LIMITS.maxUnackedBytes) {
        this.ctx.metrics.errors.inc({ dialect: 'xmpp', kind: 'too-slow' });
        const s = this.stream;
        if (s) s.streamError('resource-constraint', `over ${SM_LIMITS.maxUnacked} stanzas (or ${SM_LIMITS.maxUnackedBytes} bytes) sent and not acknowledged`);
        else this.end('too many stanzas waiting for the session to be resumed');
        return;
      }
    }
    this.stream?.write(xml, urgent);
    if (sm && !sm.requested && sm.queue.length >= SM_LIMITS.requestAfter) this.requestAck();
  }

  /** Sends an IQ get/set to the client and resolves with its result (or error) stanza. */
  request(iq: Element, timeoutMs = 30_000): Promise<Element> {
    const id = attr(iq, 'id') ?? randomBytes(8).toString('hex');
    iq.attrs.id = id;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(el('iq', { type: 'error', id }, el('error', { type: 'wait' }, el('remote-server-timeout', { xmlns: NS.stanzas }))));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, timer });
      this.send(iq);
    });
  }

  /** Stream-management nonzas that are not enable/resume. */
  handleSm(e: Element): void {
    const name = e.getName();
    const stream = this.stream;
    if (!stream) return;
    if (name === 'enable') {
      if (this.sm) {
        stream.write(el('failed', { xmlns: NS.sm }, el('unexpected-request', { xmlns: NS.stanzas }), el('text', { xmlns: NS.stanzas }, 'stream management is already on')));
        return;
      }
      const resumable = attr(e, 'resume') === 'true' || attr(e, 'resume') === '1';
      const id = randomBytes(16).toString('base64url');
      this.sm = { id, resumable, inbound: 0, outbound: 0, queue: [], queueBytes: 0, requested: false };
      if (resumable) this.ctx.sessions.registerResumable(id, this);
      stream.write(el('enabled', { xmlns: NS.sm, id, resume: resumable ? 'true' : undefined, max: resumable ? this.ctx.resumeSeconds : undefined }));
      return;
    }
    const sm = this.sm;
    if (!sm) return stream.streamError('unsupported-stanza-type', `<${name}/> of stream management before <enable/>`);
    if (name === 'r') {
      stream.write(el('a', { xmlns: NS.sm, h: sm.inbound }));
      return;
    }
    if (name === 'a') {
      const h = Number(attr(e, 'h'));
      if (!Number.isInteger(h) || h < 0) return stream.streamError('policy-violation', 'an <a/> needs a whole number h');
      sm.requested = false;
      this.acknowledge(h);
      return;
    }
    stream.streamError('unsupported-stanza-type', `<${name}/> is not a stream-management element`);
  }

  private acknowledge(h: number): void {
    const sm = this.sm!;
    const unacked = sm.queue.length;
    const acked = (sm.outbound - unacked + 2 ** 32) % 2 ** 32;
    const newly = (h - acked + 2 ** 32) % 2 ** 32;
    // An h behind one already acknowledged is stale (@xmpp/client can count a few
    // stanzas before it resets its counter on <enabled/>): ignored, as Prosody does.
    if (newly >= 2 ** 31) return;
    if (newly > unacked) {
      this.stream?.streamError('policy-violation', `the client acknowledged ${h} stanzas but only ${(acked + unacked) % 2 ** 32} were sent (XEP-0198 handled-count-too-high)`);
      return;
    }
    for (const s of sm.queue.splice(0, newly)) sm.queueBytes -= s.length;
  }

  private requestAck(): void {
    const sm = this.sm;
    if (!sm || !this.stream || sm.queue.length === 0) return;
    sm.requested = true;
    this.stream.write(el('r', { xmlns: NS.sm }));
  }

  // -------------------------------------------------------------------
  // Input

  handle(stanza: Element): void | Promise<void> {
    if (this.trace) this.ctx.log.trace({ jid: this.fullJid, xml: stanza.toString() }, 'xmpp in');
    if (this.sm) this.sm.inbound = (this.sm.inbound + 1) % 2 ** 32;
    const name = stanza.getName();
    const type = attr(stanza, 'type');
    // The server stamps the sender (RFC 6120 §8.1.2.1).
    stanza.attrs.from = this.fullJid;
    let target: Target;
    try {
      target = this.targetOf(attr(stanza, 'to'));
    } catch (e) {
      if (!(e instanceof JidError)) throw e;
      return this.refuse(stanza, new StanzaError('jid-malformed', e.message));
    }
    if (name === 'iq' && (type === 'result' || type === 'error')) return this.iqReply(stanza);
    if (name === 'iq' && type !== 'get' && type !== 'set') return this.refuse(stanza, new StanzaError('bad-request', 'an iq has type get, set, result or error'));
    if (name === 'iq' && childElements(stanza).length !== 1) return this.refuse(stanza, new StanzaError('bad-request', 'an iq get or set carries exactly one child element'));
    try {
      const r = this.route(stanza, target);
      if (r) return r.catch((e) => this.refuse(stanza, e));
    } catch (e) {
      this.refuse(stanza, e);
    }
  }

  private route(stanza: Element, target: Target): void | Promise<void> {
    const name = stanza.getName();
    switch (target.kind) {
      case 'server':
        if (name === 'iq') return this.serverIq(stanza);
        // Presence to the server (available/unavailable broadcast) has no roster to go to; messages to oneself are dropped.
        return;
      case 'muc-service':
        if (name === 'iq') return handleMucServiceIq(this, stanza);
        if (name === 'presence') return;
        throw new StanzaError('service-unavailable', `the MUC service ${this.ctx.mucDomain} takes no messages; send them to a room`);
      case 'room':
        if (name === 'iq') return handleMucIq(this, stanza, target.room, undefined);
        if (name === 'message') return handleMucMessage(this, stanza, target.room, undefined);
        return handleMucPresence(this, stanza, target.room, undefined);
      case 'occupant':
        if (name === 'iq') return handleMucIq(this, stanza, target.room, target.nick);
        if (name === 'message') return handleMucMessage(this, stanza, target.room, target.nick);
        return handleMucPresence(this, stanza, target.room, target.nick);
      case 'focus':
        if (name === 'iq') return handleFocusIq(this, stanza);
        if (name === 'presence') return;
        throw new StanzaError('service-unavailable', `${this.ctx.focusDomain} takes only the conference request`);
      case 'elsewhere':
        if (name === 'presence') return;
        throw new StanzaError(
          target.jid.domain === this.ctx.domain ? 'service-unavailable' : 'remote-server-not-found',
          `this server does not deliver to ${formatJid(target.jid)}: only rooms on ${this.ctx.mucDomain} are reachable`,
        );
    }
  }

  private targetOf(to: string | undefined): Target {
    if (to === undefined || to === '') return { kind: 'server' };
    const j = parseJid(to);
    const d = this.ctx;
    if (j.domain === d.domain) {
      if (j.local === '' && j.resource === '') return { kind: 'server' };
      if (bare(j) === this.bareJid && (j.resource === '' || formatJid(j) === this.fullJid)) return { kind: 'server' };
      return { kind: 'elsewhere', jid: j };
    }
    if (j.domain === d.mucDomain) {
      if (j.local === '') return j.resource === '' ? { kind: 'muc-service' } : { kind: 'elsewhere', jid: j };
      return j.resource === '' ? { kind: 'room', room: j } : { kind: 'occupant', room: { ...j, resource: '' }, nick: j.resource };
    }
    if (j.domain === d.focusDomain && j.local === '') return { kind: 'focus' };
    return { kind: 'elsewhere', jid: j };
  }

  /** Answers a stanza with an error (IQ get/set, message, presence; never an error or a result). */
  refuse(stanza: Element, e: unknown): void {
    if (!(e instanceof StanzaError)) {
      this.ctx.log.error({ err: e, stanza: stanza.getName() }, 'unexpected error while handling an xmpp stanza');
      e = new StanzaError('internal-server-error', 'the server failed to handle this stanza; it was logged');
    }
    const err = e as StanzaError;
    this.ctx.metrics.errors.inc({ dialect: 'xmpp', kind: err.condition });
    const type = attr(stanza, 'type');
    if (type === 'error' || type === 'result') return;
    const reply = errorReply(stanza, err.condition, err.message, err.extra);
    reply.attrs.to = this.fullJid;
    // An address that does not parse is not echoed back as one.
    if (err.condition === 'jid-malformed') reply.attrs.from = this.ctx.domain;
    this.send(reply);
  }

  private iqReply(stanza: Element): void {
    const id = attr(stanza, 'id');
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p) return;
    this.pending.delete(id!);
    clearTimeout(p.timer);
    p.resolve(stanza);
  }

  private serverIq(iq: Element): void {
    const type = attr(iq, 'type');
    const child = childElements(iq)[0]!;
    const ns = child.getNS();
    const result = (...children: Element[]) => this.send(el('iq', { type: 'result', id: attr(iq, 'id'), from: this.ctx.domain }, ...children));
    if (ns === NS.ping && type === 'get') return result();
    if (ns === NS.session && type === 'set') return result();
    if (ns === NS.discoInfo && type === 'get') {
      if (attr(child, 'node')) throw new StanzaError('item-not-found', `no disco node "${attr(child, 'node')}" here`);
      return result(discoInfo('server', this.ctx));
    }
    if (ns === NS.discoItems && type === 'get') {
      return result(
        el(
          'query',
          { xmlns: NS.discoItems },
          el('item', { jid: this.ctx.mucDomain, name: 'Atrium groups (multi-user chat)' }),
          el('item', { jid: this.ctx.focusDomain, name: 'Atrium conference focus (Jingle)' }),
        ),
      );
    }
    if (ns === NS.roster && type === 'get') return result(el('query', { xmlns: NS.roster }));
    if (ns === NS.version && type === 'get') return result(el('query', { xmlns: NS.version }, el('name', {}, 'Atrium'), el('version', {}, '0.1.0')));
    if (ns === NS.time && type === 'get') {
      return result(el('time', { xmlns: NS.time }, el('tzo', {}, 'Z'), el('utc', {}, new Date().toISOString().replace(/\.\d+Z$/, 'Z'))));
    }
    if (ns === NS.bind) throw new StanzaError('not-allowed', 'a resource is already bound to this stream');
    throw new StanzaError('service-unavailable', `this server does not offer <${child.getName()} xmlns="${ns ?? ''}">`);
  }
}
