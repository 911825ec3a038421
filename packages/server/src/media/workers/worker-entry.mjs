// The entry of a media worker thread. The server is TypeScript run through
// tsx, and a worker starts with a fresh module loader, so it registers tsx
// before loading the worker proper (harmless when the parent's `--import
// tsx` is inherited).
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
