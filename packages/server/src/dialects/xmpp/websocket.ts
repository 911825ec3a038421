// XMPP over WebSocket (RFC 7395): each text frame is one complete element;
// the stream opens and restarts with <open/> and ends with <close/> in the
// framing namespace. Liveness uses WebSocket pings, which browsers answer
// by themselves (RFC 7395 §3.4 leaves whitespace keep-alives out).
import type { WebSocket } from 'ws';
import type { LivenessMonitor, LivePeer } from '../../transport/liveness.ts';
import { Outbox, WebSocketTransport, frameSize } from '../kit/index.ts';
import type { Place } from '../../http/place.ts';
import type { XmppContext } from './context.ts';
import { NS } from './stanza.ts';
import { type StreamTransport, XmppStream } from './stream.ts';
import { type Element, XML_LIMITS, XmlError, attr, el, parseElement } from './xml.ts';

/** WebSocket close codes: normal after a stream close or error; 1008 for policy; 1009 for an oversized frame. */
const CLOSE = { normal: 1000, goingAway: 1001, policy: 1008, tooLarge: 1009 } as const;

export class XmppWebSocket implements StreamTransport, LivePeer {
  readonly kind = 'websocket' as const;
  readonly stream: XmppStream;
  lastHeard = performance.now();
  private done = false;
  /** Batched output bounded in bytes (the kit's, until this dialect moves onto its connection shell). */
  private readonly outbox: Outbox<string>;
  private readonly transport: WebSocketTransport;

  constructor(
    private readonly ws: WebSocket,
    readonly place: Place,
    readonly urlToken: string | undefined,
    readonly address: string | undefined,
    ctx: XmppContext,
    private readonly liveness: LivenessMonitor,
  ) {
    this.transport = new WebSocketTransport(ws);
    this.outbox = new Outbox(this.transport);
    this.stream = new XmppStream(this, ctx);
    liveness.add(this);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('pong', () => {
      this.lastHeard = performance.now();
    });
    ws.on('close', () => this.gone());
    ws.on('error', (err) => ctx.log.debug({ err }, 'xmpp websocket error'));
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.lastHeard = performance.now();
    const stream = this.stream;
    if (stream.closed) return;
    const size = frameSize(data);
    if (size > XML_LIMITS.maxChars) return stream.fail('policy-violation', `a frame of ${size} bytes is over the ${XML_LIMITS.maxChars}-byte stanza limit`);
    if (isBinary) return stream.fail('bad-format', 'XMPP over WebSocket uses text frames only (RFC 7395 §3.2)');
    const text = data.toString();
    if (text.trim() === '') return;
    let e: Element;
    try {
      e = parseElement(text);
    } catch (err) {
      if (err instanceof XmlError) return stream.fail(err.condition, err.message);
      throw err;
    }
    if (e.getNS() === NS.framing) {
      if (e.getName() === 'open') return stream.open(attr(e, 'to'), attr(e, 'version'));
      if (e.getName() === 'close') return stream.clientClosed();
      return stream.fail('unsupported-stanza-type', `<${e.getName()}/> is not part of the WebSocket framing (only <open/> and <close/>)`);
    }
    if (e.getName() === 'stream' && e.getNS() === NS.stream) {
      return stream.fail('invalid-namespace', 'XMPP over WebSocket opens with <open xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>, not <stream:stream> (RFC 7395 §3.3.2)');
    }
    stream.receive(e);
  }

  // StreamTransport -----------------------------------------------------

  header(attrs: Record<string, string>): void {
    this.write(el('open', { xmlns: NS.framing, ...attrs }).toString(), true);
  }

  write(xml: string, urgent: boolean): boolean {
    if (this.done) return true;
    return this.outbox.push(xml, urgent);
  }

  fail(error: Element, reason: string): void {
    if (this.done) return;
    this.write(error.toString(), true);
    this.write(el('close', { xmlns: NS.framing }).toString(), true);
    const condition = error.children.find((c): c is Element => typeof c !== 'string')?.getName();
    this.finish(condition === 'policy-violation' ? CLOSE.policy : condition === 'system-shutdown' ? CLOSE.goingAway : CLOSE.normal, reason);
  }

  end(reason: string): void {
    if (this.done) return;
    this.write(el('close', { xmlns: NS.framing }).toString(), true);
    this.finish(CLOSE.normal, reason);
  }

  // LivePeer ------------------------------------------------------------

  ping(): void {
    if (this.ws.readyState === 1) this.ws.ping();
  }

  expire(): void {
    this.stream.fail('connection-timeout', 'nothing was heard from the client for 75 seconds');
  }

  // ---------------------------------------------------------------------

  private finish(code: number, reason: string): void {
    this.done = true;
    this.liveness.delete(this);
    // Let queued frames (the error, the close) leave before the close frame.
    this.outbox.flush();
    this.transport.close(code, reason);
  }

  private gone(): void {
    this.liveness.delete(this);
    this.outbox.discard();
    this.done = true;
    this.stream.transportLost();
  }
}
