// One simulated Galène participant, kept as cheap as possible: thousands of
// these share one core with each other, so frames are recognised by a byte
// search on the raw buffer and only the rare ones (handshake, joined, chat,
// errors) are parsed as JSON.
import type { ClientMessageOf } from '@atrium/protocol/galene';
import WebSocket from 'ws';

const USER = Buffer.from('"type":"user"');
const ADD = Buffer.from('"kind":"add"');
const CHAT = Buffer.from('"type":"chat"');
const PING = Buffer.from('"type":"ping"');
const PONG = JSON.stringify({ type: 'pong' } satisfies ClientMessageOf<'pong'>);

/** Chat values the benchmark sends: a marker, the message number and the send time. */
const CHAT_PREFIX = 'atrium-bench ';

export function chatValue(seq: number, sentAt: number): string {
  return `${CHAT_PREFIX}${seq} ${sentAt}`;
}

function parseChatValue(value: unknown): { seq: number; sentAt: number } | undefined {
  if (typeof value !== 'string' || !value.startsWith(CHAT_PREFIX)) return undefined;
  const [seq, sentAt] = value.slice(CHAT_PREFIX.length).split(' ');
  const s = Number(seq);
  const t = Number(sentAt);
  return Number.isInteger(s) && Number.isFinite(t) ? { seq: s, sentAt: t } : undefined;
}

/** What every client reports to; shared by all clients of one run. */
export interface Tracker {
  /** `user` adds each client must see for the join storm to count as delivered. */
  expectedUsers: number;
  /** Clients that have seen expectedUsers adds. */
  usersComplete: number;
  onUsersComplete(): void;
  onChat(client: BenchClient, seq: number, sentAt: number, receivedAt: number): void;
  /** A joined client's socket closed before the benchmark closed it. */
  onDropped(client: BenchClient, code: number, reason: string): void;
  /** A `usermessage` of kind error or warning from the server. */
  onServerError(client: BenchClient, text: string): void;
  pings: number;
}

export interface JoinParams {
  url: string;
  id: string;
  group: string;
  username: string;
  /** Certificates to trust for a wss: URL (a load balancer's own certificate). */
  ca?: string;
}

export class BenchClient {
  userAdds = 0;
  joined = false;
  private ws: WebSocket | undefined;
  private closing = false;

  constructor(
    readonly index: number,
    private readonly tracker: Tracker,
  ) {}

  /** Connects, handshakes and joins; resolves on the `joined` frame of kind `join`. */
  join(p: JoinParams): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        reject(new Error(`client ${this.index} (${p.username}): ${why}`));
      };
      const ws = new WebSocket(p.url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 30_000, ...(p.ca ? { ca: p.ca } : {}) });
      this.ws = ws;
      ws.on('open', () => {
        const hello: ClientMessageOf<'handshake'> = { type: 'handshake', version: ['2'], id: p.id };
        ws.send(JSON.stringify(hello));
      });
      ws.on('error', (e) => fail(`socket error: ${e.message}`));
      ws.on('close', (code, reason) => {
        if (!settled) return fail(`socket closed before joining (code ${code}${reason.length ? `, ${reason.toString()}` : ''})`);
        if (!this.closing) this.tracker.onDropped(this, code, reason.toString());
      });
      ws.on('message', (raw: WebSocket.RawData, isBinary: boolean) => {
        if (isBinary) return;
        // With the default binaryType a text frame arrives as one Buffer.
        const data = raw as Buffer;
        // The frames that come by the thousand first, without parsing.
        if (data.indexOf(USER) !== -1) {
          if (data.indexOf(ADD) !== -1 && ++this.userAdds === this.tracker.expectedUsers) {
            this.tracker.usersComplete++;
            this.tracker.onUsersComplete();
          }
          return;
        }
        if (data.indexOf(CHAT) !== -1) {
          const receivedAt = performance.now();
          const msg = JSON.parse(data.toString()) as { type?: string; value?: unknown };
          const v = msg.type === 'chat' ? parseChatValue(msg.value) : undefined;
          if (v) this.tracker.onChat(this, v.seq, v.sentAt, receivedAt);
          return;
        }
        if (data.indexOf(PING) !== -1) {
          this.tracker.pings++;
          ws.send(PONG);
          return;
        }
        const msg = JSON.parse(data.toString()) as { type?: string; kind?: string; error?: string; value?: unknown };
        switch (msg.type) {
          case 'handshake': {
            const join: ClientMessageOf<'join'> = { type: 'join', kind: 'join', group: p.group, username: p.username, password: '' };
            ws.send(JSON.stringify(join));
            return;
          }
          case 'joined':
            if (msg.kind === 'join') {
              this.joined = true;
              settled = true;
              resolve();
            } else if (msg.kind === 'fail') {
              fail(`join refused: ${msg.error ?? ''} ${typeof msg.value === 'string' ? msg.value : ''}`.trim());
            } else if (msg.kind === 'leave' || msg.kind === 'redirect') {
              fail(`unexpected joined of kind "${msg.kind}"`);
            }
            return;
          case 'usermessage':
            if (msg.kind === 'error' || msg.kind === 'warning') {
              const text = `${msg.kind}${msg.error ? ` (${msg.error})` : ''}: ${typeof msg.value === 'string' ? msg.value : JSON.stringify(msg.value)}`;
              if (!settled) fail(`server said ${text}`);
              else this.tracker.onServerError(this, text);
            }
            return;
        }
      });
    });
  }

  sendChat(value: string): void {
    const msg: ClientMessageOf<'chat'> = { type: 'chat', kind: '', value };
    this.ws?.send(JSON.stringify(msg));
  }

  /** Drops the connection at once (no closing handshake: the run is over). */
  close(): void {
    this.closing = true;
    this.ws?.terminate();
  }
}
