// Helpers for the web-app browser tests: a real `atrium serve` process, the
// built app, and Chromium pages used the way a person would (forms, buttons),
// read through what the pages show.
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { ensureWebApp } from '../../../../web/build.mjs';
import { launchChromium, until } from '../../support/browser.ts';
import { type RunningServer, startServer } from '../../support/server-process.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', '..');

export interface TileInfo {
  user: string;
  label: string;
  local: boolean;
  frames: number;
}

export class WebAppHarness {
  browser!: Browser;
  server!: RunningServer;
  /** Where screenshots go: docs/screenshots with ATRIUM_SCREENSHOTS=1, else a temporary directory. */
  shots = join(ROOT, 'docs', 'screenshots');
  readonly pages: Record<string, Page> = {};

  async start(groups: Record<string, unknown>): Promise<void> {
    await ensureWebApp({ log: (m) => process.stderr.write(`${m}\n`) });
    if (process.env.ATRIUM_SCREENSHOTS !== '1') this.shots = await mkdtemp(join(tmpdir(), 'atrium-shots-'));
    await mkdir(this.shots, { recursive: true });
    this.server = await startServer({ groups, args: ['--media-address', '127.0.0.1'] });
    this.browser = await launchChromium(['--autoplay-policy=no-user-gesture-required']);
  }

  async stop(): Promise<void> {
    await this.browser?.close();
    const code = await this.server?.stop();
    if (code !== 0 && code !== null && this.server) process.stderr.write(this.server.output());
  }

  /** A fresh browser profile on the group's page, at its login form. */
  async open(group: string, viewport = { width: 1280, height: 800 }): Promise<Page> {
    const ctx = await this.browser.newContext({ viewport, deviceScaleFactor: 1, colorScheme: 'dark' });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
    await page.goto(`${this.server.url}/group/${group}/`);
    await page.waitForSelector('#username');
    return page;
  }

  /** Logs in through the form and waits for the call. */
  async enter(group: string, name: string, password = 'any', viewport?: { width: number; height: number }): Promise<Page> {
    const page = await this.open(group, viewport);
    await page.fill('#username', name);
    await page.fill('#password', password);
    await page.click('button[type=submit]');
    await page.waitForSelector('.call', { timeout: 30_000 });
    this.pages[name] = page;
    return page;
  }
}

export const tiles = (page: Page): Promise<TileInfo[]> =>
  page.$$eval('figure.tile', (els) =>
    els.map((e) => {
      const d = (e as HTMLElement).dataset;
      return { user: d.user ?? '', label: d.label ?? '', local: e.classList.contains('local'), frames: Number(d.framesDecoded ?? 0) };
    }),
  );

/** Waits until `page` decodes camera video from `user`, and then decodes more. */
export async function seesVideo(page: Page, user: string): Promise<void> {
  const remote = async () => (await tiles(page)).find((t) => !t.local && t.user === user && t.label === 'camera');
  const first = await until(
    `${user}'s video decoding`,
    async () => {
      const t = await remote();
      return t && t.frames > 0 ? t : undefined;
    },
    90_000,
    500,
  );
  await until(`${user}'s video to keep decoding`, async () => ((await remote())?.frames ?? 0) > first.frames, 30_000, 500);
}

export async function openPanel(page: Page, which: 'Chat' | 'People' | 'Files'): Promise<void> {
  const tab = page.locator('.tabs button', { hasText: which });
  if ((await tab.count()) === 0) await page.locator('.toolbar .tool', { hasText: which }).click();
  else if ((await tab.getAttribute('aria-pressed')) !== 'true') await tab.click();
}

/** The chat messages as the page shows them (opening the chat first). */
export async function chatTexts(page: Page): Promise<string[]> {
  await openPanel(page, 'Chat');
  return page.$$eval('.messages .msg', (els) => els.map((e) => e.textContent ?? ''));
}

export async function say(page: Page, text: string): Promise<void> {
  await openPanel(page, 'Chat');
  await page.fill('#chat-input', text);
  await page.press('#chat-input', 'Enter');
}

/** Opens the People panel and the actions for `name`. */
export async function choosePerson(page: Page, name: string): Promise<void> {
  await openPanel(page, 'People');
  const row = page.locator(`.people li[data-user="${name}"]`);
  if ((await row.locator('.person[aria-expanded=true]').count()) === 0) await row.locator('.person').click();
}

export { until };
