// @atrium/client automatic reconnection, in real Chromium inside a
// loopback-only network namespace. The server process is stopped and a new
// one started on the same port: both pages say they are reconnecting, come
// back, rejoin the group, and the published camera is offered again (same
// Stream object, new peer connection) so the other page decodes it again.
// Then one page loses its socket alone, and comes back the same way.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 100_000 })) {
  const { startServer } = await import('../support/server-process.ts');
  const { call, launchChromium, openHarness, sc, until } = await import('./support/browser.ts');
  type Page = import('playwright-core').Page;
  type DownInfo = import('./support/harness.ts').DownInfo;
  type Entry = import('./support/harness.ts').Entry;

  const GROUPS = { live: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } };
  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const problems: string[][] = [];

  before(async () => {
    server = await startServer({ groups: GROUPS, args: ['--media-address', '127.0.0.1'] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function user(name: string): Promise<{ page: Page; id: string }> {
    const p = await openHarness(browser, server.url, 'live', { reconnect: { initialDelayMs: 300, maxDelayMs: 2000 } });
    problems.push(p.problems);
    await call(p.page, 'connect', server.wsUrl, 'live', name, 'x');
    return { page: p.page, id: await sc<string>(p.page, 'id') };
  }

  const downs = (p: Page) => call(p, 'downStats') as Promise<DownInfo[]>;
  const log = (p: Page, name: string) => call(p, 'entries', name) as Promise<Entry[]>;

  /** Frames from `source` decoded by a down-stream announced after the `n`th ondownstream, and still growing. */
  async function decodingAgain(p: Page, source: string, n: number): Promise<DownInfo> {
    await until(`down-stream number ${n + 1} from ${source}`, async () => (await log(p, 'ondownstream')).filter((e) => e[3] === source).length > n);
    const first = await until(`frames from ${source}`, async () => (await downs(p)).find((d) => d.source === source && !d.closed && (d.framesDecoded ?? 0) > 0));
    return until(`more frames from ${source}`, async () => (await downs(p)).find((d) => d.id === first.id && !d.closed && (d.framesDecoded ?? 0) > (first.framesDecoded ?? 0)));
  }

  test('the server restarts: both pages reconnect, rejoin, and the camera flows again', async () => {
    const a = await user('presenter');
    const b = await user('viewer');
    await call(b.page, 'request', { '': ['audio', 'video'] });
    const { id: upId, localId } = await call(a.page, 'publish', { label: 'camera' });
    await decodingAgain(b.page, a.id, 0);

    const port = new URL(server.url).port;
    await server.stop();
    for (const p of [a, b]) {
      await until('onreconnecting', async () => (await log(p.page, 'onreconnecting')).length > 0);
      assert.equal(await sc(p.page, 'state'), 'reconnecting');
      assert.equal(await sc(p.page, 'group'), 'live', 'the group is remembered');
    }
    const closedDown = (await downs(b.page)).find((d) => d.id === upId);
    assert.equal(closedDown?.closed, true, 'down-streams close with the socket');
    const whileDown = (await call(a.page, 'ups_')).find((u) => u.localId === localId);
    assert.equal(whileDown?.closed, false, 'up-streams are kept to be restored');

    server = await startServer({ groups: GROUPS, args: ['--media-address', '127.0.0.1', '--listen', `127.0.0.1:${port}`] });
    for (const p of [a, b]) {
      await until('onreconnected', async () => (await log(p.page, 'onreconnected')).length > 0, 40_000);
      await until('joined again', async () => (await log(p.page, 'onjoined')).filter((e) => e[1] === 'join').length === 2);
    }
    // The viewer's request was sent again by the SDK; the presenter's camera is offered again.
    const again = await decodingAgain(b.page, a.id, 1);
    assert.equal(again.id, upId, 'the same stream id');
    assert.equal(again.label, 'camera');
    const up = (await call(a.page, 'ups_')).find((u) => u.localId === localId);
    assert.ok(up && !up.closed && up.pcs === 2, `the same Stream object on a new peer connection: ${JSON.stringify(up)}`);
    assert.ok((await sc<Record<string, unknown>>(b.page, 'users'))[a.id], 'the users are known again');

    // The connection works as before.
    await sc(b.page, 'chat', '', '', 'back again');
    await until('chat after reconnecting', async () => (await log(a.page, 'onchat')).find((e) => e[8] === 'back again'));
    for (const p of [a, b]) {
      assert.deepEqual(await log(p.page, 'onclose'), [], 'onclose is not called');
      assert.equal(await sc(p.page, 'state'), 'connected');
      const attempts = (await log(p.page, 'onreconnecting')).map((e) => e[1]);
      assert.deepEqual(
        attempts,
        attempts.map((_, i) => i + 1),
        'attempts are numbered',
      );
    }
  });

  test('one page loses its socket: it comes back and its camera with it', async () => {
    const a = await user('flaky');
    const b = await user('steady');
    await call(b.page, 'request', { '': ['video'] });
    const { localId } = await call(a.page, 'publish', { label: 'camera', audio: false });
    await decodingAgain(b.page, a.id, 0);

    await call(a.page, 'dropSocket');
    await until('a to come back', async () => (await log(a.page, 'onjoined')).filter((e) => e[1] === 'join').length === 2, 30_000);
    const aid = await sc<string>(a.page, 'id');
    const reconnecting = await log(a.page, 'onreconnecting');
    assert.equal(reconnecting[0]?.[3], 4500, 'the close code is reported');
    await until('b to see a leave', async () => (await log(b.page, 'onuser')).find((e) => e[1] === a.id && e[2] === 'delete'));
    await decodingAgain(b.page, aid, aid === a.id ? 1 : 0);
    const up = (await call(a.page, 'ups_')).find((u) => u.localId === localId);
    assert.equal(up?.pcs, 2);
    assert.equal(await sc(b.page, 'state'), 'connected');
    assert.deepEqual(await log(b.page, 'onreconnecting'), [], 'the other page was not affected');
    for (const p of [a, b]) assert.deepEqual(await call(p.page, 'errors'), []);
  });
}
