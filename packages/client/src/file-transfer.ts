// Peer-to-peer file transfer, Galène's protocol: the two clients exchange
// `invite`, `offer`, `answer`, `ice` and `cancel` through the server (as
// `usermessage` of kind `filetransfer`), then the bytes go directly between
// them over one reliable data channel labelled `file`, in chunks of at most
// 16384 bytes. The receiver offers (it creates the channel); when it has
// every byte it sends the text `done`, and the sender tears down.
//
// State machine of a TransferredFile (the `state` field):
//   '' → inviting → connecting → connected → done → closed
//   any state → cancelled → closed
import type { FileTransferValue } from '@atrium/protocol/galene';
import { AtriumClientError, describeError } from './errors.ts';
import { Negotiator, candidateForWire } from './negotiator.ts';
import type { ServerConnection } from './server-connection.ts';

export type TransferState = '' | 'inviting' | 'connecting' | 'connected' | 'done' | 'cancelled' | 'closed';

/** Where a transfer stands, given with `connected` events as bytes move. */
export interface TransferProgress {
  /** Bytes sent (upload) or received (download) so far. */
  datalen: number;
  /** Size of the file in bytes. */
  size: number;
}

/**
 * What comes with an `onevent` call: progress (`TransferProgress`) with
 * `connected`, the file (`Blob`) with a download's `done`, the reason
 * (`string` or `Error`) with `cancelled`; nothing otherwise.
 */
export type TransferEventData = TransferProgress | Blob | string | Error;

/** The arguments of `onevent`, state by state. */
export type TransferEvent =
  | [state: 'inviting', data: undefined]
  | [state: 'connecting', data: undefined]
  | [state: 'connected', data: TransferProgress | undefined]
  | [state: 'done', data: Blob | undefined]
  | [state: 'cancelled', data: string | Error | undefined]
  | [state: 'closed', data: undefined];

/** Largest data-channel message: base SCTP interoperates up to 16 KiB. */
export const CHUNK_BYTES = 16_384;
/** The sender pauses while more than this is buffered in the channel... */
const HIGH_WATER = 1024 * 1024;
/** ...and resumes when the buffer drains below this. */
const LOW_WATER = 256 * 1024;
/** How much of the file is read at a time. */
const READ_BYTES = 256 * 1024;
/** How long the receiver waits for the sender to hang up after `done`. */
const DONE_GRACE_MS = 2000;

const NEXT: Record<TransferState, readonly TransferState[]> = {
  '': ['inviting', 'cancelled'],
  inviting: ['connecting', 'cancelled'],
  connecting: ['connected', 'cancelled'],
  connected: ['connected', 'done', 'cancelled'],
  done: ['closed'],
  cancelled: ['closed'],
  closed: [],
};

/** Whether the state machine allows going from `from` to `to` (`connected` repeats for progress). */
export function canTransition(from: TransferState, to: TransferState): boolean {
  return NEXT[from].includes(to);
}

/** What a transfer needs from its ServerConnection; not part of the public API. */
export interface TransferHost {
  readonly connection: ServerConnection;
  /** Whether messages can reach the server now. */
  canSend(): boolean;
  /** Sends a file-transfer message to the peer `dest`; throws if the socket is not open. */
  send(dest: string, value: FileTransferValue): void;
  createPeerConnection(): RTCPeerConnection;
  /** The transfer is over: forget it. */
  forget(f: TransferredFile): void;
}

export interface TransferInit {
  userid: string;
  id: string;
  up: boolean;
  username: string | undefined;
  name: string;
  mimetype: string;
  size: number;
}

export class TransferredFile {
  /** The id of the peer. */
  readonly userid: string;
  /** The id of this transfer (chosen by the sender). */
  readonly id: string;
  /** True for an upload. */
  readonly up: boolean;
  /** The peer's username. */
  readonly username: string | undefined;
  readonly name: string;
  readonly mimetype: string;
  /** Size of the file in bytes, as announced. */
  readonly size: number;
  state: TransferState = '';
  /** Negotiated file-transfer protocol version ("1"). */
  version: string | null = null;
  /** Bytes sent or received so far. */
  datalen = 0;
  /** Uploads: the file being sent. */
  file: Blob | null = null;
  pc: RTCPeerConnection | null = null;
  dc: RTCDataChannel | null = null;
  /** Free for the application; the SDK does not touch it. */
  userdata: Record<string, unknown> = {};
  /**
   * Called on every state change, and repeatedly in `connected` as bytes
   * move. A download's `done` event carries the file as a Blob.
   */
  onevent: ((this: TransferredFile, state: TransferState, data?: TransferEventData) => void) | null = null;

  private negotiator: Negotiator | null = null;
  private chunks: ArrayBuffer[] = [];

  /** Transfers are made by `ServerConnection.sendFile` and by invitations from peers. */
  constructor(
    private readonly host: TransferHost,
    init: TransferInit,
  ) {
    this.userid = init.userid;
    this.id = init.id;
    this.up = init.up;
    this.username = init.username;
    this.name = init.name;
    this.mimetype = init.mimetype;
    this.size = init.size;
  }

