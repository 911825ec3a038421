// The two transports RTCPool ships with, on Atrium's HTTP server:
//   raw WebSocket  /pool/ws       frames are JSON {type, data}
//   socket.io      /socket.io/    (socket.io's default path) events named like the type
// A client presents a token (and optionally a username) in the WebSocket URL
// (`/pool/ws?token=...`), or in socket.io's `auth` ({token, username}) or
// query. Both transports feed the same PoolConnection, each as a kit
// Transport; what socket.io queues counts towards the endpoint's byte limit.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyRequest } from 'fastify';
import { Server as SocketIoServer, type Socket } from 'socket.io';
import { io as ioClient } from 'socket.io-client';
import { LIMITS } from '@atrium/protocol/rtcpool';
import { placeFor } from '../../http/place.ts';
import { Connections, contextOf, type Dialect, type DialectHost, type Transport, type TransportSink, WebSocketTransport, type WsFrame } from '../kit/index.ts';
import type { ForwardCounter, ForwardOptions, ForwardTarget } from '../kit/forward.ts';
import { DIALECT, PoolConnection, type PoolFrame, type PoolInput, type SocketIoEvent } from './connection.ts';

export const WEBSOCKET_PATH = '/pool/ws';
export const SOCKET_IO_PATH = '/socket.io/';

/** How long stopping waits for socket.io clients to be sent what is queued for them. */
const DRAIN_ON_STOP_MS = 2000;

type PoolRequest = FastifyRequest<{ Querystring: Record<string, string | string[] | undefined> }>;

/** RTCPool over /pool/ws and socket.io (attached beside @fastify/websocket on the same HTTP server). */
export function rtcpoolDialect(): Dialect {
  const connections = new Connections<PoolConnection>();
  let io: SocketIoServer | undefined;
  return {
    name: DIALECT,
    register(host: DialectHost) {
      const ctx = contextOf(host);
      host.app.get(WEBSOCKET_PATH, { websocket: true }, (socket, req: PoolRequest) => {
        const place = placeFor(req.headers.host, host.place());
        const creds = { token: single(req.query.token), username: single(req.query.username), groupUrl: place.groupUrl, address: host.address(req) };
        connections.add(new PoolConnection(new JsonFrames(new WebSocketTransport(socket, { url: req.url, headers: req.headers }, host.metrics.forwarded)), creds, ctx));
      });

      io = new SocketIoServer({
        path: SOCKET_IO_PATH,
        serveClient: false,
        maxHttpBufferSize: LIMITS.frameBytes,
        perMessageDeflate: false,
      });
      attachBeside(host.app.server as HttpServer, io);
      io.on('connection', (socket: Socket) => {
        const hs = socket.handshake;
        const auth = (hs.auth ?? {}) as Record<string, unknown>;
        const place = placeFor(hs.headers.host, host.place());
        const creds = {
          token: text(auth.token) ?? single(hs.query.token),
          username: text(auth.username) ?? single(hs.query.username),
          groupUrl: place.groupUrl,
          address: host.address({ socket: { remoteAddress: hs.address }, headers: hs.headers }),
        };
        connections.add(new PoolConnection(new SocketIoTransport(socket, host.metrics.forwarded), creds, ctx));
      });
    },
    async closeAll(reason) {
      connections.closeAll(reason);
      // engine.io sends what a socket has queued (its rtc:stop) before it
      // closes it, unless the engine is closed first: wait for that, a little.
      const deadline = performance.now() + DRAIN_ON_STOP_MS;
      while (io && io.engine.clientsCount > 0 && performance.now() < deadline) await sleep(20);
      // Closes the engine's remaining clients; the HTTP server is fastify's to close.
      io?.engine?.close();
    },
  };
}

/**
 * Attaches socket.io to a server whose WebSocket upgrades @fastify/websocket
 * already takes: each upgrade goes to exactly one of them by path, otherwise
 * fastify would answer socket.io's upgrades with a 404 on the same socket.
 */
function attachBeside(server: HttpServer, io: SocketIoServer): void {
  type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  const others = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  io.attach(server, { destroyUpgrade: false });
  const engine = server.listeners('upgrade') as UpgradeListener[];
  server.removeAllListeners('upgrade');
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const to = (req.url ?? '').startsWith(SOCKET_IO_PATH) ? engine : others;
    for (const l of to) l.call(server, req, socket, head);
  });
}

/** The raw WebSocket transport: events as JSON `{type, data}` text frames; liveness by WebSocket ping frames (ssp has no ping). */
class JsonFrames implements Transport<PoolFrame, PoolInput> {
  constructor(private readonly ws: WebSocketTransport) {}

