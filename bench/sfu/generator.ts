// A load-generator process: the coordinator (bench.ts) forks it with IPC and
// tells it to run publishers or subscribers; it answers snapshots of its
// counters. Running the peers here keeps their CPU out of the server's and
// out of the coordinator's.
import { performance } from 'node:perf_hooks';
import { Publisher, type SfuTarget, Subscriber, pace, stopPeers } from './peers.ts';

export type GeneratorCommand =
  | {
      cmd: 'start';
      role: 'pub';
      target: SfuTarget;
      names: string[];
      rate: number;
      packetSize: number;
      packetsPerFrame: number;
      keyframeEveryMs: number;
    }
  | { cmd: 'start'; role: 'sub'; target: SfuTarget; names: string[]; publishers: number }
  | { cmd: 'snapshot'; seq: number }
  | { cmd: 'stop' };

export interface PubSnapshot {
  name: string;
  streamId: string;
  sent: number;
  sendFailures: number;
  plis: number;
  keyframes: number;
  errors: string[];
}
export interface SubSnapshot {
  name: string;
  requestAt: number;
  downs: { id: string; offerAt: number; connectedAt: number; firstAt: number; packets: number; expected: number; rtcp: number }[];
  errors: string[];
}
export type GeneratorEvent = { ev: 'started' } | { ev: 'error'; message: string } | { ev: 'snapshot'; seq: number; at: number; cpuUs: number; pubs: PubSnapshot[]; subs: SubSnapshot[] };

const send = (e: GeneratorEvent) => process.send?.(e);
const pubs: Publisher[] = [];
const subs: Subscriber[] = [];
let stopPacing: (() => void) | undefined;

process.on('message', (m: GeneratorCommand) => {
  void handle(m).catch((e: unknown) => send({ ev: 'error', message: e instanceof Error ? e.message : String(e) }));
});
process.on('disconnect', () => shutdown());
process.on('SIGTERM', () => shutdown());

async function handle(m: GeneratorCommand): Promise<void> {
  if (m.cmd === 'start' && m.role === 'pub') {
    for (const name of m.names) {
      pubs.push(new Publisher({ target: m.target, name, rate: m.rate, packetSize: m.packetSize, packetsPerFrame: m.packetsPerFrame, keyframeEveryMs: m.keyframeEveryMs }));
    }
    await Promise.all(pubs.map((p) => p.start()));
    stopPacing = pace(pubs);
    send({ ev: 'started' });
  } else if (m.cmd === 'start' && m.role === 'sub') {
    for (const name of m.names) subs.push(new Subscriber({ target: m.target, name, publishers: m.publishers }));
    await Promise.all(subs.map((s) => s.start()));
    send({ ev: 'started' });
  } else if (m.cmd === 'snapshot') {
    const cpu = process.cpuUsage();
    send({
      ev: 'snapshot',
      seq: m.seq,
      at: performance.timeOrigin + performance.now(),
      cpuUs: cpu.user + cpu.system,
      pubs: pubs.map((p) => ({ name: p.o.name, streamId: p.streamId, sent: p.sent, sendFailures: p.sendFailures, plis: p.plis, keyframes: p.keyframes, errors: p.errors })),
      subs: subs.map((s) => ({ name: s.o.name, requestAt: s.requestAt, downs: s.counters(), errors: s.errors })),
    });
  } else if (m.cmd === 'stop') shutdown();
}

let down = false;
function shutdown(): void {
  if (down) return;
  down = true;
  stopPeers();
  stopPacing?.();
  for (const p of pubs) p.close();
  for (const s of subs) s.close();
  // libdatachannel's threads can keep the process alive; give the closes a moment.
  setTimeout(() => process.exit(0), 300).unref();
  setTimeout(() => process.exit(0), 300);
}
