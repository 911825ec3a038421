#!/usr/bin/env node
// Type-checks every workspace (`npm run typecheck`; `npm test` runs it first).
// The tests run under tsx, which strips types without checking them, so this
// is where a type error is caught. One `tsc --noEmit` per tsconfig, two at a
// time, incremental (build info under node_modules/.cache) so a rerun after a
// small change is quick. Exits non-zero, naming the projects, on any error.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
/** Every tsconfig in the repository: each package, with its tests, examples and scripts. */
export const PROJECTS = ['packages/protocol', 'packages/client', 'packages/server', 'packages/web', 'bench', 'bench/sfu'];

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const cache = join(root, 'node_modules', '.cache', 'atrium-tsc');

function check(project) {
  return new Promise((resolve) => {
    const info = join(cache, `${project.replaceAll('/', '_')}.tsbuildinfo`);
    const child = spawn(process.execPath, [tsc, '-p', project, '--noEmit', '--incremental', '--tsBuildInfoFile', info, ...(process.stdout.isTTY ? ['--pretty'] : [])], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ project, ok: code === 0, out }));
  });
}

export async function typecheck(projects = PROJECTS) {
  mkdirSync(cache, { recursive: true });
  const started = performance.now();
  const queue = [...projects];
  const results = [];
  const lanes = Math.max(1, Math.min(2, availableParallelism()));
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        const r = await check(p);
        if (!r.ok) process.stdout.write(`\n── type errors in ${r.project} ──\n${r.out}`);
        results.push(r);
      }
    }),
  );
  const failed = results.filter((r) => !r.ok).map((r) => r.project);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (failed.length) {
    console.error(`typecheck: type errors in ${failed.join(', ')} (above); fix them, then run "npm run typecheck" again`);
    return false;
  }
  console.log(`typecheck: ${projects.length} projects, no errors (${seconds} s)`);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exit((await typecheck()) ? 0 : 1);
}
