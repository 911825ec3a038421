// One benchmark shape, end to end: a fresh server process (Atrium, or Janus
// for `--compare janus`), one publisher process and one subscriber process
// per room (forked, so their CPU is not the server's), a steady-state window
// measured from /proc and from the subscribers' counters.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopChild } from '../support/child.ts';
import type { GeneratorCommand, GeneratorEvent, PubSnapshot, SubSnapshot } from './generator.ts';
import { createJanusRooms, JanusProcess } from './janus.ts';
import type { SfuTarget } from './peers.ts';
import { type ProcessCpu, ServerProcess, threadCpuNumber, threadDelta } from './server.ts';

/** The server under test. */
export type Sfu = 'atrium' | 'janus';

const GENERATOR = fileURLToPath(new URL('./generator.ts', import.meta.url));

export interface Room {
  group: string;
  publishers: number;
  subscribers: number;
  /** RTP packets per second per publisher. */
  rate: number;
}

export interface Shape {
  name: string;
  rooms: Room[];
}

export interface ShapeOptions {
  /** Default: atrium. */
  sfu?: Sfu | undefined;
  /** Janus's event_loops (default 0, Janus's own default: a loop thread per handle). */
  janusEventLoops?: number | undefined;
  /** Atrium's `--media-engine`; undefined: the server's default (auto). */
  mediaEngine?: string | undefined;
  seconds: number;
  warmupSeconds: number;
  packetSize: number;
  packetsPerFrame: number;
  keyframeEveryMs: number;
  /** undefined: the server is started without the flag. */
  mediaWorkers?: number | undefined;
  cpuProfDir?: string | undefined;
  /** Progress lines (to stderr by the CLI). */
  log: (line: string) => void;
}

export interface RoomResult {
  room: Room;
  sentPps: number;
  deliveredPps: number;
  /** Lost / expected, from sequence gaps at the subscribers, over the window. */
  loss: number;
  /** Delivered / (sent × subscribers) over the window. */
  deliveryRatio: number;
  downStreams: number;
  /** Subscribe (request sent) to first RTP packet, ms, per down-stream. */
  firstPacketMs: number[];
  /** The same, split: request → server offer, → connected (ICE + DTLS), → first packet. */
  phases: { offer: number; connected: number; first: number }[];
  plis: number;
  errors: string[];
  /** Per (subscriber, down-stream) over the window. */
  perDown: { subscriber: string; stream: string; packets: number; expected: number }[];
}

export interface ShapeResult {
  sfu: Sfu;
  shape: Shape;
  seconds: number;
  rooms: RoomResult[];
  deliveredPps: number;
  loss: number;
  serverCpuPercent: number;
  usPerPacket: number;
  generatorCpuPercent: number;
  /** Server threads with their CPU use and the core they were seen on most (and how often, 0..1). */
  threads: { tid: number; name: string; percent: number; cpu: number | undefined; cpuShare: number }[];
  mediaWorkers: number | undefined;
}

class Generator {
  readonly child: ChildProcess;
  #waiters: ((e: GeneratorEvent) => boolean)[] = [];
  #seq = 0;
  exitError: string | undefined;

  constructor(readonly label: string) {
    this.child = fork(GENERATOR, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (e: GeneratorEvent) => {
      this.#waiters = this.#waiters.filter((w) => !w(e));
    });
    this.child.on('exit', (code, signal) => {
      this.exitError = `load generator ${label} exited (${signal ?? code})`;
      for (const w of this.#waiters) w({ ev: 'error', message: this.exitError });
      this.#waiters = [];
    });
  }

  #send(c: GeneratorCommand): void {
    if (this.exitError) throw new Error(this.exitError);
    this.child.send(c);
  }

  #await<T>(what: string, pick: (e: GeneratorEvent) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load generator ${this.label}: no ${what} within ${timeoutMs / 1000} s`)), timeoutMs);
      this.#waiters.push((e) => {
        if (e.ev === 'error') {
          clearTimeout(timer);
          reject(new Error(`load generator ${this.label}: ${e.message}`));
          return true;
        }
        const v = pick(e);
        if (v === undefined) return false;
        clearTimeout(timer);
        resolve(v);
        return true;
      });
    });
  }

  async start(c: GeneratorCommand & { cmd: 'start' }): Promise<void> {
    const done = this.#await('start', (e) => (e.ev === 'started' ? true : undefined), 60_000);
    this.#send(c);
    await done;
  }

  async snapshot(): Promise<GeneratorEvent & { ev: 'snapshot' }> {
    const seq = ++this.#seq;
    const p = this.#await('snapshot', (e) => (e.ev === 'snapshot' && e.seq === seq ? e : undefined), 10_000);
    this.#send({ cmd: 'snapshot', seq });
    return p;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, { ask: () => this.child.send({ cmd: 'stop' }), graceMs: 5000 });
  }
}

