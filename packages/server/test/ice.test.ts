// ICE servers for clients: Galène's ice-servers.json, the --turn option, and
// TURN REST credentials (coturn use-auth-secret) that never expose the secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IceConfigError, configuredIceServers, loadIceServers, parseIceServers, rtcConfigurationFor, turnOptionServers, turnRestCredentials } from '../src/ice/index.ts';
import { silentLogger } from '../src/log.ts';

const NOW = new Date('2030-01-01T00:00:00Z'); // 1893456000

test('TURN REST credentials match a vector computed by hand', () => {
  // expiry = 1893456000 + 3600; credential computed with
  //   printf '%s' '1893459600:alice' | openssl dgst -sha1 -hmac north -binary | base64
  const got = turnRestCredentials('north', 'alice', 3600, NOW);
  assert.equal(got.username, '1893459600:alice');
  assert.equal(got.credential, 'JP3g8/LAP6+w6Yh5dlm/8rz7Z50=');
  assert.equal(got.credential, createHmac('sha1', 'north').update('1893459600:alice').digest('base64'));
});

test('TURN REST credentials: an empty user gives a bare expiry; bad input is refused', () => {
  const got = turnRestCredentials('north', '', 3600, NOW);
  assert.equal(got.username, '1893459600');
  assert.equal(got.credential, 'HsSccG8mJ8avdl11HDNjvNOUaHY=');
  assert.throws(() => turnRestCredentials('', 'alice', 3600, NOW), /secret is empty/);
  assert.throws(() => turnRestCredentials('north', 'alice', 0, NOW), /ttlSeconds/);
});

test("ice-servers.json in Galène's format parses: STUN, TURN with password, TURN with a shared secret", () => {
  const servers = parseIceServers(
    [
      { urls: ['stun:stun.example.org'] },
      { urls: 'turn:turn.example.org:443', username: 'galene', credential: 'password' },
      { urls: ['turn:turn.example.org:443', 'turn:turn.example.org:443?transport=tcp'], username: 'galene', credential: 'secret', credentialType: 'hmac-sha1' },
    ],
    'data/ice-servers.json',
  );
  assert.deepEqual(servers, [
    { urls: ['stun:stun.example.org'] },
    { urls: ['turn:turn.example.org:443'], username: 'galene', credential: 'password' },
    { urls: ['turn:turn.example.org:443', 'turn:turn.example.org:443?transport=tcp'], username: 'galene', credential: 'secret', credentialType: 'hmac-sha1' },
  ]);
});

test('ice-servers.json errors name the file, the entry and the field', () => {
  const bad = (json: unknown, message: RegExp) =>
    assert.throws(
      () => parseIceServers(json, 'data/ice-servers.json'),
      (e: unknown) => {
        assert.ok(e instanceof IceConfigError);
        assert.match(e.message, /^data\/ice-servers\.json: /);
        assert.match(e.message, message);
        return true;
      },
    );
  bad({ urls: ['stun:x'] }, /the file must be a JSON array/);
  bad([{ urls: ['stun:ok'] }, { urls: ['https://turn.example.org'] }], /entry \[1\] field "urls\[0\]" must be a stun:, stuns:, turn: or turns: URL/);
  bad([{ urls: [] }], /entry \[0\] field "urls" must list at least one URL/);
  bad([{ urls: ['turn:t'], credentialType: 'hmac-sha1' }], /entry \[0\] field "credential" must hold the secret/);
  bad([{ urls: ['turn:t'], credential: 'x' }], /entry \[0\] field "username" is required for a turn: URL/);
  bad([{ urls: ['turn:t'], username: 'u', credential: { accessToken: 'x' }, credentialType: 'oauth' }], /"oauth" is not supported/);
  // A misspelt key could otherwise send a shared secret to clients as a password.
  bad([{ urls: ['turn:t'], username: 'u', credential: 'secret', credentialtype: 'hmac-sha1' }], /credentialtype/);
});

