// A server killed (SIGKILL) in the middle of a recording: the recording that
// was finished before is intact, the one in progress is left as a `.part`
// file (never under a finished file's name, so no player is handed a file
// it refuses), and a restarted server lists the two for what they are.
// Chromium pages through a real `atrium serve`, inside a loopback-only
// network namespace; Debian's ffprobe/ffmpeg judge the files.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url)) {
  const { until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  const { decodeErrors, probe, recordable, recordingPages, requireFfmpeg, sleep } = await import('./support/recording.ts');
  requireFfmpeg();
  let pages: Awaited<ReturnType<typeof recordingPages>>;
  let dir: string;

  before(async () => {
    pages = await recordingPages();
    dir = await mkdtemp(join(tmpdir(), 'atrium-recordings-crash-'));
  });

  after(async () => {
    await pages?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const filesOf = async (group: string) => (await readdir(join(dir, group)).catch(() => [] as string[])).sort();

  test('a server killed while recording leaves the finished file intact and the unfinished one as .part', async () => {
    const srv = await startServer({ groups: { crash: recordable() }, args: ['--media-address', '127.0.0.1'], recordingsDir: dir });
    let killed = false;
    try {
      const op = await pages.user(srv, 'crash', 'op', 'op');
      const dave = await pages.user(srv, 'crash', 'dave');
      await pages.publish(dave);

      // A first recording, finished normally.
      await pages.send(op, { type: 'groupaction', kind: 'record' });
      await until('the recorder to join', async () => (await pages.usernames(op)).includes('RECORDING'));
      await sleep(4000);
      await pages.send(op, { type: 'groupaction', kind: 'unrecord' });
      const finished = await until('the first recording to be finished', async () => {
        const names = await filesOf('crash');
        return names.length > 0 && !names.some((n) => n.endsWith('.part')) ? names : undefined;
      });
      assert.equal(finished.length, 1, finished.join());

      // A second one, cut by SIGKILL once it holds media.
      await until('the recorder to leave', async () => !(await pages.usernames(op)).includes('RECORDING'));
      await pages.send(op, { type: 'groupaction', kind: 'record' });
      const part = await until('the second recording to hold media', async () => {
        for (const n of await filesOf('crash')) if (n.endsWith('.part') && (await stat(join(dir, 'crash', n))).size > 20_000) return n;
        return undefined;
      });
      const exited = new Promise((r) => srv.process.once('exit', r));
      srv.process.kill('SIGKILL');
      await exited;
      killed = true;

      const left = await filesOf('crash');
      assert.deepEqual(left, [...finished, part].sort(), 'the finished file and the .part, nothing else');
      // The finished file plays: its streams, its length, every frame decodes.
      const p = await probe(join(dir, 'crash', finished[0]!));
      assert.deepEqual(p.streams.map((s) => s.type).sort(), ['audio', 'video']);
      assert.ok(p.duration > 2, `the finished recording lasts ${p.duration} s`);
      assert.equal(await decodeErrors(join(dir, 'crash', finished[0]!)), '');

      // A restarted server on the same folder lists both, the cut one as incomplete.
      const again = await startServer({ groups: { crash: recordable() }, args: ['--media-address', '127.0.0.1'], recordingsDir: dir });
      try {
        const listed = await pages.recordingsOf(again, 'crash');
        assert.deepEqual(
          listed.map((f) => [f.name, f.complete]).sort(),
          [
            [finished[0]!, true],
            [part, false],
          ].sort(),
        );
      } finally {
        await again.stop();
      }
      await op.context().close();
      await dave.context().close();
    } finally {
      if (!killed) await srv.stop();
      // stop() tidies the server's temporary folder; a killed server's is removed here.
      else await rm(join(srv.dataDir, '..'), { recursive: true, force: true });
    }
  });
}
