// Node side of the mesh browser tests: a real `atrium serve` process, one
// headless Chromium, and pages on the server's origin running the harness
// (harness.ts) or any other script. Each page gets its own browser context,
// so every peer is a separate renderer, as separate users would be.
import type { Browser, Page } from 'playwright-core';
import { launchChromium, until } from '../../support/browser.ts';
import { type RunningServer, type StartOptions, startServer } from '../../support/server-process.ts';
import { harnessScript } from './bundle.ts';
import type { Harness, StartOptions as PeerOptions, Protocol } from './harness.ts';

export { until };
export type { Protocol };

/** Chromium would otherwise hide host candidates behind mDNS names, which nothing resolves in the test namespace. */
const FLAGS = ['--disable-features=WebRtcHideLocalIpsWithMdns'];

export interface MeshWorld {
  server: RunningServer;
  browser: Browser;
  /** A page on the server's origin (a secure context: getUserMedia works) with `scripts` loaded. */
  blankPage(scripts: string[]): Promise<Page>;
  /** A page running the harness, joined to `room` over `protocol`. */
  peer(protocol: Protocol, room: string, options?: Partial<PeerOptions>): Promise<MeshPeer>;
  close(): Promise<void>;
}

export async function startWorld(options: StartOptions = {}): Promise<MeshWorld> {
  const server = await startServer(options);
  const browser = await launchChromium(FLAGS);
  const pages: Page[] = [];
  let seq = 0;
  const world: MeshWorld = {
    server,
    browser,
    async blankPage(scripts) {
      const page = await (await browser.newContext()).newPage();
      pages.push(page);
      const log: string[] = [];
      page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') log.push(`console: ${m.text()}`);
      });
      (page as Page & { meshLog?: string[] }).meshLog = log;
      // Any page of the server will do (same origin, no CSP); a page fulfilled
      // by page.route would not do: Chromium then fails its WebSockets (1006).
      await page.goto(`${server.url}/room/mesh-test-page-${++seq}`);
      for (const content of scripts) await page.addScriptTag({ content });
      return page;
    },
    async peer(protocol, room, options = {}) {
      const page = await world.blankPage([await harnessScript()]);
      const p = new MeshPeer(page, protocol);
      p.id = await p.call('start', { protocol, server: server.url, room, ...options });
      return p;
    },
    async close() {
      await browser.close().catch(() => {});
      await server.stop();
    },
  };
  return world;
}

type Args<F> = F extends (...args: infer A) => unknown ? A : never;
type Result<F> = F extends (...args: never[]) => infer R ? Awaited<R> : never;

/** A page running the harness: typed calls into `window.mesh`. */
export class MeshPeer {
  id = '';

  constructor(
    readonly page: Page,
    readonly protocol: Protocol,
  ) {}

  call<K extends keyof Harness>(fn: K, ...args: Args<Harness[K]>): Promise<Result<Harness[K]>> {
    return this.page.evaluate(
      ([f, a]) => {
        const mesh = (window as unknown as { mesh: Record<string, (...x: unknown[]) => unknown> }).mesh;
        return mesh[f as string]!(...(a as unknown[]));
      },
      [fn, args] as const,
    ) as Promise<Result<Harness[K]>>;
  }

  /** Errors the page or the SDK reported. */
  async problems(): Promise<string[]> {
    const sdk = this.page.isClosed() ? [] : await this.call('errors');
    return [...sdk, ...((this.page as Page & { meshLog?: string[] }).meshLog ?? [])];
  }
}

/** Waits until `peer` has a connection to each of `others` (peers or ids) and to nobody else. */
export async function seesExactly(peer: MeshPeer, others: (MeshPeer | string)[], timeoutMs = 30_000): Promise<void> {
  const want = others.map((o) => (typeof o === 'string' ? o : o.id)).sort();
  await until(
    `${peer.id.slice(0, 8)} to be connected to exactly ${want.map((w) => w.slice(0, 8)).join(', ')}`,
    async () => JSON.stringify((await peer.call('peers')).sort()) === JSON.stringify(want),
    timeoutMs,
  );
}