  get sc(): ServerConnection {
    return this.host.connection;
  }

  /** The key of this transfer in `ServerConnection.transferredFiles`. */
  fullid(): string {
    return `${this.userid}-${this.id}`;
  }

  /** Downloads: accepts the file; bytes start flowing once connected. */
  async receive(): Promise<void> {
    if (this.up) throw new AtriumClientError('bad-argument', 'receive() is for downloads; an upload starts when the peer accepts');
    if (this.pc || this.state !== 'inviting') throw new AtriumClientError('bad-argument', `receive() needs a transfer in state "inviting", not "${this.state || '(new)'}"`);
    this.version ??= '1';
    const pc = this.host.createPeerConnection();
    this.pc = pc;
    this.event('connecting', undefined);
    this.negotiator = new Negotiator(
      pc,
      'offerer',
      {
        canSend: () => this.host.canSend(),
        sendDescription: (_type, sdp) => this.host.send(this.userid, { type: 'offer', version: [this.version ?? '1'], id: this.id, sdp }),
        sendCandidate: (c) => this.host.send(this.userid, { type: 'ice', id: this.id, candidate: candidateForWire(c) }),
      },
      {
        onerror: (e) => this.cancel(asError(e)),
        onnegotiated: () => {
          if (this.state === 'connecting') this.event('connected', this.progress());
        },
      },
    );
    const dc = pc.createDataChannel('file');
    dc.binaryType = 'arraybuffer';
    this.dc = dc;
    this.chunks = [];
    this.datalen = 0;
    dc.onmessage = (e: MessageEvent<unknown>) => this.receiveData(e.data);
    dc.onclose = () => this.cancel('the sender closed the connection');
    dc.onerror = (e) => this.cancel(channelError(e));
  }

  /**
   * Cancels the transfer (or refuses an invitation); the peer is told
   * unless nothing was sent yet. Ends in `cancelled` then `closed`.
   */
  cancel(message?: string | Error): void {
    if (this.state === 'closed') return;
    if (this.state !== '' && this.state !== 'done' && this.state !== 'cancelled' && this.host.canSend()) {
      const m: FileTransferValue = { type: 'cancel', id: this.id };
      if (message !== undefined) m.message = describeError(message);
      try {
        this.host.send(this.userid, m);
      } catch {
        /* the peer will see the data channel close */
      }
    }
    if (this.state !== 'done' && this.state !== 'cancelled') this.event('cancelled', message);
    this.close();
  }

  /** Ends the transfer without telling the peer (the peer left, or told us it cancelled). */
  fail(message?: string | Error): void {
    if (this.state === 'done' || this.state === 'cancelled' || this.state === 'closed') return;
    this.event('cancelled', message);
    this.close();
  }

  /** Releases the connection; use `cancel` to stop a transfer. */
  close(): void {
    if (this.state === 'closed') return;
    if (this.state !== 'done' && this.state !== 'cancelled') {
      this.event('cancelled', 'closed');
    }
    const dc = this.dc;
    if (dc) {
      dc.onclose = null;
      dc.onerror = null;
      dc.onmessage = null;
      dc.onbufferedamountlow = null;
    }
    this.negotiator?.close();
    this.pc?.close();
    this.negotiator = null;
    this.dc = null;
    this.pc = null;
    this.chunks = [];
    this.host.forget(this);
    this.event('closed', undefined);
  }

  // -------------------------------------------------------------------
  // Used by ServerConnection.

  /** @internal Uploads: announces the file to the peer. */
  invite(): void {
    this.host.send(this.userid, { type: 'invite', version: ['1'], id: this.id, name: this.name, size: this.size, mimetype: this.mimetype });
    this.event('inviting', undefined);
  }

  /** @internal Downloads: the invitation arrived; the application decides next. */
  invited(version: string): void {
    this.version = version;
    this.event('inviting', undefined);
  }

  /** @internal A message of the file-transfer protocol from the peer. */
  gotMessage(m: FileTransferValue): void {
    switch (m.type) {
      case 'offer':
        if (!this.up || this.pc || this.state !== 'inviting') return this.cancel(new AtriumClientError('file-transfer', 'unexpected offer for this file transfer'));
        this.version = '1';
        this.answer(m.sdp);
        return;
      case 'answer':
        if (this.up || !this.negotiator) return this.cancel(new AtriumClientError('file-transfer', 'unexpected answer for this file transfer'));
        this.negotiator.remoteAnswer(m.sdp).catch((e) => this.cancel(asError(e)));
        return;
      case 'ice':
        // A null candidate marks the end of the peer's gathering: nothing to add.
        if (m.candidate) this.negotiator?.remoteCandidate(m.candidate);
        return;
      case 'cancel':
        this.fail(m.message ?? 'the peer cancelled the transfer');
        if (this.state !== 'closed') this.close();
        return;
      case 'invite':
        return;
    }
  }

  // -------------------------------------------------------------------

