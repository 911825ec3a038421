// Choosing the media engine. `engine`:
//   auto (default)  native when its addon loads, else js (and the log says why, once)
//   native          werift + the native packet plane, in worker processes (one per core)
//   js              werift in worker threads (one per core), or in the server's own thread (`workers: 0`)
import { availableParallelism } from 'node:os';
import type { MediaEngine } from '../engine.ts';
import { loadNativeAddon } from '../native/addon.ts';
import { createWeriftEngine, type WeriftEngineOptions } from '../werift/engine.ts';
import { ThreadedEngine, createThreadedEngine, type EngineLog } from './engine.ts';

export { ThreadedEngine, createThreadedEngine, type EngineLog, type ThreadedEngineOptions, type WorkerInfo, type WorkerProbe } from './engine.ts';

export type EngineChoice = 'auto' | 'native' | 'js';
export const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'native', 'js'];

export interface MediaOptions extends WeriftEngineOptions {
  /** Media workers: 0 runs werift in the calling thread (js only); default os.availableParallelism(). */
  workers?: number;
  engine?: EngineChoice;
}

export function createMediaEngine(options: MediaOptions = {}, log?: EngineLog): MediaEngine {
  const { workers = availableParallelism(), engine: choice = 'auto', ...engine } = options;
  const logOption = log ? { log } : {};
  if (choice !== 'js') {
    const load = loadNativeAddon();
    if (load.ok && workers === 0 && choice === 'native')
      throw new Error('the native media engine runs in worker processes (a fault in native code must not take the server down): use --media-workers 1 or more');
    if (load.ok && workers > 0) {
      log?.info({ engine: 'native', workers }, `media: native packet plane in ${workers} worker process${workers === 1 ? '' : 'es'}`);
      return createThreadedEngine({ workers, kind: 'native', engine, ...logOption });
    }
    if (!load.ok) {
      if (choice === 'native') throw new Error(`--media-engine native: the native packet plane is not available: ${load.reason}`);
      log?.warn({ engine: 'js', reason: load.reason }, `media: the native packet plane is not available (${load.reason}); using the JavaScript media engine`);
    }
  }
  if (workers === 0) return createWeriftEngine(engine);
  return createThreadedEngine({ workers, kind: 'werift', engine, ...logOption });
}

/** Closes every stream; for the threaded engine, also waits until its workers have stopped. */
export async function closeMediaEngine(engine: MediaEngine): Promise<void> {
  if (engine instanceof ThreadedEngine) await engine.shutdown();
  else engine.close();
}
