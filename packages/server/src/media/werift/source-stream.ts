// A source stream in the werift engine: an up-stream with no peer
// connection, whose tracks the server feeds with write(). Its packets take
// the same path as a publisher's (WeriftUpTrack.onPacket: statistics, then
// every down-track and tap), so down-streams and taps cannot tell the
// difference. In one thread nothing queues: write() hands packets over at once.
import type { ConnectionState, IceCandidate, SourcePacket, SourceStream, SourceStreamEvents, SourceStreamOptions, StreamStats, TrackKind, UpStreamEvents } from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import type { WeriftSource, WeriftUpTrack as UpTrackType } from './up-stream.ts';
import { WeriftUpTrack } from './up-stream.ts';

const random32 = () => (Math.floor(Math.random() * 0xffffffff) + 1) >>> 0;

/** The up-stream side of a source stream: what down-streams and taps see. */
export class WeriftSourceUp extends TypedEmitter<UpStreamEvents> implements WeriftSource {
  readonly downs = new Set<{ close(): void }>();
  #closed = false;

  constructor(
    readonly id: string,
    readonly label: string,
    readonly tracks: readonly UpTrackType[],
    private readonly owner: WeriftSourceStream,
  ) {
    super();
  }

  get state(): ConnectionState {
    return this.#closed ? 'closed' : 'connected';
  }
  get closed(): boolean {
    return this.#closed;
  }

  async answer(): Promise<string> {
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

  close(): void {
    this.owner.close();
  }

  /** Called by the owner once. */
  finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.tracks) t.end();
    for (const d of [...this.downs]) d.close();
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
  }
}

export class WeriftSourceStream extends TypedEmitter<SourceStreamEvents> implements SourceStream {
  readonly id: string;
  readonly up: WeriftSourceUp;
  readonly #tracks = new Map<string, { track: WeriftUpTrack; ssrcs: number[] }>();
  #closed = false;

  constructor(
    options: SourceStreamOptions,
    private readonly onClosed: (s: WeriftSourceStream) => void,
  ) {
    super();
    this.id = options.id;
    if (options.tracks.length === 0) throw new Error(`source stream ${options.id}: give it at least one track`);
    const list: WeriftUpTrack[] = [];
    for (const t of options.tracks) {
      if (this.#tracks.has(t.id)) throw new Error(`source stream ${options.id}: two tracks are called "${t.id}"`);
      const kind: TrackKind = t.kind;
      const track = new WeriftUpTrack(t.id, kind, undefined, t.codec.clockRate, (layer) => this.emit('keyframe', t.id, layer));
      track.codec = t.codec.name;
      track.codecDescription = {
        mimeType: t.codec.mimeType,
        clockRate: t.codec.clockRate,
        ...(t.codec.channels ? { channels: t.codec.channels } : {}),
        ...(t.codec.fmtp ? { parameters: t.codec.fmtp } : {}),
      };
      const rids = t.layers && t.layers.length > 0 ? t.layers : [undefined];
      const ssrcs: number[] = [];
      for (const rid of rids) {
        const ssrc = random32();
        ssrcs[track.addLayer(rid, ssrc)] = ssrc;
      }
      list.push(track);
      this.#tracks.set(t.id, { track, ssrcs });
    }
    this.up = new WeriftSourceUp(options.id, options.label, list, this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(trackId: string, packets: readonly SourcePacket[]): boolean {
    if (this.#closed) return false;
    const entry = this.#tracks.get(trackId);
    if (!entry) throw new Error(`source stream ${this.id} has no track "${trackId}" (it has ${[...this.#tracks.keys()].join(', ')})`);
    const { track, ssrcs } = entry;
    for (const p of packets) {
      const layer = p.layer ?? 0;
      const ssrc = ssrcs[layer];
      if (ssrc === undefined) throw new Error(`source stream ${this.id}, track "${trackId}": there is no layer ${layer} (it has ${ssrcs.length})`);
      const payload = Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength);
      track.onPacket(layer, { header: { sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, marker: p.marker, ssrc, payloadType: 0 }, payload }, undefined);
    }
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.up.finish();
    this.emit('close');
    this.removeAllListeners();
    this.onClosed(this);
  }
}
