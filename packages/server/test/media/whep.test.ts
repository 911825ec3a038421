// WHEP playback against a real `atrium serve`: medooze's WHEP client (npm
// whip-whep) plays a Galène-protocol publisher's simulcast stream from a
// Chromium page and keeps decoding when the publisher drops its high layer;
// the page's own plain-fetch client (support/whip-page.js) shows the
// refusals and that a second DELETE finds nothing. Inside a loopback-only
// network namespace.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 110_000 })) {
  const { until } = await import('../support/browser.ts');
  const { httpMediaHarness } = await import('./support/http-media.ts');
  type PlayerStats = import('./support/http-media.ts').PlayerStats;
  let h: Awaited<ReturnType<typeof httpMediaHarness>>;

  before(async () => {
    h = await httpMediaHarness();
  });
  after(async () => {
    await h?.close();
  });

  test("WHEP: a page plays the group's stream and keeps playing when the publisher drops its high layer", async () => {
    const publisher = await h.subscriber('presenter');
    const streamId = await h.call<string>(publisher, 'publish', { label: 'camera', simulcast: true, width: 640, height: 480 });
    await until('the publisher to connect', async () => (await h.call<number>(publisher, 'upConnectedAt', streamId)) > 0);
    const player = await h.page();
    const whep = (headers: Record<string, string>, query = '') =>
      player.evaluate(([url, hd]) => (window as unknown as { whepPlay(...a: unknown[]): Promise<{ status: number; text: string }> }).whepPlay(url, hd), [
        `${h.endpoint('whep')}${query}`,
        headers,
      ] as const);
    const basic = (u: string) => ({ authorization: `Basic ${Buffer.from(u).toString('base64')}` });
    // a wrong password: 401 with a Bearer challenge (a Basic one would open the browser's login dialog over the player)
    assert.equal((await whep(basic('op:wrong'))).status, 401, 'a wrong password');
    const challenge = await fetch(h.endpoint('whep'), { method: 'POST', headers: { ...basic('op:wrong'), 'content-type': 'application/sdp' }, body: 'v=0\r\n' });
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('www-authenticate') ?? '', /^Bearer /);
    assert.equal((await whep(basic('watcher:x'), '?stream=nosuchstream')).status, 404, 'a stream that is not there');

    // medooze's WHEP client, with a token, naming the stream
    await h.loadMedooze(player);
    await player.evaluate(
      async ([url, t]) => {
        const w = window as unknown as { WHEPClient: new () => { view(pc: RTCPeerConnection, url: string, token: string): Promise<void>; stop(): Promise<void> }; whep: unknown; medooze: unknown };
        const pc = new RTCPeerConnection({ iceServers: [] });
        pc.addTransceiver('audio', { direction: 'recvonly' });
        pc.addTransceiver('video', { direction: 'recvonly' });
        const video = document.createElement('video');
        video.autoplay = true;
        video.muted = true;
        document.body.appendChild(video);
        pc.ontrack = (e) => {
          if (!video.srcObject) video.srcObject = new MediaStream();
          (video.srcObject as MediaStream).addTrack(e.track);
        };
        const client = new w.WHEPClient();
        await client.view(pc, url!, t!);
        // whepStats() reads window.whep.pc
        w.whep = { pc };
        w.medooze = client;
      },
      [`${h.endpoint('whep')}?stream=${streamId}`, await h.jwt('watcher', ['message'])],
    );

    const stats = () => player.evaluate(() => (window as unknown as { whepStats(): Promise<PlayerStats> }).whepStats());
    const high = await until(
      'frames of the high layer through WHEP',
      async () => {
        const s = await stats();
        return s.framesDecoded > 10 && s.frameWidth >= 640 && s.totalSamplesReceived > 0 ? s : undefined;
      },
      45_000,
    );
    assert.ok(Object.values(await h.users(publisher)).includes('watcher'), 'the WHEP player is a member of the group');
    assert.equal(await h.metric('atrium_http_media_sessions{protocol="whep"}'), 1);

    await h.call(publisher, 'setLayerActive', streamId, 'h', false);
    const low = await until(
      'the low layer, still playing',
      async () => {
        const s = await stats();
        return s.frameWidth > 0 && s.frameWidth <= 320 && s.framesDecoded > high.framesDecoded + 10 ? s : undefined;
      },
      45_000,
    );
    await until('frames keep coming on the low layer', async () => (await stats()).framesDecoded > low.framesDecoded + 20);

    // medooze's stop() is a DELETE: the player leaves the group
    await player.evaluate(() => (window as unknown as { medooze: { stop(): Promise<void> } }).medooze.stop());
    await until('the WHEP player to leave the group', async () => !Object.values(await h.users(publisher)).includes('watcher'));
    assert.equal(await h.metric('atrium_http_media_sessions{protocol="whep"}'), 0);
    // the page's own client, as the wildcard user: DELETE twice
    const own = await whep(basic('watcher2:x'));
    assert.equal(own.status, 201, own.text);
    const del = () => player.evaluate(() => (window as unknown as { whep: { delete(): Promise<number> } }).whep.delete());
    assert.equal(await del(), 200);
    assert.equal(await del(), 404);
    assert.ok((await h.metric('atrium_http_media_refused_total{protocol="whep",status="401"}')) >= 1);
    await publisher.context().close();
    await player.context().close();
  });
}
