// WindowPeerConnection over the relay, in Chromium with fake devices, inside
// a loopback-only network namespace: a page, a pop-up it opened with
// window.open (direct path turned off, so it goes over WebRTC), and a
// separate tab of the same profile that only a BroadcastChannel connects to
// the page. Checks what a user would see — frames decoded and shown — for
// one stream, two at once, removed and replaced streams, streams sent both
// ways at the same moment, and that closing either window closes the peer
// connection and stops the tracks on both sides.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 85_000 })) {
  const { launchChromium, openPopup, openTab, servePages, watch } = await import('./support/pages.ts');
  const { until } = await import('../support/browser.ts');
  type Browser = import('playwright-core').Browser;
  type Page = import('playwright-core').Page;
  type Received = import('./support/probe.ts').Received;

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

  /** A page, a pop-up it opened, and (optionally) another tab, each with a probe; the relay only (no direct path). */
  async function windows(withTab: boolean) {
    const context = await browser.newContext();
    const main = watch(await openTab(context, server.url, 'main', { direct: false }), problems);
    const mini = watch(await openPopup(main, 'mini', { direct: false }), problems);
    const tab = withTab ? watch(await openTab(context, server.url, 'tab', { direct: false }), problems) : undefined;
    return { context, main, mini, tab };
  }

  const received = (page: Page): Promise<Received[]> => page.evaluate(() => window.p.receivedList());
  const log = (page: Page): Promise<string[]> => page.evaluate(() => window.p.log);
  const decoded = (page: Page, peer: string): Promise<Record<string, number>> => page.evaluate((x) => window.p.decoded(x), peer);

  /** The one live stream `page` receives from `peer` that matches, once it exists. */
  function stream(page: Page, peer: string, pred: (r: Received) => boolean = () => true, what = `a stream from ${peer}`): Promise<Received> {
    return until(`${what} at ${page.url()}`, async () => (await received(page)).find((r) => r.peer === peer && !r.removed && pred(r)), 15_000, 100);
  }

  /**
   * Waits until `id` has decoded and shown frames, then checks both keep
   * growing. Shown frames are only required to grow: Chromium paints an
   * opener whose pop-up is in front at about one frame a second.
   */
  async function flowing(page: Page, peer: string, id: string): Promise<void> {
    const sample = async () => ({ d: (await decoded(page, peer))[id] ?? 0, shown: (await received(page)).find((r) => r.id === id)?.shown ?? 0 });
    const first = await until(
      `frames of ${id} at ${page.url()}`,
      async () => {
        const s = await sample();
        return s.d > 5 && s.shown > 0 && s;
      },
      15_000,
      200,
    );
    await until(
      `more frames of ${id} at ${page.url()}`,
      async () => {
        const s = await sample();
        return s.d > first.d + 5 && s.shown > first.shown;
      },
      10_000,
      200,
    );
  }

  test('a pop-up and a separate tab receive a camera stream over WebRTC signalled on a BroadcastChannel', async () => {
    const { context, main, mini, tab } = await windows(true);
    await main.evaluate(() => window.p.camera('cam', true));
    await main.evaluate(() => window.p.attach('cam'));
    assert.deepEqual(await main.evaluate(() => Promise.all([window.p.send('mini'), window.p.send('tab')])), ['ok', 'ok']);

    for (const page of [mini, tab!]) {
      const r = await stream(page, 'main');
      assert.equal(r.via, 'webrtc');
      assert.deepEqual(r.kinds, ['audio', 'video']);
      await flowing(page, 'main', r.id);
    }
    // Host candidates only, no ICE servers configured.
    for (const peer of ['mini', 'tab']) {
      const ice = await main.evaluate((x) => window.p.ice(x), peer);
      assert.deepEqual({ ...ice, remote: ice.remote === 'host' || ice.remote === 'prflx' ? 'host-or-prflx' : ice.remote }, { local: 'host', remote: 'host-or-prflx', iceServers: 0 });
    }
    const peers = await main.evaluate(() => window.p.wpc.peers());
    assert.deepEqual(peers.map((x) => [x.name, x.via, x.state, x.sending, x.connectionState]).sort(), [
      ['mini', 'webrtc', 'open', true, 'connected'],
      ['tab', 'webrtc', 'open', true, 'connected'],
    ]);
    assert.deepEqual(await log(main), []);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('two streams at once, then one removed and the other replaced', async () => {
    const { context, main, mini } = await windows(false);
    await main.evaluate(async () => {
      await window.p.camera('a');
      await window.p.camera('b');
      window.p.attach('a');
      window.p.attach('b');
    });
    assert.equal(await main.evaluate(() => window.p.send('mini')), 'ok');
    await until('two streams at mini', async () => (await received(mini)).filter((r) => !r.removed).length === 2, 15_000, 100);
    const [a, b] = await received(mini);
    await Promise.all([flowing(mini, 'main', a!.id), flowing(mini, 'main', b!.id)]);

    // Remove the second: mini hears streamremoved, its tracks end, the first keeps playing.
    await main.evaluate(() => window.p.remove('b'));
    await until('b removed at mini', async () => (await received(mini)).find((r) => r.id === b!.id)?.removed, 10_000, 100);
    assert.deepEqual((await received(mini)).find((r) => r.id === b!.id)!.trackStates, ['ended']);
    await flowing(mini, 'main', a!.id);

    // Replace the first with a new camera stream.
    await main.evaluate(async () => {
      await window.p.camera('c');
      window.p.replace('a', 'c');
    });
    await until('a removed at mini', async () => (await received(mini)).find((r) => r.id === a!.id)?.removed, 10_000, 100);
    const c = await stream(mini, 'main', (r) => r.id !== a!.id && r.id !== b!.id, 'the replacing stream');
    await flowing(mini, 'main', c.id);
    assert.deepEqual(
      (await received(mini)).filter((r) => !r.removed).map((r) => r.id),
      [c.id],
    );
    // The application's own tracks are untouched by remove and replace.
    assert.deepEqual(await main.evaluate(() => ['a', 'b', 'c'].flatMap((k) => window.p.localStates(k))), ['live', 'live', 'live']);
    assert.deepEqual(await log(main), []);
    assert.deepEqual(
      (await log(mini)).filter((l) => l.startsWith('error')),
      [],
    );
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('both windows add and remove streams at the same moment', async () => {
    const { context, main, mini } = await windows(false);
    // A session first, so the next changes race on one connection.
    await main.evaluate(() => window.p.camera('one'));
    await mini.evaluate(() => window.p.camera('one'));
    await main.evaluate(() => window.p.attach('one'));
    assert.equal(await main.evaluate(() => window.p.send('mini')), 'ok');
    await stream(mini, 'main');
    assert.equal(await mini.evaluate(() => window.p.send('main')), 'ok');
    await Promise.all([main.evaluate(() => window.p.camera('two')), mini.evaluate(() => window.p.camera('two'))]);

    for (let round = 0; round < 3; round++) {
      // Both change within the same instant; offers never cross (one side asks the other to offer).
      await Promise.all([main.evaluate(() => window.p.attach('one')), mini.evaluate(() => window.p.attach('one'))]);
      await Promise.all([main.evaluate(() => window.p.attach('two')), mini.evaluate(() => window.p.attach('two'))]);
      await until('two streams each way', async () => (await received(main)).filter((r) => !r.removed).length === 2 && (await received(mini)).filter((r) => !r.removed).length === 2, 15_000, 100);
      for (const [page, peer] of [
        [main, 'mini'],
        [mini, 'main'],
      ] as const) {
        for (const r of (await received(page)).filter((x) => !x.removed)) await flowing(page, peer, r.id);
      }
      if (round < 2) {
        await Promise.all([main.evaluate(() => window.p.remove()), mini.evaluate(() => window.p.remove())]);
        await until('no stream either way', async () => (await received(main)).every((r) => r.removed) && (await received(mini)).every((r) => r.removed), 10_000, 100);
      }
    }
    assert.deepEqual(
      (await log(main)).filter((l) => !l.startsWith('stream') && !l.startsWith('removed')),
      [],
    );
    assert.deepEqual(
      (await log(mini)).filter((l) => !l.startsWith('stream') && !l.startsWith('removed')),
      [],
    );
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('closing a window closes its peer connections and stops the tracks on both sides', async () => {
    const { context, main, mini, tab } = await windows(true);
    for (const page of [main, mini, tab!]) await page.evaluate(() => window.p.camera('cam', true).then(() => window.p.attach('cam')));
    assert.deepEqual(await main.evaluate(() => Promise.all([window.p.send('mini'), window.p.send('tab')])), ['ok', 'ok']);
    assert.equal(await mini.evaluate(() => window.p.send('main')), 'ok');
    assert.equal(await tab!.evaluate(() => window.p.send('main')), 'ok');
    for (const [page, peer] of [
      [main, 'mini'],
      [main, 'tab'],
      [mini, 'main'],
      [tab!, 'main'],
    ] as const)
      await flowing(page, peer, (await stream(page, peer)).id);
    await main.evaluate(() => {
      for (const x of ['mini', 'tab']) window.p.hold(x);
    });
    await tab!.evaluate(() => window.p.hold('main'));

    // The pop-up goes: the page's connection to it closes, what it sent and received stops.
    await mini.close();
    await until('main to hear that mini closed', async () => (await log(main)).includes('close mini remote'), 10_000, 100);
    assert.deepEqual(await main.evaluate(() => window.p.heldState('mini')), { connectionState: 'closed', sent: ['ended', 'ended'], received: ['ended', 'ended'] });
    assert.deepEqual(await main.evaluate(() => window.p.wpc.peers().map((x) => x.name)), ['tab']);
    // The camera itself is the application's; the connection to the tab goes on.
    assert.deepEqual(await main.evaluate(() => window.p.localStates('cam')), ['live', 'live']);
    await flowing(tab!, 'main', (await stream(tab!, 'main')).id);

    // The page goes: the tab's side closes the same way.
    await main.close();
    await until('tab to hear that main closed', async () => (await log(tab!)).includes('close main remote'), 10_000, 100);
    assert.deepEqual(await tab!.evaluate(() => window.p.heldState('main')), { connectionState: 'closed', sent: ['ended', 'ended'], received: ['ended', 'ended'] });
    assert.deepEqual(await tab!.evaluate(() => window.p.wpc.peers()), []);
    assert.deepEqual(await tab!.evaluate(() => window.p.localStates('cam')), ['live', 'live']);
    assert.ok((await received(tab!)).every((r) => r.removed && r.trackStates.every((s) => s === 'ended')));
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('sendStream to a window that is not there, or that refuses, rejects', async () => {
    const context = await browser.newContext();
    const main = watch(await openTab(context, server.url, 'main', { direct: false, connectTimeoutMs: 1500 }), problems);
    const picky = watch(await openTab(context, server.url, 'picky'), problems);
    // A string, so the test runner's transform leaves the arrow function alone.
    await picky.evaluate("window.p.wpc.close(); window.p = new window.Probe('picky', { accept: (peer) => peer !== 'main' });");
    await main.evaluate(() => window.p.camera('cam').then(() => window.p.attach('cam')));
    const started = Date.now();
    assert.equal(await main.evaluate(() => window.p.send('nobody')), 'unreachable');
    assert.ok(Date.now() - started >= 1400);
    assert.equal(await main.evaluate(() => window.p.send('picky')), 'refused');
    assert.equal(await main.evaluate(() => window.p.send('main')), 'bad-argument');
    assert.deepEqual(await log(main), ['close nobody unreachable', 'close picky refused']);
    assert.deepEqual(await main.evaluate(() => window.p.wpc.peers()), []);
    assert.deepEqual(await log(picky), []);
    assert.deepEqual(problems, []);
    await context.close();
  });
}
