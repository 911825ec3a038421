// Fault: a media worker dies under a call. Its streams are closed by the
// engine and the worker is replaced; the publisher's SDK, told its stream
// is gone while it may still publish, offers the same tracks again on its
// own, and the subscriber decodes the camera again: nobody clicks anything.
// The threaded JavaScript engine, in real Chromium inside a loopback-only
// network namespace.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 150_000 })) {
  const { startServerChild } = await import('./support/server-child.ts');
  const { call, launchChromium, openHarness, sc, until } = await import('../client/support/browser.ts');
  type DownInfo = import('../client/support/harness.ts').DownInfo;
  type Page = import('playwright-core').Page;

  let root: string;
  let server: Awaited<ReturnType<typeof startServerChild>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'atrium-worker-crash-'));
    await mkdir(join(root, 'groups'), { recursive: true });
    await writeFile(join(root, 'groups', 'crash.json'), JSON.stringify({ 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } }));
    server = await startServerChild({ dataDir: join(root, 'data'), groupsDir: join(root, 'groups'), workers: 1 });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const downs = (p: Page) => call(p, 'downStats') as Promise<DownInfo[]>;
  async function decoding(p: Page, source: string, except?: string): Promise<DownInfo> {
    const first = await until(`frames from ${source}`, async () => (await downs(p)).find((d) => d.source === source && !d.closed && d.id + d.localId !== except && (d.framesDecoded ?? 0) > 0), 45_000);
    return until(`more frames from ${source}`, async () => (await downs(p)).find((d) => d.localId === first.localId && !d.closed && (d.framesDecoded ?? 0) > (first.framesDecoded ?? 0) + 5), 30_000);
  }

  test('a media worker crashes: it is replaced and the camera comes back by itself', async () => {
    const pub = await openHarness(browser, server.url, 'crash');
    const sub = await openHarness(browser, server.url, 'crash');
    await call(pub.page, 'connect', server.wsUrl, 'crash', 'presenter', 'x');
    await call(sub.page, 'connect', server.wsUrl, 'crash', 'viewer', 'x');
    await call(sub.page, 'request', { '': ['audio', 'video'] });
    const pubId = await sc<string>(pub.page, 'id');
    const { id, localId } = await call(pub.page, 'publish', { label: 'camera' });
    const before = await decoding(sub.page, pubId);

    await server.crash(0);
    await until('the crash in the log', async () => /media worker 0 stopped/.test(server.output()));
    await until('the down-stream to close at the subscriber', async () => (await downs(sub.page)).find((d) => d.localId === before.localId && d.closed));
    const again = await decoding(sub.page, pubId, before.id + before.localId);
    assert.equal(again.id, id, 'the same stream id');
    const up = (await call(pub.page, 'ups_')).find((u) => u.localId === localId);
    assert.ok(up && !up.closed && up.pcs === 2, `the same Stream object on a new peer connection: ${JSON.stringify(up)}`);
    const info = await server.debug();
    assert.equal(info[0]?.restarts, 1, 'the worker was replaced once');
    assert.deepEqual([info[0]?.ups, info[0]?.downs], [1, 1], 'the new worker carries the stream');
    for (const p of [pub, sub]) assert.deepEqual(p.problems, []);
  });
}
