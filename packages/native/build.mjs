#!/usr/bin/env node
// Builds the addon with node-gyp against the headers of the Node.js that
// runs this script (its include/node folder, OpenSSL's headers included), so
// nothing is downloaded. Run by `npm install` (this package's install
// script), by `npm start` and `npm test` when the addon is missing or older
// than its sources, and by `npm run build -w @atrium/native`.
//
//   node build.mjs            build when missing or stale
//   node build.mjs --force    always rebuild
//   node build.mjs --install  as npm's install script: never fails the install
//                             (Atrium then runs its JavaScript media engine and says why)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ADDON = join(here, 'build', 'Release', 'atrium_native.node');

function newestSource() {
  let newest = statSync(join(here, 'binding.gyp')).mtimeMs;
  for (const f of readdirSync(join(here, 'src'))) newest = Math.max(newest, statSync(join(here, 'src', f)).mtimeMs);
  return newest;
}

/** True when the addon is missing or older than a source file. */
export function isStale() {
  return !existsSync(ADDON) || statSync(ADDON).mtimeMs < newestSource();
}

/** node-gyp: the one npm runs scripts with, an installed one, or the one bundled with npm. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not installed as a package */
  }
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c && existsSync(c));
}

/** The folder holding include/node for this Node.js, or undefined (node-gyp would then download headers). */
function nodeDir() {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) && existsSync(join(prefix, 'include', 'node', 'openssl')) ? prefix : undefined;
}

/**
 * Builds when needed. Returns { ok: true } or { ok: false, reason } with a
 * sentence saying what is missing and how to fix it.
 */
export function ensureNative({ force = false, quiet = false } = {}) {
  if (!force && !isStale()) return { ok: true, built: false };
  const gyp = findNodeGyp();
  if (!gyp) return { ok: false, reason: 'node-gyp was not found (it comes with npm); install npm, or run "npm install -g node-gyp"' };
  const dir = nodeDir();
  if (!dir) return { ok: false, reason: `the Node.js headers (include/node with OpenSSL's) are not next to ${process.execPath}; install the Node.js package that ships them` };
  for (const tool of ['make', 'g++', 'python3']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return { ok: false, reason: `${tool} is missing: install a C++ tool chain (Debian: apt-get install build-essential python3)` };
  }
  if (!quiet) console.error('atrium: building the native packet plane (node-gyp)…');
  const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${dir}`, '--release', '-j', 'max'], { cwd: here, stdio: quiet ? 'pipe' : ['ignore', 'inherit', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(ADDON)) {
    const tail = quiet ? `\n${`${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-15).join('\n')}` : '';
    return { ok: false, reason: `node-gyp failed (exit ${r.status ?? r.signal}); run "npm run build -w @atrium/native" to see why${tail}` };
  }
  return { ok: true, built: true };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const install = process.argv.includes('--install');
  const r = ensureNative({ force: process.argv.includes('--force') });
  if (!r.ok) {
    console.error(`atrium: the native packet plane was not built: ${r.reason}`);
    if (install) console.error('atrium: Atrium still works: it runs its JavaScript media engine instead (and says so when it starts).');
    process.exit(install ? 0 : 1);
  }
}
