// Runs inside the test pages (bundled with the window relay by pages.ts):
// a small application around one WindowPeerConnection that records what
// happens — streams received and removed, sessions closed, errors — plays
// every received video in a <video> element counting the frames it shows,
// and keeps references to peer connections and tracks so a test can look at
// them after a window closed.
import * as relay from '../../../../client/src/window/index.ts';
import type { StreamInfo, WindowPeerConnectionOptions } from '../../../../client/src/window/index.ts';

export interface Received {
  id: string;
  peer: string;
  via: string;
  kinds: string[];
  /** Frames the <video> element showed (requestVideoFrameCallback). */
  shown: number;
  removed: boolean;
  trackStates: string[];
  /** The <video> element: paused, readyState, videoWidth. */
  video?: [boolean, number, number];
}

export interface Snapshot {
  connectionState: string | null;
  /** readyState of the tracks this side sent to the peer (its clones). */
  sent: string[];
  /** readyState of the tracks received from the peer. */
  received: string[];
}

interface Held {
  pc?: RTCPeerConnection;
  sent: MediaStreamTrack[];
  received: MediaStreamTrack[];
}

/** Options of the page's WindowPeerConnection that survive JSON, plus `ipc`: use the Electron renderer relay over `window.ipcRenderer`. */
export type ProbeOptions = WindowPeerConnectionOptions & { ipc?: boolean };

type IpcListener = (event: unknown, ...args: unknown[]) => void;

/**
 * An `ipcRenderer` for a page driven by the Electron stand-in in the test
 * process: `send` goes out through the `__ipcSend` binding the test exposes,
 * and the test calls `__ipcDeliver` for what the main process sends.
 */
function installIpcRenderer(): relay.IpcRendererLike {
  const w = window as unknown as { __ipcSend(channel: string, args: unknown[]): Promise<void>; __ipcDeliver(channel: string, args: unknown[]): void };
  const listeners = new Map<string, Set<IpcListener>>();
  w.__ipcDeliver = (channel, args) => {
    for (const l of [...(listeners.get(channel) ?? [])]) l({ senderId: 0 }, ...args);
  };
  return {
    send: (channel, ...args) => void w.__ipcSend(channel, args),
    on(channel, listener) {
      if (!listeners.has(channel)) listeners.set(channel, new Set());
      listeners.get(channel)!.add(listener);
    },
    removeListener(channel, listener) {
      listeners.get(channel)?.delete(listener);
    },
  };
}

export class Probe {
  readonly wpc: relay.WindowPeerConnection;
  /** Everything that happened, in order, as short strings. */
  readonly log: string[] = [];
  readonly local = new Map<string, MediaStream>();
  readonly received = new Map<string, { stream: MediaStream; info: StreamInfo; shown: number; removed: boolean; tracks: MediaStreamTrack[]; video?: HTMLVideoElement }>();
  private readonly held = new Map<string, Held>();

  constructor(name: string, options: ProbeOptions = {}) {
    const { ipc, ...rest } = options;
    if (ipc) rest.relay = relay.createIpcRendererRelay(installIpcRenderer());
    this.wpc = new relay.WindowPeerConnection(name, rest);
    this.wpc.on('stream', (stream, info) => this.onStream(stream, info));
    this.wpc.on('streamremoved', (stream, info) => {
      const r = this.received.get(stream.id);
      if (r) r.removed = true;
      this.log.push(`removed ${info.peer} ${stream.id}`);
    });
    this.wpc.on('close', ({ peer, reason }) => this.log.push(`close ${peer} ${reason}`));
    this.wpc.on('error', (e, peer) => this.log.push(`error ${peer ?? '-'} ${e.code}: ${e.message}`));
  }

