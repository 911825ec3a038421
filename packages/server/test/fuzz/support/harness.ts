// Runs one fuzz target: starts its server (host.ts, a process of its own
// with --expose-gc), lets fast-check drive cases at it, and checks the
// properties every target shares: nothing crashes, no error-level log line
// comes from client input, the other members notice nothing (the target's
// `check`), and memory is back to where it started once the fuzzing
// connections are gone (the server's, or this process's for a target without
// a server). A failing case is written to regressions/<target>.json,
// which the short pass in `npm test` replays first.
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc, { type Arbitrary } from 'fast-check';
import type { HostMemory, HostOptions } from './host.ts';

const HOST = join(dirname(fileURLToPath(import.meta.url)), 'host.ts');
export const REGRESSIONS = join(dirname(fileURLToPath(import.meta.url)), '..', 'regressions');
const MB = 1024 * 1024;
/** How long the server process may take to start. */
const START_SECONDS = 120;
/**
 * How long a reply the server owes (to a case, a bystander, a setup step)
 * may take before it counts as missing: generous, because CI machines are
 * busy and a missing reply fails the run; a right reply only ever comes sooner.
 */
export const REPLY_MS = 30_000;
/** How long memory, handles and members may take to come back after the last case. */
const MEMORY_BACK_MS = 60_000;

/** The server under fuzz, as a target sees it. */
export class Host {
  private next = 1;
  private readonly pending = new Map<number, (v: Record<string, unknown>) => void>();
  exited: string | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    readonly groupsDir: string,
    readonly recordingsDir: string,
    out: () => string,
  ) {
    child.on('message', (m: Record<string, unknown>) => {
      const id = m.id as number | undefined;
      if (id !== undefined) {
        this.pending.get(id)?.(m);
        this.pending.delete(id);
      }
    });
    child.on('exit', (code, signal) => {
      this.exited = `the server process exited (code ${code}, signal ${signal}):\n${out().slice(-4000)}`;
      for (const r of this.pending.values()) r({ error: this.exited });
      this.pending.clear();
    });
  }

  static async start(opts: HostOptions): Promise<Host> {
    const child = fork(HOST, [JSON.stringify(opts)], {
      execArgv: ['--expose-gc', '--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
    child.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
    const ready = await new Promise<{ ready: string; groupsDir: string; recordingsDir: string }>((resolve, reject) => {
      // Generous: on a loaded machine tsx compiles the server slowly.
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error(`the fuzz server did not start within ${START_SECONDS} s (check \`uptime\`: a loaded machine is slow to compile it):\n${out}`));
      }, START_SECONDS * 1000);
      child.once('message', (m: { ready: string; groupsDir: string; recordingsDir: string }) => {
        clearTimeout(timer);
        resolve(m);
      });
      child.once('exit', (code) => reject(new Error(`the fuzz server exited with code ${code}:\n${out}`)));
    });
    return new Host(child, ready.ready, ready.groupsDir, ready.recordingsDir, () => out);
  }

  private ask(op: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (m) => (m.error ? reject(new Error(String(m.error))) : resolve(m)));
      this.child.send({ id, op, ...args });
    });
  }

  /** Waits (up to 30 s) until the server uses the files on disk of these groups, after a target rewrote them. */
  async settle(groups: string[]): Promise<void> {
    if (!(await this.ask('settle', { groups })).settled) throw new Error(`the server did not pick up the rewritten files of groups ${groups.join(', ')} within 30 s`);
  }

  /** Error-level log lines since the last call. */
  async errors(): Promise<string[]> {
    return (await this.ask('errors')).errors as string[];
  }

  async memory(): Promise<HostMemory> {
    return (await this.ask('memory')).memory as HostMemory;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    await this.ask('stop').catch(() => undefined);
    await gone;
  }
}

export interface Target<Case, Env> {
  name: string;
  /** What the server runs with; omit for a target that needs none (a parser). */
  host?: HostOptions;
  arbitrary: Arbitrary<Case>;
  /** Bystanders and anything else the run needs. */
  setup(host: Host | undefined): Promise<Env>;
  /** One case; throws when a property does not hold. */
  run(env: Env, c: Case): Promise<void>;
  /** The others are undisturbed; run every so often and at the end. */
  check?(env: Env): Promise<void>;
  teardown?(env: Env): Promise<void>;
  /** Members the server holds once the fuzzing connections are gone (the bystanders). */
  baselineMembers?: number;
}

