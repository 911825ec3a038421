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
// [package, a file it installs]: the browser, `ip` for the loopback-only
// network namespaces the media tests run in and the hosts of the cluster
// test, ffprobe/ffmpeg, the judges of the recordings, and the servers a
// cluster runs on (packages/server/test/cluster/).
const DEBIAN_PACKAGES = [
  ['chromium', ['/usr/bin/chromium']],
  ['ffmpeg', ['/usr/bin/ffprobe']],
  ['iproute2', ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip']],
  ['util-linux', ['/usr/bin/unshare']],
  // Cutting a client's network for a fault test (packages/server/test/faults/network-cut.test.ts).
  ['nftables', ['/usr/sbin/nft', '/sbin/nft']],
  ['redis-server', ['/usr/bin/redis-server']],
  ['haproxy', ['/usr/sbin/haproxy']],
  ['coturn', ['/usr/bin/turnserver']],
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

/**
 * Debian packages some tests use and skip without, saying so: nftables
 * impairs links (loss, rate caps) in the media quality tests (no netem here).
 */
const OPTIONAL_DEBIAN_PACKAGES = [['nftables', ['/usr/sbin/nft', '/sbin/nft']]];

function ensureOptionalDebianPackages() {
  const missing = OPTIONAL_DEBIAN_PACKAGES.filter(([, files]) => !files.some((f) => existsSync(f))).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    console.error(`test: ${missing.join(' ')} missing: the impaired-link media tests will be skipped (install with: sudo apt-get install -y ${missing.join(' ')})`);
    return;
  }
  console.log(`test: installing ${missing.join(' ')} with apt-get…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (
    run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env }) !== 0 &&
    (run('apt-get', ['update', '-q']) !== 0 || run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env }) !== 0)
  ) {
    console.error(`test: apt-get could not install ${missing.join(' ')}: the impaired-link media tests will be skipped`);
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
ensureOptionalDebianPackages();
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
 * Files that run alone, after the rest: those that measure how media adapts
 * to bandwidth (another file's CPU load must not pass for congestion), and
 * the multi-host deployment.
 */
const ALONE = [
  'packages/server/test/media/quality.test.ts',
  'packages/server/test/media/impaired.test.ts',
  // Three nodes, Redis, HAProxy and two Chromiums: a whole deployment on two cores.
  'packages/server/test/cluster/cluster-hosts.test.ts',
];
const shared = files.filter((f) => !ALONE.includes(f));
const alone = files.filter((f) => ALONE.includes(f));
// The runner applies the timeout to each file as a whole too: a table of 160
// rows against a real server takes minutes when both cores are busy.
const testArgs = ['--import', 'tsx', '--test', '--test-timeout=300000'];
const totals = { pass: 0, fail: 0, cancelled: 0 };

/** The test files a top-level result belongs to. */
function filesOf(block) {
  if (block.name.endsWith('.test.ts')) return [relative(root, block.name)];
  const wrapped = /^(\S+\.test\.ts) inside a loopback-only network namespace$/.exec(block.name);
  if (wrapped) return files.filter((f) => f.endsWith(`/${wrapped[1]}`));
  return block.file ? [block.file] : [];
}

/**
 * Runs node's test runner, passing its output through and adding up its
 * closing counts. Resolves with the exit code and the files that failed (the
 * runner's top-level TAP lines name each file).
 */
function runTests(args, { count = true } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['inherit', 'pipe', 'inherit'] });
    let tail = '';
    let line = '';
    const failed = new Set();
    const durations = new Map();
    /** The result being read: its YAML block (duration, location) follows its line. */
    let block;
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      const lines = (line + text).split('\n');
      line = lines.pop() ?? '';
      for (const l of lines) {
        // A top-level result: a test of some file (the runner lists a file's top-level
        // tests at the top), a file that failed as a whole, or a namespace wrapper.
        const m = /^(ok|not ok) \d+ - (.+)$/.exec(l);
        if (m) {
          block = { failed: m[1] === 'not ok', name: m[2], ms: 0, file: undefined };
          continue;
        }
        if (!block) continue;
        const d = /^ {2}duration_ms: ([\d.]+)$/.exec(l);
        if (d) block.ms = Number(d[1]);
        const loc = /^ {2}location: '(.+?\.test\.ts):/.exec(l);
        if (loc) block.file = relative(root, loc[1]);
        if (l === '  ...') {
          for (const f of filesOf(block)) {
            durations.set(f, (durations.get(f) ?? 0) + block.ms);
            if (block.failed) failed.add(f);
          }
          block = undefined;
        }
      }
    });
    child.on('close', (code) => {
      if (count) {
        for (const key of ['pass', 'fail', 'cancelled']) {
          const m = new RegExp(`^# ${key} (\\d+)$`, 'm').exec(tail);
          if (m) totals[key] += Number(m[1]);
        }
      }
      // With a single file the runner runs it in its own process without a file-level line.
      const files = args.filter((a) => a.endsWith('.test.ts'));
      if (code !== 0 && failed.size === 0 && files.length === 1) failed.add(files[0]);
      resolve({ code: code ?? 1, failed: [...failed], durations });
    });
  });
}

const started = performance.now();
const first = shared.length ? await runTests([...testArgs, '--test-concurrency=2', ...shared]) : { code: 0, failed: [], durations: new Map() };
let status = first.code;
if (alone.length) {
  console.log(`test: running ${alone.join(', ')} on its own`);
  const second = await runTests([...testArgs, '--test-concurrency=1', ...alone]);
  if (status === 0) status = second.code;
  first.failed.push(...second.failed);
  for (const [f, ms] of second.durations) first.durations.set(f, ms);
}

// A browser or media test that failed while another file loaded both cores
// gets one more run, on its own. A file that fails again fails the run; one
// that passes alone is named below as load-sensitive, so it gets looked at.
const flaky = [];
if (status !== 0 && first.failed.length > 0 && first.failed.length <= 5) {
  const still = [];
  for (const f of first.failed) {
    console.log(`test: ${f} failed; running it once more on its own`);
    const again = await runTests([...testArgs, '--test-concurrency=1', f], { count: false });
    (again.code === 0 ? flaky : still).push(f);
  }
  if (still.length === 0) status = 0;
}

const slowest = [...first.durations].sort((a, b) => b[1] - a[1]).slice(0, 8);
console.log(`test: the slowest files (by the results the runner places in them): ${slowest.map(([f, ms]) => `${f.replace(/^packages\/[^/]+\/test\//, '')} ${(ms / 1000).toFixed(0)} s`).join(', ')}`);
if (flaky.length) console.log(`test: LOAD-SENSITIVE (failed beside other files, passed alone): ${flaky.join(', ')}`);
// One closing line for both runs.
console.log(
  `${totals.pass} passed, ${totals.fail} failed, ${totals.cancelled} cancelled (timed out)${flaky.length ? ` (${flaky.length} file(s) passed when run again alone)` : ''}; ${((performance.now() - started) / 1000).toFixed(0)} s`,
);
process.exit(status);
