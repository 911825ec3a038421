// The Colibri-style bridge channel, in Chromium inside a loopback-only
// network namespace: the Jingle page (strophe.js + RTCPeerConnection) opens
// the channel whose URL the focus's offer carries, as Jitsi's client does;
// it gets ServerHello, learns the dominant speaker (the Galène publisher,
// whose fake microphone beeps), sends ReceiverVideoConstraints that switch
// the simulcast layer it decodes (the frame size it sees drops, then comes
// back), and exchanges EndpointMessages with a Galène-protocol member.
// Bad messages are answered with an error and leave the channel open; a
// wrong pwd is refused.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

const GALENE_JS = join(dirname(fileURLToPath(import.meta.url)), '..', 'media', 'support', 'galene-browser-client.js');

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 300_000 })) {
  const { default: WebSocket } = await import('ws');
  const { serverMessageSchemas } = await import('@atrium/protocol/colibri');
  const { launchChromium, until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  const { GaleneTestClient } = await import('../support/galene-client.ts');
  const { openPage } = await import('./support/pages.ts');
  type Browser = import('playwright-core').Browser;
  type JingleStat = Awaited<ReturnType<import('./support/jingle-harness.ts').JingleClient['stats']>>[number];
  type Bridge = { url: string | undefined; messages: { colibriClass: string; [k: string]: unknown }[]; close: { code: number; reason: string } | undefined; errors: string[] };

  let browser: Browser;
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer({
      groups: { media: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
      args: ['--media-address', '127.0.0.1', ...(process.env.XMPP_DEBUG ? ['--log-level', 'debug'] : [])],
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the bridge channel: hello, dominant speaker, constraints that choose the layer, endpoint messages across dialects', async () => {
    // A Galène page publishes a simulcast camera (640x480 and 160x120) with its fake microphone.
    const galene = await (await browser.newContext()).newPage();
    await galene.goto(`${server.url}/group/media/`);
    await galene.addScriptTag({ path: GALENE_JS });
    await galene.evaluate(
      async ([ws]) => {
        const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown>; publish(o: unknown): Promise<unknown> }; TestGaleneClient: new () => unknown };
        w.tc = new w.TestGaleneClient() as typeof w.tc;
        await w.tc.connect(ws!, 'media', 'gal', 'x');
        await w.tc.publish({ label: 'camera', simulcast: true });
      },
      [server.wsUrl],
    );
    // A Galène-protocol member in Node, for endpoint messages.
    const watcher = await GaleneTestClient.connect(server.wsUrl);
    assert.equal((await watcher.join('media', 'watcher')).kind, 'join');

    const xmpp = await openPage(browser, server.url, 'jingle-harness.ts');
    await xmpp.page.evaluate(
      async (service) => {
        const w = window as unknown as { jc: { start(...a: string[]): Promise<void> }; JingleClient: new () => { start(...a: string[]): Promise<void> } };
        w.jc = new w.JingleClient();
        await w.jc.start(service, 'media@conference.localhost', 'jingler');
      },
      `${server.url.replace(/^http/, 'ws')}/xmpp-websocket`,
    );
    const stats = () => xmpp.page.evaluate(() => (window as unknown as { jc: { stats(): Promise<JingleStat[]> } }).jc.stats());
    const bridge = () =>
      xmpp.page.evaluate(() => {
        const jc = (window as unknown as { jc: { bridgeUrl?: string; bridgeMessages: Bridge['messages']; bridgeClose?: Bridge['close']; errors: string[] } }).jc;
        return { url: jc.bridgeUrl, messages: jc.bridgeMessages, close: jc.bridgeClose, errors: jc.errors } as Bridge;
      });
    const send = (msg: unknown) => xmpp.page.evaluate((m) => (window as unknown as { jc: { bridgeSend(x: unknown): void } }).jc.bridgeSend(m), msg);
    const camera = (all: JingleStat[]) => all.find((s) => s.dir === 'down' && s.owner === 'media@conference.localhost/gal' && !s.ended);

    // The offer named the channel; the page opened it and was greeted.
    await until('frames of the Galène camera', async () => {
      const c = camera(await stats());
      return c && c.framesDecoded > 0 ? c : undefined;
    });
    const b = await until('the ServerHello', async () => {
      const x = await bridge();
      return x.messages.some((m) => m.colibriClass === 'ServerHello') ? x : undefined;
    });
    assert.match(b.url ?? '', /^ws:\/\/[^/]+\/colibri-ws\/atrium\/media\/[A-Za-z0-9_-]+\?pwd=[A-Za-z0-9_-]+$/);

    // The Galène publisher is the one making noise: the dominant speaker, by its room nick.
    const speaker = await until('the dominant speaker', async () => (await bridge()).messages.find((m) => m.colibriClass === 'DominantSpeakerEndpointChangeEvent'));
    assert.equal(speaker.dominantSpeakerEndpoint, 'gal');

    // Constraints choose the layer: with no limit the high one, thumbnails (180) the low one, the stage (720) the high one again.
    await until('the high layer (640 wide)', async () => (camera(await stats())?.frameWidth ?? 0) >= 640);
    await send({ colibriClass: 'ReceiverVideoConstraints', defaultConstraints: { maxHeight: 180 } });
    await until('the low layer (160 wide) after asking for 180 pixels', async () => {
      const w = camera(await stats())?.frameWidth ?? 0;
      return w > 0 && w <= 160;
    });
    const forwarded = (await bridge()).messages.filter((m) => m.colibriClass === 'ForwardedSources');
    assert.deepEqual(forwarded.at(-1)?.forwardedSources, ['gal-v0']);
    await send({ colibriClass: 'ReceiverVideoConstraints', constraints: { 'gal-v0': { maxHeight: 720 } } });
    await until('the high layer again after putting gal-v0 on stage', async () => (camera(await stats())?.frameWidth ?? 0) >= 640);
    await send({ colibriClass: 'LastNChangedEvent', lastN: 0 });
    await until('nothing forwarded with lastN 0', async () => {
      const f = (await bridge()).messages.filter((m) => m.colibriClass === 'ForwardedSources').at(-1);
      return (f?.forwardedSources as string[] | undefined)?.length === 0;
    });
    await send({ colibriClass: 'LastNChangedEvent', lastN: -1 });

    // Endpoint messages, through the core: to everyone (the Galène member gets a user message), and back to one endpoint.
    await send({ colibriClass: 'EndpointMessage', to: '', msgPayload: { hello: 'all' } });
    const got = await watcher.next((f) => f.type === 'usermessage' && f.kind === 'endpoint-message', 10_000, 'the endpoint message');
    assert.deepEqual(got.value, { hello: 'all' });
    assert.equal(got.username, 'jingler');
    watcher.send({ type: 'usermessage', source: watcher.id, dest: got.source, kind: 'endpoint-message', value: { hi: 'you' } });
    const back = await until("the Galène member's endpoint message", async () => (await bridge()).messages.find((m) => m.colibriClass === 'EndpointMessage'));
    assert.deepEqual(back, { colibriClass: 'EndpointMessage', from: 'watcher', to: 'jingler', msgPayload: { hi: 'you' } });

    // Bad messages get an error each, and the channel stays.
    await send('this is not JSON');
    await send({ colibriClass: 'ReceiverVideoConstraints', lastN: 'all' });
    await send({ colibriClass: 'EndpointMessage', to: 'nobody', msgPayload: {} });
    await send({ no: 'class' });
    await send({ colibriClass: 'SomethingNewer', x: 1 });
    const errors = await until('four errors', async () => {
      const e = (await bridge()).messages.filter((m) => m.colibriClass === 'Error');
      return e.length >= 4 ? e : undefined;
    });
    assert.deepEqual(
      errors.map((e) => e.error),
      ['bad-json', 'bad-message', 'no-such-user', 'bad-message'],
    );
    assert.match(String(errors[1]!.message), /lastN/);
    assert.match(String(errors[2]!.message), /no endpoint "nobody"/);
    assert.match(String(errors[3]!.message), /colibriClass/);
    await send({ colibriClass: 'EndpointMessage', msgPayload: { still: 'open' } });
    await watcher.next((f) => f.type === 'usermessage' && f.kind === 'endpoint-message' && f.value?.still === 'open', 10_000, 'a message after the errors');

    // Everything the server sent fits its schema.
    for (const m of (await bridge()).messages) {
      const schema = serverMessageSchemas[m.colibriClass as keyof typeof serverMessageSchemas];
      assert.ok(schema?.safeParse(m).success, `unexpected bridge message ${JSON.stringify(m)}`);
    }

    // Another pwd opens nothing.
    const wrong = new WebSocket(b.url!.replace(/pwd=.*/, 'pwd=guess'));
    const refused = await new Promise<{ code: number; reason: string }>((resolve) => wrong.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    assert.equal(refused.code, 1008);
    assert.match(refused.reason, /pwd is wrong/);

    // The occupant leaves the room: its channel is closed.
    await xmpp.page.evaluate(() => {
      const jc = (window as unknown as { jc: { conn: { send(x: Element): void }; room: string } }).jc;
      jc.conn.send(new DOMParser().parseFromString(`<presence xmlns="jabber:client" to="${jc.room}/jingler" type="unavailable"/>`, 'text/xml').documentElement);
    });
    const closed = await until('the channel closed', async () => (await bridge()).close);
    assert.match(closed.reason, /left the room/);
    assert.deepEqual((await bridge()).errors, []);
    assert.deepEqual(xmpp.problems, []);
    watcher.close();
  });
}
