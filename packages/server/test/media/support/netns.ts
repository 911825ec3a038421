// Media and browser tests run inside a fresh network namespace that has only
// loopback, so no test traffic can reach any other address. A test file calls
// `insideLoopbackNetns(import.meta.url)`: inside such a namespace it returns
// true and the file defines its tests; otherwise it defines one test that
// re-runs the file under `unshare -n` (root needed, as in CI) and returns false.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MARK = 'ATRIUM_LOOPBACK_NETNS';

/** True when this process's network namespace has no interface but lo. */
export function inLoopbackNetns(): boolean {
  // /proc/self/net/dev follows the reader's namespace (unlike /sys/class/net).
  const names = readFileSync('/proc/self/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0]!.trim())
    .filter(Boolean);
  return names.length === 1 && names[0] === 'lo';
}

export function insideLoopbackNetns(fileUrl: string, options: { timeoutMs?: number } = {}): boolean {
  if (inLoopbackNetns()) return true;
  const file = fileURLToPath(fileUrl);
  const name = `${file.split('/').slice(-1)[0]} inside a loopback-only network namespace`;
  if (process.env[MARK]) {
    test(name, () => {
      throw new Error('re-ran under `unshare -n` but still see interfaces besides lo; is /proc mounted from another namespace?');
    });
    return false;
  }
  const probe = spawnSync('unshare', ['-n', 'true'], { stdio: 'pipe' });
  if (probe.error || probe.status !== 0) {
    const why = probe.error ? probe.error.message : probe.stderr.toString().trim();
    test(name, () => {
      throw new Error(
        `media tests need a loopback-only network namespace, but \`unshare -n\` failed (${why}); run the tests as root (CI does) or with CAP_SYS_ADMIN, and install util-linux and iproute2`,
      );
    });
    return false;
  }
  const timeout = options.timeoutMs ?? 180_000;
  test(name, { timeout: timeout + 5000 }, async (t) => {
    const args = [process.execPath, '--import', 'tsx', '--test', '--test-reporter=spec', `--test-timeout=${timeout}`, file].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec ${args}`], {
      // NODE_TEST_CONTEXT would make the inner runner skip the file.
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), [MARK]: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a timeout kills the runner inside with its servers and browsers.
      detached: true,
    });
    const killInside = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    t.signal.addEventListener('abort', killInside, { once: true });
    process.once('exit', killInside);
    // The runner's per-file timeout ends this process with SIGTERM.
    process.once('SIGTERM', () => {
      killInside();
      process.exit(143);
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      process.stderr.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new Error(`the tests inside the namespace failed (exit ${code}):\n${output.slice(-6000)}`);
    const passed = Number(/pass (\d+)/.exec(output)?.[1] ?? 0);
    // Every test inside skipped itself (e.g. the native engine is not built; the spec reporter marks a
    // skipped test or suite with "﹣"): say so rather than pass or fail.
    const skipped = Number(/skipped (\d+)/.exec(output)?.[1] ?? 0) > 0 || /^\s*﹣ /m.test(output);
    if (passed === 0 && skipped) return t.skip(`every test inside skipped itself:\n${output.slice(-1500)}`);
    if (passed === 0) throw new Error(`no test ran inside the namespace:\n${output.slice(-3000)}`);
  });
  return false;
}
