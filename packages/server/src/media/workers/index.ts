// Choosing the media engine: werift in worker threads (the default, one
// worker per core) or in the server's own thread (`workers: 0`).
import { availableParallelism } from 'node:os';
import type { MediaEngine } from '../engine.ts';
import { createWeriftEngine, type WeriftEngineOptions } from '../werift/engine.ts';
import { ThreadedEngine, createThreadedEngine, type EngineLog } from './engine.ts';

export { ThreadedEngine, createThreadedEngine, type EngineLog, type ThreadedEngineOptions, type WorkerInfo, type WorkerProbe } from './engine.ts';

export interface MediaOptions extends WeriftEngineOptions {
  /** Media worker threads: 0 runs werift in the calling thread; default os.availableParallelism(). */
  workers?: number;
}

export function createMediaEngine(options: MediaOptions = {}, log?: EngineLog): MediaEngine {
  const { workers = availableParallelism(), ...engine } = options;
  if (workers === 0) return createWeriftEngine(engine);
  return createThreadedEngine({ workers, engine, ...(log ? { log } : {}) });
}

/** Closes every stream; for the threaded engine, also waits until its workers have stopped. */
export async function closeMediaEngine(engine: MediaEngine): Promise<void> {
  if (engine instanceof ThreadedEngine) await engine.shutdown();
  else engine.close();
}
