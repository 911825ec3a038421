// The threaded media engine: the same MediaEngine API in the main thread,
// as a proxy for N worker threads that each run a werift engine.
//
// werift is pure JavaScript, so one engine saturates one core (about 22–26k
// forwarded packets/s here). Spreading groups over workers uses every core:
// an up-stream goes to the worker of its placement key (the group name) —
// the least-loaded worker (by live stream count) when the key is new, the
// same worker while the key has live streams — and a down-stream goes to the
// worker of its source. RTP therefore never crosses threads; only signalling
// does (SDP, candidates, state, stats), as messages (see protocol.ts).
//
// The proxies mirror what the API reads synchronously (tracks, state,
// closed, request) from the events the workers send. A worker that dies
// (an uncaught error in werift, say) closes its streams — their `close`
// events fire, the core tells the clients — is logged and is replaced; the
// other workers and the server carry on.
import { type ChildProcess, fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type {
  CodecName,
  ConnectionState,
  DownRequest,
  DownStream,
  DownStreamEvents,
  DownStreamOptions,
  IceCandidate,
  MediaEngine,
  StreamStats,
  TrackKind,
  UpStream,
  UpStreamEvents,
  UpStreamOptions,
  UpTrack,
} from '../engine.ts';
import { TypedEmitter } from '../emitter.ts';
import type { WeriftEngineOptions } from '../werift/engine.ts';
import { GONE, type CallMethod, type FromWorker, type ToWorker, type TrackInfo, type WorkerProbe, type WorkerSetup } from './protocol.ts';

export type { WorkerProbe };

/** The few logger methods the engine uses (pino's Logger fits). */
export interface EngineLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface ThreadedEngineOptions {
  /** Number of workers (default: os.availableParallelism()). At least 1. */
  workers?: number;
  /**
   * werift (default): the JavaScript engine in worker threads. native: werift
   * plus the native packet plane, in worker processes (a fault in native
   * code ends one worker process, never the server).
   */
  kind?: 'werift' | 'native';
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
  /** The process the worker runs in (the server's own for a thread worker). */
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

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);
/** A worker that dies before it is ready is restarted after this (doubling, capped), not at once, so a broken install cannot spin. */
const RESTART_BACKOFF_MS = 500;
const RESTART_BACKOFF_MAX_MS = 30_000;
/** Shutdown waits this long for the workers to close their peer connections. */
const SHUTDOWN_GRACE_MS = 1000;

/** A worker thread or a worker process, as the engine drives it. */
interface WorkerHandle {
  readonly threadId: number;
  readonly kind: 'thread' | 'process';
  postMessage(m: ToWorker): void;
  onMessage(f: (m: FromWorker) => void): void;
  onError(f: (e: Error) => void): void;
  onExit(f: (code: number, signal: string | null) => void): void;
  terminate(): Promise<void>;
}

function threadWorker(setup: WorkerSetup): WorkerHandle {
  const worker = new Worker(ENTRY, { workerData: setup, name: `atrium-media-${setup.index}` } as ConstructorParameters<typeof Worker>[1]);
  return {
    threadId: worker.threadId,
    kind: 'thread',
    postMessage: (m) => worker.postMessage(m),
    onMessage: (f) => void worker.on('message', f),
    onError: (f) => void worker.on('error', f),
    onExit: (f) => void worker.on('exit', (code) => f(code, null)),
    terminate: async () => void (await worker.terminate()),
  };
}

/** What a dying process printed last (its uncaught error), for the log. */
const STDERR_TAIL = 4000;

function processWorker(setup: WorkerSetup): WorkerHandle {
  const child: ChildProcess = fork(fileURLToPath(ENTRY), [], {
    serialization: 'advanced',
    env: { ...process.env, ATRIUM_MEDIA_WORKER: JSON.stringify(setup) },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let tail = '';
  child.stderr!.on('data', (d: Buffer) => {
    process.stderr.write(d);
    tail = (tail + d.toString()).slice(-STDERR_TAIL);
  });
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => (exited = true));
  return {
    threadId: -1,
    kind: 'process',
    postMessage: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (f) => void child.on('message', f as (m: unknown) => void),
    onError: (f) => void child.on('error', f),
    onExit: (f) =>
      void child.on('exit', (code, signal) => {
        // the last error it printed, if any
        const thrown = /(?:^|\n)((?:\w*Error|Uncaught)[^\n]*)/.exec(tail)?.[1];
        if (thrown && !signal) (child as unknown as { lastError?: string }).lastError = thrown;
        f(code ?? -1, signal);
      }),
    terminate: async () => {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exit;
      clearTimeout(t);
    },
    get lastError(): string | undefined {
      return (child as unknown as { lastError?: string }).lastError;
    },
    get pid(): number | undefined {
      return child.pid;
    },
  } as WorkerHandle;
}

interface Slot {
  index: number;
  worker: WorkerHandle;
  tid: number | undefined;
  pid: number | undefined;
  ready: boolean;
  /** The worker is dead and waiting to be restarted: nothing is placed on it. */
  down: boolean;
  restarts: number;
  failedStarts: number;
  streams: Map<number, ProxyUpStream | ProxyDownStream>;
  error: Error | undefined;
}

interface Pending {
  slot: Slot;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class ThreadedEngine implements MediaEngine {
  readonly name: string;
  readonly kind: 'werift' | 'native';
  readonly #options: WeriftEngineOptions;
  readonly #log: EngineLog | undefined;
  /** One entry per worker; undefined until that worker is first needed. */
  readonly #slots: (Slot | undefined)[];
  readonly #pending = new Map<number, Pending>();
  readonly #placements = new Map<string, { slot: Slot; streams: number }>();
  #nextHandle = 0;
  #nextRid = 0;
  #closed = false;
  #shutdown: Promise<void> | undefined;

  constructor(options: ThreadedEngineOptions = {}) {
    const n = options.workers ?? availableParallelism();
    if (!Number.isInteger(n) || n < 1) throw new Error(`threaded media engine: workers must be a whole number of at least 1, not ${n} (0 means the in-process engine: use createWeriftEngine)`);
    this.#options = options.engine ?? {};
    this.kind = options.kind ?? 'werift';
    this.name = this.kind === 'native' ? 'native-processes' : 'werift-threads';
    this.#log = options.log;
    this.#slots = Array.from({ length: n }, (_, i) => (options.eager ? this.#spawn(i, 0, 0) : undefined));
  }

  /** The number of workers the engine may run. */
  get workerCount(): number {
    return this.#slots.length;
  }

  #started(): Slot[] {
    return this.#slots.filter((s): s is Slot => s !== undefined);
  }

  // ---------------------------------------------------------------------
  // MediaEngine

  createUpStream(options: UpStreamOptions): UpStream {
    if (this.#closed) throw new Error(`up-stream ${options.id}: the media engine is shut down`);
    const slot = this.#place(options.placement);
    const h = ++this.#nextHandle;
    const up = new ProxyUpStream(this, slot, h, options);
    this.#adopt(slot, up);
    this.post(slot, {
      op: 'createUp',
      h,
      id: options.id,
      label: options.label,
      iceServers: options.iceServers.map((s) => ({ ...s })),
      ...(options.codecs ? { codecs: [...options.codecs] } : {}),
    });
    return up;
  }

  createDownStream(options: DownStreamOptions): DownStream {
    const source = options.source;
    if (!(source instanceof ProxyUpStream) || source.engine !== this || source.closed) {
      throw new Error(`down-stream ${options.id}: its source ${source.id} is not an open up-stream of this media engine`);
    }
    const slot = source.slot;
    const h = ++this.#nextHandle;
    const down = new ProxyDownStream(this, slot, h, options, source);
    this.#adopt(slot, down);
    this.post(slot, { op: 'createDown', h, source: source.h, id: options.id, request: { ...options.request }, iceServers: options.iceServers.map((s) => ({ ...s })) });
    return down;
  }

  /** Closes every stream and stops the workers (see shutdown() to wait for that). */
  close(): void {
    void this.shutdown();
  }

  /** Closes every stream, lets the workers close their peer connections, then terminates them. */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#doShutdown();
    return this.#shutdown;
  }

  async #doShutdown(): Promise<void> {
    this.#closed = true;
    for (const slot of this.#started()) {
      const streams = [...slot.streams.values()];
      for (const s of streams) if (s instanceof ProxyDownStream) s.finish(false);
      for (const s of streams) if (s instanceof ProxyUpStream) s.finish(false);
    }
    await Promise.all(
      this.#started().map(async (slot) => {
        if (!slot.down) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([this.#request(slot, (rid) => ({ op: 'closeAll', rid })).catch(() => {}), new Promise((r) => (timer = setTimeout(r, SHUTDOWN_GRACE_MS)))]);
          clearTimeout(timer);
        }
        await slot.worker.terminate();
      }),
    );
  }

  // ---------------------------------------------------------------------
  // Diagnostics

  /** Where the streams are: one entry per started worker. */
  debug(): WorkerInfo[] {
    return this.#started().map((slot) => {
      let ups = 0;
      let downs = 0;
      for (const s of slot.streams.values()) s instanceof ProxyUpStream ? ups++ : downs++;
      const placements = [...this.#placements].filter(([, p]) => p.slot === slot).map(([k]) => k);
      return { index: slot.index, tid: slot.tid, pid: slot.pid, kind: slot.worker.kind, threadId: slot.worker.threadId, ready: slot.ready, restarts: slot.restarts, ups, downs, placements };
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
      this.#started()
        .filter((s) => !s.down)
        .map((slot) => this.#request(slot, (rid) => ({ op: 'probe', rid, gc: opts.gc ?? false })) as Promise<WorkerProbe>),
    );
  }

  /** Test hook: makes a worker throw an uncaught error, as a bug in werift would. */
  crashWorker(index: number, message = 'test: a media worker crashes on purpose'): void {
    const slot = this.#slots[index];
    if (!slot) throw new Error(`crashWorker: worker ${index} is not running (${this.#started().length} of ${this.#slots.length} workers started)`);
    this.post(slot, { op: 'crash', message });
  }

  /** Test hook (native workers): a segmentation fault in the addon, as a bug in native code would. */
  faultWorker(index: number): void {
    const slot = this.#slots[index];
    if (!slot || slot.worker.kind !== 'process') throw new Error(`faultWorker: worker ${index} is not a running native worker process`);
    this.post(slot, { op: 'fault' });
  }

  // ---------------------------------------------------------------------
  // Internals used by the proxies

  post(slot: Slot, m: ToWorker): void {
    if (slot.down) return;
    slot.worker.postMessage(m);
  }

  /** A method call on a stream: its result, or GONE when the worker no longer has the stream. */
  call(slot: Slot, h: number, method: CallMethod, args: unknown[]): Promise<unknown> {
    return this.#request(slot, (rid) => ({ op: 'call', h, rid, method, args }));
  }

  #request(slot: Slot, make: (rid: number) => ToWorker): Promise<unknown> {
    if (slot.down) return Promise.reject(new Error(GONE));
    const rid = ++this.#nextRid;
    return new Promise((resolve, reject) => {
      this.#pending.set(rid, { slot, resolve, reject });
      slot.worker.postMessage(make(rid));
    });
  }

  /** A stream is no longer live: the worker's load and its placement key's count drop. */
  release(stream: ProxyUpStream | ProxyDownStream): void {
    if (stream.slot.streams.get(stream.h) !== stream) return;
    stream.slot.streams.delete(stream.h);
    if (stream.key === undefined) return;
    const p = this.#placements.get(stream.key);
    if (p && p.slot === stream.slot && --p.streams <= 0) this.#placements.delete(stream.key);
  }

  #adopt(slot: Slot, stream: ProxyUpStream | ProxyDownStream): void {
    slot.streams.set(stream.h, stream);
    if (stream.key === undefined) return;
    const p = this.#placements.get(stream.key);
    if (p && p.slot === slot) p.streams++;
    else this.#placements.set(stream.key, { slot, streams: 1 });
  }

  /**
   * The worker for a new up-stream: its key's worker while the key has live
   * streams, else the least loaded by stream count — a worker not started
   * yet counts as empty, and an empty running worker is preferred to it.
   */
  #place(key: string | undefined): Slot {
    if (key !== undefined) {
      const p = this.#placements.get(key);
      if (p && !p.slot.down) return p.slot;
    }
    let best: Slot | undefined;
    let unstarted: number | undefined;
    for (const [i, slot] of this.#slots.entries()) {
      if (!slot) unstarted ??= i;
      else if (!slot.down && (!best || slot.streams.size < best.streams.size)) best = slot;
    }
    if ((!best || best.streams.size > 0) && unstarted !== undefined) return (this.#slots[unstarted] = this.#spawn(unstarted, 0, 0));
    if (!best) throw new Error('no media worker is running (the workers keep dying while starting; see the errors logged above)');
    return best;
  }

  #spawn(index: number, restarts: number, failedStarts: number): Slot {
    const setup: WorkerSetup = { index, kind: this.kind, engine: this.#options };
    const worker = this.kind === 'native' ? processWorker(setup) : threadWorker(setup);
    const slot: Slot = { index, worker, tid: undefined, pid: undefined, ready: false, down: false, restarts, failedStarts, streams: new Map(), error: undefined };
    worker.onMessage((m) => this.#onMessage(slot, m));
    worker.onError((err) => {
      slot.error = err;
    });
    worker.onExit((code, signal) => {
      const printed = (worker as { lastError?: string }).lastError;
      if (!slot.error && (signal || printed)) slot.error = new Error(signal ? `killed by ${signal}` : printed);
      this.#onExit(slot, code);
    });
    return slot;
  }

  #onMessage(slot: Slot, m: FromWorker): void {
    switch (m.ev) {
      case 'ready':
        slot.ready = true;
        slot.tid = m.tid;
        slot.pid = m.pid;
        slot.failedStarts = 0;
        return;
      case 'reply': {
        const p = this.#pending.get(m.rid);
        if (!p) return;
        this.#pending.delete(m.rid);
        if (m.ok) p.resolve(m.value);
        else p.reject(new Error(m.error));
        return;
      }
      case 'probe': {
        const p = this.#pending.get(m.rid);
        if (!p) return;
        this.#pending.delete(m.rid);
        p.resolve(m.value);
        return;
      }
      default: {
        const stream = slot.streams.get(m.h);
        if (!stream) return; // closed here already
        if (m.ev === 'close' && m.error) this.#log?.warn({ stream: stream.id, worker: slot.index }, `media worker: ${m.error}`);
        stream.handle(m);
      }
    }
  }

  #onExit(slot: Slot, code: number): void {
    if (this.#slots[slot.index] !== slot) return;
    slot.down = true;
    for (const [rid, p] of this.#pending) {
      if (p.slot !== slot) continue;
      this.#pending.delete(rid);
      p.reject(new Error(GONE));
    }
    if (this.#closed) return;
    const streams = [...slot.streams.values()];
    const err = slot.error;
    this.#log?.error(
      { err, worker: slot.index, tid: slot.tid, exitCode: code, streams: streams.length },
      `media worker ${slot.index}${slot.worker.kind === 'process' ? ` (process ${slot.pid ?? '?'})` : ''} stopped (${err ? err.message : `exit code ${code}`}); its ${streams.length} streams are closed and the worker is replaced`,
    );
    for (const s of streams) if (s instanceof ProxyDownStream) s.finish(false);
    for (const s of streams) if (s instanceof ProxyUpStream) s.finish(false);
    for (const [key, p] of this.#placements) if (p.slot === slot) this.#placements.delete(key);
    const failedStarts = slot.ready ? 0 : slot.failedStarts + 1;
    const restart = () => {
      if (this.#closed) return;
      this.#slots[slot.index] = this.#spawn(slot.index, slot.restarts + 1, failedStarts);
    };
    if (failedStarts === 0) restart();
    else setTimeout(restart, Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** (failedStarts - 1))).unref();
  }
}

