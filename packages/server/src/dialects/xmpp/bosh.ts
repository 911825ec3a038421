// BOSH (XEP-0124) carrying an XMPP stream (XEP-0206) at /http-bind: a
// session is a series of HTTP POSTs of <body/> elements numbered by `rid`,
// and the kit's transport for the stream it carries. The server holds one
// request open (hold=1) for up to `wait` seconds and answers it as soon as
// it has something to send; requests are handled in rid order, and a
// repeated rid gets the same answer again. A session that sends nothing for
// `inactivity` seconds is over (its XMPP session may then wait for a
// resumption, XEP-0198). Each element a body carries reaches the connection
// already parsed; a session restart and a terminate reach it as the
// framing's <open/> and <close/>.
import { randomBytes } from 'node:crypto';
import type { Place } from '../../http/place.ts';
import type { TransportSink } from '../kit/index.ts';
import { XmppConnection, type XmppIn, type XmppTransport } from './connection.ts';
import type { XmppContext } from './context.ts';
import { NS } from './stanza.ts';
import { type Element, XML_LIMITS, XmlError, attr, childElements, el, parseElement } from './xml.ts';

export const BOSH_LIMITS = {
  /** Longest the server holds a request (seconds); a client may ask for less. */
  maxWait: 60,
  /** Seconds without a request after which the session ends (the default; --xmpp-bosh-inactivity). */
  inactivity: 60,
  /** Requests the client may have open at once (hold + 1). */
  requests: 2,
  hold: 1,
  /** Sessions at once, for the whole server. */
  maxSessions: 10_000,
  /** Largest body, in characters: a stanza at its limit and the body around it. */
  maxBodyChars: XML_LIMITS.maxChars + 4096,
};

export interface BoshReply {
  status: number;
  body: string;
}

interface Held {
  rid: number;
  resolve: (r: BoshReply) => void;
  timer: NodeJS.Timeout;
}

function terminate(condition: string | undefined, text?: string): string {
  return el('body', { xmlns: NS.bosh, type: 'terminate', condition }, text ? el('text', { xmlns: NS.bosh }, text) : undefined).toString();
}

export class BoshService {
  private readonly sessions = new Map<string, BoshSession>();

