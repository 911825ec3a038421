// The track-level seam, proven with real Chromium pages: page A publishes
// camera and microphone; taps on its up-tracks read the packets (keyframe
// starts, sender reports); the packets are written into a source stream —
// a pipe, as node-to-node links will be — and page B, subscribed to the
// source stream, decodes the frames and plays the sound. Run for the
// in-process werift engine, the threaded engine with the publisher and the
// source on two different workers (so the packets cross threads twice, in
// batches), and the same two with the native engine (in this process, and
// in two worker processes). Inside a loopback-only network namespace.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 180_000 })) {
  const { launchChromium, until } = await import('../support/browser.ts');
  const { createWeriftEngine, createNativeEngine, loadNativeAddon } = await import('../../src/media/index.ts');
  const { createThreadedEngine } = await import('../../src/media/workers/index.ts');
  type Browser = import('playwright-core').Browser;
  type Page = import('playwright-core').Page;
  type CodecParameters = import('../../src/media/index.ts').CodecParameters;
  type MediaEngine = import('../../src/media/index.ts').MediaEngine;
  type TrackTap = import('../../src/media/index.ts').TrackTap;
  type PacketBatch = import('../../src/media/index.ts').PacketBatch;

  const PAGE_SCRIPT = `
    window.pcs = {};
    function gathered(pc) {
      if (pc.iceGatheringState === 'complete') return Promise.resolve();
      return new Promise((r) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()));
    }
    async function publish(id) {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
      const pc = new RTCPeerConnection({ iceServers: [] });
      pcs[id] = pc;
      for (const t of stream.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [stream] });
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      return pc.localDescription.sdp;
    }
    async function answerOffer(id, sdp) {
      const pc = new RTCPeerConnection({ iceServers: [] });
      pcs[id] = pc;
      pc.ontrack = (e) => {
        const el = document.createElement(e.track.kind);
        el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([e.track]);
        document.body.appendChild(el);
      };
      await pc.setRemoteDescription({ type: 'offer', sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      return pc.localDescription.sdp;
    }
    async function setAnswer(id, sdp) { await pcs[id].setRemoteDescription({ type: 'answer', sdp }); }
    async function addCandidate(id, c) { await pcs[id].addIceCandidate(c); }
    async function inbound(id) {
      const out = { framesDecoded: 0, frameWidth: 0, totalSamplesReceived: 0 };
      (await pcs[id].getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') { out.framesDecoded += s.framesDecoded || 0; out.frameWidth = s.frameWidth || 0; }
        if (s.kind === 'audio') out.totalSamplesReceived += s.totalSamplesReceived || 0;
      });
      return out;
    }
  `;
  type Inbound = { framesDecoded: number; frameWidth: number; totalSamplesReceived: number };
  const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> => page.evaluate(`${fn}(...${JSON.stringify(args)})`) as Promise<T>;

  let server: Server;
  let origin: string;
  let browser: Browser;

  before(async () => {
    server = createServer((_req, res) => res.end('<!doctype html><title>atrium track seam test</title><body></body>'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  async function newPage(): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(origin);
    await page.evaluate(PAGE_SCRIPT);
    return page;
  }

  const engines: [string, () => { engine: MediaEngine; placements: [string, string]; stop: () => Promise<void> }][] = [
    [
      'werift engine (one thread)',
      () => {
        const engine = createWeriftEngine({ additionalHostAddresses: ['127.0.0.1'] });
        return { engine, placements: ['a', 'a'], stop: async () => engine.close() };
      },
    ],
    [
      'threaded engine (publisher and source on two workers)',
      () => {
        const engine = createThreadedEngine({ workers: 2, engine: { additionalHostAddresses: ['127.0.0.1'] } });
        return { engine, placements: ['group-a', 'group-b'], stop: () => engine.shutdown() };
      },
    ],
  ];

  const native = loadNativeAddon();
  const nativeSkip = native.ok ? false : `the native packet plane is not available: ${(native as { reason: string }).reason}`;
  engines.push(
    [
      'native engine (this process)',
      () => {
        const engine = createNativeEngine({ additionalHostAddresses: ['127.0.0.1'] });
        return { engine, placements: ['a', 'a'], stop: async () => engine.close() };
      },
    ],
    [
      'native engine in worker processes (publisher and source on two workers)',
      () => {
        const engine = createThreadedEngine({ workers: 2, kind: 'native', engine: { additionalHostAddresses: ['127.0.0.1'] } });
        return { engine, placements: ['group-a', 'group-b'], stop: () => engine.shutdown() };
      },
    ],
  );

  for (const [name, make] of engines) {
    describe(name, { skip: name.startsWith('native') ? nativeSkip : false }, () => {
      test('taps read a publisher; a source stream fed from them plays at a subscriber; detach and close end them', async () => {
        const { engine, placements, stop } = make();
        try {
          const a = await newPage();
          const b = await newPage();
          const up = engine.createUpStream({ id: 'pub', label: 'camera', iceServers: [], placement: placements[0] });
          up.on('candidate', (c) => void call(a, 'addCandidate', 'pub', c).catch(() => {}));
          await call(a, 'setAnswer', 'pub', await up.answer(await call<string>(a, 'publish', 'pub')));
          await until('the publisher to connect', async () => up.state === 'connected');
          const tracks = up.tracks;
          assert.deepEqual(tracks.map((t) => t.kind).sort(), ['audio', 'video']);
          for (const t of tracks) assert.ok(t.parameters && t.parameters.clockRate > 0, `codec parameters of ${t.kind}: ${JSON.stringify(t.parameters)}`);

          const source = engine.createSourceStream({
            id: 'pipe',
            label: 'camera',
            placement: placements[1],
            tracks: tracks.map((t) => ({ id: t.id, kind: t.kind, codec: t.parameters! })),
          });
          if ('workerOf' in engine) {
            const e = engine as ReturnType<typeof createThreadedEngine>;
            assert.notEqual(e.workerOf(up), e.workerOf(source.up), 'publisher and source on different workers');
          }
          const seen = new Map<string, { packets: number; keyframes: number; reports: number; batches: number; ends: string[] }>();
          const taps: TrackTap[] = [];
          for (const t of tracks) {
            const s = { packets: 0, keyframes: 0, reports: 0, batches: 0, ends: [] as string[] };
            seen.set(t.kind, s);
            taps.push(
              t.attach({
                packets(batch: PacketBatch) {
                  s.batches++;
                  s.packets += batch.packets.length;
                  s.reports += batch.senderReports.length;
                  for (const p of batch.packets) if (p.keyframe) s.keyframes++;
                  source.write(
                    t.id,
                    batch.packets.map((p) => ({ layer: p.layer, sequenceNumber: p.sequenceNumber, timestamp: p.timestamp, marker: p.marker, payload: p.payload })),
                  );
                },
                end: (reason) => s.ends.push(reason),
              }),
            );
          }
          const keyframeAsks: string[] = [];
          source.on('keyframe', (track, layer) => {
            keyframeAsks.push(`${track}/${layer}`);
            for (const tap of taps) if (tap.track.id === track) tap.requestKeyframe(layer);
          });

          const down = engine.createDownStream({ id: 'sub', source: source.up, request: { audio: true, video: 'high' }, iceServers: [] });
          down.on('candidate', (c) => void call(b, 'addCandidate', 'sub', c).catch(() => {}));
          await down.setAnswer(await call<string>(b, 'answerOffer', 'sub', await down.offer()));
          const first = await until('frames and sound at the subscriber of the source stream', async () => {
            const s = await call<Inbound>(b, 'inbound', 'sub');
            return s.framesDecoded > 0 && s.totalSamplesReceived > 0 ? s : undefined;
          });
          await until('more frames', async () => (await call<Inbound>(b, 'inbound', 'sub')).framesDecoded > first.framesDecoded + 20);
          assert.ok(first.frameWidth >= 320, `frame width ${first.frameWidth}`);

          const video = seen.get('video')!;
          const audio = seen.get('audio')!;
          assert.ok(video.keyframes > 0, 'a keyframe start was flagged');
          assert.equal(audio.keyframes, 0, 'audio packets are never keyframes');
          assert.ok(video.batches < video.packets, `packets come in batches (${video.packets} packets in ${video.batches} batches)`);
          assert.ok(keyframeAsks.length > 0, "the subscriber's keyframe request reached the source's writer");
          await until('sender reports of both tracks', async () => video.reports > 0 && audio.reports > 0);
          const sourceStats = await source.up.stats();
          assert.ok(
            sourceStats.tracks.every((t) => t.packets > 0),
            `the source counts what it forwards: ${JSON.stringify(sourceStats.tracks)}`,
          );

          // Detaching one tap ends its sink at once; closing the publisher ends the other.
          const audioTap = taps.find((t) => t.track.kind === 'audio')!;
          audioTap.detach();
          audioTap.detach();
          assert.deepEqual(audio.ends, ['detached']);
          const before = audio.packets;
          up.close();
          await until('the video tap to end with its track', async () => video.ends.length > 0);
          assert.deepEqual(video.ends, ['ended']);
          assert.equal(audio.packets, before, 'nothing reaches a detached sink');
          assert.throws(() => tracks[0]!.attach({ packets() {}, end() {} }), /ended/);

          // Closing the source closes the down-stream made from it.
          const closed = new Promise<void>((r) => down.on('close', r));
          source.close();
          await closed;
          assert.ok(down.closed && source.closed && source.up.closed);
          assert.equal(source.write(tracks[0]!.id, []), false, 'a closed source takes nothing');
        } finally {
          await stop();
        }
      });
    });
  }

  for (const [name, make] of [
    ['werift', () => createWeriftEngine()],
    ['native', () => createNativeEngine()],
  ] as const)
    test(`a source stream refuses what it cannot carry (${name})`, { skip: name === 'native' ? nativeSkip : false }, async () => {
      const engine = make();
      const opus: CodecParameters = { name: 'opus', mimeType: 'audio/opus', clockRate: 48000, channels: 2 };
      assert.throws(() => engine.createSourceStream({ id: 's', label: 'camera', tracks: [] }), /at least one track/);
      const s = engine.createSourceStream({ id: 's', label: 'camera', tracks: [{ id: '0', kind: 'audio', codec: opus }] });
      assert.throws(() => s.write('9', []), /no track "9"/);
      assert.throws(() => s.write('0', [{ layer: 3, sequenceNumber: 1, timestamp: 1, marker: false, payload: Buffer.alloc(3) }]), /no layer 3/);
      await assert.rejects(s.up.answer('v=0'), /fed by the server/);
      engine.close();
      assert.ok(s.closed);
    });
}
