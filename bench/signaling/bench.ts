// The signalling benchmark: one real server process, N Galène clients in
// one group, and three figures — how fast they can join, how long a chat
// message takes to reach every member, and what each member costs the
// server in memory. `run.ts` prints the figures; the test runs the same
// code small to keep it working.
import { randomBytes } from 'node:crypto';
import { BenchError } from '../support/main.ts';
import { BenchClient, chatValue, type Tracker } from './client.ts';
import { type MemorySample, machineBusyMs, openFileLimit, ServerProcess } from './server-process.ts';

export interface SignalingBenchOptions {
  /** Clients joining the group (default 2000). */
  clients?: number;
  /** Chat messages sent once everyone is in (default 20). */
  messages?: number;
  /** Connection attempts in flight during the join storm (default 64). */
  concurrency?: number;
  /** Least time between two chat messages, in ms (default 200). */
  messageIntervalMs?: number;
  /** How long one chat message may take to reach everyone, in ms (default 5000). */
  messageTimeoutMs?: number;
  /** Group name (default "bench"). */
  group?: string;
  /** The whole run, server start included, must end within this (default 110 s). */
  deadlineMs?: number;
  /** How long the server may take to start (default 45 s). */
  serverStartTimeoutMs?: number;
  /** Extra node flags for the server process, e.g. ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"]. */
  serverNodeArgs?: string[];
  /** Progress lines go here (default: nowhere). */
  log?: (line: string) => void;
  /** A progress line every this many joins (default 250). */
  progressEvery?: number;
}

export interface MessageOutcome {
  seq: number;
  /** Index of the sending client. */
  sender: number;
  /** Members that got it (the sender included). */
  delivered: number;
  /** Time from send until the last member got it, ms; undefined if someone never did. */
  lastMemberMs: number | undefined;
}

export interface SignalingBenchResult {
  clients: number;
  messages: number;
  concurrency: number;
  server: { url: string; pid: number };
  join: {
    joined: number;
    /** First connection attempt to last `joined` frame, ms. */
    elapsedMs: number;
    perSecond: number;
    /** First connection attempt until every client had seen N `user` adds, ms; undefined if that never happened. */
    allUsersSeenMs: number | undefined;
    /** Clients that saw a `user` add for every member. */
    clientsWithAllUsers: number;
    /** `user` adds seen by the client that joined last. */
    lastClientUserAdds: number;
    /** Server CPU over the join storm (until all adds were delivered), % of one core. */
    serverCpuPercent: number;
    /** Load generator CPU over the same span, % of one core. */
    loadCpuPercent: number;
    /** The rest of the machine (other processes, kernel work not charged to either) over the same span, % of one core. */
    otherCpuPercent: number | undefined;
  };
  fanout: {
    /** Deliveries expected: messages × clients. */
    expected: number;
    delivered: number;
    duplicates: number;
    /** Over every (message, member) delivery, ms. */
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
    /** Per message: time until the last member had it. */
    perMessage: MessageOutcome[];
    lastMemberP50Ms: number;
    lastMemberMaxMs: number;
    serverCpuPercent: number;
  };
  memory: {
    /** Server after start and one warm-up join, before the storm. */
    before: MemorySample;
    /** Server with every client joined and every `user` add delivered. */
    after: MemorySample;
    rssPerClientBytes: number;
    heapPerClientBytes: number | undefined;
  };
  /** Members whose connection dropped during the run. */
  dropped: number;
  pingsAnswered: number;
  /** Server errors and other oddities seen by clients (first few). */
  warnings: string[];
}

export { BenchError };

const DEFAULTS = {
  clients: 2000,
  messages: 20,
  concurrency: 64,
  messageIntervalMs: 200,
  messageTimeoutMs: 5000,
  group: 'bench',
  deadlineMs: 110_000,
  serverStartTimeoutMs: 45_000,
  progressEvery: 250,
};

/** Longest join storm, and longest wait for its `user` adds, before the run gives up. */
const JOIN_BUDGET_MS = 60_000;
const USERS_BUDGET_MS = 30_000;

/** File descriptors each process needs besides one per connection. */
const FD_MARGIN = 100;

