// One XMPP stream (RFC 6120) over either transport: opening and restarting,
// SASL, resource binding, stream management (XEP-0198) enable and resume,
// then stanzas handed to the session. The transport (RFC 7395 WebSocket or
// a BOSH session) frames what this class writes; this class never sees a
// socket. Top-level elements are handled one at a time, in order: one that
// waits (a password check, a room join) holds the ones after it.
import { randomBytes } from 'node:crypto';
import type { Place } from '../../http/place.ts';
import { FloodGuard, TokenBucket } from '../../transport/rate-limit.ts';
import type { XmppContext } from './context.ts';
import { formatJid, parseJid } from './jid.ts';
import { type Login, MECHANISMS, type Mechanism, OFFERED_MECHANISMS, SaslError, decodeSaslPayload, loginFrom } from './sasl.ts';
import { XmppSession } from './session.ts';
import { NS, type StreamErrorCondition, errorReply, streamErrorElement } from './stanza.ts';
import { type Element, attr, el, hasControlChars, withoutControlChars } from './xml.ts';

/** Limits of one stream. */
export const STREAM_LIMITS = {
  stanzasPerSecond: 100,
  stanzaBurst: 200,
  /** Refused elements per second after which the stream is closed. */
  closeAfterRefusedPerSecond: 200,
  /** Elements waiting behind one that is being handled. */
  maxQueued: 256,
  /** SASL attempts before the stream is closed (RFC 6120 §6.4.5 suggests 2 to 5). */
  saslAttempts: 3,
};

/** What frames the stream for one transport. */
export interface StreamTransport {
  readonly kind: 'websocket' | 'bosh';
  /** Where the client reached the server (group URLs are the audience of tokens). */
  readonly place: Place;
  /** `?token=` of the URL the client connected to. */
  readonly urlToken: string | undefined;
  /** The client's network address, for login throttling. */
  readonly address: string | undefined;
  /** Sends the stream header (WebSocket: <open/>; BOSH: kept for the response body). */
  header(attrs: Record<string, string>): void;
  /** Writes one top-level element; urgent=false may wait a little to go out with others. False: the peer is too slow. */
  write(xml: string, urgent: boolean): boolean;
  /** Sends a stream error, then ends the transport. */
  fail(error: Element, reason: string): void;
  /** Ends the stream cleanly. */
  end(reason: string): void;
}

type State = 'wait-open' | 'auth' | 'bind' | 'ready' | 'closed';

export class XmppStream {
  readonly id = randomBytes(12).toString('base64url');
  private state: State = 'wait-open';
  private login: Login | undefined;
  /** The localpart given to the stream's user at SASL success. */
  private local = '';
  private saslFailures = 0;
  private sasl: { mechanism: Mechanism } | undefined;
  session: XmppSession | undefined;
  private readonly queue: Element[] = [];
  private busy = false;
  private readonly bucket = new TokenBucket(STREAM_LIMITS.stanzasPerSecond, STREAM_LIMITS.stanzaBurst);
  private readonly flood = new FloodGuard(STREAM_LIMITS.closeAfterRefusedPerSecond);
  lastHeard = performance.now();

  constructor(
    readonly transport: StreamTransport,
    private readonly ctx: XmppContext,
  ) {
    ctx.metrics.clients.inc({ dialect: 'xmpp' });
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  // -------------------------------------------------------------------
  // From the transport

  /** The client opened (or, after SASL, restarted) the stream. */
  open(to: string | undefined, version: string | undefined): void {
    this.lastHeard = performance.now();
    if (this.state === 'closed') return;
    if (this.state !== 'wait-open' && !(this.state === 'bind' && this.restartExpected)) {
      return this.fail('policy-violation', 'the stream was opened again without a SASL success to restart it');
    }
    this.restartExpected = false;
    this.transport.header({ from: this.ctx.domain, id: this.id, version: '1.0', 'xml:lang': 'en' });
    if (to !== undefined && to.toLowerCase() !== this.ctx.domain) {
      return this.fail('host-unknown', `this server's XMPP domain is "${this.ctx.domain}", not "${to}"`);
    }
    if (version !== undefined && !/^1\.\d+$/.test(version)) {
      return this.fail('unsupported-version', `this server speaks XMPP version 1.0, not "${version}"`);
    }
    if (this.state === 'wait-open') this.state = 'auth';
    this.sendFeatures();
  }

  private restartExpected = false;

  /** A top-level element other than the framing's own. */
  receive(e: Element): void {
    this.lastHeard = performance.now();
    if (this.state === 'closed') return;
    if (!this.bucket.take()) {
      const action = this.flood.refused();
      this.ctx.metrics.errors.inc({ dialect: 'xmpp', kind: action === 'close' ? 'flood-close' : 'rate-limited' });
      if (action === 'close') return this.fail('policy-violation', 'flooding: over 100 stanzas a second, and still going after the excess was dropped');
      // Stanzas over the rate are dropped; an IQ gets its error so the client does not wait for it.
      if (e.getName() === 'iq' && (attr(e, 'type') === 'get' || attr(e, 'type') === 'set')) {
        this.write(errorReply(e, 'resource-constraint', 'too many stanzas: at most 100 a second; this one was dropped'));
      }
      return;
    }
    if (this.queue.length >= STREAM_LIMITS.maxQueued) {
      return this.fail('policy-violation', `more than ${STREAM_LIMITS.maxQueued} stanzas waiting behind one still being handled`);
    }
    this.queue.push(e);
    this.pump();
  }

  /** The peer closed the stream cleanly (<close/>, BOSH terminate): the session ends. */
  clientClosed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.transport.end('the client closed the stream');
    this.finish(false);
  }

