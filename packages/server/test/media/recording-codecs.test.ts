// Recording other codecs and refusing to record: H.264 goes to MP4 and VP9
// to WebM, both read by ffprobe and decoded by ffmpeg; record is refused to
// a user without the permission, in a group that does not allow it, and a
// second time; the recorder leaves with the last member. Chromium pages
// through a real `atrium serve`, inside a loopback-only network namespace.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 110_000 })) {
  const { until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  const { ADMIN_CONFIG, basic, decodeErrors, probe, recordable, recordingPages, requireFfmpeg, sleep } = await import('./support/recording.ts');
  requireFfmpeg();
  let server: Awaited<ReturnType<typeof startServer>>;
  let pages: Awaited<ReturnType<typeof recordingPages>>;

  before(async () => {
    server = await startServer({
      groups: {
        rec: recordable(),
        h264: recordable({ codecs: ['h264', 'opus'] }),
        vp9: recordable({ codecs: ['vp9', 'opus'] }),
        norec: { users: { op: { password: 'op', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
      },
      args: ['--media-address', '127.0.0.1'],
      config: ADMIN_CONFIG,
    });
    pages = await recordingPages();
  });

  after(async () => {
    await pages?.close();
    await server?.stop();
  });

  test('H.264 goes to MP4, VP9 to WebM: both readable and decodable', async () => {
    for (const [group, ext, codec] of [
      ['h264', '.mp4', 'h264'],
      ['vp9', '.webm', 'vp9'],
    ] as const) {
      const op = await pages.user(server, group, 'op', 'op');
      const carol = await pages.user(server, group, 'carol');
      await pages.publish(carol);
      await pages.send(op, { type: 'groupaction', kind: 'record' });
      await until('the recorder to join', async () => (await pages.usernames(op)).includes('RECORDING'));
      await sleep(4000);
      await pages.send(op, { type: 'groupaction', kind: 'unrecord' });
      const [file] = await until(`the ${codec} recording`, async () => {
        const list = await pages.recordingsOf(server, group);
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

  test('record is refused without the record permission, in a group that does not allow it, and twice', async () => {
    const bob = await pages.user(server, 'rec', 'bob', 'b');
    await pages.send(bob, { type: 'groupaction', kind: 'record' });
    await until('an error for bob', async () => (await pages.errors(bob)).length > 0);
    assert.match((await pages.errors(bob))[0]!, /^not-permitted: .*"record" permission/);

    const op2 = await pages.user(server, 'norec', 'op', 'op');
    await pages.send(op2, { type: 'groupaction', kind: 'record' });
    await until('an error for the operator of norec', async () => (await pages.errors(op2)).length > 0);
    assert.match((await pages.errors(op2))[0]!, /^not-permitted: /);

    const op = await pages.user(server, 'rec', 'op', 'op');
    await pages.send(op, { type: 'groupaction', kind: 'record' });
    await until('the recorder to join', async () => (await pages.usernames(op)).includes('RECORDING'));
    await pages.send(op, { type: 'groupaction', kind: 'record' });
    await until('an error for recording twice', async () => (await pages.errors(op)).length > 0);
    assert.match((await pages.errors(op))[0]!, /already being recorded/);
    // everybody leaves: the recorder goes too, and the group can be recorded again later
    for (const p of [bob, op, op2]) await p.context().close();
    const admin = basic('admin:adminpw');
    await until('the recorder to leave with the last member', async () => {
      const r = await fetch(`${server.url}/galene-api/v0/.groups/rec/.clients/`, { headers: admin });
      return r.status === 200 && ((await r.json()) as unknown[]).length === 0;
    });
    const op3 = await pages.user(server, 'rec', 'op', 'op');
    assert.ok(!(await pages.usernames(op3)).includes('RECORDING'));
    await op3.context().close();
  });
}