  constructor(
    private readonly ctx: XmppContext,
    private readonly onConnection: (c: XmppConnection) => void,
    private readonly inactivity: number,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** One POST to /http-bind: its body text, where the client reached us, the URL's token, the client's address. */
  async handle(text: string, place: Place, urlToken: string | undefined, address: string | undefined): Promise<BoshReply> {
    let body: Element;
    try {
      if (text.length > BOSH_LIMITS.maxBodyChars) throw new XmlError('policy-violation', `a BOSH body of ${text.length} characters is over the ${BOSH_LIMITS.maxBodyChars}-character limit`);
      body = parseElement(text, { ...XML_LIMITS, maxChars: BOSH_LIMITS.maxBodyChars });
    } catch (e) {
      if (!(e instanceof XmlError)) throw e;
      // The session, when the body names one, ends with the error; otherwise the request alone is refused.
      const sid = /\ssid=['"]([A-Za-z0-9_-]{1,64})['"]/.exec(text.slice(0, 2048))?.[1];
      const s = sid === undefined ? undefined : this.sessions.get(sid);
      if (s) return s.problem(e.condition, e.message);
      return { status: 400, body: terminate('bad-request', e.message) };
    }
    if (!body.is('body', NS.bosh)) return { status: 400, body: terminate('bad-request', `a BOSH request is a <body xmlns="${NS.bosh}"/>`) };
    const rid = Number(attr(body, 'rid'));
    if (!Number.isSafeInteger(rid) || rid < 0) return { status: 400, body: terminate('bad-request', 'the body needs a rid: a whole number') };
    const sid = attr(body, 'sid');
    if (sid === undefined) return this.create(body, rid, place, urlToken, address);
    const s = this.sessions.get(sid);
    if (!s) return { status: 200, body: terminate('item-not-found', `there is no BOSH session "${sid.slice(0, 64)}" (it may have ended)`) };
    return s.request(body, rid);
  }

  private create(body: Element, rid: number, place: Place, urlToken: string | undefined, address: string | undefined): Promise<BoshReply> | BoshReply {
    if (this.sessions.size >= BOSH_LIMITS.maxSessions) return { status: 200, body: terminate('remote-connection-failed', 'the server has too many BOSH sessions; try again later') };
    const wanted = Number(attr(body, 'wait') ?? BOSH_LIMITS.maxWait);
    const wait = Number.isFinite(wanted) && wanted >= 1 ? Math.min(wanted, BOSH_LIMITS.maxWait) : BOSH_LIMITS.maxWait;
    const session = new BoshSession(randomBytes(16).toString('base64url'), rid - 1, wait, this.inactivity, (s) => this.sessions.delete(s.sid));
    this.sessions.set(session.sid, session);
    this.onConnection(new XmppConnection(session, place, urlToken, address, this.ctx));
    // The creation request opens the stream: the answer carries the features.
    return session.request(body, rid, true);
  }
}

class BoshSession implements XmppTransport {
  readonly kind = 'bosh' as const;
  /** Its inactivity timer is the liveness check. */
  readonly keepsItselfAlive = true;
  private sink: TransportSink<XmppIn> | undefined;
  private lastRid: number;
  private readonly out: string[] = [];
  private outBytes = 0;
  private readonly held: Held[] = [];
  /** Requests that came before their turn, by rid. */
  private readonly early = new Map<number, { body: Element; resolve: (r: BoshReply) => void }>();
  /** Answers already given, by rid, for retransmissions. */
  private readonly answered = new Map<number, BoshReply>();
  private headerAttrs: Record<string, string> | undefined;
  /** The session attributes still have to go out (the first answer). */
  private first = true;
  /** The stream ended; condition null for a clean terminate. */
  private terminated: { condition: string | null } | undefined;
  private inactivity: NodeJS.Timeout | undefined;
  private flushScheduled = false;
  private gone = false;

  constructor(
    readonly sid: string,
    lastRid: number,
    private readonly wait: number,
    private readonly inactivitySeconds: number,
    private readonly onGone: (s: BoshSession) => void,
  ) {
    this.lastRid = lastRid;
    this.touch();
  }

  request(body: Element, rid: number, creation = false): Promise<BoshReply> | BoshReply {
    this.touch();
    const previous = this.answered.get(rid);
    if (previous) return previous;
    if (this.terminated) return this.finalReply();
    if (rid <= this.lastRid || rid > this.lastRid + BOSH_LIMITS.requests) {
      this.streamProblem('policy-violation', `BOSH request ${rid} is outside the window (${this.lastRid + 1} to ${this.lastRid + BOSH_LIMITS.requests})`);
      return { status: 200, body: terminate('item-not-found', `rid ${rid} is not the next request of this session`) };
    }
    if (rid > this.lastRid + 1) return new Promise((resolve) => this.early.set(rid, { body, resolve }));
    return new Promise((resolve) => {
      this.process(body, rid, resolve, creation);
      for (let next = this.early.get(this.lastRid + 1); next; next = this.early.get(this.lastRid + 1)) {
        this.early.delete(this.lastRid + 1);
        this.process(next.body, this.lastRid + 1, next.resolve, false);
      }
    });
  }

  /** A body that could not be read: the stream ends with a stream error naming why. */
  problem(condition: XmlError['condition'], text: string): BoshReply | Promise<BoshReply> {
    this.streamProblem(condition, text);
    return this.finalReply();
  }

  /** Ends the stream with a stream error naming the problem. */
  private streamProblem(condition: XmlError['condition'], text: string): void {
    this.sink?.receive({ problem: { condition, text } }, 0);
    if (!this.terminated) {
      // The connection dropped it (over its rate): the session is over all the same, and the connection with it.
      this.terminated = { condition: 'remote-stream-error' };
      this.sink?.transportClosed();
    }
  }

  private process(body: Element, rid: number, resolve: (r: BoshReply) => void, creation: boolean): void {
    this.lastRid = rid;
    // A new request lets the one held before it go (at most `hold` wait at the server).
    while (this.held.length >= BOSH_LIMITS.hold) this.answer(this.held.shift()!);
    const sink = this.sink!;
    const framing = (name: 'open' | 'close') => el(name, { xmlns: NS.framing, to: attr(body, 'to'), version: attr(body, 'xmpp:version') });
    if (creation) sink.receive({ element: framing('open') }, 0);
    for (const child of childElements(body)) {
      if (this.terminated) break;
      // Stanzas inherit the body's namespace unless they say otherwise; XEP-0206 means jabber:client.
      if (child.attrs.xmlns === undefined && ['iq', 'message', 'presence'].includes(child.getName())) child.attrs.xmlns = NS.client;
      child.parent = null;
      sink.receive({ element: child }, 0);
    }
    if (!this.terminated && attr(body, 'xmpp:restart') === 'true') sink.receive({ element: framing('open') }, 0);
    if (!this.terminated && attr(body, 'type') === 'terminate') sink.receive({ element: framing('close') }, 0);
    const timer = setTimeout(() => this.answerHeld(rid), this.wait * 1000);
    timer.unref();
    this.held.push({ rid, resolve, timer });
    clearTimeout(this.inactivity);
    if (this.out.length > 0 || this.terminated) this.scheduleFlush();
  }

  private answerHeld(rid: number): void {
    const i = this.held.findIndex((h) => h.rid === rid);
    if (i >= 0) this.answer(this.held.splice(i, 1)[0]!);
  }

  private answer(h: Held): void {
    clearTimeout(h.timer);
    const reply = this.terminated ? this.finalReply() : { status: 200, body: this.responseBody() };
    this.answered.set(h.rid, reply);
    for (const r of this.answered.keys()) if (r <= h.rid - BOSH_LIMITS.requests) this.answered.delete(r);
    h.resolve(reply);
    if (this.held.length === 0 && !this.terminated) this.touch();
  }

  private responseBody(): string {
    const attrs: Record<string, string | number | undefined> = { xmlns: NS.bosh };
    if (this.first || this.headerAttrs) {
      Object.assign(attrs, { 'xmlns:xmpp': NS.xbosh, 'xmlns:stream': NS.stream, 'xmpp:version': '1.0', from: this.headerAttrs?.from, authid: this.headerAttrs?.id });
      this.headerAttrs = undefined;
    }
    if (this.first) {
      this.first = false;
      Object.assign(attrs, {
        sid: this.sid,
        wait: this.wait,
        requests: BOSH_LIMITS.requests,
        hold: BOSH_LIMITS.hold,
        inactivity: this.inactivitySeconds,
        polling: 2,
        ver: '1.11',
        'xmpp:restartlogic': 'true',
      });
    }
    return this.wrap(el('body', attrs).toString());
  }

  private wrap(head: string): string {
    const parts = this.out.splice(0);
    this.outBytes = 0;
    return parts.length === 0 ? head : `${head.slice(0, -2)}>${parts.join('')}</body>`;
  }

  /** The answer once the stream has ended: whatever was left (a stream error) with a terminate body; the session is then gone. */
  private finalReply(): BoshReply {
    const reply = { status: 200, body: this.wrap(el('body', { xmlns: NS.bosh, type: 'terminate', condition: this.terminated?.condition ?? undefined, 'xmlns:stream': NS.stream }).toString()) };
    this.forget();
    return reply;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const h = this.held.shift();
      if (h) this.answer(h);
      if (this.terminated) for (const rest of this.held.splice(0)) this.answer(rest);
    });
  }

