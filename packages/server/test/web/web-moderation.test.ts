// Joining, leaving and moderation in the web app, end to end (Chromium
// pages, a real server, a loopback-only network namespace): reloading the
// page rejoins; an operator kicks a user, who is told why; a locked group
// refuses a join with the server's message.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 110_000 })) {
  const { WebAppHarness, choosePerson, seesVideo, until } = await import('./support/app.ts');
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

  test('an operator and two users join', async () => {
    await h.enter('team', 'olga', 'op-secret');
    await h.enter('team', 'carol');
    await h.enter('team', 'bob');
    await until('everyone in olga’s user list', async () => {
      await choosePerson(h.pages.olga!, 'olga');
      return (await h.pages.olga!.locator('.people li').count()) === 3;
    });
  });

  test('reloading the page rejoins the group', async () => {
    const { olga, bob } = h.pages;
    await bob!.reload();
    await bob!.waitForSelector('.call', { timeout: 30_000 });
    await seesVideo(bob!, 'olga');
    await seesVideo(olga!, 'bob');
  });

  test('an operator kicks a user, who is told why', async () => {
    const { olga, carol } = h.pages;
    await choosePerson(olga!, 'carol');
    await olga!.locator('.actions button', { hasText: 'Kick' }).click();
    const ended = carol!.locator('.ended');
    await ended.waitFor({ timeout: 30_000 });
    const text = (await ended.textContent()) ?? '';
    assert.match(text, /removed from the group/);
    assert.match(text, /olga/);
    await until('carol to leave olga’s user list', async () => (await olga!.locator('.people li[data-user="carol"]').count()) === 0);
  });

  test('a locked group refuses a join with the server’s message', async () => {
    const { olga } = h.pages;
    await olga!.locator('.topbar button', { hasText: 'Lock' }).click();
    await olga!.locator('.topbar button', { hasText: 'Unlock' }).waitFor();
    const dave = await h.open('team');
    await dave.fill('#username', 'dave');
    await dave.fill('#password', 'any');
    await dave.click('button[type=submit]');
    const error = dave.locator('.login .error');
    await error.waitFor({ timeout: 30_000 });
    const text = (await error.textContent()) ?? '';
    assert.match(text, /locked/i);
    assert.match(text, /group "team" is locked/);
    await olga!.locator('.topbar button', { hasText: 'Unlock' }).click();
    await olga!.locator('.topbar button', { hasText: /^Lock$/ }).waitFor();
    await dave.click('button[type=submit]');
    await dave.waitForSelector('.call', { timeout: 30_000 });
  });
}
