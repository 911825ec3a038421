// `npm run fuzz -- --target NAME --cases N [--seed S]`: one long fuzz run
// against a target (or `--target all`), with progress, a summary and any
// failing case saved under regressions/ for `npm test` to replay.
import { parseArgs } from 'node:util';
import { describeMemory, fuzz } from './support/harness.ts';
import { TARGETS } from './targets/index.ts';

const { values } = parseArgs({
  options: {
    target: { type: 'string', default: 'all' },
    cases: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(`Usage: npm run fuzz -- --target NAME|all --cases N [--seed S] [--concurrency K (default 4)]\nTargets: ${Object.keys(TARGETS).join(', ')}`);
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
let failed = 0;
for (const name of names) {
  const started = performance.now();
  const r = await fuzz(TARGETS[name]!, {
    cases,
    seed: values.seed === undefined ? undefined : Number(values.seed),
    concurrency: Number(values.concurrency) || 1,
    progress: (done, total) => {
      if (done % 2000 === 0 || done === total) {
        const rate = done / ((performance.now() - started) / 1000);
        console.log(`fuzz ${name}: ${done}/${total} cases (${rate.toFixed(0)}/s)`);
      }
    },
  });
  const mem = r.memory ? `; memory ${describeMemory(r.memory.start)} → ${describeMemory(r.memory.end)}` : '';
  console.log(`fuzz ${name}: ${r.failure ? 'FAILED' : 'ok'}, ${r.cases} cases in ${r.seconds.toFixed(1)} s (${(r.cases / r.seconds).toFixed(0)}/s)${mem}`);
  if (r.failure) {
    failed++;
    console.log(r.failure);
  }
}
process.exit(failed ? 1 : 0);
