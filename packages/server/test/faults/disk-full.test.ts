// Fault: the disk fills up while the server writes a group file (admin API)
// or a token (admin API, and an invitation made from inside a group). The
// client gets an error that says the disk is full and that nothing changed;
// the files on disk are the previous versions, whole, with no temporary
// file left beside them; the server keeps serving with what it had, and
// once there is space again the same write succeeds. A real server process
// on a 1 MiB tmpfs in a mount namespace of its own (support/small-disk.ts).
import assert from 'node:assert/strict';
import { open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { onSmallDisk } from './support/small-disk.ts';

const disk = onSmallDisk(import.meta.url);
if (disk !== undefined) {
  const { startServer } = await import('../support/server-process.ts');
  const { GaleneTestClient } = await import('../support/galene-client.ts');
  const filler = join(disk, 'filler');
  const admin = { authorization: `Basic ${Buffer.from('root:rootpw').toString('base64')}` };
  let server: Awaited<ReturnType<typeof startServer>>;

  before(async () => {
    server = await startServer({
      root: disk,
      args: ['--no-media'],
      config: { writableGroups: true, users: { root: { password: 'rootpw', permissions: 'admin' } } },
      groups: { g: { displayName: 'Before', users: { op: { password: 'oppw', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } } },
    });
  });
  after(async () => {
    await rm(filler, { force: true });
    await server?.stop();
  });

  /** Takes every free block of the tmpfs. */
  async function fillDisk(): Promise<void> {
    const fh = await open(filler, 'a');
    try {
      for (const size of [65536, 4096, 512, 1]) {
        for (;;) {
          try {
            await fh.write(Buffer.alloc(size, 1));
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw e;
          }
        }
      }
    } finally {
      await fh.close();
    }
  }

  const api = (path: string, init: RequestInit = {}) => fetch(`${server.url}/galene-api/v0/${path}`, { ...init, headers: { ...admin, ...(init.headers as Record<string, string>) } });
  const tempFiles = async (dir: string) => (await readdir(dir)).filter((f) => f.endsWith('.tmp'));

  test('a full disk: group and token writes fail with a clear error, the files stay whole, and succeed once there is room', async () => {
    // A token before the disk fills up, so there is a token file to keep whole.
    const first = await api('.groups/g/.tokens/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ expires: '2099-01-01T00:00:00Z' }) });
    assert.equal(first.status, 201, await first.text());
    const groupFile = join(server.groupsDir, 'g.json');
    const tokenFile = join(server.dataDir, 'var', 'tokens.jsonl');
    const groupBefore = await readFile(groupFile, 'utf8');
    const tokensBefore = await readFile(tokenFile, 'utf8');

    await fillDisk();
    const put = await api('.groups/g', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ displayName: 'After', description: 'x'.repeat(8000) }) });
    const putText = await put.text();
    assert.equal(put.status, 507, putText);
    assert.match(putText, /disk is full \(ENOSPC\); nothing was changed/);
    const tok = await api('.groups/g/.tokens/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ expires: '2099-01-01T00:00:00Z', issuedBy: 'x'.repeat(200) }),
    });
    const tokText = await tok.text();
    assert.equal(tok.status, 507, tokText);
    assert.match(tokText, /could not save the token: its disk is full/);

    // From inside the group: an operator's invitation.
    const op = await GaleneTestClient.connect(server.wsUrl);
    assert.equal((await op.join('g', 'op', 'oppw')).kind, 'join');
    op.send({ type: 'groupaction', kind: 'maketoken', value: { username: 'x'.repeat(200) } });
    // Galène's client reads a refused invitation as a "token" message with an error.
    const err = await op.next((f) => f.type === 'usermessage' && f.kind === 'token');
    assert.equal(err.error, 'internal');
    assert.match(err.value, /could not save the invitation: its disk is full/);

    // Nothing changed on disk, nothing half-written is left, and the server still serves the old definition.
    assert.equal(await readFile(groupFile, 'utf8'), groupBefore);
    assert.equal(await readFile(tokenFile, 'utf8'), tokensBefore);
    assert.deepEqual(await tempFiles(server.groupsDir), []);
    assert.deepEqual(await tempFiles(join(server.dataDir, 'var')), []);
    const status = await (await fetch(`${server.url}/group/g/.status`)).json();
    assert.equal(status.displayName, 'Before');
    const guest = await GaleneTestClient.connect(server.wsUrl);
    assert.equal((await guest.join('g', 'guest', 'x')).kind, 'join', 'joins still work');
    assert.match(server.output(), /cannot write a group file; the previous version is unchanged/);

    await rm(filler);
    const retry = await api('.groups/g', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ displayName: 'After' }) });
    assert.equal(retry.status, 204, await retry.text());
    assert.equal(JSON.parse(await readFile(groupFile, 'utf8')).displayName, 'After');
    op.send({ type: 'groupaction', kind: 'maketoken', value: {} });
    await op.next((f) => f.type === 'usermessage' && f.kind === 'token');
    op.close();
    guest.close();
  });
}
