// The connection engine under ServerConnection: one WebSocket at a time to
// a Galène protocol v2 server, its handshake (the protocol version and our
// client id), liveness (a ping after a quiet spell, the socket dropped when
// the server stays silent) and reconnection with backoff when the socket
// closes without the application asking. What the frames mean is not its
// business: every frame after the handshake goes to its host (the group
// state, ServerConnection), and so does every turn of the socket's life.
import type { ClientFrame, ServerMessage, ServerMessageOf } from '@atrium/protocol/galene';
import { type ReconnectOptions, type ReconnectPolicy, backoffDelay, reconnectPolicy, shouldReconnect } from './backoff.ts';
import { AtriumClientError, describeError } from './errors.ts';
import { newRandomId } from './ids.ts';
import { parseServerFrame } from './messages.ts';

export type ConnectionState = 'new' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** The part of a browser WebSocket the connection uses (so tests and Node can supply their own). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
}

export interface EngineOptions {
  /** Automatic reconnection: true (default), false, or tuning. */
  reconnect?: boolean | ReconnectOptions;
  /** Opens the WebSocket; defaults to `new WebSocket(url)`. */
  createSocket?: (url: string) => WebSocketLike;
  /** Ping the server after this much silence, in ms (default 15 000). */
  pingAfterMs?: number;
  /** Consider the socket dead after this much silence, in ms (default 65 000). */
  timeoutMs?: number;
}

/** What the engine tells the state it feeds. What `connected` or `message` throws goes to `error`, never into the socket's event loop. */
export interface EngineHost {
  /** The handshake completed: the first time, or again after a reconnection. */
  connected(reconnected: boolean): void;
  /** A frame from the server, checked against the schemas, after the handshake. */
  message(m: ServerMessage): void;
  /** The socket is gone (the engine may still come back). */
  socketLost(): void;
  /** The socket is gone and the engine will come back: drop what the server forgets. Once per outage. */
  suspended(): void;
  /** Reconnection attempt number `attempt` comes in `delayMs`. */
  reconnecting(attempt: number, delayMs: number, code: number, reason: string): void;
  /** The connection is over for good. */
  closed(code: number, reason: string): void;
  /** Something went wrong that the application should hear of. */
  error(e: unknown): void;
}

const OPEN = 1;
/** Close code we use when we drop a socket that stopped answering. */
const CLOSE_TIMEOUT = 4000;
/** The server refused our client id because another connection uses it. */
const CLOSE_DUPLICATE_ID = 4002;

export class ConnectionEngine {
  /** Our client id (a new one after a reconnection if the server still knew the old one). */
  id: string = newRandomId();
  socket: WebSocketLike | null = null;
  /** The negotiated protocol version ("2"), or null before the handshake. */
  version: string | null = null;
  state: ConnectionState = 'new';
  readonly reconnect: ReconnectPolicy;

  private readonly createSocket: (url: string) => WebSocketLike;
  private readonly pingAfterMs: number;
  private readonly timeoutMs: number;
  private url: string | null = null;
  private closeRequested = false;
  private kicked = false;
  private wasConnected = false;
  private attempts = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private livenessTimer: ReturnType<typeof setInterval> | null = null;
  private lastHeard = 0;

  constructor(
    private readonly host: EngineHost,
    options: EngineOptions = {},
  ) {
    this.reconnect = reconnectPolicy(options.reconnect);
    this.createSocket = options.createSocket ?? ((url) => new WebSocket(url));
    this.pingAfterMs = options.pingAfterMs ?? 15_000;
    this.timeoutMs = options.timeoutMs ?? 65_000;
  }

  /** Opens the WebSocket to `url`. */
  connect(url: string): void {
    if (this.socket || this.state === 'connecting' || this.state === 'reconnecting') {
      throw new AtriumClientError('bad-argument', 'this ServerConnection is already connected; close it or make a new one');
    }
    this.url = url;
    this.closeRequested = false;
    this.kicked = false;
    this.wasConnected = false;
    this.attempts = 0;
    this.state = 'connecting';
    this.open();
  }

  /** Closes the connection for good; the host's `closed` follows. */
  close(): void {
    this.closeRequested = true;
    this.cancelReconnect();
    const ws = this.socket;
    if (ws) {
      try {
        ws.close(1000, 'Close requested by client');
      } catch {
        /* already closing */
      }
      return;
    }
    if (this.state === 'reconnecting') this.finish(1000, 'Close requested by client');
  }

  /** Sends one message; throws if the socket is not open. */
  send(message: ClientFrame): void {
    const ws = this.socket;
    if (!ws || ws.readyState !== OPEN) {
      throw new AtriumClientError('not-connected', `cannot send "${message.type}": the connection to the server is not open`);
    }
    ws.send(JSON.stringify(message));
  }

  /** The socket is open and the handshake done. */
  isOpen(): boolean {
    return this.socket !== null && this.socket.readyState === OPEN && this.version !== null;
  }

  /** The server kicked us out: when the socket closes, it stays closed. */
  markKicked(): void {
    this.kicked = true;
  }

  // -------------------------------------------------------------------

