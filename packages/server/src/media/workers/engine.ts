// The threaded media engine: the same MediaEngine API in the main thread,
// as a proxy for N workers: threads that each run a werift engine, or (kind
// 'native') processes that each run the native engine, so that a fault in
// native code ends one worker process — logged, its streams closed (the
// clients renegotiate), the worker replaced — never the server.
//
// werift is pure JavaScript, so one engine saturates one core (about 22–26k
// forwarded packets/s here). Spreading groups over workers uses every core:
// an up-stream goes to the worker of its placement key (the group name) —
// the least-loaded worker (by live stream count) when the key is new, the
// same worker while the key has live streams — and a down-stream goes to the
// worker of its source. Forwarding therefore never crosses threads; what
// does is signalling (SDP, candidates, state, stats) as messages, and the
// packets of taps and source streams, in batches (see protocol.ts and
// packets.ts).
//
// The pieces: pool.ts starts, places on and replaces workers and carries
// the calls; proxies.ts holds the main thread's stream, track, tap and
// source objects; worker.ts is the other side. This file is the facade and
// its diagnostics. A worker that dies (an uncaught error in werift, say)
// closes its streams — their `close` events fire, the core tells the
// clients — ends its taps, is logged and is replaced; the other workers and
// the server carry on.
import { availableParallelism } from 'node:os';
import type { BundleSession, BundleSessionOptions, DownStream, DownStreamOptions, MediaEngine, SourceStream, SourceStreamOptions, UpStream, UpStreamOptions } from '../engine.ts';
import type { WeriftEngineOptions } from '../werift/engine.ts';
import { WeriftBundleSession } from '../werift/bundle.ts';
import { type EngineLog, WorkerPool, type WorkerKind } from './pool.ts';
import type { WorkerProbe } from './protocol.ts';
import { ProxyDownStream, ProxySourceStream, ProxyUpStream } from './proxies.ts';

export type { EngineLog, WorkerKind, WorkerProbe };

export interface ThreadedEngineOptions {
  /** Number of workers (default: os.availableParallelism()). At least 1. */
  workers?: number;
  /**
   * werift (default): the JavaScript engine in worker threads. native: werift
   * plus the native packet plane, in worker processes.
   */
  kind?: WorkerKind;
  /**
   * Start every worker now. By default a worker starts when a group is first
   * placed on it (a worker costs about 50 MB and half a second of CPU to
   * start), so an idle server on a many-core machine stays small.
   */
  eager?: boolean;
  /** Passed to the werift engine of every worker. */
  engine?: WeriftEngineOptions;
  log?: EngineLog;
}

/** One worker as `debug()` shows it. */
export interface WorkerInfo {
  index: number;
  /** Kernel thread id (/proc/<pid>/task/<tid>), once the worker is ready; -1 off Linux. For a process worker, its main thread. */
  tid: number | undefined;
  /** The process the worker runs in (the server's own for a thread worker), once ready. */
  pid: number | undefined;
  kind: 'thread' | 'process';
  /** Node's worker threadId. */
  threadId: number;
  ready: boolean;
  /** How many times this slot's worker was replaced after dying. */
  restarts: number;
  ups: number;
  downs: number;
  /** Placement keys (group names) with live streams on this worker. */
  placements: string[];
}

export class ThreadedEngine implements MediaEngine {
  readonly name: string;
  readonly kind: WorkerKind;
  readonly #pool: WorkerPool;
  #nextHandle = 0;
  #closed = false;
  #shutdown: Promise<void> | undefined;
  readonly #werift: WeriftEngineOptions;

  constructor(options: ThreadedEngineOptions = {}) {
    this.#werift = options.engine ?? {};
    const n = options.workers ?? availableParallelism();
    if (!Number.isInteger(n) || n < 1) throw new Error(`threaded media engine: workers must be a whole number of at least 1, not ${n} (0 means the in-process engine: use createWeriftEngine)`);
    this.kind = options.kind ?? 'werift';
    this.name = this.kind === 'native' ? 'native-processes' : 'werift-threads';
    this.#pool = new WorkerPool(n, { engine: options.engine ?? {}, kind: this.kind, log: options.log, eager: options.eager });
  }

  /** The number of workers the engine may run. */
  get workerCount(): number {
    return this.#pool.size;
  }

  // ---------------------------------------------------------------------
  // MediaEngine

