// What the WHIP and WHEP tests share: a server with a group "live" (JWT key,
// an op, a wildcard user with present), pages with the test Galène client
// and the plain WHIP/WHEP page script, medooze's WHIP and WHEP clients (npm
// whip-whep, by an author of RFC 9725) loaded into a page, and probes of
// what a page decodes. Used inside a loopback-only namespace.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, until } from '../../support/browser.ts';
import { type RunningServer, startServer } from '../../support/server-process.ts';

const SUPPORT = dirname(fileURLToPath(import.meta.url));
const CLIENT_JS = join(SUPPORT, 'galene-browser-client.js');
const WHIP_JS = join(SUPPORT, 'whip-page.js');
const MEDOOZE = dirname(createRequire(import.meta.url).resolve('whip-whep/whip.js'));
/** The group's HS256 key (exactly 32 bytes, as the verifier requires). */
const SECRET = new TextEncoder().encode('whip-test-secret-of-32-bytes-len');

export type DownStat = { id: string; source: string; username: string; closed: boolean; framesDecoded?: number; frameWidth?: number; totalSamplesReceived?: number };
export type PlayerStats = { framesDecoded: number; frameWidth: number; totalSamplesReceived: number; state: string };

type TestClient = Record<string, (...args: unknown[]) => unknown>;

export interface HttpMediaHarness {
  server: RunningServer;
  browser: Browser;
  admin: { authorization: string };
  endpoint(p: 'whip' | 'whep'): string;
  /** A JWT of the group's key, for `sub`, with these permissions, for the group's URL unless `aud` says otherwise. */
  jwt(sub: string, permissions: string[], aud?: string): Promise<string>;
  /** A page of the group's origin with the test Galène client and the WHIP/WHEP page script. */
  page(): Promise<Page>;
  /** A Galène-protocol member of "live" that receives everything. */
  subscriber(name: string): Promise<Page>;
  call<T>(p: Page, fn: string, ...args: unknown[]): Promise<T>;
  downs(p: Page): Promise<DownStat[]>;
  users(p: Page): Promise<Record<string, string>>;
  /** The subscriber decodes frames (and keeps decoding) of a stream from the user called `username`. */
  decodes(p: Page, username: string): Promise<DownStat>;
  /** One sample of /metrics, NaN when absent. */
  metric(name: string): Promise<number>;
  /** Loads medooze's WHIPClient and WHEPClient into a page (window.WHIPClient, window.WHEPClient). */
  loadMedooze(p: Page): Promise<void>;
  close(): Promise<void>;
}

export async function httpMediaHarness(): Promise<HttpMediaHarness> {
  const server = await startServer({
    groups: {
      live: {
        authKeys: [{ kty: 'oct', alg: 'HS256', k: Buffer.from(SECRET).toString('base64url') }],
        users: { op: { password: 'op', permissions: 'op' } },
        'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
      },
    },
    args: ['--media-address', '127.0.0.1'],
    config: { users: { admin: { password: 'adminpw', permissions: 'admin' } } },
  });
  const browser = await launchChromium();

  const page = async (): Promise<Page> => {
    const p = await (await browser.newContext()).newPage();
    await p.goto(`${server.url}/group/live/`);
    await p.addScriptTag({ path: CLIENT_JS });
    await p.addScriptTag({ path: WHIP_JS });
    return p;
  };
  const call = <T>(p: Page, fn: string, ...args: unknown[]): Promise<T> =>
    p.evaluate(([f, a]) => (window as unknown as { tc: TestClient }).tc[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;
  const downs = (p: Page) => call<DownStat[]>(p, 'downStats');

  return {
    server,
    browser,
    admin: { authorization: `Basic ${Buffer.from('admin:adminpw').toString('base64')}` },
    endpoint: (p) => `${server.url}/group/live/.${p}`,
    jwt: (sub, permissions, aud = `${server.url}/group/live/`) =>
      new SignJWT({ permissions }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setAudience(aud).setIssuedAt().setExpirationTime('5m').sign(SECRET),
    page,
    async subscriber(name) {
      const p = await page();
      await p.evaluate(
        async ([ws, u]) => {
          const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown>; request(r: unknown): void }; TestGaleneClient: new () => unknown };
          w.tc = new w.TestGaleneClient() as typeof w.tc;
          await w.tc.connect(ws!, 'live', u!, 'x');
          w.tc.request({ '': ['audio', 'video'] });
        },
        [server.wsUrl, name],
      );
      return p;
    },
    call,
    downs,
    users: (p) => call<Record<string, string>>(p, 'users'),
    async decodes(p, username) {
      const first = await until(`frames from ${username}`, async () => (await downs(p)).find((d) => d.username === username && !d.closed && (d.framesDecoded ?? 0) > 0), 45_000);
      return until(`more frames from ${username}`, async () => (await downs(p)).find((d) => d.id === first.id && (d.framesDecoded ?? 0) > (first.framesDecoded ?? 0) + 10), 30_000);
    },
    async metric(name) {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return Number(new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    },
    async loadMedooze(p) {
      for (const [file, name] of [
        ['whip.js', 'WHIPClient'],
        ['whep.js', 'WHEPClient'],
      ] as const) {
        const source = await readFile(join(MEDOOZE, file), 'utf8');
        await p.addScriptTag({ type: 'module', content: `${source}\nwindow.${name} = ${name};` });
      }
      await p.waitForFunction(() => 'WHIPClient' in window && 'WHEPClient' in window);
    },
    async close() {
      await browser.close();
      await server.stop();
    },
  };
}
