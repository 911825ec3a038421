// WindowPeerConnection: sends MediaStreams from one window of an application
// to another (a mini "always on top" window, a second screen, a pop-out), in
// the shape of electron-peer-connection (seed 000): `attachStream`,
// `removeStream`, `sendStream(receiverName)`, `onReceivedStream`. Each window
// makes one, named; windows find each other by name over a relay channel.
//
// Per peer window it keeps one session: a direct hand-over of the stream
// objects when both windows share a renderer (see direct.ts), otherwise an
// RTCPeerConnection with host candidates only, signalled over the relay
// (see rtc-session.ts). Any number of streams may be attached, removed or
// replaced at any time, by either side.
import { createBroadcastRelay } from './broadcast-relay.ts';
import { DirectSession, directoryOf, type DirectEndpoint, findDirect } from './direct.ts';
import { TypedEmitter } from '../emitter.ts';
import { describe, WindowRelayError } from './errors.ts';
import { asRelayMessage, MAX_NAME_LENGTH, type RelayChannel, type RelayMessage } from './relay.ts';
import { RtcSession } from './rtc-session.ts';
import type { CloseReason, Session, SessionHost, StreamInfo, Via } from './session.ts';

export interface WindowPeerConnectionOptions {
  /**
   * How signalling reaches other windows. Default: a BroadcastChannel relay
   * (same-origin pages of one browser profile), closed with this object. In
   * Electron pass `createIpcRendererRelay(ipcRenderer)` (or what a preload
   * exposes).
   */
  relay?: RelayChannel;
  /** Hand streams over directly to windows of the same renderer (default true). */
  direct?: boolean;
  /** Whether to take a connection from `peer` (default: from anyone). */
  accept?: (peer: string) => boolean;
  /** How long `sendStream` waits for the receiver to answer (default 10 s). */
  connectTimeoutMs?: number;
  /** The window this runs in (default: the global `window`), for `pagehide` and the direct path. */
  window?: Window;
}

export interface WindowPeerConnectionEvents {
  /** A stream arrived from a peer window. */
  stream: [stream: MediaStream, info: StreamInfo];
  /** A stream the peer sent is gone (removed, replaced, or the session closed); its tracks are stopped. */
  streamremoved: [stream: MediaStream, info: StreamInfo];
  /** The session with a peer window ended; streams to and from it are stopped. */
  close: [info: { peer: string; reason: CloseReason }];
  /** Something went wrong that no promise reports (negotiation, a malformed message). */
  error: [error: WindowRelayError, peer: string | undefined];
}

export interface PeerInfo {
  name: string;
  via: Via;
  /** `connecting` until the peer answered. */
  state: 'connecting' | 'open';
  /** Whether attached streams are sent to this peer. */
  sending: boolean;
  /** WebRTC sessions: the peer connection's state. */
  connectionState?: RTCPeerConnectionState;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

function newInstanceId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

const isMediaStream = (v: unknown): v is MediaStream => v !== null && typeof v === 'object' && typeof (v as MediaStream).getTracks === 'function' && typeof (v as MediaStream).id === 'string';

export class WindowPeerConnection extends TypedEmitter<WindowPeerConnectionEvents> implements SessionHost {
  /** This window's name on the relay (the seed's `windowName`). */
  readonly name: string;
  /** Identifies this instance; a reloaded window gets a new one. */
  readonly inst = newInstanceId();
  readonly connectTimeoutMs: number;
  private readonly relay: RelayChannel | undefined;
  private readonly ownsRelay: boolean;
  private readonly unsubscribe: () => void;
  private readonly attached = new Set<MediaStream>();
  private readonly sessions = new Map<string, Session>();
  private readonly accept: (peer: string) => boolean;
  private readonly win: Window | undefined;
  private readonly directory: Map<string, DirectEndpoint> | undefined;
  private readonly endpoint: DirectEndpoint;
  private closed = false;
  private readonly onPageHide = () => this.close();

  constructor(windowName: string, options: WindowPeerConnectionOptions = {}) {
    super();
    if (typeof windowName !== 'string' || windowName.length === 0 || windowName.length > MAX_NAME_LENGTH) {
      throw new WindowRelayError('bad-argument', `a WindowPeerConnection needs a window name of 1 to ${MAX_NAME_LENGTH} characters`);
    }
    this.name = windowName;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.accept = options.accept ?? (() => true);
    this.win = options.window ?? (typeof window === 'undefined' ? undefined : window);
    if (options.relay) {
      this.relay = options.relay;
      this.ownsRelay = false;
    } else if (typeof BroadcastChannel === 'function') {
      this.relay = createBroadcastRelay();
      this.ownsRelay = true;
    } else {
      this.ownsRelay = false;
    }
    this.unsubscribe = this.relay ? this.relay.onMessage((m) => this.onRelay(m)) : () => {};
    this.endpoint = this.makeEndpoint();
    if (options.direct !== false && this.win) {
      this.directory = directoryOf(this.win);
      this.directory.set(this.name, this.endpoint);
    }
    if (!this.relay && !this.directory) throw new WindowRelayError('bad-argument', 'no relay given and no BroadcastChannel here: pass options.relay');
    this.win?.addEventListener('pagehide', this.onPageHide);
  }