  attach(sink: TransportSink<PoolInput>): void {
    this.ws.attach(sink as TransportSink<WsFrame>);
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  sizeOf(frame: PoolFrame): number {
    return Buffer.byteLength(frame.json);
  }

  send(frame: PoolFrame): void {
    this.ws.send(frame.json);
  }

  sendBatch(frames: readonly PoolFrame[], sizes: readonly number[]): void {
    this.ws.sendBatch(
      frames.map((f) => f.json),
      sizes,
    );
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  ping(): void {
    this.ws.ping();
  }

  forward(to: ForwardTarget, replay: readonly PoolInput[], options?: ForwardOptions): Promise<boolean> {
    return this.ws.forward(to, replay as WsFrame[], options);
  }
}

/** What engine.io holds of a packet, in bytes. */
function packetBytes(packet: { data?: unknown }): number {
  const d = packet.data;
  if (typeof d === 'string') return Buffer.byteLength(d);
  if (d instanceof ArrayBuffer || ArrayBuffer.isView(d)) return d.byteLength;
  return 0;
}

interface EngineSocket {
  on(event: 'packetCreate', listener: (packet: { data?: unknown }) => void): void;
  on(event: 'flush', listener: (packets: { data?: unknown }[]) => void): void;
  transport?: { socket?: { bufferedAmount?: number } };
}

/**
 * socket.io: events by name; its own heartbeat keeps the connection honest.
 * engine.io queues packets while its transport is busy (a reader that does
 * not read keeps it busy): those bytes, and what the WebSocket under it
 * holds, are this transport's bufferedAmount.
 */
class SocketIoTransport implements Transport<PoolFrame, PoolInput> {
  readonly keepsItselfAlive = true;
  /** Bytes of packets engine.io has queued and not yet handed to its transport. */
  private queued = 0;
  private readonly engine: EngineSocket;
  private sink: TransportSink<PoolInput> | undefined;
  private readonly onEvent = (event: unknown, data: unknown) => this.sink?.receive({ event, data } satisfies SocketIoEvent, 0);
  private readonly onDisconnect = () => this.sink?.transportClosed();

  constructor(
    private readonly socket: Socket,
    private readonly forwarded?: ForwardCounter,
  ) {
    this.engine = socket.conn as unknown as EngineSocket;
    this.engine.on('packetCreate', (p) => {
      this.queued += packetBytes(p);
    });
    this.engine.on('flush', (packets) => {
      for (const p of packets) this.queued -= packetBytes(p);
    });
  }

  attach(sink: TransportSink<PoolInput>): void {
    this.sink = sink;
    this.socket.onAny(this.onEvent);
    this.socket.on('disconnect', this.onDisconnect);
  }

  /**
   * Hands the endpoint to the node that holds its pool: a socket.io client
   * to that node, with the same auth and query, gets the events received so
   * far and then every event both ways (see kit/forward.ts).
   */
  async forward(to: ForwardTarget, replay: readonly PoolInput[]): Promise<boolean> {
    const socket = this.socket;
    socket.offAny(this.onEvent);
    socket.off('disconnect', this.onDisconnect);
    const pending: SocketIoEvent[] = [];
    let gone = false;
    const hold = (event: unknown, data: unknown) => pending.length < 256 && pending.push({ event, data });
    const left = () => {
      gone = true;
    };
    socket.onAny(hold);
    socket.on('disconnect', left);
    const hs = socket.handshake;
    const extraHeaders: Record<string, string> = { 'x-atrium-forwarded': '1' };
    if (to.address !== undefined) extraHeaders['x-forwarded-for'] = to.address;
    if (typeof hs.headers.host === 'string') extraHeaders.host = hs.headers.host;
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(hs.query)) if (typeof v === 'string' && k !== 'EIO' && k !== 'transport' && k !== 't') query[k] = v;
    const owner = ioClient(to.url, { path: SOCKET_IO_PATH, transports: ['websocket'], auth: hs.auth, query, extraHeaders, reconnection: false, timeout: 5000, forceNew: true });
    // Events may come right behind the connection: listen before it is up.
    let toClient: ((event: string, data: unknown) => void) | undefined;
    const early: [string, unknown][] = [];
    owner.onAny((event: string, data: unknown) => (toClient ? toClient(event, data) : early.push([event, data])));
    const opened = await new Promise<boolean>((resolve) => {
      owner.once('connect', () => resolve(true));
      owner.once('connect_error', () => resolve(false));
    });
    socket.offAny(hold);
    socket.off('disconnect', left);
    if (!opened || gone || !socket.connected) {
      owner.close();
      if (gone || !socket.connected) return true;
      this.attach(this.sink!);
      for (const e of pending) this.onEvent(e.event, e.data);
      return false;
    }
    this.forwarded?.inc();
    toClient = (event, data) => socket.emit(event, data);
    for (const [event, data] of early) toClient(event, data);
    socket.onAny((event: string, data: unknown) => owner.emit(event, data));
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.forwarded?.dec();
      owner.close();
      socket.disconnect(true);
    };
    owner.on('disconnect', end);
    socket.on('disconnect', end);
    for (const e of [...(replay as SocketIoEvent[]), ...pending]) if (typeof e.event === 'string') owner.emit(e.event, e.data);
    return true;
  }

  get bufferedAmount(): number {
    return this.queued + (this.engine.transport?.socket?.bufferedAmount ?? 0);
  }

  sizeOf(frame: PoolFrame): number {
    return Buffer.byteLength(frame.json);
  }

  send(frame: PoolFrame): void {
    this.socket.emit(frame.type, frame.data);
  }

  close(): void {
    this.socket.disconnect(true);
  }
}

function single(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
