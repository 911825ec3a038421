// Media on every core, for both engines (workers.test.ts: the JavaScript
// engine in worker threads; workers-native.test.ts: the native engine in
// worker processes): two groups with publishers and subscribers land on two
// different media workers and media flows in both (Chromium decodes
// frames). While both rooms run, the CPU of each worker is read from /proc
// (per thread of the server, or per worker process) and printed (a
// diagnostic, not an assertion). Then one worker dies during the call — an
// uncaught error in a thread, a segmentation fault in the addon of a
// process: the server logs it, the other group carries on, and the worker is
// replaced. Native: the replacement continues the group's streams — the
// publisher gets Galène's `renegotiate` (an ICE restart, as Galène's client
// does), the subscribers new offers for the same streams, DTLS and SRTP carry
// on (same certificate), and the subscribers decode new frames again without
// anyone publishing again (the time is printed). JavaScript engine: the
// streams close (the publisher is told with Galène's abort) and when the
// publisher publishes again its subscribers get the stream from the new worker.
//
// The server is a child process running AtriumServer with two media workers;
// the test asks it where the streams are over the IPC channel (the engine's
// debug()). Runs inside a loopback-only network namespace (support/netns.ts).
import assert from 'node:assert/strict';
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { insideLoopbackNetns } from './netns.ts';
import type { WorkerInfo } from '../../../src/media/workers/index.ts';

const CLIENT_JS = join(dirname(fileURLToPath(import.meta.url)), 'galene-browser-client.js');
const CHILD = 'ATRIUM_WORKERS_TEST_SERVER';
const ROOMS = ['red', 'blue'] as const;
const SUBSCRIBERS = 3;
const VIDEO = { width: 640, height: 360 };

/** Which engine the server child runs: js (werift in worker threads) or native (worker processes). */
export type WorkersEngine = 'js' | 'native';

/** Test → server child. */
type Command = { rid: number; op: 'debug' } | { rid: number; op: 'stats' } | { rid: number; op: 'crash'; worker: number } | { rid: number; op: 'stop' };

/** The part of the admin .stats report the diagnostics use. */
type Report = { name: string; clients: { up?: Conn[]; down?: Conn[] }[] }[];
type Conn = { tracks: { kind: string; bitrate: number; packets: number }[] };

