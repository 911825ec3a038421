// The SFU benchmark's own code with one publisher and two subscribers for
// about three seconds: packets must reach both subscribers with no sequence
// gap. No timing assertions. Runs inside a loopback-only network namespace,
// as every media test does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { insideLoopbackNetns } from '../../packages/server/test/media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 120_000 })) {
  const { runShape } = await import('./bench.ts');

  test('1x2: both subscribers get every packet the publisher sends', { timeout: 110_000 }, async () => {
    const r = await runShape(
      { name: '1x2', rooms: [{ group: 'bench', publishers: 1, subscribers: 2, rate: 100 }] },
      { seconds: 3, warmupSeconds: 0.5, packetSize: 1100, packetsPerFrame: 5, keyframeEveryMs: 3000, log: () => {} },
    );
    const room = r.rooms[0]!;
    assert.deepEqual(room.errors, [], 'no error from the server');
    assert.equal(room.perDown.length, 2, 'one down-stream per subscriber');
    assert.deepEqual(new Set(room.perDown.map((d) => d.subscriber)), new Set(['sub0', 'sub1']));
    for (const d of room.perDown) {
      assert.ok(d.packets > 0, `${d.subscriber} received packets (${d.packets})`);
      assert.equal(d.packets, d.expected, `${d.subscriber}: no sequence gap (${d.packets} of ${d.expected})`);
    }
    assert.ok(room.sentPps > 0);
    assert.ok(Number.isFinite(r.usPerPacket) && r.usPerPacket > 0, 'server CPU per packet measured');
  });
}
