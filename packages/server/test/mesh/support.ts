// Test clients for the mesh dialects, written from the protocol documents
// (Camus's architecture.rst, rtcpool's protocol.rst), not from Atrium's code:
// each records what the server sends, checks it against the shared server
// schemas, and lets a test wait for the next frame that matches.
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { serverMessageSchemas as camusSchemas } from '@atrium/protocol/camus';
import { serverEventSchemas as poolSchemas } from '@atrium/protocol/rtcpool';

// biome-ignore lint/suspicious/noExplicitAny: frames are loose records, so tests read any field without ceremony
export type Frame = Record<string, any>;

/** Frames received, in order, with a cursor for `next`. */
class FrameLog<F extends Frame> {
  readonly received: F[] = [];
  readonly violations: string[] = [];
  private cursor = 0;
  private waiters: { pred: (f: F) => boolean; resolve: (f: F) => void }[] = [];

  push(f: F, violation?: string): void {
    if (violation) this.violations.push(violation);
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

  /** The next frame (after those already consumed) that matches. */
  next(pred: (f: F) => boolean, what: string, timeoutMs = 5000): Promise<F> {
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
          .map((f) => JSON.stringify(f).slice(0, 300))
          .join('\n  ');
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last frames:\n  ${tail}`));
      }, timeoutMs);
      const waiter = {
        pred,
        resolve: (f: F) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      this.waiters.push(waiter);
    });
  }
}

// ---------------------------------------------------------------------------
// Camus

export const GROUND_CONTROL = 'ground control';

/**
 * The message types Camus's own client (camus/static/js/rtcclient,
 * MessageHandler) has a handler for; any other type makes it throw, so the
 * server must never send one (its refusals come as `text`).
 */
export const CAMUS_CLIENT_HANDLES = new Set(['ping', 'pong', 'text', 'get-room-info', 'room-info', 'get-ice-servers', 'ice-servers', 'profile', 'offer', 'answer', 'icecandidate', 'greeting', 'bye']);

/** A refusal from ground control: a `text` carrying an error code. */
export const isRefusal = (f: Frame): boolean => f.type === 'text' && f.sender === GROUND_CONTROL && typeof f.data?.error === 'string';

export class CamusTestClient {
  private readonly log = new FrameLog<Frame>();
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Learnt as the Camus client does: the receiver of the first pong. */
  id = '';

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      let f: Frame;
      try {
        f = JSON.parse(text);
      } catch {
        this.log.push({ type: '(not JSON)', text }, `not JSON: ${text.slice(0, 200)}`);
        return;
      }
      const schema = camusSchemas[f.type as keyof typeof camusSchemas];
      const bad = isBinary
        ? 'binary frame'
        : !schema
          ? `unknown type ${f.type}`
          : !CAMUS_CLIENT_HANDLES.has(f.type)
            ? `Camus's client has no handler for type "${f.type}": ${text.slice(0, 200)}`
            : !schema.safeParse(f).success
              ? `bad ${f.type}: ${text.slice(0, 200)}`
              : undefined;
      this.log.push(f, bad);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => {});
  }

  static async connect(url: string, opts: { learnId?: boolean } = {}): Promise<CamusTestClient> {
    const ws = new WebSocket(url);
    // Listen before the socket opens: the first frames may come with the handshake.
    const c = new CamusTestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    if (opts.learnId ?? true) {
      const pong = await c.ping();
      c.id = pong.receiver;
    }
    return c;
  }

  get received(): Frame[] {
    return this.log.received;
  }

  get violations(): string[] {
    return this.log.violations;
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  next(pred: (f: Frame) => boolean, what: string, timeoutMs?: number): Promise<Frame> {
    return this.log.next(pred, what, timeoutMs);
  }

  /** Pings ground control and waits for the pong carrying the same data. */
  async ping(): Promise<Frame> {
    const data = Date.now() + Math.random();
    this.send({ receiver: GROUND_CONTROL, type: 'ping', data });
    return this.next((f) => f.type === 'pong' && f.sender === GROUND_CONTROL && f.data === data, 'pong');
  }

  async roomInfo(): Promise<Frame> {
    this.send({ receiver: GROUND_CONTROL, type: 'get-room-info' });
    return this.next((f) => f.type === 'room-info', 'room-info');
  }

  /** Frames of a type received so far, consumed or not. */
  all(type: string): Frame[] {
    return this.received.filter((f) => f.type === type);
  }

  close(): void {
    this.ws.close();
  }
}

// ---------------------------------------------------------------------------
// RTCPool: one API over both transports.

export type PoolTransportName = 'websocket' | 'socket.io';
export type PoolEvent = { type: string; data: Frame };

export class PoolTestClient {
  private readonly log = new FrameLog<PoolEvent>();
  readonly closed: Promise<void>;
  id = '';
  private syncs = 0;

