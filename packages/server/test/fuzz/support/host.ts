// The server under fuzzing: a real Atrium server in a process of its own
// (started by harness.ts with --expose-gc), on loopback, with its groups and
// config in a temporary folder. Over the IPC channel it answers what the
// fuzzer cannot see from outside: the error-level log lines written since
// the last ask, memory after full garbage collections, and when the server
// has picked up group files a target rewrote behind its back.
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { etagOf } from '../../../src/groups/store.ts';
import { AtriumServer } from '../../../src/server.ts';

export interface HostOptions {
  groups: Record<string, unknown>;
  config?: unknown;
  /** Run the media engine in the main thread (stream messages then reach werift). */
  media?: boolean;
  /** Seconds a cut XMPP session waits for a resumption (short, so memory is back soon after the last case). */
  xmppResumeSeconds?: number;
  /** Files in the recordings folder at the start, as paths relative to it (`<group>/<file>`; the folder is in the temporary folder). */
  recordings?: string[];
}

export type HostRequest = { id: number; op: 'errors' } | { id: number; op: 'memory' } | { id: number; op: 'stop' } | { id: number; op: 'settle'; groups: string[] };

export interface HostMemory {
  heapUsed: number;
  rss: number;
  external: number;
  handles: number;
  groups: number;
  members: number;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as HostOptions;
const root = await mkdtemp(join(tmpdir(), 'atrium-fuzz-'));
const dataDir = join(root, 'data');
const groupsDir = join(root, 'groups');
// Never the default ./recordings: the admin API's fuzzed DELETEs must not reach the working tree.
const recordingsDir = join(root, 'recordings');
await mkdir(dataDir, { recursive: true });
await mkdir(groupsDir, { recursive: true });
await mkdir(recordingsDir, { recursive: true });
for (const rel of opts.recordings ?? []) {
  const file = join(recordingsDir, rel);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, 'not really a recording');
}
for (const [name, desc] of Object.entries(opts.groups)) {
  const file = join(groupsDir, `${name}.json`);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, JSON.stringify(desc));
}
if (opts.config !== undefined) await writeFile(join(dataDir, 'config.json'), JSON.stringify(opts.config));

/** Error-level lines not yet collected (at most a few hundred kept: one is enough to fail). */
let errors: string[] = [];
let errorCount = 0;
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n')) {
      if (line === '') continue;
      let level = 0;
      try {
        level = (JSON.parse(line) as { level?: number }).level ?? 0;
      } catch {
        level = 50;
      }
      if (level >= 50) {
        errorCount++;
        if (errors.length < 200) errors.push(line.slice(0, 4000));
      }
    }
    done();
  },
});
const log = pino({ level: 'warn' }, sink);

const server = new AtriumServer({
  listen: '127.0.0.1:0',
  dataDir,
  groupsDir,
  recordingsDir,
  insecure: true,
  defaultGroup: false,
  media: opts.media ? { workers: 0, additionalHostAddresses: ['127.0.0.1'] } : false,
  log,
  ...(opts.xmppResumeSeconds === undefined ? {} : { xmppResumeSeconds: opts.xmppResumeSeconds }),
});
await server.start();

function memory(): HostMemory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the fuzz host needs --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  const groups = server.registry.groups();
  return {
    heapUsed: m.heapUsed,
    rss: m.rss,
    external: m.external,
    handles: (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length,
    groups: groups.length,
    members: groups.reduce((n, g) => n + g.size, 0),
  };
}

/** Whether the server uses the version on disk of each group file (or knows it is gone). */
async function inUse(names: string[]): Promise<boolean> {
  for (const name of names) {
    const bytes = await readFile(join(groupsDir, `${name}.json`)).catch(() => undefined);
    if (server.groups.loadedEtag(name) !== (bytes === undefined ? undefined : etagOf(bytes))) return false;
  }
  return true;
}

process.on('message', async (req: HostRequest) => {
  if (req.op === 'errors') {
    process.send!({ id: req.id, errors, count: errorCount });
    errors = [];
    errorCount = 0;
  } else if (req.op === 'memory') {
    process.send!({ id: req.id, memory: memory() });
  } else if (req.op === 'settle') {
    // The store's watcher re-reads an edited file after a debounce: on a busy machine that can take a while.
    const deadline = performance.now() + 30_000;
    while (!(await inUse(req.groups)) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    process.send!({ id: req.id, settled: await inUse(req.groups) });
  } else if (req.op === 'stop') {
    await server.stop();
    await rm(root, { recursive: true, force: true });
    process.send!({ id: req.id });
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ ready: server.url, groupsDir, recordingsDir });
