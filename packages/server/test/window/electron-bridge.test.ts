// The Electron arrangement end to end, with real WebRTC: two Chromium pages
// play the renderers, each with `createIpcRendererRelay` over an
// `ipcRenderer` whose messages go to the in-process Electron stand-in (the
// same one electron-hub.test.ts uses), where `createElectronRelayHub`
// forwards them to the other page. The pages are separate browser contexts,
// so nothing but the hub connects them. Runs in a loopback-only network
// namespace.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 60_000 })) {
  const { launchChromium, makeProbe, servePages, watch } = await import('./support/pages.ts');
  const { until } = await import('../support/browser.ts');
  const { createElectronRelayHub } = await import('../../../client/src/window/electron-main.ts');
  const { FakeBrowserWindow, FakeIpcMain } = await import('./support/electron-stand-in.ts');
  type Browser = import('playwright-core').Browser;
  type Page = import('playwright-core').Page;
  type RelayDrop = import('../../../client/src/window/electron-main.ts').RelayDrop;

  let browser: Browser;
  let server: Awaited<ReturnType<typeof servePages>>;
  const problems: string[] = [];

  before(async () => {
    server = await servePages();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A page wired to a stand-in BrowserWindow: its ipcRenderer.send reaches ipcMain with that window's WebContents as sender. */
  async function rendererFor(win: InstanceType<typeof FakeBrowserWindow>, name: string): Promise<Page> {
    const page = watch(await (await browser.newContext()).newPage(), problems);
    const contents = win.webContents;
    await page.exposeBinding('__ipcSend', (_source, channel: string, args: unknown[]) => contents.ipcRenderer.send(channel, ...args));
    // What the main process sends this window (webContents.send) goes into the page.
    contents.ipcRenderer.on('relay', (_event: unknown, ...args: unknown[]) => {
      void page.evaluate(([ch, a]) => (window as unknown as { __ipcDeliver(c: string, x: unknown[]): void }).__ipcDeliver(ch, a), ['relay', args] as const).catch(() => {});
    });
    await page.goto(`${server.url}/?${name}`);
    await makeProbe(page, name, { ipc: true, direct: false });
    return page;
  }

  test('two renderers exchange streams through the main-process hub; the hub ends them when a window goes', async () => {
    const ipcMain = new FakeIpcMain();
    const drops: RelayDrop[] = [];
    const hub = createElectronRelayHub({ ipcMain, onDrop: (d) => drops.push(d) });
    const mainWin = new FakeBrowserWindow(ipcMain);
    const miniWin = new FakeBrowserWindow(ipcMain);
    hub.addClient({ name: 'main', window: mainWin });
    hub.addClient({ name: 'mini', window: miniWin });
    hub.initChannel();
    const main = await rendererFor(mainWin, 'main');
    const mini = await rendererFor(miniWin, 'mini');

    await main.evaluate(() => window.p.camera('cam', true).then(() => window.p.attach('cam')));
    await mini.evaluate(() => window.p.camera('cam').then(() => window.p.attach('cam')));
    assert.equal(await main.evaluate(() => window.p.send('mini')), 'ok');
    assert.equal(await mini.evaluate(() => window.p.send('main')), 'ok');
    for (const [page, peer] of [
      [mini, 'main'],
      [main, 'mini'],
    ] as const) {
      const r = await until(`a stream from ${peer}`, async () => (await page.evaluate(() => window.p.receivedList()))[0], 15_000, 100);
      assert.equal(r.via, 'webrtc');
      await until(
        `frames from ${peer}`,
        async () => ((await page.evaluate((x) => window.p.decoded(x), peer))[r.id] ?? 0) > 20 && (await page.evaluate(() => window.p.receivedList()))[0]!.shown > 20,
        15_000,
        200,
      );
    }

    // "mini" tries to speak as "main": the hub refuses it.
    // biome-ignore lint/complexity/useLiteralKeys: `relay` is private; the brackets reach it from the test
    await mini.evaluate(() => window.p.wpc['relay']!.send(['main', 'mini', 'end', '{}']));
    await until('the spoof to be refused', async () => drops.length > 0, 5000, 50);
    assert.deepEqual(
      drops.map((d) => [d.reason, d.from]),
      [['spoofed-sender', 'mini']],
    );
    assert.deepEqual(await mini.evaluate(() => window.p.wpc.peers().map((x) => [x.name, x.connectionState])), [['main', 'connected']]);

    // The "mini" window is destroyed without its page saying goodbye (as on a crash or a forced close): the hub tells "main".
    await main.evaluate(() => window.p.hold('mini'));
    miniWin.close();
    await until('main to hear that mini is gone', async () => (await main.evaluate(() => window.p.log)).includes('close mini gone'), 5000, 50);
    assert.deepEqual(await main.evaluate(() => window.p.heldState('mini')), { connectionState: 'closed', sent: ['ended', 'ended'], received: ['ended'] });
    assert.deepEqual(hub.clients(), ['main']);
    assert.deepEqual(problems, []);
    hub.dispose();
    await main.context().close();
    await mini.context().close();
  });
}
