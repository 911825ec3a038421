#!/usr/bin/env node
// The one test command (`npm test`). On a fresh machine it first brings what
// is missing (npm packages, and the Debian packages the tests need when run
// as root), then checks the code (lint, format, types: fast, and it stops at
// the first that fails) and runs every test file with node's test runner
// through tsx.
//   npm test                 checks, then every test
//   npm test -- FILTER...    checks, then only test files whose path contains a FILTER
//   npm test -- --skip-checks FILTER...   the tests alone (while iterating; CI never skips)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { typecheck } from './typecheck.mjs';

const root = join(fileURLToPath(import.meta.url), '..', '..');
process.chdir(root);

/** Debian packages the test suite drives for real (browser, Redis, TURN). */
// [package, a file it installs]: the browser, and `ip` for the loopback-only
// network namespaces the media tests run in.
const DEBIAN_PACKAGES = [
  ['chromium', ['/usr/bin/chromium']],
  ['iproute2', ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip']],
  ['util-linux', ['/usr/bin/unshare']],
];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function ensureNpmPackages() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  console.log('test: installing npm packages (npm ci)…');
  if (run('npm', ['ci', '--no-audit', '--no-fund']) !== 0) {
    console.error('test: "npm ci" failed; check the network access to the npm registry and try again');
    process.exit(1);
  }
}

function ensureDebianPackages() {
  const missing = DEBIAN_PACKAGES.filter(([, files]) => !files.some((f) => existsSync(f))).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    console.error(`test: these Debian packages are needed and missing: ${missing.join(' ')}\n` + `      install them with: sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  console.log(`test: installing ${missing.join(' ')} with apt-get…`);
  if (run('apt-get', ['update', '-q']) !== 0 || run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }) !== 0) {
    console.error('test: apt-get could not install the packages above');
    process.exit(1);
  }
}

/**
 * The native packet plane (packages/native): built with node-gyp when it is
 * missing or older than its sources (npm 11 may not have run its install
 * script). A failed build does not stop the tests: the server then runs its
 * JavaScript media engine (--media-engine auto), and the tests that need the
 * addon say they are skipped and why.
 */
async function ensureNativePlane() {
  const { ensureNative, isStale } = await import('../packages/native/build.mjs');
  if (!isStale()) return;
  const t0 = Date.now();
  console.log('test: building the native packet plane (node-gyp)…');
  const r = ensureNative({ quiet: true });
  if (r.ok) console.log(`test: native packet plane built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  else console.log(`test: the native packet plane could not be built, so the media tests run on the JavaScript engine and the native-only tests are skipped: ${r.reason.split('\n')[0]}`);
}

function findTests(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) findTests(p, out);
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}

/** Lint, format and type checks, cheapest first; exits at the first that fails, saying how to fix it. */
async function checkCode() {
  const biome = join(root, 'node_modules', '@biomejs', 'biome', 'bin', 'biome');
  const steps = [
    ['lint', ['lint', '--error-on-warnings', '.'], 'fix the lint errors above (see biome.jsonc for the rules), then run "npm run lint"'],
    ['format', ['format', '.'], 'run "npm run format" to format the files above'],
  ];
  for (const [name, args, fix] of steps) {
    const r = spawnSync(process.execPath, [biome, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) {
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      console.error(`test: the ${name} check failed: ${fix}`);
      process.exit(1);
    }
    console.log(`test: ${name} check passed`);
  }
  if (!(await typecheck())) {
    console.error('test: the type check failed (above); the tests were not run');
    process.exit(1);
  }
}

ensureNpmPackages();
ensureDebianPackages();
await ensureNativePlane();
const args = process.argv.slice(2);
const skipChecks = args.includes('--skip-checks');
const filters = args.filter((a) => a !== '--skip-checks');
if (!skipChecks) await checkCode();
const files = ['packages', 'bench']
  .filter((d) => existsSync(d))
  .flatMap((d) => findTests(d))
  .sort()
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error(`test: no test files match ${filters.join(' ')}`);
  process.exit(1);
}
/**
 * Files that measure how media adapts to bandwidth: they run alone, after
 * the rest, so another file's CPU load does not pass for congestion.
 */
const ALONE = ['packages/server/test/media/quality.test.ts'];
const shared = files.filter((f) => !ALONE.includes(f));
const alone = files.filter((f) => ALONE.includes(f));
const testArgs = ['--import', 'tsx', '--test', '--test-timeout=120000'];
const totals = { pass: 0, fail: 0 };

/** Runs node's test runner, passing its output through and adding up its closing counts. */
function runTests(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['inherit', 'pipe', 'inherit'] });
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4000);
    });
    child.on('close', (code) => {
      for (const key of ['pass', 'fail']) {
        const m = new RegExp(`^# ${key} (\\d+)$`, 'm').exec(tail);
        if (m) totals[key] += Number(m[1]);
      }
      resolve(code ?? 1);
    });
  });
}

let status = shared.length ? await runTests([...testArgs, '--test-concurrency=2', ...shared]) : 0;
if (alone.length) {
  console.log(`test: running ${alone.join(', ')} on its own`);
  const s2 = await runTests([...testArgs, '--test-concurrency=1', ...alone]);
  if (status === 0) status = s2;
}
// One closing line for both runs.
console.log(`${totals.pass} passed, ${totals.fail} failed`);
process.exit(status);
