// `npm run bench:sfu`: the SFU benchmark. See bench/README.md.
//
//   npm run bench:sfu -- [--shapes 1x5,1x10,1x20,4x4,10x10,2rooms,2rooms-sat]
//                        [--seconds 10] [--rate PPS_PER_PUBLISHER] [--workers N]
//                        [--packet-size 1100] [--json FILE] [--server-cpu-prof DIR]
//                        [--compare janus] [--repeat N] [--engine auto|native|js]
//
// As root it runs itself inside a fresh loopback-only network namespace
// (`unshare -n`), as the media tests do, so Atrium and Janus see the same
// single interface.
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { inLoopbackNetns } from '../../packages/server/test/media/support/netns.ts';
import { type Sfu, type Shape, type ShapeResult, runShape } from './bench.ts';
import { compare, compareTable, compareVerdicts } from './compare.ts';
import { janusMissing } from './janus.ts';
import { summarise } from './profile.ts';
import { table, verdicts } from './report.ts';
import { supportsMediaWorkers } from './server.ts';

const USAGE = `usage: npm run bench:sfu -- [options]
  --shapes LIST        comma-separated: PxS (P publishers, S subscribers, one room),
                       2rooms (two busy rooms of 1x20 at 1500 packets/s each),
                       2rooms-sat (a 1x20 room at 4x the
                       rate next to a normal 1x20 room)
                       (default 1x5,1x10,1x20,4x4,10x10,2rooms,2rooms-sat)
  --seconds N          steady-state window per shape (default 10)
  --rate PPS           RTP packets/s per publisher (default: 500, or less so that
                       a shape forwards at most 10000 packets/s)
  --workers N          pass --media-workers N to the server (default 2 when the
                       server knows the flag; 0 = in-process)
  --packet-size B      RTP packet size, header included (default 1100)
  --json FILE          every figure, as JSON
  --server-cpu-prof DIR  run the server with --cpu-prof into DIR and print its
                       top self-time functions
  --compare janus      run every shape on Atrium and on Janus's VideoRoom (Debian
                       package janus) in turn and print both CPU costs per
                       forwarded packet and their ratio
                       (default shapes then 1x1,1x10,1x20,4x4,10x10)
  --repeat N           run every shape N times and report medians
                       (default 3 with --compare, else 1)
  --engine E           Atrium's --media-engine: auto, native or js (default: the
                       server's own default, auto; native with --compare)
  --janus-event-loops N  Janus's event_loops setting (default 0, Janus's default:
                       one loop thread per handle; N: N shared loop threads)
  --no-netns           do not enter a loopback-only network namespace`;

function fail(msg: string): never {
  console.error(`bench:sfu: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        shapes: { type: 'string' },
        seconds: { type: 'string', default: '10' },
        rate: { type: 'string' },
        workers: { type: 'string' },
        'packet-size': { type: 'string', default: '1100' },
        json: { type: 'string' },
        'server-cpu-prof': { type: 'string' },
        compare: { type: 'string' },
        repeat: { type: 'string' },
        engine: { type: 'string' },
        'janus-event-loops': { type: 'string' },
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

// Same namespace for every server under test: re-run inside `unshare -n` with only lo up.
if (!values['no-netns'] && !inLoopbackNetns()) {
  if (process.getuid?.() === 0 && spawnSync('unshare', ['-n', 'true']).status === 0) {
    const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
    const cmd = [process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)].map(q).join(' ');
    const r = spawnSync('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${cmd}`], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  console.error('bench:sfu: not root (or `unshare -n` failed), so the run uses the host network on 127.0.0.1 rather than a loopback-only namespace');
}

