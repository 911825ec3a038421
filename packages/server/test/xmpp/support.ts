// Test clients for the XMPP dialect: @xmpp/client (npm, unchanged) in Node,
// and a raw RFC 7395 client that writes frames by hand for the bad-input
// tables. Both keep what the server sent so tests can wait for a stanza.
import WebSocket from 'ws';
import { type Client, client, xml } from '@xmpp/client';
import { type Element, parse } from 'ltx';

// @xmpp/websocket uses the global WebSocket, which Node 20 lacks.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

export { xml };
export type { Element };

export const MUC = 'http://jabber.org/protocol/muc';
export const MUC_USER = 'http://jabber.org/protocol/muc#user';

/** Waits for the next item (after the ones already taken) that matches. */
class Inbox<T> {
  readonly items: T[] = [];
  private cursor = 0;
  private waiters: { pred: (x: T) => boolean; resolve: (x: T) => void }[] = [];

  constructor(private readonly show: (x: T) => string) {}

  push(x: T): void {
    this.items.push(x);
    const index = this.items.length - 1;
    for (const w of [...this.waiters]) {
      if (w.pred(x)) {
        this.waiters = this.waiters.filter((y) => y !== w);
        if (index >= this.cursor) this.cursor = index + 1;
        w.resolve(x);
        return;
      }
    }
  }