  private constructor(
    readonly transport: PoolTransportName,
    private readonly ws: WebSocket | undefined,
    private readonly sio: Socket | undefined,
  ) {
    const onEvent = (type: string, data: unknown, raw?: string) => {
      const schema = poolSchemas[type as keyof typeof poolSchemas];
      const bad = !schema ? `unknown event ${type}` : !schema.safeParse(data).success ? `bad ${type}: ${(raw ?? JSON.stringify(data)).slice(0, 200)}` : undefined;
      this.log.push({ type, data: data as Frame }, bad);
    };
    if (ws) {
      ws.on('message', (d) => {
        const text = d.toString();
        try {
          const f = JSON.parse(text) as { type: string; data: unknown };
          if (typeof f.data !== 'object' || f.data === null) this.log.violations.push(`data is not an object: ${text.slice(0, 200)}`);
          onEvent(f.type, f.data, text);
        } catch {
          this.log.push({ type: '(not JSON)', data: { text } }, `not JSON: ${text.slice(0, 200)}`);
        }
      });
      this.closed = new Promise((r) => ws.on('close', () => r()));
      ws.on('error', () => {});
    } else {
      sio!.onAny((type: string, data: unknown) => onEvent(type, data));
      this.closed = new Promise((r) => sio!.on('disconnect', () => r()));
    }
  }

  static async connect(baseUrl: string, transport: PoolTransportName, opts: { token?: string; username?: string } = {}): Promise<PoolTestClient> {
    if (transport === 'websocket') {
      const q = new URLSearchParams();
      if (opts.token) q.set('token', opts.token);
      if (opts.username) q.set('username', opts.username);
      const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/pool/ws${q.size ? `?${q}` : ''}`);
      const c = new PoolTestClient(transport, ws, undefined);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return c;
    }
    const auth: Record<string, string> = {};
    if (opts.token) auth.token = opts.token;
    if (opts.username) auth.username = opts.username;
    const sio = io(baseUrl, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
    const c = new PoolTestClient(transport, undefined, sio);
    await new Promise<void>((resolve, reject) => {
      sio.once('connect', () => resolve());
      sio.once('connect_error', reject);
    });
    return c;
  }

  get received(): PoolEvent[] {
    return this.log.received;
  }

  get violations(): string[] {
    return this.log.violations;
  }

  send(type: string, data: unknown): void {
    if (this.ws) this.ws.send(JSON.stringify({ type, data }));
    else this.sio!.emit(type, data);
  }

  sendRaw(data: string | Buffer, binary = false): void {
    if (!this.ws) throw new Error('raw frames need the websocket transport');
    this.ws.send(data, { binary });
  }

  next(type: string, pred: (data: Frame) => boolean = () => true, timeoutMs?: number): Promise<Frame> {
    return this.log.next((e) => e.type === type && pred(e.data), type, timeoutMs).then((e) => e.data);
  }

  /** Joins a pool: the rtc:joined event, or the rtc:error that refused it. */
  async join(pool: string): Promise<PoolEvent> {
    this.send('rtc:join', { pool });
    const e = await this.log.next((x) => x.type === 'rtc:joined' || x.type === 'rtc:error', `rtc:joined for ${pool}`);
    if (e.type === 'rtc:joined') this.id = e.data.client_id;
    return e;
  }

  /**
   * Everything sent before was handled: ssp has no ping, so an event the
   * server does not know comes back as rtc:error, after all earlier ones.
   */
  async sync(): Promise<void> {
    const n = ++this.syncs;
    this.send(`test:sync-${n}`, {});
    await this.next('rtc:error', (d) => String(d.message).includes(`test:sync-${n}`));
  }

  /** Events of a type received so far, consumed or not (sync errors left out). */
  all(type: string): Frame[] {
    return this.received.filter((e) => e.type === type && !String(e.data?.message ?? '').includes('test:sync-')).map((e) => e.data);
  }

  close(): void {
    if (this.ws) this.ws.close();
    else this.sio!.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
