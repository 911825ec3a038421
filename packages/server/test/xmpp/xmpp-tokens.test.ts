// Token logins over XMPP against a real server process: a JWT signed with a
// group's authKeys on the WebSocket URL (`?token=`, as Prosody's token
// authentication reads it, with SASL ANONYMOUS from the unchanged
// @xmpp/client), and a stateful token made by `atrium token` in SASL
// OAUTHBEARER (RFC 7628); each lets its user into the room with the claimed
// name and permissions, next to a Galène-protocol member who sees it. An
// expired JWT and an unknown token are refused at SASL with the reason, and
// a token for one group opens no other.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { SignJWT } from 'jose';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { MUC_USER, RawXmpp, connectXmpp } from './support.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'atrium.mjs');
const secret = new TextEncoder().encode('a-shared-secret-of-exactly-32-by');
const ROOM = 'signed@conference.localhost';

let server: RunningServer;
const closers: (() => unknown)[] = [];

before(async () => {
  server = await startServer({
    groups: {
      signed: { authKeys: [{ kty: 'oct', alg: 'HS256', kid: 'hs', k: Buffer.from(secret).toString('base64url') }] },
      other: { users: { someone: { password: 'pw', permissions: 'present' } } },
    },
  });
});

after(async () => {
  for (const c of closers.reverse()) await c();
  await server.stop();
});

function jwt(claims: { sub: string; permissions: string[]; exp?: number | string; group?: string }): Promise<string> {
  return new SignJWT({ permissions: claims.permissions })
    .setProtectedHeader({ alg: 'HS256', kid: 'hs' })
    .setSubject(claims.sub)
    .setAudience(`${server.url}/group/${claims.group ?? 'signed'}/`)
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? '5m')
    .sign(secret);
}

async function raw(query = ''): Promise<RawXmpp> {
  const r = await RawXmpp.connect(server.url, query);
  closers.push(() => r.close());
  return r;
}

const oauthBearer = (token: string) => Buffer.from(`n,,\u0001auth=Bearer ${token}\u0001\u0001`).toString('base64');

test('a JWT on ?token= logs in with ANONYMOUS and joins as its subject, with its permissions; a Galène member sees it', async () => {
  const galToken = await jwt({ sub: 'gal', permissions: ['present'] });
  const gal = await GaleneTestClient.connect(server.wsUrl);
  closers.push(() => gal.close());
  assert.equal((await gal.join('signed', undefined, undefined, { token: galToken })).kind, 'join');

  const token = await jwt({ sub: 'jay', permissions: ['op', 'present'] });
  const x = await connectXmpp(server.url, { query: `?token=${encodeURIComponent(token)}` });
  closers.push(() => x.stop());
  const self = await x.join(ROOM, 'jay');
  assert.equal(self.attrs.type, undefined, self.toString());
  const item = self.getChild('x', MUC_USER)?.getChild('item');
  assert.equal(item?.attrs.role, 'moderator');
  assert.equal(item?.attrs.affiliation, 'owner');
  // The Galène member was there first: an occupant for the XMPP client; the XMPP user is a user for it, named by the token.
  assert.equal(x.stanzas.all((s) => s.is('presence') && s.attrs.from === `${ROOM}/gal` && s.attrs.type === undefined).length, 1, 'the Galène member is an occupant');
  const added = await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'jay', 5000, 'the XMPP user');
  assert.deepEqual([...((added.permissions as string[]) ?? [])].sort(), ['op', 'present']);
});

test('a stateful token from `atrium token` in SASL OAUTHBEARER joins the room as its user', async () => {
  const run = promisify(execFile);
  const { stdout } = await run(process.execPath, [
    BIN,
    'token',
    '--group',
    'signed',
    '--user',
    'invitee',
    '--permissions',
    'present',
    '--expires',
    '1h',
    '--data',
    server.dataDir,
    '--url',
    server.url,
  ]);
  const token = new URL(stdout.trim()).searchParams.get('token')!;
  assert.ok(token);
  const r = await raw();
  const features = await r.open();
  // OAUTHBEARER is taken though not listed (strophe.js would pick it for anonymous logins, see sasl.ts).
  assert.deepEqual(
    features
      .getChild('mechanisms')
      ?.getChildren('mechanism')
      .map((m) => m.getText()),
    ['PLAIN', 'ANONYMOUS'],
  );
  r.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="OAUTHBEARER">${oauthBearer(token)}</auth>`);
  await r.next((e) => e.is('success'), 'SASL success');
  await r.open();
  r.send('<iq xmlns="jabber:client" type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>');
  await r.next((e) => e.is('iq') && e.attrs.id === 'b' && e.attrs.type === 'result', 'bind');
  r.send(`<presence xmlns="jabber:client" to="${ROOM}/inv"><x xmlns="http://jabber.org/protocol/muc"/></presence>`);
  const self = await r.next((e) => e.is('presence') && e.attrs.from === `${ROOM}/inv`, 'self-presence');
  assert.equal(self.attrs.type, undefined, self.toString());
  assert.equal(self.getChild('x', MUC_USER)?.getChild('item')?.attrs.role, 'participant');
  // The token is for "signed": another group does not take it.
  r.send(`<presence xmlns="jabber:client" to="other@conference.localhost/inv"><x xmlns="http://jabber.org/protocol/muc"/></presence>`);
  const refused = await r.next((e) => e.is('presence') && e.attrs.from === 'other@conference.localhost/inv', 'the refusal for another group');
  assert.equal(refused.attrs.type, 'error', refused.toString());
  assert.ok(refused.getChild('error')?.getChild('not-authorized'), refused.toString());
});

test('an expired JWT on ?token= and an unknown token in OAUTHBEARER are refused at SASL with the reason', async () => {
  const expired = await jwt({ sub: 'late', permissions: ['present'], exp: Math.floor(Date.now() / 1000) - 3600 });
  await assert.rejects(connectXmpp(server.url, { query: `?token=${encodeURIComponent(expired)}` }), (e: Error & { condition?: string }) => {
    assert.equal(e.condition, 'not-authorized');
    assert.match(e.message, /not valid for any group/);
    return true;
  });
  const forOther = await jwt({ sub: 'elsewhere', permissions: ['present'], group: 'other' });
  await assert.rejects(connectXmpp(server.url, { query: `?token=${encodeURIComponent(forOther)}` }), (e: Error & { condition?: string }) => e.condition === 'not-authorized');
  const r = await raw();
  await r.open();
  r.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="OAUTHBEARER">${oauthBearer('no-such-token')}</auth>`);
  const failure = await r.next((e) => e.is('failure'), 'SASL failure');
  assert.ok(failure.getChild('not-authorized'), failure.toString());
  assert.match(failure.getChildText('text') ?? '', /not valid for any group/);
});
