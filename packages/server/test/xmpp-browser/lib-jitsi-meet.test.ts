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
// The Galène camera is simulcast (640x480 and 160x120). lib-jitsi-meet's own
// receiver constraints (setReceiverConstraints, sent on the bridge channel
// the focus's offer names) choose the layer of that one SSRC: 180 pixels
// give the low layer, 720 the high one back, seen in the page's getStats
// (frameWidth, the same SSRC throughout). Then random loss on the page's
// down-link (nftables, test/media/support/impair.ts): the page NACKs, the
// server answers from the bundle's packet cache (admin .stats counts it),
// and the sender reports reach the page (remote-outbound-rtp).
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
  const { Impairments, impairmentUnavailable } = await import('../media/support/impair.ts');
  const { startServer } = await import('../support/server-process.ts');
  type Browser = import('playwright-core').Browser;

  let browser: Browser;
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer({
      groups: { media: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
      args: ['--media-address', '127.0.0.1'],
      config: { users: { admin: { password: 'adminpw', permissions: 'admin' } } },
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('lib-jitsi-meet joins a group as a Jitsi conference, decodes the camera of a Galène-protocol member, and publishes its own, which the Galène page decodes', async (t) => {
    const galene = await (await browser.newContext()).newPage();
    await galene.goto(`${server.url}/group/media/`);
    await galene.addScriptTag({ path: GALENE_JS });
    await galene.evaluate(async (ws) => {
      const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown>; request(r: unknown): void; publish(o: unknown): Promise<unknown> }; TestGaleneClient: new () => unknown };
      w.tc = new w.TestGaleneClient() as typeof w.tc;
      await w.tc.connect(ws, 'media', 'gal', 'x');
      w.tc.request({ '': ['audio', 'video'] });
      await w.tc.publish({ label: 'camera', simulcast: true });
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
    // The page's peer connections, for getStats (the library is not changed: it finds the same constructor).
    await page.evaluate(() => {
      const w = window as unknown as { pcs: RTCPeerConnection[]; RTCPeerConnection: typeof RTCPeerConnection };
      const Native = w.RTCPeerConnection;
      w.pcs = [];
      w.RTCPeerConnection = class extends Native {
        constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
          super(...args);
          w.pcs.push(this);
        }
      };
    });
    await page.addScriptTag({ path: BUNDLE });
    await page.evaluate(
      (service) => {
        // biome-ignore lint/suspicious/noExplicitAny: lib-jitsi-meet's bundle has no types here
        const w = window as any;
        const J = w.JitsiMeetJS;
        w.seen = { events: [] as string[], participants: [] as string[], remote: [] as { owner: string; type: string }[] };
        w.ids = {} as Record<string, string>;
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
          room.on(J.events.conference.USER_JOINED, (id: string, user: { getDisplayName(): string }) => {
            w.seen.participants.push(user.getDisplayName());
            w.ids[user.getDisplayName()] = id;
          });
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

    // The layer, chosen by lib-jitsi-meet's receiver constraints, under one SSRC.
    type Rtc = { ssrc: number; frameWidth: number; framesDecoded: number; nackCount: number; srs: number; audioSrs: number; port: number };
    const rtc = () =>
      page.evaluate(async () => {
        const out: Rtc = { ssrc: 0, frameWidth: 0, framesDecoded: 0, nackCount: 0, srs: 0, audioSrs: 0, port: 0 };
        for (const pc of (window as unknown as { pcs: RTCPeerConnection[] }).pcs) {
          const all: Record<string, unknown>[] = [];
          (await pc.getStats()).forEach((r: Record<string, unknown>) => {
            all.push(r);
          });
          for (const r of all) {
            if (r.type === 'inbound-rtp' && r.kind === 'video' && Number(r.framesDecoded ?? 0) >= out.framesDecoded) {
              out.ssrc = Number(r.ssrc);
              out.frameWidth = Number(r.frameWidth ?? 0);
              out.framesDecoded = Number(r.framesDecoded ?? 0);
              out.nackCount = Number(r.nackCount ?? 0);
            }
            if (r.type === 'remote-outbound-rtp') {
              if (r.kind === 'video') out.srs += Number(r.reportsSent ?? 0);
              else out.audioSrs += Number(r.reportsSent ?? 0);
            }
          }
          const pair = all.find((r) => r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded');
          const local = all.find((r) => r.id === pair?.localCandidateId);
          if (local?.port) out.port = Number(local.port);
        }
        return out;
      });
    const constrain = (c: unknown) => page.evaluate((x) => (window as unknown as { room: { setReceiverConstraints(c: unknown): void } }).room.setReceiverConstraints(x), c);
    const galId = await page.evaluate(() => (window as unknown as { ids: Record<string, string> }).ids.gal!);
    await constrain({ lastN: -1, defaultConstraints: { maxHeight: 180 }, constraints: {} });
    const low = await until('the low layer (160 wide) after asking for 180 pixels', async () => {
      const r = await rtc();
      return r.frameWidth > 0 && r.frameWidth <= 160 && r;
    });
    await constrain({ lastN: -1, defaultConstraints: { maxHeight: 180 }, constraints: { [galId]: { maxHeight: 720 } }, onStageEndpoints: [galId] });
    const high = await until('the high layer (640 wide) after asking for 720 pixels', async () => {
      const r = await rtc();
      return r.frameWidth >= 640 && r.framesDecoded > low.framesDecoded && r;
    });
    assert.equal(high.ssrc, low.ssrc, 'one SSRC for both layers');
    await constrain({ lastN: -1, defaultConstraints: { maxHeight: 180 }, constraints: {} });
    await until('the low layer again', async () => {
      const r = await rtc();
      return r.frameWidth > 0 && r.frameWidth <= 160 && r.ssrc === low.ssrc;
    });
    await constrain({ lastN: -1, defaultConstraints: { maxHeight: 180 }, constraints: { [galId]: { maxHeight: 720 } }, onStageEndpoints: [galId] });
    await until('the high layer again', async () => (await rtc()).frameWidth >= 640);
    // Sender reports for the video and the audio the bundle sends.
    await until('sender reports of the bundle', async () => {
      const r = await rtc();
      return r.srs > 0 && r.audioSrs > 0;
    });

    // Random loss on the page's down-link: its NACKs are answered from the bundle's cache.
    const unavailable = impairmentUnavailable();
    if (unavailable) t.diagnostic(`the loss part is skipped: ${unavailable}`);
    else {
      type Track = { kind: string; packets: number; nacks: number; retransmitted?: number; layer?: string };
      type Report = { name: string; clients: { id: string; username?: string; down?: { id: string; label: string; tracks: Track[] }[] }[] };
      const auth = `Basic ${Buffer.from('admin:adminpw').toString('base64')}`;
      const bundleVideo = async () => {
        const r = (await (await fetch(`${server.url}/galene-api/v0/.stats`, { headers: { authorization: auth } })).json()) as Report[];
        const group = r.find((g) => g.name === 'media');
        // What the XMPP member receives of gal's camera: its bundle's sends, reported as a down-stream.
        return group?.clients
          .filter((c) => c.username !== 'gal')
          .flatMap((c) => c.down ?? [])
          .find((d) => d.label === 'camera')
          ?.tracks.find((t) => t.kind === 'video');
      };
      const s0 = await until('the bundle in .stats', bundleVideo);
      assert.equal(s0.layer, 'h');
      const before = await rtc();
      const impair = new Impairments();
      try {
        impair.set('ljm_loss', [{ port: before.port, direction: 'to', lossPercent: 5 }]);
        const s1 = await until('NACKs answered by the bundle', async () => {
          const s = await bundleVideo();
          return s && (s.retransmitted ?? 0) > (s0.retransmitted ?? 0) + 5 && s;
        });
        assert.ok(impair.dropped('ljm_loss') > 0, 'the loss rule dropped packets');
        const r = await rtc();
        assert.ok(r.nackCount > before.nackCount, `the page sent NACKs (${r.nackCount})`);
        t.diagnostic(`before the loss: the page had sent ${before.nackCount} NACKs, the server heard ${s0.nacks} and resent ${s0.retransmitted}`);
        t.diagnostic(
          `5 % loss: the page sent ${r.nackCount - before.nackCount} NACKs; the server heard ${s1.nacks - s0.nacks} lost packets and resent ${(s1.retransmitted ?? 0) - (s0.retransmitted ?? 0)}`,
        );
      } finally {
        impair.close();
      }
      const during = await rtc();
      await until('frames after the loss', async () => (await rtc()).framesDecoded > during.framesDecoded + 10);
    }

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
