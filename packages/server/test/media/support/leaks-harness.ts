// The leak test's harness (see leaks.test.ts and leaks-threads.test.ts):
// publish / subscribe / leave cycles against a media engine, run in a child
// process started with --expose-gc, measured before and after.
//
// Each cycle drives the media engine as the core does, with werift's own
// RTCPeerConnection as a cheap non-browser publisher and subscriber: an
// up-stream is created and negotiated with the publisher (ICE + DTLS
// connected), a down-stream of it with the subscriber, a synthetic VP8
// keyframe goes through (the subscriber receives RTP), then everything is
// closed. Cycles run several at a time: most of a cycle is werift waiting.
//
// After a warm-up, the child measures, runs the cycles, lets the timers of
// the last closes expire, and measures again: heap used after full GCs,
// process.getActiveResourcesInfo() by type, open file descriptors
// (/proc/self/fd), the engine's live streams, and how many stream and
// peer-connection objects are still reachable (WeakRefs after GC). The
// threaded engine's workers report the same about themselves.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionState, DownStream, Emitter, IceCandidate, MediaEngine } from '../../../src/media/engine.ts';
import type { ThreadedEngine, WorkerProbe } from '../../../src/media/workers/engine.ts';

const CYCLES = Number(process.env.ATRIUM_LEAK_CYCLES ?? 1000);
const WARMUP = 20;
/** At most this many cycles at once: most of a cycle's time is werift waiting (its DTLS client starts 100 ms late), not CPU. */
const PARALLEL = Number(process.env.ATRIUM_LEAK_PARALLEL ?? 12);
/** After the last close, werift's handshake retransmission timers (≤ 1 s) expire before the measurement. */
const SETTLE_MS = 2500;
/**
 * werift keeps retransmitting a DTLS flight whose handshake failed or whose
 * connection was closed mid-handshake (10 tries, 0.5 s … 5.5 s apart: about
 * 33 s, one timer per flight), and those timers keep the peer connection and
 * its stream reachable until then. Objects of an attempt that failed less
 * than this long ago are counted apart, and their timers tolerated.
 */
const HELD_MS = 36_000;
/** At most this long is spent waiting for the last timers after SETTLE_MS. */
const DRAIN_MS = 10_000;

interface Attempt {
  n: number;
  failedAt?: number;
  streams: WeakRef<object>[];
  pcs: WeakRef<object>[];
}
const CHILD = 'ATRIUM_LEAKS_CHILD';
const RESULT = 'LEAKS-RESULT ';
const MB = 1024 * 1024;

export type Kind = 'werift' | 'threads';

/** What up- and down-streams have in common, as the cycles use it. */
interface Stream extends Emitter<{ candidate: [IceCandidate]; state: [ConnectionState]; close: [] }> {
  readonly id: string;
  readonly state: ConnectionState;
  addIceCandidate(candidate: IceCandidate | null): Promise<void>;
}

interface Snapshot {
  heapUsed: number;
  rss: number;
  /** Memory outside the V8 heap held by JavaScript objects (Buffers…). */
  external: number;
  resources: Record<string, number>;
  fds: number;
  /** Streams the engine has not closed (create minus close events), as the test counts them. */
  liveStreams: number;
  /** Stream / peer-connection objects of measured cycles still reachable after GC (but those of recentFailures). */
  reachable: { streams: number; peerConnections: number };
  /** Attempts that failed less than HELD_MS ago, and their objects werift still holds (see HELD_MS). */
  recentFailures: { attempts: number; streams: number; peerConnections: number };
  /** Threaded engine: streams per worker as the proxy sees them. */
  placed?: number;
  workers?: WorkerProbe[];
}

interface Result {
  kind: Kind;
  cycles: number;
  seconds: number;
  cpuSeconds: number;
  /** Cycles that failed (werift's DTLS handshake, see cycleWithRetries) and were run again. */
  failures: string[];
  /** Event-loop delay of the process's main thread during the cycles, ms. */
  loopDelay: { p99: number; max: number };
  start: Snapshot;
  /** SETTLE_MS after the last cycle. */
  settled: Snapshot;
  /** When `settled` was not clean: how long after the last cycle `end` was (0: end is settled). */
  drainedAfterMs: number;
  end: Snapshot;
}

/** Everything is back where it started (heap aside), in the process and in every worker. */
function clean(start: Snapshot, end: Snapshot): boolean {
  return problems(start, end).length === 0;
}

