// The threaded engine's bookkeeping, without a network: where streams are
// placed (a group sticks to its worker while it has streams, a new group
// goes to the least-loaded worker, workers start when first needed), what a
// crashed worker does to its streams, and a clean shutdown. Streams here are
// never negotiated, so no socket is opened.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createWeriftEngine } from '../../src/media/index.ts';
import { createThreadedEngine, type EngineLog, type ThreadedEngine } from '../../src/media/workers/index.ts';
import type { DownStream, UpStream } from '../../src/media/engine.ts';

function logCollector(): EngineLog & { errors: string[] } {
  const errors: string[] = [];
  return { errors, error: (_o, m) => errors.push(m), warn: () => {}, info: () => {} };
}

const up = (e: ThreadedEngine, id: string, placement?: string): UpStream => e.createUpStream({ id, label: 'camera', iceServers: [], ...(placement ? { placement } : {}) });
const down = (e: ThreadedEngine, id: string, source: UpStream): DownStream => e.createDownStream({ id, source, request: { audio: true, video: 'high' }, iceServers: [] });
const placements = (e: ThreadedEngine) => Object.fromEntries(e.debug().flatMap((w) => w.placements.map((p) => [p, w.index])));

test('a group sticks to its worker; a new group goes to the least-loaded one; workers start when needed', async () => {
  const e = createThreadedEngine({ workers: 3 });
  try {
    assert.equal(e.workerCount, 3);
    assert.equal(e.debug().length, 0, 'no worker runs before a stream needs one');
    const a1 = up(e, 'a1', 'a');
    assert.equal(e.debug().length, 1);
    const b1 = up(e, 'b1', 'b');
    assert.notEqual(e.workerOf(b1), e.workerOf(a1), 'a second group gets a worker of its own');
    const a2 = up(e, 'a2', 'a');
    assert.equal(e.workerOf(a2), e.workerOf(a1), 'the same group, the same worker');
    const d1 = down(e, 'd1', b1);
    const d2 = down(e, 'd2', b1);
    assert.equal(e.workerOf(d1), e.workerOf(b1), 'a down-stream goes to its source');
    const c1 = up(e, 'c1', 'c');
    assert.equal(e.debug().length, 3, 'the third group starts the third worker');
    assert.equal(new Set([e.workerOf(a1), e.workerOf(b1), e.workerOf(c1)]).size, 3);
    // All three run: a has 2 streams, b 3, c 1: a new group goes to c's worker (least loaded).
    const x1 = up(e, 'x1', 'x');
    assert.equal(e.workerOf(x1), e.workerOf(c1));
    // Without a key, the least-loaded worker too.
    const n1 = up(e, 'n1');
    assert.equal(e.workerOf(n1), e.workerOf(a1), `least loaded: ${JSON.stringify(e.debug())}`);

    // A group whose streams are all gone is placed afresh.
    const bWorker = e.workerOf(b1)!;
    b1.close();
    assert.ok(d1.closed && d2.closed, 'closing an up-stream closes its down-streams at once');
    assert.equal(placements(e).b, undefined, 'b has no stream left, so no worker');
    const b2 = up(e, 'b2', 'b');
    assert.equal(e.workerOf(b2), bWorker, 'b comes back to the now empty worker');
    const load = (s: UpStream) => e.debug().find((w) => w.index === e.workerOf(s))!;
    assert.deepEqual([load(a1).ups, load(a1).downs, load(b2).ups, load(b2).downs, load(c1).ups], [3, 0, 1, 0, 2]);
    assert.throws(() => down(e, 'late', b1), /not an open up-stream of this media engine/);
    const other = createWeriftEngine().createUpStream({ id: 'foreign', label: 'camera', iceServers: [] });
    assert.throws(() => down(e, 'foreign-down', other), /not an open up-stream of this media engine/);
    other.close();
  } finally {
    await e.shutdown();
  }
});

test("a crashed worker closes its streams, is logged and replaced; the other worker's streams live on", async () => {
  const log = logCollector();
  const e = createThreadedEngine({ workers: 2, log });
  try {
    const a = up(e, 'a', 'red');
    const b = up(e, 'b', 'blue');
    const ad = down(e, 'ad', a);
    const before = await until(() => (e.debug().every((w) => w.ready) ? e.debug() : undefined));
    const events: string[] = [];
    a.on('state', (s) => events.push(`a ${s}`));
    a.on('close', () => events.push('a close'));
    ad.on('close', () => events.push('ad close'));
    b.on('close', () => events.push('b close'));
    assert.equal((await a.stats()).state, 'new', 'calls are answered before the crash');

    const w = e.workerOf(a)!;
    e.crashWorker(w);
    await until(() => (a.closed ? true : undefined));
    assert.deepEqual(events, ['ad close', 'a closed', 'a close']);
    assert.ok(ad.closed && a.state === 'closed');
    assert.equal(b.closed, false);
    assert.match(log.errors[0] ?? '', new RegExp(`media worker ${w} stopped \\(test: a media worker crashes on purpose\\); its 2 streams are closed and the worker is replaced`));
    // Calls on the closed streams behave as on any closed stream.
    await assert.rejects(a.answer('v=0\r\n'), /up-stream a is closed/);
    assert.deepEqual(await a.stats(), { id: 'a', state: 'closed', tracks: [] });
    await a.addIceCandidate({ candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host' });

    const after = await until(() => {
      const info = e.debug();
      return info.find((x) => x.index === w)?.ready ? info : undefined;
    });
    const replaced = after.find((x) => x.index === w)!;
    const survivor = after.find((x) => x.index !== w)!;
    assert.equal(replaced.restarts, 1);
    assert.notEqual(replaced.tid, before.find((x) => x.index === w)!.tid, 'a new thread');
    assert.equal(survivor.tid, before.find((x) => x.index !== w)!.tid, 'the other worker is the same thread');
    assert.deepEqual([survivor.ups, survivor.placements], [1, ['blue']]);
    assert.equal((await b.stats()).id, 'b', 'the surviving stream still answers');
    const a2 = up(e, 'a2', 'red');
    assert.equal(e.workerOf(a2), w, 'the group goes to the fresh (empty) worker');
    assert.equal((await a2.stats()).state, 'new');
  } finally {
    await e.shutdown();
  }
});

test('shutdown closes every stream and stops the workers', async () => {
  // A worker shows in the parent's active resources as its MessagePort.
  const ports = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;
  const portsBefore = ports();
  const e = createThreadedEngine({ workers: 2 });
  const a = up(e, 'a', 'one');
  const b = up(e, 'b', 'two');
  const d = down(e, 'd', a);
  await until(() => (e.debug().every((w) => w.ready) ? true : undefined));
  const closed: string[] = [];
  a.on('close', () => closed.push('a'));
  b.on('close', () => closed.push('b'));
  d.on('close', () => closed.push('d'));
  assert.equal(ports(), portsBefore + 2, 'two workers run');
  await e.shutdown();
  assert.deepEqual(closed.sort(), ['a', 'b', 'd']);
  assert.equal(ports(), portsBefore, 'no worker is left');
  assert.throws(() => up(e, 'c', 'one'), /the media engine is shut down/);
  await e.shutdown(); // twice is fine
});

async function until<T>(probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
