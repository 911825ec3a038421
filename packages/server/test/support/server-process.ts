// Starts a real Atrium server process for a test: its own temporary data and
// groups directories, plain HTTP on a free loopback port. The process is the
// same `atrium serve` a user runs.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'atrium.mjs');

export interface RunningServer {
  url: string;
  wsUrl: string;
  dataDir: string;
  groupsDir: string;
  /** --recordings (inside the test's temporary directory unless given). */
  recordingsDir: string;
  process: ChildProcess;
  /** Everything the server printed, for diagnosing a failed test. */
  output(): string;
  writeGroup(name: string, desc: unknown): Promise<void>;
  stop(): Promise<number | null>;
}

export interface StartOptions {
  groups?: Record<string, unknown>;
  config?: unknown;
  iceServers?: unknown;
  args?: string[];
  env?: Record<string, string>;
  /** Run it inside this named network namespace (`ip netns exec`), as a host of a multi-host test. */
  ns?: string;
  /** How long it may take to start (default 60 s; tests that start many servers on a loaded machine give more). */
  startTimeoutMs?: number;
  /** Where the data and groups folders go (a fresh folder in the system's temporary folder by default). */
  root?: string;
  /** Where the server writes recordings (default: a folder of the test's temporary directory). */
  recordingsDir?: string;
  /**
   * A command the server is started through, e.g. ['unshare', '-m', 'sh',
   * '-c', 'mount … && exec "$@"', 'sh']: the server's own command line is
   * appended to it.
   */
  wrap?: string[];
}

/**
 * The servers this process started and has not stopped. When the test
 * runner ends a file that overran its bound it sends SIGTERM, whose default
 * action runs no `finally` nor `after`: the servers would live on, orphaned,
 * holding ports and cores. So on SIGTERM, SIGINT and exit every server left
 * is killed (its media worker processes exit when it is gone). They stay in
 * this process's group, so a wrapper that kills the group (the loopback
 * namespace runs, support/netns.ts) ends them too.
 */
const live = new Set<ChildProcess>();
let reaperInstalled = false;

function killServer(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

function installReaper(): void {
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on('exit', () => {
    for (const c of live) killServer(c);
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      for (const c of live) killServer(c);
      // This listener is gone now: the signal, raised again, does what it would have done without it.
      process.kill(process.pid, signal);
    });
  }
}

export async function startServer(opts: StartOptions = {}): Promise<RunningServer> {
  const root = await mkdtemp(join(opts.root ?? tmpdir(), 'atrium-test-'));
  const dataDir = join(root, 'data');
  const groupsDir = join(root, 'groups');
  await mkdir(dataDir, { recursive: true });
  await mkdir(groupsDir, { recursive: true });
  const writeGroup = async (name: string, desc: unknown) => {
    const file = join(groupsDir, `${name}.json`);
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    await writeFile(tmp, JSON.stringify(desc, null, 2));
    const { rename } = await import('node:fs/promises');
    await rename(tmp, file);
  };
  for (const [name, desc] of Object.entries(opts.groups ?? {})) await writeGroup(name, desc);
  if (opts.config !== undefined) await writeFile(join(dataDir, 'config.json'), JSON.stringify(opts.config));
  if (opts.iceServers !== undefined) await writeFile(join(dataDir, 'ice-servers.json'), JSON.stringify(opts.iceServers));

  const recordingsDir = opts.recordingsDir ?? join(root, 'recordings');
  // ATRIUM_MEDIA_ENGINE (js, native) runs the media tests on one engine; ATRIUM_TEST_SERVER_LOG=1 shows the server's output.
  const engine = process.env.ATRIUM_MEDIA_ENGINE && !(opts.args ?? []).includes('--media-engine') ? ['--media-engine', process.env.ATRIUM_MEDIA_ENGINE] : [];
  const level = process.env.ATRIUM_TEST_SERVER_LOG ? 'info' : 'warn';
  const command = [
    process.execPath,
    BIN,
    'serve',
    '--insecure',
    '--listen',
    '127.0.0.1:0',
    '--data',
    dataDir,
    '--groups',
    groupsDir,
    '--recordings',
    recordingsDir,
    '--log-level',
    level,
    ...engine,
    ...(opts.args ?? []),
  ];
  const [exe, ...args] = [...(opts.ns ? ['ip', 'netns', 'exec', opts.ns] : []), ...(opts.wrap ?? []), ...command];
  installReaper();
  const child = spawn(exe!, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let out = '';
  const echo = !!process.env.ATRIUM_TEST_SERVER_LOG;
  const collect = (d: Buffer) => {
    out += d;
    if (echo) process.stderr.write(d);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const url = await new Promise<string>((resolve, reject) => {
    const limit = opts.startTimeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      // Given up on: it must not start later and run on with nobody to stop it.
      killServer(child);
      reject(new Error(`server did not start within ${limit / 1000} s:\n${out}`));
    }, limit);
    const onData = () => {
      const m = /Atrium is running at (\S+?)\/? /.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!.replace(/\/$/, ''));
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with code ${code} before it started:\n${out}`));
    });
  });
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
    dataDir,
    groupsDir,
    recordingsDir,
    process: child,
    output: () => out,
    writeGroup,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const code = await exited;
      await rm(root, { recursive: true, force: true });
      return code;
    },
  };
}
