// Tests of a full disk run inside a mount namespace of their own with a
// small tmpfs mounted for them: the server's data and groups live on it, and the test can fill it up without touching the machine's disks. A
// test file calls `onSmallDisk(import.meta.url)`: inside, it returns the
// mount point; outside, it defines one test that re-runs the file under
// `unshare -m` (root needed, as in CI) and returns undefined.
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MARK = 'ATRIUM_SMALL_DISK';
const MOUNT = '/tmp/atrium-small-disk';

export function onSmallDisk(fileUrl: string, sizeKiB = 1024): string | undefined {
  if (process.env[MARK]) return process.env[MARK];
  const file = fileURLToPath(fileUrl);
  const name = `${file.split('/').slice(-1)[0]} on a ${sizeKiB} KiB tmpfs in a mount namespace`;
  const probe = spawnSync('unshare', ['-m', 'true'], { stdio: 'pipe' });
  if (probe.error || probe.status !== 0) {
    const why = probe.error ? probe.error.message : probe.stderr.toString().trim();
    test(name, () => {
      throw new Error(`disk-full tests need a mount namespace, but \`unshare -m\` failed (${why}); run the tests as root (CI does) and install util-linux`);
    });
    return undefined;
  }
  test(name, { timeout: 180_000 }, async () => {
    const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
    const cmd = [process.execPath, '--import', 'tsx', '--test', '--test-reporter=spec', '--test-timeout=170000', file].map(quote).join(' ');
    const script = `mkdir -p ${MOUNT} && mount -t tmpfs -o size=${sizeKiB}k,mode=1777 atrium-small-disk ${MOUNT} && exec ${cmd}`;
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), [MARK]: MOUNT },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      process.stderr.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new Error(`the tests on the small disk failed (exit ${code}):\n${output.slice(-6000)}`);
    if (Number(/pass (\d+)/.exec(output)?.[1] ?? 0) === 0) throw new Error(`no test ran on the small disk:\n${output.slice(-3000)}`);
  });
  return undefined;
}
