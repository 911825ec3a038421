// The media workers as the main thread runs them — threads for the werift
// engine, processes for the native one (a fault in native code must end one
// worker, not the server): starting a worker when a group is first placed
// on it, placing up-streams (a group's streams
// stay on one worker), the request/reply calls to a worker, and what
// happens when one dies — it is replaced (with a growing delay when it keeps
// dying before it is ready) and its taps end. Its streams end too, except on
// native workers: there the replacement is started with the dead worker's
// DTLS certificate, and each up-stream and down-stream whose SRTP keys and
// state the worker reported ('srtp' events) is made again on it with them;
// the publisher is asked to restart ICE (Galène's `renegotiate`) and the
// subscribers get new offers, and since the fingerprint is the same the
// browsers keep their DTLS associations and SRTP keys: media resumes after
// one ICE round trip, nobody republishes (proxies.ts, native/link.ts).
// The proxies (proxies.ts) talk to their worker only through this.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WeriftEngineOptions } from '../werift/engine.ts';
import { GONE, type CallMethod, type DtlsKeys, type FromWorker, type SrtpResume, type ToWorker, type WorkerSetup } from './protocol.ts';

/** The few logger methods the engine uses (pino's Logger fits). */
export interface EngineLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** A stream proxy as the pool sees it. */
export interface PooledStream {
  readonly h: number;
  readonly id: string;
  /** Placement key (group name), if any. */
  readonly key: string | undefined;
  readonly direction: 'up' | 'down';
  /** An event the worker sent about this stream. */
  handle(m: FromWorker): void;
  /** The worker is gone or the engine shuts down: mark closed and tell listeners, without messaging the worker. */
  finish(tellWorker: boolean): void;
  /** Native workers: what a replacement worker needs to continue this stream's transport (the dead worker's last report), if it can. */
  readonly resume?: SrtpResume | undefined;
  /** The stream moves to a replacement worker (a dead worker's stream being resumed). */
  moveTo?(slot: Slot): void;
  /** The replacement worker is ready: re-create the stream there and renegotiate. */
  resumeOn?(slot: Slot): void;
}

/** A tap proxy as the pool sees it. */
export interface PooledTap {
  handle(m: Extract<FromWorker, { ev: 'packets' | 'tapEnd' }>): void;
  /** The worker died: the sink ends with 'failed'. */
  lost(): void;
}

/** A worker thread or a worker process, as the pool drives it. */
export interface WorkerHandle {
  readonly kind: 'thread' | 'process';
  /** Node's threadId (-1 for a process). */
  readonly threadId: number;
  /** The worker process's pid (undefined for a thread). */
  readonly pid: number | undefined;
  /** For a process that ended: the last error it printed, if any. */
  readonly lastError: string | undefined;
  postMessage(m: ToWorker, transfer?: ArrayBuffer[]): void;
  onMessage(f: (m: FromWorker) => void): void;
  onError(f: (e: Error) => void): void;
  onExit(f: (code: number, signal: NodeJS.Signals | null) => void): void;
  terminate(): Promise<void>;
}

export type WorkerKind = 'werift' | 'native';

function threadWorker(setup: WorkerSetup): WorkerHandle {
  const worker = new Worker(ENTRY, { workerData: setup, name: `atrium-media-${setup.index}` } as ConstructorParameters<typeof Worker>[1]);
  return {
    kind: 'thread',
    threadId: worker.threadId,
    pid: undefined,
    lastError: undefined,
    postMessage: (m, transfer) => worker.postMessage(m, transfer),
    onMessage: (f) => void worker.on('message', f),
    onError: (f) => void worker.on('error', f),
    onExit: (f) => void worker.on('exit', (code) => f(code, null)),
    terminate: async () => void (await worker.terminate()),
  };
}

/** What a dying process printed last (its uncaught error), for the log. */
const STDERR_TAIL = 4000;
/** A worker process that does not stop on SIGTERM gets SIGKILL after this. */
const KILL_AFTER_MS = 2000;

