// A source stream in the werift engine (the shared part is ../source-base.ts).
// Its packets take the same path as a publisher's (WeriftUpTrack.onPacket:
// statistics, then every down-track and tap), so down-streams and taps
// cannot tell the difference. In one thread nothing queues: write() hands
// packets over at once.
import type { SourcePacket, SourceStream, SourceStreamOptions } from '../engine.ts';
import { describeSourceCodec, noSuchSourceLayer, noSuchSourceTrack, randomSsrc, SourceStreamBase, SourceUpBase } from '../source-base.ts';
import { type WeriftSource, WeriftUpTrack } from './up-stream.ts';

/** The up-stream side: werift up-tracks whose packets come from write(). */
export class WeriftSourceUp extends SourceUpBase<WeriftUpTrack> implements WeriftSource {
  constructor(
    id: string,
    label: string,
    readonly tracks: readonly WeriftUpTrack[],
    closeOwner: () => void,
  ) {
    super(id, label, closeOwner);
  }
}

export class WeriftSourceStream extends SourceStreamBase implements SourceStream {
  readonly up: WeriftSourceUp;
  readonly #tracks = new Map<string, { track: WeriftUpTrack; ssrcs: number[] }>();

  constructor(
    options: SourceStreamOptions,
    private readonly onClosed: (s: WeriftSourceStream) => void,
  ) {
    super(options);
    const list: WeriftUpTrack[] = [];
    for (const t of options.tracks) {
      const track = new WeriftUpTrack(t.id, t.kind, undefined, t.codec.clockRate, (layer) => this.emit('keyframe', t.id, layer));
      track.codec = t.codec.name;
      track.codecDescription = describeSourceCodec(t.codec);
      const rids = t.layers && t.layers.length > 0 ? t.layers : [undefined];
      const ssrcs: number[] = [];
      for (const rid of rids) {
        const ssrc = randomSsrc();
        ssrcs[track.addLayer(rid, ssrc)] = ssrc;
      }
      list.push(track);
      this.#tracks.set(t.id, { track, ssrcs });
    }
    this.up = new WeriftSourceUp(options.id, options.label, list, () => this.close());
  }

  write(trackId: string, packets: readonly SourcePacket[]): boolean {
    if (this.closed) return false;
    const entry = this.#tracks.get(trackId);
    if (!entry) throw noSuchSourceTrack(this.id, trackId, this.#tracks.keys());
    const { track, ssrcs } = entry;
    for (const p of packets) {
      const layer = p.layer ?? 0;
      const ssrc = ssrcs[layer];
      if (ssrc === undefined) throw noSuchSourceLayer(this.id, trackId, layer, ssrcs.length);
      const payload = Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength);
      track.onPacket(layer, { header: { sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, marker: p.marker, ssrc, payloadType: 0 }, payload }, undefined);
    }
    return true;
  }

  protected forget(): void {
    this.onClosed(this);
  }
}
