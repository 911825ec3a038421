// `npm run build -w @atrium/client` writes one ES module a page can import
// as it is; this checks the file is there, loads, and carries the SDK
// (and not zod's ~260 kB of locales).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dist = join(root, 'packages', 'client', 'dist', 'atrium-client.js');

test('npm run build -w @atrium/client produces dist/atrium-client.js, an ES module with the SDK', async () => {
  const r = spawnSync('npm', ['run', 'build', '-w', '@atrium/client'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const size = statSync(dist).size;
  assert.ok(size > 20_000 && size < 400_000, `bundle size ${size}`);
  const code = readFileSync(dist, 'utf8');
  assert.match(code, /^export \{/m, 'ES module exports');
  assert.doesNotMatch(code, /^import /m, 'self-contained: no imports left for a bundler');
  const sdk = (await import(`${pathToFileURL(dist).href}?t=${Date.now()}`)) as Record<string, unknown>;
  for (const name of ['ServerConnection', 'Stream', 'TransferredFile', 'AtriumClientError', 'simulcastEncodings']) {
    assert.equal(typeof sdk[name], 'function', name);
  }
});
