// Media over the Galène protocol, end to end: real Chromium pages with fake
// camera and microphone talk to a real `atrium serve` process, inside a
// loopback-only network namespace. Asserts on what a user would see: frames
// decoded and audio samples received at every subscriber.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

const CLIENT_JS = join(dirname(fileURLToPath(import.meta.url)), 'support', 'galene-browser-client.js');

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 240_000 })) {
  const { launchChromium, until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  type Page = import('playwright-core').Page;
  type Browser = import('playwright-core').Browser;
  type DownStat = {
    id: string;
    label: string;
    source: string;
    closed: boolean;
    state: string;
    framesDecoded?: number;
    frameWidth?: number;
    videoCodec?: string;
    totalSamplesReceived?: number;
  };

  const open = { password: { type: 'wildcard' }, permissions: 'present' };
  let browser: Browser;
  let server: Awaited<ReturnType<typeof startServer>>;
  const pages: Page[] = [];

  before(async () => {
    server = await startServer({
      groups: {
        media: { users: { op: { password: 'op', permissions: 'op' } }, 'wildcard-user': open },
        vp9only: { 'wildcard-user': open, codecs: ['vp9', 'opus'] },
        watchers: { users: { pub: { password: 'p', permissions: 'present' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'message' } },
      },
      args: ['--media-address', '127.0.0.1'],
      config: { users: { admin: { password: 'adminpw', permissions: 'admin' } } },
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A page joined to a group through the in-page Galène client. */
  async function user(group: string, username: string, password = 'x'): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    pages.push(page);
    await page.goto(`${server.url}/group/${group}/`);
    await page.addScriptTag({ path: CLIENT_JS });
    await page.evaluate(
      async ([ws, g, u, p]) => {
        const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown> }; TestGaleneClient: new () => unknown };
        w.tc = new w.TestGaleneClient() as typeof w.tc;
        await w.tc.connect(ws!, g!, u!, p!);
      },
      [server.wsUrl, group, username, password],
    );
    return page;
  }

  const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
    page.evaluate(([f, a]) => (window as unknown as { tc: Record<string, (...x: unknown[]) => unknown> }).tc[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;

  const downs = (page: Page) => call<DownStat[]>(page, 'downStats');
  const errors = (page: Page) => page.evaluate(() => (window as unknown as { tc: { errors: string[] } }).tc.errors);

  /** Waits until the page's live down-stream from `source` with `label` decodes frames and keeps decoding. */
  async function flowing(page: Page, source: string, label: string, opts: { audio?: boolean } = {}): Promise<DownStat> {
    const first = await until(`frames of ${label} from ${source}`, async () =>
      (await downs(page)).find((d) => d.source === source && d.label === label && !d.closed && (d.framesDecoded ?? 0) > 0 && (!opts.audio || (d.totalSamplesReceived ?? 0) > 0)),
    );
    const second = await until(`more frames of ${label}`, async () =>
      (await downs(page)).find((d) => d.id === first.id && (d.framesDecoded ?? 0) > (first.framesDecoded ?? 0) && (!opts.audio || (d.totalSamplesReceived ?? 0) > (first.totalSamplesReceived ?? 0))),
    );
    return second;
  }

  const idOf = (page: Page) => page.evaluate(() => (window as unknown as { tc: { id: string } }).tc.id);

  test('A publishes camera and microphone; B and C see video and hear audio', async () => {
    const a = await user('media', 'alice');
    const b = await user('media', 'bob');
    const c = await user('media', 'carol');
    for (const p of [b, c]) await call(p, 'request', { '': ['audio', 'video'] });
    await call(a, 'publish', { label: 'camera' });
    const aid = await idOf(a);
    for (const p of [b, c]) {
      const d = await flowing(p, aid, 'camera', { audio: true });
      assert.ok((d.frameWidth ?? 0) >= 320, `frame width ${d.frameWidth}`);
    }
    assert.deepEqual(await errors(a), []);
    assert.deepEqual(await errors(b), []);

    // The same streams, as an operator sees them: admin .stats and /metrics.
    const auth = `Basic ${Buffer.from('admin:adminpw').toString('base64')}`;
    type Conn = { id: string; label: string; tracks: { kind: string; bitrate: number; packets: number; audioLevel?: number }[] };
    type Report = { name: string; clients: { id: string; up?: Conn[]; down?: Conn[] }[] };
    const stats = await until('media in .stats', async () => {
      const r = (await (await fetch(`${server.url}/galene-api/v0/.stats`, { headers: { authorization: auth } })).json()) as Report[];
      const group = r.find((g) => g.name === 'media');
      const up = group?.clients.find((c) => c.id === aid)?.up?.[0];
      return up?.tracks.every((t) => t.bitrate > 0) ? group : undefined;
    });
    const up = stats.clients.find((c) => c.id === aid)!.up![0]!;
    assert.equal(up.label, 'camera');
    assert.deepEqual(up.tracks.map((t) => t.kind).sort(), ['audio', 'video']);
    const downs = stats.clients.flatMap((c) => c.down ?? []).filter((d) => d.id === up.id);
    assert.equal(downs.length, 2, 'two subscribers');
    assert.ok(downs.every((d) => d.tracks.some((t) => t.kind === 'video' && t.packets > 0)));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /atrium_media_streams\{group="media",direction="up"\} [1-9]/);
    assert.match(metrics, /atrium_media_bitrate_bps\{group="media",direction="down",kind="video"\} [1-9]/);
    assert.match(metrics, /atrium_media_audio_level\{group="media",client="[^"]+",stream="[^"]+"\} /);
  });

  test('simulcast: video-low gets the small layer, video the large one', async () => {
    const a = await user('media', 'sim-a');
    const hi = await user('media', 'sim-hi');
    const lo = await user('media', 'sim-lo');
    await call(hi, 'request', { '': ['video'] });
    await call(lo, 'request', { '': ['video-low'] });
    await call(a, 'publish', { label: 'camera', audio: false, simulcast: true, width: 1280, height: 720 });
    const aid = await idOf(a);
    const small = await flowing(lo, aid, 'camera');
    const large = await until(
      'the high layer at full width',
      async () => {
        const d = (await downs(hi)).find((x) => x.source === aid && !x.closed);
        return d && (d.frameWidth ?? 0) >= 640 ? d : undefined;
      },
      60_000,
    );
    assert.ok((small.frameWidth ?? 0) > 0 && (small.frameWidth ?? 0) <= 400, `low layer width ${small.frameWidth}`);
    assert.ok((large.frameWidth ?? 0) > (small.frameWidth ?? 0) * 2, `high ${large.frameWidth} vs low ${small.frameWidth}`);
  });

  test('screenshare arrives under its label; replace swaps a stream without the receiver leaving', async () => {
    const a = await user('media', 'share-a');
    const b = await user('media', 'share-b');
    await call(b, 'request', { '': ['audio', 'video'] });
    const aid = await idOf(a);
    const cam = await call<string>(a, 'publish', { label: 'camera', audio: false });
    await call(a, 'publish', { label: 'screenshare', audio: false });
    const screen = await flowing(b, aid, 'screenshare');
    assert.equal(screen.label, 'screenshare');
    const before = await flowing(b, aid, 'camera');
    assert.equal(before.id, cam);

    const replacement = await call<string>(a, 'publish', { label: 'camera', audio: false, replace: cam });
    const after = await until('the replacement camera', async () => (await downs(b)).find((d) => d.id === replacement && (d.framesDecoded ?? 0) > 0));
    assert.equal(after.source, aid);
    const old = (await downs(b)).find((d) => d.id === cam);
    assert.equal(old?.closed, true, 'the replaced stream was closed at the receiver');
    const joinedLeaves = await b.evaluate(() => (window as unknown as { tc: { log: { type: string; kind?: string }[] } }).tc.log.filter((m) => m.type === 'joined' && m.kind === 'leave').length);
    assert.equal(joinedLeaves, 0);
  });

  test('unpublish and kick remove the streams at the receivers', async () => {
    const op = await user('media', 'op', 'op');
    const a = await user('media', 'leaver');
    const b = await user('media', 'viewer');
    await call(b, 'request', { '': ['video'] });
    const aid = await idOf(a);
    const s1 = await call<string>(a, 'publish', { label: 'camera', audio: false });
    await flowing(b, aid, 'camera');
    await call(a, 'unpublish', s1);
    await until('the stream to close at the viewer', async () => (await downs(b)).find((d) => d.id === s1 && d.closed));

    await call(a, 'publish', { label: 'camera', audio: false });
    await flowing(b, aid, 'camera');
    await op.evaluate((id) => (window as unknown as { tc: { send(m: unknown): void } }).tc.send({ type: 'useraction', kind: 'kick', dest: id, value: 'bye' }), aid);
    await until('every stream of the kicked user to close', async () => {
      const all = (await downs(b)).filter((d) => d.source === aid);
      return all.length > 0 && all.every((d) => d.closed);
    });
    const kicked = await a.evaluate(() => (window as unknown as { tc: { kicked: string | null } }).tc.kicked);
    assert.equal(kicked, 'bye');
  });

  test("a group's codecs list is obeyed", async () => {
    const a = await user('vp9only', 'vp9-a');
    const b = await user('vp9only', 'vp9-b');
    await call(b, 'request', { '': ['audio', 'video'] });
    await call(a, 'publish', { label: 'camera' });
    const d = await flowing(b, await idOf(a), 'camera', { audio: true });
    assert.equal(d.videoCodec, 'video/VP9');
  });

  test('publishing needs the present permission', async () => {
    const w = await user('watchers', 'watcher');
    await call(w, 'publish', { label: 'camera', audio: false });
    const errs = await until('an error', async () => {
      const e = await errors(w);
      return e.length > 0 ? e : undefined;
    });
    assert.match(errs[0]!, /^not-permitted: .*present/);
    const pub = await user('watchers', 'pub', 'p');
    const w2 = await user('watchers', 'watcher2');
    await call(w2, 'request', { '': ['video'] });
    await call(pub, 'publish', { label: 'camera', audio: false });
    await flowing(w2, await idOf(pub), 'camera');
  });
}
