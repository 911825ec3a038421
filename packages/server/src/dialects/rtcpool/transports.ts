// The two transports RTCPool ships with, on Atrium's HTTP server:
//   raw WebSocket  /pool/ws       frames are JSON {type, data}
//   socket.io      /socket.io/    (socket.io's default path) events named like the type
// A client presents a token (and optionally a username) in the WebSocket URL
// (`/pool/ws?token=...`), or in socket.io's `auth` ({token, username}) or
// query. Both transports feed the same PoolConnection.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Server as SocketIoServer, type Socket } from 'socket.io';
import type { WebSocket } from 'ws';
import { LIMITS, type ServerEventType } from '@atrium/protocol/rtcpool';
import { type PlaceOptions, placeFor } from '../../http/place.ts';
import type { LivenessMonitor, LivePeer } from '../../transport/liveness.ts';
import { closeAfterQueued, discard, frameSize, sendBatched } from '../../transport/ws-sender.ts';
import { CLOSE, PoolConnection, type PoolContext } from './connection.ts';

export const WEBSOCKET_PATH = '/pool/ws';
export const SOCKET_IO_PATH = '/socket.io/';

/** Events a socket.io endpoint may have queued before it counts as too slow. */
const MAX_SOCKET_IO_QUEUE = 4096;

export interface RtcPoolRoutes {
  /** Stops every endpoint (rtc:stop) and closes socket.io. */
  closeAll(reason: string): void;
}

export interface RtcPoolDeps extends PoolContext {
  liveness: LivenessMonitor;
  place: () => PlaceOptions;
  /** The network address a request came from, for throttling failed logins. */
  address?: ((req: { socket?: { remoteAddress?: string | undefined }; headers: Record<string, string | string[] | undefined> }) => string | undefined) | undefined;
}

type PoolRequest = FastifyRequest<{ Querystring: Record<string, string | string[] | undefined> }>;

/** Registers /pool/ws and attaches socket.io to the app's HTTP server (call after @fastify/websocket is registered). */
export function registerRtcPool(app: FastifyInstance, deps: RtcPoolDeps): RtcPoolRoutes {
  const endpoints = new Set<PoolConnection>();
  const track = (conn: PoolConnection): void => {
    endpoints.add(conn);
  };

  app.get(WEBSOCKET_PATH, { websocket: true }, (socket, req: PoolRequest) => {
    const place = placeFor(req.headers.host, deps.place());
    const transport = new WsTransport(socket, deps.liveness);
    const address = deps.address ? deps.address(req) : req.socket.remoteAddress;
    const conn = new PoolConnection(transport, { token: single(req.query.token), username: single(req.query.username), groupUrl: place.groupUrl, address }, deps);
    transport.attach(conn);
    track(conn);
    socket.on('close', () => endpoints.delete(conn));
  });

  const io = new SocketIoServer({
    path: SOCKET_IO_PATH,
    serveClient: false,
    maxHttpBufferSize: LIMITS.frameBytes,
    perMessageDeflate: false,
  });
  attachBeside(app.server as HttpServer, io);
  io.on('connection', (socket: Socket) => {
    const hs = socket.handshake;
    const auth = (hs.auth ?? {}) as Record<string, unknown>;
    const place = placeFor(hs.headers.host, deps.place());
    const conn = new PoolConnection(
      new SocketIoTransport(socket),
      {
        token: text(auth.token) ?? single(hs.query.token),
        username: text(auth.username) ?? single(hs.query.username),
        groupUrl: place.groupUrl,
        address: deps.address ? deps.address({ socket: { remoteAddress: hs.address }, headers: hs.headers }) : hs.address,
      },
      deps,
    );
    track(conn);
    socket.onAny((event: unknown, data: unknown) => conn.receiveEvent(event, data));
    socket.on('disconnect', () => {
      endpoints.delete(conn);
      conn.transportClosed();
    });
  });

  return {
    closeAll(reason) {
      for (const c of [...endpoints]) c.terminate(reason);
      // Closes the engine's clients; the HTTP server is fastify's to close.
      io.engine?.close();
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

/** The raw WebSocket transport; liveness by WebSocket ping frames (ssp has no ping). */
class WsTransport implements LivePeer {
  lastHeard = performance.now();
  private conn: PoolConnection | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly liveness: LivenessMonitor,
  ) {}

  attach(conn: PoolConnection): void {
    this.conn = conn;
    this.liveness.add(this);
    this.ws.on('message', (data, isBinary) => {
      this.lastHeard = performance.now();
      const size = frameSize(data);
      if (size > LIMITS.frameBytes) {
        conn.refuseFrame('too-large', `a frame of ${size} bytes is over the ${LIMITS.frameBytes}-byte limit`);
        conn.close(CLOSE.tooLarge, 'frame too large');
        return;
      }
      if (isBinary) return conn.refuseFrame('bad-message', 'binary frames are not part of ssp; send JSON text {"type": ..., "data": {...}}');
      conn.receiveFrame(data.toString());
    });
    this.ws.on('pong', () => {
      this.lastHeard = performance.now();
    });
    this.ws.on('close', () => {
      this.liveness.delete(this);
      discard(this.ws);
      conn.transportClosed();
    });
    this.ws.on('error', () => {});
  }

  send(type: ServerEventType, data: object, urgent: boolean): boolean {
    return sendBatched(this.ws, JSON.stringify({ type, data }), urgent);
  }

  close(code: number, reason: string): void {
    this.liveness.delete(this);
    // What is queued (rtc:stop, an error) leaves before the close frame.
    closeAfterQueued(this.ws, code, reason);
  }

  ping(): void {
    if (this.ws.readyState === 1) this.ws.ping();
  }

  expire(): void {
    this.conn?.close(CLOSE.policy, 'no answer to ping within 75 seconds');
  }
}

/** socket.io: its own heartbeat keeps the connection honest. */
class SocketIoTransport {
  constructor(private readonly socket: Socket) {}

  send(type: ServerEventType, data: object): boolean {
    const queued = (this.socket.conn as unknown as { writeBuffer?: unknown[] }).writeBuffer?.length ?? 0;
    if (queued > MAX_SOCKET_IO_QUEUE) return false;
    this.socket.emit(type, data);
    return true;
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
