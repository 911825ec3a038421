// Recording a group to disk, end to end: Chromium pages publish through a
// real `atrium serve`, an operator records with Galène's groupaction, and
// Debian's ffprobe and ffmpeg judge the files. One browser serves every
// test. Runs inside a loopback-only network namespace; the disk-full test
// runs its server in a mount namespace with a small tmpfs.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { insideLoopbackNetns } from './support/netns.ts';

const CLIENT_JS = join(dirname(fileURLToPath(import.meta.url)), 'support', 'galene-browser-client.js');
const run = promisify(execFile);

/** What ffprobe says of a file: its format, streams and the first and last packet time of each stream. */
interface Probe {
  duration: number;
  streams: { index: number; codec: string; type: string; width?: number }[];
  packets: Map<number, { first: number; last: number; count: number }>;
}

async function probe(file: string): Promise<Probe> {
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
async function frameWidths(file: string): Promise<number[]> {
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
async function decodeErrors(file: string): Promise<string> {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-nostdin', '-i', `file:${file}`, '-fps_mode', 'passthrough', '-enc_time_base', '-1', '-f', 'null', '-'], { encoding: 'utf8' });
  return `${r.status === 0 ? '' : `exit ${r.status}\n`}${r.stderr}`.trim();
}

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 480_000 })) {
  const { launchChromium, until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  type Page = import('playwright-core').Page;
  type Browser = import('playwright-core').Browser;
  type Server = Awaited<ReturnType<typeof startServer>>;

  if (spawnSync('ffprobe', ['-version']).status !== 0) throw new Error('the recording tests need ffprobe and ffmpeg: apt-get install ffmpeg (npm test installs it when run as root)');

  const recordable = (extra: Record<string, unknown> = {}) => ({
    users: { op: { password: 'op', permissions: 'op' }, bob: { password: 'b', permissions: 'present' } },
    'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
    'allow-recording': true,
    ...extra,
  });
  let browser: Browser;
  let server: Server;

  before(async () => {
    server = await startServer({
      groups: {
        rec: recordable(),
        h264: recordable({ codecs: ['h264', 'opus'] }),
        vp9: recordable({ codecs: ['vp9', 'opus'] }),
        norec: { users: { op: { password: 'op', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      },
      args: ['--media-address', '127.0.0.1'],
      config: { users: { admin: { password: 'adminpw', permissions: 'admin' } } },
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A page joined to a group through the in-page Galène client. */
  async function user(srv: Server, group: string, username: string, password = 'x'): Promise<Page> {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${srv.url}/group/${group}/`);
    await page.addScriptTag({ path: CLIENT_JS });
    await joinGroup(page, srv, group, username, password);
    return page;
  }

  async function joinGroup(page: Page, srv: Server, group: string, username: string, password: string): Promise<void> {
    await page.evaluate(
      async ([ws, g, u, p]) => {
        const w = window as unknown as { tc: { connect(...a: string[]): Promise<unknown> }; TestGaleneClient: new () => unknown };
        w.tc = new w.TestGaleneClient() as typeof w.tc;
        await w.tc.connect(ws!, g!, u!, p!);
      },
      [srv.wsUrl, group, username, password],
    );
  }

  const call = <T>(page: Page, fn: string, ...args: unknown[]): Promise<T> =>
    page.evaluate(([f, a]) => (window as unknown as { tc: Record<string, (...x: unknown[]) => unknown> }).tc[f as string]!(...(a as unknown[])), [fn, args] as const) as Promise<T>;
  const send = (page: Page, m: unknown) => page.evaluate((msg) => (window as unknown as { tc: { send(m: unknown): void } }).tc.send(msg), m);
  const errors = (page: Page) => page.evaluate(() => (window as unknown as { tc: { errors: string[] } }).tc.errors);
  const usernames = async (page: Page) => Object.values(await call<Record<string, string>>(page, 'users'));
  const messages = (page: Page, kind: string) =>
    page.evaluate(
      (k) => (window as unknown as { tc: { log: { type: string; kind?: string; value?: unknown }[] } }).tc.log.filter((m) => m.type === 'usermessage' && m.kind === k).map((m) => String(m.value)),
      kind,
    );

  /** Publishes and waits until the server has the stream flowing (the publisher's connection is up). */
  async function publish(page: Page, opts: Record<string, unknown> = {}): Promise<{ id: string; connectedAt: number }> {
    const id = await call<string>(page, 'publish', { label: 'camera', ...opts });
    const connectedAt = await until(`stream ${id} connected`, async () => (await call<number>(page, 'upConnectedAt', id)) || undefined, 30_000);
    return { id, connectedAt };
  }

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const recordingsOf = async (srv: Server, group: string, auth = 'op:op') => {
    const r = await fetch(`${srv.url}/recordings/${group}/?format=json`, { headers: { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } });
    assert.equal(r.status, 200, await r.clone().text());
    return (await r.json()) as { name: string; size: number; complete: boolean }[];
  };

  test('an operator records two publishers through a layer switch, a replace and a leave/rejoin: ffprobe reads every file, ffmpeg decodes it', async () => {
    const op = await user(server, 'rec', 'op', 'op');
    const alice = await user(server, 'rec', 'alice');
    const bob = await user(server, 'rec', 'bob', 'b');
    const a1 = await publish(alice, { simulcast: true, width: 640, height: 480 });
    const b1 = await publish(bob);

    const recordAt = Date.now();
    await send(op, { type: 'groupaction', kind: 'record' });
    await until("RECORDING in everyone's user list", async () => {
      for (const p of [op, alice, bob]) if (!(await usernames(p)).includes('RECORDING')) return false;
      return true;
    });
    await sleep(6000);
    // The publisher drops its high layer (as when short of bandwidth): the recording follows it down.
    await call(alice, 'setLayerActive', a1.id, 'h', false);
    await sleep(4000);
    // Bob leaves and comes back.
    const bobLeft = Date.now();
    await bob.evaluate(() => (window as unknown as { tc: { close(): void } }).tc.close());
    await sleep(2000);
    await joinGroup(bob, server, 'rec', 'bob', 'b');
    const b2 = await publish(bob);
    await sleep(1000);
    // Alice replaces her camera.
    const replacedAt = Date.now();
    const a2 = await publish(alice, { replace: a1.id, width: 640, height: 480 });
    await sleep(12_000);
    const unrecordAt = Date.now();
    await send(op, { type: 'groupaction', kind: 'unrecord' });
    await until('RECORDING to leave the user lists', async () => !(await usernames(op)).includes('RECORDING') && !(await usernames(alice)).includes('RECORDING'));
    assert.ok(unrecordAt - recordAt >= 20_000, 'recorded for at least 20 s');

    const files = await until('four finished recordings', async () => {
      const list = await recordingsOf(server, 'rec');
      return list.length === 4 && list.every((f) => f.complete) ? list : undefined;
    });
    const byUser = (u: string) => files.filter((f) => f.name.includes(`-${u}`)).map((f) => join(server.recordingsDir, 'rec', f.name));
    const expected: [string, number][] = [
      [byUser('alice')[0]!, replacedAt - recordAt],
      [byUser('alice')[1]!, unrecordAt - a2.connectedAt],
      [byUser('bob')[0]!, bobLeft - recordAt],
      [byUser('bob')[1]!, unrecordAt - b2.connectedAt],
    ];
    void b1;
    for (const [file, wallMs] of expected) {
      assert.ok(file?.endsWith('.webm'), `a WebM file: ${file}`);
      const p = await probe(file);
      assert.deepEqual(p.streams.map((s) => `${s.type}:${s.codec}`).sort(), ['audio:opus', 'video:vp8'], file);
      const wall = wallMs / 1000;
      assert.ok(Math.abs(p.duration - wall) <= wall * 0.05, `${file}: duration ${p.duration.toFixed(2)} s, recorded for ${wall.toFixed(2)} s (5 % is ${(wall * 0.05).toFixed(2)} s)`);
      // Audio and video cover the same span: the file starts with the sound,
      // the picture joins at its first keyframe (asked for when the
      // recording starts), and both end with the stream, give or take the
      // video's encoding delay at the publisher.
      const [audio, video] = ['audio', 'video'].map((t) => p.packets.get(p.streams.find((s) => s.type === t)!.index)!);
      assert.ok(audio && video && audio.count > 0 && video.count > 0, `${file}: packets of both kinds`);
      assert.ok(audio.first < 0.05 && video.first < 2, `${file}: audio starts at ${audio.first}, video at ${video.first}`);
      assert.ok(Math.abs(audio.last - video.last) < 0.6, `${file}: audio ends at ${audio.last}, video at ${video.last}`);
      assert.equal(await decodeErrors(file), '', `${file}: ffmpeg decodes every frame without error`);
    }
    // Alice's first stream went from her high layer to her low one, in the same file.
    assert.deepEqual(await frameWidths(expected[0]![0]), [640, 160], 'the recording followed the layer switch');
    for (const p of [op, alice, bob]) assert.deepEqual(await errors(p), []);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /atrium_recording_files_total [4-9]/);
    assert.match(metrics, /atrium_recording_bytes_total [1-9]/);
    assert.match(metrics, /atrium_recordings_active 0/);
    for (const p of [op, alice, bob]) await p.context().close();
  });

  test('H.264 goes to MP4, VP9 to WebM: both readable and decodable', async () => {
    for (const [group, ext, codec] of [
      ['h264', '.mp4', 'h264'],
      ['vp9', '.webm', 'vp9'],
    ] as const) {
      const op = await user(server, group, 'op', 'op');
      const carol = await user(server, group, 'carol');
      await publish(carol);
      await send(op, { type: 'groupaction', kind: 'record' });
      await until('the recorder to join', async () => (await usernames(op)).includes('RECORDING'));
      await sleep(4000);
      await send(op, { type: 'groupaction', kind: 'unrecord' });
      const [file] = await until(`the ${codec} recording`, async () => {
        const list = await recordingsOf(server, group);
        return list.length === 1 && list[0]!.complete ? list : undefined;
      });
      assert.ok(file!.name.endsWith(ext), `${codec}: ${file!.name}`);
      const path = join(server.recordingsDir, group, file!.name);
      const p = await probe(path);
      assert.deepEqual(p.streams.map((s) => `${s.type}:${s.codec}`).sort(), ['audio:opus', `video:${codec}`], path);
      assert.ok(p.duration > 2, `${path}: ${p.duration} s`);
      assert.ok((p.streams.find((s) => s.type === 'video')?.width ?? 0) >= 320, `${path}: the picture size is in the file`);
      assert.equal(await decodeErrors(path), '', `${path}: ffmpeg decodes every frame without error`);
      await op.context().close();
      await carol.context().close();
    }
  });

  test('the recordings over HTTP: a listing (JSON and HTML) and range downloads for users with record, refused to others; the admin API deletes', async () => {
    const basic = (u: string) => ({ authorization: `Basic ${Buffer.from(u).toString('base64')}` });
    const base = `${server.url}/recordings/rec/`;
    const list = await recordingsOf(server, 'rec');
    assert.ok(list.length >= 4);
    const first = list[0]!;

    // who may see them
    const anonymous = await fetch(base);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm="recordings\/rec"/);
    assert.equal((await fetch(base, { headers: basic('op:wrong') })).status, 401, 'a wrong password');
    const presenter = await fetch(base, { headers: basic('bob:b') });
    assert.equal(presenter.status, 403, 'a user without "record"');
    assert.match(await presenter.text(), /"record" permission/);
    assert.equal((await fetch(`${base}${encodeURIComponent(first.name)}`, { headers: basic('bob:b') })).status, 403, 'nor its files');
    assert.equal((await fetch(`${server.url}/recordings/nosuchgroup/`, { headers: basic('op:op') })).status, 404);
    const norec = await fetch(`${server.url}/recordings/norec/?format=json`, { headers: basic('op:op') });
    assert.equal(norec.status, 403, 'an operator of a group that does not allow recording has no "record"');

    // the HTML listing links every file
    const html = await (await fetch(base, { headers: { ...basic('op:op'), accept: 'text/html' } })).text();
    for (const f of list) assert.ok(html.includes(`href="./${encodeURIComponent(f.name)}"`), `the page links ${f.name}`);
    const json = await fetch(base, { headers: { ...basic('op:op'), accept: 'application/json' } });
    assert.match(json.headers.get('content-type') ?? '', /application\/json/);

    // a download, whole and by ranges
    const url = `${base}${encodeURIComponent(first.name)}`;
    const whole = Buffer.from(await (await fetch(url, { headers: basic('op:op') })).arrayBuffer());
    assert.equal(whole.length, first.size);
    assert.equal(whole.readUInt32BE(0), 0x1a45dfa3, 'an EBML (WebM) header');
    const part = await fetch(url, { headers: { ...basic('op:op'), range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${first.size}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), whole.subarray(100, 200));
    const tail = await fetch(url, { headers: { ...basic('op:op'), range: 'bytes=-10' } });
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), whole.subarray(whole.length - 10));
    assert.equal((await fetch(url, { headers: { ...basic('op:op'), range: `bytes=${first.size + 10}-` } })).status, 416);
    assert.equal((await fetch(`${base}..%2F..%2Fetc%2Fpasswd`, { headers: basic('op:op') })).status, 404, 'no way out of the folder');
    assert.equal((await fetch(`${base}.hidden`, { headers: basic('op:op') })).status, 400);

    // the admin API
    const admin = basic('admin:adminpw');
    const api = `${server.url}/galene-api/v0/.groups/rec/.recordings/`;
    const listed = (await (await fetch(api, { headers: admin })).json()) as { name: string }[];
    assert.deepEqual(
      listed.map((f) => f.name),
      list.map((f) => f.name),
    );
    assert.equal((await fetch(`${api}${encodeURIComponent(first.name)}`, { method: 'DELETE', headers: basic('op:op') })).status, 401, 'an operator is not an administrator');
    assert.equal((await fetch(`${api}${encodeURIComponent(first.name)}`, { method: 'DELETE', headers: admin })).status, 204);
    assert.equal((await fetch(`${api}${encodeURIComponent(first.name)}`, { method: 'DELETE', headers: admin })).status, 404, 'deleted once');
    assert.equal((await fetch(url, { headers: basic('op:op') })).status, 404);
    // Galène's delete form
    const second = list[1]!;
    const form = await fetch(base, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...basic('op:op'), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ q: 'delete', filename: second.name }),
    });
    assert.equal(form.status, 303);
    assert.deepEqual(
      (await recordingsOf(server, 'rec')).map((f) => f.name),
      list.slice(2).map((f) => f.name),
    );
  });

  test('record is refused without the record permission, in a group that does not allow it, and twice', async () => {
    const bob = await user(server, 'rec', 'bob', 'b');
    await send(bob, { type: 'groupaction', kind: 'record' });
    await until('an error for bob', async () => (await errors(bob)).length > 0);
    assert.match((await errors(bob))[0]!, /^not-permitted: .*"record" permission/);

    const op2 = await user(server, 'norec', 'op', 'op');
    await send(op2, { type: 'groupaction', kind: 'record' });
    await until('an error for the operator of norec', async () => (await errors(op2)).length > 0);
    assert.match((await errors(op2))[0]!, /^not-permitted: /);

    const op = await user(server, 'rec', 'op', 'op');
    await send(op, { type: 'groupaction', kind: 'record' });
    await until('the recorder to join', async () => (await usernames(op)).includes('RECORDING'));
    await send(op, { type: 'groupaction', kind: 'record' });
    await until('an error for recording twice', async () => (await errors(op)).length > 0);
    assert.match((await errors(op))[0]!, /already being recorded/);
    // everybody leaves: the recorder goes too, and the group can be recorded again later
    for (const p of [bob, op, op2]) await p.context().close();
    const admin = { authorization: `Basic ${Buffer.from('admin:adminpw').toString('base64')}` };
    await until('the recorder to leave with the last member', async () => {
      const r = await fetch(`${server.url}/galene-api/v0/.groups/rec/.clients/`, { headers: admin });
      return r.status === 200 && ((await r.json()) as unknown[]).length === 0;
    });
    const op3 = await user(server, 'rec', 'op', 'op');
    assert.ok(!(await usernames(op3)).includes('RECORDING'));
    await op3.context().close();
  });

  test('a full disk stops the recording with a message to the operators; the server carries on', async () => {
    // A 1.5 MiB tmpfs for the recordings, in the server's own mount namespace.
    const mnt = await mkdtemp(join(tmpdir(), 'atrium-small-disk-'));
    const small = await startServer({
      groups: { full: recordable() },
      args: ['--media-address', '127.0.0.1'],
      recordingsDir: mnt,
      wrap: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=1536k tmpfs '${mnt}' && exec "$@"`, 'sh'],
    });
    try {
      const op = await user(small, 'full', 'op', 'op');
      const dave = await user(small, 'full', 'dave');
      await publish(dave, { width: 1280, height: 720 });
      await send(op, { type: 'groupaction', kind: 'record' });
      const message = await until(
        'the operator to be told that the disk is full',
        async () => {
          const m = (await messages(op, 'error')).find((t) => /Recording stopped/.test(t));
          return m;
        },
        90_000,
      );
      assert.match(message, /disk holding the recordings is full/);
      assert.ok(!(await messages(dave, 'error')).some((t) => /Recording/.test(t)), 'only operators are told');
      await until('the recorder to leave', async () => !(await usernames(op)).includes('RECORDING'));
      // the server carries on: chat, health, the group's media
      await send(dave, { type: 'chat', kind: '', value: 'still here' });
      await until('the chat message at the operator', async () =>
        op.evaluate(() => (window as unknown as { tc: { log: { type: string; value?: string }[] } }).tc.log.some((m) => m.type === 'chat' && m.value === 'still here')),
      );
      assert.equal((await fetch(`${small.url}/healthz`)).status, 200);
      const metrics = await (await fetch(`${small.url}/metrics`)).text();
      assert.match(metrics, /atrium_recording_errors_total\{kind="disk-full"\} 1/);
      const files = await recordingsOf(small, 'full');
      assert.equal(files.length, 1, 'the partial file is kept for whoever wants what it holds');
      assert.equal(files[0]!.complete, false);
      await op.context().close();
      await dave.context().close();
    } finally {
      await small.stop();
    }

    // A read-only file system: the recording cannot even start.
    const readOnly = await startServer({
      groups: { ro: recordable() },
      args: ['--media-address', '127.0.0.1'],
      recordingsDir: mnt,
      wrap: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o ro,size=64k tmpfs '${mnt}' && exec "$@"`, 'sh'],
    });
    try {
      const op = await user(readOnly, 'ro', 'op', 'op');
      await send(op, { type: 'groupaction', kind: 'record' });
      const message = await until('the operator to be told that nothing can be written', async () => (await messages(op, 'error')).find((t) => /Recording stopped/.test(t)));
      assert.match(message, /may not write the recordings .*read-only/);
      await until('the recorder to leave', async () => !(await usernames(op)).includes('RECORDING'));
      assert.match(await (await fetch(`${readOnly.url}/metrics`)).text(), /atrium_recording_errors_total\{kind="permission"\} 1/);
      await op.context().close();
    } finally {
      await readOnly.stop();
      await rm(mnt, { recursive: true, force: true });
    }
  });
}
