// The messages between the threaded engine (main thread) and its media
// workers. Streams are named by a handle the main thread assigns, so two
// streams with the same id can never be confused. Everything here is
// structured-clone data: no class crosses the thread boundary.
import type { CodecName, CodecParameters, ConnectionState, DownRequest, IceCandidate, IceServer, SenderReport, SourceTrackOptions, StreamStats, TrackKind } from '../engine.ts';
import type { SrtpResume } from '../native/link.ts';
import type { WeriftEngineOptions } from '../werift/engine.ts';

/** What the worker is given at start (workerData). */
export interface WorkerSetup {
  index: number;
  /** werift: the JavaScript engine (threads); native: werift + the packet plane (processes). */
  kind: 'werift' | 'native';
  engine: WeriftEngineOptions;
  /** Native workers: the DTLS certificate to use — a replacement worker gets its predecessor's, so its peers keep their DTLS associations (see native/link.ts). */
  dtls?: DtlsKeys;
}

/** A DTLS certificate and its private key (PEM), as werift takes them. */
export interface DtlsKeys {
  certPem: string;
  keyPem: string;
  signatureHash: { hash: number; signature: number };
}

/** An up-track as the main thread mirrors it. */
export interface TrackInfo {
  id: string;
  kind: TrackKind;
  codec: CodecName | undefined;
  parameters: CodecParameters | undefined;
  layers: string[];
}

/** The error of a call on a stream the worker no longer has (it closed meanwhile). */
export const GONE = 'media worker: stream gone';

/** A method of a stream that returns a value (or needs its errors back). */
export type CallMethod = 'answer' | 'offer' | 'setAnswer' | 'addIceCandidate' | 'stats';

/** Why a tap ended (TrackSink.end). */
export type TapEnd = 'ended' | 'detached' | 'failed';

/** Main thread → worker. */
export type ToWorker =
  /** `resume` (native workers): the stream continues a dead worker's transport with these keys (native/link.ts). */
  | { op: 'createUp'; h: number; id: string; label: string; iceServers: IceServer[]; codecs?: CodecName[]; resume?: SrtpResume }
  | { op: 'createDown'; h: number; source: number; id: string; request: DownRequest; iceServers: IceServer[]; resume?: SrtpResume }
  | { op: 'call'; h: number; rid: number; method: CallMethod; args: unknown[] }
  | { op: 'setRequest'; h: number; request: DownRequest }
  | { op: 'requestKeyframe'; h: number }
  | { op: 'close'; h: number }
  /** Attaches a tap (numbered by the main thread) to track `track` of up-stream `h`. */
  | { op: 'tap'; h: number; track: string; tap: number; layers?: number[]; maxQueuedBytes?: number; maxDelayMs?: number }
  | { op: 'tapLayers'; tap: number; layers?: number[] }
  | { op: 'tapKeyframe'; tap: number; layer?: number }
  /** The main thread's sink took the tap's last batch: the next may come. */
  | { op: 'tapAck'; tap: number }
  | { op: 'untap'; tap: number }
  /** A source stream: its up-stream is handle `h` like any other. */
  | { op: 'createSource'; h: number; id: string; label: string; tracks: SourceTrackOptions[] }
  /** Packets for a source stream (see packets.ts), `tracks` naming the track indexes; answered by 'written'. */
  | { op: 'write'; h: number; batch: ArrayBuffer; tracks: string[] }
  | { op: 'probe'; rid: number; gc: boolean }
  /** Closes every stream (the engine shuts down); answered with a reply. */
  | { op: 'closeAll'; rid: number }
  /** Test hook: the worker throws from a timer, as a bug in werift would. */
  | { op: 'crash'; message: string }
  /** Test hook (native workers): a segmentation fault inside the addon, as a bug in native code would. */
  | { op: 'fault' };

/** Worker → main thread. */
export type FromWorker =
  | { ev: 'ready'; tid: number; pid: number; dtls?: DtlsKeys }
  /**
   * Native workers: what a replacement worker would need to continue a
   * stream's transport — its keys (the first report) and the plane's SRTP
   * state (then every second while it changes).
   */
  | { ev: 'srtp'; h: number; keys?: Omit<SrtpResume, 'state'>; state: number[] }
  | { ev: 'candidate'; h: number; candidate: IceCandidate }
  | { ev: 'tracks'; h: number; tracks: TrackInfo[]; added: string[] }
  | { ev: 'state'; h: number; state: ConnectionState }
  | { ev: 'renegotiate'; h: number }
  | { ev: 'close'; h: number; error?: string }
  /** A batch for a tap (see packets.ts); answered by 'tapAck'. */
  | { ev: 'packets'; tap: number; batch: ArrayBuffer; reports: SenderReport[]; dropped: number }
  | { ev: 'tapEnd'; tap: number; reason: TapEnd }
  /** A source stream's 'keyframe' event. */
  | { ev: 'keyframe'; h: number; track: string; layer: number }
  /** A source stream's write batch was taken. */
  | { ev: 'written'; h: number }
  | { ev: 'reply'; rid: number; ok: true; value: unknown }
  | { ev: 'reply'; rid: number; ok: false; error: string }
  | { ev: 'probe'; rid: number; value: WorkerProbe };

/** A worker's view of itself, for diagnostics and the leak tests. */
export interface WorkerProbe {
  tid: number;
  ups: number;
  downs: number;
  /** process.getActiveResourcesInfo() of the worker's event loop, counted by type. */
  resources: Record<string, number>;
  /** V8 heap used by the worker's isolate (after a full GC when asked). */
  heapUsed: number;
  /** Memory outside the V8 heap held by the worker's objects (Buffers…). */
  external: number;
  /** Stream and peer-connection objects this worker created that are still reachable (after the GC, when asked). */
  alive: { streams: number; peerConnections: number };
}

export type { SrtpResume, StreamStats };
