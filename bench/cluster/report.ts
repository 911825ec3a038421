// The cluster benchmark's figures as text: one row per layout (rates,
// latencies, CPU per join and per chat delivery, split by process), the
// placement, each node's share, and the ratios of every layout to the first.
import { cpus } from 'node:os';
import type { ClusterBenchResult, ClusterRunResult, CpuSplit } from './bench.ts';

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');

function nodeSum(cpu: CpuSplit): number {
  return Object.entries(cpu).reduce((s, [k, v]) => (/^n\d+$/.test(k) ? s + v : s), 0);
}

function allSum(cpu: CpuSplit): number {
  return Object.entries(cpu).reduce((s, [k, v]) => (k === 'rest' ? s : s + v), 0);
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** Per-unit costs of one layout: CPU ms per join and µs per chat delivery, by process group. */
export function unitCosts(r: ClusterRunResult): { joinMs: Record<string, number>; deliveryUs: Record<string, number> } {
  const per = (cpu: CpuSplit, units: number, scale: number) => ({
    nodes: (nodeSum(cpu) * scale) / units,
    haproxy: (cpu.haproxy! * scale) / units,
    redis: (cpu.redis! * scale) / units,
    load: (cpu.load! * scale) / units,
    all: (allSum(cpu) * scale) / units,
    rest: (cpu.rest! * scale) / units,
  });
  return { joinMs: per(r.join.cpuMs, r.join.joined, 1), deliveryUs: per(r.chat.cpuMs, Math.max(1, r.chat.delivered), 1000) };
}

export function formatReport(result: ClusterBenchResult): string {
  const first = result.layouts[0];
  if (!first) return 'no layout ran';
  const out: string[] = [];
  out.push(
    `Cluster benchmark: ${first.clients} Galène clients in ${first.groups} groups, then chat messages in every group at once (one in flight per group); ` +
      `load generator, HAProxy (TLS), redis-server and the nodes share this machine's ${cpus().length} cores.`,
  );
  out.push('');
  out.push(
    table(
      ['layout', 'joins/s', 'join p50', 'join p95', 'deliveries/s', 'chat p50', 'chat p95', 'chat max'],
      result.layouts.map((r) => [
        r.label,
        f0(r.join.perSecond),
        `${f1(r.join.latencyMs.p50)} ms`,
        `${f1(r.join.latencyMs.p95)} ms`,
        f0(r.chat.perSecond),
        `${f1(r.chat.latencyMs.p50)} ms`,
        `${f1(r.chat.latencyMs.p95)} ms`,
        `${f1(r.chat.latencyMs.max)} ms`,
      ]),
    ),
  );
  out.push('');
  out.push('CPU time per join (ms) and per chat delivery (µs), by process ("all" = nodes + haproxy + redis + load generator; "rest" = the rest of the machine meanwhile):');
  out.push(
    table(
      ['layout', 'join: nodes', 'haproxy', 'redis', 'load', 'all', 'rest', 'delivery: nodes', 'haproxy', 'redis', 'load', 'all', 'rest'],
      result.layouts.map((r) => {
        const u = unitCosts(r);
        const j = u.joinMs;
        const d = u.deliveryUs;
        return [r.label, f2(j.nodes!), f2(j.haproxy!), f2(j.redis!), f2(j.load!), f2(j.all!), f2(j.rest!), f1(d.nodes!), f1(d.haproxy!), f1(d.redis!), f1(d.load!), f1(d.all!), f1(d.rest!)];
      }),
    ),
  );
  out.push('');
  out.push(
    'Idle (before the clients came), % of one core: ' +
      result.layouts.map((r) => `${r.label}: nodes ${f1(nodeSum(r.idlePercent))}, haproxy ${f1(r.idlePercent.haproxy!)}, redis ${f1(r.idlePercent.redis!)}`).join('; '),
  );
  out.push('');
  out.push('Per node (CPU over the phase divided by all joins / all deliveries of the run; groups held as .status names them):');
  for (const r of result.layouts) {
    const ids = Object.keys(r.join.cpuMs).filter((k) => /^n\d+$/.test(k));
    const held = (id: string) =>
      Object.entries(r.placement)
        .filter(([, n]) => n === id)
        .map(([g]) => g);
    out.push(
      `  ${r.label}: ${ids.map((id) => `${id} [${held(id).join(' ') || '-'}] ${f2(r.join.cpuMs[id]! / r.join.joined)} ms/join, ${f1((r.chat.cpuMs[id]! * 1000) / Math.max(1, r.chat.delivered))} µs/delivery`).join('; ')}`,
    );
  }
  if (result.layouts.length > 1) {
    out.push('');
    out.push(`Ratios to "${first.label}" (rates: higher is better; CPU per unit: lower is better):`);
    const u0 = unitCosts(first);
    for (const r of result.layouts.slice(1)) {
      const u = unitCosts(r);
      out.push(
        `  ${r.label}: joins/s ×${f2(r.join.perSecond / first.join.perSecond)}, deliveries/s ×${f2(r.chat.perSecond / first.chat.perSecond)}, ` +
          `node CPU per join ×${f2(u.joinMs.nodes! / u0.joinMs.nodes!)}, all CPU per join ×${f2(u.joinMs.all! / u0.joinMs.all!)}, ` +
          `node CPU per delivery ×${f2(u.deliveryUs.nodes! / u0.deliveryUs.nodes!)}, all CPU per delivery ×${f2(u.deliveryUs.all! / u0.deliveryUs.all!)}`,
      );
    }
  }
  const warnings = result.layouts.flatMap((r) => r.warnings.map((w) => `${r.label}: ${w}`));
  if (warnings.length > 0) {
    out.push('');
    out.push(`Warnings (${warnings.length}):`);
    for (const w of warnings.slice(0, 20)) out.push(`  ${w}`);
  }
  return out.join('\n');
}
