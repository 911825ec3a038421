// Loads the addon built by build.mjs. `load()` returns the module, or throws
// an Error saying why it cannot be used (not built, or built for another
// Node.js), so that the server can say so once and run its JavaScript engine.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ADDON } from './build.mjs';

let cached;

export function load() {
  if (cached) return cached;
  if (!existsSync(ADDON)) throw new Error(`the addon is not built (${ADDON} is missing); run "npm run build -w @atrium/native"`);
  try {
    cached = createRequire(import.meta.url)(ADDON);
  } catch (e) {
    throw new Error(`the addon at ${ADDON} could not be loaded (${e instanceof Error ? e.message : String(e)}); rebuild it with "npm run build -w @atrium/native"`);
  }
  return cached;
}

export { ADDON };