test('loadIceServers: a missing file means no ICE servers at all; a broken one names the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'atrium-ice-'));
  try {
    assert.deepEqual(await loadIceServers(dir, silentLogger()), []);
    await writeFile(join(dir, 'ice-servers.json'), '[{"urls": ["stun:stun.example.org"]}]');
    assert.deepEqual(await loadIceServers(dir, silentLogger()), [{ urls: ['stun:stun.example.org'] }]);
    await writeFile(join(dir, 'ice-servers.json'), '[{"urls": ');
    await assert.rejects(loadIceServers(dir, silentLogger()), (e: unknown) => e instanceof IceConfigError && e.message.startsWith(join(dir, 'ice-servers.json')) && /not valid JSON/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('rtcConfigurationFor turns shared secrets into credentials and never leaks them', () => {
  const servers = parseIceServers(
    [
      { urls: ['stun:stun.example.org'] },
      { urls: ['turn:static.example.org'], username: 'u', credential: 'static-password' },
      { urls: ['turns:rest.example.org:5349'], username: 'galene', credential: 'file-secret', credentialType: 'hmac-sha1' },
    ],
    'test',
  );
  const cli = turnOptionServers({ urls: ['turn:cli.example.org:3478'], secret: 'cli-secret', ttl: 600 });
  const config = rtcConfigurationFor([...servers, ...cli], 'client-7', NOW);

  const text = JSON.stringify(config);
  assert.ok(!text.includes('file-secret') && !text.includes('cli-secret'), text);
  assert.equal(config.iceTransportPolicy, undefined);
  const [stun, fixed, fromFile, fromCli] = config.iceServers ?? [];
  assert.deepEqual(stun, { urls: ['stun:stun.example.org'] });
  assert.deepEqual(fixed, { urls: ['turn:static.example.org'], username: 'u', credential: 'static-password' });

  // The file entry's username is the user part (Galène), valid 24 hours.
  assert.equal(fromFile?.username, `${1893456000 + 86400}:galene`);
  assert.equal(fromFile?.credential, createHmac('sha1', 'file-secret').update(fromFile!.username!).digest('base64'));
  // The CLI entry has no username: the per-client label is used, with the option's ttl.
  assert.equal(fromCli?.username, `${1893456000 + 600}:client-7`);
  assert.equal(fromCli?.credential, createHmac('sha1', 'cli-secret').update(fromCli!.username!).digest('base64'));

  assert.equal(rtcConfigurationFor(servers, 'x', NOW, { relayOnly: true }).iceTransportPolicy, 'relay');
  assert.deepEqual(rtcConfigurationFor([], 'x', NOW), { iceServers: [] });
});

test('the --turn option is validated and defaults to a 24 hour lifetime; file servers come first', async () => {
  assert.deepEqual(turnOptionServers({ urls: ['turn:t.example.org'], secret: 's' }), [{ urls: ['turn:t.example.org'], credential: 's', credentialType: 'hmac-sha1', ttl: 86400 }]);
  assert.throws(() => turnOptionServers({ urls: ['turn:t'], secret: '' }), /^IceConfigError: --turn: field "secret" must not be empty$/m);
  assert.throws(() => turnOptionServers({ urls: ['http://t'], secret: 's' }), /--turn: field "urls\[0\]"/);
  assert.throws(() => turnOptionServers({ urls: ['turn:t'], secret: 's', ttl: -1 }), /field "ttl" must be a positive/);

  const dir = await mkdtemp(join(tmpdir(), 'atrium-ice-'));
  try {
    await writeFile(join(dir, 'ice-servers.json'), '[{"urls": "stun:file.example.org"}]');
    const all = await configuredIceServers({ dataDir: dir, log: silentLogger(), turn: { urls: ['turn:cli.example.org'], secret: 's' } });
    assert.deepEqual(
      all.map((s) => s.urls[0]),
      ['stun:file.example.org', 'turn:cli.example.org'],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
