// Recording a group to disk, end to end: Chromium pages publish through a
// real `atrium serve`, an operator records with Galène's groupaction, and
// Debian's ffprobe and ffmpeg judge the files; then the files over HTTP, as
// /recordings/<group>/ serves them and the admin API deletes them. Runs
// inside a loopback-only network namespace. (The codecs and the refusals:
// recording-codecs.test.ts; disk errors: recording-disk.test.ts.)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from './support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 110_000 })) {
  const { until } = await import('../support/browser.ts');
  const { startServer } = await import('../support/server-process.ts');
  const { ADMIN_CONFIG, basic, decodeErrors, frameWidths, probe, recordable, recordingPages, requireFfmpeg, sleep } = await import('./support/recording.ts');
  requireFfmpeg();
  let server: Awaited<ReturnType<typeof startServer>>;
  let pages: Awaited<ReturnType<typeof recordingPages>>;

  before(async () => {
    server = await startServer({
      groups: {
        rec: recordable(),
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

  test('an operator records two publishers through a layer switch, a replace and a leave/rejoin: ffprobe reads every file, ffmpeg decodes it', async () => {
    const op = await pages.user(server, 'rec', 'op', 'op');
    const alice = await pages.user(server, 'rec', 'alice');
    const bob = await pages.user(server, 'rec', 'bob', 'b');
    const a1 = await pages.publish(alice, { simulcast: true, width: 640, height: 480 });
    const b1 = await pages.publish(bob);

    const recordAt = Date.now();
    await pages.send(op, { type: 'groupaction', kind: 'record' });
    await until("RECORDING in everyone's user list", async () => {
      for (const p of [op, alice, bob]) if (!(await pages.usernames(p)).includes('RECORDING')) return false;
      return true;
    });
    await sleep(6000);
    // The publisher drops its high layer (as when short of bandwidth): the recording follows it down.
    await pages.call(alice, 'setLayerActive', a1.id, 'h', false);
    await sleep(4000);
    // Bob leaves and comes back.
    const bobLeft = Date.now();
    await bob.evaluate(() => (window as unknown as { tc: { close(): void } }).tc.close());
    await sleep(2000);
    await pages.joinGroup(bob, server, 'rec', 'bob', 'b');
    const b2 = await pages.publish(bob);
    await sleep(1000);
    // Alice replaces her camera.
    const replacedAt = Date.now();
    const a2 = await pages.publish(alice, { replace: a1.id, width: 640, height: 480 });
    await sleep(12_000);
    const unrecordAt = Date.now();
    await pages.send(op, { type: 'groupaction', kind: 'unrecord' });
    await until('RECORDING to leave the user lists', async () => !(await pages.usernames(op)).includes('RECORDING') && !(await pages.usernames(alice)).includes('RECORDING'));
    assert.ok(unrecordAt - recordAt >= 20_000, 'recorded for at least 20 s');

    const files = await until('four finished recordings', async () => {
      const list = await pages.recordingsOf(server, 'rec');
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
    // The four files are judged side by side (ffprobe and ffmpeg are the slow part).
    const judge = async ([file, wallMs]: [string, number]) => {
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
    };
    await Promise.all(expected.map(judge));
    // Alice's first stream went from her high layer to her low one, in the same file.
    assert.deepEqual(await frameWidths(expected[0]![0]), [640, 160], 'the recording followed the layer switch');
    for (const p of [op, alice, bob]) assert.deepEqual(await pages.errors(p), []);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /atrium_recording_files_total [4-9]/);
    assert.match(metrics, /atrium_recording_bytes_total [1-9]/);
    assert.match(metrics, /atrium_recordings_active 0/);
    for (const p of [op, alice, bob]) await p.context().close();
  });

  test('the recordings over HTTP: a listing (JSON and HTML) and range downloads for users with record, refused to others; the admin API deletes', async () => {
    const base = `${server.url}/recordings/rec/`;
    const list = await pages.recordingsOf(server, 'rec');
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
      (await pages.recordingsOf(server, 'rec')).map((f) => f.name),
      list.slice(2).map((f) => f.name),
    );
  });
}
