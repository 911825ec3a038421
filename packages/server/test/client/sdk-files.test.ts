// @atrium/client peer-to-peer file transfer in real Chromium, signalled
// through a real server (usermessage kind filetransfer), inside a
// loopback-only network namespace: a 5 MB file arrives intact (SHA-256 on
// both sides) with progress along the way, and a refused transfer ends
// `cancelled` on both sides.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 90_000 })) {
  const { startServer } = await import('../support/server-process.ts');
  const { call, launchChromium, openHarness, sc, until } = await import('./support/browser.ts');
  type Page = import('playwright-core').Page;
  type FileRecord = import('./support/harness.ts').FileRecord;

  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const problems: string[][] = [];

  before(async () => {
    server = await startServer({
      groups: { files: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'message' } } },
      args: ['--media-address', '127.0.0.1'],
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function user(name: string): Promise<{ page: Page; id: string }> {
    const p = await openHarness(browser, server.url, 'files');
    problems.push(p.problems);
    await call(p.page, 'connect', server.wsUrl, 'files', name, 'x');
    return { page: p.page, id: await sc<string>(p.page, 'id') };
  }

  const files = (p: Page) => call(p, 'files') as Promise<FileRecord[]>;
  const seeEachOther = async (a: { page: Page; id: string }, b: { page: Page; id: string }) => {
    await until('the users to see each other', async () => (await sc<Record<string, unknown>>(a.page, 'users'))[b.id] && (await sc<Record<string, unknown>>(b.page, 'users'))[a.id]);
  };
  const SIZE = 5 * 1024 * 1024;

  test('a 5 MB file arrives intact, with progress, through the states of the protocol', async () => {
    const a = await user('sender');
    const b = await user('receiver');
    await seeEachOther(a, b);
    const sent = await call(a.page, 'sendFile', b.id, SIZE, 12345, 'five.bin');

    const down = await until('the download to finish', async () => (await files(b.page)).find((f) => f.states.includes('closed') && f.sha256), 60_000);
    const up = await until('the upload to finish', async () => (await files(a.page)).find((f) => f.states.includes('closed')), 10_000);

    assert.equal(down.sha256, sent, 'same SHA-256 on both sides');
    assert.equal(down.blobSize, SIZE);
    assert.equal(down.blobType, 'application/octet-stream');
    assert.deepEqual([down.up, down.name, down.size, down.userid, down.username], [false, 'five.bin', SIZE, a.id, 'sender']);
    assert.deepEqual([up.up, up.size, up.userid, up.username], [true, SIZE, b.id, 'receiver']);

    // '' → inviting → connecting → connected (repeated, with progress) → done → closed
    const squash = (s: string[]) => s.filter((x, i) => x !== s[i - 1]);
    assert.deepEqual(squash(up.states), ['inviting', 'connecting', 'connected', 'done', 'closed']);
    assert.deepEqual(squash(down.states), ['connecting', 'connected', 'done', 'closed']);
    for (const f of [up, down]) {
      assert.ok(f.progress.length > 10, `${f.up ? 'upload' : 'download'}: ${f.progress.length} progress events`);
      assert.ok(
        f.progress.every((n, i) => i === 0 || n >= f.progress[i - 1]!),
        'progress only grows',
      );
      assert.equal(f.progress.at(-1), SIZE);
    }
    assert.ok(
      down.progress.slice(0, -1).every((n) => n % 16384 === 0 && n < SIZE),
      'chunks of 16384 bytes',
    );
    assert.deepEqual(await sc(a.page, 'transferredFiles'), {});
    assert.deepEqual(await sc(b.page, 'transferredFiles'), {});
    for (const p of [a, b]) assert.deepEqual(await call(p.page, 'errors'), []);
  });

  test('a refused transfer ends cancelled on both sides, with the reason', async () => {
    const a = await user('hopeful');
    const b = await user('busy');
    await seeEachOther(a, b);
    await b.page.evaluate(() => {
      (window as unknown as { h: { fileAnswer: unknown } }).h.fileAnswer = { accept: false, message: 'not now, thanks' };
    });
    await call(a.page, 'sendFile', b.id, 1000, 7, 'small.bin');
    const up = await until('the sender to see the refusal', async () => (await files(a.page)).find((f) => f.states.includes('closed')));
    const down = (await files(b.page))[0];
    assert.deepEqual(up.states, ['inviting', 'cancelled', 'closed']);
    assert.equal(up.cancelMessage, 'not now, thanks');
    assert.deepEqual(down?.states, ['cancelled', 'closed']);
    assert.deepEqual(problems.flat(), []);
  });
}
