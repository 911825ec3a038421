// One XMPP stream (RFC 6120) over either transport, on the dialect kit's
// connection shell: opening and restarting, SASL, resource binding, stream
// management (XEP-0198) enable and resume, then stanzas handed to the
// session. The transport (RFC 7395 WebSocket, or a BOSH session) frames
// what this class writes. The shell does the rate limits, the frame size,
// the held queue (an element that waits — a password check, a room join —
// holds the ones after it), bounded output, the join timeout (a room must be
// joined within it) and liveness; every close it decides goes out as a
// stream error naming the reason.
import { randomBytes } from 'node:crypto';
import type { CoreEvent } from '../../core/client.ts';
import type { ErrorCode } from '../../core/vocabulary.ts';
import type { Place } from '../../http/place.ts';
import { CLOSE, DialectConnection, type Parsed, type Transport, type WsFrame, frameText } from '../kit/index.ts';
import type { XmppContext } from './context.ts';
import { formatJid, parseJid } from './jid.ts';
import { type Login, MECHANISMS, type Mechanism, OFFERED_MECHANISMS, SaslError, decodeSaslPayload, loginFrom } from './sasl.ts';
import { XmppSession } from './session.ts';
import { NS, type StreamErrorCondition, errorReply, streamErrorElement } from './stanza.ts';
import { type Element, XML_LIMITS, XmlError, attr, el, hasControlChars, parseElement, withoutControlChars } from './xml.ts';

export const DIALECT = 'xmpp';

/** A problem a transport found in what it received (a BOSH body too large, say): the stream ends with it. */
export interface StreamProblem {
  problem: { condition: StreamErrorCondition; text: string };
}

/** What a transport hands in: a WebSocket frame to parse, or an element a BOSH body carried (already parsed). */
export type XmppIn = WsFrame | { element: Element } | StreamProblem;

/** A transport of XMPP streams. */
export interface XmppTransport extends Transport<string, XmppIn> {
  readonly kind: 'websocket' | 'bosh';
  /** BOSH puts the stream header on its response body; without this method the header is sent as RFC 7395's <open/>. */
  header?(attrs: Record<string, string>): void;
}

/** What one element parses to: the element, whitespace (a keep-alive), or the stream error it calls for. */
type Msg = Element | null | StreamProblem;

/** Limits of one stream. */
export const STREAM_LIMITS = {
  /** SASL attempts before the stream is closed (RFC 6120 §6.4.5 suggests 2 to 5). */
  saslAttempts: 3,
};

/** The `type` label of the messages metric: the elements a client sends; anything else is "other" (names from the network are not labels). */
const METRIC_TYPES = new Set(['iq', 'message', 'presence', 'open', 'close', 'auth', 'response', 'abort', 'enable', 'resume', 'r', 'a']);

function metricType(e: Element): string {
  const name = e.getName();
  return METRIC_TYPES.has(name) ? name : 'other';
}

/** Stanzas a stream may sustain (the shell's rate limit and flood close). */
export const XMPP_RATES = { messagesPerSecond: 100, messageBurst: 200, closeAfterRefusedPerSecond: 200 };

/** The stream error for each close the shell decides. */
function conditionOfClose(code: number): StreamErrorCondition | undefined {
  switch (code) {
    case CLOSE.policy:
    case CLOSE.tooLarge:
      return 'policy-violation';
    case CLOSE.tooSlow:
      return 'resource-constraint';
    case CLOSE.goingAway:
      return 'system-shutdown';
    case CLOSE.normal:
      return undefined;
    default:
      return 'undefined-condition';
  }
}

function closeCodeOf(condition: StreamErrorCondition): number {
  if (condition === 'policy-violation') return CLOSE.policy;
  if (condition === 'system-shutdown') return CLOSE.goingAway;
  if (condition === 'resource-constraint') return CLOSE.tooSlow;
  return CLOSE.normal;
}

type State = 'wait-open' | 'auth' | 'bind' | 'ready';

export class XmppConnection extends DialectConnection<Msg, XmppIn> {
  readonly id = randomBytes(12).toString('base64url');
  private state: State = 'wait-open';
  private restartExpected = false;
  private login: Login | undefined;
  /** The localpart given to the stream's user at SASL success. */
  private local = '';
  private saslFailures = 0;
  private sasl: { mechanism: Mechanism } | undefined;
  session: XmppSession | undefined;
  /** A stream error or a clean close ended the stream: the session ends with it (no resumption). */
  private ended = false;
  /** The stream error already sent, so a close that follows does not send another. */
  private errorSent = false;

