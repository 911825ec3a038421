// The WebSocket transport (ws, through @fastify/websocket): text frames out,
// written in batches as one buffer of complete frames; frames in as ws
// delivers them, with their size, for the dialect to decode.
import type { RawData, WebSocket } from 'ws';
import type { Transport, TransportSink } from './transport.ts';

/**
 * Options for @fastify/websocket. ws drops frames over maxPayload with no
 * reason given; it is set well above any dialect's own frame limit so that
 * the dialect (DialectConnection) is the one that refuses, saying why.
 */
export const WEBSOCKET_OPTIONS = { maxPayload: 1024 * 1024, perMessageDeflate: false } as const;

/** A frame as ws hands it over: undecoded, so an oversized one is refused before it costs a decode. */
export interface WsFrame {
  data: RawData;
  binary: boolean;
}

interface RawSocket {
  write(data: Buffer): boolean;
  destroyed: boolean;
}

function socketOf(ws: WebSocket): RawSocket | undefined {
  // `_socket` is ws's underlying net.Socket; public in practice but untyped.
  return (ws as unknown as { _socket?: RawSocket })._socket;
}

/** Bytes in a received frame, however ws delivered it. */
export function frameSize(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

/** A received frame as text (UTF-8). */
export function frameText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString();
  return Buffer.from(data as ArrayBuffer).toString();
}

export class WebSocketTransport implements Transport<string, WsFrame> {
  constructor(private readonly ws: WebSocket) {}

  attach(sink: TransportSink<WsFrame>): void {
    this.ws.on('message', (data, binary) => sink.receive({ data, binary }, frameSize(data)));
    this.ws.on('pong', () => sink.heard());
    this.ws.on('close', () => sink.transportClosed());
    // Errors end in 'close'; ws would throw an unhandled one otherwise.
    this.ws.on('error', () => {});
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  sizeOf(frame: string): number {
    return Buffer.byteLength(frame);
  }

  send(frame: string): void {
    this.sendBatch([frame], [Buffer.byteLength(frame)]);
  }

  /**
   * Writes the frames as one buffer of complete, unmasked text frames
   * (RFC 6455 §5.2): one system call and one copy, instead of ws's two
   * buffers per frame. Safe because the server never compresses (no
   * permessage-deflate), so ws has nothing of its own queued in between.
   */
  sendBatch(frames: readonly string[], sizes: readonly number[]): void {
    const ws = this.ws;
    if (ws.readyState !== 1) return;
    const raw = socketOf(ws);
    if (!raw || raw.destroyed) return;
    let total = 0;
    for (const n of sizes) total += n + (n < 126 ? 2 : n < 65536 ? 4 : 10);
    const buf = Buffer.allocUnsafe(total);
    let at = 0;
    for (let i = 0; i < frames.length; i++) {
      const n = sizes[i]!;
      buf[at++] = 0x81; // FIN, text
      if (n < 126) {
        buf[at++] = n;
      } else if (n < 65536) {
        buf[at++] = 126;
        buf.writeUInt16BE(n, at);
        at += 2;
      } else {
        buf[at++] = 127;
        buf.writeUInt32BE(Math.floor(n / 2 ** 32), at);
        buf.writeUInt32BE(n >>> 0, at + 4);
        at += 8;
      }
      at += buf.write(frames[i]!, at, 'utf8');
    }
    raw.write(buf);
  }

  /** Sends a close frame (the reason cut to the 123 bytes a close frame allows) after what was sent. */
  close(code: number, reason: string): void {
    let r = reason;
    while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
    this.ws.close(code, r);
  }

  ping(): void {
    if (this.ws.readyState === 1) this.ws.ping();
  }
}
