// Jingle through the SFU, in Chromium inside a loopback-only network
// namespace: a page with strophe.js, RTCPeerConnection and Atrium's
// SDP<->Jingle converter joins a group as an XMPP occupant, decodes the
// camera a Galène-protocol page publishes, and publishes its own camera,
// which the Galène page decodes. Asserts on frames decoded and audio
// samples received.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

const GALENE_JS = join(dirname(fileURLToPath(import.meta.url)), '..', 'media', 'support', 'galene-browser-client.js');

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 240_000 })) {
  const { launchChromium, until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  const { openPage } = await import('./support/pages.ts');
  type Page = import('playwright-core').Page;
  type Browser = import('playwright-core').Browser;
  type JingleStat = Awaited<ReturnType<import('./support/jingle-harness.ts').JingleClient['stats']>>[number];
  type DownStat = { id: string; label: string; source: string; username?: string; closed: boolean; framesDecoded?: number; frameWidth?: number; totalSamplesReceived?: number };

  let browser: Browser;
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer({
      groups: {
        media: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
        vp9only: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' }, codecs: ['vp9', 'opus'] },
      },
      args: ['--media-address', '127.0.0.1', ...(process.env.XMPP_DEBUG ? ['--log-level', 'trace'] : [])],
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function galenePage(username: string, group = 'media'): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${server.url}/group/${group}/`);
    await page.addScriptTag({ path: GALENE_JS });
    await page.evaluate(
      async ([ws, u, g]) => {
        const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown>; request(r: unknown): void }; TestGaleneClient: new () => unknown };
        w.tc = new w.TestGaleneClient() as typeof w.tc;
        await w.tc.connect(ws!, g!, u!, 'x');
        w.tc.request({ '': ['audio', 'video'] });
      },
      [server.wsUrl, username, group],
    );
    return page;
  }

  const gal = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
    page.evaluate(([f, a]) => (window as unknown as { tc: Record<string, (...x: unknown[]) => unknown> }).tc[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;
  const jingleStats = (page: Page) => page.evaluate(() => (window as unknown as { jc: { stats(): Promise<JingleStat[]> } }).jc.stats());

  test('an XMPP occupant decodes a Galène camera over Jingle, and a Galène page decodes the XMPP camera', async () => {
    const galene = await galenePage('gal');
    await gal(galene, 'publish', { label: 'camera' });

    const xmpp = await openPage(browser, server.url, 'jingle-harness.ts');
    await xmpp.page.evaluate(
      async (service) => {
        const w = window as unknown as { jc: { start(...a: string[]): Promise<void> }; JingleClient: new () => { start(...a: string[]): Promise<void> } };
        w.jc = new w.JingleClient();
        await w.jc.start(service, 'media@conference.localhost', 'jingler');
      },
      `${server.url.replace(/^http/, 'ws')}/xmpp-websocket`,
    );

    const diagnose = async () => {
      const state = await xmpp.page.evaluate(async () => {
        const jc = (window as unknown as { jc: { log: string[]; errors: string[]; stats(): Promise<unknown> } }).jc;
        return { log: jc.log, errors: jc.errors, stats: await jc.stats() };
      });
      return `xmpp page: ${JSON.stringify(state)}\nproblems: ${xmpp.problems.join('; ')}\nserver: ${server.output().slice(-3000)}`;
    };
    // The focus offered the Galène camera as a Jingle session; frames are decoded and keep coming.
    const first = await until('frames of the Galène camera on the XMPP page', async () =>
      (await jingleStats(xmpp.page)).find((s) => s.dir === 'down' && s.owner === 'media@conference.localhost/gal' && s.framesDecoded > 0 && s.frameWidth > 0 && s.samples > 0),
    ).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${await diagnose()}`);
    });
    assert.equal(first.label, 'camera');
    await until('more frames', async () => (await jingleStats(xmpp.page)).find((s) => s.sid === first.sid && s.framesDecoded > first.framesDecoded + 10));

    // The XMPP page publishes; the Galène page receives it as a down-stream from "jingler".
    await xmpp.page.evaluate(() => (window as unknown as { jc: { publish(): Promise<string> } }).jc.publish());
    const seen = await until('frames of the XMPP camera on the Galène page', async () =>
      (await gal<DownStat[]>(galene, 'downStats')).find((d) => d.username === 'jingler' && !d.closed && (d.framesDecoded ?? 0) > 0 && (d.totalSamplesReceived ?? 0) > 0),
    );
    assert.equal(seen.label, 'camera');
    await until('more frames from the XMPP camera', async () => (await gal<DownStat[]>(galene, 'downStats')).find((d) => d.id === seen.id && (d.framesDecoded ?? 0) > (seen.framesDecoded ?? 0) + 10));
    // A second XMPP occupant would get the XMPP camera too; the publisher itself gets nothing of its own.
    assert.equal((await jingleStats(xmpp.page)).filter((s) => s.dir === 'down' && s.owner === 'media@conference.localhost/jingler').length, 0);

    // The Galène publisher leaves: the focus ends that session.
    await galene.close();
    await until('the session of the gone camera ended', async () => (await jingleStats(xmpp.page)).find((s) => s.sid === first.sid && s.ended));
    const errors = await xmpp.page.evaluate(() => (window as unknown as { jc: { errors: string[] } }).jc.errors);
    assert.deepEqual(errors, []);
    assert.deepEqual(xmpp.problems, []);
  });

  // Jicofo's way, as Jitsi Meet's client expects it: one session for the
  // conference; a second publisher arrives by source-add and leaves by
  // source-remove, which the page applies to its copy of the remote SDP and
  // answers locally; the page's own camera goes up by its own source-add.
  type BundleStat = Awaited<ReturnType<import('./support/jingle-harness.ts').JingleClient['bundleStats']>>[number];
  test('one Jicofo-style session: a second Galène camera by source-add, gone by source-remove; the XMPP camera up by source-add', async () => {
    const one = await galenePage('one');
    await gal(one, 'publish', { label: 'camera' });
    const xmpp = await openPage(browser, server.url, 'jingle-harness.ts');
    await xmpp.page.evaluate(
      async (service) => {
        const w = window as unknown as { jc: { start(...a: string[]): Promise<void> }; JingleClient: new () => { start(...a: string[]): Promise<void> } };
        w.jc = new w.JingleClient();
        await w.jc.start(service, 'media@conference.localhost', 'bundler', 'bundle');
      },
      `${server.url.replace(/^http/, 'ws')}/xmpp-websocket`,
    );
    const stats = () => xmpp.page.evaluate(() => (window as unknown as { jc: { bundleStats(): Promise<BundleStat[]> } }).jc.bundleStats());
    const log = () => xmpp.page.evaluate(() => (window as unknown as { jc: { log: string[] } }).jc.log);
    const diagnose = async () => {
      const state = await xmpp.page.evaluate(async () => {
        const jc = (window as unknown as { jc: { log: string[]; errors: string[]; bundleStats(): Promise<unknown> } }).jc;
        return { log: jc.log, errors: jc.errors, stats: await jc.bundleStats() };
      });
      return `xmpp page: ${JSON.stringify(state)}\nproblems: ${xmpp.problems.join('; ')}\nserver: ${server.output().slice(-3000)}`;
    };
    const decoded = (owner: string) => async () => {
      const all = await stats();
      const v = all.find((s) => s.owner === `media@conference.localhost/${owner}` && s.kind === 'video' && !s.removed && s.framesDecoded > 0 && s.frameWidth > 0);
      const a = all.find((s) => s.owner === `media@conference.localhost/${owner}` && s.kind === 'audio' && !s.removed && s.samples > 0);
      return v && a ? v : undefined;
    };
    const first = await until('frames of the first camera, offered in the session-initiate', decoded('one')).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${await diagnose()}`);
    });
    assert.deepEqual(
      (await log()).filter((a) => a !== 'transport-info'),
      ['session-initiate'],
    );

    // A second publisher: no new session, a source-add; its frames are decoded on the same connection.
    const two = await galenePage('two');
    const twoId = await gal<string>(two, 'publish', { label: 'camera' });
    const second = await until('frames of the second camera, added by source-add', decoded('two')).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${await diagnose()}`);
    });
    assert.notEqual(second.ssrc, first.ssrc);
    assert.deepEqual(
      (await log()).filter((a) => a === 'session-initiate'),
      ['session-initiate'],
    );
    assert.ok((await log()).includes('source-add'));
    await until('the first camera still decoded', async () => (await stats()).find((s) => s.ssrc === first.ssrc && s.framesDecoded > first.framesDecoded + 10));

    // The XMPP page publishes by source-add: both Galène pages decode it.
    await xmpp.page.evaluate(() => (window as unknown as { jc: { publishBundle(): Promise<number[]> } }).jc.publishBundle());
    for (const page of [one, two]) {
      await until('frames of the XMPP camera on a Galène page', async () =>
        (await gal<DownStat[]>(page, 'downStats')).find((d) => d.username === 'bundler' && !d.closed && (d.framesDecoded ?? 0) > 0 && (d.totalSamplesReceived ?? 0) > 0),
      ).catch(async (e) => {
        throw new Error(`${(e as Error).message}\n${await diagnose()}`);
      });
    }

    // The second camera stops: a source-remove, its m-lines go inactive; the first one goes on.
    await gal(two, 'unpublish', twoId);
    await until(
      'the second camera removed by source-remove',
      async () => (await stats()).filter((s) => s.owner === 'media@conference.localhost/two' && s.removed && s.direction === 'inactive').length === 2 || undefined,
    );
    assert.ok((await log()).includes('source-remove'));
    const now = (await stats()).find((s) => s.ssrc === first.ssrc)!;
    await until('the first camera still decoded after the removal', async () => (await stats()).find((s) => s.ssrc === first.ssrc && s.framesDecoded > now.framesDecoded + 10));
    assert.deepEqual(
      (await log()).filter((a) => a === 'session-initiate' || a === 'session-terminate'),
      ['session-initiate'],
    );
    const errors = await xmpp.page.evaluate(() => (window as unknown as { jc: { errors: string[] } }).jc.errors);
    assert.deepEqual(errors, []);
    assert.deepEqual(xmpp.problems, []);
    await one.close();
    await two.close();
  });

  // A bundle negotiates one video codec for every source (VP8): a VP9
  // camera is not sent, the server's log names the track and the reason,
  // and the publisher's audio still plays.
  test('Jicofo mode and a VP9 publisher: its audio reaches the page, its video is refused with a log line saying why', async () => {
    const nine = await galenePage('nine', 'vp9only');
    await gal(nine, 'publish', { label: 'camera' });
    const xmpp = await openPage(browser, server.url, 'jingle-harness.ts');
    await xmpp.page.evaluate(
      async (service) => {
        const w = window as unknown as { jc: { start(...a: string[]): Promise<void> }; JingleClient: new () => { start(...a: string[]): Promise<void> } };
        w.jc = new w.JingleClient();
        await w.jc.start(service, 'vp9only@conference.localhost', 'bundler', 'bundle');
      },
      `${server.url.replace(/^http/, 'ws')}/xmpp-websocket`,
    );
    const stats = () => xmpp.page.evaluate(() => (window as unknown as { jc: { bundleStats(): Promise<BundleStat[]> } }).jc.bundleStats());
    const owner = 'vp9only@conference.localhost/nine';
    await until('the VP9 publisher’s audio on the page', async () => (await stats()).find((s) => s.owner === owner && s.kind === 'audio' && s.samples > 0)).catch(async (e) => {
      const page = await xmpp.page.evaluate(async () => {
        const jc = (window as unknown as { jc: { log: string[]; errors: string[]; bundleStats(): Promise<unknown> } }).jc;
        return { log: jc.log, errors: jc.errors, stats: await jc.bundleStats() };
      });
      throw new Error(`${(e as Error).message}\npage: ${JSON.stringify(page)}; problems: ${xmpp.problems.join('; ')}\nserver: ${server.output().slice(-3000)}`);
    });
    assert.deepEqual(
      (await stats()).filter((s) => s.owner === owner && s.kind === 'video'),
      [],
      'no video source announced',
    );
    const line = await until('the log line', async () =>
      server
        .output()
        .split('\n')
        .find((l) => l.includes('a track is not sent to a Jitsi client')),
    );
    assert.match(line, /carries vp8 video only, and up-track \S+ is vp9/);
    assert.match(line, /publish vp8 to reach Jitsi clients/);
    assert.deepEqual(xmpp.problems, []);
    await nine.close();
    await xmpp.page.close();
  });
}