  /** Adds a stream to send to every window `sendStream` was called for (now and later). */
  attachStream(stream: MediaStream): void {
    this.assertOpen();
    if (!isMediaStream(stream)) throw new WindowRelayError('bad-argument', 'attachStream needs a MediaStream');
    if (this.attached.has(stream)) return;
    this.attached.add(stream);
    for (const s of this.sessions.values()) if (s.sending) s.addStream(stream);
  }

  /** Stops sending `stream`, or every attached stream when none is given (the seed's one-stream form). */
  removeStream(stream?: MediaStream): void {
    const targets = stream ? [stream] : [...this.attached];
    for (const t of targets) {
      if (!this.attached.delete(t)) continue;
      for (const s of this.sessions.values()) s.removeStream(t);
    }
  }

  /** Sends `next` in place of `previous` (one renegotiation on WebRTC). */
  replaceStream(previous: MediaStream, next: MediaStream): void {
    this.assertOpen();
    if (!isMediaStream(next)) throw new WindowRelayError('bad-argument', 'replaceStream needs a MediaStream to send');
    this.removeStream(previous);
    this.attachStream(next);
  }

  /** The streams attached with attachStream. */
  attachedStreams(): MediaStream[] {
    return [...this.attached];
  }

  /**
   * Sends the attached streams (and those attached later) to the window
   * named `receiverName`: directly if it shares this renderer, else over
   * WebRTC. Resolves once the receiver answered; rejects with `unreachable`,
   * `refused` or `closed`.
   */
  sendStream(receiverName: string): Promise<void> {
    try {
      this.assertOpen();
      if (typeof receiverName !== 'string' || receiverName.length === 0 || receiverName.length > MAX_NAME_LENGTH) throw new WindowRelayError('bad-argument', 'sendStream needs the name of a window');
      if (receiverName === this.name) throw new WindowRelayError('bad-argument', `"${receiverName}" is this window's own name`);
    } catch (e) {
      return Promise.reject(e);
    }
    let s = this.sessions.get(receiverName);
    if (!s) {
      s = this.connectDirect(receiverName) ?? this.connectRelay(receiverName);
      if (!s) return Promise.reject(new WindowRelayError('unreachable', `window "${receiverName}" is not in this renderer and there is no relay`));
    }
    s.sending = true;
    for (const stream of this.attached) s.addStream(stream);
    return s.ready;
  }

  /** The seed's callback form of the `stream` event; returns a function that removes it. */
  onReceivedStream(callback: (stream: MediaStream, info: StreamInfo) => void): () => void {
    return this.on('stream', callback);
  }

  /** The peer windows this one has a session with. */
  peers(): PeerInfo[] {
    return [...this.sessions.values()].map((s) => ({
      name: s.peer,
      via: s.via,
      state: s.isOpen ? 'open' : 'connecting',
      sending: s.sending,
      ...(s instanceof RtcSession ? { connectionState: s.pc.connectionState } : {}),
    }));
  }

  /** The RTCPeerConnection to `peer`, for stats and diagnostics (undefined on the direct path). */
  connection(peer: string): RTCPeerConnection | undefined {
    const s = this.sessions.get(peer);
    return s instanceof RtcSession ? s.pc : undefined;
  }

  /** Ends the session with one peer window (it gets `close` with reason `remote`). */
  closePeer(peer: string): void {
    this.sessions.get(peer)?.close('local', true);
  }

  /** Ends every session, leaves the relay and the directory. Attached streams are the application's: they keep running. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sessions.values()]) s.close('local', true);
    this.attached.clear();
    this.unsubscribe();
    if (this.ownsRelay) this.relay?.close?.();
    if (this.directory?.get(this.name) === this.endpoint) this.directory.delete(this.name);
    this.win?.removeEventListener('pagehide', this.onPageHide);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // --- SessionHost -------------------------------------------------------

  /** @internal */
  send(peer: string, type: string, payload: Record<string, unknown>, to?: string): void {
    if (!this.relay) return;
    const body = to === undefined ? { inst: this.inst, ...payload } : { inst: this.inst, to, ...payload };
    const message: RelayMessage = [this.name, peer, type, JSON.stringify(body)];
    try {
      this.relay.send(message);
    } catch (e) {
      this.report(new WindowRelayError('unreachable', `could not send "${type}" to "${peer}" over the relay: ${describe(e)}`, { cause: e }), peer);
    }
  }

  /** @internal */
  streamArrived(session: Session, stream: MediaStream): void {
    if (this.sessions.get(session.peer) === session) this.emit('stream', stream, { peer: session.peer, via: session.via });
  }

  /** @internal */
  streamGone(session: Session, stream: MediaStream): void {
    this.emit('streamremoved', stream, { peer: session.peer, via: session.via });
  }

  /** @internal */
  sessionClosed(session: Session, reason: CloseReason, announce: boolean): void {
    if (this.sessions.get(session.peer) === session) this.sessions.delete(session.peer);
    if (announce) this.emit('close', { peer: session.peer, reason });
  }

