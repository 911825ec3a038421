// The web app in a call, end to end: real Chromium pages with fake camera
// and microphone use the built app (packages/web) against a real `atrium
// serve` process, inside a loopback-only network namespace. Everything is
// read from what the pages show: video tiles and their decoded-frame
// counts, chat messages, file transfers. With ATRIUM_SCREENSHOTS=1 it also
// refreshes docs/screenshots/ (join page, call with chat, phone layout).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 150_000 })) {
  const { WebAppHarness, chatTexts, choosePerson, openPanel, say, seesVideo, until } = await import('./support/app.ts');
  const h = new WebAppHarness();

  before(() =>
    h.start({
      team: {
        public: true,
        displayName: 'Team meeting',
        description: 'Weekly sync of the Atrium team',
        users: { olga: { password: 'op-secret', permissions: 'op' } },
        'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
      },
    }),
  );
  after(() => h.stop());

  test('three users join through the web app and each sees the two others’ video', async () => {
    const login = await h.open('team');
    await login.screenshot({ path: join(h.shots, 'join.png') });
    await login.context().close();

    await h.enter('team', 'olga', 'op-secret');
    await h.enter('team', 'bob');
    await h.enter('team', 'carol');
    const names = ['olga', 'bob', 'carol'];
    await Promise.all(names.flatMap((me) => names.filter((n) => n !== me).map((other) => seesVideo(h.pages[me]!, other))));
    // The user list shows everyone to everyone.
    for (const me of names) {
      await openPanel(h.pages[me]!, 'People');
      await until(`${me}'s user list`, async () => (await h.pages[me]!.$$eval('.people li', (els) => els.length)) === 3);
    }
  });

  test('the stats overlay shows what a tile receives and what our own tile sends', async () => {
    const page = h.pages.olga!;
    await page.locator('.toolbar .tool', { hasText: 'Stats' }).click();
    const remote = 'figure.tile:not(.local)[data-user="bob"][data-label="camera"]';
    const local = 'figure.tile.local[data-label="camera"]';
    const rows = (tile: string) =>
      page.$$eval(`${tile} .stats [data-stat]`, (els) => Object.fromEntries(els.map((e) => [(e as HTMLElement).dataset.stat ?? '', e.querySelector('dd')?.textContent ?? ''])));
    const kbits = (v: string | undefined) => Number(/^(\d+) kbit\/s$/.exec(v ?? '')?.[1] ?? Number.NaN);

    // What olga receives from bob: the picture, the link and the repairs.
    const seen = await until(
      "bob's tile's stats",
      async () => {
        const r = await rows(remote);
        return ['size', 'fps', 'codec', 'frames', 'freezes', 'lost', 'nacks', 'keyframes'].every((k) => k in r) && kbits(r.rate) > 0 ? r : undefined;
      },
      30_000,
      500,
    );
    assert.match(seen.size!, /^\d+×\d+$/);
    assert.match(seen.freezes!, /^\d+ \(\d+\.\d s\)$/);
    await until("bob's tile's frame count to rise", async () => Number((await rows(remote)).frames) > Number(seen.frames), 30_000, 500);

    // What olga sends: the layers her browser chose, the rate, its bandwidth estimate, the server's requests.
    const sent = await until(
      "olga's own tile's stats",
      async () => {
        const r = await rows(local);
        return r.layers && kbits(r.rate) > 0 && kbits(r.estimate) > 0 && 'keyframes' in r && 'nacks' in r ? r : undefined;
      },
      30_000,
      500,
    );
    assert.ok(sent.layers!.split(', ').length >= 1, `layers: ${sent.layers}`);
    console.log(`stats: bob's tile ${JSON.stringify(seen)}; olga's own ${JSON.stringify(sent)}`);
    await page.screenshot({ path: join(h.shots, 'stats.png') });
    await page.locator('.toolbar .tool', { hasText: 'Stats' }).click();
    assert.equal(await page.locator(`${remote} .stats`).count(), 0, 'the overlay goes away when Stats is pressed again');
  });

  test('chat, /me and private messages reach the right people only', async () => {
    const { olga, bob, carol } = h.pages;
    await say(olga!, 'Hello everyone');
    for (const p of [olga!, bob!, carol!]) await until('the public message everywhere', async () => (await chatTexts(p)).some((t) => t.includes('Hello everyone')));

    await say(carol!, '/me waves');
    for (const p of [olga!, bob!]) await until('the /me message', async () => (await chatTexts(p)).some((t) => t.includes('* carol waves')));

    await choosePerson(bob!, 'olga');
    await bob!.locator('.actions button', { hasText: 'Message privately' }).click();
    await bob!.waitForSelector('.compose .target');
    await bob!.fill('#chat-input', 'Only for you, Olga');
    await bob!.press('#chat-input', 'Enter');
    await until('the private message at olga', async () => (await chatTexts(olga!)).some((t) => t.includes('Only for you, Olga') && t.includes('(private)')));
    await until('the private message in bob’s own chat', async () => (await chatTexts(bob!)).some((t) => t.includes('Only for you, Olga')));
    // Carol got the messages sent after it, but never the private one.
    await say(olga!, 'Back to everyone');
    await until('a later public message at carol', async () => (await chatTexts(carol!)).some((t) => t.includes('Back to everyone')));
    assert.ok(!(await chatTexts(carol!)).some((t) => t.includes('Only for you')), 'carol must not see a private message to olga');

    await openPanel(olga!, 'Chat');
    await olga!.screenshot({ path: join(h.shots, 'call.png') });
  });

  test('a 5 MB file arrives intact with progress shown; a rejected one ends cancelled on both sides', async () => {
    const { bob, carol } = h.pages;
    const data = randomBytes(5 * 1024 * 1024);
    const sha = createHash('sha256').update(data).digest('hex');
    // Carol's page notes every progress bar it shows part-way.
    await carol!.evaluate(() => {
      const w = window as unknown as { progressSeen: number[] };
      w.progressSeen = [];
      new MutationObserver(() => {
        document.querySelectorAll('progress').forEach((p) => {
          if (p.value > 0 && p.value < p.max) w.progressSeen.push(p.value);
        });
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });

    await choosePerson(bob!, 'carol');
    await bob!.setInputFiles('[data-testid=send-file-input]', { name: 'big.bin', mimeType: 'application/octet-stream', buffer: data });
    const offer = carol!.locator('.transfer[data-file="big.bin"][data-state="invited"]').first();
    await offer.waitFor({ timeout: 30_000 });
    assert.match((await offer.textContent()) ?? '', /bob/);
    await offer.locator('button', { hasText: 'Accept' }).click();
    await carol!.locator('.transfer[data-file="big.bin"][data-state="done"]').first().waitFor({ timeout: 90_000 });
    await until('bob to see the upload done', async () => (await bob!.locator('.transfer[data-file="big.bin"][data-state="done"]').count()) > 0);
    const got = await carol!.evaluate(async () => {
      const a = document.querySelector<HTMLAnchorElement>('.transfer[data-file="big.bin"] a[download]')!;
      const buf = await (await fetch(a.href)).arrayBuffer();
      const digest = await crypto.subtle.digest('SHA-256', buf);
      return { size: buf.byteLength, sha: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('') };
    });
    assert.equal(got.size, data.length);
    assert.equal(got.sha, sha);
    const seen = await carol!.evaluate(() => (window as unknown as { progressSeen: number[] }).progressSeen.length);
    assert.ok(seen > 0, 'a progress bar was shown part-way through the transfer');

    await choosePerson(bob!, 'carol');
    await bob!.setInputFiles('[data-testid=send-file-input]', { name: 'unwanted.txt', mimeType: 'text/plain', buffer: Buffer.from('no thanks') });
    const second = carol!.locator('.transfer[data-file="unwanted.txt"][data-state="invited"]').first();
    await second.waitFor({ timeout: 30_000 });
    await second.locator('button', { hasText: 'Reject' }).click();
    await carol!.locator('.transfer[data-file="unwanted.txt"][data-state="cancelled"]').first().waitFor({ timeout: 30_000 });
    await bob!.locator('.transfer[data-file="unwanted.txt"][data-state="cancelled"]').first().waitFor({ timeout: 30_000 });
  });

  test('the phone-sized layout', async () => {
    const { carol } = h.pages;
    const step = (m: string) => process.stderr.write(`phone: ${m}\n`);
    await openPanel(carol!, 'Chat');
    await carol!.setViewportSize({ width: 390, height: 844 });
    step('resized');
    // The side panel covers the videos on a phone, and Escape closes it.
    await carol!.locator('.panel #chat-input').waitFor({ timeout: 10_000 });
    await carol!.locator('.toolbar .tool', { hasText: 'Chat' }).focus();
    await carol!.keyboard.press('Escape');
    await until('the panel to close', async () => (await carol!.locator('.panel').count()) === 0, 10_000);
    step('panel closed by Escape');
    await seesVideo(carol!, 'olga');
    step('video seen');
    // Finished transfers float over the videos until dismissed.
    while ((await carol!.locator('.incoming .transfer').count()) > 0) await carol!.locator('.incoming .transfer button', { hasText: 'Dismiss' }).first().click();
    await carol!.screenshot({ path: join(h.shots, 'phone.png') });
    await carol!.setViewportSize({ width: 1280, height: 800 });
  });
}
