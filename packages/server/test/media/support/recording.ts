// What the recording tests share: Debian's ffprobe and ffmpeg as judges of
// the files (streams, packet times, frame widths, decoding errors), groups
// that allow recording, and Chromium pages joined through the in-page Galène
// client, with the Galène messages the tests send and read. Used inside a
// loopback-only network namespace.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, until } from '../../support/browser.ts';
import type { RunningServer } from '../../support/server-process.ts';

const CLIENT_JS = join(dirname(fileURLToPath(import.meta.url)), 'galene-browser-client.js');
const run = promisify(execFile);

/** Refuses to go on, saying what to install, when Debian's ffmpeg is missing. */
export function requireFfmpeg(): void {
  if (spawnSync('ffprobe', ['-version']).status !== 0) throw new Error('the recording tests need ffprobe and ffmpeg: apt-get install ffmpeg (npm test installs it when run as root)');
}

/** What ffprobe says of a file: its format, streams and the first and last packet time of each stream. */
export interface Probe {
  duration: number;
  streams: { index: number; codec: string; type: string; width?: number }[];
  packets: Map<number, { first: number; last: number; count: number }>;
}

export async function probe(file: string): Promise<Probe> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', '-show_packets', `file:${file}`], { maxBuffer: 64 << 20 });
  const j = JSON.parse(stdout) as {
    format: { duration: string };
    streams: { index: number; codec_name: string; codec_type: string; width?: number }[];
    packets: { stream_index: number; pts_time?: string }[];
  };
  const packets = new Map<number, { first: number; last: number; count: number }>();
  for (const p of j.packets) {
    if (p.pts_time === undefined) continue;
    const t = Number(p.pts_time);
    const e = packets.get(p.stream_index);
    if (!e) packets.set(p.stream_index, { first: t, last: t, count: 1 });
    else {
      e.first = Math.min(e.first, t);
      e.last = Math.max(e.last, t);
      e.count++;
    }
  }
  return { duration: Number(j.format.duration), streams: j.streams.map((s) => ({ index: s.index, codec: s.codec_name, type: s.codec_type, ...(s.width ? { width: s.width } : {}) })), packets };
}

/** The widths of the decoded video frames, each run of equal widths once. */
export async function frameWidths(file: string): Promise<number[]> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'frame=width', '-of', 'csv=p=0', `file:${file}`], { maxBuffer: 64 << 20 });
  const widths = stdout.split('\n').filter(Boolean).map(Number);
  return widths.filter((w, i) => i === 0 || w !== widths[i - 1]);
}

/**
 * Decodes every frame; returns ffmpeg's complaints (empty when the file is
 * clean). WebRTC video has a variable frame rate: each decoded frame is
 * passed on with its own timestamp (`-fps_mode passthrough`, in the file's
 * time base), else the null muxer complains of frames closer together than
 * the average frame rate, which is not a decoding error.
 */
export async function decodeErrors(file: string): Promise<string> {
  try {
    const { stderr } = await run('ffmpeg', ['-v', 'error', '-nostdin', '-i', `file:${file}`, '-fps_mode', 'passthrough', '-enc_time_base', '-1', '-f', 'null', '-'], { maxBuffer: 16 << 20 });
    return stderr.trim();
  } catch (e) {
    const { code, stderr } = e as { code?: number; stderr?: string };
    return `exit ${code}\n${stderr ?? String(e)}`.trim();
  }
}

/** A group file that allows recording: op (op), bob (present), anybody else present. */
export const recordable = (extra: Record<string, unknown> = {}) => ({
  users: { op: { password: 'op', permissions: 'op' }, bob: { password: 'b', permissions: 'present' } },
  'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
  'allow-recording': true,
  ...extra,
});

/** The server's administrator, as the tests' config.json names it. */
export const ADMIN_CONFIG = { users: { admin: { password: 'adminpw', permissions: 'admin' } } };
export const basic = (u: string) => ({ authorization: `Basic ${Buffer.from(u).toString('base64')}` });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type TestClient = Record<string, (...args: unknown[]) => unknown>;

export interface Pages {
  browser: Browser;
  /** A page joined to a group through the in-page Galène client. */
  user(srv: RunningServer, group: string, username: string, password?: string): Promise<Page>;
  joinGroup(page: Page, srv: RunningServer, group: string, username: string, password: string): Promise<void>;
  call<T>(page: Page, fn: string, ...args: unknown[]): Promise<T>;
  send(page: Page, m: unknown): Promise<void>;
  /** The error messages the page was sent. */
  errors(page: Page): Promise<string[]>;
  usernames(page: Page): Promise<string[]>;
  /** The values of the user messages of this kind the page was sent. */
  messages(page: Page, kind: string): Promise<string[]>;
  /** Publishes and waits until the server has the stream flowing (the publisher's connection is up). */
  publish(page: Page, opts?: Record<string, unknown>): Promise<{ id: string; connectedAt: number }>;
  /** The group's recordings as /recordings/<group>/?format=json lists them to `auth`. */
  recordingsOf(srv: RunningServer, group: string, auth?: string): Promise<{ name: string; size: number; complete: boolean }[]>;
  close(): Promise<void>;
}

export async function recordingPages(): Promise<Pages> {
  const browser = await launchChromium();
  const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
    page.evaluate(([f, a]) => (window as unknown as { tc: TestClient }).tc[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;
  const joinGroup = async (page: Page, srv: RunningServer, group: string, username: string, password: string) => {
    await page.evaluate(
      async ([ws, g, u, p]) => {
        const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown> }; TestGaleneClient: new () => unknown };
        w.tc = new w.TestGaleneClient() as typeof w.tc;
        await w.tc.connect(ws!, g!, u!, p!);
      },
      [srv.wsUrl, group, username, password],
    );
  };
  return {
    browser,
    async user(srv, group, username, password = 'x') {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${srv.url}/group/${group}/`);
      await page.addScriptTag({ path: CLIENT_JS });
      await joinGroup(page, srv, group, username, password);
      return page;
    },
    joinGroup,
    call,
    send: (page, m) => page.evaluate((msg) => (window as unknown as { tc: { send(m: unknown): void } }).tc.send(msg), m),
    errors: (page) => page.evaluate(() => (window as unknown as { tc: { errors: string[] } }).tc.errors),
    usernames: async (page) => Object.values(await call<Record<string, string>>(page, 'users')),
    messages: (page, kind) =>
      page.evaluate(
        (k) => (window as unknown as { tc: { log: { type: string; kind?: string; value?: unknown }[] } }).tc.log.filter((m) => m.type === 'usermessage' && m.kind === k).map((m) => String(m.value)),
        kind,
      ),
    async publish(page, opts = {}) {
      const id = await call<string>(page, 'publish', { label: 'camera', ...opts });
      const connectedAt = await until(`stream ${id} connected`, async () => (await call<number>(page, 'upConnectedAt', id)) || undefined, 30_000);
      return { id, connectedAt };
    },
    async recordingsOf(srv, group, auth = 'op:op') {
      const r = await fetch(`${srv.url}/recordings/${group}/?format=json`, { headers: basic(auth) });
      assert.equal(r.status, 200, await r.clone().text());
      return (await r.json()) as { name: string; size: number; complete: boolean }[];
    },
    close: () => browser.close(),
  };
}
