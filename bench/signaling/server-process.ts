// The server under test, as a child process of its own: started from the
// repository's `atrium` command with throw-away data and groups directories,
// observed through /proc (memory, CPU time) and /metrics (V8 heap), and
// always stopped, even when the benchmark fails half-way.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../support/child.ts';

const SERVER_BIN = fileURLToPath(new URL('../../packages/server/bin/atrium.mjs', import.meta.url));
const READY = /Atrium is running at (https?:\/\/\S+?)\/?\s/;

/** Group file of the benchmark: anyone may join and chat, history kept one minute. */
export const BENCH_GROUP_FILE = {
  'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
  'max-history-age': 60,
};

export interface ServerProcessOptions {
  group: string;
  /** How long the server may take to print its ready line. */
  startTimeoutMs: number;
  /** Extra node flags for the server (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** Extra `atrium serve` options (e.g. a cluster node's --redis, --node-id, --public-url). */
  args?: string[];
  /** More group files (name → definition) beside the benchmark's group. */
  groups?: Record<string, object>;
}

export interface MemorySample {
  /** Resident set size, bytes (VmRSS). */
  rss: number;
  /** Peak resident set size so far, bytes (VmHWM). */
  peakRss: number;
  /** V8 heap in use, bytes, from the server's /metrics; undefined if unavailable. */
  heapUsed: number | undefined;
}

export class ServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    private readonly dir: string,
    private readonly stderrTail: () => string,
    private readonly killOnExit: () => void,
    private readonly stopGraceMs: number,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  get wsUrl(): string {
    return `${this.url.replace(/^http/, 'ws')}/ws`;
  }

  static async start(opts: ServerProcessOptions): Promise<ServerProcess> {
    const dir = await mkdtemp(join(tmpdir(), 'atrium-bench-'));
    const dataDir = join(dir, 'data');
    const groupsDir = join(dir, 'groups');
    await mkdir(dataDir);
    await mkdir(groupsDir);
    await writeFile(join(groupsDir, `${opts.group}.json`), JSON.stringify(BENCH_GROUP_FILE, null, 2));
    for (const [name, def] of Object.entries(opts.groups ?? {})) await writeFile(join(groupsDir, `${name}.json`), JSON.stringify(def, null, 2));

    const args = [...(opts.nodeArgs ?? []), SERVER_BIN, 'serve', '--insecure', '--listen', '127.0.0.1:0', '--data', dataDir, '--groups', groupsDir, '--log-level', 'warn', ...(opts.args ?? [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // If this process exits abruptly (watchdog, Ctrl-C), the server goes with it.
    const killOnExit = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    process.on('exit', killOnExit);
    let stdout = '';
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      stderr = (stderr + s).slice(-4000);
    });
    const tail = () => stderr.trim().split('\n').slice(-12).join('\n');

    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the server printed no "Atrium is running at" line within ${opts.startTimeoutMs / 1000} s`)), opts.startTimeoutMs);
        child.stdout!.setEncoding('utf8');
        child.stdout!.on('data', (s: string) => {
          stdout += s;
          const m = READY.exec(stdout);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        child.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`the server exited before it was ready (${signal ?? `exit code ${code}`})`));
        });
      });
      // Keep draining stdout so the server never blocks on a full pipe.
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      // A profiling server writes its profile on the way out: let it finish.
      const grace = (opts.nodeArgs ?? []).some((a) => a.startsWith('--cpu-prof') || a.startsWith('--heap-prof')) ? 60_000 : 10_000;
      return new ServerProcess(child, url, dir, tail, killOnExit, grace);
    } catch (e) {
      await stopChild(child, { graceMs: 4000 });
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
      const err = e instanceof Error ? e : new Error(String(e));
      const detail = tail();
      throw new Error(`server did not start: ${err.message}${detail ? `\n--- server stderr (last lines) ---\n${detail}` : ''}`);
    }
  }

  /** True while the child process runs. */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What the server wrote on stderr lately, for error messages. */
  recentStderr(): string {
    return this.stderrTail();
  }

  async memory(): Promise<MemorySample> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    return { rss: procKb(status, 'VmRSS'), peakRss: procKb(status, 'VmHWM'), heapUsed: await this.heapUsed() };
  }

  /** CPU time the server has used so far (user + system), in milliseconds. */
  async cpuMs(): Promise<number> {
    const stat = await readFile(`/proc/${this.pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    return (ticks * 1000) / CLOCK_TICKS;
  }

  private async heapUsed(): Promise<number | undefined> {
    try {
      const res = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) return undefined;
      const m = /^\w*nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([0-9.e+]+)$/m.exec(await res.text());
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL) and removes its directories; says whether it had to be killed. */
  async stop(): Promise<{ ms: number; killed: boolean }> {
    const t0 = performance.now();
    const killed = await stopChild(this.child, { graceMs: this.stopGraceMs });
    process.off('exit', this.killOnExit);
    await rm(this.dir, { recursive: true, force: true });
    return { ms: performance.now() - t0, killed };
  }
}

/** Linux reports CPU time in clock ticks; 100 per second on every common configuration. */
const CLOCK_TICKS = 100;

function procKb(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/<pid>/status`);
  return Number(m[1]) * 1024;
}

/** CPU time the whole machine has spent busy (all cores, kernel included), in ms; undefined off Linux. */
export async function machineBusyMs(): Promise<number | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
    const t = line.trim().split(/\s+/).slice(1).map(Number);
    const total = t.reduce((a, b) => a + b, 0);
    const idle = (t[3] ?? 0) + (t[4] ?? 0); // idle, iowait
    return ((total - idle) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Soft limit on open files of this process (the server inherits it). */
export async function openFileLimit(): Promise<number | undefined> {
  try {
    const limits = await readFile('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\S+)/m.exec(limits);
    if (!m) return undefined;
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return undefined;
  }
}