export interface FuzzReport {
  target: string;
  /** The run's seed: the same seed, case count and concurrency run the same cases again. */
  seed: number;
  cases: number;
  seconds: number;
  memory?: { start: HostMemory; end: HostMemory };
  failure?: string;
}

/** This process's memory after full collections (node:test runs without --expose-gc: it is switched on here). */
function localMemory(): HostMemory {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return {
    heapUsed: m.heapUsed,
    rss: m.rss,
    external: m.external,
    handles: (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length,
    groups: 0,
    members: 0,
  };
}

/** Whether the end state is the start state, up to noise. */
function memoryProblems(start: HostMemory, end: HostMemory, members: number): string[] {
  const p: string[] = [];
  if (end.heapUsed - start.heapUsed > 24 * MB) p.push(`heap grew by ${((end.heapUsed - start.heapUsed) / MB).toFixed(1)} MB`);
  if (end.handles - start.handles > 16) p.push(`handles ${start.handles} → ${end.handles}`);
  if (end.members !== members) p.push(`${end.members} members left in groups, expected ${members}`);
  return p;
}

export function describeMemory(m: HostMemory): string {
  return `heap ${(m.heapUsed / MB).toFixed(1)} MB, rss ${(m.rss / MB).toFixed(0)} MB, handles ${m.handles}, groups ${m.groups}, members ${m.members}`;
}

async function saved<Case>(target: string): Promise<Case[]> {
  const file = join(REGRESSIONS, `${target}.json`);
  if (!existsSync(file)) return [];
  return (JSON.parse(await readFile(file, 'utf8')) as { case: Case }[]).map((e) => e.case);
}

async function save(target: string, entry: Record<string, unknown>): Promise<string> {
  const file = join(REGRESSIONS, `${target}.json`);
  const list = existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as unknown[]) : [];
  list.push(entry);
  await writeFile(file, `${JSON.stringify(list, null, 2)}\n`);
  return file;
}

/**
 * Replays the saved failing cases of a target, then runs `cases` new ones.
 * `progress` is called every so often with the count done.
 */
