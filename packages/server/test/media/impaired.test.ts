// Media over impaired links, in real Chromium through the werift engine: a
// simulcast publisher and two subscribers, one of them (or the publisher)
// behind a link that nftables caps or makes lossy (support/impair.ts; this
// kernel has no netem). What is asserted is what a person sees (layer and
// frame width decoded, frame rate, freezes from getStats), as a direction of
// change with generous bounds: the machine is shared and busy. Timings are
// printed, and measured properly by bench/quality.
//
// Skipped, saying why, when nftables is missing or cannot be used.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 200_000 })) {
  const { launchChromium } = await import('../support/browser.ts');
  const { createWeriftEngine } = await import('../../src/media/index.ts');
  const { Impairments, impairmentUnavailable } = await import('./support/impair.ts');
  const { QUALITY_PAGE_SCRIPT, call } = await import('./support/quality-page.ts');
  type Inbound = import('./support/quality-page.ts').Inbound;
  type Outbound = import('./support/quality-page.ts').Outbound;
  type Browser = import('playwright-core').Browser;
  type Page = import('playwright-core').Page;
  type UpStream = import('../../src/media/index.ts').UpStream;
  type DownStream = import('../../src/media/index.ts').DownStream;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const unavailable = impairmentUnavailable();
  /** bench/quality runs this file with longer windows and collects the figures (one JSON line at the end). */
  const BENCH = process.env.ATRIUM_QUALITY_BENCH === '1';
  const LOSS_WINDOW_MS = BENCH ? 20_000 : 10_000;
  /** How long the capped subscriber is watched on the cap, and the subscribers behind a capped publisher. */
  const CAP_WINDOW_MS = BENCH ? 20_000 : 6000;
  const figures: Record<string, unknown> = {};

  async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: T | undefined;
    while (Date.now() < deadline) {
      last = await probe();
      if (ok(last)) return last;
      await sleep(250);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
  }

  describe('media over impaired links (Chromium, nftables)', { skip: unavailable ? `skipped: ${unavailable}` : false }, () => {
    let server: Server;
    let origin: string;
    let browser: Browser;
    let engine: ReturnType<typeof createWeriftEngine>;
    const impair = new Impairments();

    before(async () => {
      server = createServer((_req, res) => res.end('<!doctype html><title>atrium impaired-link test</title><body></body>'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      browser = await launchChromium(['--autoplay-policy=no-user-gesture-required']);
      engine = createWeriftEngine({ additionalHostAddresses: ['127.0.0.1'] });
    });

    after(async () => {
      if (BENCH) console.error(`QUALITY-FIGURES ${JSON.stringify({ ...figures, loadavg: loadavg() })}`);
      impair.close();
      r?.up.close();
      engine?.close();
      await browser?.close();
      server?.close();
    });

    async function newPage(): Promise<Page> {
      const page = await browser.newPage();
      await page.goto(origin);
      await page.evaluate(QUALITY_PAGE_SCRIPT);
      return page;
    }

    async function publish(page: Page, id: string): Promise<UpStream> {
      const up = engine.createUpStream({ id, label: 'camera', iceServers: [], codecs: ['vp8', 'opus'] });
      up.on('candidate', (c) => void call(page, 'addCandidate', id, c).catch(() => {}));
      const answer = await up.answer(await call<string>(page, 'publish', id, 640, 480));
      await call(page, 'setAnswer', id, answer);
      await until(
        `publisher ${id} connected`,
        async () => up.state,
        (s) => s === 'connected',
        30_000,
      );
      return up;
    }

    async function subscribe(page: Page, id: string, source: UpStream): Promise<DownStream> {
      const down = engine.createDownStream({ id, source, request: { audio: true, video: 'high' }, iceServers: [] });
      down.on('candidate', (c) => void call(page, 'addCandidate', id, c).catch(() => {}));
      await down.setAnswer(await call<string>(page, 'answerOffer', id, await down.offer()));
      return down;
    }

    /** Payload bytes the server sent on a down-stream so far (every track, probe padding included). */
    const sentBytes = async (down: DownStream) => (await down.stats()).tracks.reduce((a, t) => a + t.bytes, 0);
    const videoStats = async (down: DownStream) => (await down.stats()).tracks.find((t) => t.kind === 'video');
    const layerOf = async (down: DownStream) => (await down.stats()).tracks.find((t) => t.kind === 'video')?.layer;
    const inbound = (page: Page, id: string) => call<Inbound>(page, 'inbound', id);
    const portOf = (page: Page, id: string) =>
      until(
        `the UDP port of ${id}`,
        () => call<number>(page, 'localPort', id),
        (p) => p > 0,
        15_000,
      );

    /** A publisher and two subscribers, both decoding the high layer. */
    async function room(name: string) {
      const [pub, subA, subB] = [await newPage(), await newPage(), await newPage()];
      const up = await publish(pub, `${name}-up`);
      const a = await subscribe(subA, `${name}-a`, up);
      const b = await subscribe(subB, `${name}-b`, up);
      for (const [page, id] of [
        [subA, `${name}-a`],
        [subB, `${name}-b`],
      ] as const) {
        await until(
          `${id} decoding the high layer`,
          () => inbound(page, id),
          (s) => s.frameWidth >= 640 && s.fps > 5,
          40_000,
        );
      }
      return { pub, subA, subB, up, a, b };
    }

    type Room = Awaited<ReturnType<typeof room>>;
    let r: Room;
    const highLayerRate = async () => (await r.up.stats()).tracks.find((t) => t.kind === 'video')?.layers?.[0]?.bitrate ?? 0;
    /**
     * Waits for the publisher's high layer to be over the caps (Chromium's fake camera encodes to
     * 400-600 kbit/s at 640x480); a machine too busy to encode it cannot show anything.
     */
    const highLayerUp = () =>
      until('the high layer over 400 kbit/s at the server', highLayerRate, (b) => b > 400_000, 45_000).catch((e: Error) => {
        throw new Error(`${e.message}: the publisher's encoder is starved (load average ${loadavg()[0]!.toFixed(1)}); run this test on a quieter machine`);
      });

    // One room for the three scenarios, in this order (the up-link cap last:
    // it changes what every subscriber gets); each starts from a clean link.
    before(async () => {
      if (unavailable) return;
      r = await room('imp');
    });

    test('5 % and 10 % random loss both ways on one subscriber: it keeps its frame rate with few freezes, the other is unaffected', async () => {
      const port = await portOf(r.subA, 'imp-a');
      /** Frame rate and freezes of both subscribers over `ms`. */
      const windowOf = async (ms: number) => {
        const [a0, b0, s0] = [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b'), await videoStats(r.a)];
        // the layer A is sent, sampled: a loss-driven down-switch costs a keyframe and a freeze
        const layers = new Set<string>();
        let switches = 0;
        let last = await layerOf(r.a);
        const end = Date.now() + ms;
        while (Date.now() < end) {
          await sleep(250);
          const l = await layerOf(r.a);
          if (l !== last) switches++;
          last = l;
          if (l) layers.add(l);
        }
        const [a1, b1, s1] = [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b'), await videoStats(r.a)];
        return {
          fpsA: ((a1.framesDecoded - a0.framesDecoded) * 1000) / ms,
          fpsB: ((b1.framesDecoded - b0.framesDecoded) * 1000) / ms,
          freezesA: a1.freezeCount - a0.freezeCount,
          frozenA: a1.totalFreezesDuration - a0.totalFreezesDuration,
          frozenB: b1.totalFreezesDuration - b0.totalFreezesDuration,
          nacksA: a1.nackCount - a0.nackCount,
          /** Packets the browser received on the RTX stream (its retransmittedPacketsReceived). */
          rtxA: a1.retransmitted - a0.retransmitted,
          widthA: a1.frameWidth,
          /** What the browser lost (its packetsLost, before retransmissions), and what it did about it. */
          lostA: a1.packetsLost - a0.packetsLost,
          droppedA: a1.framesDropped - a0.framesDropped,
          plisA: a1.pliCount - a0.pliCount + a1.firCount - a0.firCount,
          jitterMsA: (1000 * (a1.jitterBufferDelay - a0.jitterBufferDelay)) / Math.max(1, a1.jitterBufferEmittedCount - a0.jitterBufferEmittedCount),
          /** The server's side: NACKed packets it heard of, resent, and keyframe requests it got. */
          serverNacked: (s1?.nacks ?? 0) - (s0?.nacks ?? 0),
          serverResent: (s1?.retransmitted ?? 0) - (s0?.retransmitted ?? 0),
          serverKeyframeRequests: (s1?.keyframeRequests ?? 0) - (s0?.keyframeRequests ?? 0),
          /** Second copies of those answers (the link loses ≥ 4 %: down-stream.ts onNack). */
          serverRedundant: (s1?.retransmittedRedundant ?? 0) - (s0?.retransmittedRedundant ?? 0),
          layers: [...layers],
          switches,
        };
      };
      const clean = await windowOf(5000);
      const lines = [`clean: A ${clean.fpsA.toFixed(1)} fps, B ${clean.fpsB.toFixed(1)} fps`];
      try {
        for (const loss of [5, 10]) {
          impair.set('loss_a', [
            { port, direction: 'to', lossPercent: loss },
            { port, direction: 'from', lossPercent: loss },
          ]);
          await sleep(1000);
          const w = await windowOf(LOSS_WINDOW_MS);
          const dropped = impair.dropped('loss_a');
          figures[`loss${loss}`] = { ...w, cleanFpsA: clean.fpsA, cleanFpsB: clean.fpsB, windowS: LOSS_WINDOW_MS / 1000, dropped };
          lines.push(
            `${loss} % loss: A ${w.fpsA.toFixed(1)} fps (${((100 * w.fpsA) / Math.max(1, w.fpsB)).toFixed(0)} % of B), ${w.freezesA} freezes ${w.frozenA.toFixed(2)} s frozen in ${LOSS_WINDOW_MS / 1000} s, ${w.nacksA} NACKs, ${w.rtxA} RTX packets received, ${w.widthA} px; lost before retransmission ${w.lostA} packets, ${w.droppedA} frames dropped, ${w.plisA} PLI/FIR, jitter buffer ${w.jitterMsA.toFixed(0)} ms; server: ${w.serverNacked} NACKed, ${w.serverResent} resent (${w.serverRedundant} second copies), ${w.serverKeyframeRequests} keyframe requests, layers ${w.layers.join('/')} (${w.switches} switches); B ${w.fpsB.toFixed(1)} fps ${w.frozenB.toFixed(2)} s frozen; ${dropped} packets dropped`,
          );
          assert.ok(dropped > 0, 'the loss rules dropped packets');
          // the NACKs were answered on the RTX stream (RFC 4588), which the browser counts apart
          assert.ok(w.rtxA > 0, `${loss} % loss: the subscriber received retransmissions on its RTX stream (${w.nacksA} NACKs sent)`);
          // at 10 % the receiver reports say the link is lossy: NACK answers go twice
          if (loss === 10) assert.ok(w.serverRedundant > 0, `10 % loss: second copies of retransmissions were sent (${w.serverResent} resent)`);
          // against the clean subscriber in the same window: the machine's load hits both alike. The issue asks
          // for 90 % (bench/quality measures 93-101 %); 85 % leaves a busy machine's noise some room
          assert.ok(w.fpsA >= 0.85 * w.fpsB, `${loss} % loss: A decodes ${w.fpsA.toFixed(1)} fps, B ${w.fpsB.toFixed(1)} fps`);
          // frozen time the loss added, beyond what the clean subscriber saw (a busy publisher freezes both):
          // the bound, at most 1 s in 20 s
          assert.ok(w.frozenA - w.frozenB <= LOSS_WINDOW_MS / 20_000, `${loss} % loss: A frozen ${w.frozenA.toFixed(2)} s in ${LOSS_WINDOW_MS / 1000} s, B ${w.frozenB.toFixed(2)} s`);
          // and without a layer switch: random loss is not congestion (each switch waits for a keyframe)
          assert.ok(w.layers.length === 1 && w.layers[0] === 'h', `${loss} % loss: A stayed on the high layer (${w.layers.join('/')}, ${w.switches} switches)`);
          assert.ok(w.fpsB >= 0.6 * clean.fpsB, `the clean subscriber keeps its rate: ${w.fpsB.toFixed(1)} fps (clean ${clean.fpsB.toFixed(1)})`);
        }
      } finally {
        console.error(lines.join('\n'));
        impair.clear('loss_a');
      }
    });

    // nft's byte limiter holds a whole second of its rate: a probe's first half passes whole, so probes
    // are judged on their own packets' fates, late half included (quality/downlink.ts).
    test('a 300 kbit/s cap on one subscriber moves it to the low layer, the other stays high; lifted, it returns to high', async () => {
      // the cap must be well under the high layer, which a busy machine's encoder may not reach
      await highLayerUp();
      await until(
        'both subscribers on the high layer',
        async () => [await layerOf(r.a), await layerOf(r.b)],
        (l) => l[0] === 'h' && l[1] === 'h',
        30_000,
      );
      const port = await portOf(r.subA, 'imp-a');
      const capped = Date.now();
      impair.set('cap_a', [{ port, direction: 'to', rateKbit: 300 }]);
      let otherLeftHigh = 0;
      try {
        await until(
          'the capped subscriber on the low layer',
          async () => {
            if ((await layerOf(r.b)) !== 'h') otherLeftHigh++;
            return layerOf(r.a);
          },
          (l) => l === 'l',
          30_000,
        );
        const downMs = Date.now() - capped;
        const low = await until(
          'low-layer frames at the capped subscriber',
          () => inbound(r.subA, 'imp-a'),
          (s) => s.frameWidth > 0 && s.frameWidth <= 160 && s.fps > 3,
          20_000,
        );
        // a few seconds on the cap (bench: 20 s): probes upwards must fail and keep it low
        const [a0, b0, sent0] = [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b'), await sentBytes(r.a)];
        await sleep(CAP_WINDOW_MS);
        const [a1, b1, sent1] = [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b'), await sentBytes(r.a)];
        const aStats = await r.a.stats();
        const onCap = {
          windowS: CAP_WINDOW_MS / 1000,
          fpsA: ((a1.framesDecoded - a0.framesDecoded) * 1000) / CAP_WINDOW_MS,
          fpsB: ((b1.framesDecoded - b0.framesDecoded) * 1000) / CAP_WINDOW_MS,
          freezesA: a1.freezeCount - a0.freezeCount,
          frozenA: a1.totalFreezesDuration - a0.totalFreezesDuration,
          /** What the server sent A (audio + video + probes, payload bytes) and what A's browser received (video payload), kbit/s. */
          sentKbps: ((sent1 - sent0) * 8) / CAP_WINDOW_MS,
          receivedKbps: ((a1.bytes - a0.bytes) * 8) / CAP_WINDOW_MS,
        };
        assert.equal(await layerOf(r.a), 'l', 'the capped subscriber stayed on the low layer');
        assert.ok(a1.framesDecoded > low.framesDecoded, 'the capped subscriber keeps decoding');
        assert.equal(await layerOf(r.b), 'h', 'the other subscriber is on the high layer');
        assert.ok(b1.frameWidth >= 640 && b1.framesDecoded > b0.framesDecoded, `the other subscriber decodes 640 px (width ${b1.frameWidth})`);
        const est = aStats.availableBitrate ?? 0;
        assert.ok(est > 0 && est < 600_000, `the capped subscriber's estimate is near the cap: ${est} bit/s`);
        impair.clear('cap_a');
        const lifted = Date.now();
        await until(
          'the subscriber back on the high layer',
          () => layerOf(r.a),
          (l) => l === 'h',
          40_000,
        );
        const upMs = Date.now() - lifted;
        const high = await until(
          'high-layer frames again',
          () => inbound(r.subA, 'imp-a'),
          (s) => s.frameWidth >= 640 && s.framesDecoded > a1.framesDecoded,
          30_000,
        );
        const probes = (await r.a.stats()).probes;
        figures.cap = { downMs, upMs, estimateUnderCap: est, capBps: 300_000, probes, otherLeftHigh, onCap };
        console.error(
          `300 kbit/s cap: low layer after ${downMs} ms (estimate ${est} bit/s), back to high ${upMs} ms after the cap was lifted (${high.frameWidth}px); probes ${JSON.stringify(probes)}; the other subscriber left the high layer in ${otherLeftHigh} samples`,
        );
        assert.ok((probes?.failed ?? 0) >= 1 && (probes?.succeeded ?? 0) >= 1, `probes failed under the cap and one succeeded once lifted: ${JSON.stringify(probes)}`);
      } finally {
        impair.clear('cap_a');
      }
    });

    test("10 % loss on the publisher's up-link: the server NACKs, Chromium resends on its RTX stream, subscribers keep decoding", async () => {
      const port = await portOf(r.pub, 'imp-up');
      const out = () => call<Outbound>(r.pub, 'outbound', 'imp-up');
      const resent = (o: Outbound) => Object.values(o.layers).reduce((a, l) => a + l.retransmittedPacketsSent, 0);
      const upVideo = async () => (await r.up.stats()).tracks.find((t) => t.kind === 'video');
      const [o0, u0, a0, b0] = [await out(), await upVideo(), await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b')];
      impair.set('upl_loss', [{ port, direction: 'from', lossPercent: 10 }]);
      const lossFrom = Date.now();
      try {
        // what the publisher's browser reports: packets retransmitted (on RTX, as negotiated)
        let o1 = await until('the publisher retransmitting', out, (o) => resent(o) > resent(o0) + 10, 20_000);
        let u1 = await until('the server recovering packets from the RTX stream', upVideo, (t) => (t?.rtxRecovered ?? 0) > (u0?.rtxRecovered ?? 0) + 10, 20_000);
        const [a1, b1] = await until(
          'frames decoded by both subscribers',
          async () => [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b')],
          ([a, b]) => a.framesDecoded > a0.framesDecoded + 30 && b.framesDecoded > b0.framesDecoded + 30,
          20_000,
        );
        if (BENCH) {
          // the bench: counts over a whole window from the loss's start
          await sleep(Math.max(0, CAP_WINDOW_MS - (Date.now() - lossFrom)));
          [o1, u1] = [await out(), await upVideo()];
        }
        const dropped = impair.dropped('upl_loss');
        figures.uplinkLoss = {
          windowS: BENCH ? CAP_WINDOW_MS / 1000 : undefined,
          resentByBrowser: resent(o1) - resent(o0),
          nackedByServer: (u1?.nacks ?? 0) - (u0?.nacks ?? 0),
          rtxRecovered: (u1?.rtxRecovered ?? 0) - (u0?.rtxRecovered ?? 0),
          rtxUnneeded: (u1?.rtxUnneeded ?? 0) - (u0?.rtxUnneeded ?? 0),
          dropped,
        };
        console.error(
          `10 % up-link loss: the publisher resent ${resent(o1) - resent(o0)} packets, the server NACKed ${(u1?.nacks ?? 0) - (u0?.nacks ?? 0)} and recovered ${(u1?.rtxRecovered ?? 0) - (u0?.rtxRecovered ?? 0)} from RTX ` +
            `(${(u1?.rtxUnneeded ?? 0) - (u0?.rtxUnneeded ?? 0)} RTX packets repaired nothing); ${dropped} packets dropped; subscribers ${a1.frameWidth} and ${b1.frameWidth} px`,
        );
        assert.ok(dropped > 0, 'the loss rule dropped packets');
      } finally {
        impair.clear('upl_loss');
      }
    });

    test("a 400 kbit/s cap on the publisher's up-link: the browser drops its high layer (our feedback reaches it), subscribers keep decoding", async () => {
      const port = await portOf(r.pub, 'imp-up');
      const out = () => call<Outbound>(r.pub, 'outbound', 'imp-up');
      /** kbit/s the publisher's high layer sends, over `ms`. */
      const highRate = async (ms: number) => {
        const a = await out();
        await sleep(ms);
        const b = await out();
        return (((b.layers.h?.bytesSent ?? 0) - (a.layers.h?.bytesSent ?? 0)) * 8) / ms;
      };
      await highLayerUp();
      const before = await highRate(2000);
      const capped = Date.now();
      impair.set('upl', [{ port, direction: 'from', rateKbit: 400 }]);
      try {
        // what the browser reports: its high layer all but stops, limited by bandwidth
        const dropped = await until(
          "the publisher's high layer dropped",
          () => highRate(2000),
          (k) => k < Math.min(150, before / 3),
          40_000,
        );
        const dropMs = Date.now() - capped;
        const pub = await out();
        // and what the subscribers see: frames still decoded, whichever layer they get
        const [a0, b0] = [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b')];
        const [a1, b1] = await until(
          'frames still decoded by both subscribers',
          async () => [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b')],
          ([a, b]) => a.framesDecoded > a0.framesDecoded + 30 && b.framesDecoded > b0.framesDecoded + 30,
          20_000,
        );
        const layers = [await layerOf(r.a), await layerOf(r.b)];
        if (BENCH) {
          // what the subscribers see behind the capped publisher, over a whole window
          const [a2, b2, up0] = [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b'), await out()];
          await sleep(CAP_WINDOW_MS);
          const [a3, b3, up1] = [await inbound(r.subA, 'imp-a'), await inbound(r.subB, 'imp-b'), await out()];
          const sent = (o: Outbound) => Object.values(o.layers).reduce((x, l) => x + l.bytesSent, 0);
          figures.uplinkWindow = {
            windowS: CAP_WINDOW_MS / 1000,
            fpsA: ((a3.framesDecoded - a2.framesDecoded) * 1000) / CAP_WINDOW_MS,
            fpsB: ((b3.framesDecoded - b2.framesDecoded) * 1000) / CAP_WINDOW_MS,
            freezes: a3.freezeCount - a2.freezeCount + b3.freezeCount - b2.freezeCount,
            frozen: a3.totalFreezesDuration - a2.totalFreezesDuration + b3.totalFreezesDuration - b2.totalFreezesDuration,
            widths: [a3.frameWidth, b3.frameWidth],
            /** Video payload the publisher sent (both layers), kbit/s. */
            sentKbps: ((sent(up1) - sent(up0)) * 8) / CAP_WINDOW_MS,
          };
        }
        figures.uplink = { beforeKbps: before, afterKbps: dropped, dropMs, publisherEstimate: pub.availableOutgoingBitrate, reason: pub.layers.h?.reason, layers, capBps: 400_000 };
        console.error(
          `400 kbit/s up-link cap: the high layer went from ${before.toFixed(0)} to ${dropped.toFixed(0)} kbit/s after ${dropMs} ms (publisher's estimate ${Math.round(pub.availableOutgoingBitrate / 1000)} kbit/s, ` +
            `limited by ${pub.layers.h?.reason}); the subscribers decode ${a1.frameWidth} and ${b1.frameWidth} px on layers ${layers.join(', ')}`,
        );
        assert.ok(pub.availableOutgoingBitrate > 0 && pub.availableOutgoingBitrate < 800_000, `the publisher's estimate follows the cap: ${pub.availableOutgoingBitrate}`);
      } finally {
        impair.clear('upl');
      }
    });
  });
}
