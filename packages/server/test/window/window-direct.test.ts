// The paths that need no WebRTC, in Chromium with fake devices inside a
// loopback-only network namespace: a window opened with window.open from the
// same page shares its renderer, so sendStream hands it the MediaStream
// object itself (also when the pop-up was still loading); a separate tab
// still goes over WebRTC; and Document Picture-in-Picture, which needs a
// user gesture.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 85_000 })) {
  const { launchChromium, openPopup, openTab, makeProbe, servePages, watch } = await import('./support/pages.ts');
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

  const received = (page: Page): Promise<Received[]> => page.evaluate(() => window.p.receivedList());
  const log = (page: Page): Promise<string[]> => page.evaluate(() => window.p.log);
  const live = async (page: Page) => (await received(page)).filter((r) => !r.removed);

  /** The video element of stream `id` keeps showing new frames (an opener behind its pop-up paints about one a second). */
  async function showing(page: Page, id: string): Promise<void> {
    const shown = async () => (await received(page)).find((r) => r.id === id)?.shown ?? 0;
    const first = await until(`frames of ${id}`, async () => (await shown()) > 2 && shown(), 15_000, 100);
    await until(`more frames of ${id}`, async () => (await shown()) > first + 2, 10_000, 100);
  }

  test('a window opened with window.open gets the MediaStream object itself', async () => {
    const context = await browser.newContext();
    const main = watch(await openTab(context, server.url, 'main'), problems);
    const mini = watch(await openPopup(main, 'mini'), problems);
    await main.evaluate(() => window.p.camera('cam', true).then(() => window.p.attach('cam')));
    assert.equal(await main.evaluate(() => window.p.send('mini')), 'ok');

    const [r] = await until(
      'a stream at mini',
      async () => {
        const l = await live(mini);
        return l.length === 1 && l;
      },
      5000,
      50,
    );
    assert.deepEqual([r!.peer, r!.via, r!.kinds], ['main', 'direct', ['audio', 'video']]);
    await showing(mini, r!.id);
    // No peer connection on this path.
    assert.deepEqual(await main.evaluate(() => window.p.wpc.peers()), [{ name: 'mini', via: 'direct', state: 'open', sending: true }]);
    assert.equal(await main.evaluate(() => window.p.wpc.connection('mini') === undefined), true);
    // What arrives is a copy of the page's stream (so closing can stop it), living in the opener's realm.
    assert.deepEqual(
      await main.evaluate(() => {
        const got = [...window.popups.mini!.p.received.values()][0]!.stream;
        const own = window.p.local.get('cam')!;
        return [got !== own, got instanceof MediaStream, got.getVideoTracks()[0]!.label === own.getVideoTracks()[0]!.label];
      }),
      [true, true, true],
    );

    // A second stream, removed; the first replaced.
    await main.evaluate(() => window.p.camera('b').then(() => window.p.attach('b')));
    const b = await until('a second stream at mini', async () => (await live(mini)).find((x) => x.id !== r!.id), 5000, 50);
    await showing(mini, b.id);
    await main.evaluate(() => window.p.remove('b'));
    await until('b removed at mini', async () => (await received(mini)).find((x) => x.id === b.id && x.removed && x.trackStates.every((s) => s === 'ended')), 5000, 50);
    await main.evaluate(() => window.p.camera('c').then(() => window.p.replace('cam', 'c')));
    const c = await until(
      'the replacing stream at mini',
      async () => {
        const l = await live(mini);
        return l.length === 1 && l[0]!.id !== r!.id && l[0];
      },
      5000,
      50,
    );
    assert.deepEqual((await received(mini)).find((x) => x.id === r!.id)!.trackStates, ['ended', 'ended']);
    await showing(mini, c.id);

    // The other way round on the same link.
    await mini.evaluate(() => window.p.camera('back').then(() => window.p.attach('back')));
    assert.equal(await mini.evaluate(() => window.p.send('main')), 'ok');
    const back = await until('a stream at main', async () => (await live(main))[0], 5000, 50);
    assert.equal(back.via, 'direct');
    await showing(main, back.id);

    // Closing the pop-up stops what went each way; the page's own cameras keep running.
    await main.evaluate(() => {
      const sentToMini = [...window.popups.mini!.p.received.values()].filter((x) => !x.removed).flatMap((x) => x.tracks);
      (window as unknown as { sentToMini: MediaStreamTrack[] }).sentToMini = sentToMini;
    });
    await mini.close();
    await until('main to hear that mini closed', async () => (await log(main)).includes('close mini remote'), 5000, 50);
    assert.deepEqual(await main.evaluate(() => (window as unknown as { sentToMini: MediaStreamTrack[] }).sentToMini.map((t) => t.readyState)), ['ended']);
    assert.deepEqual(
      (await received(main)).map((x) => [x.removed, x.trackStates]),
      [[true, ['ended']]],
    );
    assert.deepEqual(await main.evaluate(() => ['cam', 'b', 'c'].flatMap((k) => window.p.localStates(k))), ['live', 'live', 'live', 'live']);
    assert.deepEqual(await main.evaluate(() => window.p.wpc.peers()), []);
    assert.deepEqual(
      (await log(main)).filter((l) => l.startsWith('error')),
      [],
    );
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('closing the opener stops the streams in its pop-up', async () => {
    const context = await browser.newContext();
    const main = watch(await openTab(context, server.url, 'main'), problems);
    const mini = watch(await openPopup(main, 'mini'), problems);
    await main.evaluate(() => window.p.camera('cam').then(() => window.p.attach('cam')));
    assert.equal(await main.evaluate(() => window.p.send('mini')), 'ok');
    const r = await until('a stream at mini', async () => (await live(mini))[0], 5000, 50);
    await showing(mini, r.id);
    await main.close();
    await until('mini to hear that main closed', async () => (await log(mini)).includes('close main remote'), 5000, 50);
    assert.deepEqual(
      (await received(mini)).map((x) => [x.removed, x.trackStates]),
      [[true, ['ended']]],
    );
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('sendStream right after window.open goes direct once the pop-up is ready; a separate tab goes over WebRTC', async () => {
    const context = await browser.newContext();
    const main = watch(await openTab(context, server.url, 'main'), problems);
    await main.evaluate(() => window.p.camera('cam').then(() => window.p.attach('cam')));
    const [mini] = await Promise.all([
      main.waitForEvent('popup'),
      main.evaluate(() => {
        window.popups = { mini: window.open('/?mini', 'mini', 'popup,width=360,height=300') };
        (window as unknown as { sent: Promise<string> }).sent = window.p.send('mini');
      }),
    ]);
    watch(mini, problems);
    await mini.waitForLoadState('load');
    await new Promise((r) => setTimeout(r, 600)); // a few unanswered hellos
    await makeProbe(mini, 'mini');
    assert.equal(await main.evaluate(() => (window as unknown as { sent: Promise<string> }).sent), 'ok');
    const r = await until('a stream at mini', async () => (await live(mini))[0], 5000, 50);
    assert.equal(r.via, 'direct');
    await showing(mini, r.id);
    assert.deepEqual(await main.evaluate(() => window.p.wpc.peers().map((x) => [x.name, x.via])), [['mini', 'direct']]);

    // A tab of its own has no opener to share: WebRTC it is, even with the direct path allowed.
    const far = watch(await openTab(context, server.url, 'far'), problems);
    assert.equal(await main.evaluate(() => window.p.send('far')), 'ok');
    const f = await until('a stream at far', async () => (await live(far))[0], 10_000, 100);
    assert.equal(f.via, 'webrtc');
    await showing(far, f.id);
    assert.deepEqual(
      (await log(mini)).filter((l) => !l.startsWith('stream')),
      [],
    );
    assert.deepEqual(
      (await log(main)).filter((l) => !l.startsWith('stream')),
      [],
    );
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('Document Picture-in-Picture: refused without a user gesture, opens from a click', async (t) => {
    const context = await browser.newContext();
    const page = watch(await context.newPage(), problems);
    await page.goto(`${server.url}/pip.html`);
    assert.equal(await page.evaluate(() => window.WindowRelay.pictureInPictureAvailable()), true);
    const refusal = (await page.evaluate(() => window.pipNoGesture)) ?? '';
    t.diagnostic(`without a gesture: ${refusal}`);
    assert.match(refusal, /^pip-unavailable: the browser refused .*(activation|gesture)/i);

    await makeProbe(page, 'main');
    await page.evaluate(() => window.p.camera('cam').then(() => window.p.armPictureInPicture('cam')));
    await page.click('#pip');
    const pip = () => page.evaluate(() => ({ result: window.p.pip.result, frames: window.p.pip.frames, closed: window.p.pip.closed }));
    assert.equal(await until('the picture-in-picture window', async () => (await pip()).result, 5000, 50), 'opened');
    await until('frames in the picture-in-picture window', async () => (await pip()).frames > 10, 10_000, 100);
    await page.evaluate(() => window.p.pip.view!.close());
    await until('the picture-in-picture window to close', async () => (await pip()).closed, 5000, 50);
    // The stream is the page's: closing the window leaves it running.
    assert.deepEqual(await page.evaluate(() => window.p.localStates('cam')), ['live']);
    assert.deepEqual(problems, []);
    await context.close();
  });
}