interface RoomProcs {
  room: Room;
  pub: Generator;
  sub: Generator;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sum<T>(xs: T[], f: (x: T) => number): number {
  let s = 0;
  for (const x of xs) s += f(x);
  return s;
}

export async function runShape(shape: Shape, o: ShapeOptions): Promise<ShapeResult> {
  const sfu = o.sfu ?? 'atrium';
  let server: ProcessCpu;
  let targetOf: (room: Room) => SfuTarget;
  if (sfu === 'janus') {
    const janus = await JanusProcess.start(o.janusEventLoops ?? 0);
    server = janus;
    const rooms = shape.rooms.map((r, i) => ({ room: 1000 + i, publishers: r.publishers }));
    try {
      await createJanusRooms(janus.wsUrl, rooms);
    } catch (e) {
      await janus.stop();
      throw e;
    }
    targetOf = (room) => ({ kind: 'janus', url: janus.wsUrl, room: 1000 + shape.rooms.indexOf(room) });
    o.log(`${shape.name}: Janus pid ${janus.pid} at ${janus.wsUrl}`);
  } else {
    const atrium = await ServerProcess.start({ groups: shape.rooms.map((r) => r.group), mediaWorkers: o.mediaWorkers, mediaEngine: o.mediaEngine, cpuProfDir: o.cpuProfDir });
    server = atrium;
    targetOf = (room) => ({ kind: 'galene', url: atrium.wsUrl, group: room.group });
    o.log(`${shape.name}: server pid ${atrium.pid} at ${atrium.url}`);
  }
  const procs: RoomProcs[] = [];
  try {
    for (const room of shape.rooms) {
      const label = `${shape.name}/${room.group}`;
      const p: RoomProcs = { room, pub: new Generator(`${label} publishers`), sub: new Generator(`${label} subscribers`) };
      procs.push(p);
      await p.pub.start({
        cmd: 'start',
        role: 'pub',
        target: targetOf(room),
        names: Array.from({ length: room.publishers }, (_, i) => `pub${i}`),
        rate: room.rate,
        packetSize: o.packetSize,
        packetsPerFrame: o.packetsPerFrame,
        keyframeEveryMs: o.keyframeEveryMs,
      });
    }
    o.log(`${shape.name}: publishers connected and sending; subscribers requesting`);
    await sleep(300);
    await Promise.all(
      procs.map((p) => p.sub.start({ cmd: 'start', role: 'sub', target: targetOf(p.room), publishers: p.room.publishers, names: Array.from({ length: p.room.subscribers }, (_, i) => `sub${i}`) })),
    );

    // Every subscriber must have a flowing down-stream from every publisher.
    const deadline = Date.now() + 60_000;
    let subSnaps: SubSnapshot[][] = [];
    for (;;) {
      subSnaps = await Promise.all(procs.map(async (p) => (await p.sub.snapshot()).subs));
      const flowing = procs.map((_p, i) => sum(subSnaps[i]!, (s) => s.downs.filter((d) => d.firstAt >= 0).length));
      const wanted = procs.map((p) => p.room.publishers * p.room.subscribers);
      if (flowing.every((f, i) => f >= wanted[i]!)) break;
      if (Date.now() > deadline) {
        const errs = subSnaps.flat().flatMap((s) => s.errors);
        throw new Error(
          `${shape.name}: only ${flowing.join('+')} of ${wanted.join('+')} down-streams received a packet within 60 s` +
            (errs.length ? `; server errors: ${[...new Set(errs)].slice(0, 5).join('; ')}` : '') +
            `\nserver output:\n${server.tail()}`,
        );
      }
      await sleep(200);
    }
    const firstPacketMs = subSnaps.map((ss) => ss.flatMap((s) => s.downs.map((d) => d.firstAt - s.requestAt)));
    const phases = subSnaps.map((ss) => ss.flatMap((s) => s.downs.map((d) => ({ offer: d.offerAt - s.requestAt, connected: d.connectedAt - s.requestAt, first: d.firstAt - s.requestAt }))));
    o.log(`${shape.name}: all ${sum(procs, (p) => p.room.publishers * p.room.subscribers)} down-streams flowing; warming up ${o.warmupSeconds} s`);
    await sleep(o.warmupSeconds * 1000);

    const gens = procs.flatMap((p) => [p.pub, p.sub]);
    const snapAll = () => Promise.all(gens.map((g) => g.snapshot()));
    const cpu0 = server.cpuUs();
    const thr0 = server.threads();
    const t0 = performance.now();
    const s0 = await snapAll();
    // Which CPU each server thread is on, sampled through the window.
    const placement = new Map<number, Map<number, number>>();
    const sampler = setInterval(() => {
      for (const t of server.threads()) {
        const cpu = threadCpuNumber(t.tid);
        if (cpu === undefined) continue;
        const m = placement.get(t.tid) ?? new Map<number, number>();
        m.set(cpu, (m.get(cpu) ?? 0) + 1);
        placement.set(t.tid, m);
      }
    }, 100);
    for (let i = 1; i <= o.seconds; i++) {
      await sleep(1000);
      if (i % 5 === 0 && i < o.seconds) o.log(`${shape.name}: ${i}/${o.seconds} s`);
    }
    clearInterval(sampler);
    const s1 = await snapAll();
    const cpu1 = server.cpuUs();
    const thr1 = server.threads();
    const seconds = (performance.now() - t0) / 1000;

    const rooms: RoomResult[] = procs.map((p, i) => {
      const [pa, sa, pb, sb] = [s0[2 * i]!, s0[2 * i + 1]!, s1[2 * i]!, s1[2 * i + 1]!];
      const sent = sum(pb.pubs, (x) => x.sent) - sum(pa.pubs, (x) => x.sent);
      const downsA = new Map(sa.subs.flatMap((s) => s.downs.map((d) => [`${s.name}/${d.id}`, d] as const)));
      let delivered = 0;
      let expected = 0;
      const perDown: RoomResult['perDown'] = [];
      for (const s of sb.subs) {
        for (const d of s.downs) {
          const a = downsA.get(`${s.name}/${d.id}`);
          delivered += d.packets - (a?.packets ?? 0);
          expected += d.expected - (a?.expected ?? 0);
          perDown.push({ subscriber: s.name, stream: d.id, packets: d.packets - (a?.packets ?? 0), expected: d.expected - (a?.expected ?? 0) });
        }
      }
      const errors = [...new Set([...pb.pubs.flatMap((x: PubSnapshot) => x.errors), ...sb.subs.flatMap((x) => x.errors)])];
      return {
        room: p.room,
        sentPps: sent / seconds,
        deliveredPps: delivered / seconds,
        loss: expected > 0 ? Math.max(0, expected - delivered) / expected : 0,
        deliveryRatio: sent > 0 ? delivered / (sent * p.room.subscribers) : 0,
        downStreams: sb.subs.reduce((a, s) => a + s.downs.length, 0),
        firstPacketMs: firstPacketMs[i]!,
        phases: phases[i]!,
        plis: sum(pb.pubs, (x) => x.plis),
        errors,
        perDown,
      };
    });
    const deliveredTotal = sum(rooms, (r) => r.deliveredPps) * seconds;
    const genCpu = sum(s1, (s) => s.cpuUs) - sum(s0, (s) => s.cpuUs);
    const expectedTotal = sum(rooms, (r) => (r.loss < 1 ? (r.deliveredPps * seconds) / (1 - r.loss) : 0));
    return {
      sfu,
      shape,
      seconds,
      rooms,
      deliveredPps: deliveredTotal / seconds,
      loss: expectedTotal > 0 ? Math.max(0, expectedTotal - deliveredTotal) / expectedTotal : 0,
      serverCpuPercent: ((cpu1 - cpu0) / (seconds * 1e6)) * 100,
      usPerPacket: deliveredTotal > 0 ? (cpu1 - cpu0) / deliveredTotal : Infinity,
      generatorCpuPercent: (genCpu / (seconds * 1e6)) * 100,
      threads: threadDelta(thr0, thr1, seconds).map((t) => {
        const seen = [...(placement.get(t.tid) ?? new Map<number, number>()).entries()].sort((a, b) => b[1] - a[1]);
        const total = seen.reduce((a, [, n]) => a + n, 0);
        return { ...t, cpu: seen[0]?.[0], cpuShare: total > 0 ? seen[0]![1] / total : 0 };
      }),
      mediaWorkers: o.mediaWorkers,
    };
  } finally {
    await Promise.all(procs.flatMap((p) => [p.pub.stop(), p.sub.stop()]));
    await server.stop();
  }
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