  /** The transport went away without a close (socket dropped, BOSH inactivity). */
  transportLost(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.finish(true);
  }

  /** Ends the stream with a stream error naming the reason. */
  fail(condition: StreamErrorCondition, text: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.ctx.metrics.errors.inc({ dialect: 'xmpp', kind: condition });
    this.ctx.log.debug({ condition, text, stream: this.id }, 'xmpp stream error');
    this.transport.fail(streamErrorElement(condition, text), `${condition}: ${text}`);
    // A stream error ends the session too (XEP-0198 §5: not resumable).
    this.finish(false);
  }

  /** Writes a top-level element as it is (stanza counting is the session's business). */
  write(e: Element | string, urgent = true): void {
    if (this.state === 'closed') return;
    if (!this.transport.write(typeof e === 'string' ? e : e.toString(), urgent)) {
      this.ctx.metrics.errors.inc({ dialect: 'xmpp', kind: 'too-slow' });
      this.fail('resource-constraint', 'the connection cannot keep up with the stanzas sent to it');
    }
  }

  // -------------------------------------------------------------------

  private finish(mayHibernate: boolean): void {
    this.ctx.metrics.clients.dec({ dialect: 'xmpp' });
    this.queue.length = 0;
    const s = this.session;
    this.session = undefined;
    s?.detach(this, mayHibernate);
  }

  private pump(): void {
    while (!this.busy && this.queue.length > 0 && this.state !== 'closed') {
      const e = this.queue.shift()!;
      let r: void | Promise<void>;
      try {
        r = this.handle(e);
      } catch (err) {
        this.internal(err, e);
        continue;
      }
      if (r) {
        this.busy = true;
        r.catch((err) => this.internal(err, e)).finally(() => {
          this.busy = false;
          this.pump();
        });
      }
    }
  }

  private internal(err: unknown, e: Element): void {
    this.ctx.log.error({ err, element: e.getName() }, 'unexpected error while handling an xmpp element');
    if (e.getName() === 'iq' && (attr(e, 'type') === 'get' || attr(e, 'type') === 'set')) {
      this.session?.send(errorReply(e, 'internal-server-error', 'the server failed to handle this request; it was logged'));
    }
  }

  private handle(e: Element): void | Promise<void> {
    const name = e.getName();
    const ns = e.getNS();
    if (this.state === 'wait-open') return this.fail('not-authorized', 'open the stream before sending anything else');
    if (ns === NS.sasl) return this.handleSasl(e);
    if (ns === NS.sm) return this.handleSm(e);
    if (name === 'iq' || name === 'message' || name === 'presence') {
      if (ns !== NS.client && ns !== undefined) return this.fail('invalid-namespace', `stanzas are in the "${NS.client}" namespace, not "${ns}"`);
      if (this.state === 'auth') return this.fail('not-authorized', 'authenticate (SASL) before sending stanzas');
      if (this.state === 'bind') return this.beforeBind(e);
      return this.session!.handle(e);
    }
    return this.fail('unsupported-stanza-type', `<${e.name}${ns ? ` xmlns="${ns}"` : ''}> is not a stanza or element this server knows`);
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
    if (this.state !== 'auth') return this.fail('policy-violation', 'SASL is over: this stream is already authenticated');
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
    return this.fail('unsupported-stanza-type', `<${name}> is not a SASL element a client sends`);
  }

  private async authenticate(mechanism: Mechanism, payload: string): Promise<void> {
    let login: Login;
    try {
      login = loginFrom(mechanism, decodeSaslPayload(payload), this.transport.urlToken);
    } catch (err) {
      if (err instanceof SaslError) return this.saslFailure(err.condition, err.message);
      throw err;
    }
    const refusal = await this.ctx.checkLogin(login, this.transport.place, this.transport.address);
    if (this.state !== 'auth') return;
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
    this.ctx.metrics.errors.inc({ dialect: 'xmpp', kind: 'sasl-failure' });
    if (++this.saslFailures >= STREAM_LIMITS.saslAttempts) this.fail('policy-violation', `${this.saslFailures} failed authentication attempts`);
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
    const session = new XmppSession(jid, this.login!, this.transport.place, this.ctx, this.transport.address);
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
      if (!old?.sameUser(this.login!, this.local) || !Number.isInteger(h) || h < 0) {
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
