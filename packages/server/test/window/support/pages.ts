// Serves the browser tests' pages: the window relay and the page probe
// (probe.ts) bundled on the fly with esbuild, and one blank HTML page that
// loads them, from a tiny HTTP server on 127.0.0.1 — one origin for every
// window and tab of a test.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium as launchShared } from '../../support/browser.ts';

const here = dirname(fileURLToPath(import.meta.url));

let bundle: Promise<string> | undefined;

/** probe.ts with the window relay, as one classic script. */
export function buildProbe(): Promise<string> {
  bundle ??= (async () => {
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [join(here, 'probe.ts')],
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    const text = result.outputFiles[0]?.text;
    if (!text) throw new Error('esbuild produced no probe bundle');
    return text;
  })();
  return bundle;
}

const page = (script = '') => `<!doctype html><html><head><meta charset="utf-8"><title>window relay test</title><script src="/probe.js"></script></head><body>${script}</body></html>`;

/**
 * /pip.html tries Document Picture-in-Picture as the page loads, before any
 * user gesture (a test's page.evaluate would count as one), and records how
 * it went in `window.pipNoGesture`.
 */
const PIP_WITHOUT_GESTURE = `<script>
  const canvas = document.createElement('canvas');
  window.pipNoGesture = WindowRelay.openPictureInPicture(canvas.captureStream(5)).then(
    (view) => { view.close(); return 'opened'; },
    (e) => e.code + ': ' + e.message,
  );
</script>`;

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

export async function servePages(): Promise<PageServer> {
  const probe = await buildProbe();
  const server: Server = createServer((req, res) => {
    if (req.url === '/probe.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(probe);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(req.url?.startsWith('/pip.html') ? page(PIP_WITHOUT_GESTURE) : page());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Background tabs and pop-ups must keep decoding video and running timers. */
const FOREGROUND_FLAGS = ['--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

export function launchChromium(): Promise<Browser> {
  return launchShared(FOREGROUND_FLAGS);
}

/** Records what a page reports as errors. */
export function watch(page: Page, problems: string[]): Page {
  const tag = new URL(page.url() === 'about:blank' ? 'http://x/' : page.url()).search || page.url();
  page.on('pageerror', (e) => problems.push(`${tag} pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${tag} console.error: ${m.text()}`);
  });
  return page;
}

/** A top-level page of `context` with the probe loaded and `window.p` a Probe named `name`. */
export async function openTab(context: BrowserContext, base: string, name: string, options: ProbeOptions = {}): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${base}/?${name}`);
  await makeProbe(page, name, options);
  return page;
}

/** Opens `name` with window.open from `opener` (same origin), with its probe; the opener keeps it in `window.popups[name]`. */
export async function openPopup(opener: Page, name: string, options: ProbeOptions & { probe?: boolean } = {}): Promise<Page> {
  const [popup] = await Promise.all([
    opener.waitForEvent('popup'),
    opener.evaluate((n) => {
      window.popups ??= {};
      window.popups[n] = window.open(`/?${n}`, n, 'popup,width=360,height=300');
    }, name),
  ]);
  await popup.waitForLoadState('load');
  if (options.probe !== false) await makeProbe(popup, name, options);
  return popup;
}

/** Options of the page's WindowPeerConnection that survive JSON (`ipc`: over the Electron stand-in). */
export interface ProbeOptions {
  direct?: boolean;
  connectTimeoutMs?: number;
  ipc?: boolean;
}

export async function makeProbe(page: Page, name: string, options: ProbeOptions = {}): Promise<void> {
  await page.waitForFunction(() => typeof window.Probe === 'function');
  await page.evaluate(
    ([n, o]) => {
      window.p = new window.Probe(n, o);
    },
    [name, options] as const,
  );
}