  /** A camera stream from the fake device, kept under `key`. */
  async camera(key: string, audio = false): Promise<string> {
    const s = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio });
    this.local.set(key, s);
    return s.id;
  }

  attach(key: string): void {
    this.wpc.attachStream(this.stream(key));
  }

  remove(key?: string): void {
    this.wpc.removeStream(key === undefined ? undefined : this.stream(key));
  }

  replace(previous: string, next: string): void {
    this.wpc.replaceStream(this.stream(previous), this.stream(next));
  }

  /** sendStream; resolves with "ok" or the error's code. */
  async send(peer: string): Promise<string> {
    try {
      await this.wpc.sendStream(peer);
      return 'ok';
    } catch (e) {
      return (e as relay.WindowRelayError).code ?? String(e);
    }
  }

  /** What happened to the picture-in-picture window armPictureInPicture opens. */
  readonly pip: { result?: string; frames: number; closed: boolean; view?: relay.PictureInPictureView } = { frames: 0, closed: false };

  /** Adds a button (#pip) whose click opens `key` in a Document Picture-in-Picture window, counting the frames it shows. */
  armPictureInPicture(key: string): void {
    const button = document.createElement('button');
    button.id = 'pip';
    button.textContent = 'Picture-in-picture';
    button.onclick = () => {
      relay.openPictureInPicture(this.stream(key), { width: 320, height: 240 }).then(
        (view) => {
          const dpip = (window as unknown as { documentPictureInPicture?: { window: Window | null } }).documentPictureInPicture;
          this.pip.result = view.window === dpip?.window ? 'opened' : 'opened, but not as documentPictureInPicture.window';
          this.pip.view = view;
          const count = () => {
            this.pip.frames++;
            view.video.requestVideoFrameCallback(count);
          };
          view.video.requestVideoFrameCallback(count);
          void view.closed.then(() => (this.pip.closed = true));
        },
        (e: relay.WindowRelayError) => (this.pip.result = `${e.code}: ${e.message}`),
      );
    };
    document.body.append(button);
  }

  /** readyState of the application's own tracks under `key`. */
  localStates(key: string): string[] {
    return this.stream(key)
      .getTracks()
      .map((t) => t.readyState);
  }

  receivedList(): Received[] {
    return [...this.received.values()].map((r) => ({
      id: r.stream.id,
      peer: r.info.peer,
      via: r.info.via,
      kinds: r.tracks.map((t) => t.kind).sort(),
      shown: r.shown,
      removed: r.removed,
      trackStates: r.tracks.map((t) => t.readyState),
      ...(r.video ? { video: [r.video.paused, r.video.readyState, r.video.videoWidth] as [boolean, number, number] } : {}),
    }));
  }

  /** framesDecoded per received stream id, from the peer connection's inbound-rtp stats. */
  async decoded(peer: string): Promise<Record<string, number>> {
    const pc = this.wpc.connection(peer);
    if (!pc) return {};
    const byTrack = new Map<string, string>();
    for (const r of this.received.values()) for (const t of r.tracks) byTrack.set(t.id, r.stream.id);
    const out: Record<string, number> = {};
    (await pc.getStats()).forEach((s: { type: string; kind?: string; trackIdentifier?: string; framesDecoded?: number }) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video' || !s.trackIdentifier) return;
      const id = byTrack.get(s.trackIdentifier);
      if (id) out[id] = Math.max(out[id] ?? 0, s.framesDecoded ?? 0);
    });
    return out;
  }

  /** Local and remote ICE candidate types of the selected pair, and the configured ICE servers. */
  async ice(peer: string): Promise<{ local?: string; remote?: string; iceServers: number }> {
    const pc = this.wpc.connection(peer);
    if (!pc) return { iceServers: -1 };
    const stats = new Map<string, Record<string, unknown>>();
    (await pc.getStats()).forEach((s: Record<string, unknown>) => {
      stats.set(s.id as string, s);
    });
    let pair: Record<string, unknown> | undefined;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId as string);
    });
    const local = pair ? stats.get(pair.localCandidateId as string) : undefined;
    const remote = pair ? stats.get(pair.remoteCandidateId as string) : undefined;
    return { local: local?.candidateType as string | undefined, remote: remote?.candidateType as string | undefined, iceServers: pc.getConfiguration().iceServers?.length ?? 0 };
  }

  /** Keeps the peer connection and the tracks exchanged with `peer`, to look at after it closes. */
  hold(peer: string): void {
    const pc = this.wpc.connection(peer);
    const received: MediaStreamTrack[] = [];
    for (const r of this.received.values()) if (r.info.peer === peer && !r.removed) received.push(...r.tracks);
    const sent: MediaStreamTrack[] = [];
    if (pc) for (const s of pc.getSenders()) if (s.track) sent.push(s.track);
    this.held.set(peer, { ...(pc ? { pc } : {}), sent, received });
  }

  /** What `hold(peer)` kept, as it is now. */
  heldState(peer: string): Snapshot {
    const h = this.held.get(peer);
    if (!h) throw new Error(`nothing held for ${peer}`);
    return { connectionState: h.pc?.connectionState ?? null, sent: h.sent.map((t) => t.readyState), received: h.received.map((t) => t.readyState) };
  }

  private stream(key: string): MediaStream {
    const s = this.local.get(key);
    if (!s) throw new Error(`no local stream ${key}`);
    return s;
  }

  private onStream(stream: MediaStream, info: StreamInfo): void {
    const rec: { stream: MediaStream; info: StreamInfo; shown: number; removed: boolean; tracks: MediaStreamTrack[]; video?: HTMLVideoElement } = {
      stream,
      info,
      shown: 0,
      removed: false,
      tracks: stream.getTracks(),
    };
    this.received.set(stream.id, rec);
    this.log.push(`stream ${info.peer} ${info.via} ${stream.id}`);
    if (stream.getVideoTracks().length === 0) return;
    const video = document.createElement('video');
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.width = 160;
    video.height = 120;
    video.srcObject = stream;
    rec.video = video;
    document.body.append(video);
    const count = () => {
      rec.shown++;
      video.requestVideoFrameCallback(count);
    };
    video.requestVideoFrameCallback(count);
    void video.play().catch(() => {});
  }
}

declare global {
  interface Window {
    Probe: typeof Probe;
    WindowRelay: typeof relay;
    p: Probe;
    /** Windows this page opened with openPopup, by name. */
    popups: Record<string, Window | null>;
    /** /pip.html: how Document Picture-in-Picture went without a user gesture. */
    pipNoGesture?: Promise<string>;
  }
}

window.Probe = Probe;
window.WindowRelay = relay;