  /** @internal */
  report(error: WindowRelayError, peer: string | undefined): void {
    this.emit('error', error, peer);
  }

  // -----------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new WindowRelayError('closed', `WindowPeerConnection "${this.name}" is closed`);
  }

  private connectDirect(peer: string): DirectSession | undefined {
    if (!this.directory) return undefined;
    const remote = findDirect(this.directory, peer, this.endpoint);
    if (!remote) return undefined;
    const previous = this.sessions.get(peer);
    // Listed before connecting: the peer may hand streams back at once.
    const session = new DirectSession(this, peer, remote);
    this.sessions.set(peer, session);
    let accepted = false;
    try {
      accepted = remote.connect(this.endpoint);
    } catch {
      accepted = false;
    }
    if (accepted) return session;
    if (previous) this.sessions.set(peer, previous);
    else this.sessions.delete(peer);
    return undefined;
  }

  private connectRelay(peer: string): RtcSession | undefined {
    if (!this.relay) return undefined;
    const session = new RtcSession(this, peer, undefined, (s) => this.preferDirect(s));
    this.sessions.set(peer, session);
    return session;
  }

  /** While saying hello: if the peer has meanwhile appeared in this renderer, switch to the direct path. */
  private preferDirect(s: RtcSession): void {
    if (!this.directory || this.sessions.get(s.peer) !== s) return;
    const direct = this.connectDirect(s.peer);
    if (!direct) return;
    direct.sending = s.sending;
    if (direct.sending) for (const stream of this.attached) direct.addStream(stream);
    // The caller of sendStream waits on the hello session: let it see the direct one open.
    s.handOver(direct.ready);
    // Tells the peer's relay side to drop a session our hello may have started.
    s.close('replaced', true, false);
  }

  private onRelay(message: RelayMessage): void {
    // Relays an application wrote itself (e.g. in an Electron preload) may pass anything on.
    const m = asRelayMessage(message);
    if (!m) return;
    const [sender, receiver, type, json] = m;
    if (this.closed || receiver !== this.name || sender === this.name) return;
    let body: unknown;
    try {
      body = JSON.parse(json);
    } catch {
      body = undefined;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      this.report(new WindowRelayError('bad-message', `dropped a "${type}" message from "${sender}" whose payload is not a JSON object`), sender);
      return;
    }
    const b = body as Record<string, unknown>;
    const inst = typeof b.inst === 'string' ? b.inst : undefined;
    const to = typeof b.to === 'string' ? b.to : undefined;
    // Addressed to an earlier instance of this window (before a reload).
    if (to !== undefined && to !== this.inst) return;
    const s = this.sessions.get(sender);
    switch (type) {
      case 'hello':
        if (inst) this.onHello(sender, inst, s);
        return;
      case 'welcome':
        if (s instanceof RtcSession && inst && to === this.inst) s.welcomed(inst);
        return;
      case 'end':
        if (!(s instanceof RtcSession)) return;
        if (s.remoteInst === undefined) {
          if (to === this.inst && b.reason === 'refused') s.refused();
        } else if (inst === undefined || inst === s.remoteInst) {
          s.close(inst === undefined ? 'gone' : 'remote', false);
        }
        return;
      default:
        if (s instanceof RtcSession && inst !== undefined && inst === s.remoteInst) s.signal(type, b);
    }
  }

  private onHello(peer: string, inst: string, s: Session | undefined): void {
    if (s instanceof RtcSession && (s.remoteInst === undefined || s.remoteInst === inst)) {
      // Our own hello crossed theirs, or they repeat theirs.
      s.welcome(inst);
      return;
    }
    if (s && s.remoteInst === inst) return;
    // A new instance of the peer (its window reloaded): the old session is stale.
    s?.close('replaced', false);
    if (!this.accept(peer)) {
      this.send(peer, 'end', { reason: 'refused' }, inst);
      return;
    }
    const session = new RtcSession(this, peer, inst);
    this.sessions.set(peer, session);
    session.welcome(inst);
  }

  private makeEndpoint(): DirectEndpoint {
    const directSession = (fromInst: string): DirectSession | undefined => {
      for (const s of this.sessions.values()) if (s instanceof DirectSession && s.remoteInst === fromInst) return s;
      return undefined;
    };
    return {
      name: this.name,
      inst: this.inst,
      alive: () => !this.closed && !(this.win?.closed ?? false),
      connect: (from) => {
        if (this.closed || !this.accept(from.name)) return false;
        const existing = this.sessions.get(from.name);
        if (existing instanceof DirectSession && existing.remoteInst === from.inst) return true;
        // Any other session with that window is superseded by the direct link.
        existing?.close('replaced', false, existing.isOpen && existing.via === 'direct');
        this.sessions.set(from.name, new DirectSession(this, from.name, from));
        return true;
      },
      deliver: (fromInst, stream) => directSession(fromInst)?.received(stream),
      withdraw: (fromInst, stream) => directSession(fromInst)?.withdrawn(stream),
      end: (fromInst) => directSession(fromInst)?.close('remote', false),
    };
  }
}
