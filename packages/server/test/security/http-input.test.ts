// Bad input over HTTP gets a 4xx with a reason, never a 500 (found by the
// WHIP/WHEP fuzz target, test/fuzz/targets/whip.ts; its cases are in
// test/fuzz/regressions/whip.json): an ICE candidate the media engine cannot
// use, trickled to a WHIP session, and a group page or recordings path whose
// name decodes to characters a Location header cannot hold.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as jose from 'jose';
import { offerOf } from '../fuzz/targets/whip.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

const servers: RunningServer[] = [];
after(() => Promise.all(servers.map((s) => s.stop())));
const SECRET = new TextEncoder().encode('http-input-test-secret-32-bytes!');

test('WHIP: a trickled candidate the engine cannot use (in no media section) is a 400 with the reason; a good one is taken', async () => {
  // A media engine, no browser: the offer is answered and the session exists; nothing needs to connect.
  const s = await startServer({
    args: ['--media-address', '127.0.0.1'],
    groups: { live: { authKeys: [{ kty: 'oct', alg: 'HS256', k: Buffer.from(SECRET).toString('base64url') }] } },
  });
  servers.push(s);
  const token = await new jose.SignJWT({ permissions: ['present'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('cam').setAudience(`${s.url}/group/live/`).setExpirationTime('1h').sign(SECRET);
  const auth = { authorization: `Bearer ${token}` };
  const created = await fetch(`${s.url}/group/live/.whip`, { method: 'POST', headers: { ...auth, 'content-type': 'application/sdp' }, body: offerOf('abcd') });
  assert.equal(created.status, 201, await created.clone().text());
  await created.arrayBuffer();
  const location = new URL(created.headers.get('location')!, s.url).href;
  const patch = (body: string) => fetch(location, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/trickle-ice-sdpfrag' }, body });
  const candidate = 'a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n';
  const noMid = await patch(candidate);
  assert.equal(noMid.status, 400, 'a candidate in no media section');
  assert.match(await noMid.text(), /the ICE candidate for stream "[^"]+" was refused: .+/);
  assert.equal((await patch(`m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n${candidate}`)).status, 204, 'a candidate for section 0');
  const done = await fetch(location, { method: 'DELETE', headers: auth });
  assert.equal(done.status, 200);
  assert.doesNotMatch(s.output(), /"level":50/, 'no error-level log line');
});

test('a group page or recordings path whose name holds CR LF is redirected as sent (percent-encoded), not a 500', async () => {
  const s = await startServer({ args: ['--no-media'], groups: { g: {} } });
  servers.push(s);
  const page = await fetch(`${s.url}/group/x%0D%0ASet-Cookie:%20a=b`, { redirect: 'manual' });
  assert.equal(page.status, 301);
  assert.equal(page.headers.get('location'), '/group/x%0D%0ASet-Cookie:%20a=b/');
  assert.equal(page.headers.get('set-cookie'), null);
  const recordings = await fetch(`${s.url}/recordings/x%0D%0Ay`, { redirect: 'manual' });
  assert.equal(recordings.status, 308);
  assert.equal(recordings.headers.get('location'), '/recordings/x%0D%0Ay/');
  // Followed, both are plain refusals.
  assert.equal((await fetch(`${s.url}/group/x%0D%0Ay/`)).status, 404);
  assert.doesNotMatch(s.output(), /"level":50/, 'no error-level log line');
});