/** What is not back where it started (heap aside), in the process and in every worker; empty when all is. */
function problems(start: Snapshot, end: Snapshot): string[] {
  const out: string[] = [];
  const recent = end.recentFailures.attempts;
  const resources = (where: string, a: Record<string, number>, b: Record<string, number>, timers: number) => {
    for (const type of new Set([...Object.keys(a), ...Object.keys(b)])) {
      // A timer about to expire is tolerated, and those werift keeps for recently failed handshakes.
      const allowed = (a[type] ?? 0) + (type === 'Timeout' ? 2 + timers : 0);
      if ((b[type] ?? 0) > allowed) out.push(`${where}: ${type} ${a[type] ?? 0} at start, ${b[type] ?? 0} at the end`);
    }
  };
  if (end.liveStreams !== 0) out.push(`${end.liveStreams} streams never reported close`);
  if (end.reachable.streams + end.reachable.peerConnections > 0) out.push(`still reachable: ${end.reachable.streams} streams, ${end.reachable.peerConnections} peer connections or tracks`);
  if (end.fds !== start.fds) out.push(`open file descriptors: ${start.fds} at start, ${end.fds} at the end`);
  resources('main thread', start.resources, end.resources, 4 * recent);
  if (end.placed) out.push(`the threaded engine's proxy holds ${end.placed} streams`);
  if ((end.workers?.length ?? 0) !== (start.workers?.length ?? 0)) out.push(`workers: ${start.workers?.length} at start, ${end.workers?.length} at the end`);
  const held = (end.workers ?? []).reduce((a, w) => a + w.alive.streams + w.alive.peerConnections, 0);
  // In the threaded engine the engine's half of a recently failed attempt lives in a worker: an up- and a down-stream with their peer connections.
  if (held > 4 * recent) out.push(`workers: ${held} stream and peer-connection objects still reachable (${recent} attempts failed in the last ${HELD_MS / 1000} s)`);
  for (const [i, w] of (end.workers ?? []).entries()) {
    const w0 = start.workers![i]!;
    if (w.tid !== w0.tid) out.push(`worker ${i} is another thread (tid ${w0.tid} → ${w.tid}): it crashed`);
    if (w.ups + w.downs > 0) out.push(`worker ${i} holds ${w.ups} up- and ${w.downs} down-streams`);
    resources(`worker ${i}`, w0.resources, w.resources, 4 * recent);
  }
  return out;
}

/** Defines the test of one engine (call it inside the loopback-only namespace). */
export function defineLeakTest(kind: Kind): void {
  test(`${CYCLES} publish/subscribe/leave cycles leave no leaks: ${kind === 'werift' ? 'in-process werift engine' : 'threaded engine (2 workers)'}`, { timeout: 280_000 }, async () => {
    const r = await spawnChild(kind);
    console.error(report(r));
    const { start, end } = r;
    assert.deepEqual(problems(start, end), [], 'memory, timers, sockets, file descriptors and peer connections are back where they started');
    assert.ok(end.heapUsed - start.heapUsed < 20 * MB, `heap grew by ${((end.heapUsed - start.heapUsed) / MB).toFixed(1)} MB`);
    for (const [i, w] of (end.workers ?? []).entries()) {
      const grew = w.heapUsed - start.workers![i]!.heapUsed;
      assert.ok(grew < 20 * MB, `worker ${i} heap grew by ${(grew / MB).toFixed(1)} MB`);
    }
    assert.ok(r.failures.length <= CYCLES / 20, `${r.failures.length} of ${CYCLES} cycles failed (werift's DTLS handshake under load); more than 5% is not load any more`);
  });
}

