// `npm run soak -- --minutes N`: keeps rooms busy for N minutes against a real
// `atrium serve` (media on, loopback) and prints, every minute, the server's
// resident memory, JavaScript heap, open handles and event-loop delay (from
// its /metrics) and how much media reached the steady subscribers. Each room
// has a publisher sending VP8-shaped RTP and two steady subscribers; on top,
// churn: every few seconds a subscriber joins a room and leaves again after
// a while, and a chatty client joins, says something and leaves. At the end
// it prints the figures per minute and the growth from the second minute to
// the last, so a leak shows as a slope. With --heap-snapshots DIR it also
// takes heap snapshots of the server after minute 2, at the middle and at
// the end (each collects garbage first, so it measures the live heap, and
// pauses the server for a moment), and prints the live heap of each and
// what grew between the first and the last (heap.ts).
//   npm run soak -- --minutes 10 [--rooms 3] [--rate 200] [--heap-snapshots DIR]

import { mkdir, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { GaleneSocket } from '../sfu/galene.ts';
import { Publisher, Subscriber, pace, stopPeers } from '../sfu/peers.ts';
import { ServerProcess } from '../sfu/server.ts';
import { GROWTH_HEADER, type HeapSummary, growth, summarize } from './heap.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rooms: { type: 'string', default: '3' },
    rate: { type: 'string', default: '200' },
    'heap-snapshots': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    'Usage: npm run soak -- --minutes N [--rooms R (default 3)] [--rate RTP packets/s per publisher (default 200)] [--heap-snapshots DIR (snapshots of the server after minute 2, at the middle, at the end)]',
  );
  process.exit(0);
}
const minutes = Number(values.minutes);
const roomCount = Number(values.rooms);
const rate = Number(values.rate);
for (const [name, v] of [
  ['--minutes', minutes],
  ['--rooms', roomCount],
  ['--rate', rate],
] as const) {
  if (!(v > 0)) {
    console.error(`soak: ${name} must be a positive number`);
    process.exit(2);
  }
}

interface Sample {
  minute: number;
  rssMB: number;
  heapMB: number;
  handles: number;
  lagP99ms: number;
  clients: number;
  packets: number;
  churned: number;
  errors: number;
}

