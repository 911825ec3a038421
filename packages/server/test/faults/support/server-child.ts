// A real Atrium server in a child process that a fault test can reach into
// over IPC: crash one of its media workers, ask where its groups are placed,
// stop it. Run as a child (FAULT_SERVER set) it serves; imported, it starts
// one. Its groups and data live in folders the caller gives.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MARK = 'ATRIUM_FAULT_SERVER';

export interface ChildOptions {
  dataDir: string;
  groupsDir: string;
  /** Media worker threads (the threaded engine). */
  workers: number;
  listen?: string;
}

type Command = { rid: number; op: 'crash'; worker: number } | { rid: number; op: 'debug' } | { rid: number; op: 'stop' };

export interface ServerChild {
  url: string;
  wsUrl: string;
  /** Makes a media worker crash (an uncaught error in its thread). */
  crash(worker: number): Promise<void>;
  /** The threaded engine's view: each worker, its groups, its restarts. */
  debug(): Promise<{ index: number; ready: boolean; restarts: number; placements: string[]; ups: number; downs: number }[]>;
  output(): string;
  stop(): Promise<void>;
}

export async function startServerChild(opts: ChildOptions): Promise<ServerChild> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), [MARK]: JSON.stringify(opts) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const pending = new Map<number, (v: unknown) => void>();
  let rid = 0;
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: on a loaded machine tsx compiles the server slowly.
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`the server child did not start in 120 s (check \`uptime\`):\n${out}`));
    }, 120_000);
    child.once('exit', (code) => reject(new Error(`the server child exited (${code}) before it started:\n${out}`)));
    child.on('message', (m: { url?: string; rid?: number; value?: unknown }) => {
      if (m.url) {
        clearTimeout(timer);
        resolve(m.url);
      } else if (m.rid !== undefined) {
        pending.get(m.rid)?.(m.value);
        pending.delete(m.rid);
      }
    });
  });
  const ask = <T>(c: Record<string, unknown>): Promise<T> =>
    new Promise<T>((resolve) => {
      const id = ++rid;
      pending.set(id, resolve as (v: unknown) => void);
      child.send({ ...c, rid: id });
    });
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
    crash: (worker) => ask({ op: 'crash', worker }),
    debug: () => ask({ op: 'debug' }),
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      await ask({ op: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

if (process.env[MARK]) {
  const opts = JSON.parse(process.env[MARK]) as ChildOptions;
  const { AtriumServer } = await import('../../../src/server.ts');
  const { createLogger } = await import('../../../src/log.ts');
  const { ThreadedEngine } = await import('../../../src/media/workers/index.ts');
  const server = new AtriumServer({
    listen: opts.listen ?? '127.0.0.1:0',
    dataDir: opts.dataDir,
    groupsDir: opts.groupsDir,
    insecure: true,
    defaultGroup: false,
    // The JavaScript engine in threads: the native engine's process workers have their own crash test (media/workers-native).
    media: { workers: opts.workers, engine: 'js', additionalHostAddresses: ['127.0.0.1'] },
    log: createLogger({ level: 'warn' }),
  });
  await server.start();
  const engine = server.engine;
  if (!(engine instanceof ThreadedEngine)) throw new Error('the server did not create the threaded engine');
  process.on('message', (m: Command) => {
    void (async () => {
      switch (m.op) {
        case 'crash':
          engine.crashWorker(m.worker);
          return process.send!({ rid: m.rid });
        case 'debug':
          return process.send!({ rid: m.rid, value: engine.debug() });
        case 'stop':
          await server.stop();
          process.send!({ rid: m.rid });
          return process.disconnect();
      }
    })();
  });
  process.send!({ url: server.url });
}
