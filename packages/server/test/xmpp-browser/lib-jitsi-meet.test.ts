// Jitsi Meet's own client library against Atrium, unchanged: the bundle of
// @lyno/lib-jitsi-meet 2.6726.2 from npm (the lynoapp fork's build of
// lib-jitsi-meet at commit 7d34d537, December 2021; npm has no current
// build from Jitsi itself) in Chromium, inside a loopback-only network
// namespace. It connects over /xmpp-websocket, asks the focus for a
// conference, joins the MUC room of a group where a Galène-protocol page
// publishes its camera, accepts the focus's Jingle session and decodes
// that camera, attributed to the Galène user; then it publishes its own
// camera and microphone (its tracks added to the one session, announced by
// source-add, as Jitsi Meet does), which the Galène page decodes.
//
// The bundle is fetched with `npm pack` (the package's tarball alone,
// checked against the registry's integrity), not installed as a
// dependency: its package.json names two GitHub tarballs among its
// dependencies, which `npm ci` cannot fetch where only the npm registry is
// reachable. jquery (the bundle's one external) is a devDependency.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const GALENE_JS = join(HERE, '..', 'media', 'support', 'galene-browser-client.js');
const LJM = { name: '@lyno/lib-jitsi-meet', version: '2.6726.2' };
/** Where the tarball is unpacked: npm's cache folder in the workspace, which no tool lints or formats. */
const SCRATCH = join(HERE, '..', '..', '..', '..', 'node_modules', '.cache', `lib-jitsi-meet-${LJM.version}`);
const BUNDLE = join(SCRATCH, 'package', 'lib-jitsi-meet.min.js');
const JQUERY = createRequire(import.meta.url).resolve('jquery/dist/jquery.min.js');