function processWorker(setup: WorkerSetup): WorkerHandle {
  const child: ChildProcess = fork(fileURLToPath(ENTRY), [], {
    serialization: 'advanced',
    env: { ...process.env, ATRIUM_MEDIA_WORKER: JSON.stringify(setup) },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let tail = '';
  let lastError: string | undefined;
  child.stderr!.on('data', (d: Buffer) => {
    process.stderr.write(d);
    tail = (tail + d.toString()).slice(-STDERR_TAIL);
  });
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  child.once('exit', () => (exited = true));
  return {
    kind: 'process',
    threadId: -1,
    get pid() {
      return child.pid;
    },
    get lastError() {
      return lastError;
    },
    postMessage: (m) => {
      if (child.connected) child.send(m);
    },
    onMessage: (f) => void child.on('message', f as (m: unknown) => void),
    onError: (f) => void child.on('error', f),
    onExit: (f) =>
      void child.on('exit', (code, signal) => {
        lastError = /(?:^|\n)((?:\w*Error|Uncaught)[^\n]*)/.exec(tail)?.[1];
        f(code ?? -1, signal);
      }),
    terminate: async () => {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
      await exit;
      clearTimeout(t);
    },
  };
}

export interface Slot {
  index: number;
  worker: WorkerHandle;
  tid: number | undefined;
  /** The worker process (the server's own for a thread), once ready. */
  pid: number | undefined;
  ready: boolean;
  /** The worker is dead and waiting to be restarted: nothing is placed on it. */
  down: boolean;
  restarts: number;
  failedStarts: number;
  streams: Map<number, PooledStream>;
  taps: Map<number, PooledTap>;
  error: Error | undefined;
  /** Native workers: the worker's DTLS certificate (its replacement uses it too). */
  dtls: DtlsKeys | undefined;
  /** Streams of the dead worker this one replaces, resumed once it is ready. */
  resuming: PooledStream[];
}

interface Pending {
  slot: Slot;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);
/** A worker that dies before it is ready is restarted after this (doubling, capped), not at once, so a broken install cannot spin. */
const RESTART_BACKOFF_MS = 500;
const RESTART_BACKOFF_MAX_MS = 30_000;
/** Shutdown waits this long for the workers to close their peer connections. */
const SHUTDOWN_GRACE_MS = 1000;

export class WorkerPool {
  /** One entry per worker; undefined until that worker is first needed. */
  readonly #slots: (Slot | undefined)[];
  readonly #pending = new Map<number, Pending>();
  readonly #placements = new Map<string, { slot: Slot; streams: number }>();
  readonly #engine: WeriftEngineOptions;
  readonly kind: WorkerKind;
  readonly #log: EngineLog | undefined;
  #nextRid = 0;
  #closed = false;

  constructor(workers: number, options: { engine: WeriftEngineOptions; kind?: WorkerKind | undefined; log?: EngineLog | undefined; eager?: boolean | undefined }) {
    this.#engine = options.engine;
    this.kind = options.kind ?? 'werift';
    this.#log = options.log;
    this.#slots = Array.from({ length: workers }, (_, i) => (options.eager ? this.#spawn(i, 0, 0, undefined) : undefined));
  }

  get size(): number {
    return this.#slots.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  started(): Slot[] {
    return this.#slots.filter((s): s is Slot => s !== undefined);
  }

  slot(index: number): Slot | undefined {
    return this.#slots[index];
  }

  /** Placement keys (group names) with live streams on this worker. */
  placementsOf(slot: Slot): string[] {
    return [...this.#placements].filter(([, p]) => p.slot === slot).map(([k]) => k);
  }

  /**
   * The worker for a new up-stream: its key's worker while the key has live
   * streams, else the least loaded by stream count — a worker not started
   * yet counts as empty, and an empty running worker is preferred to it.
   */
  place(key: string | undefined): Slot {
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
    if ((!best || best.streams.size > 0) && unstarted !== undefined) return (this.#slots[unstarted] = this.#spawn(unstarted, 0, 0, undefined));
    if (!best) throw new Error('no media worker is running (the workers keep dying while starting; see the errors logged above)');
    return best;
  }

  /** A stream now lives on `slot`: it counts towards the worker's load and keeps its key there. */
  adopt(slot: Slot, stream: PooledStream): void {
    slot.streams.set(stream.h, stream);
    if (stream.key === undefined) return;
    const p = this.#placements.get(stream.key);
    if (p && p.slot === slot) p.streams++;
    else this.#placements.set(stream.key, { slot, streams: 1 });
  }

  /** A stream is no longer live: the worker's load and its placement key's count drop. */
  release(slot: Slot, stream: PooledStream): void {
    if (slot.streams.get(stream.h) !== stream) return;
    slot.streams.delete(stream.h);
    if (stream.key === undefined) return;
    const p = this.#placements.get(stream.key);
    if (p && p.slot === slot && --p.streams <= 0) this.#placements.delete(stream.key);
  }

  post(slot: Slot, m: ToWorker, transfer?: ArrayBuffer[]): void {
    if (slot.down) return;
    slot.worker.postMessage(m, transfer);
  }

  /** A method call on a stream: its result, or GONE when the worker no longer has the stream. */
  call(slot: Slot, h: number, method: CallMethod, args: unknown[]): Promise<unknown> {
    return this.request(slot, (rid) => ({ op: 'call', h, rid, method, args }));
  }

  request(slot: Slot, make: (rid: number) => ToWorker): Promise<unknown> {
    if (slot.down) return Promise.reject(new Error(GONE));
    const rid = ++this.#nextRid;
    return new Promise((resolve, reject) => {
      this.#pending.set(rid, { slot, resolve, reject });
      slot.worker.postMessage(make(rid));
    });
  }

  /** Ends every stream here, lets the workers close their peer connections, then terminates them. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    for (const slot of this.started()) this.#finishAll(slot);
    await Promise.all(
      this.started().map(async (slot) => {
        if (!slot.down) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([this.request(slot, (rid) => ({ op: 'closeAll', rid })).catch(() => {}), new Promise((r) => (timer = setTimeout(r, SHUTDOWN_GRACE_MS)))]);
          clearTimeout(timer);
        }
        await slot.worker.terminate();
      }),
    );
  }

  /**
   * A dead native worker's streams that its replacement can continue: the
   * up-streams whose keys it reported, and the down-streams (likewise keyed)
   * of those. Threads (werift keeps its own SRTP) and a worker that was not
   * ready resume nothing.
   */
  #resumable(slot: Slot): PooledStream[] {
    if (this.kind !== 'native' || !slot.ready || !slot.dtls || this.#closed) return [];
    const streams = [...slot.streams.values()].filter((s) => s.resume && s.moveTo && s.resumeOn);
    const ups = new Set(streams.filter((s) => s.direction === 'up').map((s) => s.h));
    return streams.filter((s) => s.direction === 'up' || ups.has((s as PooledStream & { sourceH?: number }).sourceH ?? -1));
  }

  /** Down-streams first (their up-streams would close them anyway), then up-streams, then taps. */
  #finishAll(slot: Slot): void {
    const streams = [...slot.streams.values()];
    for (const s of streams) if (s.direction === 'down') s.finish(false);
    for (const s of streams) if (s.direction === 'up') s.finish(false);
    const taps = [...slot.taps.values()];
    slot.taps.clear();
    for (const t of taps) t.lost();
  }

  #spawn(index: number, restarts: number, failedStarts: number, dtls: DtlsKeys | undefined): Slot {
    const setup: WorkerSetup = { index, kind: this.kind, engine: this.#engine, ...(dtls ? { dtls } : {}) };
    const worker = this.kind === 'native' ? processWorker(setup) : threadWorker(setup);
    const slot: Slot = {
      index,
      worker,
      tid: undefined,
      pid: undefined,
      ready: false,
      down: false,
      restarts,
      failedStarts,
      streams: new Map(),
      taps: new Map(),
      error: undefined,
      dtls,
      resuming: [],
    };
    worker.onMessage((m) => this.#onMessage(slot, m));
    worker.onError((err) => {
      slot.error = err;
    });
    worker.onExit((code, signal) => {
      // a process has no 'error' event for what killed it: the signal, or the error it printed
      if (!slot.error && signal) slot.error = new Error(`killed by ${signal}`);
      else if (!slot.error && worker.lastError) slot.error = new Error(worker.lastError);
      this.#onExit(slot, code);
    });
    return slot;
  }

  #onMessage(slot: Slot, m: FromWorker): void {
    switch (m.ev) {
      case 'ready': {
        slot.ready = true;
        slot.tid = m.tid;
        slot.pid = m.pid;
        slot.failedStarts = 0;
        if (m.dtls) slot.dtls = m.dtls;
        const resuming = slot.resuming;
        slot.resuming = [];
        // up-streams first: a down-stream is made on the worker once its source is answered there
        for (const s of resuming) if (s.direction === 'up' && slot.streams.get(s.h) === s) s.resumeOn?.(slot);
        return;
      }
      case 'reply':
      case 'probe': {
        const p = this.#pending.get(m.rid);
        if (!p) return;
        this.#pending.delete(m.rid);
        if (m.ev === 'probe' || m.ok) p.resolve(m.value);
        else p.reject(new Error(m.error));
        return;
      }
      case 'packets':
      case 'tapEnd':
        slot.taps.get(m.tap)?.handle(m);
        return;
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
    const streams = slot.streams.size;
    const err = slot.error;
    this.#log?.error(
      { err, worker: slot.index, tid: slot.tid, pid: slot.pid, exitCode: code, streams },
      `media worker ${slot.index}${slot.worker.kind === 'process' ? ` (process ${slot.pid ?? '?'})` : ''} stopped (${err ? err.message : `exit code ${code}`}); its ${streams} streams are closed and the worker is replaced`,
    );
    // Native workers: the streams whose transports a replacement can continue (pool.ts's header) move to it; the rest end.
    const kept = this.#resumable(slot);
    for (const s of kept) slot.streams.delete(s.h);
    this.#finishAll(slot);
    for (const [key, p] of this.#placements) if (p.slot === slot) this.#placements.delete(key);
    const failedStarts = slot.ready ? 0 : slot.failedStarts + 1;
    const restart = () => {
      if (this.#closed) return;
      const next = this.#spawn(slot.index, slot.restarts + 1, failedStarts, slot.dtls);
      this.#slots[slot.index] = next;
      for (const s of kept) {
        s.moveTo!(next);
        this.adopt(next, s);
        next.resuming.push(s);
      }
      if (kept.length > 0)
        this.#log?.info(
          { worker: slot.index, streams: kept.length },
          `media worker ${slot.index}: ${kept.length} of its streams are resumed on the new worker (the clients restart ICE; DTLS and SRTP continue)`,
        );
    };
    if (failedStarts === 0) restart();
    else setTimeout(restart, Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** (failedStarts - 1))).unref();
  }
}
