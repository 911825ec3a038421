// The media engine tests, proven in real Chromium: page A publishes fake
// camera and microphone through the engine; pages B and C receive. Both
// engines run them (engine.test.ts: werift; engine-native.test.ts: werift
// for ICE/DTLS and the native packet plane for RTP, skipped with the reason
// when the addon is not built), each file inside a loopback-only network
// namespace (see netns.ts).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';

export async function defineEngineTests(kind: 'werift' | 'native'): Promise<void> {
  const { launchChromium } = await import('../../support/browser.ts');
  const { createWeriftEngine, createNativeEngine, loadNativeAddon } = await import('../../../src/media/index.ts');
  type Browser = import('playwright-core').Browser;
  type Page = import('playwright-core').Page;
  type Media = typeof import('../../../src/media/index.ts');
  type UpStream = import('../../../src/media/index.ts').UpStream;
  type DownStream = import('../../../src/media/index.ts').DownStream;

  // Runs in the pages: a tiny signalling-free WebRTC toolkit keyed by stream id.
  const PAGE_SCRIPT = `
    window.pcs = {};
    function gathered(pc) {
      if (pc.iceGatheringState === 'complete') return Promise.resolve();
      return new Promise((r) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()));
    }
    async function publish(id, simulcast) {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
      const pc = new RTCPeerConnection({ iceServers: [] });
      pcs[id] = pc;
      pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
      const init = { direction: 'sendonly', streams: [stream] };
      if (simulcast) init.sendEncodings = [{ rid: 'h' }, { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 100000 }];
      pc.addTransceiver(stream.getVideoTracks()[0], init);
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      return pc.localDescription.sdp;
    }
    async function answerOffer(id, sdp) {
      const pc = new RTCPeerConnection({ iceServers: [] });
      pcs[id] = pc;
      pc.ontrack = (e) => {
        const el = document.createElement(e.track.kind);
        el.autoplay = true; el.muted = false; el.srcObject = new MediaStream([e.track]);
        document.body.appendChild(el);
      };
      await pc.setRemoteDescription({ type: 'offer', sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      return pc.localDescription.sdp;
    }
    async function setAnswer(id, sdp) { await pcs[id].setRemoteDescription({ type: 'answer', sdp }); }
    async function addCandidate(id, c) { await pcs[id].addIceCandidate(c); }
    function state(id) { return pcs[id].connectionState; }
    async function inbound(id) {
      const out = { framesDecoded: 0, frameWidth: 0, videoCodec: '', totalSamplesReceived: 0, audioCodec: '' };
      const stats = await pcs[id].getStats();
      const codecs = {};
      stats.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') { out.framesDecoded += s.framesDecoded || 0; out.frameWidth = s.frameWidth || 0; out.videoCodec = codecs[s.codecId] || ''; }
        if (s.kind === 'audio') { out.totalSamplesReceived += s.totalSamplesReceived || 0; out.audioCodec = codecs[s.codecId] || ''; }
      });
      return out;
    }
  `;

  interface Inbound {
    framesDecoded: number;
    frameWidth: number;
    videoCodec: string;
    totalSamplesReceived: number;
    audioCodec: string;
  }

  const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> => page.evaluate(`${fn}(...${JSON.stringify(args)})`) as Promise<T>;

  async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: T | undefined;
    while (Date.now() < deadline) {
      last = await probe();
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
  }

  const native = loadNativeAddon();
  describe(`${kind} media engine with Chromium`, { skip: kind === 'native' && !native.ok ? (native as { reason: string }).reason : false }, () => {
    let server: Server;
    let origin: string;
    let browser: Browser;
    let engine: ReturnType<Media['createWeriftEngine']>;
    const pages: Page[] = [];

    before(async () => {
      server = createServer((_req, res) => res.end('<!doctype html><title>atrium media test</title><body></body>'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      browser = await launchChromium(['--autoplay-policy=no-user-gesture-required']);
      engine = kind === 'native' ? createNativeEngine({ additionalHostAddresses: ['127.0.0.1'] }) : createWeriftEngine({ additionalHostAddresses: ['127.0.0.1'] });
    });

    after(async () => {
      engine?.close();
      await browser?.close();
      server?.close();
    });

    async function newPage(): Promise<Page> {
      const page = await browser.newPage();
      await page.goto(origin);
      await page.evaluate(PAGE_SCRIPT.replace(/\n {4}/g, '\n'));
      await page.evaluate('Object.assign(window, { publish, answerOffer, setAnswer, addCandidate, state, inbound })');
      pages.push(page);
      return page;
    }

    async function publish(page: Page, id: string, opts: { simulcast?: boolean; codecs?: Media['ALL_CODECS'][number][] } = {}): Promise<UpStream> {
      const up = engine.createUpStream({ id, label: 'camera', iceServers: [], ...(opts.codecs ? { codecs: opts.codecs } : {}) });
      up.on('candidate', (c) => void call(page, 'addCandidate', id, c).catch(() => {}));
      const offer = await call<string>(page, 'publish', id, !!opts.simulcast);
      const answer = await up.answer(offer);
      await call(page, 'setAnswer', id, answer);
      await until(
        `publisher ${id} connected`,
        async () => up.state,
        (s) => s === 'connected',
      );
      return up;
    }

    async function subscribe(page: Page, id: string, source: UpStream, video: 'high' | 'low' | 'none' = 'high'): Promise<DownStream> {
      const down = engine.createDownStream({ id, source, request: { audio: true, video }, iceServers: [] });
      down.on('candidate', (c) => void call(page, 'addCandidate', id, c).catch(() => {}));
      const offer = await down.offer();
      const answer = await call<string>(page, 'answerOffer', id, offer);
      await down.setAnswer(answer);
      return down;
    }

    const inbound = (page: Page, id: string) => call<Inbound>(page, 'inbound', id);

    async function flowing(page: Page, id: string, what: string): Promise<Inbound> {
      const first = await until(
        `${what}: first frames and samples`,
        () => inbound(page, id),
        (s) => s.framesDecoded > 0 && s.totalSamplesReceived > 0,
        30_000,
      );
      return until(
        `${what}: frames and samples keep growing`,
        () => inbound(page, id),
        (s) => s.framesDecoded > first.framesDecoded + 10 && s.totalSamplesReceived > first.totalSamplesReceived,
      );
    }

    test('forwards audio and video to two subscribers; closing the up-stream ends them', async () => {
      const [a, b, c] = [await newPage(), await newPage(), await newPage()];
      const up = await publish(a, 'up1');
      assert.deepEqual(up.tracks.map((t) => t.kind).sort(), ['audio', 'video']);
      const d1 = await subscribe(b, 'down1', up);
      const d2 = await subscribe(c, 'down2', up);
      await Promise.all([flowing(b, 'down1', 'subscriber B'), flowing(c, 'down2', 'subscriber C')]);

      const upStats = await until(
        'an audio level from the RFC 6464 extension',
        () => up.stats(),
        (s) => (s.tracks.find((t) => t.kind === 'audio')?.audioLevel ?? 0) > 0,
      );
      const video = upStats.tracks.find((t) => t.kind === 'video')!;
      assert.ok(video.packets > 0 && video.bitrate > 0, `video up-track stats: ${JSON.stringify(video)}`);
      const downStats = await d1.stats();
      assert.ok(
        downStats.tracks.every((t) => t.packets > 0),
        `down stats: ${JSON.stringify(downStats)}`,
      );
      assert.equal(downStats.tracks.find((t) => t.kind === 'video')!.packetsLost, 0, 'the subscriber saw no sequence gaps');

      const closed: string[] = [];
      d1.on('close', () => closed.push('down1'));
      d2.on('close', () => closed.push('down2'));
      up.close();
      assert.deepEqual(closed.sort(), ['down1', 'down2']);
      assert.ok(d1.closed && d2.closed);
    });

    test('simulcast: video "low" gets the small layer, "high" the large one', async () => {
      const [a, b, c] = [await newPage(), await newPage(), await newPage()];
      const up = await publish(a, 'up2', { simulcast: true });
      const video = up.tracks.find((t) => t.kind === 'video')!;
      assert.deepEqual(video.layers, ['h', 'l']);
      const dHigh = await subscribe(b, 'down3', up, 'high');
      const dLow = await subscribe(c, 'down4', up, 'low');
      const low = await flowing(c, 'down4', 'low subscriber');
      await flowing(b, 'down3', 'high subscriber');
      const high = await until(
        'the high subscriber to get the larger layer',
        () => inbound(b, 'down3'),
        (s) => s.frameWidth > low.frameWidth,
        30_000,
      );
      assert.ok(low.frameWidth > 0 && low.frameWidth <= 320, `low layer width ${low.frameWidth}`);
      assert.ok(high.frameWidth >= 2 * low.frameWidth, `high ${high.frameWidth} vs low ${low.frameWidth}`);
      const layerOf = async (d: DownStream) => (await d.stats()).tracks.find((t) => t.kind === 'video')?.layer;
      assert.equal(await layerOf(dLow), 'l');
      assert.equal(await layerOf(dHigh), 'h');
      // switching layers on a live down-stream is seamless: frames keep being decoded
      dHigh.setRequest({ audio: true, video: 'low' });
      const before = await inbound(b, 'down3');
      const switched = await until(
        'the high subscriber to switch to the low layer',
        () => inbound(b, 'down3'),
        (s) => s.frameWidth === low.frameWidth && s.framesDecoded > before.framesDecoded + 10,
      );
      dHigh.setRequest({ audio: true, video: 'high' });
      await until(
        'the subscriber to switch back up',
        () => inbound(b, 'down3'),
        (s) => s.frameWidth === high.frameWidth && s.framesDecoded > switched.framesDecoded,
        30_000,
      );
      console.error(
        `simulcast: low ${low.frameWidth}px, high ${high.frameWidth}px; up ${JSON.stringify((await up.stats()).tracks.find((t) => t.kind === 'video')?.layers)}; high subscriber estimate ${(await dHigh.stats()).availableBitrate}`,
      );
      up.close();
    });

    for (const codec of ['vp9', 'h264'] as const) {
      test(`a codec restriction is obeyed (${codec} + opus only)`, async () => {
        const [a, b] = [await newPage(), await newPage()];
        const up = await publish(a, `up-${codec}`, { codecs: [codec, 'opus'] });
        assert.equal(up.tracks.find((t) => t.kind === 'video')!.codec, codec);
        const down = await subscribe(b, `down-${codec}`, up);
        const s = await flowing(b, `down-${codec}`, `${codec} subscriber`);
        assert.equal(s.videoCodec.toLowerCase(), `video/${codec}`);
        assert.equal(s.audioCodec.toLowerCase(), 'audio/opus');
        const ds = await down.stats();
        assert.deepEqual(ds.tracks.map((t) => t.codec).sort(), [codec, 'opus'].sort());
        up.close();
      });
    }
  });
}
