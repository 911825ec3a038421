// Keeps the cluster benchmark working: the same code as
// `npm run bench:cluster`, run small (real redis-server, HAProxy and nodes),
// checked for completeness only (timings on a shared CI machine prove
// nothing): every client joins through HAProxy, every chat message reaches
// every member of its group, and three nodes share the groups.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LAYOUTS, runClusterBench } from './bench.ts';
import { formatReport } from './report.ts';

test('cluster benchmark: clients join through HAProxy to one node and to three, and every chat message reaches its whole group', async (t) => {
  const clients = 24;
  const groups = 3;
  const messages = 2;
  const layouts = [LAYOUTS[0]!, LAYOUTS[2]!];
  const r = await runClusterBench({ clients, groups, messages, concurrency: 6, layouts, log: (line) => t.diagnostic(line) });

  assert.deepEqual(
    r.layouts.map((l) => l.label),
    layouts.map((l) => l.label),
  );
  for (const l of r.layouts) {
    assert.equal(l.join.joined, clients, `${l.label}: every client joined`);
    assert.ok(l.join.allUsersSeenMs !== undefined, `${l.label}: every client saw every member of its group`);
    assert.equal(l.chat.expected, clients * messages);
    assert.equal(l.chat.delivered, clients * messages, `${l.label}: every message reached every member`);
    assert.deepEqual(l.warnings, [], `${l.label}: no drops, no server errors`);
    assert.equal(Object.keys(l.placement).length, groups);
    const holders = new Set(Object.values(l.placement));
    assert.equal(holders.size, l.nodes, `${l.label}: the groups are spread over the ${l.nodes} node(s): ${JSON.stringify(l.placement)}`);
    for (const id of holders) assert.match(id, /^n\d$/);
    assert.ok(l.join.cpuMs.n1! >= 0 && l.chat.latencyMs.p50 <= l.chat.latencyMs.p95);
  }
  const text = formatReport(r);
  for (const measure of ['joins/s', 'deliveries/s', 'CPU time per join', 'Ratios to "1 node"']) assert.ok(text.includes(measure), `the report shows ${measure}`);
});