/** The test file's body: `testFile` is its import.meta.url (it is run again inside the namespace, and as the server child). */
export async function workersSuite(engine: WorkersEngine, testFile: string): Promise<void> {
  if (process.env[CHILD]) {
    await serveChild(JSON.parse(process.env[CHILD]) as { dataDir: string; groupsDir: string; engine: WorkersEngine });
    return;
  }
  if (engine === 'native') {
    // Checked before entering the namespace, so that the skip (and why) is what the runner reports.
    const { loadNativeAddon } = await import('../../../src/media/native/addon.ts');
    const load = loadNativeAddon();
    if (!load.ok) {
      test('the native engine in worker processes', { skip: `the native packet plane is not available: ${load.reason}` }, () => {});
      return;
    }
  }
  if (!insideLoopbackNetns(testFile, { timeoutMs: 240_000 })) return;
  const { launchChromium, until } = await import('../../support/browser.ts');
  type Page = import('playwright-core').Page;
  type Browser = import('playwright-core').Browser;
  type DownStat = { id: string; label: string; source: string; closed: boolean; framesDecoded?: number; totalSamplesReceived?: number };

  let root: string;
  let server: ServerChild;
  let browser: Browser;
  /** Per room: the publisher's page and its subscribers. */
  const rooms = new Map<string, { pub: Page; pubId: string; subs: Page[] }>();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'atrium-workers-'));
    const dataDir = join(root, 'data');
    const groupsDir = join(root, 'groups');
    await mkdir(dataDir, { recursive: true });
    await mkdir(groupsDir, { recursive: true });
    for (const room of ROOMS) await writeFile(join(groupsDir, `${room}.json`), JSON.stringify({ 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } }));
    server = await startServerChild(testFile, { dataDir, groupsDir, engine });
    // Noise instead of Chromium's simple test pattern, so that the rooms are busy (the encoder cannot compress it).
    const video = join(root, 'noise.y4m');
    await writeFile(video, noiseY4m(VIDEO.width, VIDEO.height, 30, 20));
    browser = await launchChromium([`--use-file-for-fake-video-capture=${video}`]);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function user(group: string, username: string): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/group/${group}/`);
    await page.addScriptTag({ path: CLIENT_JS });
    await page.evaluate(
      async ([ws, g, u]) => {
        const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown> }; TestGaleneClient: new () => unknown };
        w.tc = new w.TestGaleneClient() as typeof w.tc;
        await w.tc.connect(ws!, g!, u!, 'x');
      },
      [server.url.replace(/^http/, 'ws') + '/ws', group, username],
    );
    return page;
  }

  const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
    page.evaluate(([f, a]) => (window as unknown as { tc: Record<string, (...x: unknown[]) => unknown> }).tc[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;
  const downs = (page: Page) => call<DownStat[]>(page, 'downStats');
  const idOf = (page: Page) => page.evaluate(() => (window as unknown as { tc: { id: string } }).tc.id);

  /** The live down-stream from `source` decodes frames and keeps decoding. */
  async function flowing(page: Page, source: string, what: string): Promise<DownStat> {
    const first = await until(
      `${what}: frames`,
      async () => (await downs(page)).find((d) => d.source === source && !d.closed && (d.framesDecoded ?? 0) > 0 && (d.totalSamplesReceived ?? 0) > 0),
      45_000,
    );
    return until(`${what}: more frames`, async () => (await downs(page)).find((d) => d.id === first.id && !d.closed && (d.framesDecoded ?? 0) > (first.framesDecoded ?? 0) + 5), 30_000);
  }

  const workerOfRoom = (info: WorkerInfo[], room: string) => info.find((w) => w.placements.includes(room));

  test('two groups land on two workers and media flows in both; per-thread CPU of the server', async () => {
    for (const room of ROOMS) {
      const pub = await user(room, `${room}-pub`);
      const subs = [];
      for (let i = 1; i <= SUBSCRIBERS; i++) subs.push(await user(room, `${room}-sub${i}`));
      for (const s of subs) await call(s, 'request', { '': ['audio', 'video'] });
      await call(pub, 'publish', { label: 'camera', ...VIDEO });
      rooms.set(room, { pub, pubId: await idOf(pub), subs });
    }
    for (const [room, r] of rooms) await Promise.all(r.subs.map((s, i) => flowing(s, r.pubId, `${room} subscriber ${i + 1}`)));

    const info = await server.debug();
    const red = workerOfRoom(info, 'red');
    const blue = workerOfRoom(info, 'blue');
    assert.ok(red && blue, `both groups are placed: ${JSON.stringify(info)}`);
    assert.notEqual(red.index, blue.index, `the two groups are on different workers: ${JSON.stringify(info)}`);
    for (const w of [red, blue]) assert.deepEqual([w.ups, w.downs], [1, SUBSCRIBERS], `worker ${w.index} has its group's publisher and its subscribers' down-streams`);

    // Per-thread CPU while both rooms run (diagnostic), once the publishers'
    // bandwidth estimate has ramped up a little (at most 20 s).
    const upRate = (report: Report, room: string) =>
      report
        .find((g) => g.name === room)
        ?.clients.flatMap((c) => c.up ?? [])
        .flatMap((x) => x.tracks)
        .reduce((a, t) => a + t.bitrate, 0) ?? 0;
    const rampEnd = Date.now() + 20_000;
    while (Date.now() < rampEnd) {
      const r = await server.stats();
      if (ROOMS.every((room) => upRate(r, room) > 500_000)) break;
      await sleep(1000);
    }
    // Threads of the server process (a thread worker is one of them), and each worker process as a whole.
    const names = new Map<number, string>([[server.pid, 'main (signalling, HTTP)']]);
    const processes = info.filter((w) => w.kind === 'process' && w.pid !== undefined);
    for (const w of info) if (w.kind === 'thread') names.set(w.tid!, `media worker ${w.index} (${w.placements.join(', ')})`);
    const seconds = 5;
    const s0 = await server.stats();
    const t0 = await threadTimes(server.pid);
    const p0 = await Promise.all(processes.map((w) => processTicks(w.pid!)));
    const w0 = Date.now();
    await sleep(seconds * 1000);
    const t1 = await threadTimes(server.pid);
    const p1 = await Promise.all(processes.map((w) => processTicks(w.pid!)));
    const wall = (Date.now() - w0) / 1000;
    const s1 = await server.stats();
    const rows = [...t1].map(([tid, t]) => ({ tid, name: names.get(tid) ?? `other (${t.comm})`, cpu: (t.ticks - (t0.get(tid)?.ticks ?? 0)) / clockTicks() / wall })).sort((a, b) => b.cpu - a.cpu);
    const lines = rows.filter((r) => r.cpu > 0 || names.has(r.tid)).map((r) => `  ${(r.cpu * 100).toFixed(1).padStart(5)}%  tid ${r.tid}  ${r.name}`);
    const workerCpu = new Map<number, number>();
    processes.forEach((w, i) => {
      const cpu = (p1[i]! - p0[i]!) / clockTicks() / wall;
      workerCpu.set(w.index, cpu);
      lines.push(`  ${(cpu * 100).toFixed(1).padStart(5)}%  pid ${w.pid}  media worker process ${w.index} (${w.placements.join(', ')})`);
    });
    for (const w of info) if (w.kind === 'thread') workerCpu.set(w.index, rows.find((r) => r.tid === w.tid)?.cpu ?? 0);
    const sum = (report: Report, room: string, dir: 'up' | 'down', f: (t: Conn['tracks'][number]) => number) =>
      report
        .find((g) => g.name === room)
        ?.clients.flatMap((c) => c[dir] ?? [])
        .flatMap((x) => x.tracks)
        .reduce((a, t) => a + f(t), 0) ?? 0;
    for (const room of ROOMS) {
      const w = workerOfRoom(info, room)!;
      const cpu = workerCpu.get(w.index) ?? 0;
      const inPps = (sum(s1, room, 'up', (t) => t.packets) - sum(s0, room, 'up', (t) => t.packets)) / wall;
      const outPps = (sum(s1, room, 'down', (t) => t.packets) - sum(s0, room, 'down', (t) => t.packets)) / wall;
      lines.push(
        `  ${room}: publisher ${(sum(s1, room, 'up', (t) => t.bitrate) / 1e6).toFixed(2)} Mbit/s, ${inPps.toFixed(0)} packets/s in, ${outPps.toFixed(0)} packets/s forwarded; worker ${w.index}: ${outPps > 0 ? ((cpu * 1e6) / (inPps + outPps)).toFixed(0) : '?'} µs of CPU per packet in or out`,
      );
    }
    const others = rows.filter((r) => !names.has(r.tid)).reduce((a, r) => a + r.cpu, 0);
    console.error(
      `CPU of the server (pid ${server.pid}, ${engine} engine) over ${wall.toFixed(1)} s, two rooms of 1 publisher (${VIDEO.width}x${VIDEO.height} noise + audio) and ${SUBSCRIBERS} subscribers each:\n${lines.join('\n')}\n  (${rows.length} threads in the server process; all its other threads together ${(others * 100).toFixed(1)}%)`,
    );

    // Media still flows in both rooms.
    for (const [room, r] of rooms) await flowing(r.subs[0]!, r.pubId, `${room} after the measurement`);
  });

  test(`a worker that dies during the call (${engine === 'native' ? 'a segmentation fault in the addon' : 'an uncaught error'}) is logged and replaced; the other group carries on; its group's streams come back ${engine === 'native' ? 'by themselves (ICE restarts, DTLS and SRTP continue)' : 'when the publisher publishes again'}`, async () => {
    const before = await server.debug();
    const red = workerOfRoom(before, 'red')!;
    const blue = workerOfRoom(before, 'blue')!;
    const redRoom = rooms.get('red')!;
    const blueRoom = rooms.get('blue')!;
    const blueBefore = (await downs(blueRoom.subs[0]!)).find((d) => d.source === blueRoom.pubId && !d.closed)!;

    const upIds = () => redRoom.pub.evaluate(() => [...(window as unknown as { tc: { up: Map<string, unknown> } }).tc.up.keys()]);
    const redUps = await upIds();
    const redBefore = await Promise.all(redRoom.subs.map(async (s) => (await downs(s)).find((d) => d.source === redRoom.pubId && !d.closed)!));
    const crashedAt = Date.now();
    await server.crash(red.index);
    if (engine === 'js') for (const s of redRoom.subs) await until('the red stream to close at the subscriber', async () => (await downs(s)).find((d) => d.source === redRoom.pubId && d.closed));
    const log = await until('the crash in the server log', async () => /media worker \d+.* stopped/.test(server.output()) && server.output());
    if (engine === 'native') assert.match(log, new RegExp(`media worker ${red.index} \\(process ${red.pid}\\) stopped \\(killed by SIGSEGV\\)`));
    else assert.match(log, /test: a media worker crashes on purpose/);

    const afterCrash = await until('the worker to be replaced', async () => {
      const info = await server.debug();
      const w = info.find((x) => x.index === red.index);
      return w?.ready && w.restarts === 1 ? info : undefined;
    });
    const blueNow = afterCrash.find((w) => w.index === blue.index)!;
    assert.equal(blueNow.tid, blue.tid, 'the other worker is the same thread');
    assert.equal(blueNow.pid, blue.pid, 'the other worker is the same process');
    if (engine === 'native') assert.notEqual(afterCrash.find((w) => w.index === red.index)!.pid, red.pid, 'the dead worker process was replaced by a new one');
    assert.deepEqual([blueNow.ups, blueNow.downs], [1, SUBSCRIBERS], 'the other group keeps its streams');
    const blueLater = await until('blue frames after the crash', async () =>
      (await downs(blueRoom.subs[0]!)).find((d) => d.id === blueBefore.id && !d.closed && (d.framesDecoded ?? 0) > (blueBefore.framesDecoded ?? 0) + 10),
    );
    assert.equal(blueLater.closed, false);

    try {
      if (engine === 'native') {
        // The native worker's replacement continues the red streams: the publisher is asked to renegotiate (an ICE restart,
        // as Galène's client does on `renegotiate`), the subscribers get new offers for the same streams, and — with the same
        // DTLS certificate on the new worker — DTLS and SRTP carry on. Nobody publishes again.
        await Promise.all(
          redRoom.subs.map(async (s, i) => {
            const was = redBefore[i]!;
            // the frame counter is per SSRC (the new worker's down-tracks have new ones): new frames show as a changed, then a growing, counter
            const moved = await until(
              `red subscriber ${i + 1}: frames again after the crash`,
              async () => {
                const d = (await downs(s)).find((x) => x.id === was.id);
                assert.ok(d && !d.closed, `red subscriber ${i + 1}'s down-stream stays open through the crash`);
                return d.framesDecoded !== undefined && d.framesDecoded !== was.framesDecoded && d.framesDecoded > 0 ? d : undefined;
              },
              45_000,
            );
            await until(
              `red subscriber ${i + 1}: more frames after the crash`,
              async () => (await downs(s)).find((x) => x.id === was.id && !x.closed && (x.framesDecoded ?? 0) > (moved.framesDecoded ?? 0) + 5),
              30_000,
            );
          }),
        );
        const seconds = (Date.now() - crashedAt) / 1000;
        const pub = await redRoom.pub.evaluate(() => {
          const tc = (window as unknown as { tc: { log: { type: string }[]; renegotiations?: number; up: Map<string, unknown> } }).tc;
          return { renegotiations: tc.renegotiations ?? 0, aborts: tc.log.filter((m) => m.type === 'abort').length, ups: [...tc.up.keys()] };
        });
        console.error(`worker crash → the red subscribers decode new frames again after ${seconds.toFixed(1)} s (publisher renegotiated ${pub.renegotiations}×, no republish)`);
        assert.deepEqual(pub.ups, redUps, 'the red publisher still has its one stream: it did not publish again');
        assert.equal(pub.aborts, 0, 'the red publisher was not told to close its stream');
        assert.ok(pub.renegotiations >= 1, 'the red publisher was asked to renegotiate');
        assert.ok(seconds < 60, `the streams came back within a minute (a few seconds on a quiet machine), not ${seconds.toFixed(1)} s`);
      } else {
        // werift keeps its own SRTP (no keys to carry over): the red publisher was told its stream was aborted (Galène's
        // client then closes it); it publishes again, as its user would, and its subscribers get the new stream.
        await until('the red publisher to be told', async () => redRoom.pub.evaluate(() => (window as unknown as { tc: { log: { type: string }[] } }).tc.log.some((m) => m.type === 'abort')));
        await call(redRoom.pub, 'publish', { label: 'camera' });
        await Promise.all(redRoom.subs.map((s, i) => flowing(s, redRoom.pubId, `red subscriber ${i + 1} after the crash`)));
      }
    } catch (e) {
      const info = await server.debug().catch(() => 'no answer');
      const pubState = await redRoom.pub.evaluate(() => {
        const tc = (window as unknown as { tc: { log: unknown[]; errors: string[]; up: Map<string, { pc: RTCPeerConnection }> } }).tc;
        return { log: tc.log.slice(-8), errors: tc.errors, ups: [...tc.up.values()].map((s) => `${s.pc.connectionState}/${s.pc.iceConnectionState}`) };
      });
      const subStates = await Promise.all(redRoom.subs.map(async (s) => (await downs(s)).map((d) => `${d.id} ${(d as { state?: string }).state} closed=${d.closed} frames=${d.framesDecoded}`)));
      if (process.env.ATRIUM_TEST_DUMP) await writeFile(process.env.ATRIUM_TEST_DUMP, server.output());
      throw new Error(
        `${(e as Error).message}\nworkers: ${JSON.stringify(info)}\nthe red publisher: ${JSON.stringify(pubState)}\nthe red subscribers: ${JSON.stringify(subStates)}\nserver output: ${server.output().slice(-3000)}`,
      );
    }
    const info = await server.debug();
    assert.notEqual(workerOfRoom(info, 'red')?.index, workerOfRoom(info, 'blue')?.index, `still on different workers: ${JSON.stringify(info)}`);
  });
}

