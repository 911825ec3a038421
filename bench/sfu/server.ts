// The server under test as a separate process (`atrium serve`), with a
// temporary data and groups directory holding wildcard groups, and its CPU
// time read from /proc: the whole process tree (the native engine's media
// workers are child processes) and each of its threads.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../support/child.ts';

const BIN = fileURLToPath(new URL('../../packages/server/bin/atrium.mjs', import.meta.url));
const READY = /Atrium is running at (https?:\/\/\S+?)\/?\s/;
const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

export const WILDCARD_GROUP = { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } };

/** Does this server know `--media-workers`? (read from `atrium serve --help`). */
export function supportsMediaWorkers(): boolean {
  const r = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return /--media-workers/.test(`${r.stdout}${r.stderr}`);
}

export interface ServerOptions {
  groups: string[];
  /** `--media-engine` (auto, native or js); undefined: the server's default. */
  mediaEngine?: string | undefined;
  /** undefined: the flag is not passed. */
  mediaWorkers?: number | undefined;
  /** Directory for `--cpu-prof` profiles of the server (main thread and workers). */
  cpuProfDir?: string | undefined;
  /** More options for the server's node (before the script). */
  nodeArgs?: string[] | undefined;
}

export interface ThreadCpu {
  tid: number;
  name: string;
  /** CPU time, microseconds (utime + stime). */
  us: number;
}

/** What the bench reads of a server under test, whichever it is (Atrium or Janus). */
export interface ProcessCpu {
  readonly pid: number;
  /** CPU time of the process and its descendants, microseconds. */
  cpuUs(): number;
  /** CPU time of each thread of the process and its descendants. */
  threads(): ThreadCpu[];
  /** The last lines the process printed. */
  tail(): string;
  stop(): Promise<void>;
}

export class ServerProcess implements ProcessCpu {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    private readonly root: string,
    private readonly output: () => string,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }
  get wsUrl(): string {
    return `${this.url.replace(/^http/, 'ws')}/ws`;
  }
  tail(): string {
    return this.output().slice(-3000);
  }

  static async start(o: ServerOptions): Promise<ServerProcess> {
    const root = await mkdtemp(join(tmpdir(), 'atrium-bench-sfu-'));
    const data = join(root, 'data');
    const groups = join(root, 'groups');
    await mkdir(data);
    await mkdir(groups);
    for (const g of o.groups) await writeFile(join(groups, `${g}.json`), JSON.stringify(WILDCARD_GROUP));
    const args = [BIN, 'serve', '--insecure', '--listen', '127.0.0.1:0', '--media-address', '127.0.0.1', '--data', data, '--groups', groups, '--log-level', 'warn'];
    if (o.mediaWorkers !== undefined) args.push('--media-workers', String(o.mediaWorkers));
    if (o.mediaEngine !== undefined) args.push('--media-engine', o.mediaEngine);
    const nodeArgs = [...(o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : []), ...(o.nodeArgs ?? [])];
    const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out = (out + d).slice(-20000)));
    child.stderr!.on('data', (d) => (out = (out + d).slice(-20000)));
    const kill = () => child.kill('SIGKILL');
    process.once('exit', kill);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the server did not print its ready line within 30 s:\n${out}`)), 30_000);
        child.stdout!.on('data', () => {
          const m = READY.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the server exited (code ${code}) before it was ready:\n${out}`));
        });
      });
      return new ServerProcess(child, url, root, () => out);
    } catch (e) {
      child.kill('SIGKILL');
      await rm(root, { recursive: true, force: true });
      throw e;
    }
  }

  /** CPU time of the whole process and its media worker processes, microseconds. */
  cpuUs(): number {
    return treeCpuUs(this.pid);
  }

  /** CPU time of each thread, worker processes included, microseconds. */
  threads(): ThreadCpu[] {
    return processTreeThreads(this.pid);
  }

  /** SIGTERM (so that --cpu-prof profiles get written), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    await stopChild(this.child, { graceMs: 15_000 });
    await rm(this.root, { recursive: true, force: true });
  }
}

/** The process and every live descendant (from the parent field of /proc/<pid>/stat). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      /* the process ended */
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** CPU time of a process tree, microseconds (a descendant that ended in between is not counted). */
export function treeCpuUs(root: number): number {
  let us = 0;
  for (const pid of processTree(root)) {
    try {
      us += statCpuUs(`/proc/${pid}/stat`);
    } catch {
      /* the process ended */
    }
  }
  return us;
}

/** Every thread of a process tree with its CPU time. */
export function processTreeThreads(root: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  for (const pid of processTree(root)) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      try {
        const name = readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
        out.push({ tid: Number(t), name, us: statCpuUs(`/proc/${pid}/task/${t}/stat`) });
      } catch {
        /* the thread ended */
      }
    }
  }
  return out;
}

/** utime + stime of a /proc stat file, microseconds. */
export function statCpuUs(file: string): number {
  const s = readFileSync(file, 'utf8');
  // the command name (field 2) may hold spaces: split after its closing ')'
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 (1-based) are f[11] and f[12] after dropping pid and comm
  return ((Number(f[11]) + Number(f[12])) * 1e6) / TICKS_PER_SECOND;
}

/** Per-thread CPU over a window: threads from two samples, busiest first. */
export function threadDelta(before: ThreadCpu[], after: ThreadCpu[], seconds: number): { tid: number; name: string; percent: number }[] {
  const prev = new Map(before.map((t) => [t.tid, t.us]));
  return after
    .map((t) => ({ tid: t.tid, name: t.name, percent: ((t.us - (prev.get(t.tid) ?? 0)) / (seconds * 1e6)) * 100 }))
    .filter((t) => t.percent >= 0.5)
    .sort((a, b) => b.percent - a.percent);
}

/** Which CPU a thread (of any process) last ran on (field 39 of its stat). */
export function threadCpuNumber(tid: number): number | undefined {
  try {
    const s = readFileSync(`/proc/${tid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[36]);
  } catch {
    return undefined;
  }
}