/** One gauge or counter from Prometheus text, summed over its labels. */
function metric(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

const rooms = Array.from({ length: roomCount }, (_, i) => `soak-${i + 1}`);
const snapshotDir = values['heap-snapshots'] === undefined ? undefined : resolve(values['heap-snapshots']);
if (snapshotDir) await mkdir(snapshotDir, { recursive: true });
const server = await ServerProcess.start({ groups: rooms, nodeArgs: snapshotDir ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`] : [] });
console.log(`soak: ${minutes} min, ${roomCount} rooms (1 publisher at ${rate} packets/s, 2 steady subscribers each, churn), server ${server.url} (pid ${server.pid})`);

const pubs: Publisher[] = [];
const steady: Subscriber[] = [];
const churn = new Set<Subscriber | GaleneSocket>();
let churned = 0;
let churnErrors = 0;
let stopped = false;

for (const room of rooms) {
  const p = new Publisher({ target: { kind: 'galene', url: server.wsUrl, group: room }, name: `${room}-pub`, rate, packetSize: 1100, packetsPerFrame: 5, keyframeEveryMs: 3000 });
  pubs.push(p);
  for (let i = 1; i <= 2; i++) steady.push(new Subscriber({ target: { kind: 'galene', url: server.wsUrl, group: room }, name: `${room}-sub${i}`, publishers: 1 }));
}
await Promise.all(pubs.map((p) => p.start()));
const stopPacing = pace(pubs);
await Promise.all(steady.map((s) => s.start()));

/** A subscriber that joins a room, watches for 5–20 s and leaves. */
async function churnSubscriber(n: number): Promise<void> {
  const s = new Subscriber({ target: { kind: 'galene', url: server.wsUrl, group: rooms[n % rooms.length]! }, name: `churn-${n}`, publishers: 1 });
  churn.add(s);
  try {
    await s.start();
    await new Promise((r) => setTimeout(r, 5000 + (n % 4) * 5000));
  } catch {
    churnErrors++;
  } finally {
    s.close();
    churn.delete(s);
    churned++;
  }
}

/** A client that joins, chats and leaves. */
async function churnChat(n: number): Promise<void> {
  const g = new GaleneSocket();
  churn.add(g);
  try {
    await g.join(server.wsUrl, rooms[n % rooms.length]!, `chatter-${n}`);
    g.send({ type: 'chat', kind: '', source: g.id, value: `soak message ${n}` });
    await new Promise((r) => setTimeout(r, 1000));
  } catch {
    churnErrors++;
  } finally {
    g.close();
    churn.delete(g);
    churned++;
  }
}

/** A publisher whose connection failed is replaced by a new one in its room (counted: a restart is not a leak, but it is reported). */
let publisherRestarts = 0;
function replaceClosedPublishers(): void {
  pubs.forEach((p, i) => {
    if (!p.trackClosed || stopped) return;
    publisherRestarts++;
    p.close();
    const next = new Publisher({ ...p.o, name: `${p.o.name}-r${publisherRestarts}` });
    pubs[i] = next;
    next.start().catch(() => {
      churnErrors++;
      next.trackClosed = true;
    });
  });
}

let n = 0;
const churnTimer = setInterval(() => {
  if (stopped) return;
  replaceClosedPublishers();
  n++;
  void churnSubscriber(n);
  void churnChat(n);
}, 3000);

/** Asks the server for a heap snapshot and waits until the file is written whole. */
async function heapSnapshot(dir: string): Promise<string> {
  const before = new Set(await readdir(dir));
  process.kill(server.pid, 'SIGUSR2');
  const end = Date.now() + 120_000;
  let file: string | undefined;
  let size = -1;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    file ??= (await readdir(dir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (file === undefined) continue;
    const now = (await stat(join(dir, file))).size;
    // The server writes the snapshot in one go; a size that stays put for a second is the end.
    if (now > 0 && now === size) return join(dir, file);
    size = now;
  }
  throw new Error(`soak: no heap snapshot of the server (pid ${server.pid}) appeared in ${dir} within 120 s`);
}
const snapshotMinutes = new Set([Math.min(2, minutes), Math.ceil(minutes / 2), minutes]);
const snapshots: { minute: number; file: string; heap: HeapSummary }[] = [];

const packetsOf = () => steady.reduce((sum, s) => sum + s.counters().reduce((k, d) => k + d.packets, 0), 0);
const samples: Sample[] = [];
let lastPackets = packetsOf();
const started = Date.now();
for (let minute = 1; minute <= minutes; minute++) {
  await new Promise((r) => setTimeout(r, started + minute * 60_000 - Date.now()));
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const packets = packetsOf();
  const s: Sample = {
    minute,
    rssMB: metric(text, 'atrium_process_resident_memory_bytes') / 2 ** 20,
    heapMB: metric(text, 'atrium_nodejs_heap_size_used_bytes') / 2 ** 20,
    handles: metric(text, 'atrium_nodejs_active_handles_total'),
    lagP99ms: metric(text, 'atrium_nodejs_eventloop_lag_p99_seconds') * 1000,
    clients: metric(text, 'atrium_connected_clients'),
    packets: packets - lastPackets,
    churned,
    errors: churnErrors + pubs.reduce((k, p) => k + p.galene.errors.length, 0) + steady.reduce((k, x) => k + x.galene.errors.length, 0),
  };
  lastPackets = packets;
  samples.push(s);
  console.log(
    `minute ${String(minute).padStart(3)}: rss ${s.rssMB.toFixed(1)} MB, heap ${s.heapMB.toFixed(1)} MB, handles ${s.handles}, event-loop delay p99 ${s.lagP99ms.toFixed(1)} ms, clients ${s.clients}, packets to steady subscribers ${s.packets}, churned ${s.churned}, errors ${s.errors}, publisher restarts ${publisherRestarts}`,
  );
  if (snapshotDir && snapshotMinutes.has(minute)) {
    const file = await heapSnapshot(snapshotDir);
    const heap = await summarize(file);
    snapshots.push({ minute, file, heap });
    console.log(`minute ${String(minute).padStart(3)}: heap snapshot ${file}: live heap ${(heap.total / 2 ** 20).toFixed(2)} MB, ${heap.nodes} nodes`);
  }
}

stopped = true;
clearInterval(churnTimer);
stopPeers();
stopPacing();
for (const p of pubs) p.close();
for (const s of steady) s.close();
for (const c of churn) c.close();
await server.stop();

const second = samples[Math.min(1, samples.length - 1)]!;
const last = samples.at(-1)!;
const span = Math.max(1, last.minute - second.minute);
console.log('\n| minute | RSS MB | heap MB | handles | event-loop p99 ms | clients | packets/min to steady subs | churned | errors |');
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const s of samples)
  console.log(`| ${s.minute} | ${s.rssMB.toFixed(1)} | ${s.heapMB.toFixed(1)} | ${s.handles} | ${s.lagP99ms.toFixed(1)} | ${s.clients} | ${s.packets} | ${s.churned} | ${s.errors} |`);
console.log(
  `\nsoak: from minute ${second.minute} to ${last.minute}: RSS ${((last.rssMB - second.rssMB) / span).toFixed(2)} MB/min, heap ${((last.heapMB - second.heapMB) / span).toFixed(2)} MB/min, handles ${last.handles - second.handles}; media to steady subscribers in the last minute: ${last.packets} packets (${((last.packets / 60 / (steady.length * rate)) * 100).toFixed(0)}% of what was sent); errors: ${last.errors}; publishers restarted after their connection failed: ${publisherRestarts}`,
);
if (snapshots.length >= 2) {
  const [a, b] = [snapshots[0]!, snapshots.at(-1)!];
  console.log(
    `\nlive heap (heap snapshots): ${snapshots.map((x) => `minute ${x.minute} ${(x.heap.total / 2 ** 20).toFixed(2)} MB`).join(', ')}; from minute ${a.minute} to ${b.minute}: ${((b.heap.total - a.heap.total) / 2 ** 20 / Math.max(1, b.minute - a.minute)).toFixed(3)} MB/min`,
  );
  console.log(`what grew from minute ${a.minute} to ${b.minute}:`);
  for (const line of [...GROWTH_HEADER, ...growth(a.heap, b.heap)]) console.log(line);
}
process.exit(last.errors > 0 || last.packets === 0 ? 1 : 0);
