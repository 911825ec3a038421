// The queue between an up-track and one tap's sink (see TrackSink in
// engine.ts): batches packets, holds them while the sink is busy, and drops
// what does not fit — the whole queue, then on video every packet of a
// layer until that layer's next keyframe, which it asks for. Engine-neutral
// and without timers of its own choosing beyond one per tap, so every engine
// (and the worker side of the threaded one) delivers taps the same way.
import type { PacketBatch, SenderReport, TrackPacket, TrackSink, TrackTap, TrackTapOptions, UpTrack } from './engine.ts';

export const DEFAULT_TAP_QUEUE_BYTES = 1 << 20;
export const DEFAULT_TAP_DELAY_MS = 20;

export interface TapQueueOptions extends TrackTapOptions {
  /** Video taps resume at keyframes after a drop; audio taps resume at once. */
  video: boolean;
  /** The queue dropped packets of this layer: a keyframe would let it resume. */
  onKeyframeWanted: (layer: number) => void;
  /** The sink threw or rejected: the tap should be detached (the sink was ended with 'failed'). */
  onFailed: (err: unknown) => void;
}

export class TapQueue {
  #sink: TrackSink;
  #maxBytes: number;
  #delayMs: number;
  #video: boolean;
  #onKeyframeWanted: (layer: number) => void;
  #onFailed: (err: unknown) => void;
  #layers: Set<number> | undefined;
  #packets: TrackPacket[] = [];
  #reports: SenderReport[] = [];
  #bytes = 0;
  /** Dropped since the last batch. */
  #droppedPending = 0;
  /** Video layers dropping until their next keyframe. */
  #waitKeyframe = new Set<number>();
  #busy = false;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  delivered = 0;
  dropped = 0;

  constructor(sink: TrackSink, options: TapQueueOptions) {
    this.#sink = sink;
    this.#maxBytes = options.maxQueuedBytes ?? DEFAULT_TAP_QUEUE_BYTES;
    this.#delayMs = options.maxDelayMs ?? DEFAULT_TAP_DELAY_MS;
    this.#video = options.video;
    this.#onKeyframeWanted = options.onKeyframeWanted;
    this.#onFailed = options.onFailed;
    this.setLayers(options.layers);
  }

  get ended(): boolean {
    return this.#ended;
  }

  setLayers(layers: readonly number[] | undefined): void {
    this.#layers = layers === undefined ? undefined : new Set(layers);
  }

  /** Whether packets of this layer are wanted (the engine may skip building them otherwise). */
  wants(layer: number): boolean {
    return !this.#ended && (this.#layers === undefined || this.#layers.has(layer));
  }

  push(p: TrackPacket): void {
    if (!this.wants(p.layer)) return;
    if (this.#waitKeyframe.has(p.layer)) {
      if (!p.keyframe) {
        this.#drop(1);
        return;
      }
      this.#waitKeyframe.delete(p.layer);
    }
    const size = p.payload.byteLength;
    if (this.#bytes + size > this.#maxBytes) {
      this.#overflow(p.layer);
      if (this.#video && !p.keyframe) {
        this.#drop(1);
        return;
      }
      this.#waitKeyframe.delete(p.layer);
    }
    this.#packets.push(p);
    this.#bytes += size;
    this.#schedule();
  }

  report(r: SenderReport): void {
    if (!this.wants(r.layer)) return;
    this.#reports.push(r);
    this.#schedule();
  }

  /** Ends the sink once (queued packets are discarded: nobody is left to read them in time). */
  end(reason: 'ended' | 'detached' | 'failed'): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#packets = [];
    this.#reports = [];
    this.#bytes = 0;
    try {
      this.#sink.end(reason);
    } catch {
      // the sink is gone either way
    }
  }

  #drop(n: number): void {
    this.dropped += n;
    this.#droppedPending += n;
  }

  /** Too much is queued: drop it all; video layers that lost packets wait for a keyframe. */
  #overflow(layer: number): void {
    const lost = new Set<number>([layer]);
    for (const q of this.#packets) lost.add(q.layer);
    this.#drop(this.#packets.length);
    this.#packets = [];
    this.#bytes = 0;
    if (!this.#video) return;
    for (const l of lost) {
      this.#waitKeyframe.add(l);
      this.#onKeyframeWanted(l);
    }
  }

  #schedule(): void {
    if (this.#busy || this.#timer || this.#ended) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, this.#delayMs);
  }

  #flush(): void {
    if (this.#busy || this.#ended) return;
    if (this.#packets.length === 0 && this.#reports.length === 0 && this.#droppedPending === 0) return;
    const batch: PacketBatch = { packets: this.#packets, senderReports: this.#reports, dropped: this.#droppedPending };
    this.#packets = [];
    this.#reports = [];
    this.#bytes = 0;
    this.#droppedPending = 0;
    this.delivered += batch.packets.length;
    this.#busy = true;
    let result: void | Promise<void>;
    try {
      result = this.#sink.packets(batch);
    } catch (err) {
      this.#fail(err);
      return;
    }
    if (result && typeof (result as Promise<void>).then === 'function') {
      (result as Promise<void>).then(
        () => this.#settled(),
        (err: unknown) => this.#fail(err),
      );
    } else {
      this.#settled();
    }
  }

  /** The sink took the batch: what queued meanwhile goes at once (it already waited). */
  #settled(): void {
    this.#busy = false;
    if (this.#ended) return;
    if (this.#packets.length > 0 || this.#reports.length > 0 || this.#droppedPending > 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#flush();
    }
  }

  #fail(err: unknown): void {
    this.#busy = false;
    this.end('failed');
    this.#onFailed(err);
  }
}

/**
 * A tap as every engine holds it: a TapQueue in front of the owner's sink,
 * detached once (by its owner, by a failing sink, or when the track ends).
 * Each engine adds how packets reach it and how it leaves its track.
 */
export abstract class QueuedTrackTap<Track extends UpTrack & { requestKeyframe(layer?: number): void }> implements TrackTap {
  protected readonly queue: TapQueue;
  #detached = false;

  constructor(
    readonly track: Track,
    sink: TrackSink,
    options: TrackTapOptions,
  ) {
    this.queue = new TapQueue(sink, {
      ...options,
      video: track.kind === 'video',
      onKeyframeWanted: (layer) => track.requestKeyframe(layer),
      onFailed: () => this.#unhook(),
    });
  }

  /** Takes the tap off its track, so that no more packets reach it. */
  protected abstract removeFromTrack(): void;

  get delivered(): number {
    return this.queue.delivered;
  }
  get dropped(): number {
    return this.queue.dropped;
  }

  /** A sender report of one layer, for the sink's clock. */
  report(layer: number, ntpTime: number, rtpTimestamp: number, now: number): void {
    this.queue.report({ layer, ntpTime, rtpTimestamp, arrival: now });
  }

  onUpTrackEnded(): void {
    this.#detached = true;
    this.queue.end('ended');
  }

  requestKeyframe(layer?: number): void {
    if (!this.#detached) this.track.requestKeyframe(layer);
  }

  setLayers(layers: readonly number[] | undefined): void {
    this.queue.setLayers(layers);
  }

  detach(): void {
    if (this.#detached) return;
    this.#unhook();
    this.queue.end('detached');
  }

  #unhook(): void {
    this.#detached = true;
    this.removeFromTrack();
  }
}
