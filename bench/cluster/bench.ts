// The cluster benchmark: the deployment of docs/cluster.md on loopback — a
// real redis-server, HAProxy with deploy/haproxy/haproxy.cfg as shipped (TLS,
// /node/<id>/ paths), and one or three `atrium serve` nodes — driven by
// Galène clients spread over several groups. Two figures per layout: how
// fast the clients join (each one asks a group's .status through HAProxy and
// connects to the endpoint it names, as Galène's web client does, or, with
// entry "lb", connects to HAProxy's /ws and lets whichever node it reaches
// hand it to the owner), and how many chat deliveries per second the groups
// sustain (one message in flight per group, the next as soon as every member
// had the last); with the CPU time every process spent on each.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certificateFor, randomPort, type Service, startHaproxy, startRedis } from '../../packages/server/test/cluster/support/services.ts';
import { BenchClient, chatValue, type Tracker } from '../signaling/client.ts';
import { BENCH_GROUP_FILE, machineBusyMs, ServerProcess } from '../signaling/server-process.ts';
import { BenchError } from '../support/main.ts';

export { BenchError };

export type Entry = 'status' | 'lb';

export interface ClusterBenchOptions {
  /** Atrium nodes behind HAProxy (1 or 3: the shipped haproxy.cfg names three servers; one node stands behind all three). */
  nodes: 1 | 3;
  entry: Entry;
  /** Clients in all, spread round-robin over the groups. */
  clients: number;
  groups: number;
  /** Chat messages per group. */
  messages: number;
  /** Joins in flight at once. */
  concurrency: number;
  /** How long one chat message may take to reach its group, ms (default 10 s). */
  messageTimeoutMs?: number;
  /** How long the join storm may take in all, ms (default 60 s). */
  joinTimeoutMs?: number;
  log?: (line: string) => void;
}

/** CPU time each process spent over a phase, ms: nodes by id, then haproxy, redis, the load generator, the rest of the machine. */
export type CpuSplit = Record<string, number>;

export interface Percentiles {
  p50: number;
  p95: number;
  max: number;
}

export interface ClusterRunResult {
  label: string;
  nodes: number;
  entry: Entry;
  clients: number;
  groups: number;
  /** Group → id of the node that holds it (as its .status says through HAProxy). */
  placement: Record<string, string>;
  /** CPU each process used while the cluster was idle, before the clients came, % of one core. */
  idlePercent: CpuSplit;
  join: {
    joined: number;
    /** First connection attempt to the last `joined`, ms. */
    elapsedMs: number;
    perSecond: number;
    /** Per client: from its .status request (or its connection) to its `joined`, ms. */
    latencyMs: Percentiles;
    /** First attempt until every client had a `user` add for every member of its group, ms. */
    allUsersSeenMs: number | undefined;
    cpuMs: CpuSplit;
  };
  chat: {
    expected: number;
    delivered: number;
    elapsedMs: number;
    /** Deliveries (message × member) per second over the phase. */
    perSecond: number;
    /** Over every delivery, the sender's echo included, ms. */
    latencyMs: Percentiles;
    cpuMs: CpuSplit;
  };
  /** Clients dropped, server errors, messages that did not reach everyone. */
  warnings: string[];
}

/** The layouts `npm run bench:cluster` compares, in order. */
export const LAYOUTS: { nodes: 1 | 3; entry: Entry; label: string }[] = [
  { nodes: 1, entry: 'status', label: '1 node' },
  { nodes: 3, entry: 'status', label: '3 nodes' },
  { nodes: 3, entry: 'lb', label: '3 nodes, via /ws' },
];

const CLOCK_TICKS = 100;
/** How long the idle cost is sampled before the clients come, ms. */
const IDLE_SAMPLE_MS = 2000;

async function procCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: Number.NaN, p95: Number.NaN, max: Number.NaN };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50: at(0.5), p95: at(0.95), max: s.at(-1)! };
}

