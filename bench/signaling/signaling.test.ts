// Keeps the signalling benchmark working: the same code as
// `npm run bench:signaling`, run small, checked for completeness only
// (timings on a shared CI machine prove nothing).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSignalingBench } from './bench.ts';
import { formatReport, rows } from './report.ts';

test('signalling benchmark: 50 clients join one group and every chat message reaches every one of them', async (t) => {
  const clients = 50;
  const messages = 3;
  const r = await runSignalingBench({ clients, messages, concurrency: 8, messageIntervalMs: 20, deadlineMs: 90_000, log: (line) => t.diagnostic(line) });

  assert.equal(r.join.joined, clients);
  assert.equal(r.join.clientsWithAllUsers, clients, 'every client saw a user add for every member');
  assert.equal(r.join.lastClientUserAdds, clients);

  assert.equal(r.fanout.perMessage.length, messages);
  for (const m of r.fanout.perMessage) {
    assert.equal(m.delivered, clients, `message ${m.seq} (from client ${m.sender}) reached every client`);
    assert.ok(m.lastMemberMs !== undefined && m.lastMemberMs >= 0);
  }
  assert.equal(r.fanout.delivered, clients * messages);
  assert.equal(r.fanout.expected, clients * messages);
  assert.equal(r.fanout.duplicates, 0);
  assert.ok(r.fanout.p50Ms <= r.fanout.p99Ms && r.fanout.p99Ms <= r.fanout.maxMs);

  assert.equal(r.dropped, 0);
  assert.deepEqual(r.warnings, []);
  assert.ok(r.memory.before.rss > 0 && r.memory.after.rss > 0);

  // The report renders every bar.
  assert.equal(rows(r).length, 5);
  const text = formatReport(r);
  for (const measure of ['Join rate', 'Chat fan-out p99', 'Server memory per client']) assert.match(text, new RegExp(measure));
});