  constructor(
    protected override readonly transport: XmppTransport,
    readonly place: Place,
    /** `?token=` of the URL the client connected to. */
    readonly urlToken: string | undefined,
    /** The client's network address, for login throttling. */
    readonly address: string | undefined,
    protected override readonly ctx: XmppContext,
  ) {
    super(transport, ctx, { dialect: DIALECT, rates: XMPP_RATES, maxFrameBytes: XML_LIMITS.maxChars, noun: 'stanzas', holdOverflow: 'too many stanzas waiting behind one still being handled' });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // -------------------------------------------------------------------
  // The shell's part

  protected parse(input: XmppIn): Parsed<Msg> {
    if ('problem' in input) return { ok: true, message: input, type: 'problem' };
    if ('element' in input) return { ok: true, message: input.element, type: metricType(input.element) };
    if (input.binary) return { ok: true, message: { problem: { condition: 'bad-format', text: 'XMPP over WebSocket uses text frames only (RFC 7395 §3.2)' } }, type: 'problem' };
    const text = frameText(input.data);
    if (text.trim() === '') return { ok: true, message: null, type: 'whitespace' };
    try {
      const e = parseElement(text);
      return { ok: true, message: e, type: metricType(e) };
    } catch (err) {
      if (err instanceof XmlError) return { ok: true, message: { problem: { condition: err.condition, text: err.message } }, type: 'problem' };
      throw err;
    }
  }

  protected handle(msg: Msg): void | Promise<void> {
    if (msg === null || this.closed) return;
    if ('problem' in msg) return this.streamError(msg.problem.condition, msg.problem.text);
    const e = msg;
    const ns = e.getNS();
    if (ns === NS.framing) {
      if (e.getName() === 'open') return this.open(attr(e, 'to'), attr(e, 'version'));
      if (e.getName() === 'close') return this.clientClosed();
      return this.streamError('unsupported-stanza-type', `<${e.getName()}/> is not part of the WebSocket framing (only <open/> and <close/>)`);
    }
    if (e.getName() === 'stream' && ns === NS.stream) {
      return this.streamError('invalid-namespace', 'XMPP over WebSocket opens with <open xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>, not <stream:stream> (RFC 7395 §3.3.2)');
    }
    const r = this.element(e);
    // Whatever waits (a password check, a room join, the media engine) holds what comes after it.
    if (r) return this.whileJoining(() => r.catch((err) => this.internal(err, e)));
  }

  /** A stream error ends the stream at once, even behind a pending join (which then finds the session gone). */
  protected override heldDuringJoin(msg: Msg): boolean {
    return msg === null || !('problem' in msg);
  }

  /** XMPP has no unsolicited error stanza: refusals with a stanza are answered by the dialect; the shell's end in a stream error (see close). */
  protected renderError(_code: ErrorCode, _message: string): string | undefined {
    return undefined;
  }

  /** The core never addresses the stream itself: its members are the session's occupants, one per room. */
  deliver(_event: CoreEvent): void {}

  terminate(reason: string, why: 'kicked' | 'shutdown' = 'kicked'): void {
    this.streamError(why === 'shutdown' ? 'system-shutdown' : 'not-authorized', reason);
  }

  /** Every close decided by the shell (flood, frame size, slow reader, join timeout) says why as a stream error. */
  protected override close(code: number, reason: string): void {
    if (this.closed) return;
    this.ended = true;
    const condition = conditionOfClose(code);
    if (condition && !this.errorSent) {
      this.errorSent = true;
      this.count(condition);
      this.send(streamErrorElement(condition, reason).toString());
    }
    super.close(code, condition ? `${condition}: ${reason}` : reason);
  }

  /** A peer that stopped answering may come back on another stream: the session waits for a resumption. */
  override expire(): void {
    super.close(CLOSE.policy, 'nothing was heard from the client for 75 seconds');
  }

  protected override onClosed(): void {
    const s = this.session;
    this.session = undefined;
    s?.detach(this, !this.ended);
  }

  /** The session's rooms changed: in one at least, the join timeout does not apply. */
  roomsChanged(inRoom: boolean): void {
    this.setJoined(inRoom);
  }

  /** Bytes waiting to go to the client. */
  backlog(): number {
    return this.outputBacklog();
  }

  // -------------------------------------------------------------------

  /** The client opened (or, after SASL, restarted) the stream. */
  private open(to: string | undefined, version: string | undefined): void {
    if (this.state !== 'wait-open' && !(this.state === 'bind' && this.restartExpected)) {
      return this.streamError('policy-violation', 'the stream was opened again without a SASL success to restart it');
    }
    this.restartExpected = false;
    const header = { from: this.ctx.domain, id: this.id, version: '1.0', 'xml:lang': 'en' };
    if (this.transport.header) this.transport.header(header);
    else this.send(el('open', { xmlns: NS.framing, ...header }).toString());
    if (to !== undefined && to.toLowerCase() !== this.ctx.domain) {
      return this.streamError('host-unknown', `this server's XMPP domain is "${this.ctx.domain}", not "${to}"`);
    }
    if (version !== undefined && !/^1\.\d+$/.test(version)) {
      return this.streamError('unsupported-version', `this server speaks XMPP version 1.0, not "${version}"`);
    }
    if (this.state === 'wait-open') this.state = 'auth';
    this.sendFeatures();
  }

  /** The peer closed the stream cleanly (<close/>, BOSH terminate): the session ends. */
  private clientClosed(): void {
    this.ended = true;
    super.close(CLOSE.normal, 'the client closed the stream');
  }

  /** Ends the stream with a stream error naming the reason. */
  streamError(condition: StreamErrorCondition, text: string): void {
    if (this.closed) return;
    this.ctx.log.debug({ condition, text, stream: this.id }, 'xmpp stream error');
    if (!this.errorSent) {
      this.errorSent = true;
      this.count(condition);
      this.send(streamErrorElement(condition, text).toString());
    }
    this.ended = true;
    super.close(closeCodeOf(condition), `${condition}: ${text}`);
  }

  /** Writes a top-level element as it is (stanza counting is the session's business). */
  write(e: Element | string, urgent = true): void {
    this.send(typeof e === 'string' ? e : e.toString(), urgent);
  }

  private internal(err: unknown, e: Element): void {
    this.ctx.log.error({ err, element: e.getName() }, 'unexpected error while handling an xmpp element');
    if (e.getName() === 'iq' && (attr(e, 'type') === 'get' || attr(e, 'type') === 'set')) {
      this.session?.send(errorReply(e, 'internal-server-error', 'the server failed to handle this request; it was logged'));
    }
  }

  private element(e: Element): void | Promise<void> {
    const name = e.getName();
    const ns = e.getNS();
    if (this.state === 'wait-open') return this.streamError('not-authorized', 'open the stream before sending anything else');
    if (ns === NS.sasl) return this.handleSasl(e);
    if (ns === NS.sm) return this.handleSm(e);
    if (name === 'iq' || name === 'message' || name === 'presence') {
      if (ns !== NS.client && ns !== undefined) return this.streamError('invalid-namespace', `stanzas are in the "${NS.client}" namespace, not "${ns}"`);
      if (this.state === 'auth') return this.streamError('not-authorized', 'authenticate (SASL) before sending stanzas');
      if (this.state === 'bind') return this.beforeBind(e);
      return this.session!.handle(e);
    }
    return this.streamError('unsupported-stanza-type', `<${e.name}${ns ? ` xmlns="${ns}"` : ''}> is not a stanza or element this server knows`);
  }

  // -------------------------------------------------------------------
  // Features and SASL

  private sendFeatures(): void {
    const features = el('stream:features', { 'xmlns:stream': NS.stream });
    if (this.state === 'auth') {
      features.cnode(el('mechanisms', { xmlns: NS.sasl }, ...OFFERED_MECHANISMS.map((m) => el('mechanism', {}, m))));
    } else {
      features.cnode(el('bind', { xmlns: NS.bind }));
      features.cnode(el('session', { xmlns: NS.session }, el('optional')));
      features.cnode(el('sm', { xmlns: NS.sm }));
    }
    this.write(features);
  }

  private handleSasl(e: Element): void | Promise<void> {
    if (this.state !== 'auth') return this.streamError('policy-violation', 'SASL is over: this stream is already authenticated');
    const name = e.getName();
    if (name === 'abort') {
      this.sasl = undefined;
      return this.saslFailure('aborted', 'authentication aborted');
    }
    if (name === 'auth') {
      const mech = attr(e, 'mechanism');
      if (!mech || !(MECHANISMS as readonly string[]).includes(mech)) {
        return this.saslFailure('invalid-mechanism', `"${mech ?? ''}" is not supported: use ${OFFERED_MECHANISMS.join(' or ')} (or OAUTHBEARER with a token)`);
      }
      const mechanism = mech as Mechanism;
      const text = e.getText();
      // PLAIN and OAUTHBEARER need an initial response; without one, ask for it.
      if (text === '' && mechanism !== 'ANONYMOUS') {
        this.sasl = { mechanism };
        this.write(el('challenge', { xmlns: NS.sasl }));
        return;
      }
      return this.authenticate(mechanism, text);
    }
    if (name === 'response') {
      const pending = this.sasl;
      if (!pending) return this.saslFailure('malformed-request', 'a SASL <response/> without an <auth/> before it');
      this.sasl = undefined;
      return this.authenticate(pending.mechanism, e.getText());
    }
    return this.streamError('unsupported-stanza-type', `<${name}> is not a SASL element a client sends`);
  }

  private async authenticate(mechanism: Mechanism, payload: string): Promise<void> {
    let login: Login;
    try {
      login = loginFrom(mechanism, decodeSaslPayload(payload), this.urlToken);
    } catch (err) {
      if (err instanceof SaslError) return this.saslFailure(err.condition, err.message);
      throw err;
    }
    const refusal = await this.ctx.checkLogin(login, this.place, this.address);
    if (this.closed || this.state !== 'auth') return;
    if (refusal !== undefined) return this.saslFailure(refusal.condition, refusal.text);
    this.login = login;
    this.local = login.kind === 'password' ? localpartFor(login.username) : login.kind === 'token' && login.username ? localpartFor(login.username) : `guest-${randomBytes(6).toString('hex')}`;
    this.state = 'bind';
    this.restartExpected = true;
    this.write(el('success', { xmlns: NS.sasl }));
  }

  private saslFailure(condition: string, text: string): void {
    this.write(el('failure', { xmlns: NS.sasl }, el(condition), el('text', { 'xml:lang': 'en' }, text)));
    if (condition === 'aborted') return;
    this.count('sasl-failure');
    if (++this.saslFailures >= STREAM_LIMITS.saslAttempts) this.streamError('policy-violation', `${this.saslFailures} failed authentication attempts`);
  }

  // -------------------------------------------------------------------
  // Binding and stream management

  private beforeBind(e: Element): void {
    const type = attr(e, 'type');
    const bind = e.getName() === 'iq' && type === 'set' ? e.getChild('bind', NS.bind) : undefined;
    if (!bind) {
      if (e.getName() === 'iq' && (type === 'get' || type === 'set')) this.write(errorReply(e, 'not-authorized', 'bind a resource before anything else'));
      return;
    }
    const wanted = bind.getChildText('resource')?.trim();
    let resource = wanted && wanted.length <= 256 && !hasControlChars(wanted) ? wanted : randomBytes(6).toString('hex');
    const base = { local: this.local, domain: this.ctx.domain };
    // An existing session with the same address keeps it; the new one gets another resource (RFC 6120 §7.7.2.2).
    if (this.ctx.sessions.byJid(formatJid({ ...base, resource }))) resource = `${resource}-${randomBytes(3).toString('hex')}`;
    const jid = parseJid(formatJid({ ...base, resource }));
    const session = new XmppSession(jid, this.login!, this.place, this.ctx, this.address);
    this.session = session;
    session.attach(this);
    this.state = 'ready';
    this.write(el('iq', { xmlns: NS.client, type: 'result', id: attr(e, 'id') }, el('bind', { xmlns: NS.bind }, el('jid', {}, session.fullJid))));
  }

  private handleSm(e: Element): void {
    const name = e.getName();
    if (name === 'resume') {
      if (this.state !== 'bind') {
        this.write(el('failed', { xmlns: NS.sm }, el('unexpected-request', { xmlns: NS.stanzas })));
        return;
      }
      const previd = attr(e, 'previd') ?? '';
      const h = Number(attr(e, 'h'));
      const old = this.ctx.sessions.resumable(previd);
      if (!old?.sameUser(this.login!) || !Number.isInteger(h) || h < 0) {
        this.write(
          el('failed', { xmlns: NS.sm }, el('item-not-found', { xmlns: NS.stanzas }), el('text', { xmlns: NS.stanzas }, 'there is no session to resume with this id (it may have timed out)')),
        );
        return;
      }
      this.session = old;
      this.state = 'ready';
      old.resume(this, h);
      return;
    }
    if (this.state !== 'ready') {
      if (name === 'enable') this.write(el('failed', { xmlns: NS.sm }, el('unexpected-request', { xmlns: NS.stanzas }), el('text', { xmlns: NS.stanzas }, 'bind a resource first')));
      return;
    }
    this.session!.handleSm(e);
  }
}

/** A localpart from a username: JID escaping for what a localpart cannot hold. */
function localpartFor(username: string): string {
  const escaped = username.toLowerCase().replace(/[\\ "&'/:<>@]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return withoutControlChars(escaped).slice(0, 256) || `user-${randomBytes(4).toString('hex')}`;
}
