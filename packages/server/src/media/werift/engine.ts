// The werift implementation of the media engine.
import type { BundleSession, BundleSessionOptions, DownStream, DownStreamOptions, MediaEngine, SourceStream, SourceStreamOptions, UpStream, UpStreamOptions } from '../engine.ts';
import { WeriftBundleSession } from './bundle.ts';
import type { WeriftEngineOptions } from './config.ts';
import { WeriftDownStream } from './down-stream.ts';
import { WeriftSourceStream, WeriftSourceUp } from './source-stream.ts';
import { WeriftUpStream } from './up-stream.ts';

export type { WeriftEngineOptions };

export class WeriftEngine implements MediaEngine {
  readonly name = 'werift';
  #ups = new Set<WeriftUpStream>();
  #sources = new Set<WeriftSourceStream>();
  #downs = new Set<WeriftDownStream>();

  constructor(private readonly options: WeriftEngineOptions = {}) {}

  createUpStream(options: UpStreamOptions): UpStream {
    const up = new WeriftUpStream(this.options, options, (s) => this.#ups.delete(s));
    this.#ups.add(up);
    return up;
  }

  createSourceStream(options: SourceStreamOptions): SourceStream {
    const source = new WeriftSourceStream(options, (s) => this.#sources.delete(s));
    this.#sources.add(source);
    return source;
  }

  createDownStream(options: DownStreamOptions): DownStream {
    const source = options.source;
    const ours = (source instanceof WeriftUpStream && this.#ups.has(source)) || (source instanceof WeriftSourceUp && [...this.#sources].some((s) => s.up === source));
    if (!ours || source.closed) {
      throw new Error(`down-stream ${options.id}: its source ${source.id} is not an open up-stream of this werift engine`);
    }
    const down = new WeriftDownStream(this.options, { ...options, source: source as WeriftUpStream | WeriftSourceUp }, (s) => this.#downs.delete(s));
    this.#downs.add(down);
    return down;
  }

  createBundleSession(options: BundleSessionOptions): BundleSession {
    return new WeriftBundleSession(this.options, options, this);
  }

  close(): void {
    for (const d of [...this.#downs]) d.close();
    for (const u of [...this.#ups]) u.close();
    for (const s of [...this.#sources]) s.close();
  }
}

export function createWeriftEngine(options: WeriftEngineOptions = {}): MediaEngine {
  return new WeriftEngine(options);
}
