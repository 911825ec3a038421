// RTCPool's "transceiver" contract, so any channel can carry ssp v2 to a
// Pool: an EventTarget with `send(type, data)` that dispatches every message
// from the server to itself as an event named like the message type, the
// payload in `detail` (a CustomEvent, as rtcpool's own transceivers and its
// documented XHR example do) or in `data` (a MessageEvent). `close()`, when
// present, is called on leaving. rtcpool's transceivers also dispatch
// `error` for a frame they could not read; this adapter reports it as a
// `bad-frame` error, and takes a `close` event as the channel going away.
//
//   class XhrTransceiver extends Transceiver { send(type, data) { ... } }
//   const pool = new Pool(new RtcPoolTransceiver(new XhrTransceiver(url)));
import { type ClientEvent, type ServerEventType, serverEventSchemas } from '@atrium/protocol/rtcpool';
import { MeshError } from './errors.ts';
import { RtcPoolSignaling } from './rtcpool-signaling.ts';

/** What RtcPoolTransceiver needs of a transceiver (rtcpool's own fit, and so does any EventTarget with `send`). */
export interface TransceiverLike extends EventTarget {
  send(type: string, data: unknown): void;
  close?(): void;
}

/** A base class for transceivers, as rtcpool's `signalling.transceiver`: implement `send`, dispatch what arrives. */
export abstract class Transceiver extends EventTarget implements TransceiverLike {
  abstract send(type: string, data: unknown): void;

  close(): void {}

  /** Dispatches one message from the server to this transceiver's listeners. */
  protected deliver(type: string, data: unknown): void {
    this.dispatchEvent(new CustomEvent(type, { detail: data }));
  }
}

/** The payload of a transceiver's event: `detail` of a CustomEvent, else `data` of a MessageEvent. */
function payload(e: Event): unknown {
  if ('detail' in e) return (e as CustomEvent<unknown>).detail;
  if ('data' in e) return (e as MessageEvent<unknown>).data;
  return undefined;
}

/** ssp v2 over a transceiver: `new Pool(new RtcPoolTransceiver(myTransceiver))`. */
export class RtcPoolTransceiver extends RtcPoolSignaling {
  private readonly subscriptions: [type: string, listener: (e: Event) => void][] = [];
  private attached = false;

  constructor(readonly transceiver: TransceiverLike) {
    super();
  }

  /** A transceiver is ready as it is given (rtcpool's buffer what they cannot send yet). */
  protected open(): Promise<void> {
    if (!this.attached) {
      this.attached = true;
      for (const type of Object.keys(serverEventSchemas) as ServerEventType[]) {
        this.listen(type, (e) => this.receive(type, payload(e)));
      }
      this.listen('error', (e) => {
        const detail = payload(e);
        const message =
          typeof detail === 'object' && detail !== null && typeof (detail as { message?: unknown }).message === 'string'
            ? (detail as { message: string }).message
            : 'the transceiver reported an error';
        this.emit('error', new MeshError('bad-frame', message));
      });
      this.listen('close', () => {
        this.detach();
        this.transportClosed('the transceiver closed');
      });
    }
    return Promise.resolve();
  }

  protected write(type: ClientEvent['type'], data: ClientEvent['data']): void {
    this.transceiver.send(type, data);
  }

  protected shut(): void {
    this.detach();
    this.transceiver.close?.();
  }

  private listen(type: string, listener: (e: Event) => void): void {
    this.transceiver.addEventListener(type, listener);
    this.subscriptions.push([type, listener]);
  }

  private detach(): void {
    for (const [type, listener] of this.subscriptions.splice(0)) this.transceiver.removeEventListener(type, listener);
  }
}
