// BOSH (XEP-0124) carrying an XMPP stream (XEP-0206) at /http-bind: a
// session is a series of HTTP POSTs of <body/> elements numbered by `rid`.
// The server holds one request open (hold=1) for up to `wait` seconds and
// answers it as soon as it has something to send; requests are handled in
// rid order, and a repeated rid gets the same answer again. A session that
// sends nothing for `inactivity` seconds is over (its XMPP session may then
// wait for a resumption, XEP-0198).
import { randomBytes } from 'node:crypto';
import type { Place } from '../../http/place.ts';
import type { XmppContext } from './context.ts';
import { NS } from './stanza.ts';
import { type StreamTransport, XmppStream } from './stream.ts';
import { type Element, XML_LIMITS, XmlError, attr, childElements, el, parseElement } from './xml.ts';

export const BOSH_LIMITS = {
  /** Longest the server holds a request (seconds); a client may ask for less. */
  maxWait: 60,
  /** Seconds without a request after which the session ends. */
  inactivity: 60,
  /** Requests the client may have open at once (hold + 1). */
  requests: 2,
  hold: 1,
  /** Sessions at once, for the whole server. */
  maxSessions: 10_000,
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

  constructor(private readonly ctx: XmppContext) {}

  get size(): number {
    return this.sessions.size;
  }

  /** One POST to /http-bind: its body text, where the client reached us, and the URL's token. */
  async handle(text: string, place: Place, urlToken: string | undefined, address: string | undefined): Promise<BoshReply> {
    let body: Element;
    try {
      if (text.length > XML_LIMITS.maxChars + 4096) throw new XmlError('policy-violation', `a BOSH body of ${text.length} characters is over the ${XML_LIMITS.maxChars}-character limit`);
      body = parseElement(text, { ...XML_LIMITS, maxChars: XML_LIMITS.maxChars + 4096 });
    } catch (e) {
      if (!(e instanceof XmlError)) throw e;
      // Without a readable sid the session cannot be told; the request is refused.
      const sid = /\ssid=['"]([A-Za-z0-9_-]{1,64})['"]/.exec(text.slice(0, 2048))?.[1];
      const s = sid === undefined ? undefined : this.sessions.get(sid);
      if (s) {
        s.stream.fail(e.condition, e.message);
        return s.flushTerminated();
      }
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

  private create(body: Element, rid: number, place: Place, urlToken: string | undefined, address: string | undefined): BoshReply {
    if (this.sessions.size >= BOSH_LIMITS.maxSessions) return { status: 200, body: terminate('remote-connection-failed', 'the server has too many BOSH sessions; try again later') };
    const to = attr(body, 'to');
    const wanted = Number(attr(body, 'wait') ?? BOSH_LIMITS.maxWait);
    const wait = Number.isFinite(wanted) && wanted >= 1 ? Math.min(wanted, BOSH_LIMITS.maxWait) : BOSH_LIMITS.maxWait;
    const session = new BoshSession(randomBytes(16).toString('base64url'), rid, wait, place, urlToken, address, this.ctx, (s) => this.sessions.delete(s.sid));
    this.sessions.set(session.sid, session);
    return session.start(to, attr(body, 'xmpp:version'));
  }

  closeAll(reason: string): void {
    for (const s of [...this.sessions.values()]) s.stream.fail('system-shutdown', reason);
  }
}

class BoshSession implements StreamTransport {
  readonly kind = 'bosh' as const;
  readonly stream: XmppStream;
  private lastRid: number;
  private readonly out: string[] = [];
  private readonly held: Held[] = [];
  /** Requests that came before their turn, by rid. */
  private readonly early = new Map<number, { body: Element; resolve: (r: BoshReply) => void }>();
  /** Answers already given, by rid, for retransmissions. */
  private readonly answered = new Map<number, BoshReply>();
  private headerAttrs: Record<string, string> | undefined;
  private terminated: { condition: string | undefined } | undefined;
  private inactivity: NodeJS.Timeout | undefined;
  private flushScheduled = false;

  constructor(
    readonly sid: string,
    firstRid: number,
    private readonly wait: number,
    readonly place: Place,
    readonly urlToken: string | undefined,
    readonly address: string | undefined,
    ctx: XmppContext,
    private readonly onGone: (s: BoshSession) => void,
  ) {
    this.lastRid = firstRid;
    this.stream = new XmppStream(this, ctx);
    this.touch();
  }

  start(to: string | undefined, version: string | undefined): BoshReply {
    this.stream.open(to, version);
    if (this.terminated) return this.flushTerminated();
    const reply = { status: 200, body: this.responseBody(true) };
    this.answered.set(this.lastRid, reply);
    return reply;
  }

  async request(body: Element, rid: number): Promise<BoshReply> {
    this.touch();
    const previous = this.answered.get(rid);
    if (previous) return previous;
    if (this.terminated) return this.flushTerminated();
    if (rid <= this.lastRid || rid > this.lastRid + BOSH_LIMITS.requests) {
      this.stream.fail('policy-violation', `BOSH request ${rid} is outside the window (${this.lastRid + 1} to ${this.lastRid + BOSH_LIMITS.requests})`);
      return { status: 200, body: terminate('item-not-found', `rid ${rid} is not the next request of this session`) };
    }
    if (rid > this.lastRid + 1) {
      return new Promise((resolve) => this.early.set(rid, { body, resolve }));
    }
    return new Promise((resolve) => {
      this.process(body, rid, resolve);
      for (let next = this.early.get(this.lastRid + 1); next; next = this.early.get(this.lastRid + 1)) {
        this.early.delete(this.lastRid + 1);
        this.process(next.body, this.lastRid + 1, next.resolve);
      }
    });
  }

  private process(body: Element, rid: number, resolve: (r: BoshReply) => void): void {
    this.lastRid = rid;
    // A new request lets the one held before it go (at most `hold` wait at the server).
    while (this.held.length >= BOSH_LIMITS.hold) this.answer(this.held.shift()!);
    for (const child of childElements(body)) {
      // Stanzas inherit the body's namespace unless they say otherwise; XEP-0206 means jabber:client.
      if (child.attrs.xmlns === undefined && ['iq', 'message', 'presence'].includes(child.getName())) child.attrs.xmlns = NS.client;
      this.stream.receive(child);
      if (this.terminated) break;
    }
    if (!this.terminated) {
      if (attr(body, 'xmpp:restart') === 'true') this.stream.open(attr(body, 'to'), attr(body, 'xmpp:version'));
      if (attr(body, 'type') === 'terminate') this.stream.clientClosed();
    }
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
    const reply = this.terminated ? this.finalReply() : { status: 200, body: this.responseBody(false) };
    this.answered.set(h.rid, reply);
    for (const r of this.answered.keys()) if (r <= h.rid - BOSH_LIMITS.requests) this.answered.delete(r);
    h.resolve(reply);
    if (this.held.length === 0 && !this.terminated) this.touch();
  }

  private responseBody(first: boolean): string {
    const attrs: Record<string, string | number | undefined> = { xmlns: NS.bosh };
    if (first || this.headerAttrs) {
      Object.assign(attrs, {
        'xmlns:xmpp': NS.xbosh,
        'xmlns:stream': NS.stream,
        'xmpp:version': '1.0',
        from: this.headerAttrs?.from,
        authid: this.headerAttrs?.id,
      });
      this.headerAttrs = undefined;
    }
    if (first)
      Object.assign(attrs, {
        sid: this.sid,
        wait: this.wait,
        requests: BOSH_LIMITS.requests,
        hold: BOSH_LIMITS.hold,
        inactivity: BOSH_LIMITS.inactivity,
        polling: 2,
        ver: '1.11',
        'xmpp:restartlogic': 'true',
      });
    const parts = this.out.splice(0);
    const head = el('body', attrs).toString();
    if (parts.length === 0) return head;
    return `${head.slice(0, -2)}>${parts.join('')}</body>`;
  }

  private finalReply(): BoshReply {
    const parts = this.out.splice(0);
    const head = el('body', { xmlns: NS.bosh, type: 'terminate', condition: this.terminated?.condition, 'xmlns:stream': NS.stream }).toString();
    return { status: 200, body: parts.length === 0 ? head : `${head.slice(0, -2)}>${parts.join('')}</body>` };
  }

  /** The answer once the stream has ended: whatever was left (a stream error) with a terminate body. */
  flushTerminated(): BoshReply {
    const reply = this.finalReply();
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
      if (this.terminated) {
        for (const rest of this.held.splice(0)) this.answer(rest);
        if (this.held.length === 0) this.forget();
      }
    });
  }

  private touch(): void {
    clearTimeout(this.inactivity);
    this.inactivity = setTimeout(() => {
      if (this.held.length > 0) return;
      this.forget();
      this.stream.transportLost();
    }, BOSH_LIMITS.inactivity * 1000);
    this.inactivity.unref();
  }

  private forget(): void {
    clearTimeout(this.inactivity);
    for (const e of this.early.values()) e.resolve({ status: 200, body: terminate('item-not-found', 'the session ended') });
    this.early.clear();
    this.onGone(this);
  }

  // StreamTransport -----------------------------------------------------

  header(attrs: Record<string, string>): void {
    this.headerAttrs = attrs;
  }

  write(xml: string, _urgent: boolean): boolean {
    if (this.terminated) return true;
    this.out.push(xml);
    if (this.held.length > 0) this.scheduleFlush();
    return this.out.length < 10_000;
  }

  fail(error: Element, _reason: string): void {
    if (this.terminated) return;
    this.out.push(error.toString());
    this.terminated = { condition: 'remote-stream-error' };
    this.scheduleFlush();
  }

  end(_reason: string): void {
    if (this.terminated) return;
    this.terminated = { condition: undefined };
    this.scheduleFlush();
  }
}