  next(pred: (x: T) => boolean, what: string, timeoutMs = 5000): Promise<T> {
    for (let i = this.cursor; i < this.items.length; i++) {
      if (pred(this.items[i]!)) {
        this.cursor = i + 1;
        return Promise.resolve(this.items[i]!);
      }
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        pred,
        resolve: (x: T) => {
          clearTimeout(timer);
          resolve(x);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out waiting for ${what}; last received:\n  ${this.items.slice(-6).map(this.show).join('\n  ')}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Items matching so far, taken or not. */
  all(pred: (x: T) => boolean): T[] {
    return this.items.filter(pred);
  }
}

export interface XmppTestClient {
  x: Client;
  jid: string;
  stanzas: Inbox<Element>;
  next(pred: (s: Element) => boolean, what: string, timeoutMs?: number): Promise<Element>;
  /** Joins a room with presence and waits for the self-presence (status 110) or an error. */
  join(room: string, nick: string, opts?: { password?: string; extra?: Element[]; history?: Record<string, string> }): Promise<Element>;
  stop(): Promise<void>;
}

export function wsService(baseUrl: string, query = ''): string {
  return `${baseUrl.replace(/^http/, 'ws')}/xmpp-websocket${query}`;
}

/** An @xmpp/client session over WebSocket; without a username it logs in with SASL ANONYMOUS. */
export async function connectXmpp(baseUrl: string, opts: { username?: string; password?: string; resource?: string; query?: string; domain?: string } = {}): Promise<XmppTestClient> {
  const x = client({
    service: wsService(baseUrl, opts.query ?? ''),
    domain: opts.domain ?? 'localhost',
    ...(opts.username !== undefined ? { username: opts.username, password: opts.password } : {}),
    ...(opts.resource ? { resource: opts.resource } : {}),
  });
  const stanzas = new Inbox<Element>((s) => s.toString().slice(0, 400));
  x.on('stanza', (s: Element) => stanzas.push(s));
  x.on('error', (e) => {
    if (process.env.XMPP_DEBUG) console.log('xmpp client error', opts.username, e);
  });
  if (process.env.XMPP_DEBUG) x.on('offline', () => console.log('xmpp client offline', opts.username));
  // Tests decide when to reconnect.
  x.reconnect.stop();
  const addr = await x.start();
  const c: XmppTestClient = {
    x,
    jid: addr.toString(),
    stanzas,
    next: (pred, what, timeoutMs) => stanzas.next(pred, what, timeoutMs),
    async join(room, nick, o = {}) {
      const muc = xml('x', { xmlns: MUC }, ...(o.password !== undefined ? [xml('password', {}, o.password)] : []), ...(o.history ? [xml('history', o.history)] : []));
      await x.send(xml('presence', { to: `${room}/${nick}` }, muc, ...(o.extra ?? [])));
      return stanzas.next(
        (s) =>
          s.is('presence') &&
          s.attrs.from === `${room}/${nick}` &&
          (s.attrs.type === 'error' ||
            s
              .getChild('x', MUC_USER)
              ?.getChildren('status')
              .some((st) => st.attrs.code === '110') === true),
        `self-presence in ${room} as ${nick}`,
      );
    },
    async stop() {
      await x.stop().catch(() => undefined);
    },
  };
  return c;
}

/** A raw XMPP-over-WebSocket client: frames written by hand, every frame received parsed (or kept as text). */
export class RawXmpp {
  readonly frames = new Inbox<{ text: string; el: Element | undefined }>((f) => f.text.slice(0, 300));
  readonly closed: Promise<{ code: number; reason: string }>;
  isClosed = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (d) => {
      const text = d.toString();
      let el: Element | undefined;
      try {
        el = parse(text) as Element;
      } catch {
        el = undefined;
      }
      this.frames.push({ text, el });
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.isClosed = true;
        resolve({ code, reason: reason.toString() });
      });
    });
    ws.on('error', () => {});
  }

  static async connect(baseUrl: string, query = ''): Promise<RawXmpp> {
    const ws = new WebSocket(wsService(baseUrl, query), 'xmpp');
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new RawXmpp(ws);
  }

  get protocol(): string {
    return this.ws.protocol;
  }

  send(frame: string | Buffer): void {
    this.ws.send(frame);
  }

  next(pred: (e: Element) => boolean, what: string, timeoutMs = 5000): Promise<Element> {
    return this.frames.next((f) => f.el !== undefined && pred(f.el), what, timeoutMs).then((f) => f.el!);
  }

  /** Opens the stream and waits for the features. */
  async open(to = 'localhost'): Promise<Element> {
    this.send(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="${to}" version="1.0"/>`);
    return this.next((e) => e.name === 'stream:features' || e.is('features'), 'stream features');
  }

  /** Opens, authenticates (ANONYMOUS unless a PLAIN username is given), restarts and binds; returns the JID. */
  async login(opts: { username?: string; password?: string; enableSm?: boolean } = {}): Promise<string> {
    await this.open();
    const payload = opts.username !== undefined ? Buffer.from(`\u0000${opts.username}\u0000${opts.password ?? ''}`).toString('base64') : '';
    this.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="${opts.username !== undefined ? 'PLAIN' : 'ANONYMOUS'}">${payload}</auth>`);
    await this.next((e) => e.is('success'), 'SASL success');
    await this.open();
    this.send('<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>');
    const bound = await this.next((e) => e.is('iq') && e.attrs.id === 'bind1', 'bind result');
    return bound.getChild('bind')!.getChildText('jid')!;
  }

  /** The stream error the server ended with: its condition and text. */
  async streamError(): Promise<{ condition: string; text: string }> {
    const e = await this.next((x) => x.name === 'stream:error' || x.is('error', 'http://etherx.jabber.org/streams'), 'a stream error');
    const cond = e.children.find((c): c is Element => typeof c !== 'string' && c.name !== 'text');
    return { condition: cond?.name ?? '', text: e.getChildText('text') ?? '' };
  }

  close(): void {
    this.ws.close();
  }

  /** Drops the connection without a close (a network that went away). */
  drop(): void {
    this.ws.terminate();
  }

  /** Stops reading from the socket: the server's output piles up (a reader that cannot keep up). */
  pause(): void {
    // `_socket` is ws's net.Socket; public in practice but untyped.
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }
}