export async function runSignalingBench(options: SignalingBenchOptions = {}): Promise<SignalingBenchResult> {
  const o = { ...DEFAULTS, ...options };
  const log = options.log ?? (() => {});
  const n = o.clients;
  const m = o.messages;
  if (!Number.isInteger(n) || n < 1) throw new BenchError(`clients must be a positive integer, not ${n}`);
  if (!Number.isInteger(m) || m < 0) throw new BenchError(`messages must be a non-negative integer, not ${m}`);
  await checkFileLimit(n);

  const started = performance.now();
  const deadline = started + o.deadlineMs;
  const remaining = () => Math.max(0, deadline - performance.now());

  const warnings: string[] = [];
  /** Set once the run is over: the shutdown's own messages and closes are not findings. */
  let finished = false;
  const warn = (w: string) => {
    if (!finished && warnings.length < 20) warnings.push(w);
  };

  // Fan-out bookkeeping: one latency slot per (message, client).
  const latencies = new Float64Array(m * n).fill(NaN);
  const deliveredPerMessage = new Uint32Array(m);
  let duplicates = 0;
  let dropped = 0;
  let waiting: { seq: number; done: () => void } | undefined;
  let usersDone: (() => void) | undefined;

  const tracker: Tracker = {
    expectedUsers: n,
    usersComplete: 0,
    pings: 0,
    onUsersComplete() {
      if (tracker.usersComplete === n) usersDone?.();
    },
    onChat(client, seq, sentAt, receivedAt) {
      if (seq < 0 || seq >= m) return;
      const slot = seq * n + client.index;
      if (!Number.isNaN(latencies[slot]!)) {
        duplicates++;
        return;
      }
      latencies[slot] = receivedAt - sentAt;
      if (++deliveredPerMessage[seq]! === n && waiting?.seq === seq) waiting.done();
    },
    onDropped(client, code, reason) {
      if (finished) return;
      dropped++;
      warn(`client ${client.index} was disconnected by the server (code ${code}${reason ? `, ${reason}` : ''})`);
    },
    onServerError(client, text) {
      warn(`client ${client.index}: server ${text}`);
    },
  };

  const runId = randomBytes(4).toString('hex');
  const clients: BenchClient[] = [];
  let server: ServerProcess | undefined;

  try {
    log(`starting the server…`);
    server = await ServerProcess.start({ group: o.group, startTimeoutMs: Math.min(o.serverStartTimeoutMs, remaining()), nodeArgs: o.serverNodeArgs }).catch((e: unknown) => {
      throw new BenchError(e instanceof Error ? e.message : String(e));
    });
    const url = server.wsUrl;
    log(`server pid ${server.pid} at ${server.url}`);

    // One client joins and leaves first, so that code the server loads or
    // compiles on its first join is not counted as per-client memory.
    const warmup = new BenchClient(-1, { ...tracker, expectedUsers: Infinity, onChat() {}, onDropped() {}, onUsersComplete() {} });
    await withTimeout(warmup.join({ url, id: `bench-${runId}-warmup`, group: o.group, username: 'warmup' }), Math.min(15_000, remaining()), 'the warm-up client did not join within 15 s');
    warmup.close();
    await sleep(500);
    const memBefore = await server.memory();

    // ---------------------------------------------------------------- joins
    log(`joining ${n} clients to group "${o.group}" (${o.concurrency} in flight)…`);
    for (let i = 0; i < n; i++) clients.push(new BenchClient(i, tracker));
    const allUsersSeen = new Promise<void>((resolve) => (usersDone = resolve));
    if (tracker.usersComplete === n) usersDone?.();

    const cpu0 = await server.cpuMs();
    const busy0 = await machineBusyMs();
    const load0 = process.cpuUsage();
    const t0 = performance.now();
    let next = 0;
    let joined = 0;
    let firstFailure: Error | undefined;
    let failures = 0;
    let onFailure: () => void = () => {};
    const failed = new Promise<boolean>((resolve) => (onFailure = () => resolve(false)));
    const worker = async () => {
      while (next < n && !firstFailure) {
        const c = clients[next++]!;
        try {
          await c.join({ url, id: `bench-${runId}-${c.index}`, group: o.group, username: `u${c.index}` });
        } catch (e) {
          failures++;
          if (!firstFailure) {
            firstFailure = e instanceof Error ? e : new Error(String(e));
            onFailure();
          }
          return;
        }
        joined++;
        if (joined % o.progressEvery === 0 || joined === n) {
          const s = (performance.now() - t0) / 1000;
          log(`  joined ${String(joined).padStart(String(n).length)}/${n}  ${s.toFixed(1)} s  ${(joined / s).toFixed(0)}/s`);
        }
      }
    };
    const workers = Array.from({ length: Math.min(o.concurrency, n) }, worker);
    const joinBudget = Math.min(JOIN_BUDGET_MS, remaining());
    const allJoined = await withTimeout(Promise.race([Promise.all(workers).then(() => true), failed]), joinBudget, '').catch(() => false);
    if (firstFailure || !allJoined) {
      const why = firstFailure ? `${failures} failed; first: ${(firstFailure as Error).message}` : `not done within ${(joinBudget / 1000).toFixed(0)} s`;
      await sleep(200);
      const stderr = server.alive ? '' : `\nthe server process exited${server.recentStderr() ? `; its stderr:\n${server.recentStderr()}` : ''}`;
      throw new BenchError(`clients failed to join: ${joined} of ${n} joined (${why})${stderr}`);
    }
    const joinMs = performance.now() - t0;
    const joinRate = n / (joinMs / 1000);

    // Every member must have heard of every other one: that is the real join storm.
    const usersOk = await withTimeout(
      allUsersSeen.then(() => true),
      Math.max(0, Math.min(USERS_BUDGET_MS, remaining() - 10_000)),
      '',
    ).catch(() => false);
    const usersMs = performance.now() - t0;
    const load1 = process.cpuUsage(load0);
    const cpu1 = await server.cpuMs();
    const busy1 = await machineBusyMs();
    if (!usersOk) warn(`only ${tracker.usersComplete} of ${n} clients saw a "user" add for every member`);
    log(usersOk ? `every client has seen all ${n} members (${(usersMs / 1000).toFixed(1)} s after the first connection)` : `not every client saw all members in time`);

    await sleep(500);
    const memAfter = await server.memory();

    // ---------------------------------------------------------------- chat
    if (m > 0) log(`sending ${m} chat messages, one every ${o.messageIntervalMs} ms at least…`);
    const perMessage: MessageOutcome[] = [];
    const chatT0 = performance.now();
    const cpu2 = await server.cpuMs();
    for (let seq = 0; seq < m; seq++) {
      const sender = clients[Math.floor(Math.random() * n)]!;
      const sentAt = performance.now();
      const done = new Promise<void>((resolve) => (waiting = { seq, done: resolve }));
      sender.sendChat(chatValue(seq, sentAt));
      await withTimeout(done, Math.max(0, Math.min(o.messageTimeoutMs, remaining() - 3000)), '').catch(() => {
        warn(`message ${seq} reached ${deliveredPerMessage[seq]} of ${n} members within ${o.messageTimeoutMs} ms`);
      });
      waiting = undefined;
      const delivered = deliveredPerMessage[seq]!;
      let last = 0;
      for (let i = 0; i < n; i++) last = Math.max(last, latencies[seq * n + i]!);
      perMessage.push({ seq, sender: sender.index, delivered, lastMemberMs: delivered === n ? last : undefined });
      const wait = sentAt + o.messageIntervalMs - performance.now();
      if (wait > 0 && seq < m - 1) await sleep(wait);
    }
    const chatMs = performance.now() - chatT0;
    const cpu3 = await server.cpuMs();

    const got = Array.from(latencies).filter((x) => !Number.isNaN(x));
    got.sort((a, b) => a - b);
    const lasts = perMessage.map((p) => p.lastMemberMs ?? Infinity).sort((a, b) => a - b);

    return {
      clients: n,
      messages: m,
      concurrency: o.concurrency,
      server: { url: server.url, pid: server.pid },
      join: {
        joined,
        elapsedMs: joinMs,
        perSecond: joinRate,
        allUsersSeenMs: usersOk ? usersMs : undefined,
        clientsWithAllUsers: tracker.usersComplete,
        lastClientUserAdds: clients[n - 1]!.userAdds,
        serverCpuPercent: ((cpu1 - cpu0) / usersMs) * 100,
        loadCpuPercent: ((load1.user + load1.system) / 1000 / usersMs) * 100,
        otherCpuPercent: busy0 !== undefined && busy1 !== undefined ? Math.max(0, ((busy1 - busy0 - (cpu1 - cpu0) - (load1.user + load1.system) / 1000) / usersMs) * 100) : undefined,
      },
      fanout: {
        expected: m * n,
        delivered: got.length,
        duplicates,
        p50Ms: percentile(got, 0.5),
        p99Ms: percentile(got, 0.99),
        maxMs: got.length ? got[got.length - 1]! : NaN,
        perMessage,
        lastMemberP50Ms: percentile(lasts, 0.5),
        lastMemberMaxMs: lasts.length ? lasts[lasts.length - 1]! : NaN,
        serverCpuPercent: chatMs > 0 ? ((cpu3 - cpu2) / chatMs) * 100 : 0,
      },
      memory: {
        before: memBefore,
        after: memAfter,
        rssPerClientBytes: (memAfter.rss - memBefore.rss) / n,
        heapPerClientBytes: memAfter.heapUsed !== undefined && memBefore.heapUsed !== undefined ? (memAfter.heapUsed - memBefore.heapUsed) / n : undefined,
      },
      dropped,
      pingsAnswered: tracker.pings,
      warnings,
    };
  } finally {
    finished = true;
    // The server first: closing 2000 members one by one would make it
    // broadcast 2000 departures to everyone still there.
    if (server) {
      const stopped = await server.stop();
      log(`server ${stopped.killed ? 'killed (SIGKILL) after not stopping on SIGTERM within' : 'stopped in'} ${(stopped.ms / 1000).toFixed(1)} s`);
    }
    for (const c of clients) c.close();
  }
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

async function checkFileLimit(n: number): Promise<void> {
  const limit = await openFileLimit();
  if (limit === undefined) return;
  // On loopback each connection is two sockets: one here, one in the server
  // (which inherits this limit), so each process needs one per client.
  const needed = n + FD_MARGIN;
  if (limit < needed) {
    throw new BenchError(
      `the open-file limit (ulimit -n) is ${limit}, too low for ${n} clients: each connection costs a descriptor in the load generator and another in the server (${2 * n} in all), so each process needs at least ${needed}. ` +
        `Raise it with "ulimit -n ${Math.max(needed, 4096)}" in this shell (or LimitNOFILE / limits.conf), or run with --clients ${Math.max(1, limit - FD_MARGIN)}.`,
    );
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchError(message || `timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