/** GET over TLS through HAProxy, trusting its certificate; the body as JSON. */
function getJson(url: string, agent: Agent): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${url}: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body));
        } catch {
          reject(new Error(`GET ${url}: not JSON: ${body.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 30 s`)));
    req.on('error', reject);
  });
}

/** One group's members and what they received. */
class GroupState implements Tracker {
  readonly members: BenchClient[] = [];
  expectedUsers = 0;
  usersComplete = 0;
  pings = 0;
  /** seq → members that had it, and who is waiting for it to be complete. */
  private readonly pending = new Map<number, { got: number; done: () => void }>();

  constructor(
    readonly name: string,
    private readonly run: { latencies: number[]; warnings: string[]; onUsersComplete(): void },
  ) {}

  onUsersComplete(): void {
    this.run.onUsersComplete();
  }

  onChat(_client: BenchClient, seq: number, sentAt: number, receivedAt: number): void {
    const p = this.pending.get(seq);
    if (!p) return;
    this.run.latencies.push(receivedAt - sentAt);
    if (++p.got === this.members.length) p.done();
  }

  onDropped(client: BenchClient, code: number, reason: string): void {
    this.run.warnings.push(`${this.name}: client ${client.index} dropped (code ${code}${reason ? `, ${reason}` : ''})`);
  }

  onServerError(client: BenchClient, text: string): void {
    this.run.warnings.push(`${this.name}: client ${client.index}: ${text}`);
  }

  /** Sends one message from a random member; resolves with the members that had it when all did or the time ran out. */
  async send(seq: number, timeoutMs: number): Promise<number> {
    const sender = this.members[Math.floor(Math.random() * this.members.length)]!;
    let timer: NodeJS.Timeout | undefined;
    const entry = { got: 0, done: () => {} };
    const complete = new Promise<void>((resolve) => {
      entry.done = resolve;
      timer = setTimeout(resolve, timeoutMs);
    });
    this.pending.set(seq, entry);
    sender.sendChat(chatValue(seq, performance.now()));
    await complete;
    clearTimeout(timer);
    this.pending.delete(seq);
    return entry.got;
  }
}

