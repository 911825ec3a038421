// Fault: 500 clients join one group within 10 s while a camera is live in
// it. Every one is admitted with no error, the log has no error line, and
// the subscriber that was watching before the storm keeps decoding the
// camera through it. The joiners are Galène protocol clients over real
// sockets; the publisher and the subscriber are Chromium pages with the
// SDK; the server is a real process with its media engine, inside a
// loopback-only network namespace.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { insideLoopbackNetns } from '../media/support/netns.ts';

const JOINERS = 500;
const SECONDS = 10;

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 170_000 })) {
  const { startServer } = await import('../support/server-process.ts');
  const { call, launchChromium, openHarness, sc, until } = await import('../client/support/browser.ts');
  type DownInfo = import('../client/support/harness.ts').DownInfo;
  type Page = import('playwright-core').Page;

  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const sockets: WebSocket[] = [];

  before(async () => {
    server = await startServer({ groups: { crowd: { public: true, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } }, args: ['--media-address', '127.0.0.1'] });
    browser = await launchChromium();
  });
  after(async () => {
    for (const s of sockets) s.terminate();
    await browser?.close();
    await server?.stop();
  });

  const frames = async (p: Page, source: string) => ((await call(p, 'downStats')) as DownInfo[]).filter((d) => d.source === source && !d.closed).reduce((n, d) => n + (d.framesDecoded ?? 0), 0);

  /** One joiner: handshake, join, and a tally of what it got back. */
  function joiner(i: number, tally: { joined: number; errors: string[]; closed: string[] }): void {
    const ws = new WebSocket(server.wsUrl);
    sockets.push(ws);
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'handshake', version: ['2'], id: `storm-${i}` }));
      ws.send(JSON.stringify({ type: 'join', kind: 'join', group: 'crowd', username: `guest ${i}`, password: 'x' }));
    });
    ws.on('message', (d) => {
      const text = d.toString();
      // Presence of the others is most of the traffic: only what concerns us is decoded.
      if (!text.includes('"joined"') && !text.includes('"error"')) return;
      const f = JSON.parse(text) as { type: string; kind?: string; error?: string; value?: unknown };
      if (f.type === 'joined' && f.kind === 'join') tally.joined++;
      else if (f.type === 'joined' && f.kind === 'fail') tally.errors.push(`${i}: join failed: ${f.error} ${String(f.value)}`);
      else if (f.type === 'usermessage' && f.kind === 'error') tally.errors.push(`${i}: ${f.error} ${String(f.value)}`);
    });
    ws.on('close', (code, reason) => tally.closed.push(`${i}: ${code} ${reason.toString()}`));
    ws.on('error', (e) => tally.errors.push(`${i}: socket error ${e.message}`));
  }

  test(`${JOINERS} joins in ${SECONDS} s into a group with a live camera: no error, and the camera keeps playing`, async () => {
    const pub = await openHarness(browser, server.url, 'crowd');
    const sub = await openHarness(browser, server.url, 'crowd');
    await call(pub.page, 'connect', server.wsUrl, 'crowd', 'presenter', 'x');
    await call(sub.page, 'connect', server.wsUrl, 'crowd', 'viewer', 'x');
    await call(sub.page, 'request', { '': ['audio', 'video'] });
    const pubId = await sc<string>(pub.page, 'id');
    await call(pub.page, 'publish', { label: 'camera' });
    await until('frames before the storm', async () => (await frames(sub.page, pubId)) > 30, 45_000);
    const logMark = server.output().length;

    const tally = { joined: 0, errors: [] as string[], closed: [] as string[] };
    const started = performance.now();
    for (let i = 0; i < JOINERS; i++) {
      joiner(i, tally);
      // Evenly over the ten seconds.
      const due = started + ((i + 1) * SECONDS * 1000) / JOINERS;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const sent = (performance.now() - started) / 1000;
    await until(`all ${JOINERS} joined`, async () => tally.joined + tally.errors.length + tally.closed.length >= JOINERS || undefined, 60_000).catch(() => undefined);
    const admitted = (performance.now() - started) / 1000;
    console.log(`join storm: ${JOINERS} joins sent in ${sent.toFixed(1)} s, ${tally.joined} admitted after ${admitted.toFixed(1)} s`);
    assert.deepEqual(tally.errors.slice(0, 5), []);
    assert.deepEqual(tally.closed.slice(0, 5), []);
    assert.equal(tally.joined, JOINERS);

    // A public group's .status shows its client count (as Galène's does).
    const status = (await (await fetch(`${server.url}/group/crowd/.status`)).json()) as { clientCount: number };
    assert.equal(status.clientCount, JOINERS + 2);
    // The camera played on: the subscriber still decodes.
    const now = await frames(sub.page, pubId);
    await until('frames after the storm', async () => (await frames(sub.page, pubId)) > now + 15, 30_000);
    const errorLines = server
      .output()
      .slice(logMark)
      .split('\n')
      .filter((l) => /"level":(50|60)/.test(l));
    assert.deepEqual(errorLines, []);
    for (const p of [pub, sub]) assert.deepEqual(p.problems, []);
  });
}
