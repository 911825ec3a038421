// Browser side of the SDK tests: builds @atrium/client into its ESM bundle
// (as `npm run build -w @atrium/client` does, kept in memory so test files
// running side by side do not race on dist/), builds the page harness, and
// opens Chromium pages on a real server's group page that import both with
// plain <script type="module"> — no bundler on the application's side.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium as launchShared, until } from '../../support/browser.ts';
import type { Harness } from './harness.ts';

const here = dirname(fileURLToPath(import.meta.url));
const CLIENT_BUILD = join(here, '..', '..', '..', '..', 'client', 'scripts', 'build.mjs');

let bundles: Promise<{ sdk: string; harness: string }> | undefined;

/** The SDK bundle and the harness (which imports '@atrium/client' from /atrium-client.js). */
export function buildBundles(): Promise<{ sdk: string; harness: string }> {
  bundles ??= (async () => {
    const { buildClient } = (await import(CLIENT_BUILD)) as { buildClient(o: { write: false }): Promise<string> };
    const { build } = await import('esbuild');
    const sdk = await buildClient({ write: false });
    const result = await build({
      entryPoints: [join(here, 'harness.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
      plugins: [
        {
          name: 'sdk-from-page',
          setup(b) {
            b.onResolve({ filter: /^@atrium\/client$/ }, () => ({ path: '/atrium-client.js', external: true }));
          },
        },
      ],
    });
    const harness = result.outputFiles[0]?.text;
    if (!harness) throw new Error('esbuild produced no harness');
    return { sdk, harness };
  })();
  return bundles;
}

/** Pages in background tabs must keep decoding video and running timers. */
const FOREGROUND_FLAGS = ['--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

export function launchChromium(): Promise<Browser> {
  return launchShared(FOREGROUND_FLAGS);
}

export { until };

export interface HarnessPage {
  page: Page;
  /** What the page logged as errors (uncaught exceptions, console.error). */
  problems: string[];
}

/**
 * A page on `baseUrl`'s group page with the SDK and the harness loaded as
 * ES modules; `window.h` is a Harness (options passed to its constructor).
 */
export async function openHarness(browser: Browser, baseUrl: string, group: string, options: { reconnect?: unknown } = {}): Promise<HarnessPage> {
  const { sdk, harness } = await buildBundles();
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
  });
  // Both files come from the server's origin, as an application's own files would.
  await page.route('**/atrium-client.js', (r) => r.fulfill({ body: sdk, contentType: 'text/javascript; charset=utf-8' }));
  await page.route('**/harness.js', (r) => r.fulfill({ body: harness, contentType: 'text/javascript; charset=utf-8' }));
  await page.goto(`${baseUrl}/group/${group}/`);
  await page.addScriptTag({ type: 'module', content: "import '/harness.js';" });
  await page.waitForFunction(() => typeof (window as unknown as { Harness?: unknown }).Harness === 'function');
  await page.evaluate((opts) => {
    const w = window as unknown as { Harness: new (o: unknown) => unknown; h: unknown };
    w.h = new w.Harness(opts);
  }, options);
  return { page, problems };
}

/** Calls a Harness method in the page and returns its (serialisable) result. */
export function call<K extends keyof Harness>(page: Page, method: K, ...args: unknown[]): Promise<Awaited<Harness[K] extends (...a: never[]) => infer R ? R : Harness[K]>> {
  return page.evaluate(
    async ([m, a]) => {
      const h = (window as unknown as { h: Record<string, unknown> }).h;
      const v = h[m as string];
      return typeof v === 'function' ? await (v as (...x: unknown[]) => unknown).apply(h, a as unknown[]) : v;
    },
    [method as string, args] as const,
  ) as never;
}

/** Calls a method of the page's ServerConnection (`window.h.sc`). */
export function sc<T = unknown>(page: Page, method: string, ...args: unknown[]): Promise<T> {
  return page.evaluate(
    async ([m, a]) => {
      const conn = (window as unknown as { h: { sc: Record<string, unknown> } }).h.sc;
      const v = conn[m as string];
      return typeof v === 'function' ? await (v as (...x: unknown[]) => unknown).apply(conn, a as unknown[]) : v;
    },
    [method, args] as const,
  ) as Promise<T>;
}
