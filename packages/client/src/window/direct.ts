// The same-renderer path: a window opened with `window.open` from a
// same-origin page lives in the same renderer as its opener, so the two can
// hand MediaStream objects to each other with no WebRTC at all (Jitsi's
// always-on-top window did this). Every WindowPeerConnection that allows it
// lists itself in a directory kept on the top-most same-origin window of its
// `opener` chain; `sendStream` looks the receiver up there first.
//
// The directory is found through `Symbol.for`, whose registry is shared by
// all the windows of one renderer, so it needs no global name.
import { WindowRelayError } from './errors.ts';
import { cloneStream, type CloseReason, type Session, type SessionHost, stopTracks } from './session.ts';

const DIRECTORY = Symbol.for('atrium.window-relay.directory');

/** What a WindowPeerConnection offers to others in its renderer. Calls may come from another window's realm. */
export interface DirectEndpoint {
  readonly name: string;
  readonly inst: string;
  /** Whether the WindowPeerConnection is open and its window not closed. */
  alive(): boolean;
  /** Another window starts a direct session with this one; false if refused. */
  connect(from: DirectEndpoint): boolean;
  deliver(fromInst: string, stream: MediaStream): void;
  withdraw(fromInst: string, stream: MediaStream): void;
  end(fromInst: string, reason: CloseReason): void;
}

type Directory = Map<string, DirectEndpoint>;

/** The top-most window of `win`'s opener chain that this script may use (same origin, open). */
function directoryRoot(win: Window): Window {
  let w = win;
  for (let depth = 0; depth < 32; depth++) {
    let next: Window | null;
    try {
      next = w.opener as Window | null;
      if (!next || next.closed) break;
      // Throws a SecurityError for a cross-origin opener.
      void next.location.href;
    } catch {
      break;
    }
    w = next;
  }
  return w;
}

export function directoryOf(win: Window): Directory {
  const root = directoryRoot(win) as unknown as Record<symbol, Directory | undefined>;
  let dir = root[DIRECTORY];
  if (!dir) {
    dir = new Map();
    Object.defineProperty(root, DIRECTORY, { value: dir, configurable: true });
  }
  return dir;
}

/** The peer's endpoint if it is reachable directly. */
export function findDirect(dir: Directory, peer: string, self: DirectEndpoint): DirectEndpoint | undefined {
  const ep = dir.get(peer);
  if (!ep || ep === self) return undefined;
  try {
    return ep.alive() ? ep : undefined;
  } catch {
    // Its window's realm is gone.
    return undefined;
  }
}

/** Runs `fn` after the caller's stack unwinds, so a peer window's handlers never run inside ours. */
const later = (fn: () => void) => void Promise.resolve().then(fn);

export class DirectSession implements Session {
  readonly via = 'direct' as const;
  sending = false;
  private closed = false;
  private readonly outgoing = new Map<MediaStream, MediaStream>();
  private readonly incoming = new Set<MediaStream>();

  constructor(
    private readonly host: SessionHost,
    readonly peer: string,
    readonly remote: DirectEndpoint,
  ) {}

  get remoteInst(): string {
    return this.remote.inst;
  }

  get ready(): Promise<void> {
    return this.closed ? Promise.reject(new WindowRelayError('closed', `the direct link to "${this.peer}" is closed`)) : Promise.resolve();
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  addStream(stream: MediaStream): void {
    if (this.closed || this.outgoing.has(stream)) return;
    const clone = cloneStream(stream);
    this.outgoing.set(stream, clone);
    this.call(() => this.remote.deliver(this.host.inst, clone));
  }

  removeStream(stream: MediaStream): void {
    const clone = this.outgoing.get(stream);
    if (!clone) return;
    this.outgoing.delete(stream);
    stopTracks(clone);
    this.call(() => this.remote.withdraw(this.host.inst, clone));
  }

  /** The peer handed us a stream. */
  received(stream: MediaStream): void {
    if (this.closed || this.incoming.has(stream)) return;
    this.incoming.add(stream);
    later(() => {
      if (this.incoming.has(stream)) this.host.streamArrived(this, stream);
    });
  }

  /** The peer took a stream back. */
  withdrawn(stream: MediaStream): void {
    if (!this.incoming.delete(stream)) return;
    stopTracks(stream);
    later(() => this.host.streamGone(this, stream));
  }

  close(reason: CloseReason, notify: boolean, announce = true): void {
    if (this.closed) return;
    this.closed = true;
    if (notify) this.call(() => this.remote.end(this.host.inst, reason));
    for (const clone of this.outgoing.values()) stopTracks(clone);
    this.outgoing.clear();
    const incoming = [...this.incoming];
    this.incoming.clear();
    for (const stream of incoming) {
      stopTracks(stream);
      this.host.streamGone(this, stream);
    }
    this.host.sessionClosed(this, reason, announce);
  }

  /** Calls into the peer's window, which may have gone away meanwhile. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch {
      if (!this.closed) this.close('remote', false);
    }
  }
}