/** Fetches the bundle once, before the test enters its namespace (which has no network). */
function fetchBundle(): void {
  if (existsSync(BUNDLE)) return;
  mkdirSync(SCRATCH, { recursive: true });
  const spec = `${LJM.name}@${LJM.version}`;
  const pack = spawnSync('npm', ['pack', spec, '--pack-destination', SCRATCH, '--json'], { encoding: 'utf8' });
  if (pack.status !== 0) throw new Error(`the lib-jitsi-meet test needs "npm pack ${spec}" (the npm registry, once): it failed: ${pack.stderr.trim().slice(-500)}`);
  const tarball = (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename.replace(/^@/, '').replace('/', '-');
  const untar = spawnSync('tar', ['-xzf', join(SCRATCH, tarball), '-C', SCRATCH], { encoding: 'utf8' });
  if (untar.status !== 0 || !existsSync(BUNDLE)) throw new Error(`could not unpack ${tarball} into ${SCRATCH}: ${untar.stderr}`);
}

if (!process.env.ATRIUM_LOOPBACK_NETNS) fetchBundle();

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 240_000 })) {
  const { launchChromium, until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  type Browser = import('playwright-core').Browser;

  let browser: Browser;
  let server: Awaited<ReturnType<typeof startServer>>;

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

  test('lib-jitsi-meet joins a group as a Jitsi conference, decodes the camera of a Galène-protocol member, and publishes its own, which the Galène page decodes', async () => {
    const galene = await (await browser.newContext()).newPage();
    await galene.goto(`${server.url}/group/media/`);
    await galene.addScriptTag({ path: GALENE_JS });
    await galene.evaluate(async (ws) => {
      const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown>; request(r: unknown): void; publish(o: unknown): Promise<unknown> }; TestGaleneClient: new () => unknown };
      w.tc = new w.TestGaleneClient() as typeof w.tc;
      await w.tc.connect(ws, 'media', 'gal', 'x');
      w.tc.request({ '': ['audio', 'video'] });
      await w.tc.publish({ label: 'camera' });
    }, server.wsUrl);

    const page = await (await browser.newContext()).newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    // Any page of the server's origin will do: the library is added to it.
    await page.goto(`${server.url}/group/media/`);
    await page.addScriptTag({ path: JQUERY });
    // The bundle's webpack external for jQuery is `window.jquery`.
    await page.evaluate(() => {
      const w = window as unknown as { jquery: unknown; jQuery: unknown };
      w.jquery = w.jQuery;
    });
    await page.addScriptTag({ path: BUNDLE });
    await page.evaluate(
      (service) => {
        // biome-ignore lint/suspicious/noExplicitAny: lib-jitsi-meet's bundle has no types here
        const w = window as any;
        const J = w.JitsiMeetJS;
        w.seen = { events: [] as string[], participants: [] as string[], remote: [] as { owner: string; type: string }[] };
        // That build prefers Plan B on Chrome unless told otherwise; current Chromium has only Unified Plan.
        J.init({ enableUnifiedOnChrome: true });
        J.setLogLevel(J.logLevels.WARN);
        const conn = new J.JitsiConnection(null, null, { hosts: { domain: 'localhost', muc: 'conference.localhost', focus: 'focus.localhost' }, serviceUrl: service });
        conn.addEventListener(J.events.connection.CONNECTION_FAILED, (e: unknown) => w.seen.events.push(`connection failed: ${String(e)}`));
        conn.addEventListener(J.events.connection.CONNECTION_ESTABLISHED, () => {
          w.seen.events.push('connected');
          const room = conn.initJitsiConference('media', { p2p: { enabled: false } });
          w.room = room;
          room.on(J.events.conference.CONFERENCE_JOINED, () => w.seen.events.push('joined'));
          room.on(J.events.conference.USER_JOINED, (_id: string, user: { getDisplayName(): string }) => w.seen.participants.push(user.getDisplayName()));
          room.on(J.events.conference.TRACK_ADDED, (track: { isLocal(): boolean; getType(): string; getParticipantId(): string; attach(e: HTMLElement): void }) => {
            if (track.isLocal()) return;
            w.seen.remote.push({ owner: track.getParticipantId(), type: track.getType() });
            if (track.getType() !== 'video') return;
            const video = document.createElement('video');
            video.autoplay = true;
            video.muted = true;
            document.body.appendChild(video);
            track.attach(video);
            w.video = video;
          });
          room.join();
        });
        conn.connect();
      },
      `${server.url.replace(/^http/, 'ws')}/xmpp-websocket`,
    );

    type Seen = { events: string[]; participants: string[]; remote: { owner: string; type: string }[] };
    const seen = () => page.evaluate(() => (window as unknown as { seen: Seen }).seen);
    const frames = () =>
      page.evaluate(() => {
        const v = (window as unknown as { video?: HTMLVideoElement }).video;
        return v ? { width: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames } : { width: 0, frames: 0 };
      });
    const joined = await until('the conference joined', async () => {
      const s = await seen();
      return s.events.includes('joined') && s;
    }).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await seen())}; page errors: ${problems.join('; ')}`);
    });
    assert.ok(!joined.events.some((e) => e.startsWith('connection failed')), joined.events.join(', '));
    await until('the Galène member as a participant', async () => (await seen()).participants.includes('gal'));

    // The focus's session carries the Galène camera; lib-jitsi-meet gives its tracks to the Galène user and decodes the video.
    const first = await until('frames of the Galène camera in lib-jitsi-meet', async () => {
      const f = await frames();
      return f.frames > 0 && f.width > 0 && f;
    }).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await seen())}; page errors: ${problems.join('; ')}`);
    });
    await until('more frames', async () => (await frames()).frames > first.frames + 10);
    const remote = (await seen()).remote;
    assert.deepEqual([...new Set(remote.map((r) => `${r.owner} ${r.type}`))].sort(), ['gal audio', 'gal video']);

    // lib-jitsi-meet publishes its camera and microphone as Jitsi Meet does:
    // the tracks join its one session, announced by source-add. The Galène
    // page decodes them.
    await page.evaluate(async () => {
      // biome-ignore lint/suspicious/noExplicitAny: lib-jitsi-meet's bundle has no types here
      const w = window as any;
      const tracks = await w.JitsiMeetJS.createLocalTracks({ devices: ['audio', 'video'] });
      for (const t of tracks) await w.room.addTrack(t);
    });
    type DownStat = { id: string; username?: string; closed: boolean; framesDecoded?: number; frameWidth?: number; totalSamplesReceived?: number };
    const downs = () => galene.evaluate(() => (window as unknown as { tc: { downStats(): Promise<DownStat[]> } }).tc.downStats());
    const up = await until('frames of the lib-jitsi-meet camera on the Galène page', async () =>
      (await downs()).find((d) => !d.closed && (d.framesDecoded ?? 0) > 0 && (d.frameWidth ?? 0) > 0 && (d.totalSamplesReceived ?? 0) > 0),
    ).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await downs())}; page errors: ${problems.join('; ')}; server: ${server.output().slice(-3000)}`);
    });
    await until('more frames from lib-jitsi-meet', async () => (await downs()).find((d) => d.id === up.id && (d.framesDecoded ?? 0) > (up.framesDecoded ?? 0) + 10));
    // And the Galène camera still plays in lib-jitsi-meet.
    const after = await frames();
    await until('more frames of the Galène camera after publishing', async () => (await frames()).frames > after.frames + 10);
    assert.deepEqual(problems, []);
    await page.evaluate(() => (window as unknown as { room: { leave(): Promise<unknown> } }).room.leave());
  });
}
