// The short fuzz pass that `npm test` runs: each target's saved failing cases
// first, then a few thousand new ones (FUZZ_CASES overrides the count; a
// long run is `npm run fuzz`). Each run takes a new seed (FUZZ_SEED sets it),
// printed in the test's name and in a failure with the command that replays it.
// Each test prints what it ran and the server's memory before and after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeMemory, fuzz } from './harness.ts';
import { TARGETS } from '../targets/index.ts';

/** Cases per target in `npm test`: network targets cost a connection each, parsers almost nothing. */
export const SHORT_CASES = { network: 1000, inProcess: 3000 };

/** The seed of this pass: FUZZ_SEED, or a new one each run, so that CI keeps exploring. */
export function shortPassSeed(env: NodeJS.ProcessEnv = process.env): number {
  if (env.FUZZ_SEED === undefined || env.FUZZ_SEED === '') return Date.now() % 2 ** 31;
  const seed = Number(env.FUZZ_SEED);
  if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be a whole number, not "${env.FUZZ_SEED}"`);
  return seed;
}

export function shortPass(names: string[]): void {
  const seed = shortPassSeed();
  for (const name of names) {
    const target = TARGETS[name]!;
    const cases = Number(process.env.FUZZ_CASES) || (target.host ? SHORT_CASES.network : SHORT_CASES.inProcess);
    const concurrency = target.host ? 2 : 1;
    const what = target.host
      ? 'no crash, every owed reply, no error log, others undisturbed, memory back'
      : 'no crash, only the errors it should throw, nothing accepted that must be refused, memory back';
    const replay = `npm run fuzz -- --target ${name} --cases ${cases} --concurrency ${concurrency} --seed ${seed}`;
    test(`fuzz ${name}: ${cases} cases, seed ${seed}, ${what}`, { timeout: 600_000 }, async () => {
      // A failure found here is for a long run to save; the short pass reports it.
      const r = await fuzz(target, { cases, seed, save: false, concurrency });
      const mem = r.memory ? `; memory ${describeMemory(r.memory.start)} → ${describeMemory(r.memory.end)}` : '';
      console.log(`fuzz ${name}: seed ${seed}, ${r.cases} cases in ${r.seconds.toFixed(1)} s${mem}`);
      assert.equal(r.failure, undefined, `seed ${seed}: ${r.failure}\n  replay (and save the case under regressions/): ${replay}`);
      assert.equal(r.cases, cases, `seed ${seed}: ${r.cases} of ${cases} cases ran`);
    });
  }
}
