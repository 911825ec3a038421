// `npm run fuzz -- --target NAME --cases N [--seed S] [--seeds K] [--minutes M]`: one long
// fuzz run against a target (or `--target all`), with progress, a summary and
// any failing case saved under regressions/ for `npm test` to replay. With
// --seeds K it runs K runs of N cases each, each on a fresh server with its
// own seed: what K runs of the short pass in `npm test` (a new seed each)
// would meet, e.g. `--cases 1000 --concurrency 2 --seeds 30`.
import { parseArgs } from 'node:util';
import { describeMemory, fuzz } from './support/harness.ts';
import { TARGETS } from './targets/index.ts';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'all' },
    cases: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    seeds: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '4' },
    minutes: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    `Usage: npm run fuzz -- --target NAME|all --cases N [--seed S] [--seeds K (runs, seeds S, S+7919, …)] [--concurrency K (default 4)] [--minutes M (stop starting cases after M minutes)]\nTargets: ${Object.keys(TARGETS).join(', ')}`,
  );
  process.exit(0);
}
const names = values.target === 'all' ? Object.keys(TARGETS) : values.target!.split(',');
for (const n of names) {
  if (!TARGETS[n]) {
    console.error(`fuzz: no target "${n}"; the targets are ${Object.keys(TARGETS).join(', ')}`);
    process.exit(2);
  }
}
const cases = Number(values.cases);
if (!Number.isInteger(cases) || cases < 1) {
  console.error(`fuzz: --cases must be a positive whole number, not "${values.cases}"`);
  process.exit(2);
}
const minutes = values.minutes === undefined ? undefined : Number(values.minutes);
if (minutes !== undefined && !(minutes > 0)) {
  console.error(`fuzz: --minutes must be a positive number, not "${values.minutes}"`);
  process.exit(2);
}
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`fuzz: --seed must be a whole number, not "${values.seed}"`);
  process.exit(2);
}
const seeds = Number(values.seeds);
if (!Number.isInteger(seeds) || seeds < 1) {
  console.error(`fuzz: --seeds must be a positive whole number, not "${values.seeds}"`);
  process.exit(2);
}
/** Seeds of the runs: far enough apart that one run's batches (seed + batch) and warm-up (seed + 1) are not another's. */
const runSeeds = Array.from({ length: seeds }, (_, i) => (seed + i * 7919) % 2 ** 31);
let failed = 0;
const failedRuns: string[] = [];
for (const name of names)
  for (const seed of runSeeds) {
    const started = performance.now();
    // The seed is printed so that a run can be repeated case for case (with the same --concurrency).
    console.log(`fuzz ${name}: ${cases} cases, seed ${seed}, concurrency ${Number(values.concurrency) || 1}`);
    const r = await fuzz(TARGETS[name]!, {
      cases,
      seed,
      concurrency: Number(values.concurrency) || 1,
      maxSeconds: minutes === undefined ? undefined : minutes * 60,
      progress: (done, total) => {
        if (done % 2000 === 0 || done === total) {
          const rate = done / ((performance.now() - started) / 1000);
          console.log(`fuzz ${name}: ${done}/${total} cases (${rate.toFixed(0)}/s)`);
        }
      },
    });
    const mem = r.memory ? `; memory ${describeMemory(r.memory.start)} → ${describeMemory(r.memory.end)}` : '';
    console.log(
      `fuzz ${name}: ${r.failure ? 'FAILED' : 'ok'}, ${r.cases} cases in ${r.seconds.toFixed(1)} s (${(r.cases / r.seconds).toFixed(0)}/s)${!r.failure && r.cases < cases ? `, stopped at the ${minutes}-minute limit` : ''}${mem}`,
    );
    if (r.failure) {
      failed++;
      failedRuns.push(`${name} seed ${seed}`);
      console.log(r.failure);
    }
  }
if (runSeeds.length > 1 || names.length > 1) {
  console.log(`fuzz: ${names.length * runSeeds.length - failed} of ${names.length * runSeeds.length} runs ok${failed ? `; failed: ${failedRuns.join(', ')}` : ''}`);
}
process.exit(failed ? 1 : 0);
