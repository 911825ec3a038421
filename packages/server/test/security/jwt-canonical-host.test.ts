// A group that opts out of the full-URL audience ("token-audience": "path",
// Galène's rule) still has its tokens bound to this server when
// data/config.json names a canonicalHost: the audience's path must be the
// group's and its host the canonical one, for joins and the admin API alike.
// (The config field was read but not applied to the verifier before.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as jose from 'jose';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

let server: RunningServer;
const secret = crypto.getRandomValues(new Uint8Array(32));

before(async () => {
  server = await startServer({
    args: ['--no-media'],
    config: { canonicalHost: 'meet.example.org' },
    groups: { p: { authKeys: [{ kty: 'oct', k: Buffer.from(secret).toString('base64url'), alg: 'HS256' }], 'token-audience': 'path' } },
  });
});
after(() => server?.stop());

const sign = (aud: string, permissions: string[]) => new jose.SignJWT({ permissions }).setProtectedHeader({ alg: 'HS256' }).setSubject('vimes').setAudience(aud).setExpirationTime('5m').sign(secret);

test('with "token-audience": "path" and a canonicalHost, a token for the group path on another host is refused; on the canonical host it is accepted', async () => {
  const c = await GaleneTestClient.connect(server.wsUrl);
  const elsewhere = await c.join('p', undefined, undefined, { token: await sign('https://evil.example/group/p/', ['present']) });
  assert.equal(elsewhere.kind, 'fail', JSON.stringify(elsewhere));
  assert.equal(elsewhere.error, 'not-authorised');
  assert.match(elsewhere.value, /meet\.example\.org/, 'the refusal names the canonical host');
  const home = await c.join('p', undefined, undefined, { token: await sign('https://MEET.example.org/group/p/', ['present']) });
  assert.equal(home.kind, 'join', JSON.stringify(home));
  c.close();

  const admin = async (aud: string) => (await fetch(`${server.url}/galene-api/v0/.groups/p`, { headers: { authorization: `Bearer ${await sign(aud, ['admin'])}` } })).status;
  assert.equal(await admin('https://evil.example/group/p/'), 401);
  assert.equal(await admin('https://meet.example.org/group/p/'), 200);
});