/** Group files most XMPP tests use. */
export const GROUPS = {
  chat: {
    users: { boss: { password: 'bosspw', permissions: 'op' }, bob: { password: 'bobpw', permissions: 'present' } },
    'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
    'allow-anonymous': true,
  },
  locked: { users: { boss: { password: 'bosspw', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' }, autolock: true },
  secret: { users: { alice: { password: 'alicepw', permissions: 'present' } } },
  'team/standup': { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
};

const BOSH_NS = 'http://jabber.org/protocol/httpbind';

/**
 * A BOSH client (XEP-0124/0206) that writes bodies by hand, one request at
 * a time: `send` posts stanzas, `next` polls until a stanza that matches
 * has arrived. `stop` stops polling, as a client whose network went away.
 */
export class RawBosh {
  readonly stanzas = new Inbox<Element>((e) => e.toString().slice(0, 300));
  /** The terminate body, once the server ended the session. */
  terminated: Element | undefined;
  private rid = 1000 + Math.floor(Math.random() * 1_000_000);

  private constructor(
    private readonly url: string,
    readonly sid: string,
    readonly created: Element,
  ) {}

  /** Opens a session (wait 1 s, so that each poll comes back quickly); `query` goes on the URL (`?token=…`). */
  static async create(baseUrl: string, query = '', to = 'localhost'): Promise<RawBosh> {
    const url = `${baseUrl}/http-bind${query}`;
    const first = 1000 + Math.floor(Math.random() * 1_000_000);
    const body = await RawBosh.postTo(url, `<body xmlns="${BOSH_NS}" xmlns:xmpp="urn:xmpp:xbosh" rid="${first}" to="${to}" wait="1" hold="1" ver="1.6" xmpp:version="1.0"/>`);
    const sid = body.attrs.sid;
    if (typeof sid !== 'string') throw new Error(`no BOSH session was created: ${body.toString()}`);
    const b = new RawBosh(url, sid, body);
    b.rid = first + 1;
    b.take(body);
    return b;
  }

  private static async postTo(url: string, text: string): Promise<Element> {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' }, body: text });
    return parse(await res.text()) as Element;
  }

  private take(body: Element): void {
    if (body.attrs.type === 'terminate') this.terminated = body;
    for (const c of body.children) if (typeof c !== 'string') this.stanzas.push(c);
  }

  /** Posts one body of this session with these stanzas (and body attributes, e.g. `xmpp:restart="true"`). */
  async post(inner = '', attrs = ''): Promise<Element> {
    const body = await RawBosh.postTo(this.url, `<body xmlns="${BOSH_NS}" xmlns:xmpp="urn:xmpp:xbosh" rid="${this.rid++}" sid="${this.sid}" ${attrs}>${inner}</body>`);
    this.take(body);
    return body;
  }

  /** Polls until a stanza that matches has come (or the session ended). */
  async next(pred: (e: Element) => boolean, what: string, timeoutMs = 15_000): Promise<Element> {
    const found = this.stanzas.next(pred, what, timeoutMs);
    let done = false;
    void found.then(
      () => (done = true),
      () => (done = true),
    );
    while (!done && !this.terminated) await this.post();
    if (!done && this.terminated) throw new Error(`the BOSH session ended while waiting for ${what}: ${this.terminated.toString()}`);
    return found;
  }

  /** SASL (ANONYMOUS unless a PLAIN user is given), the stream restart, and resource binding; returns the JID. */
  async login(opts: { username?: string; password?: string } = {}): Promise<string> {
    await this.authenticate(opts);
    await this.restart();
    await this.post('<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>');
    const bound = await this.next((e) => e.is('iq') && e.attrs.id === 'bind1', 'bind result');
    return bound.getChild('bind')!.getChildText('jid')!;
  }

  /** SASL only: resolves with the <success/> or <failure/>. */
  async authenticate(opts: { username?: string; password?: string } = {}): Promise<Element> {
    const payload = opts.username !== undefined ? Buffer.from(`\u0000${opts.username}\u0000${opts.password ?? ''}`).toString('base64') : '';
    await this.post(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="${opts.username !== undefined ? 'PLAIN' : 'ANONYMOUS'}">${payload}</auth>`);
    return this.next((e) => e.is('success') || e.is('failure'), 'the SASL outcome');
  }

  /** The stream restart after SASL: resolves with the new features. */
  async restart(to = 'localhost'): Promise<Element> {
    await this.post('', `to="${to}" xmpp:restart="true"`);
    return this.next((e) => e.name === 'stream:features' || e.is('features'), 'the features after the restart');
  }
}
