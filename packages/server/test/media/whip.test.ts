// WHIP ingest (RFC 9725) against a real `atrium serve`: a WHIP client someone
// else wrote (npm whip-whep, medooze's, by an author of the RFC: trickle ICE
// through PATCH) publishes with a stateful token, and a page speaking plain
// WHIP over fetch (support/whip-page.js) publishes simulcast with a JWT and
// restarts ICE; a Galène-protocol subscriber in Chromium decodes both. The
// status codes of the refusals (bad tokens, ETag mismatch, a second DELETE)
// are checked on the way. Inside a loopback-only network namespace.
// Debian 12 has no WHIP publisher that runs: its GStreamer (1.22) has no
// whipsink (that is gst-plugins-rs, not packaged), and its simple-whip-client
// links libsoup 2 while webrtcbin pulls libsoup 3 in through libnice and
// gupnp-igd, so libsoup aborts at start ("libsoup2 symbols detected").
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 110_000 })) {
  const { until } = await import('../support/browser.ts');
  const { httpMediaHarness } = await import('./support/http-media.ts');
  let h: Awaited<ReturnType<typeof httpMediaHarness>>;

  before(async () => {
    h = await httpMediaHarness();
  });
  after(async () => {
    await h?.close();
  });

  test("a WHIP client someone else wrote (medooze's whip-whep) publishes with a stateful token and trickle ICE; a Galène subscriber decodes it", async () => {
    const r = await fetch(`${h.server.url}/galene-api/v0/.groups/live/.tokens/`, {
      method: 'POST',
      headers: { ...h.admin, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'obs', permissions: ['present'], expires: new Date(Date.now() + 3600e3).toISOString() }),
    });
    assert.equal(r.status, 201, await r.text());
    const token = decodeURIComponent(r.headers.get('location')!.split('/').pop()!);
    const viewer = await h.subscriber('viewer1');
    const pub = await h.page();
    await h.loadMedooze(pub);
    await pub.evaluate(
      async ([url, t]) => {
        const w = window as unknown as { WHIPClient: new () => { publish(pc: RTCPeerConnection, url: string, token: string): Promise<void> }; medooze: unknown };
        const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
        const pc = new RTCPeerConnection({ iceServers: [] });
        for (const track of media.getTracks()) pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
        const client = new w.WHIPClient();
        w.medooze = client;
        await client.publish(pc, url!, t!);
      },
      [h.endpoint('whip'), token],
    );
    await until('the WHIP publisher in the user list', async () => Object.values(await h.users(viewer)).includes('obs'), 30_000);
    const d = await h.decodes(viewer, 'obs');
    assert.ok((d.frameWidth ?? 0) >= 320, `frame width ${d.frameWidth}`);
    assert.ok((d.totalSamplesReceived ?? 0) > 0, 'and its sound');
    assert.equal(await h.metric('atrium_http_media_sessions{protocol="whip"}'), 1);
    // its stop() is a DELETE: the publisher leaves the group
    await pub.evaluate(() => (window as unknown as { medooze: { stop(): Promise<void> } }).medooze.stop());
    await until('the WHIP publisher to leave', async () => !Object.values(await h.users(viewer)).includes('obs'), 20_000);
    assert.equal(await h.metric('atrium_http_media_sessions{protocol="whip"}'), 0);
    await viewer.context().close();
    await pub.context().close();
  });

  test('plain WHIP from a page: simulcast with a JWT, refusals with the right status codes, trickle and ICE restart, DELETE', async () => {
    const viewer = await h.subscriber('viewer2');
    const pub = await h.page();
    type Result = { status: number; text: string; etag?: string };
    const whip = (headers: Record<string, string>, opts = {}) =>
      pub.evaluate(([url, hd, o]) => (window as unknown as { whipPublish(...a: unknown[]): Promise<Result> }).whipPublish(url, hd, o), [h.endpoint('whip'), headers, opts] as const);

    // refusals: no token, a bad token, a token for another server, a token without present, not SDP, no such group
    assert.equal((await whip({})).status, 401);
    const bad = await whip({ authorization: 'Bearer not-a-token' });
    assert.equal(bad.status, 401, bad.text);
    const elsewhere = await whip({ authorization: `Bearer ${await h.jwt('cam', ['present'], 'https://elsewhere.example/group/live/')}` });
    assert.equal(elsewhere.status, 401, elsewhere.text);
    const watcher = await whip({ authorization: `Bearer ${await h.jwt('cam', ['message'])}` });
    assert.equal(watcher.status, 403, watcher.text);
    assert.match(watcher.text, /"present"/);
    const token = await h.jwt('cam', ['present']);
    const notSdp = await fetch(h.endpoint('whip'), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(notSdp.status, 415);
    assert.equal(notSdp.headers.get('accept'), 'application/sdp');
    const nosuch = await fetch(`${h.server.url}/group/nosuch/.whip`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/sdp' }, body: 'v=0\r\n' });
    assert.equal(nosuch.status, 404);
    const options = await fetch(h.endpoint('whip'), { method: 'OPTIONS' });
    assert.equal(options.status, 204);
    assert.match(options.headers.get('allow') ?? '', /POST/);

    const started = await whip({ authorization: `Bearer ${token}` }, { simulcast: true });
    assert.equal(started.status, 201, started.text);
    assert.match(started.etag ?? '', /^".+"$/);
    const first = await h.decodes(viewer, 'cam');
    assert.ok((first.frameWidth ?? 0) >= 320, `the high layer: ${first.frameWidth}`);
    const { location, etag } = await pub.evaluate(() => (window as unknown as { whip: { location: string; etag: string } }).whip);
    assert.ok(location.startsWith(`${h.endpoint('whip')}/`), location);

    const patch = (body: string, ifMatch: string | undefined, auth = `Bearer ${token}`) =>
      fetch(location, { method: 'PATCH', headers: { authorization: auth, 'content-type': 'application/trickle-ice-sdpfrag', ...(ifMatch ? { 'if-match': ifMatch } : {}) }, body });
    const candidate = 'm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n';
    assert.equal((await patch(candidate, '"not-the-etag"')).status, 412, 'an ETag that does not match');
    assert.equal((await patch(candidate, etag, 'Bearer someone-else')).status, 403, 'other credentials');
    assert.equal((await patch(candidate, etag)).status, 204, 'a trickled candidate');
    assert.equal((await fetch(location, { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'x' })).status, 415);
    assert.equal((await patch('this is not sdp', etag)).status, 400);

    // ICE restart: new credentials through PATCH with If-Match: *; the page then uses them, and media flows on
    type Ice = { offered: string; answered: string; local?: string; remote?: string };
    const ice = () => pub.evaluate(() => (window as unknown as { whipIce(): Promise<Ice> }).whipIce());
    const old = await ice();
    assert.equal(old.local, old.offered, "the selected pair uses the offer's credentials");
    const restart = await pub.evaluate(() => (window as unknown as { whip: { restartIce(): Promise<Result> } }).whip.restartIce());
    assert.equal(restart.status, 200, restart.text);
    assert.notEqual(restart.etag, etag, 'a new entity tag');
    assert.match(restart.text, /^a=ice-ufrag:/m);
    assert.match(restart.text, /^a=candidate:/m, "the server's candidates");
    const now = await ice();
    assert.notEqual(now.offered, old.offered, 'the page offered new credentials');
    assert.notEqual(now.answered, old.answered, 'and the server answered with new ones');
    await until('the selected candidate pair to use the new credentials', async () => {
      const i = await ice();
      return i.local === now.offered && i.remote === now.answered;
    });
    const before = (await h.downs(viewer)).find((d) => d.id === first.id)!;
    await until('frames after the ICE restart', async () => ((await h.downs(viewer)).find((d) => d.id === first.id)?.framesDecoded ?? 0) > (before.framesDecoded ?? 0) + 20);
    assert.equal((await patch(candidate, etag)).status, 412, 'the old ETag is stale after a restart');

    // DELETE: the old ETag is refused, then it ends; a second DELETE finds nothing
    const del = (ifMatch?: string) => pub.evaluate((m) => (window as unknown as { whip: { delete(m?: string): Promise<number> } }).whip.delete(m), ifMatch);
    assert.equal(await del(etag), 412);
    assert.equal(await del(), 200);
    assert.equal(await del(), 404);
    assert.equal((await patch(candidate, restart.etag)).status, 404);
    await until('the stream to close at the viewer', async () => (await h.downs(viewer)).find((d) => d.id === first.id)?.closed);
    await until('the WHIP user to leave', async () => !Object.values(await h.users(viewer)).includes('cam'));
    assert.ok((await h.metric('atrium_http_media_refused_total{protocol="whip",status="401"}')) >= 3);
    await viewer.context().close();
    await pub.context().close();
  });
}