  private open(): void {
    const url = this.url;
    if (url === null) return;
    let ws: WebSocketLike;
    try {
      ws = this.createSocket(url);
    } catch (e) {
      this.host.error(new AtriumClientError('socket', `could not open a WebSocket to ${url}: ${describeError(e)}`, { cause: e }));
      this.socketClosed(1006, describeError(e));
      return;
    }
    this.socket = ws;
    this.version = null;
    this.lastHeard = Date.now();
    ws.onopen = () => {
      if (this.socket !== ws) return;
      try {
        this.send({ type: 'handshake', version: ['2'], id: this.id });
      } catch (e) {
        this.host.error(e);
      }
    };
    ws.onmessage = (ev) => {
      if (this.socket !== ws) return;
      this.lastHeard = Date.now();
      this.handleFrame(ev.data);
    };
    ws.onerror = () => {
      if (this.socket !== ws || this.state === 'reconnecting') return;
      this.host.error(new AtriumClientError('socket', `the WebSocket to ${url} failed`));
    };
    ws.onclose = (ev) => {
      if (this.socket !== ws) return;
      this.socketClosed(ev.code, ev.reason);
    };
    this.startLiveness(ws);
  }

  private handleFrame(data: unknown): void {
    const parsed = parseServerFrame(data);
    if (!parsed.ok) {
      this.host.error(new AtriumClientError('bad-frame', parsed.message));
      return;
    }
    const m = parsed.message;
    if (m.type !== 'handshake' && this.version === null) {
      this.host.error(new AtriumClientError('bad-frame', `the server sent "${m.type}" before its handshake`));
      return;
    }
    try {
      if (m.type === 'handshake') this.gotHandshake(m);
      else if (m.type === 'ping') this.send({ type: 'pong' });
      else if (m.type !== 'pong') this.host.message(m);
    } catch (e) {
      // A bug of ours or a callback that threw: reported, never thrown into the socket's event loop.
      this.host.error(e);
    }
  }

  private gotHandshake(m: ServerMessageOf<'handshake'>): void {
    if (this.version !== null) return;
    if (!m.version.includes('2')) {
      this.host.error(new AtriumClientError('bad-version', `the server speaks protocol version ${JSON.stringify(m.version)}; this client speaks "2"`));
      this.closeRequested = true;
      this.socket?.close(1000, 'unsupported protocol version');
      return;
    }
    this.version = '2';
    const reconnected = this.state === 'reconnecting';
    this.state = 'connected';
    this.wasConnected = true;
    this.attempts = 0;
    this.host.connected(reconnected);
  }

  private startLiveness(ws: WebSocketLike): void {
    this.stopLiveness();
    const period = Math.max(250, Math.min(10_000, this.pingAfterMs / 2));
    this.livenessTimer = setInterval(() => {
      if (this.socket !== ws) return;
      const quiet = Date.now() - this.lastHeard;
      if (quiet > this.timeoutMs) {
        this.host.error(new AtriumClientError('socket', `the server has not answered for ${Math.round(quiet / 1000)} s`));
        this.dropSocket(CLOSE_TIMEOUT, 'the server stopped answering');
      } else if (quiet >= this.pingAfterMs && this.version !== null && ws.readyState === OPEN) {
        ws.send(JSON.stringify({ type: 'ping' }));
      }
    }, period);
    // In Node, liveness checks alone must not keep the process alive.
    (this.livenessTimer as { unref?: () => void }).unref?.();
  }

  private stopLiveness(): void {
    if (this.livenessTimer !== null) clearInterval(this.livenessTimer);
    this.livenessTimer = null;
  }

  /** Gives up on the current socket at once, without waiting for the closing handshake. */
  private dropSocket(code: number, reason: string): void {
    const ws = this.socket;
    if (!ws) return;
    detach(ws);
    try {
      ws.close(code, reason);
    } catch {
      /* already closed */
    }
    this.socketClosed(code, reason);
  }

  private socketClosed(code: number, reason: string): void {
    const ws = this.socket;
    if (ws) detach(ws);
    this.socket = null;
    this.version = null;
    this.stopLiveness();
    this.host.socketLost();
    if (code === CLOSE_DUPLICATE_ID) this.id = newRandomId();
    const ctx = { requested: this.closeRequested, kicked: this.kicked, wasConnected: this.wasConnected, attempts: this.attempts };
    if (shouldReconnect(code, ctx, this.reconnect)) {
      this.scheduleReconnect(code, reason);
    } else {
      this.finish(code, reason);
    }
  }

  private scheduleReconnect(code: number, reason: string): void {
    const first = this.state !== 'reconnecting';
    this.state = 'reconnecting';
    if (first) this.host.suspended();
    this.attempts += 1;
    const delay = backoffDelay(this.attempts, this.reconnect);
    this.host.reconnecting(this.attempts, delay, code, reason);
    this.cancelReconnect();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state === 'reconnecting' && !this.closeRequested) this.open();
    }, delay);
  }

  private cancelReconnect(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  private finish(code: number, reason: string): void {
    this.cancelReconnect();
    this.state = 'closed';
    this.host.closed(code, reason);
  }
}

function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}