export async function fuzz<Case, Env>(
  target: Target<Case, Env>,
  opts: {
    cases: number;
    seed?: number | undefined;
    save?: boolean;
    progress?: (done: number, total: number) => void /** Cases run at once (default 1: one after the other, with fast-check's replay path). */;
    concurrency?: number;
    /** With concurrency > 1: no new case starts after this many seconds (the report says how many ran). */
    maxSeconds?: number | undefined;
  },
): Promise<FuzzReport> {
  const started = performance.now();
  const seed = opts.seed ?? Date.now() % 2 ** 31;
  const report: FuzzReport = { target: target.name, seed, cases: 0, seconds: 0 };
  let host: Host | undefined;
  let env: Env | undefined;
  try {
    host = target.host ? await Host.start(target.host) : undefined;
    env = await target.setup(host);
    const theEnv = env;
    let done = 0;
    const one = async (c: Case): Promise<void> => {
      const t0 = performance.now();
      await target.run(theEnv, c);
      if (process.env.FUZZ_DEBUG && performance.now() - t0 > 1000) console.log(`slow case (${Math.round(performance.now() - t0)} ms): ${JSON.stringify(c).slice(0, 500)}`);
      if (host) {
        const errors = await host.errors();
        if (errors.length > 0) throw new Error(`an error-level log line came from this case:\n${errors[0]}`);
      }
      done++;
      if (done % 250 === 0) {
        await target.check?.(theEnv);
        opts.progress?.(done, opts.cases);
      }
    };
    for (const c of await saved<Case>(target.name)) await one(c);
    const warmup = Math.min(200, Math.ceil(opts.cases / 10));
    const checked = async (numRuns: number, s: number): Promise<string | undefined> => {
      const result = await fc.check(fc.asyncProperty(target.arbitrary, one), { numRuns, seed: s, endOnFailure: true });
      if (!result.failed) return undefined;
      const error = String((result.errorInstance as Error | undefined)?.message ?? result.errorInstance);
      const counterexample = result.counterexample?.[0];
      let where = '';
      if (opts.save !== false) {
        where = await save(target.name, { found: new Date().toISOString(), seed: s, path: result.counterexamplePath, error: error.slice(0, 2000), case: counterexample });
      }
      return `case ${result.numRuns} (seed ${s}, path ${result.counterexamplePath}) failed: ${error}\n  case: ${JSON.stringify(counterexample)?.slice(0, 2000)}${where ? `\n  saved to ${where}` : ''}`;
    };
    /**
     * Cases from the same seed, `width` at a time on their own connections:
     * a long run goes several times faster. An error-level log line then
     * names every case that was in flight; all of them are saved.
     */
    const concurrently = async (numRuns: number, s: number, width: number): Promise<string | undefined> => {
      let failure: string | undefined;
      const inFlight = new Set<Case>();
      const deadline = opts.maxSeconds === undefined ? Number.POSITIVE_INFINITY : performance.now() + opts.maxSeconds * 1000;
      const open = () => failure === undefined && performance.now() < deadline;
      for (let batch = 0; batch * 1000 < numRuns && open(); batch++) {
        const cases = fc.sample(target.arbitrary, { seed: s + batch, numRuns: Math.min(1000, numRuns - batch * 1000) });
        let next = 0;
        const worker = async () => {
          while (open() && next < cases.length) {
            const c = cases[next++]!;
            inFlight.add(c);
            try {
              await one(c);
            } catch (e) {
              const error = String((e as Error).message ?? e);
              const suspects = error.includes('error-level log line') ? [...inFlight] : [c];
              if (opts.save !== false) for (const x of suspects) await save(target.name, { found: new Date().toISOString(), seed: s + batch, error: error.slice(0, 2000), case: x });
              failure ??= `a case of batch ${batch} (seed ${s + batch}) failed: ${error}\n  case: ${JSON.stringify(c)?.slice(0, 2000)}${suspects.length > 1 ? `\n  (${suspects.length} cases in flight, all saved)` : ''}`;
            } finally {
              inFlight.delete(c);
            }
          }
        };
        await Promise.all(Array.from({ length: width }, worker));
      }
      return failure;
    };
    // A target without a server (a parser, the JWT verifier) runs here: its memory is this process's.
    const memory = host ? () => host!.memory() : async () => localMemory();
    report.failure = await checked(warmup, seed + 1);
    if (report.failure) return report;
    const start = await memory();
    done = 0;
    report.failure = (opts.concurrency ?? 1) > 1 ? await concurrently(opts.cases, seed, opts.concurrency!) : await checked(opts.cases, seed);
    report.cases = done;
    if (report.failure) return report;
    await target.check?.(theEnv);
    await target.teardown?.(theEnv);
    env = undefined;
    // Connections close asynchronously (an XMPP session waits for a resumption first): give the server
    // time to forget them, generously on a busy machine; memory that stays taken still fails the run.
    let end = await memory();
    const settleBy = performance.now() + MEMORY_BACK_MS;
    while (memoryProblems(start, end, target.baselineMembers ?? 0).length > 0 && performance.now() < settleBy) {
      await new Promise((r) => setTimeout(r, 250));
      end = await memory();
    }
    report.memory = { start, end };
    const problems = memoryProblems(start, end, target.baselineMembers ?? 0);
    if (problems.length > 0) report.failure = `memory is not back where it started: ${problems.join('; ')} (start: ${describeMemory(start)}; end: ${describeMemory(end)})`;
    if (host) {
      const late = await host.errors();
      if (late.length > 0) report.failure = `an error-level log line after the run:\n${late[0]}`;
    }
    return report;
  } catch (e) {
    report.failure = (e as Error).stack ?? String(e);
    return report;
  } finally {
    if (env !== undefined) await target.teardown?.(env).catch(() => undefined);
    await host?.stop();
    report.seconds = (performance.now() - started) / 1000;
  }
}

/** A local address on loopback for the n-th connection, so throttling by address spreads over many. */
export function loopbackAddress(n: number): string {
  const k = (n % 16_000_000) + 2;
  return `127.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255 || 1}`;
}

/** Waits until `cond` holds, up to `ms`; false when it never did. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}
