// A stream longer than half the RTP sequence circle: a subscriber keeps
// getting media after the publisher has sent more than 32,768 packets since
// the subscriber's last layer switch, and across the publisher's 16-bit
// sequence wrap. Both media engines forgot to move their switch point (the
// sequence number before which a packet counts as older than the switch), so
// 32,768 packets after a subscriber started everything it was sent compared
// as older and it got nothing more: `npm run soak` showed it as media to every
// steady subscriber stopping in minute 4 (200 packets/s). Here the publisher
// sends 4,000 small packets/s from a sequence number just below 65535, so
// the wrap comes first and the 32,768-packet mark about ten seconds later.
//
// Real `atrium serve` processes (one per engine), libdatachannel peers from
// the SFU bench; inside a loopback-only network namespace like every media
// test. No timings asserted: the test waits for the publisher to have sent
// enough and then asks how far the subscriber's stream reached.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { insideLoopbackNetns } from '../../packages/server/test/media/support/netns.ts';

/** Past half the sequence circle, with room for loss on a loaded machine. */
const SPAN = 40_000;
/** The publisher stops after this many packets whatever the subscriber saw. */
const SEND_AT_MOST = 60_000;

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 240_000 })) {
  const { Publisher, Subscriber, pace } = await import('./peers.ts');
  const { ServerProcess } = await import('./server.ts');
  const { loadNativeAddon } = await import('../../packages/server/src/media/native/addon.ts');
  const native = loadNativeAddon();
  // libdatachannel's threads would keep this process alive after the last test.
  after(async () => (await import('node-datachannel')).default.cleanup());

  const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  };

  for (const engine of ['native', 'js'] as const) {
    const skip = engine === 'native' && !native.ok ? `the native packet plane is not available: ${(native as { reason: string }).reason}` : false;
    test(`${engine} engine: a subscriber keeps receiving past 32,768 packets and across the publisher's sequence wrap`, { skip, timeout: 110_000 }, async () => {
      const server = await ServerProcess.start({ groups: ['long'], mediaEngine: engine });
      const pub = new Publisher({
        target: { kind: 'galene', url: server.wsUrl, group: 'long' },
        name: 'pub',
        rate: 4000,
        packetSize: 200,
        packetsPerFrame: 5,
        keyframeEveryMs: 3000,
        firstSeq: 65_535 - 4000,
      });
      const sub = new Subscriber({ target: { kind: 'galene', url: server.wsUrl, group: 'long' }, name: 'sub', publishers: 1 });
      let stopPacing: (() => void) | undefined;
      try {
        await pub.start();
        stopPacing = pace([pub]);
        await sub.start();
        const down = () => [...sub.downs.values()][0];
        assert.ok(await until(() => (down()?.packets ?? 0) > 0, 30_000), `the subscriber got no media at all (server log: ${server.tail()})`);
        const first = pub.sent;
        // The subscriber's stream reaching SPAN sequence numbers is the point; the cap keeps a broken server from holding the test.
        await until(() => (down()?.expected ?? 0) >= SPAN || pub.sent - first >= SEND_AT_MOST || pub.trackClosed, 90_000);
        const d = down()!;
        assert.equal(pub.trackClosed, false, 'the publisher stayed connected');
        assert.ok(
          d.expected >= SPAN,
          `the subscriber's stream stopped after ${d.expected} sequence numbers (${d.packets} packets) while the publisher sent ${pub.sent - first} more after the subscriber's first packet; it should reach ${SPAN}`,
        );
        // Most of it arrived: loss on a loaded loopback is possible, a stall is not.
        assert.ok(d.packets > d.expected / 2, `only ${d.packets} of ${d.expected} packets arrived`);
        assert.deepEqual([...pub.errors, ...sub.errors], [], 'no error from the server');
      } finally {
        stopPacing?.();
        pub.close();
        sub.close();
        await server.stop();
      }
    });
  }
}
