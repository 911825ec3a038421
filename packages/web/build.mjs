// Builds the web app into packages/web/dist with Vite, and tells whether a
// build is needed (dist missing, or older than any source it is made of:
// the app, the client SDK and the protocol schemas). Used by `npm start`
// (scripts/start.mjs), by the browser tests, and by `npm run build -w @atrium/web`.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = dirname(fileURLToPath(import.meta.url));
export const DIST_DIR = join(WEB_DIR, 'dist');
const PACKAGES = dirname(WEB_DIR);
const SOURCES = [
  join(WEB_DIR, 'src'),
  join(WEB_DIR, 'index.html'),
  join(WEB_DIR, 'vite.config.mjs'),
  join(WEB_DIR, 'package.json'),
  join(PACKAGES, 'client', 'src'),
  join(PACKAGES, 'protocol', 'src'),
];

function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    if (entry.isFile() && entry.name.endsWith('.test.ts')) continue;
    newest = Math.max(newest, newestMtime(join(path, entry.name)));
  }
  return newest;
}

/** Why the app must be (re)built, or null when dist is up to date. */
export function buildReason() {
  const index = join(DIST_DIR, 'index.html');
  if (!existsSync(index)) return 'it has not been built yet';
  const built = statSync(index).mtimeMs;
  const newest = Math.max(...SOURCES.map(newestMtime));
  return newest > built ? 'its sources changed since the last build' : null;
}

/** Builds the app with Vite (quietly unless `verbose`). */
export async function buildWebApp({ verbose = false } = {}) {
  const { build } = await import('vite');
  await build({ root: WEB_DIR, configFile: join(WEB_DIR, 'vite.config.mjs'), logLevel: verbose ? 'info' : 'warn' });
}

/** Builds the app if it is missing or stale; returns what happened. */
export async function ensureWebApp({ verbose = false, log = console.log } = {}) {
  const reason = buildReason();
  if (reason === null) return 'up-to-date';
  log(`atrium: building the web app (${reason})…`);
  const started = Date.now();
  await buildWebApp({ verbose });
  log(`atrium: web app built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 'built';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildWebApp({ verbose: true });
}