  /** Uploads: the receiver's offer; answer it and send once the channel opens. */
  private answer(sdp: string): void {
    const pc = this.host.createPeerConnection();
    this.pc = pc;
    this.event('connecting', undefined);
    this.negotiator = new Negotiator(
      pc,
      'answerer',
      {
        canSend: () => this.host.canSend(),
        sendDescription: (_type, answer) => this.host.send(this.userid, { type: 'answer', id: this.id, sdp: answer }),
        sendCandidate: (c) => this.host.send(this.userid, { type: 'ice', id: this.id, candidate: candidateForWire(c) }),
      },
      {
        onerror: (e) => this.cancel(asError(e)),
        onnegotiated: () => {
          if (this.state === 'connecting') this.event('connected', this.progress());
        },
      },
    );
    pc.ondatachannel = (e) => {
      if (this.dc) return this.cancel(new AtriumClientError('file-transfer', 'the receiver opened a second data channel'));
      const dc = e.channel;
      this.dc = dc;
      dc.binaryType = 'arraybuffer';
      dc.onclose = () => this.cancel('the receiver closed the connection');
      dc.onerror = (ev) => this.cancel(channelError(ev));
      dc.onmessage = (ev: MessageEvent<unknown>) => {
        if (ev.data === 'done' && this.datalen === this.size) {
          this.event('done', undefined);
          this.close();
        } else {
          this.cancel(new AtriumClientError('file-transfer', 'unexpected data from the receiver'));
        }
      };
      const start = () => void this.send(dc).catch((err) => this.cancel(asError(err)));
      if (dc.readyState === 'open') start();
      else dc.addEventListener('open', start, { once: true });
    };
    this.negotiator.remoteOffer(sdp).catch((e) => this.cancel(asError(e)));
  }

  /** Uploads: streams the file into the channel, pausing while its buffer is full. */
  private async send(dc: RTCDataChannel): Promise<void> {
    const file = this.file;
    if (!file) throw new AtriumClientError('file-transfer', 'there is no file to send');
    dc.bufferedAmountLowThreshold = LOW_WATER;
    for (let offset = 0; offset < file.size; offset += READ_BYTES) {
      const block = await file.slice(offset, offset + READ_BYTES).arrayBuffer();
      for (let i = 0; i < block.byteLength; i += CHUNK_BYTES) {
        if (this.dc !== dc) return;
        while (dc.bufferedAmount > HIGH_WATER) {
          await drained(dc);
          if (this.dc !== dc) return;
        }
        const n = Math.min(CHUNK_BYTES, block.byteLength - i);
        dc.send(new Uint8Array(block, i, n));
        this.datalen += n;
        this.event('connected', this.progress());
      }
    }
  }

  /** Downloads: one chunk arrived. */
  private receiveData(data: unknown): void {
    if (!(data instanceof ArrayBuffer)) {
      this.cancel(new AtriumClientError('file-transfer', 'the sender sent something other than file data'));
      return;
    }
    this.chunks.push(data);
    this.datalen += data.byteLength;
    if (this.datalen < this.size) {
      this.event('connected', this.progress());
      return;
    }
    const dc = this.dc;
    if (!dc) return;
    dc.onmessage = null;
    if (this.datalen !== this.size) {
      this.cancel(new AtriumClientError('file-transfer', `received ${this.datalen} bytes for a file of ${this.size}`));
      return;
    }
    const blob = new Blob(this.chunks, { type: this.mimetype });
    this.chunks = [];
    this.event('connected', this.progress());
    this.event('done', blob);
    // Tell the sender, then wait (briefly) for it to hang up.
    const finish = () => {
      clearTimeout(timer);
      this.close();
    };
    const timer = setTimeout(finish, DONE_GRACE_MS);
    dc.onclose = finish;
    dc.onerror = finish;
    try {
      dc.send('done');
    } catch {
      finish();
    }
  }

  private progress(): TransferProgress {
    return { datalen: this.datalen, size: this.size };
  }

  /** Moves the state machine and tells the application; refuses moves it does not allow. */
  private event(...ev: TransferEvent): void {
    const [state] = ev;
    if (!canTransition(this.state, state)) {
      console.warn(`atrium: file transfer ${this.id} cannot go from "${this.state}" to "${state}"`);
      return;
    }
    this.state = state;
    const cb = this.onevent;
    if (!cb) return;
    try {
      cb.call(this, ev[0], ev[1]);
    } catch (e) {
      console.error('atrium: an onevent callback threw:', e);
    }
  }
}

function drained(dc: RTCDataChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      dc.removeEventListener('bufferedamountlow', done);
      dc.removeEventListener('close', done);
      resolve();
    };
    dc.addEventListener('bufferedamountlow', done);
    dc.addEventListener('close', done);
  });
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new AtriumClientError('file-transfer', describeError(e));
}

function channelError(e: Event): Error {
  const err = (e as Event & { error?: unknown }).error;
  return err instanceof Error ? err : new AtriumClientError('file-transfer', 'the data channel failed');
}
