// The main thread's side of streams, tracks, taps and source streams that
// live on a media worker. A proxy mirrors what the API reads synchronously
// (tracks, state, closed, request) from the events its worker sends, turns
// method calls into messages (pool.ts), and moves packets in batches: a
// tap's packets arrive one batch per message and the next batch waits for
// the sink to take this one; a source stream's writes are gathered until
// the worker has taken the previous batch (see packets.ts).
import type {
  CodecName,
  CodecParameters,
  ConnectionState,
  DownRequest,
  DownStream,
  DownStreamEvents,
  DownStreamOptions,
  IceCandidate,
  PacketBatch,
  SourcePacket,
  SourceStream,
  SourceStreamEvents,
  SourceStreamOptions,
  StreamStats,
  TrackKind,
  TrackSink,
  TrackTap,
  TrackTapOptions,
  UpStream,
  UpStreamEvents,
  UpStreamOptions,
  UpTrack,
} from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import { DEFAULT_TAP_QUEUE_BYTES } from '../tap-queue.ts';
import { packPackets, payloadBytes, unpackPackets } from './packets.ts';
import type { PooledStream, PooledTap, Slot, WorkerPool } from './pool.ts';
import { GONE, type FromWorker, type SrtpResume, type TapEnd, type ToWorker, type TrackInfo } from './protocol.ts';

let nextTap = 0;

const closedStats = (id: string): StreamStats => ({ id, state: 'closed', tracks: [] });

function ignoreGone(e: unknown): void {
  if ((e as Error).message !== GONE) throw e;
}

export class ProxyUpTrack implements UpTrack {
  codec: CodecName | undefined;
  parameters: CodecParameters | undefined;
  /** Its 'track' event was emitted. */
  announced = false;
  layers: readonly string[];

  constructor(
    readonly stream: ProxyUpStream,
    readonly id: string,
    readonly kind: TrackKind,
    info: TrackInfo,
  ) {
    this.codec = info.codec;
    this.parameters = info.parameters;
    this.layers = Object.freeze([...info.layers]);
  }

  update(info: TrackInfo): void {
    this.codec = info.codec;
    this.parameters = info.parameters;
    this.layers = Object.freeze([...info.layers]);
  }

  attach(sink: TrackSink, options: TrackTapOptions = {}): TrackTap {
    const s = this.stream;
    if (s.closed) throw new Error(`up-track ${this.id} of ${s.id} has ended; nothing can be attached to it`);
    const tap = new ProxyTap(s.pool, s.slot, ++nextTap, this, sink);
    s.slot.taps.set(tap.n, tap);
    s.pool.post(s.slot, {
      op: 'tap',
      h: s.h,
      track: this.id,
      tap: tap.n,
      ...(options.layers ? { layers: [...options.layers] } : {}),
      ...(options.maxQueuedBytes !== undefined ? { maxQueuedBytes: options.maxQueuedBytes } : {}),
      ...(options.maxDelayMs !== undefined ? { maxDelayMs: options.maxDelayMs } : {}),
    });
    return tap;
  }
}

/** A tap on a worker's up-track; its sink runs here. */
export class ProxyTap implements TrackTap, PooledTap {
  delivered = 0;
  dropped = 0;
  #ended = false;

  constructor(
    private readonly pool: WorkerPool,
    private readonly slot: Slot,
    readonly n: number,
    readonly track: ProxyUpTrack,
    private readonly sink: TrackSink,
  ) {}

