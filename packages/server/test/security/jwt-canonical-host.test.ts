// data/config.json's canonicalHost binds signed tokens to this server. The
// server's name is otherwise the request's Host header, which the client
// chooses: a token whose audience is https://evil.example/group/g/ (minted
// for another server sharing the group's key) was accepted by sending
// "Host: evil.example". With canonicalHost set, the full-URL audience is
// compared with it, whatever the Host header; and a group that opts out
// ("token-audience": "path", Galène's rule) needs its path on the canonical
// host. For joins and the admin API alike. (The field was read and not
// applied before.)
import assert from 'node:assert/strict';
import { request } from 'node:http';
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
    groups: {
      g: { authKeys: [{ kty: 'oct', k: Buffer.from(secret).toString('base64url'), alg: 'HS256' }] },
      p: { authKeys: [{ kty: 'oct', k: Buffer.from(secret).toString('base64url'), alg: 'HS256' }], 'token-audience': 'path' },
    },
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

/** An admin API GET with the Host header of our choice (fetch does not let one set it). */
function getWithHost(path: string, host: string, token: string): Promise<number> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: `/galene-api/v0/${path}`, headers: { host, authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('with a canonicalHost, a token for another server is refused even when the request claims that server in its Host header', async () => {
  // The server runs without TLS here, so its group URL is http://meet.example.org/group/g/.
  assert.equal(await getWithHost('.groups/g', 'evil.example', await sign('http://evil.example/group/g/', ['admin'])), 401);
  assert.equal(await getWithHost('.groups/g', 'evil.example', await sign('http://meet.example.org/group/g/', ['admin'])), 200);
  const c = await GaleneTestClient.connect(server.wsUrl);
  const ok = await c.join('g', undefined, undefined, { token: await sign('http://meet.example.org/group/g/', ['present']) });
  assert.equal(ok.kind, 'join', JSON.stringify(ok));
  c.close();
});
