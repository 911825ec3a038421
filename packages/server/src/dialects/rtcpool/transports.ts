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
import { LIMITS } from '@atrium/protocol/rtcpool';
import { placeFor } from '../../http/place.ts';
import { Connections, contextOf, type Dialect, type DialectHost, type Transport, type TransportSink, WebSocketTransport, type WsFrame } from '../kit/index.ts';
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
        connections.add(new PoolConnection(new JsonFrames(new WebSocketTransport(socket)), creds, ctx));
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
        connections.add(new PoolConnection(new SocketIoTransport(socket), creds, ctx));
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

  constructor(private readonly socket: Socket) {
    this.engine = socket.conn as unknown as EngineSocket;
    this.engine.on('packetCreate', (p) => {
      this.queued += packetBytes(p);
    });
    this.engine.on('flush', (packets) => {
      for (const p of packets) this.queued -= packetBytes(p);
    });
  }

  attach(sink: TransportSink<PoolInput>): void {
    this.socket.onAny((event: unknown, data: unknown) => sink.receive({ event, data } satisfies SocketIoEvent, 0));
    this.socket.on('disconnect', () => sink.transportClosed());
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
