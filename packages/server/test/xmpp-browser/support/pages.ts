// Pages for the XMPP browser tests: bundles a harness on the fly with
// esbuild (strophe.js and its MUC plugin from node_modules, unchanged; for
// Jingle also Atrium's SDP<->Jingle converter) and opens it on the server's
// origin, as an application's own page would be.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const bundles = new Map<string, Promise<string>>();

/** One IIFE bundle of a harness file; strophe.js resolves to one build for the harness and the MUC plugin alike. */
export function bundle(file: string): Promise<string> {
  let b = bundles.get(file);
  if (!b) {
    b = (async () => {
      const strophe = join(dirname(require.resolve('strophe.js/package.json')), 'dist', 'strophe.umd.cjs');
      const result = await build({
        entryPoints: [join(here, file)],
        bundle: true,
        format: 'iife',
        platform: 'browser',
        target: ['chrome100'],
        write: false,
        logLevel: 'silent',
        plugins: [{ name: 'one-strophe', setup: (s) => s.onResolve({ filter: /^strophe\.js$/ }, () => ({ path: strophe })) }],
      });
      const js = result.outputFiles[0]?.text;
      if (!js) throw new Error(`esbuild produced nothing for ${file}`);
      return js;
    })();
    bundles.set(file, b);
  }
  return b;
}

export interface HarnessPage {
  page: Page;
  problems: string[];
}

/** A fresh page on the server's origin with a harness loaded. */
export async function openPage(browser: Browser, baseUrl: string, file: string): Promise<HarnessPage> {
  const js = await bundle(file);
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('favicon') && !/status of 404/.test(m.text())) problems.push(`console.error: ${m.text()}`);
  });
  // A page the server itself serves: Chromium lets such a page reach its own origin (an intercepted one is "not local").
  await page.goto(`${baseUrl}/room/xmpp-test-page`);
  await page.addScriptTag({ content: js });
  return { page, problems };
}