  private touch(): void {
    clearTimeout(this.inactivity);
    this.inactivity = setTimeout(() => {
      if (this.held.length > 0) return;
      this.forget();
      this.sink?.transportClosed();
    }, this.inactivitySeconds * 1000);
    this.inactivity.unref();
  }

  private forget(): void {
    if (this.gone) return;
    this.gone = true;
    clearTimeout(this.inactivity);
    for (const e of this.early.values()) e.resolve({ status: 200, body: terminate('item-not-found', 'the session ended') });
    this.early.clear();
    this.onGone(this);
  }

  // Transport -----------------------------------------------------------

  attach(sink: TransportSink<XmppIn>): void {
    this.sink = sink;
  }

  header(attrs: Record<string, string>): void {
    this.headerAttrs = attrs;
  }

  get bufferedAmount(): number {
    return this.outBytes;
  }

  sizeOf(frame: string): number {
    return Buffer.byteLength(frame);
  }

  send(frame: string): void {
    if (this.terminated) return;
    this.out.push(frame);
    this.outBytes += Buffer.byteLength(frame);
    if (this.held.length > 0) this.scheduleFlush();
  }

  close(code: number, _reason: string): void {
    if (this.terminated) return;
    // A clean terminate has no condition; a stream error was sent just before as a frame.
    this.terminated = { condition: code === 1000 ? null : 'remote-stream-error' };
    this.scheduleFlush();
  }
}