const num = (name: string, v: string | undefined, min: number, max: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} must be a number from ${min} to ${max}, not "${v}"`);
  return n;
};
const seconds = num('seconds', values.seconds, 1, 600)!;
const rateArg = num('rate', values.rate, 1, 20000);
const packetSize = num('packet-size', values['packet-size'], 64, 1400)!;
const workersArg = num('workers', values.workers, 0, 64);
if (values.compare !== undefined && values.compare !== 'janus') fail(`--compare knows only "janus", not "${values.compare}"`);
const comparing = values.compare === 'janus';
const janusEventLoops = num('janus-event-loops', values['janus-event-loops'], 0, 64) ?? 0;
const repeat = num('repeat', values.repeat, 1, 20) ?? (comparing ? 3 : 1);
if (values.engine !== undefined && !['auto', 'native', 'js'].includes(values.engine)) fail(`--engine must be auto, native or js, not "${values.engine}"`);
const engine = values.engine ?? (comparing ? 'native' : undefined);
if (comparing) {
  const missing = janusMissing();
  if (missing) {
    console.error(`bench:sfu: --compare janus cannot run: ${missing}`);
    process.exit(1);
  }
}

const autoRate = (p: number, s: number) => rateArg ?? Math.max(1, Math.min(500, Math.floor(10000 / (p * s))));

function shapeOf(name: string): Shape {
  if (name === '2rooms') {
    // Two busy rooms: enough work that each worker thread needs a core of its own.
    const rate = rateArg ?? 1500;
    return {
      name,
      rooms: [
        { group: 'room-a', publishers: 1, subscribers: 20, rate },
        { group: 'room-b', publishers: 1, subscribers: 20, rate },
      ],
    };
  }
  if (name === '2rooms-sat') {
    const rate = rateArg ?? 500;
    return {
      name,
      rooms: [
        { group: 'busy', publishers: 1, subscribers: 20, rate: rate * 4 },
        { group: 'calm', publishers: 1, subscribers: 20, rate },
      ],
    };
  }
  const m = /^(\d+)x(\d+)$/.exec(name);
  if (!m) fail(`unknown shape "${name}"`);
  const p = Number(m[1]);
  const s = Number(m[2]);
  if (p < 1 || s < 1 || p * s > 400) fail(`shape ${name}: publishers and subscribers must be at least 1 and at most 400 down-streams in all`);
  return { name, rooms: [{ group: 'bench', publishers: p, subscribers: s, rate: autoRate(p, s) }] };
}

const shapes = (values.shapes ?? (comparing ? '1x1,1x10,1x20,4x4,10x10' : '1x5,1x10,1x20,4x4,10x10,2rooms,2rooms-sat')).split(',').map((s) => shapeOf(s.trim()));
const workersSupported = supportsMediaWorkers();
const mediaWorkers = workersSupported ? (workersArg ?? 2) : undefined;
if (workersArg !== undefined && !workersSupported) console.error('bench:sfu: this server has no --media-workers flag yet; the engine runs in the server process');

// The whole run must end even if a peer hangs.
const sfus: Sfu[] = comparing ? ['atrium', 'janus'] : ['atrium'];
const budgetMs = shapes.length * sfus.length * repeat * (seconds + 90) * 1000;
setTimeout(() => {
  console.error(`bench:sfu: the run took longer than ${budgetMs / 1000} s; giving up`);
  process.exit(1);
}, budgetMs).unref();

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
console.log(`bench:sfu — ${new Date().toISOString()} — ${machine}`);
console.log(
  `window ${seconds} s per shape, ${packetSize}-byte VP8-shaped RTP, media workers: ${mediaWorkers === undefined ? 'N/A (flag not supported; engine in-process)' : mediaWorkers}, media engine: ${engine ?? 'server default (auto)'}`,
);
if (comparing)
  console.log(
    `compared with Janus (${spawnSync('/usr/bin/janus', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]?.trim()}, VideoRoom, event_loops ${janusEventLoops}), ${repeat} run(s) per shape and server, interleaved; network namespace: ${inLoopbackNetns() ? 'loopback only' : 'host'}`,
  );
const load = () => loadavg()[0]!.toFixed(2);
const log = (l: string) => console.error(`  … ${l}`);
const results: ShapeResult[] = [];
let failed = false;
for (let rep = 1; rep <= repeat; rep++) {
  for (const shape of shapes) {
    for (const sfu of sfus) {
      const before = load();
      try {
        const r = await runShape(shape, {
          sfu,
          mediaEngine: engine,
          janusEventLoops,
          seconds,
          warmupSeconds: 2,
          packetSize,
          packetsPerFrame: 5,
          keyframeEveryMs: 3000,
          mediaWorkers,
          cpuProfDir: sfu === 'atrium' ? values['server-cpu-prof'] : undefined,
          log,
        });
        results.push(r);
        if (repeat > 1 || comparing)
          log(`run ${rep}/${repeat} ${shape.name} ${sfu}: ${r.usPerPacket.toFixed(1)} µs per forwarded packet, loss ${(r.loss * 100).toFixed(3)} %, load ${before} → ${load()}`);
      } catch (e) {
        failed = true;
        console.error(`bench:sfu: shape ${shape.name} on ${sfu} could not be measured: ${(e as Error).message}`);
      }
    }
  }
}

if (comparing) {
  const rows = compare(results);
  console.log('');
  console.log(compareTable(rows));
  console.log('');
  for (const v of compareVerdicts(rows)) console.log(`${v.verdict.padEnd(4)}  ${v.bar}: ${v.why}`);
  console.log('');
  console.log('Atrium runs in full:');
}
console.log('');
console.log(table(results.filter((r) => r.sfu === 'atrium')));
if (comparing) {
  console.log('');
  console.log('Janus runs in full:');
  console.log(table(results.filter((r) => r.sfu === 'janus')));
}
console.log('');
if (!comparing) for (const v of verdicts(results, workersSupported)) console.log(`${v.verdict.padEnd(4)}  ${v.bar}: ${v.why}`);
if (values.json) {
  await writeFile(values.json, JSON.stringify({ date: new Date().toISOString(), machine, seconds, packetSize, mediaWorkers, engine, repeat, results }, null, 2));
  console.log(`\nfigures written to ${values.json}`);
}
if (values['server-cpu-prof']) {
  console.log('');
  console.log(await summarise(values['server-cpu-prof']));
}
process.exit(failed ? 1 : 0);