function report(r: Result): string {
  const { start: s, end: e } = r;
  const res = (a: Record<string, number>, b: Record<string, number>) =>
    [...new Set([...Object.keys(a), ...Object.keys(b)])]
      .sort()
      .map((t) => `${t} ${a[t] ?? 0}→${b[t] ?? 0}`)
      .join(', ');
  const lines = [
    `leaks [${r.kind}]: ${r.cycles} cycles in ${r.seconds.toFixed(1)} s (${r.cpuSeconds.toFixed(1)} s CPU of the process; main-thread event-loop delay p99 ${r.loopDelay.p99.toFixed(0)} ms, max ${r.loopDelay.max.toFixed(0)} ms; ${r.failures.length} cycles failed and were run again)`,
    `  heap used ${(s.heapUsed / MB).toFixed(1)} → ${(e.heapUsed / MB).toFixed(1)} MB (${((e.heapUsed - s.heapUsed) / MB).toFixed(2)} MB); external ${(s.external / MB).toFixed(1)} → ${(e.external / MB).toFixed(1)} MB; rss ${(s.rss / MB).toFixed(0)} → ${(e.rss / MB).toFixed(0)} MB`,
    `  fds ${s.fds} → ${e.fds}; live streams ${s.liveStreams} → ${e.liveStreams}; reachable streams ${e.reachable.streams}, peer connections ${e.reachable.peerConnections}${e.recentFailures.attempts ? ` (+ ${e.recentFailures.streams} streams, ${e.recentFailures.peerConnections} peer connections of the ${e.recentFailures.attempts} attempts that failed in the last ${HELD_MS / 1000} s, held by werift's retransmission timers)` : ''}`,
    `  main-thread resources: ${res(s.resources, e.resources)}`,
  ];
  if (r.drainedAfterMs > 0) {
    const t = r.settled;
    lines.push(
      `  ${SETTLE_MS / 1000} s after the last cycle not all was back yet (reachable streams ${t.reachable.streams}, peer connections ${t.reachable.peerConnections}${(t.workers ?? []).map((w, i) => `, worker ${i}: ${w.alive.streams} streams, ${w.alive.peerConnections} peer connections, resources ${JSON.stringify(w.resources)}`).join('')}; resources ${JSON.stringify(t.resources)}, fds ${t.fds}); the figures above are ${(r.drainedAfterMs / 1000).toFixed(1)} s after it`,
    );
  }
  for (const [i, w] of (e.workers ?? []).entries()) {
    const w0 = s.workers![i]!;
    lines.push(
      `  worker ${i} (tid ${w.tid}): heap ${(w0.heapUsed / MB).toFixed(1)} → ${(w.heapUsed / MB).toFixed(1)} MB, external ${(w0.external / MB).toFixed(1)} → ${(w.external / MB).toFixed(1)} MB; streams ${w0.ups + w0.downs} → ${w.ups + w.downs}; reachable streams ${w.alive.streams}, peer connections ${w.alive.peerConnections}; resources: ${res(w0.resources, w.resources)}`,
    );
  }
  return lines.join('\n');
}

async function spawnChild(kind: Kind): Promise<Result> {
  const file = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', file], {
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')), [CHILD]: kind },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => {
    err += d;
    process.stderr.write(d);
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const line = out.split('\n').find((l) => l.startsWith(RESULT));
  if (code !== 0 || !line) throw new Error(`the ${kind} leak run failed (exit ${code}):\n${err.slice(-4000)}`);
  return JSON.parse(line.slice(RESULT.length)) as Result;
}

// ---------------------------------------------------------------------------
// The child: runs the cycles and prints the measurements.

async function runChild(kind: Kind): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the leak child needs --expose-gc');
  const werift = await import('werift');
  const { createWeriftEngine } = await import('../../../src/media/index.ts');
  const { createThreadedEngine } = await import('../../../src/media/workers/engine.ts');
  const engineOptions = { additionalHostAddresses: ['127.0.0.1'] };
  const log = { error: (o: object, m: string) => console.error('ERROR', m, o), warn: (o: object, m: string) => console.error('WARN', m, o), info: () => {} };
  const threaded = kind === 'threads' ? createThreadedEngine({ workers: 2, engine: engineOptions, log }) : undefined;
  const engine: MediaEngine = threaded ?? createWeriftEngine(engineOptions);

  let liveStreams = 0;
  let tracking = false;
  /** Every measured attempt at a cycle, with weak references to what it made. */
  const attempts: Attempt[] = [];
  const watch = (stream: Stream, attempt: Attempt) => {
    liveStreams++;
    stream.on('close', () => liveStreams--);
    attempt.streams.push(new WeakRef(stream));
    // the in-process engine's own peer connection (werift's streams expose it)
    const pc = (stream as { pc?: object }).pc;
    if (pc) attempt.pcs.push(new WeakRef(pc));
  };

  const peerConfig = () => ({
    iceServers: [],
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceUseIpv6: false,
    bundlePolicy: 'max-bundle' as const,
    codecs: { audio: [werift.useOPUS()], video: [werift.useVP8()] },
  });

  /** Trickles candidates both ways between an engine stream and a test peer. */
  function trickle(stream: Stream, pc: InstanceType<typeof werift.RTCPeerConnection>): void {
    stream.on('candidate', (c) => void pc.addIceCandidate(c as ConstructorParameters<typeof werift.RTCIceCandidate>[0]).catch(() => {}));
    pc.onIceCandidate.subscribe((c) => {
      if (c?.candidate) void stream.addIceCandidate(c.toJSON()).catch(() => {});
    });
  }

  function connected(stream: Stream, what: string): Promise<void> {
    if (stream.state === 'connected') return Promise.resolve();
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${what} ${stream.id} did not connect within 10 s (state ${stream.state})`));
      }, 10_000);
      const off = stream.on('state', (s) => {
        if (s !== 'connected' && s !== 'failed' && s !== 'closed') return;
        clearTimeout(timer);
        off();
        if (s === 'connected') resolve();
        else reject(new Error(`${what} ${stream.id} went ${s} after ${Date.now() - t0} ms`));
      });
    });
  }

  // A VP8 keyframe start: payload descriptor with S=1, PID 0; payload header with P=0.
  const keyframe = Buffer.from([0x10, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);

  /** A werift peer's own connection state reaching 'connected' (its DTLS side can fail while ours succeeds). */
  function peerConnected(pc: InstanceType<typeof werift.RTCPeerConnection>, what: string): Promise<void> {
    if (pc.connectionState === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        sub.unSubscribe();
        reject(new Error(`${what} did not connect within 10 s (state ${pc.connectionState})`));
      }, 10_000);
      const sub = pc.connectionStateChange.subscribe((s) => {
        if (s !== 'connected' && s !== 'failed' && s !== 'closed') return;
        clearTimeout(timer);
        sub.unSubscribe();
        if (s === 'connected') resolve();
        else reject(new Error(`${what} went ${s}`));
      });
    });
  }

  /** One publish / subscribe / leave cycle; everything is closed whatever happens. */
  async function cycle(i: number, attempt: Attempt): Promise<void> {
    const name = attempt.n === 0 ? `${i}` : `${i}-retry${attempt.n}`;
    const pub = new werift.RTCPeerConnection(peerConfig());
    const camera = new werift.MediaStreamTrack({ kind: 'video' });
    let sub: InstanceType<typeof werift.RTCPeerConnection> | undefined;
    let down: DownStream | undefined;
    const up = engine.createUpStream({ id: `pub${name}`, label: 'camera', iceServers: [], placement: `room${i % 4}` });
    attempt.pcs.push(new WeakRef(pub), new WeakRef(camera));
    watch(up, attempt);
    try {
      pub.addTransceiver(camera, { direction: 'sendonly' });
      trickle(up, pub);
      await pub.setLocalDescription(await pub.createOffer());
      await pub.setRemoteDescription({ type: 'answer', sdp: await up.answer(pub.localDescription!.sdp) });
      await Promise.all([connected(up, 'up-stream'), peerConnected(pub, `publisher ${name}`)]);

      const peer = (sub = new werift.RTCPeerConnection(peerConfig()));
      attempt.pcs.push(new WeakRef(peer));
      let done = false;
      peer.onTrack.subscribe((t) => t.onReceiveRtp.once(() => (done = true)));
      down = engine.createDownStream({ id: `sub${name}`, source: up, request: { audio: true, video: 'high' }, iceServers: [] });
      watch(down, attempt);
      trickle(down, peer);
      await peer.setRemoteDescription({ type: 'offer', sdp: await down.offer() });
      await peer.setLocalDescription(await peer.createAnswer());
      await down.setAnswer(peer.localDescription!.sdp);
      await Promise.all([connected(down, 'down-stream'), peerConnected(peer, `subscriber ${name}`)]);

      // Media: keyframes until the subscriber gets one through the engine.
      let seq = (i * 100) & 0xffff;
      const deadline = Date.now() + 5000;
      while (!done) {
        if (Date.now() > deadline) {
          const [us, ds] = [await up.stats(), await down.stats()];
          throw new Error(`cycle ${name}: no RTP reached the subscriber in 5 s (up ${JSON.stringify(us)}; down ${JSON.stringify(ds)})`);
        }
        seq = (seq + 1) & 0xffff;
        camera.writeRtp(new werift.RtpPacket(new werift.RtpHeader({ payloadType: 96, sequenceNumber: seq, timestamp: seq * 3000, ssrc: 0x1000 + i, marker: true }), keyframe));
        await sleep(10);
      }
    } finally {
      // the subscriber leaves, then the publisher
      down?.close();
      up.close();
      await Promise.all([pub.close(), sub?.close()]);
    }
  }

  /**
   * werift's DTLS client fails the handshake when its ClientHello was
   * retransmitted (no reply within 500 ms: a busy event loop) and both
   * HelloVerifyRequests come back (Flight3.exec throws on the second). Such
   * a cycle is closed like any other, counted, and run again.
   */
  const failures: string[] = [];
  async function cycleWithRetries(i: number): Promise<void> {
    for (let n = 0; ; n++) {
      const attempt: Attempt = { n, streams: [], pcs: [] };
      if (tracking) attempts.push(attempt);
      try {
        return await cycle(i, attempt);
      } catch (e) {
        attempt.failedAt = Date.now();
        failures.push((e as Error).message);
        console.error(`leaks [${kind}]: cycle ${i} attempt ${n + 1} failed (${(e as Error).message.slice(0, 300)}); running it again`);
        if (n >= 5) throw e;
        await sleep(200 * (n + 1));
      }
    }
  }

  /**
   * Runs `count` cycles, up to `parallel` at once. How many run at once
   * adapts to the machine: werift's handshakes fail when the event loop
   * stalls for 500 ms (see cycleWithRetries), so fewer run while the loop
   * lags (a busy or shared machine) or a cycle has just failed.
   */
  async function run(from: number, count: number, label: string, parallel = PARALLEL): Promise<void> {
    let next = from;
    const end = from + count;
    const t0 = Date.now();
    let finished = 0;
    let active = 0;
    let target = Math.min(4, parallel);
    let failed = failures.length;
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const tuner = setInterval(() => {
      const max = lag.max / 1e6;
      lag.reset();
      if (max > 400 || failures.length > failed) target = Math.max(1, Math.floor(target / 2));
      else if (max < 200) target = Math.min(parallel, target + 1);
      failed = failures.length;
    }, 500);
    try {
      await Promise.all(
        Array.from({ length: Math.min(parallel, count) }, async (_, lane) => {
          while (next < end) {
            if (lane >= target) {
              await sleep(50);
              continue;
            }
            active++;
            try {
              await cycleWithRetries(next++);
            } finally {
              active--;
            }
            if (++finished % 100 === 0) console.error(`leaks [${kind}] ${label}: ${finished}/${count} cycles, ${((Date.now() - t0) / 1000).toFixed(1)} s, ${active + 1} at once`);
          }
        }),
      );
    } finally {
      clearInterval(tuner);
      lag.disable();
    }
  }

  async function snapshot(): Promise<Snapshot> {
    await sleep(SETTLE_MS);
    for (let i = 0; i < 4; i++) {
      gc!();
      await new Promise((r) => setImmediate(r));
    }
    const resources: Record<string, number> = {};
    for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
    const alive = (list: WeakRef<object>[]) => list.filter((r) => r.deref() !== undefined).length;
    const now = Date.now();
    const recent = attempts.filter((a) => a.failedAt !== undefined && now - a.failedAt < HELD_MS);
    const counted = attempts.filter((a) => !recent.includes(a));
    const s: Snapshot = {
      heapUsed: process.memoryUsage().heapUsed,
      rss: process.memoryUsage().rss,
      external: process.memoryUsage().external,
      resources,
      fds: readdirSync('/proc/self/fd').length,
      liveStreams,
      reachable: { streams: alive(counted.flatMap((a) => a.streams)), peerConnections: alive(counted.flatMap((a) => a.pcs)) },
      recentFailures: { attempts: recent.length, streams: alive(recent.flatMap((a) => a.streams)), peerConnections: alive(recent.flatMap((a) => a.pcs)) },
    };
    if (threaded) {
      s.placed = (threaded as ThreadedEngine).debug().reduce((n, w) => n + w.ups + w.downs, 0);
      s.workers = await (threaded as ThreadedEngine).probe({ gc: true });
    }
    return s;
  }

  // Gently: a cold engine (and cold workers) answering many handshakes at
  // once can take over 500 ms, and werift's DTLS client then fails on the
  // duplicate HelloVerifyRequest its retransmission provokes.
  await run(0, WARMUP, 'warm-up', 2);
  const start = await snapshot();
  tracking = true;
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  await run(WARMUP, CYCLES, 'cycles');
  const seconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  delay.disable();
  const loopDelay = { p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 };
  // Timers of the last closes may outlive SETTLE_MS on a busy machine:
  // measure again until everything is back, for at most DRAIN_MS.
  const settled = await snapshot();
  let end = settled;
  const drainStart = Date.now();
  while (!clean(start, end) && Date.now() - drainStart < DRAIN_MS) end = await snapshot();
  const drainedAfterMs = end === settled ? 0 : Date.now() - drainStart + SETTLE_MS;
  const result: Result = { kind, cycles: CYCLES, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, failures, loopDelay, start, settled, drainedAfterMs, end };
  process.stdout.write(`${RESULT}${JSON.stringify(result)}\n`);
  if (threaded) await threaded.shutdown();
  else engine.close();
}

// Run as a script: the child.
if (process.env[CHILD] && process.argv[1] === fileURLToPath(import.meta.url)) await runChild(process.env[CHILD] as Kind);
