// A source stream in the native engine: an up-stream with no peer
// connection whose tracks the server feeds with write(). Each track is a
// plane up-track without a session; write() hands a whole batch to the
// plane in one call (Plane.write), which numbers nothing and forwards the
// packets like a publisher's — statistics, every down-track (rewritten per
// subscriber), every tap — so down-streams and taps cannot tell the
// difference. Subscribers' keyframe requests become 'keyframe' events.
import type { ConnectionState, IceCandidate, SourcePacket, SourceStream, SourceStreamEvents, SourceStreamOptions, StreamStats, UpStreamEvents } from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import type { NativeEngine } from './engine.ts';
import { type NativeSource, type NativeTrackOwner, NativeUpTrack } from './up-stream.ts';

const random32 = () => (Math.floor(Math.random() * 0xffffffff) + 1) >>> 0;
/** Largest payload the plane takes (one datagram). */
const MAX_PAYLOAD = 1500;
/** Bytes of a record's header in a Plane.write batch: layer u8, marker u8, seq u16, ts u32, length u16. */
const RECORD_HEADER = 10;

/** The up-stream side of a source stream: what down-streams and taps see. */
export class NativeSourceUp extends TypedEmitter<UpStreamEvents> implements NativeSource, NativeTrackOwner {
  readonly downs = new Set<{ close(): void }>();
  readonly keyframeBy = 'pli';
  readonly rtcpSsrc = 1;
  tracks: readonly NativeUpTrack[] = [];
  #closed = false;

  constructor(
    readonly engine: NativeEngine,
    readonly id: string,
    readonly label: string,
    private readonly owner: NativeSourceStream,
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

  sendRtcp(_packet: Buffer): void {
    // no publisher to send RTCP to (keyframe requests go to the writer)
  }

  onSsrc(): void {
    // the SSRCs are ours: nothing is learnt
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
    for (const t of this.tracks) {
      t.end();
      if (t.planeId) {
        this.engine.plane.closeUp(t.planeId);
        this.engine.upTracks.delete(t.planeId);
        t.planeId = 0;
      }
    }
    for (const d of [...this.downs]) d.close();
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
  }
}

export class NativeSourceStream extends TypedEmitter<SourceStreamEvents> implements SourceStream {
  readonly id: string;
  readonly up: NativeSourceUp;
  readonly #tracks = new Map<string, NativeUpTrack>();
  #closed = false;

  constructor(
    readonly engine: NativeEngine,
    options: SourceStreamOptions,
    private readonly onClosed: (s: NativeSourceStream) => void,
  ) {
    super();
    this.id = options.id;
    if (options.tracks.length === 0) throw new Error(`source stream ${options.id}: give it at least one track`);
    this.up = new NativeSourceUp(engine, options.id, options.label, this);
    const list: NativeUpTrack[] = [];
    for (const t of options.tracks) {
      if (this.#tracks.has(t.id)) throw new Error(`source stream ${options.id}: two tracks are called "${t.id}"`);
      const rids = t.layers && t.layers.length > 0 ? t.layers : [];
      const track = new NativeUpTrack(this.up, t.id, t.kind, t.codec.clockRate, rids, (layer) => this.emit('keyframe', t.id, layer));
      track.codec = t.codec.name;
      track.codecDescription = {
        mimeType: t.codec.mimeType,
        clockRate: t.codec.clockRate,
        ...(t.codec.channels ? { channels: t.codec.channels } : {}),
        ...(t.codec.fmtp ? { parameters: t.codec.fmtp } : {}),
      };
      for (const l of track.layerList) l.ssrc = random32();
      list.push(track);
      this.#tracks.set(t.id, track);
    }
    this.up.tracks = list;
    for (const track of list) {
      const id = engine.plane.createUp(0, {
        codec: track.codec!,
        video: track.kind === 'video',
        clockRate: track.clockRate,
        mid: track.id,
        rids: track.layers.slice(),
        ssrcs: track.layerList.map((l) => l.ssrc),
        payloadTypes: [],
      });
      if (!id) {
        this.close();
        throw new Error(`source stream ${options.id}: the packet plane refused track "${track.id}" (at most 8 layers, a clock rate above 0)`);
      }
      track.planeId = id;
      engine.upTracks.set(id, track);
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(trackId: string, packets: readonly SourcePacket[]): boolean {
    if (this.#closed) return false;
    const track = this.#tracks.get(trackId);
    if (!track) throw new Error(`source stream ${this.id} has no track "${trackId}" (it has ${[...this.#tracks.keys()].join(', ')})`);
    let size = 0;
    for (const p of packets) {
      const layer = p.layer ?? 0;
      if (!track.layerList[layer]) throw new Error(`source stream ${this.id}, track "${trackId}": there is no layer ${layer} (it has ${track.layerList.length})`);
      if (p.payload.byteLength > MAX_PAYLOAD)
        throw new Error(`source stream ${this.id}, track "${trackId}": a payload of ${p.payload.byteLength} bytes does not fit in a datagram (at most ${MAX_PAYLOAD})`);
      size += RECORD_HEADER + p.payload.byteLength;
    }
    if (packets.length === 0) return true;
    const b = Buffer.allocUnsafe(size);
    let o = 0;
    for (const p of packets) {
      b[o] = p.layer ?? 0;
      b[o + 1] = p.marker ? 1 : 0;
      b.writeUInt16LE(p.sequenceNumber & 0xffff, o + 2);
      b.writeUInt32LE(p.timestamp >>> 0, o + 4);
      b.writeUInt16LE(p.payload.byteLength, o + 8);
      b.set(p.payload, o + RECORD_HEADER);
      o += RECORD_HEADER + p.payload.byteLength;
    }
    this.engine.plane.write(track.planeId, b);
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
