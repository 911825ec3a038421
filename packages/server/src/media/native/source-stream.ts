// A source stream in the native engine (the shared part is ../source-base.ts).
// Each track is a plane up-track without a session; write() hands a whole
// batch to the plane in one call (Plane.write), which numbers nothing and
// forwards the packets like a publisher's — statistics, every down-track
// (rewritten per subscriber), every tap — so down-streams and taps cannot
// tell the difference. Subscribers' keyframe requests become 'keyframe' events.
import type { SourcePacket, SourceStream, SourceStreamOptions } from '../engine.ts';
import { describeSourceCodec, noSuchSourceLayer, noSuchSourceTrack, randomSsrc, SourceStreamBase, SourceUpBase } from '../source-base.ts';
import type { NativeEngine } from './engine.ts';
import { type NativeSource, type NativeTrackOwner, NativeUpTrack } from './up-stream.ts';

/** Largest payload the plane takes (one datagram). */
const MAX_PAYLOAD = 1500;
/** Bytes of a record's header in a Plane.write batch: layer u8, marker u8, seq u16, ts u32, length u16. */
const RECORD_HEADER = 10;

/** The up-stream side: a plane source whose packets come from write(). */
export class NativeSourceUp extends SourceUpBase<NativeUpTrack> implements NativeSource, NativeTrackOwner {
  readonly keyframeBy = 'pli';
  readonly rtcpSsrc = 1;
  tracks: readonly NativeUpTrack[] = [];

  constructor(
    readonly engine: NativeEngine,
    id: string,
    label: string,
    closeOwner: () => void,
  ) {
    super(id, label, closeOwner);
  }

  sendRtcp(_packet: Buffer): void {
    // no publisher to send RTCP to (keyframe requests go to the writer)
  }

  onSsrc(): void {
    // the SSRCs are ours: nothing is learnt
  }

  protected override releaseTrack(t: NativeUpTrack): void {
    if (!t.planeId) return;
    this.engine.plane.closeUp(t.planeId);
    this.engine.upTracks.delete(t.planeId);
    t.planeId = 0;
  }
}

export class NativeSourceStream extends SourceStreamBase implements SourceStream {
  readonly up: NativeSourceUp;
  readonly #tracks = new Map<string, NativeUpTrack>();

  constructor(
    readonly engine: NativeEngine,
    options: SourceStreamOptions,
    private readonly onClosed: (s: NativeSourceStream) => void,
  ) {
    super(options);
    this.up = new NativeSourceUp(engine, options.id, options.label, () => this.close());
    const list: NativeUpTrack[] = [];
    for (const t of options.tracks) {
      const rids = t.layers && t.layers.length > 0 ? t.layers : [];
      const track = new NativeUpTrack(this.up, t.id, t.kind, t.codec.clockRate, rids, (layer) => this.emit('keyframe', t.id, layer));
      track.codec = t.codec.name;
      track.codecDescription = describeSourceCodec(t.codec);
      for (const l of track.layerList) l.ssrc = randomSsrc();
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

  write(trackId: string, packets: readonly SourcePacket[]): boolean {
    if (this.closed) return false;
    const track = this.#tracks.get(trackId);
    if (!track) throw noSuchSourceTrack(this.id, trackId, this.#tracks.keys());
    let size = 0;
    for (const p of packets) {
      const layer = p.layer ?? 0;
      if (!track.layerList[layer]) throw noSuchSourceLayer(this.id, trackId, layer, track.layerList.length);
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

  protected forget(): void {
    this.onClosed(this);
  }
}