class ProxyUpTrack implements UpTrack {
  codec: CodecName | undefined;
  /** Its 'track' event was emitted. */
  announced = false;
  layers: readonly string[];
  constructor(
    readonly id: string,
    readonly kind: TrackKind,
    info: TrackInfo,
  ) {
    this.codec = info.codec;
    this.layers = info.layers;
  }
  update(info: TrackInfo): void {
    this.codec = info.codec;
    this.layers = Object.freeze([...info.layers]);
  }
}

const closedStats = (id: string): StreamStats => ({ id, state: 'closed', tracks: [] });

class ProxyUpStream extends TypedEmitter<UpStreamEvents> implements UpStream {
  readonly id: string;
  readonly label: string;
  readonly key: string | undefined;
  readonly downs = new Set<ProxyDownStream>();
  #tracks = new Map<string, ProxyUpTrack>();
  #state: ConnectionState = 'new';
  #closed = false;

  constructor(
    readonly engine: ThreadedEngine,
    readonly slot: Slot,
    readonly h: number,
    options: UpStreamOptions,
  ) {
    super();
    this.id = options.id;
    this.label = options.label;
    this.key = options.placement;
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

  handle(m: FromWorker): void {
    switch (m.ev) {
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
      else this.#tracks.set(info.id, new ProxyUpTrack(info.id, info.kind, info));
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
      r = (await this.engine.call(this.slot, this.h, 'answer', [offerSdp])) as typeof r;
    } catch (e) {
      throw (e as Error).message === GONE ? closed() : e;
    }
    if (!this.#closed) {
      this.#updateTracks(r.tracks);
      this.#announce(r.tracks.map((t) => t.id));
    }
    return r.sdp;
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate || !candidate.candidate) return;
    await this.engine.call(this.slot, this.h, 'addIceCandidate', [candidate]).catch(ignoreGone);
  }

