// What a source stream is in every engine: an up-stream with no peer
// connection, fed by the server with write() (a recording played back, a
// WHIP ingest relayed, a test's generator). The engines differ only in how
// a written packet reaches their up-track (a plane batch, or the werift
// track's onPacket); the up-stream's face that down-streams and taps see,
// the checks on the options and on write(), and the close order (tracks end,
// down-streams close, then the stream says so) are the same, and live here.
import type { CodecParameters, ConnectionState, IceCandidate, SourceStreamEvents, SourceStreamOptions, StreamStats, TrackStats, UpStreamEvents } from './engine.ts';
import { TypedEmitter } from './emitter.ts';
import type { CodecDescription } from './werift/config.ts';

/** A random non-zero SSRC for a source track's layer. */
export const randomSsrc = (): number => (Math.floor(Math.random() * 0xffffffff) + 1) >>> 0;

/** Throws, naming the stream, when the options cannot make a stream (no track, two tracks with one id). */
export function checkSourceOptions(options: SourceStreamOptions): void {
  if (options.tracks.length === 0) throw new Error(`source stream ${options.id}: give it at least one track`);
  const seen = new Set<string>();
  for (const t of options.tracks) {
    if (seen.has(t.id)) throw new Error(`source stream ${options.id}: two tracks are called "${t.id}"`);
    seen.add(t.id);
  }
}

/** The codec a source track announces to down-streams, as an up-track learnt from SDP would. */
export function describeSourceCodec(codec: CodecParameters): CodecDescription {
  return {
    mimeType: codec.mimeType,
    clockRate: codec.clockRate,
    ...(codec.channels ? { channels: codec.channels } : {}),
    ...(codec.fmtp ? { parameters: codec.fmtp } : {}),
  };
}

/** The error of write() for a track the stream does not have. */
export function noSuchSourceTrack(streamId: string, trackId: string, known: Iterable<string>): Error {
  return new Error(`source stream ${streamId} has no track "${trackId}" (it has ${[...known].join(', ')})`);
}

/** The error of write() for a layer the track does not have. */
export function noSuchSourceLayer(streamId: string, trackId: string, layer: number, layers: number): Error {
  return new Error(`source stream ${streamId}, track "${trackId}": there is no layer ${layer} (it has ${layers})`);
}

/** What the shared up-stream face needs of an engine's up-track. */
export interface SourceUpTrack {
  end(): void;
  requestKeyframe(): void;
  stats(): TrackStats;
}

/** The up-stream side of a source stream: what down-streams and taps see. */
export abstract class SourceUpBase<Track extends SourceUpTrack> extends TypedEmitter<UpStreamEvents> {
  /** The down-streams fed by it, closed with it. */
  readonly downs = new Set<{ close(): void }>();
  abstract readonly tracks: readonly Track[];
  #closed = false;

  constructor(
    readonly id: string,
    readonly label: string,
    private readonly closeOwner: () => void,
  ) {
    super();
  }

  get state(): ConnectionState {
    return this.#closed ? 'closed' : 'connected';
  }
  get closed(): boolean {
    return this.#closed;
  }

  async answer(_offerSdp: string): Promise<string> {
    throw new Error(`up-stream ${this.id} is fed by the server (a source stream): it has no peer connection to negotiate`);
  }

  async addIceCandidate(_candidate: IceCandidate | null): Promise<void> {
    // no peer connection: nothing to do
  }

  requestKeyframe(): void {
    for (const t of this.tracks) t.requestKeyframe();
  }

  async stats(): Promise<StreamStats> {
    return { id: this.id, state: this.state, tracks: this.tracks.map((t) => t.stats()) };
  }

  /** Closing the up-stream closes the whole source stream. */
  close(): void {
    this.closeOwner();
  }

  /** Called by the owning stream once: tracks end, down-streams close, then 'close'. */
  finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.tracks) {
      t.end();
      this.releaseTrack(t);
    }
    for (const d of [...this.downs]) d.close();
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
  }

  /** What the engine frees for an ended track (the plane's up-track, say). */
  protected releaseTrack(_track: Track): void {}
}

/** The writer's side of a source stream; the engine supplies its up-stream and how packets reach it. */
export abstract class SourceStreamBase extends TypedEmitter<SourceStreamEvents> {
  readonly id: string;
  abstract readonly up: SourceUpBase<SourceUpTrack>;
  #closed = false;

  constructor(options: SourceStreamOptions) {
    super();
    checkSourceOptions(options);
    this.id = options.id;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.up.finish();
    this.emit('close');
    this.removeAllListeners();
    this.forget();
  }

  /** Tells the engine the stream is gone, once, after it closed. */
  protected abstract forget(): void;
}
