// The printed table and the bars, with PASS / FAIL / N/A.
import { type ShapeResult, percentile } from './bench.ts';

/** One core near this busy counts as saturated: loss there is expected, not a failure. */
export const SATURATED_PERCENT = 90;
export const BAR_US_PER_PACKET_1X20 = 30;

const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');

export function table(results: ShapeResult[]): string {
  const head = ['shape', 'rate/pub', 'sent pps', 'delivered pps', 'loss %', 'server CPU %', 'µs/fwd pkt', 'first pkt p50/p95 ms', 'gen CPU %', 'busiest server threads (%cpu@core)'];
  const rows: string[][] = [];
  for (const r of results) {
    const threads = r.threads
      .slice(0, 3)
      .map((t) => `${t.name}:${f(t.percent)}@${t.cpu ?? '?'}`)
      .join(' ');
    const multi = r.rooms.length > 1;
    const first = r.rooms.flatMap((x) => x.firstPacketMs);
    rows.push([
      r.shape.name,
      r.rooms.map((x) => f(x.room.rate)).join('+'),
      f(r.rooms.reduce((a, x) => a + x.sentPps, 0)),
      f(r.deliveredPps),
      f(r.loss * 100, 3),
      f(r.serverCpuPercent),
      f(r.usPerPacket, 1),
      `${f(percentile(first, 50))}/${f(percentile(first, 95))}`,
      f(r.generatorCpuPercent),
      threads,
    ]);
    if (multi) {
      for (const x of r.rooms) {
        rows.push([
          `  room ${x.room.group} ${x.room.publishers}x${x.room.subscribers}`,
          f(x.room.rate),
          f(x.sentPps),
          f(x.deliveredPps),
          f(x.loss * 100, 3),
          '',
          '',
          `${f(percentile(x.firstPacketMs, 50))}/${f(percentile(x.firstPacketMs, 95))}`,
          '',
          '',
        ]);
      }
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface Verdict {
  bar: string;
  verdict: 'PASS' | 'FAIL' | 'N/A';
  why: string;
}

/** Saturated: the process (in-process engine) or one of its threads at or above SATURATED_PERCENT of a core. */
export function saturated(r: ShapeResult): boolean {
  const busiest = r.threads[0]?.percent ?? 0;
  return busiest >= SATURATED_PERCENT || (r.mediaWorkers === undefined || r.mediaWorkers === 0 ? r.serverCpuPercent >= SATURATED_PERCENT : false);
}

export function verdicts(results: ShapeResult[], workersSupported: boolean): Verdict[] {
  const out: Verdict[] = [];
  const isSat = (r: ShapeResult) => r.shape.name.includes('sat');
  // 1. no loss below saturation
  const below = results.filter((r) => !saturated(r) && !isSat(r));
  const lossy = below.filter((r) => r.loss > 0);
  out.push({
    bar: 'no loss below saturation',
    verdict: below.length === 0 ? 'N/A' : lossy.length === 0 ? 'PASS' : 'FAIL',
    why:
      below.length === 0
        ? 'every shape ran saturated'
        : lossy.length === 0
          ? `0 lost in ${below.map((r) => r.shape.name).join(', ')}`
          : lossy.map((r) => `${r.shape.name} lost ${(r.loss * 100).toFixed(3)} %`).join(', '),
  });
  // 2. at most 30 µs per forwarded packet at 1x20
  const r20 = results.find((r) => r.shape.name === '1x20');
  out.push({
    bar: `≤ ${BAR_US_PER_PACKET_1X20} µs per forwarded packet at 1x20`,
    verdict: !r20 ? 'N/A' : r20.usPerPacket <= BAR_US_PER_PACKET_1X20 ? 'PASS' : 'FAIL',
    why: r20 ? `${r20.usPerPacket.toFixed(1)} µs` : 'shape 1x20 not run',
  });
  // 3. cost per packet falls as subscribers are added (1xN shapes, same rate per publisher)
  const ones = results.filter((r) => r.rooms.length === 1 && r.rooms[0]!.room.publishers === 1).sort((a, b) => a.rooms[0]!.room.subscribers - b.rooms[0]!.room.subscribers);
  const falling = ones.every((r, i) => i === 0 || r.usPerPacket < ones[i - 1]!.usPerPacket);
  out.push({
    bar: 'cost per packet falls as subscribers are added',
    verdict: ones.length < 2 ? 'N/A' : falling ? 'PASS' : 'FAIL',
    why: ones.length < 2 ? 'needs two 1xN shapes (e.g. 1x5,1x20)' : ones.map((r) => `${r.shape.name} ${r.usPerPacket.toFixed(1)} µs`).join(' > '),
  });
  // 4. two rooms on two media workers load two different cores
  const two = results.find((r) => r.shape.name === '2rooms');
  if (!workersSupported || !two) {
    out.push({ bar: 'two rooms load two different cores (media workers)', verdict: 'N/A', why: !workersSupported ? 'this server has no --media-workers flag yet' : 'shape 2rooms not run' });
  } else {
    const [a, b] = two.threads;
    // Both worker threads busy, and not confined to one core: either their
    // usual cores differ, or the scheduler runs each on both cores (neither
    // spends 70 % of its samples on one), so they can and do run in parallel.
    const spread = (t: { cpuShare: number }) => t.cpuShare < 0.7;
    const ok = !!a && !!b && a.percent >= 25 && b.percent >= 25 && (a.cpu !== b.cpu || (spread(a) && spread(b)));
    out.push({
      bar: 'two rooms load two different cores (media workers)',
      verdict: ok ? 'PASS' : 'FAIL',
      why: two.threads
        .slice(0, 3)
        .map((t) => `thread ${t.tid} (${t.name}) ${t.percent.toFixed(0)} % mostly on core ${t.cpu} (${(t.cpuShare * 100).toFixed(0)} % of samples)`)
        .join('; '),
    });
  }
  // 5. a saturated room adds no loss to the other
  const sat = results.find((r) => r.shape.name === '2rooms-sat');
  if (!workersSupported || !sat) {
    out.push({
      bar: 'a saturated room adds no loss to the other',
      verdict: 'N/A',
      why: !workersSupported ? 'this server has no --media-workers flag yet (figures shown for the in-process engine)' : 'shape 2rooms-sat not run',
    });
  } else {
    const calm = sat.rooms[1]!;
    out.push({
      bar: 'a saturated room adds no loss to the other',
      verdict: calm.loss === 0 ? 'PASS' : 'FAIL',
      why: `busy room ${sat.rooms[0]!.room.group} lost ${(sat.rooms[0]!.loss * 100).toFixed(3)} %, calm room ${calm.room.group} lost ${(calm.loss * 100).toFixed(3)} %`,
    });
  }
  return out;
}
