// Disk errors while recording: a full disk (a small tmpfs in the server's
// own mount namespace) and a read-only one stop the recording with a message
// to the operators, counted in /metrics, and the server carries on. Chromium
// pages through a real `atrium serve`, inside a loopback-only network
// namespace.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 110_000 })) {
  const { until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  const { recordable, recordingPages, requireFfmpeg } = await import('./support/recording.ts');
  requireFfmpeg();
  let pages: Awaited<ReturnType<typeof recordingPages>>;

  before(async () => {
    pages = await recordingPages();
  });

  after(async () => {
    await pages?.close();
  });

  test('a full disk stops the recording with a message to the operators; the server carries on', async () => {
    // A 256 KiB tmpfs for the recordings, in the server's own mount namespace.
    const mnt = await mkdtemp(join(tmpdir(), 'atrium-small-disk-'));
    const small = await startServer({
      groups: { full: recordable() },
      args: ['--media-address', '127.0.0.1'],
      recordingsDir: mnt,
      wrap: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=256k tmpfs '${mnt}' && exec "$@"`, 'sh'],
    });
    try {
      const op = await pages.user(small, 'full', 'op', 'op');
      const dave = await pages.user(small, 'full', 'dave');
      await pages.publish(dave, { width: 1280, height: 720 });
      await pages.send(op, { type: 'groupaction', kind: 'record' });
      const message = await until(
        'the operator to be told that the disk is full',
        async () => {
          const m = (await pages.messages(op, 'error')).find((t) => /Recording stopped/.test(t));
          return m;
        },
        90_000,
      );
      assert.match(message, /disk holding the recordings is full/);
      assert.ok(!(await pages.messages(dave, 'error')).some((t) => /Recording/.test(t)), 'only operators are told');
      await until('the recorder to leave', async () => !(await pages.usernames(op)).includes('RECORDING'));
      // the server carries on: the group's media, chat, health
      await pages.call(op, 'request', { '': ['audio', 'video'] });
      await until("the operator to decode dave's stream", async () =>
        (await pages.call<{ username: string; framesDecoded?: number }[]>(op, 'downStats')).some((d) => d.username === 'dave' && (d.framesDecoded ?? 0) > 10),
      );
      await pages.send(dave, { type: 'chat', kind: '', value: 'still here' });
      await until('the chat message at the operator', async () =>
        op.evaluate(() => (window as unknown as { tc: { log: { type: string; value?: string }[] } }).tc.log.some((m) => m.type === 'chat' && m.value === 'still here')),
      );
      assert.equal((await fetch(`${small.url}/healthz`)).status, 200);
      const metrics = await (await fetch(`${small.url}/metrics`)).text();
      assert.match(metrics, /atrium_recording_errors_total\{kind="disk-full"\} 1/);
      const files = await pages.recordingsOf(small, 'full');
      assert.equal(files.length, 1, 'the partial file is kept for whoever wants what it holds');
      assert.equal(files[0]!.complete, false);
      await op.context().close();
      await dave.context().close();
    } finally {
      await small.stop();
      await rm(mnt, { recursive: true, force: true });
    }
  });

  test('a read-only file system: the recording cannot even start, and the operators are told why', async () => {
    const mnt = await mkdtemp(join(tmpdir(), 'atrium-read-only-'));
    const readOnly = await startServer({
      groups: { ro: recordable() },
      args: ['--media-address', '127.0.0.1'],
      recordingsDir: mnt,
      wrap: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o ro,size=64k tmpfs '${mnt}' && exec "$@"`, 'sh'],
    });
    try {
      const op = await pages.user(readOnly, 'ro', 'op', 'op');
      await pages.send(op, { type: 'groupaction', kind: 'record' });
      const message = await until('the operator to be told that nothing can be written', async () => (await pages.messages(op, 'error')).find((t) => /Recording stopped/.test(t)));
      assert.match(message, /may not write the recordings .*read-only/);
      await until('the recorder to leave', async () => !(await pages.usernames(op)).includes('RECORDING'));
      assert.match(await (await fetch(`${readOnly.url}/metrics`)).text(), /atrium_recording_errors_total\{kind="permission"\} 1/);
      await op.context().close();
    } finally {
      await readOnly.stop();
      await rm(mnt, { recursive: true, force: true });
    }
  });
}
