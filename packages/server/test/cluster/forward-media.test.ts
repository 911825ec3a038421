// Media through a connection handed to the owner: two nodes and a real
// redis-server, inside a loopback-only network namespace. The group lives
// on node 1; one Chromium page of the SDK connects to node 1, the other to
// node 2, which hands its connection to node 1 (dialects/kit/forward.ts).
// Each page decodes the other's camera, and the group is on node 1 alone.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 200_000 })) {
  const { startServer } = await import('../support/server-process.ts');
  const { call, launchChromium, openHarness, until } = await import('../client/support/browser.ts');
  const { randomPort, startRedis } = await import('./support/services.ts');
  type DownInfo = import('../client/support/harness.ts').DownInfo;
  type Page = import('playwright-core').Page;

  const port = randomPort();
  const OPEN = { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' }, region: 'r1' };
  const ADMIN = { authorization: `Basic ${Buffer.from('root:rootpw').toString('base64')}` };
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let nodes: Awaited<ReturnType<typeof startServer>>[] = [];
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  before(async () => {
    redis = await startRedis('127.0.0.1', port);
    nodes = await Promise.all(
      ['n1', 'n2'].map((id) =>
        startServer({
          startTimeoutMs: 120_000,
          groups: { g: OPEN },
          config: { users: { root: { password: 'rootpw', permissions: 'admin' } } },
          args: ['--redis', `redis://127.0.0.1:${port}`, '--node-id', id, '--public-url', `http://lb.example/node/${id}`, '--region', `r${id.slice(1)}`, '--media-address', '127.0.0.1'],
        }),
      ),
    );
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    for (const n of nodes) await n.stop();
    await redis?.stop();
  });

  const decodes = async (page: Page, user: string) => ((await call(page, 'downStats')) as DownInfo[]).some((d) => d.username === user && !d.closed && (d.framesDecoded ?? 0) > 0);

  test('an SDK client entering through another node is served by the owner: video both ways', async () => {
    const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    // Both nodes start at once: node 2 places g only once it has seen node 1 alive (else it would take g itself).
    await until('node 2 to see both nodes', async () => {
      const view = (await (await fetch(`${n2.url}/galene-api/v0/.cluster`, { headers: ADMIN })).json()) as { nodes: { id: string }[] };
      return view.nodes.length === 2;
    });
    const status = (await (await fetch(`${n2.url}/group/g/.status`)).json()) as { endpoint: string };
    assert.equal(status.endpoint, 'ws://lb.example/node/n1/ws', 'g is placed on its region’s node');
    const direct = (await openHarness(browser, n1.url, 'g')).page;
    const handed = (await openHarness(browser, n2.url, 'g')).page;
    await call(direct, 'connect', n1.wsUrl, 'g', 'direct', 'x');
    await call(handed, 'connect', n2.wsUrl, 'g', 'handed', 'x');
    for (const p of [direct, handed]) {
      await call(p, 'request', { '': ['audio', 'video'] });
      await call(p, 'publish', { label: 'camera' });
    }
    await until('the direct client decodes the handed-over one', () => decodes(direct, 'handed'), 90_000);
    await until('the handed-over client decodes the direct one', () => decodes(handed, 'direct'), 90_000);
    // Node records are renewed every second: wait for one that counts both.
    await until('both are members of the one group, on node 1 alone', async () => {
      const view = (await (await fetch(`${n2.url}/galene-api/v0/.cluster`, { headers: ADMIN })).json()) as { nodes: { id: string; groups: Record<string, { clients: number }> }[] };
      return JSON.stringify(view.nodes.filter((n) => n.groups.g !== undefined).map((n) => [n.id, n.groups.g!.clients])) === JSON.stringify([['n1', 2]]);
    });
  });
}
