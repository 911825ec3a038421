// The web app's pop-out, end to end: three users in a call (Chromium pages
// with fake devices, a real `atrium serve`, a loopback-only network
// namespace). Bob's browser has Document Picture-in-Picture, so his Pop out
// opens an always-on-top window; Carol's page is made to lack it, so hers
// opens a window.open pop-up fed by the window relay (direct path). Each
// shows the active speaker's decoding video and name; the active speaker is
// chosen by audio energy, driven here by who has their microphone on; the
// pop-outs follow, keep the last speaker through silence, and closing them
// (the button, the window's own close, leaving the call) stops their tracks.
// The speaker-selection hysteresis is tested on its own first.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SpeakerSelector } from '../../../web/src/speaker.ts';
import { insideLoopbackNetns } from '../media/support/netns.ts';

test('speaker selection: loudest speaker, hysteresis, silence keeps the last one', () => {
  const sel = new SpeakerSelector({ threshold: 0.001, holdMs: 1000, gapMs: 1500 });
  const at = (levels: Record<string, number>, t: number) => sel.update(new Map(Object.entries(levels)), t);
  assert.equal(at({ a: 0, b: 0 }, 0), null, 'nobody spoke yet');
  assert.equal(at({ a: 0.0005, b: 0 }, 100), null, 'below the threshold is silence');
  assert.equal(at({ a: 0.01, b: 0.002 }, 200), 'a', 'the first speaker is taken at once');
  // b is louder for a moment only: a stays.
  assert.equal(at({ a: 0.002, b: 0.05 }, 700), 'a');
  assert.equal(at({ a: 0.01, b: 0.002 }, 1200), 'a');
  assert.equal(at({ a: 0.002, b: 0.05 }, 1700), 'a', 'b was interrupted by a: its count restarted');
  // Silence keeps the speaker and does not end b's count; short pauses of b's are fine.
  assert.equal(at({ a: 0, b: 0 }, 2200), 'a');
  assert.equal(at({ a: 0, b: 0.05 }, 2700), 'b', 'b was the loudest speaker for 1 s');
  assert.equal(at({ a: 0, b: 0 }, 9000), 'b', 'silence keeps the last speaker');
  // A challenger silent for longer than gapMs starts again.
  assert.equal(at({ a: 0.05, b: 0 }, 10_000), 'b');
  assert.equal(at({ a: 0.05, b: 0 }, 12_000), 'b', 'a paused 2 s: its count restarted');
  assert.equal(at({ a: 0.05, b: 0 }, 12_600), 'b');
  assert.equal(at({ a: 0.05, b: 0.01 }, 13_000), 'a');
  sel.forget('a');
  assert.equal(sel.current, null, 'the speaker left');
  assert.equal(at({ b: 0.01 }, 13_100), 'b');
});

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 100_000 })) {
  const { WebAppHarness, seesVideo, until } = await import('./support/app.ts');
  const { launchChromium } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  const { ensureWebApp } = await import('../../../web/build.mjs');
  type Page = import('playwright-core').Page;

  interface PopoutInfo {
    open: boolean;
    kind: string | null;
    speaker: string;
    frames: number;
    live: boolean;
  }

  const h = new WebAppHarness();
  const problems: string[] = [];

  before(async () => {
    await ensureWebApp({ log: (m) => process.stderr.write(`${m}\n`) });
    h.server = await startServer({
      groups: { team: { public: true, displayName: 'Team meeting', 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
      args: ['--media-address', '127.0.0.1'],
    });
    // A pop-up behind its opener must keep decoding and running timers.
    h.browser = await launchChromium([
      '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ]);
  });
  after(() => h.stop());

  /** Joins through the login form; `noPip` hides Document Picture-in-Picture from the page. */
  async function join(name: string, noPip = false): Promise<Page> {
    const ctx = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
    // tsx keeps function names with a __name helper, which the functions given to page.evaluate then call.
    await ctx.addInitScript('window.__name = (f) => f;');
    if (noPip) await ctx.addInitScript(() => delete (window as unknown as { documentPictureInPicture?: unknown }).documentPictureInPicture);
    const page = await ctx.newPage();
    page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`));
    page.on('popup', (p) => p.on('pageerror', (e) => problems.push(`${name}'s pop-up: ${e.message}`)));
    await page.goto(`${h.server.url}/group/team/`);
    await page.fill('#username', name);
    await page.fill('#password', 'any');
    await page.click('button[type=submit]');
    await page.waitForSelector('.call', { timeout: 30_000 });
    h.pages[name] = page;
    return page;
  }

  /** What the page's pop-out shows, read from inside it; counts its video's frames from the first call on. */
  const popout = (page: Page): Promise<PopoutInfo> =>
    page.evaluate(() => {
      const hook = (window as unknown as { atriumPopout: { state(): { open: boolean; kind: string | null }; window(): Window | null } }).atriumPopout;
      const st = hook.state();
      const w = hook.window() as (Window & { frameCount?: number }) | null;
      const fig = w?.document.querySelector<HTMLElement>('figure.popout');
      const video = fig?.querySelector('video');
      if (w && video && w.frameCount === undefined) {
        w.frameCount = 0;
        const count = () => {
          w.frameCount! += 1;
          video.requestVideoFrameCallback(count);
        };
        video.requestVideoFrameCallback(count);
      }
      const tracks = (video?.srcObject as MediaStream | null)?.getVideoTracks() ?? [];
      const caption = fig?.querySelector('figcaption');
      return {
        open: st.open,
        kind: st.kind,
        speaker: caption && !caption.hidden ? (caption.textContent ?? '') : '',
        frames: w?.frameCount ?? 0,
        live: tracks.length === 1 && tracks[0]!.readyState === 'live',
      };
    });

  /** Waits until the pop-out shows `who` with video frames coming. */
  async function shows(page: Page, who: string, timeoutMs = 20_000): Promise<void> {
    const first = await until(
      `the pop-out to show ${who}`,
      async () => {
        const p = await popout(page);
        return p.speaker === who && p.live && p;
      },
      timeoutMs,
      200,
    );
    await until(`${who}'s video decoding in the pop-out`, async () => (await popout(page)).frames > first.frames + 5, 15_000, 200);
  }

  /** Keeps the video tracks the pop-out shows now, to check later that they were stopped. */
  const keepTracks = (page: Page, key: string) =>
    page.evaluate((k) => {
      const w = (window as unknown as { atriumPopout: { window(): Window | null } }).atriumPopout.window();
      const v = w?.document.querySelector<HTMLVideoElement>('figure.popout video');
      (window as unknown as Record<string, MediaStreamTrack[]>)[k] = [...((v?.srcObject as MediaStream | null)?.getTracks() ?? [])];
    }, key);
  const keptStates = (page: Page, key: string) => page.evaluate((k) => (window as unknown as Record<string, MediaStreamTrack[]>)[k]!.map((t) => t.readyState), key);

  const button = (page: Page) => page.locator('.toolbar button.popout-toggle');
  async function setMic(page: Page, on: boolean): Promise<void> {
    const b = page.locator('.toolbar .tool', { hasText: on ? 'Unmute' : 'Mute' });
    if ((await b.count()) > 0) await b.click();
  }

  test('the pop-out follows the active speaker and closes cleanly', async (t) => {
    const started = Date.now();
    const step = (m: string) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${m}`);
    const bob = await join('bob');
    const carol = await join('carol', true);
    const dave = await join('dave');
    // Only Dave speaks at first.
    await setMic(bob, false);
    await setMic(carol, false);
    await Promise.all([seesVideo(bob, 'dave'), seesVideo(bob, 'carol'), seesVideo(carol, 'dave'), seesVideo(carol, 'bob')]);
    step('everyone sees everyone');

    // Bob: picture-in-picture, opened by a real click (a user gesture).
    assert.equal(await button(bob).getAttribute('aria-pressed'), 'false');
    await button(bob).click();
    await until('bob’s pop-out to open', async () => (await popout(bob)).open);
    assert.equal((await popout(bob)).kind, 'pip');
    assert.equal(await bob.evaluate(() => (window as unknown as { documentPictureInPicture: { window: Window | null } }).documentPictureInPicture.window !== null), true);
    assert.equal(await button(bob).getAttribute('aria-pressed'), 'true');
    // Carol: no picture-in-picture, so a pop-up window, opened from the keyboard this time.
    const [popup] = await Promise.all([
      carol.waitForEvent('popup'),
      button(carol)
        .focus()
        .then(() => carol.keyboard.press('Enter')),
    ]);
    await popup.waitForLoadState('load');
    await until('carol’s pop-out to open', async () => (await popout(carol)).open);
    assert.equal((await popout(carol)).kind, 'window');
    step('pop-outs open');

    await Promise.all([shows(bob, 'dave'), shows(carol, 'dave')]);
    // The pop-up got the stream object itself (same renderer), with no peer connection.
    const peers = await carol.evaluate(() => (window as unknown as { atriumPopout: { state(): { peers: { via: string; state: string }[] } } }).atriumPopout.state().peers);
    assert.deepEqual(
      peers.map((p) => [p.via, p.state]),
      [['direct', 'open']],
    );
    assert.match((await popup.locator('figure.popout figcaption').textContent()) ?? '', /dave/);
    step('both pop-outs show dave');

    // Dave stops, Bob and Carol speak: each pop-out follows to the other one.
    await keepTracks(bob, 'daveInPip');
    await keepTracks(carol, 'daveInPopup');
    await setMic(dave, false);
    await setMic(bob, true);
    await setMic(carol, true);
    await Promise.all([shows(bob, 'carol'), shows(carol, 'bob')]);
    // What showed Dave was let go.
    assert.deepEqual(await keptStates(bob, 'daveInPip'), ['ended']);
    assert.deepEqual(await keptStates(carol, 'daveInPopup'), ['ended']);
    step('the pop-outs followed');

    // Silence keeps the last speaker.
    await setMic(bob, false);
    await setMic(carol, false);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await popout(bob)).speaker, 'carol');
    assert.equal((await popout(carol)).speaker, 'bob');

    // Closing: Bob with the button, Carol with the pop-up's own close (the window going away).
    await keepTracks(bob, 'shownInPip');
    await keepTracks(carol, 'shownInPopup');
    await button(bob).click();
    await until('bob’s pop-out to close', async () => !(await popout(bob)).open);
    assert.equal(await bob.evaluate(() => (window as unknown as { documentPictureInPicture: { window: Window | null } }).documentPictureInPicture.window), null);
    assert.deepEqual(await keptStates(bob, 'shownInPip'), ['ended']);
    assert.equal(await button(bob).getAttribute('aria-pressed'), 'false');
    await popup.close({ runBeforeUnload: true });
    await until('carol’s pop-out to close', async () => (await button(carol).getAttribute('aria-pressed')) === 'false', 5000, 100);
    assert.deepEqual(await keptStates(carol, 'shownInPopup'), ['ended']);
    assert.deepEqual(await carol.evaluate(() => (window as unknown as { atriumPopout: { state(): { peers: unknown[] } } }).atriumPopout.state().peers), []);
    // The call itself goes on.
    await seesVideo(carol, 'dave');
    step('closed by the button and by the window');

    // Leaving the call with the pop-out open closes it.
    await button(bob).click();
    await until('bob’s pop-out to open again', async () => (await popout(bob)).open);
    await shows(bob, 'carol');
    await keepTracks(bob, 'beforeLeaving');
    await bob.locator('.topbar button', { hasText: 'Leave' }).click();
    await bob.waitForSelector('.ended', { timeout: 10_000 });
    await until(
      'the pop-out to close on leaving',
      async () => bob.evaluate(() => (window as unknown as { documentPictureInPicture: { window: Window | null } }).documentPictureInPicture.window === null),
      5000,
      100,
    );
    assert.deepEqual(await keptStates(bob, 'beforeLeaving'), ['ended']);
    step('closed by leaving');
    assert.deepEqual(problems, []);
  });
}