  handle(m: Extract<FromWorker, { ev: 'packets' | 'tapEnd' }>): void {
    if (this.#ended) return;
    if (m.ev === 'tapEnd') {
      this.#end(m.reason);
      return;
    }
    const batch: PacketBatch = { packets: unpackPackets(m.batch), senderReports: m.reports, dropped: m.dropped };
    this.delivered += batch.packets.length;
    this.dropped += m.dropped;
    let result: void | Promise<void>;
    try {
      result = this.sink.packets(batch);
    } catch {
      this.#fail();
      return;
    }
    const ack = () => {
      if (!this.#ended) this.pool.post(this.slot, { op: 'tapAck', tap: this.n });
    };
    if (result && typeof (result as Promise<void>).then === 'function') (result as Promise<void>).then(ack, () => this.#fail());
    else ack();
  }

  lost(): void {
    this.#end('failed');
  }

  requestKeyframe(layer?: number): void {
    if (!this.#ended) this.pool.post(this.slot, { op: 'tapKeyframe', tap: this.n, ...(layer !== undefined ? { layer } : {}) });
  }

  setLayers(layers: readonly number[] | undefined): void {
    if (!this.#ended) this.pool.post(this.slot, { op: 'tapLayers', tap: this.n, ...(layers ? { layers: [...layers] } : {}) });
  }

  detach(): void {
    if (this.#ended) return;
    this.pool.post(this.slot, { op: 'untap', tap: this.n });
    this.#end('detached');
  }

  #fail(): void {
    if (this.#ended) return;
    this.pool.post(this.slot, { op: 'untap', tap: this.n });
    this.#end('failed');
  }

  #end(reason: TapEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.slot.taps.get(this.n) === this) this.slot.taps.delete(this.n);
    try {
      this.sink.end(reason);
    } catch {
      // the sink is gone either way
    }
  }
}

/**
 * A publisher that does not answer a resumed stream's `renegotiate` with an
 * offer within this long has its stream closed (and is told to close it, as
 * for any stream the server lost).
 */
const RESUME_TIMEOUT_MS = 10_000;

/** What a proxy keeps of its worker's 'srtp' reports (the keys come once, the state every second). */
class SrtpReports {
  keys: Omit<SrtpResume, 'state'> | undefined;
  state: number[] = [];
  take(m: Extract<FromWorker, { ev: 'srtp' }>): void {
    if (m.keys) this.keys = m.keys;
    this.state = m.state;
  }
  get resume(): SrtpResume | undefined {
    return this.keys ? { ...this.keys, state: [...this.state] } : undefined;
  }
}

export class ProxyUpStream extends TypedEmitter<UpStreamEvents> implements UpStream, PooledStream {
  readonly id: string;
  readonly label: string;
  readonly key: string | undefined;
  readonly direction = 'up';
  readonly downs = new Set<ProxyDownStream>();
  /** The message that made it on its worker (sent again, with `resume`, to a replacement worker). */
  create: Extract<ToWorker, { op: 'createUp' }> | undefined;
  readonly #srtp = new SrtpReports();
  /** Moved to a replacement worker and waiting for the publisher's new offer. */
  #resuming: NodeJS.Timeout | undefined;
  #tracks = new Map<string, ProxyUpTrack>();
  #state: ConnectionState = 'new';
  #closed = false;

  constructor(
    readonly pool: WorkerPool,
    public slot: Slot,
    readonly h: number,
    options: Pick<UpStreamOptions, 'id' | 'label' | 'placement'>,
    /** A source stream's tracks, known from the start (announced, state connected). */
    initial?: TrackInfo[],
  ) {
    super();
    this.id = options.id;
    this.label = options.label;
    this.key = options.placement;
    if (initial) {
      this.#updateTracks(initial);
      for (const t of this.#tracks.values()) t.announced = true;
      this.#state = 'connected';
    }
  }

  get tracks(): readonly UpTrack[] {
    return [...this.#tracks.values()];
  }
  get state(): ConnectionState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#closed;
  }

  get resume(): SrtpResume | undefined {
    return this.create ? this.#srtp.resume : undefined;
  }

  moveTo(slot: Slot): void {
    this.slot = slot;
    for (const d of this.downs) if (d.resume) d.moveTo(slot);
  }

  /** On the replacement worker: the stream again, with the dead worker's keys; the publisher is asked for an ICE restart. */
  resumeOn(slot: Slot): void {
    const resume = this.#srtp.resume;
    if (this.#closed || !this.create || !resume) return;
    this.pool.post(slot, { ...this.create, resume });
    this.#resuming = setTimeout(() => {
      this.#resuming = undefined;
      this.close();
    }, RESUME_TIMEOUT_MS);
    this.#resuming.unref?.();
    this.emit('renegotiate');
  }

  handle(m: FromWorker): void {
    switch (m.ev) {
      case 'srtp':
        this.#srtp.take(m);
        return;
      case 'candidate':
        this.emit('candidate', m.candidate);
        return;
      case 'tracks':
        this.#updateTracks(m.tracks);
        this.#announce(m.added);
        return;
      case 'state':
        if (m.state === 'closed') return; // reported with 'close'
        this.#state = m.state;
        this.emit('state', m.state);
        return;
      case 'close':
        this.finish(false);
        return;
    }
  }

  /** Applies the worker's track list (new tracks, codecs, simulcast layers). */
  #updateTracks(list: TrackInfo[]): void {
    for (const info of list) {
      const t = this.#tracks.get(info.id);
      if (t) t.update(info);
      else this.#tracks.set(info.id, new ProxyUpTrack(this, info.id, info.kind, info));
    }
  }

  /** Emits 'track' once for each of these tracks, as the worker's engine did. */
  #announce(ids: Iterable<string>): void {
    for (const id of ids) {
      const t = this.#tracks.get(id);
      if (!t || t.announced || this.#closed) continue;
      t.announced = true;
      this.emit('track', t);
    }
  }

  async answer(offerSdp: string): Promise<string> {
    const closed = () => new Error(`up-stream ${this.id} is closed; the offer cannot be answered`);
    if (this.#closed) throw closed();
    let r: { sdp: string; tracks: TrackInfo[] };
    try {
      r = (await this.pool.call(this.slot, this.h, 'answer', [offerSdp])) as typeof r;
    } catch (e) {
      throw (e as Error).message === GONE ? closed() : e;
    }
    if (!this.#closed) {
      this.#updateTracks(r.tracks);
      this.#announce(r.tracks.map((t) => t.id));
      if (this.#resuming) {
        // the up-stream has its tracks on the new worker: its down-streams follow
        clearTimeout(this.#resuming);
        this.#resuming = undefined;
        for (const d of this.downs) d.resumeOn(this.slot);
      }
    }
    return r.sdp;
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate || !candidate.candidate) return;
    await this.pool.call(this.slot, this.h, 'addIceCandidate', [candidate]).catch(ignoreGone);
  }

  requestKeyframe(): void {
    if (!this.#closed) this.pool.post(this.slot, { op: 'requestKeyframe', h: this.h });
  }

  async stats(): Promise<StreamStats> {
    if (this.#closed) return closedStats(this.id);
    try {
      return (await this.pool.call(this.slot, this.h, 'stats', [])) as StreamStats;
    } catch (e) {
      if ((e as Error).message === GONE) return closedStats(this.id);
      throw e;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.pool.post(this.slot, { op: 'close', h: this.h });
    this.finish(true);
  }

  /** Marks the stream closed here and tells its listeners; `tellWorker`: also ask the worker to close its down-streams. */
  finish(tellWorker: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#resuming);
    for (const d of [...this.downs]) d.finish(tellWorker);
    this.pool.release(this.slot, this);
    this.#state = 'closed';
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
  }
}

export class ProxyDownStream extends TypedEmitter<DownStreamEvents> implements DownStream, PooledStream {
  readonly id: string;
  readonly key: string | undefined;
  readonly direction = 'down';
  /** The message that made it on its worker (sent again, with `resume`, to a replacement worker). */
  create: Extract<ToWorker, { op: 'createDown' }> | undefined;
  readonly #srtp = new SrtpReports();
  #request: DownRequest;
  #state: ConnectionState = 'new';
  #closed = false;

  constructor(
    readonly pool: WorkerPool,
    public slot: Slot,
    readonly h: number,
    options: DownStreamOptions,
    readonly source: ProxyUpStream,
  ) {
    super();
    this.id = options.id;
    this.key = source.key;
    this.#request = { ...options.request };
    source.downs.add(this);
  }

  get request(): DownRequest {
    return { ...this.#request };
  }
  get state(): ConnectionState {
    return this.#state;
  }
  get closed(): boolean {
    return this.#closed;
  }

  get resume(): SrtpResume | undefined {
    return this.create ? this.#srtp.resume : undefined;
  }

  /** The handle of its source up-stream (a down-stream is resumed only with its source). */
  get sourceH(): number {
    return this.source.h;
  }

  moveTo(slot: Slot): void {
    this.slot = slot;
  }

  /** On the replacement worker, once its source has its tracks there: the stream again, and a new offer (an ICE restart) to the subscriber. */
  resumeOn(slot: Slot): void {
    const resume = this.#srtp.resume;
    if (this.#closed || !this.create || !resume || this.slot !== slot) return;
    this.pool.post(slot, { ...this.create, request: { ...this.#request }, resume });
    this.emit('renegotiate');
  }

  handle(m: FromWorker): void {
    switch (m.ev) {
      case 'srtp':
        this.#srtp.take(m);
        return;
      case 'candidate':
        this.emit('candidate', m.candidate);
        return;
      case 'state':
        if (m.state === 'closed') return;
        this.#state = m.state;
        this.emit('state', m.state);
        return;
      case 'renegotiate':
        this.emit('renegotiate');
        return;
      case 'close':
        this.finish(false);
        return;
    }
  }

  async offer(options: { iceRestart?: boolean } = {}): Promise<string> {
    const closed = () => new Error(`down-stream ${this.id} is closed; no offer can be made`);
    if (this.#closed) throw closed();
    try {
      return (await this.pool.call(this.slot, this.h, 'offer', [{ ...options }])) as string;
    } catch (e) {
      throw (e as Error).message === GONE ? closed() : e;
    }
  }

  async answer(offerSdp: string): Promise<string> {
    const closed = () => new Error(`down-stream ${this.id} is closed; the offer cannot be answered`);
    if (this.#closed) throw closed();
    try {
      return (await this.pool.call(this.slot, this.h, 'answer', [offerSdp])) as string;
    } catch (e) {
      throw (e as Error).message === GONE ? closed() : e;
    }
  }

  async setAnswer(answerSdp: string): Promise<void> {
    if (this.#closed) return;
    await this.pool.call(this.slot, this.h, 'setAnswer', [answerSdp]).catch(ignoreGone);
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate || !candidate.candidate) return;
    await this.pool.call(this.slot, this.h, 'addIceCandidate', [candidate]).catch(ignoreGone);
  }

  setRequest(request: DownRequest): void {
    this.#request = { ...request };
    if (!this.#closed) this.pool.post(this.slot, { op: 'setRequest', h: this.h, request: { ...request } });
  }

  async stats(): Promise<StreamStats> {
    if (this.#closed) return closedStats(this.id);
    try {
      return (await this.pool.call(this.slot, this.h, 'stats', [])) as StreamStats;
    } catch (e) {
      if ((e as Error).message === GONE) return closedStats(this.id);
      throw e;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.finish(true);
  }

  finish(tellWorker: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    if (tellWorker) this.pool.post(this.slot, { op: 'close', h: this.h });
    this.source.downs.delete(this);
    this.pool.release(this.slot, this);
    this.#state = 'closed';
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
  }
}

/**
 * A source stream on a worker. Writes are gathered here and sent as one
 * batch once the worker has taken the previous one, so a burst of writes
 * costs one message; bytes not yet taken count against maxQueuedBytes.
 */
export class ProxySourceStream extends TypedEmitter<SourceStreamEvents> implements SourceStream, PooledStream {
  readonly id: string;
  readonly key: string | undefined;
  readonly direction = 'up';
  readonly up: ProxyUpStream;
  readonly #trackIndex = new Map<string, number>();
  readonly #trackIds: string[];
  readonly #maxBytes: number;
  #pending: (SourcePacket & { track: number })[] = [];
  /** Payload bytes written and not yet taken by the worker (pending and in flight). */
  #queued = 0;
  #inFlight = 0;
  #busy = false;
  #scheduled: NodeJS.Immediate | undefined;
  #wantDrain = false;
  #closed = false;

  constructor(
    readonly pool: WorkerPool,
    readonly slot: Slot,
    readonly h: number,
    options: SourceStreamOptions,
  ) {
    super();
    this.id = options.id;
    this.key = options.placement;
    this.#maxBytes = options.maxQueuedBytes ?? DEFAULT_TAP_QUEUE_BYTES;
    this.#trackIds = options.tracks.map((t) => t.id);
    for (const [i, t] of options.tracks.entries()) this.#trackIndex.set(t.id, i);
    const infos: TrackInfo[] = options.tracks.map((t) => ({ id: t.id, kind: t.kind, codec: t.codec.name, parameters: { ...t.codec }, layers: [...(t.layers ?? [])] }));
    this.up = new ProxyUpStream(pool, slot, h, options, infos);
    this.up.on('close', () => this.#finished());
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(trackId: string, packets: readonly SourcePacket[]): boolean {
    if (this.#closed) return false;
    const track = this.#trackIndex.get(trackId);
    if (track === undefined) throw new Error(`source stream ${this.id} has no track "${trackId}" (it has ${this.#trackIds.join(', ')})`);
    let all = true;
    for (const p of packets) {
      const size = p.payload.byteLength;
      if (this.#queued + size > this.#maxBytes) {
        all = false;
        continue;
      }
      this.#pending.push({ ...p, track });
      this.#queued += size;
    }
    if (!all) this.#wantDrain = true;
    this.#schedule();
    return all;
  }

  handle(m: FromWorker): void {
    switch (m.ev) {
      case 'written':
        this.#busy = false;
        this.#queued -= this.#inFlight;
        this.#inFlight = 0;
        if (this.#wantDrain && this.#queued <= this.#maxBytes / 2) {
          this.#wantDrain = false;
          this.emit('drain');
        }
        this.#flush();
        return;
      case 'keyframe':
        this.emit('keyframe', m.track, m.layer);
        return;
      default:
        this.up.handle(m);
    }
  }

  #schedule(): void {
    if (this.#busy || this.#scheduled || this.#closed) return;
    this.#scheduled = setImmediate(() => {
      this.#scheduled = undefined;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#busy || this.#closed || this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#inFlight = payloadBytes(batch);
    this.#busy = true;
    const buffer = packPackets(
      batch.map((p) => ({ layer: p.layer ?? 0, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, marker: p.marker, payload: p.payload })),
      (i) => batch[i]!.track,
    );
    this.pool.post(this.slot, { op: 'write', h: this.h, batch: buffer, tracks: this.#trackIds }, [buffer]);
  }

  close(): void {
    this.up.close();
  }

  finish(tellWorker: boolean): void {
    this.up.finish(tellWorker);
  }

  #finished(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearImmediate(this.#scheduled);
    this.#pending = [];
    this.pool.release(this.slot, this);
    this.emit('close');
    this.removeAllListeners();
  }
}
