// What a WindowPeerConnection keeps per peer window: a session, carried
// either by an RTCPeerConnection signalled over the relay (rtc-session.ts) or
// by handing MediaStream objects over within one renderer (direct.ts). Both
// send clones of the attached streams, so closing a session can stop every
// track it sent without touching the application's own tracks.
import type { WindowRelayError } from './errors.ts';

/** How a peer's streams travel: WebRTC over loopback, or the MediaStream object itself. */
export type Via = 'webrtc' | 'direct';

/** Why a session with a peer ended. */
export type CloseReason =
  /** This side closed it (`close()`, `closePeer()`, or this page going away). */
  | 'local'
  /** The peer closed it, or its page went away. */
  | 'remote'
  /** The relay hub reported the peer's window destroyed or crashed. */
  | 'gone'
  /** ICE or DTLS failed. */
  | 'failed'
  /** The peer did not answer in time. */
  | 'unreachable'
  /** The peer turned the connection down. */
  | 'refused'
  /** A newer session with the same peer (a reloaded window, or a direct link) took its place. */
  | 'replaced';

export interface StreamInfo {
  /** The window the stream comes from. */
  peer: string;
  via: Via;
}

/** What sessions need from their WindowPeerConnection. */
export interface SessionHost {
  readonly name: string;
  /** This WindowPeerConnection's instance id (changes when a window reloads). */
  readonly inst: string;
  readonly connectTimeoutMs: number;
  /** Sends a relay message to `peer` with `{inst, to?, ...payload}` as JSON. */
  send(peer: string, type: string, payload: Record<string, unknown>, to?: string): void;
  streamArrived(session: Session, stream: MediaStream): void;
  streamGone(session: Session, stream: MediaStream): void;
  sessionClosed(session: Session, reason: CloseReason, announce: boolean): void;
  report(error: WindowRelayError, peer: string): void;
}

export interface Session {
  readonly peer: string;
  readonly via: Via;
  /** The peer's instance id, once known. */
  readonly remoteInst: string | undefined;
  /** `sendStream(peer)` was called: attached streams go to this peer. */
  sending: boolean;
  readonly isOpen: boolean;
  readonly isClosed: boolean;
  /** Settles when the peer has answered (or refused, or did not answer in time). */
  readonly ready: Promise<void>;
  addStream(stream: MediaStream): void;
  removeStream(stream: MediaStream): void;
  /** Ends the session: `notify` tells the peer; `announce` emits `close` to the application. */
  close(reason: CloseReason, notify: boolean, announce?: boolean): void;
}

/** A copy of the stream whose tracks the session owns and may stop. */
export function cloneStream(stream: MediaStream): MediaStream {
  return new MediaStream(stream.getTracks().map((t) => t.clone()));
}

export function stopTracks(stream: MediaStream): void {
  for (const t of stream.getTracks()) t.stop();
}

/** A promise with its settle functions, already guarded against "unhandled rejection". */
export function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void; settled: () => boolean } {
  let done = false;
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = () => {
      done = true;
      res();
    };
    reject = (e) => {
      done = true;
      rej(e);
    };
  });
  promise.catch(() => {});
  return { promise, resolve, reject, settled: () => done };
}
