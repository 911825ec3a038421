// The benchmark's figures as a table, each against its bar.
import { cpus } from 'node:os';
import type { SignalingBenchResult } from './bench.ts';

/** What the signalling plane has to sustain. */
export const BARS = {
  clients: 2000,
  joinsPerSecond: 500,
  chatP99Ms: 100,
  bytesPerClient: 150 * 1024,
};

export type Verdict = 'PASS' | 'FAIL' | 'n/a';

export interface Row {
  measure: string;
  measured: string;
  bar: string;
  verdict: Verdict;
}

export function rows(r: SignalingBenchResult): Row[] {
  const f = r.fanout;
  const allDelivered = f.delivered === f.expected && f.duplicates === 0;
  return [
    {
      measure: 'Clients in one group',
      measured: `${r.join.joined} joined`,
      bar: `${BARS.clients}`,
      verdict: r.clients < BARS.clients ? 'n/a' : r.join.joined >= BARS.clients ? 'PASS' : 'FAIL',
    },
    {
      measure: 'Join rate',
      measured: `${r.join.perSecond.toFixed(0)} joins/s (${secs(r.join.elapsedMs)})`,
      bar: `>= ${BARS.joinsPerSecond}/s`,
      verdict: r.join.perSecond >= BARS.joinsPerSecond ? 'PASS' : 'FAIL',
    },
    {
      measure: 'Join storm delivered (N user adds each)',
      measured: `${r.join.clientsWithAllUsers}/${r.clients} clients${r.join.allUsersSeenMs !== undefined ? `, ${secs(r.join.allUsersSeenMs)}` : ''}`,
      bar: 'every client',
      verdict: r.join.clientsWithAllUsers === r.clients ? 'PASS' : 'FAIL',
    },
    {
      measure: 'Chat fan-out p99 (message x member)',
      measured: r.messages === 0 ? 'no messages sent' : `${ms(f.p99Ms)}${allDelivered ? '' : ` (${f.delivered}/${f.expected} delivered)`}`,
      bar: `< ${BARS.chatP99Ms} ms to all`,
      verdict: r.messages === 0 ? 'n/a' : allDelivered && f.p99Ms < BARS.chatP99Ms ? 'PASS' : 'FAIL',
    },
    {
      measure: 'Server memory per client (RSS)',
      measured: kb(r.memory.rssPerClientBytes),
      bar: `< ${BARS.bytesPerClient / 1024} kB`,
      verdict: r.memory.rssPerClientBytes < BARS.bytesPerClient ? 'PASS' : 'FAIL',
    },
  ];
}

export function formatReport(r: SignalingBenchResult, when = new Date()): string {
  const table = rows(r);
  const head: Row = { measure: 'Measure', measured: 'Measured', bar: 'Bar', verdict: 'PASS' };
  const w = {
    measure: Math.max(head.measure.length, ...table.map((x) => x.measure.length)),
    measured: Math.max(head.measured.length, ...table.map((x) => x.measured.length)),
    bar: Math.max(head.bar.length, ...table.map((x) => x.bar.length)),
  };
  const line = (a: string, b: string, c: string, d: string) => `| ${a.padEnd(w.measure)} | ${b.padEnd(w.measured)} | ${c.padEnd(w.bar)} | ${d.padEnd(6)} |`;
  const f = r.fanout;
  const m = r.memory;
  const out = [
    `Atrium signalling benchmark — ${r.clients} clients, ${r.messages} chat messages, ${r.concurrency} joins in flight`,
    `${when.toISOString()}, node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), server and load generator on the same machine`,
    '',
    line('Measure', 'Measured', 'Bar', 'Result'),
    `|${'-'.repeat(w.measure + 2)}|${'-'.repeat(w.measured + 2)}|${'-'.repeat(w.bar + 2)}|--------|`,
    ...table.map((x) => line(x.measure, x.measured, x.bar, x.verdict)),
    '',
    `Chat fan-out, ${f.delivered} of ${f.expected} deliveries: p50 ${ms(f.p50Ms)}, p99 ${ms(f.p99Ms)}, max ${ms(f.maxMs)}` + (f.duplicates ? `, ${f.duplicates} duplicates` : ''),
    `  until the last member had it, per message: p50 ${ms(f.lastMemberP50Ms)}, max ${ms(f.lastMemberMaxMs)}`,
    `Server memory: RSS ${mb(m.before.rss)} before, ${mb(m.after.rss)} with ${r.join.joined} clients (peak ${mb(m.after.peakRss)})` +
      (m.heapPerClientBytes !== undefined ? `; V8 heap used ${mb(m.before.heapUsed!)} -> ${mb(m.after.heapUsed!)} = ${kb(m.heapPerClientBytes)} per client` : ''),
    `CPU (100% = one core): server ${r.join.serverCpuPercent.toFixed(0)}% and load generator ${r.join.loadCpuPercent.toFixed(0)}% during the join storm` +
      (r.join.otherCpuPercent !== undefined ? `, rest of the machine ${r.join.otherCpuPercent.toFixed(0)}%` : '') +
      `; server ${f.serverCpuPercent.toFixed(0)}% during chat`,
  ];
  if (r.join.otherCpuPercent !== undefined && r.join.otherCpuPercent > 30) {
    out.push(`Note: other work used ${r.join.otherCpuPercent.toFixed(0)}% of a core during the join storm; on a shared machine the figures above understate the server.`);
  }
  if (r.join.clientsWithAllUsers !== r.clients) out.push(`The last client to join saw ${r.join.lastClientUserAdds} of ${r.clients} user adds.`);
  if (r.dropped) out.push(`${r.dropped} clients were disconnected by the server during the run.`);
  if (r.pingsAnswered) out.push(`${r.pingsAnswered} server pings answered.`);
  if (r.warnings.length) out.push('Warnings:', ...r.warnings.map((x) => `  - ${x}`));
  return out.join('\n');
}

function ms(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(1)} ms`;
}

function secs(x: number): string {
  return `${(x / 1000).toFixed(2)} s`;
}

/** kB as /proc counts them: 1024 bytes. */
function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} kB`;
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
