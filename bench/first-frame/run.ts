// `npm run bench:first-frame`: join → first decoded frame in Chromium, on
// each media engine. See bench/README.md.
//
//   npm run bench:first-frame -- [--joins 20] [--engines native,js] [--json FILE]
//
// One Atrium server per engine (`atrium serve --media-engine E`), one
// Chromium page publishing its fake camera and microphone with the test
// suite's Galène client, and a second page that joins the group N times in a
// row as a fresh subscriber (page.js) and times each join from opening its
// WebSocket to its first decoded video frame. As root it runs inside a
// loopback-only network namespace, as the media tests do.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launchChromium, until } from '../../packages/server/test/support/browser.ts';
import { inLoopbackNetns } from '../../packages/server/test/media/support/netns.ts';
import { ServerProcess } from '../sfu/server.ts';

const USAGE = `usage: npm run bench:first-frame -- [options]
  --joins N        subscriber joins per engine (default 20)
  --engines LIST   media engines, comma-separated: native, js (default native,js)
  --json FILE      every join's steps, as JSON
  --no-netns       do not enter a loopback-only network namespace`;

function fail(msg: string): never {
  console.error(`bench:first-frame: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        joins: { type: 'string', default: '20' },
        engines: { type: 'string', default: 'native,js' },
        json: { type: 'string' },
        'no-netns': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
})();
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const joins = Number(values.joins);
if (!Number.isInteger(joins) || joins < 1 || joins > 500) fail(`--joins must be a whole number from 1 to 500, not "${values.joins}"`);
const engines = values.engines.split(',').map((e) => e.trim());
for (const e of engines) if (e !== 'native' && e !== 'js') fail(`unknown engine "${e}" (native or js)`);

if (!values['no-netns'] && !inLoopbackNetns()) {
  if (process.getuid?.() === 0 && spawnSync('unshare', ['-n', 'true']).status === 0) {
    const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
    const cmd = [process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)].map(q).join(' ');
    const r = spawnSync('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${cmd}`], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  console.error('bench:first-frame: not root (or `unshare -n` failed), so the run uses the host network on 127.0.0.1');
}

const CLIENT = readFileSync(fileURLToPath(new URL('../../packages/server/test/media/support/galene-browser-client.js', import.meta.url)), 'utf8');
const PAGE = readFileSync(fileURLToPath(new URL('./page.js', import.meta.url)), 'utf8');
const STEPS = ['open', 'joined', 'offer', 'ice', 'connected', 'track', 'frame'] as const;
type Steps = Partial<Record<(typeof STEPS)[number], number>>;

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

// The whole run must end even if a page hangs.
setTimeout(
  () => {
    console.error('bench:first-frame: the run took longer than its budget; giving up');
    process.exit(1);
  },
  engines.length * (60_000 + joins * 25_000),
).unref();

console.log(`bench:first-frame — ${new Date().toISOString()} — ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load ${loadavg()[0]!.toFixed(2)}`);
console.log(`${joins} joins per engine; network namespace: ${inLoopbackNetns() ? 'loopback only' : 'host'}`);
const report: Record<string, Steps[]> = {};
let failed = false;
const browser = await launchChromium(['--autoplay-policy=no-user-gesture-required']);
try {
  for (const engine of engines) {
    const server = await ServerProcess.start({ groups: ['first-frame'], mediaEngine: engine });
    try {
      const ws = server.wsUrl;
      const pub = await browser.newPage();
      await pub.goto(`${server.url}/`);
      await pub.addScriptTag({ content: CLIENT });
      const js = JSON.stringify;
      await pub.evaluate(`(async () => {
        window.pub = new TestGaleneClient();
        await window.pub.connect(${js(ws)}, 'first-frame', 'publisher', '');
        window.pubId = await window.pub.publish();
      })()`);
      await until('the publisher connected', async () => (await pub.evaluate('window.pub.upState(window.pubId)')) === 'connected', 30_000);
      const sub = await browser.newPage();
      await sub.goto(`${server.url}/`);
      await sub.addScriptTag({ content: PAGE });
      // One join to warm up (code loaded on first use on both sides), not counted.
      const runs: Steps[] = [];
      for (let i = 0; i <= joins; i++) {
        try {
          const steps = (await sub.evaluate(`joinToFirstFrame(${js(ws)}, 'first-frame', 'sub${i}', 20000)`)) as Steps;
          if (i > 0) runs.push(steps);
          process.stderr.write(`  … ${engine} join ${i === 0 ? 'warm-up' : i}: first frame after ${steps.frame?.toFixed(0)} ms (load ${loadavg()[0]!.toFixed(2)})\n`);
        } catch (e) {
          failed = true;
          console.error(`bench:first-frame: ${engine} join ${i}: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 300));
      }
      report[engine] = runs;
      await sub.close();
      await pub.close();
    } finally {
      await server.stop();
    }
  }
} finally {
  await browser.close();
}

const f = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
console.log('');
console.log('engine  joins  first frame p50  p95  min  max (ms)   median step times from the WebSocket opening (ms)');
for (const [engine, runs] of Object.entries(report)) {
  const frames = runs.map((r) => r.frame).filter((x): x is number => x !== undefined);
  const med = STEPS.map(
    (s) =>
      `${s} ${f(
        percentile(
          runs.map((r) => r[s]).filter((x): x is number => x !== undefined),
          50,
        ),
      )}`,
  ).join(', ');
  console.log(
    `${engine.padEnd(6)}  ${String(frames.length).padStart(5)}  ${f(percentile(frames, 50)).padStart(15)}  ${f(percentile(frames, 95)).padStart(3)}  ${f(Math.min(...frames)).padStart(3)}  ${f(Math.max(...frames)).padStart(3)}        ${med}`,
  );
}
const bar = 250;
for (const [engine, runs] of Object.entries(report)) {
  const p50 = percentile(
    runs.map((r) => r.frame).filter((x): x is number => x !== undefined),
    50,
  );
  console.log(`${Number.isFinite(p50) && p50 <= bar ? 'PASS' : 'FAIL'}  ${engine}: join → first decoded frame p50 ≤ ${bar} ms: ${f(p50)} ms`);
}
if (values.json) {
  await writeFile(values.json, JSON.stringify({ date: new Date().toISOString(), joins, report }, null, 2));
  console.log(`\nevery join written to ${values.json}`);
}
process.exit(failed ? 1 : 0);
