// Runs in the page: strophe.js and its MUC plugin (npm, unchanged), driven
// by the tests through `window.sx`. Every stanza and status strophe reports
// is recorded for the test to read back.
import { $iq, $msg, Strophe } from 'strophe.js';
import 'strophejs-plugin-muc';

export interface Seen {
  kind: 'message' | 'presence' | 'iq';
  from: string;
  type: string;
  body?: string;
  subject?: string;
  delay?: string;
  codes: string[];
  reason?: string;
  actor?: string;
  error?: string;
  errorText?: string;
  xml: string;
}

interface Muc {
  join(
    room: string,
    nick: string,
    msg: (s: Element) => boolean,
    pres: (s: Element) => boolean,
    roster: (o: Record<string, { nick: string; role: string; affiliation: string }>) => boolean,
    password?: string,
  ): void;
  groupchat(room: string, text: string): void;
  message(room: string, nick: string, text: string, html: null, type: string): void;
  kick(room: string, nick: string, reason: string, ok: (s: Element) => void, err: (s: Element) => void): void;
  leave(room: string, nick: string): void;
  rooms: Record<string, { roster: Record<string, { nick: string; role: string }> }>;
}

function seen(s: Element): Seen {
  const x = Array.from(s.getElementsByTagName('x')).find((e) => e.getAttribute('xmlns') === 'http://jabber.org/protocol/muc#user');
  const item = x?.getElementsByTagName('item')[0];
  const err = s.getElementsByTagName('error')[0];
  const r: Seen = {
    kind: s.nodeName as Seen['kind'],
    from: s.getAttribute('from') ?? '',
    type: s.getAttribute('type') ?? '',
    codes: x ? Array.from(x.getElementsByTagName('status')).map((st) => st.getAttribute('code') ?? '') : [],
    xml: Strophe.serialize(s),
  };
  const body = s.getElementsByTagName('body')[0];
  if (body) r.body = body.textContent ?? '';
  const subject = s.getElementsByTagName('subject')[0];
  if (subject) r.subject = subject.textContent ?? '';
  const delay = s.getElementsByTagName('delay')[0];
  if (delay) r.delay = delay.getAttribute('stamp') ?? '';
  const reason = item?.getElementsByTagName('reason')[0];
  if (reason) r.reason = reason.textContent ?? '';
  const actor = item?.getElementsByTagName('actor')[0];
  if (actor) r.actor = actor.getAttribute('nick') ?? '';
  if (err) {
    r.error = Array.from(err.children).find((c) => c.nodeName !== 'text')?.nodeName;
    r.errorText = err.getElementsByTagName('text')[0]?.textContent ?? '';
  }
  return r;
}

export class StropheClient {
  readonly seen: Seen[] = [];
  readonly statuses: string[] = [];
  conn: InstanceType<typeof Strophe.Connection> | undefined;
  jid = '';

  /** Connects (WebSocket for ws:// URLs, BOSH for http://); anonymous when the JID has no localpart. */
  connect(service: string, jid: string, password: string | null = null): Promise<string> {
    const conn = new Strophe.Connection(service);
    this.conn = conn;
    conn.addHandler(
      (s: Element) => {
        this.seen.push(seen(s));
        return true;
      },
      null,
      'message',
    );
    conn.addHandler(
      (s: Element) => {
        this.seen.push(seen(s));
        return true;
      },
      null,
      'presence',
    );
    return new Promise((resolve, reject) => {
      conn.connect(jid, password as string, (status: number, condition?: string) => {
        const name = Object.entries(Strophe.Status).find(([, v]) => v === status)?.[0] ?? String(status);
        this.statuses.push(condition ? `${name}:${condition}` : name);
        if (status === Strophe.Status.CONNECTED) {
          this.jid = conn.jid;
          resolve(conn.jid);
        } else if (status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL) {
          reject(new Error(`${name}${condition ? `: ${condition}` : ''}`));
        }
      });
    });
  }

  private get muc(): Muc {
    return (this.conn as unknown as { muc: Muc }).muc;
  }

  /** Joins with the MUC plugin; resolves with the nicks of the roster once the self-presence came, or the error. */
  join(room: string, nick: string, password?: string): Promise<{ nicks: string[] } | { error: string; text: string }> {
    return new Promise((resolve) => {
      const done = (s: Element) => {
        const r = seen(s);
        if (r.from !== `${room}/${nick}`) return true;
        if (r.type === 'error') resolve({ error: r.error ?? '', text: r.errorText ?? '' });
        else if (r.codes.includes('110')) setTimeout(() => resolve({ nicks: this.nicks(room) }), 0);
        else return true;
        return false;
      };
      // Our own handler: the plugin keeps the callbacks of a room's first join only.
      this.conn!.addHandler(done, null, 'presence');
      this.muc.join(
        room,
        nick,
        () => true,
        () => true,
        () => true,
        password,
      );
    });
  }

  nicks(room: string): string[] {
    return Object.keys(this.muc.rooms[room]?.roster ?? {}).sort();
  }

  roles(room: string): Record<string, string> {
    return Object.fromEntries(Object.entries(this.muc.rooms[room]?.roster ?? {}).map(([n, o]) => [n, o.role]));
  }

  groupchat(room: string, text: string): void {
    this.muc.groupchat(room, text);
  }

  privateMessage(room: string, nick: string, text: string): void {
    this.muc.message(room, nick, text, null, 'chat');
  }

  kick(room: string, nick: string, reason: string): Promise<string> {
    return new Promise((resolve) =>
      this.muc.kick(
        room,
        nick,
        reason,
        () => resolve('ok'),
        (s) => resolve(seen(s).error ?? 'error'),
      ),
    );
  }

  ping(to: string): Promise<string> {
    return new Promise((resolve) => {
      this.conn!.sendIQ(
        $iq({ type: 'get', to }).c('ping', { xmlns: 'urn:xmpp:ping' }),
        () => resolve('result'),
        (s: Element | null) => resolve(s ? (seen(s).error ?? 'error') : 'timeout'),
      );
    });
  }

  /** Raw message, for what the plugin has no call for. */
  sendMessage(to: string, type: string, body: string): void {
    this.conn!.send($msg({ to, type }).c('body').t(body));
  }

  disconnect(): void {
    this.conn?.disconnect('test over');
  }
}

(window as unknown as { StropheClient: typeof StropheClient }).StropheClient = StropheClient;
