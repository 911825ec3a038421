// The short fuzz pass that `npm test` runs: each target's saved failing cases
// first, then a few thousand new ones (FUZZ_CASES overrides the count; a
// long run is `npm run fuzz`). Each test prints what it ran and the server's
// memory before and after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeMemory, fuzz } from './harness.ts';
import { TARGETS } from '../targets/index.ts';

/** Cases per target in `npm test`: network targets cost a connection each, parsers almost nothing. */
export const SHORT_CASES = { network: 1000, inProcess: 3000 };

export function shortPass(names: string[]): void {
  for (const name of names) {
    const target = TARGETS[name]!;
    const cases = Number(process.env.FUZZ_CASES) || (target.host ? SHORT_CASES.network : SHORT_CASES.inProcess);
    const what = target.host
      ? 'no crash, every owed reply, no error log, others undisturbed, memory back'
      : 'no crash, only the errors it should throw, nothing accepted that must be refused, memory back';
    test(`fuzz ${name}: ${cases} cases, ${what}`, { timeout: 600_000 }, async () => {
      // A failure found here is for a long run to save; the short pass reports it.
      const r = await fuzz(target, { cases, save: false, concurrency: target.host ? 2 : 1 });
      const mem = r.memory ? `; memory ${describeMemory(r.memory.start)} → ${describeMemory(r.memory.end)}` : '';
      console.log(`fuzz ${name}: ${r.cases} cases in ${r.seconds.toFixed(1)} s${mem}`);
      assert.equal(r.failure, undefined, r.failure);
      assert.equal(r.cases, cases);
    });
  }
}