// ---------------------------------------------------------------------------

interface ServerChild {
  url: string;
  pid: number;
  debug(): Promise<WorkerInfo[]>;
  /** The admin API's .stats report. */
  stats(): Promise<Report>;
  crash(worker: number): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

async function startServerChild(testFile: string, dirs: { dataDir: string; groupsDir: string; engine: WorkersEngine }): Promise<ServerChild> {
  const child: ChildProcess = fork(fileURLToPath(testFile), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), [CHILD]: JSON.stringify(dirs) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const pending = new Map<number, (v: unknown) => void>();
  let rid = 0;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server child did not start in 30 s:\n${out}`)), 30_000);
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
  const ask = <T>(c: Omit<Command, 'rid'>): Promise<T> =>
    new Promise<T>((resolve) => {
      const id = ++rid;
      pending.set(id, resolve as (v: unknown) => void);
      child.send({ ...c, rid: id });
    });
  return {
    url,
    pid: child.pid!,
    debug: () => ask<WorkerInfo[]>({ op: 'debug' }),
    stats: () => ask<Report>({ op: 'stats' }),
    crash: (worker) => ask<void>({ op: 'crash', worker } as Omit<Command, 'rid'>),
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      await ask({ op: 'stop' });
      // A clean stop ends the process by itself: workers terminated, nothing left on the event loop.
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      assert.equal(child.signalCode, null, `the server process did not exit by itself after stop():\n${out.slice(-2000)}`);
    },
  };
}

/** The child: an AtriumServer with two media workers, answering the test over IPC. */
async function serveChild(dirs: { dataDir: string; groupsDir: string; engine: WorkersEngine }): Promise<void> {
  const { AtriumServer } = await import('../../../src/server.ts');
  const { createLogger } = await import('../../../src/log.ts');
  const { ThreadedEngine } = await import('../../../src/media/workers/index.ts');
  const server = new AtriumServer({
    listen: '127.0.0.1:0',
    dataDir: dirs.dataDir,
    groupsDir: dirs.groupsDir,
    insecure: true,
    defaultGroup: false,
    media: { workers: 2, engine: dirs.engine, additionalHostAddresses: ['127.0.0.1'] },
    log: createLogger({ level: 'warn' }),
  });
  await server.start();
  const engine = server.engine;
  if (!(engine instanceof ThreadedEngine)) throw new Error('the server did not create the threaded engine');
  process.on('message', (m: Command) => {
    void (async () => {
      switch (m.op) {
        case 'debug':
          return process.send!({ rid: m.rid, value: engine.debug() });
        case 'stats':
          return process.send!({ rid: m.rid, value: await server.stats() });
        case 'crash':
          if (dirs.engine === 'native') engine.faultWorker(m.worker);
          else engine.crashWorker(m.worker);
          return process.send!({ rid: m.rid, value: null });
        case 'stop':
          await server.stop();
          process.send!({ rid: m.rid, value: null });
          process.disconnect();
      }
    })();
  });
  process.send!({ url: server.url });
}

/** CPU ticks (user + system) of a whole process. */
async function processTicks(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0; // the process ended meanwhile
  }
}

/** CPU ticks (user + system) of each thread of a process, with its name. */
async function threadTimes(pid: number): Promise<Map<number, { ticks: number; comm: string }>> {
  const { readdir } = await import('node:fs/promises');
  const out = new Map<number, { ticks: number; comm: string }>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // pid (comm) state ppid … : utime and stime are fields 14 and 15; comm may hold spaces.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      out.set(Number(tid), { ticks: Number(fields[11]) + Number(fields[12]), comm });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** A YUV4MPEG2 video of random pixels (Chromium's fake camera plays it in a loop). */
function noiseY4m(width: number, height: number, fps: number, frames: number): Buffer {
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`);
  const parts = [header];
  for (let i = 0; i < frames; i++) parts.push(Buffer.from('FRAME\n'), randomBytes((width * height * 3) / 2));
  return Buffer.concat(parts);
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticksPerSecond = Number(r.stdout.trim()) || 100;
  }
  return ticksPerSecond;
}
