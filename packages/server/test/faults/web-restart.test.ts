// Fault: the server restarts under a call held in the web app. Both pages
// come back by themselves (the SDK reconnects, rejoins with the credentials
// the user typed and publishes the camera again) and each sees the other's
// video again; nobody reloads or clicks anything. The built web app in real
// Chromium against a real `atrium serve`, inside a loopback-only network
// namespace. (test/client/sdk-reconnect.test.ts shows the same for the SDK.)
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 170_000 })) {
  const { WebAppHarness, seesVideo, tiles, until } = await import('../web/support/app.ts');
  const { startServer } = await import('../support/server-process.ts');
  const GROUPS = { team: { users: { olga: { password: 'op-secret', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } };
  const h = new WebAppHarness();

  before(() => h.start(GROUPS));
  after(() => h.stop());

  test('the server restarts: both web app pages rejoin and see each other’s video again', async () => {
    await h.enter('team', 'olga', 'op-secret');
    await h.enter('team', 'bob');
    const { olga, bob } = h.pages;
    await seesVideo(bob!, 'olga');
    await seesVideo(olga!, 'bob');

    const port = new URL(h.server.url).port;
    await h.server.stop();
    for (const [me, other] of [
      [bob!, 'olga'],
      [olga!, 'bob'],
    ] as const) {
      await until(`${other}'s tile to go`, async () => !(await tiles(me)).some((t) => !t.local && t.user === other), 30_000, 250);
    }
    h.server = await startServer({ groups: GROUPS, args: ['--media-address', '127.0.0.1', '--listen', `127.0.0.1:${port}`] });
    await seesVideo(bob!, 'olga');
    await seesVideo(olga!, 'bob');
  });
}