/** One layout, from an empty machine to an empty machine: Redis, nodes, HAProxy, clients, figures. */
export async function runClusterLayout(opts: ClusterBenchOptions & { label: string }): Promise<ClusterRunResult> {
  const log = opts.log ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'atrium-bench-cluster-'));
  const ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
  const groupNames = Array.from({ length: opts.groups }, (_, i) => `bench-${i + 1}`);
  // Each group names a region, so that three nodes get the groups in turn whatever the timing of the first joins.
  const groupFiles = Object.fromEntries(groupNames.map((g, i) => [g, { ...BENCH_GROUP_FILE, region: `r${(i % 3) + 1}` }]));
  const nodes = new Map<string, ServerProcess>();
  let redis: Service | undefined;
  let haproxy: Service | undefined;
  const clients: BenchClient[] = [];
  const warnings: string[] = [];
  // If this process exits abruptly (watchdog, Ctrl-C), the servers go with it (the nodes see to themselves).
  const killOnExit = () => {
    for (const s of [haproxy, redis]) if (s && s.process.exitCode === null && s.process.signalCode === null) s.process.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  try {
    const redisPort = randomPort();
    redis = await startRedis('127.0.0.1', redisPort);
    const lbPort = randomPort();
    const lb = `https://127.0.0.1:${lbPort}`;
    const { pem, cert } = await certificateFor('127.0.0.1', dir);
    const ca = await readFile(cert, 'utf8');
    const agent = new Agent({ ca, keepAlive: true, maxSockets: opts.concurrency });

    log(`${opts.label}: starting redis-server, ${opts.nodes} node(s), haproxy`);
    await Promise.all(
      ids.map(async (id, i) => {
        const s = await ServerProcess.start({
          group: groupNames[0]!,
          groups: groupFiles,
          startTimeoutMs: 90_000,
          args: ['--redis', `redis://127.0.0.1:${redisPort}`, '--node-id', id, '--public-url', `${lb}/node/${id}`, '--region', `r${i + 1}`, '--no-media'],
        });
        nodes.set(id, s);
      }),
    );
    const hostOf = (id: string) => new URL(nodes.get(id)!.url).host;
    haproxy = await startHaproxy({
      ATRIUM_LB_BIND: `127.0.0.1:${lbPort}`,
      ATRIUM_LB_PEM: pem,
      ATRIUM_NODE1: hostOf('n1'),
      ATRIUM_NODE2: hostOf(ids[1] ?? 'n1'),
      ATRIUM_NODE3: hostOf(ids[2] ?? 'n1'),
    });
    // Every node reachable at its path through HAProxy, registered in Redis.
    const readyBy = Date.now() + 30_000;
    for (const id of ids) {
      for (;;) {
        const r = (await getJson(`${lb}/node/${id}/readyz`, agent).catch(() => undefined)) as { status?: string; node?: string } | undefined;
        if (r?.status === 'ready' && r.node === id) break;
        if (Date.now() > readyBy) throw new BenchError(`node ${id} is not ready through HAProxy at ${lb}/node/${id}/readyz: ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    }

    const pids = (): [string, number][] => [...[...nodes].map(([id, s]) => [id, s.pid] as [string, number]), ['haproxy', haproxy!.process.pid!], ['redis', redis!.process.pid!]];
    const cpuNow = async (): Promise<CpuSplit> => {
      const out: CpuSplit = {};
      for (const [name, pid] of pids()) out[name] = await procCpuMs(pid);
      const u = process.cpuUsage();
      out.load = (u.user + u.system) / 1000;
      out.machine = (await machineBusyMs()) ?? Number.NaN;
      return out;
    };
    const cpuDelta = (a: CpuSplit, b: CpuSplit): CpuSplit => {
      const d: CpuSplit = {};
      for (const k of Object.keys(a)) d[k] = b[k]! - a[k]!;
      const ours = Object.entries(d).reduce((sum, [k, v]) => (k === 'machine' ? sum : sum + v), 0);
      d.rest = Math.max(0, d.machine! - ours);
      delete d.machine;
      return d;
    };

    // What the processes cost doing nothing (heartbeats, health checks), so that it can be told from the work.
    const idle0 = await cpuNow();
    const i0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS));
    const idleCpu = cpuDelta(idle0, await cpuNow());
    const idleMs = performance.now() - i0;
    const idlePercent = Object.fromEntries(Object.entries(idleCpu).map(([k, v]) => [k, (100 * v) / idleMs]));

    // The join storm.
    const latencies: number[] = [];
    let allUsersAt: number | undefined;
    const run = {
      latencies,
      warnings,
      onUsersComplete: () => {
        if (groups.every((g) => g.usersComplete === g.expectedUsers)) allUsersAt ??= performance.now();
      },
    };
    const groups = groupNames.map((g) => new GroupState(g, run));
    for (let i = 0; i < opts.clients; i++) groups[i % groups.length]!.expectedUsers++;
    const joinLatencies: number[] = [];
    const cpu0 = await cpuNow();
    const t0 = performance.now();
    let next = 0;
    let lastJoined = t0;
    const joinDeadline = t0 + (opts.joinTimeoutMs ?? 60_000);
    const worker = async () => {
      for (let i = next++; i < opts.clients; i = next++) {
        if (performance.now() > joinDeadline) throw new BenchError(`the join storm took more than ${(opts.joinTimeoutMs ?? 60_000) / 1000} s (${i} of ${opts.clients} started)`);
        const g = groups[i % groups.length]!;
        const c = new BenchClient(i, g);
        clients.push(c);
        const started = performance.now();
        let url = `wss://127.0.0.1:${lbPort}/ws`;
        if (opts.entry === 'status') {
          const status = (await getJson(`${lb}/group/${g.name}/.status`, agent)) as { endpoint?: unknown };
          if (typeof status.endpoint !== 'string') throw new BenchError(`${g.name}/.status has no endpoint: ${JSON.stringify(status)}`);
          url = status.endpoint;
        }
        await c.join({ url, id: randomBytes(8).toString('hex'), group: g.name, username: `u${i}`, ca });
        g.members.push(c);
        lastJoined = performance.now();
        joinLatencies.push(lastJoined - started);
        if ((i + 1) % 100 === 0) log(`${opts.label}: ${i + 1} joined`);
      }
    };
    try {
      await Promise.all(Array.from({ length: opts.concurrency }, worker));
    } catch (e) {
      throw e instanceof BenchError ? e : new BenchError(`a client could not join: ${(e as Error).message}`);
    }
    const joinedMs = lastJoined - t0;
    const usersBy = performance.now() + 30_000;
    while (allUsersAt === undefined && performance.now() < usersBy) await new Promise((r) => setTimeout(r, 20));
    const cpu1 = await cpuNow();
    if (allUsersAt === undefined) warnings.push('not every client saw a user add for every member of its group within 30 s');

    const placement: Record<string, string> = {};
    for (const g of groupNames) {
      const status = (await getJson(`${lb}/group/${g}/.status`, agent)) as { endpoint?: string };
      placement[g] = /\/node\/([^/]+)\//.exec(status.endpoint ?? '')?.[1] ?? `? (${status.endpoint})`;
    }

    // Chat: every group at once, one message in flight per group.
    const timeout = opts.messageTimeoutMs ?? 10_000;
    const chatLatencies = latencies;
    chatLatencies.length = 0;
    const cpu2 = await cpuNow();
    const c0 = performance.now();
    let delivered = 0;
    await Promise.all(
      groups.map(async (g, gi) => {
        for (let m = 0; m < opts.messages; m++) {
          const got = await g.send(gi * 1_000_000 + m, timeout);
          delivered += got;
          if (got < g.members.length) warnings.push(`${g.name}: message ${m} reached ${got} of ${g.members.length} members within ${timeout / 1000} s`);
        }
      }),
    );
    const chatMs = performance.now() - c0;
    const cpu3 = await cpuNow();

    return {
      label: opts.label,
      nodes: opts.nodes,
      entry: opts.entry,
      clients: opts.clients,
      groups: opts.groups,
      placement,
      idlePercent,
      join: {
        joined: groups.reduce((n, g) => n + g.members.length, 0),
        elapsedMs: joinedMs,
        perSecond: (opts.clients * 1000) / joinedMs,
        latencyMs: percentiles(joinLatencies),
        allUsersSeenMs: allUsersAt === undefined ? undefined : allUsersAt - t0,
        cpuMs: cpuDelta(cpu0, cpu1),
      },
      chat: {
        expected: opts.messages * opts.clients,
        delivered,
        elapsedMs: chatMs,
        perSecond: (delivered * 1000) / chatMs,
        latencyMs: percentiles(chatLatencies),
        cpuMs: cpuDelta(cpu2, cpu3),
      },
      warnings,
    };
  } finally {
    for (const c of clients) c.close();
    await Promise.all([...nodes.values()].map((s) => s.stop()));
    await haproxy?.stop();
    await redis?.stop();
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ClusterBenchResult {
  layouts: ClusterRunResult[];
}

/** Every layout in turn, with the same clients, groups and messages. */
export async function runClusterBench(opts: Omit<ClusterBenchOptions, 'nodes' | 'entry'> & { layouts?: typeof LAYOUTS }): Promise<ClusterBenchResult> {
  const layouts: ClusterRunResult[] = [];
  for (const l of opts.layouts ?? LAYOUTS) layouts.push(await runClusterLayout({ ...opts, ...l }));
  return { layouts };
}