  createUpStream(options: UpStreamOptions): UpStream {
    if (this.#closed) throw new Error(`up-stream ${options.id}: the media engine is shut down`);
    const slot = this.#pool.place(options.placement);
    const h = ++this.#nextHandle;
    const up = new ProxyUpStream(this.#pool, slot, h, options);
    this.#pool.adopt(slot, up);
    up.create = {
      op: 'createUp',
      h,
      id: options.id,
      label: options.label,
      iceServers: options.iceServers.map((s) => ({ ...s })),
      ...(options.codecs ? { codecs: [...options.codecs] } : {}),
    };
    this.#pool.post(slot, up.create);
    return up;
  }

  /**
   * A bundle session runs in this thread (its peer connection is werift's,
   * whatever the workers run): what it sends comes from taps and what it
   * receives goes into a source stream, both of which cross to the workers
   * in batches.
   */
  createBundleSession(options: BundleSessionOptions): BundleSession {
    if (this.#closed) throw new Error(`bundle session ${options.id}: the media engine is shut down`);
    return new WeriftBundleSession(this.#werift, options, this);
  }

  createSourceStream(options: SourceStreamOptions): SourceStream {
    if (this.#closed) throw new Error(`source stream ${options.id}: the media engine is shut down`);
    if (options.tracks.length === 0) throw new Error(`source stream ${options.id}: give it at least one track`);
    const slot = this.#pool.place(options.placement);
    const h = ++this.#nextHandle;
    const source = new ProxySourceStream(this.#pool, slot, h, options);
    this.#pool.adopt(slot, source);
    this.#pool.post(slot, {
      op: 'createSource',
      h,
      id: options.id,
      label: options.label,
      tracks: options.tracks.map((t) => ({ ...t, codec: { ...t.codec }, ...(t.layers ? { layers: [...t.layers] } : {}) })),
    });
    return source;
  }

  createDownStream(options: DownStreamOptions): DownStream {
    const source = options.source;
    if (!(source instanceof ProxyUpStream) || source.pool !== this.#pool || source.closed) {
      throw new Error(`down-stream ${options.id}: its source ${source.id} is not an open up-stream of this media engine`);
    }
    const slot = source.slot;
    const h = ++this.#nextHandle;
    const down = new ProxyDownStream(this.#pool, slot, h, options, source);
    this.#pool.adopt(slot, down);
    down.create = { op: 'createDown', h, source: source.h, id: options.id, request: { ...options.request }, iceServers: options.iceServers.map((s) => ({ ...s })) };
    this.#pool.post(slot, down.create);
    return down;
  }

  /** Closes every stream and stops the workers (see shutdown() to wait for that). */
  close(): void {
    void this.shutdown();
  }

  /** Closes every stream, lets the workers close their peer connections, then terminates them. */
  shutdown(): Promise<void> {
    this.#closed = true;
    this.#shutdown ??= this.#pool.shutdown();
    return this.#shutdown;
  }

  // ---------------------------------------------------------------------
  // Diagnostics and test hooks

  /** Where the streams are: one entry per started worker. */
  debug(): WorkerInfo[] {
    return this.#pool.started().map((slot) => {
      let ups = 0;
      let downs = 0;
      for (const s of slot.streams.values()) s.direction === 'up' ? ups++ : downs++;
      return {
        index: slot.index,
        tid: slot.tid,
        pid: slot.pid,
        kind: slot.worker.kind,
        threadId: slot.worker.threadId,
        ready: slot.ready,
        restarts: slot.restarts,
        ups,
        downs,
        placements: this.#pool.placementsOf(slot),
      };
    });
  }

  /** The index of the worker a stream of this engine lives on (undefined once it is closed). */
  workerOf(stream: UpStream | DownStream): number | undefined {
    if (!(stream instanceof ProxyUpStream || stream instanceof ProxyDownStream) || stream.closed) return undefined;
    return stream.slot.index;
  }

  /** Each live worker's own view: its streams, event-loop resources and heap (after a full GC when `gc`). */
  probe(opts: { gc?: boolean } = {}): Promise<WorkerProbe[]> {
    return Promise.all(
      this.#pool
        .started()
        .filter((s) => !s.down)
        .map((slot) => this.#pool.request(slot, (rid) => ({ op: 'probe', rid, gc: opts.gc ?? false })) as Promise<WorkerProbe>),
    );
  }

  /** Test hook: makes a worker throw an uncaught error, as a bug in werift would. */
  crashWorker(index: number, message = 'test: a media worker crashes on purpose'): void {
    const slot = this.#pool.slot(index);
    if (!slot) throw new Error(`crashWorker: worker ${index} is not running (${this.#pool.started().length} of ${this.#pool.size} workers started)`);
    this.#pool.post(slot, { op: 'crash', message });
  }

  /** Test hook (native workers): a segmentation fault inside the addon, as a bug in native code would. */
  faultWorker(index: number): void {
    const slot = this.#pool.slot(index);
    if (slot?.worker.kind !== 'process') throw new Error(`faultWorker: worker ${index} is not a running native worker process (--media-engine native)`);
    this.#pool.post(slot, { op: 'fault' });
  }
}

/** The threaded engine: `workers` werift engines on their own threads, or native engines in their own processes (default: one per core). */
export function createThreadedEngine(options: ThreadedEngineOptions = {}): ThreadedEngine {
  return new ThreadedEngine(options);
}
