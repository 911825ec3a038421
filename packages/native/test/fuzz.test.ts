// A short libFuzzer run of every parser of the native packet plane (RTP,
// RTCP, STUN, SRTP/SRTCP) and of its receive dispatch (Plane::receive) under AddressSanitizer, UndefinedBehaviorSanitizer
// and the leak checker: a few seconds in all (fuzz/run.mjs; the long run is
// `npm run bench:fuzz`). Skipped, saying why, when clang++ is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const RUN = join(dirname(fileURLToPath(import.meta.url)), '..', 'fuzz', 'run.mjs');
const NO_TOOLCHAIN = 2;
const TARGETS = ['rtp', 'rtcp', 'stun', 'srtp', 'plane'];

const clang = spawnSync('sh', ['-c', 'command -v clang++ || command -v clang++-14']).status === 0;

test('the addon parsers survive a short fuzz run under ASan and UBSan (no crash, no leak)', {
  skip: clang ? false : 'clang++ is missing, so the addon is not fuzzed (Debian: apt-get install clang)',
  timeout: 600_000,
}, () => {
  const r = spawnSync(process.execPath, [RUN, '--seconds', '2'], { encoding: 'utf8' });
  const output = `${r.stdout}${r.stderr}`;
  assert.notEqual(r.status, NO_TOOLCHAIN, output);
  assert.equal(r.status, 0, `the fuzz run found a crash or a leak:\n${output.slice(-6000)}`);
  for (const target of TARGETS) {
    // Each target really ran: it executed inputs beyond its seeds.
    const m = new RegExp(`fuzz: ${target}\\s+ok\\s+(\\d+) inputs`).exec(output);
    assert.ok(m, `no result for the ${target} target:\n${output}`);
    assert.ok(Number(m[1]) > 20, `the ${target} target ran only ${m[1]} inputs:\n${output}`);
  }
});
