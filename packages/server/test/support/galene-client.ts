// A minimal Galène protocol v2 client for tests, written from
// galene-protocol.md alone (not from Atrium's code): it speaks the frames
// the spec describes and checks every frame the server sends against the
// shared server-message schemas, recording any that do not fit.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { serverMessageSchemas } from '@atrium/protocol/galene';

// Frames are checked against the schemas but kept as loose records, so tests
// can read any field without ceremony.
// biome-ignore lint/suspicious/noExplicitAny: a loose record, on purpose
export type Frame = Record<string, any> & { type: string };

export class GaleneTestClient {
  readonly id: string;
  readonly received: Frame[] = [];
  /** Frames that did not match the spec's shape. */
  readonly violations: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = [];
  private cursor = 0;
  isClosed = false;

  private constructor(
    private readonly ws: WebSocket,
    id: string,
    private readonly answerPings: boolean,
  ) {
    this.id = id;
    ws.on('message', (data) => this.onFrame(data.toString()));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.isClosed = true;
        resolve({ code, reason: reason.toString() });
      });
    });
    ws.on('error', () => {});
  }

  /**
   * `timeoutMs`: how long to wait for the server's handshake (5 s).
   * `answerPings`: answer the server's pings with a pong, as Galène's client
   * does (off by default: a test client otherwise stays as quiet as it is told).
   */
  static async connect(wsUrl: string, opts: { id?: string; handshake?: boolean; timeoutMs?: number; answerPings?: boolean } = {}): Promise<GaleneTestClient> {
    const ws = new WebSocket(wsUrl);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const c = new GaleneTestClient(ws, opts.id ?? randomBytes(8).toString('hex'), opts.answerPings ?? false);
    if (opts.handshake ?? true) {
      c.send({ type: 'handshake', version: ['2'], id: c.id });
      await c.next((f) => f.type === 'handshake', opts.timeoutMs ?? 5000, 'the handshake');
    }
    return c;
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** Waits for the next frame (after those already consumed) that matches. */
  next(pred: (f: Frame) => boolean, timeoutMs = 5000, what = 'a matching frame'): Promise<Frame> {
    for (let i = this.cursor; i < this.received.length; i++) {
      const f = this.received[i]!;
      if (pred(f)) {
        this.cursor = i + 1;
        return Promise.resolve(f);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const tail = this.received
          .slice(-5)
          .map((f) => JSON.stringify(f))
          .join('\n  ');
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last frames:\n  ${tail}`));
      }, timeoutMs);
      const waiter = {
        pred,
        from: this.cursor,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves with all frames of a type received so far (consumed or not). */
  all(type: string, kind?: string): Frame[] {
    return this.received.filter((f) => f.type === type && (kind === undefined || f.kind === kind));
  }

  async join(group: string, username?: string, password?: string, extra: Record<string, unknown> = {}, timeoutMs = 5000): Promise<Frame> {
    this.send({ type: 'join', kind: 'join', group, username, password, ...extra });
    return this.next((f) => f.type === 'joined' && f.group === group && f.kind !== 'change', timeoutMs, `joined for ${group}`);
  }

  chat(value: string, extra: Record<string, unknown> = {}): void {
    this.send({ type: 'chat', source: this.id, username: 'ignored', kind: '', value, ...extra });
  }

  /** Sends a ping and waits for the pong: everything sent before was handled. */
  async roundTrip(timeoutMs = 5000): Promise<void> {
    this.send({ type: 'ping' });
    await this.next((f) => f.type === 'pong', timeoutMs, 'pong');
  }

  close(): void {
    this.ws.close();
  }

  private onFrame(text: string): void {
    let f: Frame;
    try {
      f = JSON.parse(text);
    } catch {
      this.violations.push(`not JSON: ${text.slice(0, 200)}`);
      return;
    }
    const schema = serverMessageSchemas[f.type as keyof typeof serverMessageSchemas];
    if (!schema) this.violations.push(`unknown type: ${text.slice(0, 200)}`);
    else if (!schema.safeParse(f).success) this.violations.push(`bad ${f.type}: ${text.slice(0, 200)}`);
    // As Galène's own client does: a long-lived member stays alive however busy the test is.
    if (this.answerPings && f.type === 'ping') this.send({ type: 'pong' });
    this.received.push(f);
    const index = this.received.length - 1;
    for (const w of [...this.waiters]) {
      if (w.pred(f)) {
        this.waiters = this.waiters.filter((x) => x !== w);
        if (index >= this.cursor) this.cursor = index + 1;
        w.resolve(f);
        break;
      }
    }
  }
}
