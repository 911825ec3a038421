// `--compare janus`: the side-by-side table (Atrium and Janus per shape,
// median of the repetitions) and the bars on it.
import type { ShapeResult } from './bench.ts';
import type { Verdict } from './report.ts';

/** The goal of issue 13: Atrium at most this share of Janus's CPU per forwarded packet. */
export const BAR_RATIO = 0.5;
const BAR_SHAPES = ['1x20', '4x4'];

export interface ComparedShape {
  shape: string;
  atrium: ShapeResult[];
  janus: ShapeResult[];
  /** Medians of µs per forwarded packet, and their ratio. */
  atriumUs: number;
  janusUs: number;
  ratio: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function compare(results: ShapeResult[]): ComparedShape[] {
  const names = [...new Set(results.map((r) => r.shape.name))];
  return names.map((shape) => {
    const atrium = results.filter((r) => r.shape.name === shape && r.sfu === 'atrium');
    const janus = results.filter((r) => r.shape.name === shape && r.sfu === 'janus');
    const atriumUs = median(atrium.map((r) => r.usPerPacket));
    const janusUs = median(janus.map((r) => r.usPerPacket));
    return { shape, atrium, janus, atriumUs, janusUs, ratio: atriumUs / janusUs };
  });
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const runs = (rs: ShapeResult[], pick: (r: ShapeResult) => string) => rs.map(pick).join(' / ');

export function compareTable(rows: ComparedShape[]): string {
  const head = ['shape', 'rate/pub', 'Atrium µs/pkt', 'Janus µs/pkt', 'Atrium/Janus', 'Atrium loss %', 'Janus loss %', 'Atrium runs µs', 'Janus runs µs', 'delivered pps A/J', 'server CPU % A/J'];
  const body = rows.map((c) => {
    const any = c.atrium[0] ?? c.janus[0];
    const lossMax = (rs: ShapeResult[]) => (rs.length ? f(Math.max(...rs.map((r) => r.loss)) * 100, 3) : '-');
    return [
      c.shape,
      any ? any.rooms.map((x) => String(x.room.rate)).join('+') : '-',
      f(c.atriumUs),
      f(c.janusUs),
      f(c.ratio, 2),
      lossMax(c.atrium),
      lossMax(c.janus),
      runs(c.atrium, (r) => f(r.usPerPacket)),
      runs(c.janus, (r) => f(r.usPerPacket)),
      `${f(median(c.atrium.map((r) => r.deliveredPps)), 0)}/${f(median(c.janus.map((r) => r.deliveredPps)), 0)}`,
      `${f(median(c.atrium.map((r) => r.serverCpuPercent)), 0)}/${f(median(c.janus.map((r) => r.serverCpuPercent)), 0)}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function compareVerdicts(rows: ComparedShape[]): Verdict[] {
  const out: Verdict[] = [];
  for (const name of BAR_SHAPES) {
    const c = rows.find((r) => r.shape === name);
    out.push({
      bar: `Atrium ≤ ${BAR_RATIO}× Janus's CPU per forwarded packet at ${name}`,
      verdict: !c || !Number.isFinite(c.ratio) ? 'N/A' : c.ratio <= BAR_RATIO ? 'PASS' : 'FAIL',
      why: c ? `${f(c.atriumUs)} µs vs ${f(c.janusUs)} µs = ${f(c.ratio, 2)}×` : `shape ${name} not run`,
    });
  }
  const lossy = rows.flatMap((c) => c.atrium.filter((r) => r.loss > 0).map((r) => `${c.shape} ${(r.loss * 100).toFixed(3)} %`));
  out.push({
    bar: 'Atrium: no loss',
    verdict: rows.every((c) => c.atrium.length === 0) ? 'N/A' : lossy.length === 0 ? 'PASS' : 'FAIL',
    why: lossy.length === 0 ? `0 lost in ${rows.map((c) => c.shape).join(', ')}` : lossy.join(', '),
  });
  const ones = rows.filter((c) => /^1x\d+$/.test(c.shape) && Number.isFinite(c.atriumUs)).sort((a, b) => Number(a.shape.slice(2)) - Number(b.shape.slice(2)));
  const falling = ones.every((c, i) => i === 0 || c.atriumUs < ones[i - 1]!.atriumUs);
  out.push({
    bar: 'Atrium: cost per packet falls as subscribers are added',
    verdict: ones.length < 2 ? 'N/A' : falling ? 'PASS' : 'FAIL',
    why: ones.length < 2 ? 'needs two 1xN shapes' : ones.map((c) => `${c.shape} ${f(c.atriumUs)} µs`).join(' > '),
  });
  return out;
}
