// @atrium/client media in real Chromium against a real server (werift SFU),
// inside a loopback-only network namespace: publishing the fake camera with
// newUpStream + pc.addTrack as seed 003 shows, receiving it through
// ondownstream / ondowntrack with frames decoded, stream statistics,
// renegotiation when a track is added, replacement with
// newUpStream(localId), the simulcast helper, requestStream, abort, close.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 180_000 })) {
  const { startServer } = await import('../support/server-process.ts');
  const { call, launchChromium, openHarness, sc, until } = await import('./support/browser.ts');
  type Page = import('playwright-core').Page;
  type DownInfo = import('./support/harness.ts').DownInfo;
  type Entry = import('./support/harness.ts').Entry;

  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const problems: string[][] = [];

  before(async () => {
    server = await startServer({
      groups: { media: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
      args: ['--media-address', '127.0.0.1'],
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function user(name: string): Promise<{ page: Page; id: string }> {
    const p = await openHarness(browser, server.url, 'media');
    problems.push(p.problems);
    // Keep every frame the SDK sends, to check their shape.
    await p.page.evaluate(() => {
      const w = window as unknown as { sentFrames: unknown[] };
      w.sentFrames = [];
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        if (typeof data === 'string') w.sentFrames.push(JSON.parse(data));
        return send.call(this, data);
      };
    });
    await call(p.page, 'connect', server.wsUrl, 'media', name, 'x');
    return { page: p.page, id: await sc<string>(p.page, 'id') };
  }

  const downs = (p: Page) => call(p, 'downStats') as Promise<DownInfo[]>;

  /** The live down-stream from `source` decoding frames, and still decoding a moment later. */
  async function flowing(p: Page, source: string, check: (d: DownInfo) => boolean = () => true): Promise<DownInfo> {
    const first = await until(`frames from ${source}`, async () => (await downs(p)).find((d) => d.source === source && !d.closed && (d.framesDecoded ?? 0) > 0 && check(d)));
    return until(`more frames from ${source}`, async () => (await downs(p)).find((d) => d.id === first.id && (d.framesDecoded ?? 0) > (first.framesDecoded ?? 0)));
  }

  test('a camera published with newUpStream and pc.addTrack is received through ondownstream and ondowntrack', async () => {
    const a = await user('alice');
    const b = await user('bob');
    await call(b.page, 'request', { '': ['audio', 'video'] });
    const { id: upId, localId } = await call(a.page, 'publish', { label: 'camera' });

    const d = await flowing(b.page, a.id, (x) => (x.totalSamplesReceived ?? 0) > 0);
    assert.equal(d.id, upId, 'the down-stream has the id the publisher chose');
    assert.equal(d.label, 'camera');
    assert.equal(d.username, 'alice');
    assert.deepEqual(d.tracks.map((t) => t.kind).sort(), ['audio', 'video']);
    assert.ok(
      d.tracks.every((t) => t.argc === 3 && t.sameStream),
      'ondowntrack(track, transceiver, stream)',
    );
    assert.ok(d.statuses.includes('connected') || d.statuses.includes('completed'), d.statuses.join());
    const ds = (await call(b.page, 'entries', 'ondownstream')) as Entry[];
    assert.deepEqual(ds[0], ['ondownstream', upId, 'camera', a.id, 'alice', 1]);

    // Statistics: a bit rate per sent track at the publisher, audio energy at the receiver.
    const up = await until('a sending rate', async () => {
      const u = (await call(a.page, 'ups_')).find((x) => x.localId === localId);
      return u && Object.values(u.rates).some((r) => r > 0) ? u : undefined;
    });
    assert.ok(Object.keys(up.rates).length >= 2, `rates for audio and video: ${JSON.stringify(up.rates)}`);
    assert.ok(up.statuses.includes('connected') || up.statuses.includes('completed'), up.statuses.join());
    assert.ok(up.negotiations >= 1);
    await until('audio energy at the receiver', async () => (await downs(b.page)).find((x) => x.id === upId && typeof x.audioEnergy === 'number'));

    // The users dictionary says what each user sends.
    await until('users[alice].streams at bob', async () => {
      const s = await call(b.page, 'userStreams', a.id);
      return s?.camera?.audio && s.camera.video;
    });
    assert.deepEqual(await call(a.page, 'userStreams', a.id), { camera: { audio: true, video: true } });

    // Closing the up-stream closes the down-stream at the receiver.
    await call(a.page, 'closeUp', localId);
    const gone = await until('the down-stream to close', async () => (await downs(b.page)).find((x) => x.id === upId && x.closed));
    assert.equal(gone.replaced, false);
    await until('users[alice].streams emptied at bob', async () => JSON.stringify(await call(b.page, 'userStreams', a.id)) === '{}');
  });

  test('adding a track to a published stream renegotiates; the receiver gets the new track', async () => {
    const a = await user('late-audio');
    const b = await user('listener');
    await call(b.page, 'request', { '': ['audio', 'video'] });
    const { id, localId } = await call(a.page, 'publish', { audio: false });
    await flowing(b.page, a.id);
    await call(a.page, 'addAudio', localId);
    // The publisher renegotiates and sends both tracks.
    await until('the publisher to renegotiate and send audio', async () =>
      (await call(a.page, 'ups_')).find((u) => u.localId === localId && u.negotiations >= 2 && Object.values(u.rates).filter((r) => r > 0).length === 2),
    );
    await until('the audio track at the receiver', async () => (await downs(b.page)).find((d) => d.id === id && d.tracks.some((t) => t.kind === 'audio') && (d.totalSamplesReceived ?? 0) > 0), 8000);
  });

  test('newUpStream(localId) replaces a stream: the old one closes, the new one keeps the localId and flows', async () => {
    const a = await user('replacer');
    const b = await user('watcher');
    await call(b.page, 'request', { '': ['video'] });
    const first = await call(a.page, 'publish', { audio: false });
    await flowing(b.page, a.id);
    const second = await call(a.page, 'publish', { audio: false, replace: first.localId });
    assert.equal(second.localId, first.localId);
    assert.notEqual(second.id, first.id);
    const ups = await call(a.page, 'ups_');
    const old = ups.find((u) => u.id === first.id);
    assert.equal(old?.closed, true);
    assert.equal(old?.replaced, true, 'onclose(true) for the replaced stream');
    const now = await flowing(b.page, a.id, (d) => d.id === second.id);
    assert.equal(now.label, 'camera');
    const atB = (await downs(b.page)).find((d) => d.id === first.id);
    assert.equal(atB?.closed, true, 'the receiver lost the old stream');
    assert.equal((await downs(b.page)).filter((d) => !d.closed && d.source === a.id).length, 1);
  });

  test("as Galène's client: the offer carries replace: null, requestStream goes back to the default with request: null, and frames keep being decoded", async () => {
    const a = await user('null-publisher');
    const b = await user('null-receiver');
    await call(b.page, 'request', { '': ['audio', 'video'] });
    const { id } = await call(a.page, 'publish', { audio: false });
    await flowing(b.page, a.id);
    type Sent = { type: string; id?: string; replace?: unknown; request?: unknown };
    const sentBy = (p: Page) => p.evaluate(() => (window as unknown as { sentFrames: unknown[] }).sentFrames) as Promise<Sent[]>;
    const offer = (await sentBy(a.page)).find((f) => f.type === 'offer' && f.id === id);
    assert.ok(offer && 'replace' in offer && offer.replace === null, `the offer has "replace": null: ${JSON.stringify(offer).slice(0, 200)}`);
    // A small video asks for less, then grows back: Stream.request(null).
    await call(b.page, 'requestDown', id, ['audio', 'video-low']);
    await call(b.page, 'requestDown', id, null);
    const rs = (await sentBy(b.page)).filter((f) => f.type === 'requestStream' && f.id === id);
    assert.deepEqual(
      rs.map((f) => f.request),
      [['audio', 'video-low'], null],
    );
    await flowing(b.page, a.id, (d) => d.id === id);
    for (const p of [a, b]) assert.deepEqual(await call(p.page, 'errors'), []);
  });

  test("simulcast helper: video-low gets the small layer, request(['video']) the large one; abort() stops a down-stream", async () => {
    const a = await user('sim');
    const b = await user('small');
    await call(b.page, 'request', { '': ['video-low'] });
    const { id } = await call(a.page, 'publish', { audio: false, simulcast: true, width: 1280 });
    const small = await flowing(b.page, a.id);
    assert.ok((small.frameWidth ?? 0) > 0 && (small.frameWidth ?? 0) <= 400, `low layer width ${small.frameWidth}`);
    // Stream.request: this one stream switches to the high layer.
    await call(b.page, 'requestDown', id, ['video']);
    await until('the high layer after requestStream', async () => (await downs(b.page)).find((d) => d.id === id && (d.frameWidth ?? 0) > (small.frameWidth ?? 0) * 2), 40_000);
    await call(b.page, 'abortDown', id);
    const closed = await until('the aborted stream to close', async () => (await downs(b.page)).find((d) => d.id === id && d.closed));
    assert.equal(closed.replaced, false);
    for (const p of [a, b]) assert.deepEqual(await call(p.page, 'errors'), []);
    assert.deepEqual(problems.flat(), []);
  });
}
