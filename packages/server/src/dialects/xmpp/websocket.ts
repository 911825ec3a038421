// XMPP over WebSocket (RFC 7395): the kit's WebSocket transport, with the
// framing's own ending — every close is preceded by <close/> in the framing
// namespace. Each text frame is one complete element, parsed by the
// connection; liveness uses WebSocket pings, which browsers answer by
// themselves (RFC 7395 leaves whitespace keep-alives out).
import type { WebSocket } from 'ws';
import { type TransportSink, WebSocketTransport, type WsFrame } from '../kit/index.ts';
import type { XmppIn, XmppTransport } from './connection.ts';
import { NS } from './stanza.ts';

const CLOSE_FRAME = `<close xmlns="${NS.framing}"/>`;

export class XmppWebSocketTransport implements XmppTransport {
  readonly kind = 'websocket' as const;
  private readonly ws: WebSocketTransport;

  constructor(socket: WebSocket) {
    this.ws = new WebSocketTransport(socket);
  }

  attach(sink: TransportSink<XmppIn>): void {
    this.ws.attach(sink as TransportSink<WsFrame>);
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  sizeOf(frame: string): number {
    return this.ws.sizeOf(frame);
  }

  send(frame: string): void {
    this.ws.send(frame);
  }

  sendBatch(frames: readonly string[], sizes: readonly number[]): void {
    this.ws.sendBatch(frames, sizes);
  }

  close(code: number, reason: string): void {
    this.ws.send(CLOSE_FRAME);
    this.ws.close(code, reason);
  }

  ping(): void {
    this.ws.ping();
  }
}