  requestKeyframe(): void {
    if (!this.#closed) this.engine.post(this.slot, { op: 'requestKeyframe', h: this.h });
  }

  async stats(): Promise<StreamStats> {
    if (this.#closed) return closedStats(this.id);
    try {
      return (await this.engine.call(this.slot, this.h, 'stats', [])) as StreamStats;
    } catch (e) {
      if ((e as Error).message === GONE) return closedStats(this.id);
      throw e;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.engine.post(this.slot, { op: 'close', h: this.h });
    this.finish(true);
  }

  /** Marks the stream closed here and tells its listeners; `tellWorker`: also ask the worker to close its down-streams. */
  finish(tellWorker: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of [...this.downs]) d.finish(tellWorker);
    this.engine.release(this);
    this.#state = 'closed';
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
  }
}

class ProxyDownStream extends TypedEmitter<DownStreamEvents> implements DownStream {
  readonly id: string;
  readonly key: string | undefined;
  #request: DownRequest;
  #state: ConnectionState = 'new';
  #closed = false;

  constructor(
    readonly engine: ThreadedEngine,
    readonly slot: Slot,
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

  handle(m: FromWorker): void {
    switch (m.ev) {
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
      return (await this.engine.call(this.slot, this.h, 'offer', [{ ...options }])) as string;
    } catch (e) {
      throw (e as Error).message === GONE ? closed() : e;
    }
  }

  async setAnswer(answerSdp: string): Promise<void> {
    if (this.#closed) return;
    await this.engine.call(this.slot, this.h, 'setAnswer', [answerSdp]).catch(ignoreGone);
  }

  async addIceCandidate(candidate: IceCandidate | null): Promise<void> {
    if (this.#closed || !candidate || !candidate.candidate) return;
    await this.engine.call(this.slot, this.h, 'addIceCandidate', [candidate]).catch(ignoreGone);
  }

  setRequest(request: DownRequest): void {
    this.#request = { ...request };
    if (!this.#closed) this.engine.post(this.slot, { op: 'setRequest', h: this.h, request: { ...request } });
  }

  async stats(): Promise<StreamStats> {
    if (this.#closed) return closedStats(this.id);
    try {
      return (await this.engine.call(this.slot, this.h, 'stats', [])) as StreamStats;
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
    if (tellWorker) this.engine.post(this.slot, { op: 'close', h: this.h });
    this.source.downs.delete(this);
    this.engine.release(this);
    this.#state = 'closed';
    this.emit('state', 'closed');
    this.emit('close');
    this.removeAllListeners();
  }
}

function ignoreGone(e: unknown): void {
  if ((e as Error).message !== GONE) throw e;
}

/** The threaded engine: `workers` werift engines on their own threads (default: one per core). */
export function createThreadedEngine(options: ThreadedEngineOptions = {}): ThreadedEngine {
  return new ThreadedEngine(options);
}
