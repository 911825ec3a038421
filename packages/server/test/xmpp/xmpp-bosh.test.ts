// BOSH (/http-bind) against a real server process, written by hand body by
// body: a JWT on the URL (`?token=`, as Prosody's token authentication
// reads it, and as Jitsi Meet puts it on its BOSH URL) logs in with
// ANONYMOUS and joins as the token's subject with its permissions, next to
// a Galène-protocol member who sees it; a bad token is refused at SASL with
// the reason. A BOSH session whose client stops polling ends after
// --xmpp-bosh-inactivity; with stream management on (XEP-0198) its XMPP
// session waits, still in the room, and a new BOSH session with the same
// token resumes it and gets what was said meanwhile. A different token
// cannot take it over.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { MUC_USER, RawBosh } from './support.ts';

const secret = new TextEncoder().encode('a-shared-secret-of-exactly-32-by');
const ROOM = 'signed@conference.localhost';
/** The server's BOSH inactivity here, in seconds. */
const INACTIVITY_S = 2;
const WAIT_MS = 15_000;

let server: RunningServer;
let gal: GaleneTestClient;

before(async () => {
  server = await startServer({
    groups: { signed: { authKeys: [{ kty: 'oct', alg: 'HS256', kid: 'hs', k: Buffer.from(secret).toString('base64url') }] } },
    args: ['--no-media', '--xmpp-bosh-inactivity', String(INACTIVITY_S)],
  });
  gal = await GaleneTestClient.connect(server.wsUrl);
  assert.equal((await gal.join('signed', undefined, undefined, { token: await jwt('gal', ['present', 'message']) })).kind, 'join');
});

after(async () => {
  gal?.close();
  await server?.stop();
});

function jwt(sub: string, permissions: string[], exp: number | string = '5m'): Promise<string> {
  return new SignJWT({ permissions }).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).setSubject(sub).setAudience(`${server.url}/group/signed/`).setIssuedAt().setExpirationTime(exp).sign(secret);
}

const joinPresence = (nick: string) => `<presence xmlns="jabber:client" to="${ROOM}/${nick}"><x xmlns="http://jabber.org/protocol/muc"/></presence>`;
const groupchat = (text: string) => `<message xmlns="jabber:client" to="${ROOM}" type="groupchat"><body>${text}</body></message>`;

test('BOSH with ?token=: a JWT logs in with ANONYMOUS and joins as its subject with its permissions; a bad token is refused with the reason', async () => {
  const b = await RawBosh.create(server.url, `?token=${encodeURIComponent(await jwt('jay', ['op', 'present', 'message']))}`);
  const jid = await b.login();
  assert.match(jid, /^guest-[0-9a-f]+@localhost\//);
  await b.post(joinPresence('jay'));
  const self = await b.next((e) => e.is('presence') && e.attrs.from === `${ROOM}/jay`, 'the self-presence');
  assert.equal(self.attrs.type, undefined, self.toString());
  const item = self.getChild('x', MUC_USER)?.getChild('item');
  assert.equal(item?.attrs.role, 'moderator', 'op in the token: a moderator');
  assert.equal(item?.attrs.affiliation, 'owner');
  const added = await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'jay', WAIT_MS, 'the BOSH user');
  assert.deepEqual([...((added.permissions as string[]) ?? [])].sort(), ['message', 'op', 'present']);
  gal.chat('hello over http-bind');
  const chat = await b.next((e) => e.is('message') && e.getChildText('body') === 'hello over http-bind', 'the Galène chat');
  assert.equal(chat.attrs.from, `${ROOM}/gal`);
  await b.post('', 'type="terminate"');
  await gal.next((f) => f.type === 'user' && f.kind === 'delete' && f.id === added.id, WAIT_MS, 'the leave after the terminate');

  const expired = await RawBosh.create(server.url, `?token=${encodeURIComponent(await jwt('late', ['present'], Math.floor(Date.now() / 1000) - 60))}`);
  const failure = await expired.authenticate();
  assert.ok(failure.is('failure'), failure.toString());
  assert.ok(failure.getChild('not-authorized'), failure.toString());
  assert.match(failure.getChildText('text') ?? '', /expired|not valid/i);
});

test('BOSH and XEP-0198: a session whose client stops polling waits, in the room, and a new BOSH session with the same token resumes it', async () => {
  const token = await jwt('kim', ['present', 'message']);
  const b1 = await RawBosh.create(server.url, `?token=${encodeURIComponent(token)}`);
  const jid = await b1.login();
  await b1.post('<enable xmlns="urn:xmpp:sm:3" resume="true"/>');
  const enabled = await b1.next((e) => e.is('enabled'), '<enabled/>');
  assert.equal(enabled.attrs.resume, 'true');
  const previd = String(enabled.attrs.id);
  await b1.post(joinPresence('kim'));
  await b1.next((e) => e.is('presence') && e.attrs.from === `${ROOM}/kim`, 'the self-presence');
  const added = await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'kim', WAIT_MS, 'the BOSH user');

  // The client stops polling (its network went away). Well past the inactivity, its BOSH session is gone…
  await sleep(4 * INACTIVITY_S * 1000);
  const gone = await b1.post();
  assert.equal(gone.attrs.type, 'terminate', gone.toString());
  assert.equal(gone.attrs.condition, 'item-not-found');
  // …but its XMPP session waits for a resumption, still in the room.
  gal.chat('while you were away');
  await gal.next((f) => f.type === 'chat' && f.value === 'while you were away', WAIT_MS, 'the chat echoed');

  // Another token is another user: it cannot take the session over.
  const other = await RawBosh.create(server.url, `?token=${encodeURIComponent(await jwt('mallory', ['present']))}`);
  assert.ok((await other.authenticate()).is('success'));
  await other.restart();
  await other.post(`<resume xmlns="urn:xmpp:sm:3" previd="${previd}" h="0"/>`);
  const refused = await other.next((e) => e.is('failed') || e.is('resumed'), 'the resumption outcome for another token');
  assert.ok(refused.is('failed'), refused.toString());
  assert.ok(refused.getChild('item-not-found'), refused.toString());

  const b2 = await RawBosh.create(server.url, `?token=${encodeURIComponent(token)}`);
  assert.ok((await b2.authenticate()).is('success'));
  const features = await b2.restart();
  assert.ok(features.getChild('sm', 'urn:xmpp:sm:3'), `stream management is offered: ${features.toString()}`);
  // h=0: this client handled nothing the server sent, so all of it comes again, the chat too.
  await b2.post(`<resume xmlns="urn:xmpp:sm:3" previd="${previd}" h="0"/>`);
  const resumed = await b2.next((e) => e.is('failed') || e.is('resumed'), 'the resumption outcome');
  assert.ok(resumed.is('resumed'), resumed.toString());
  const missed = await b2.next((e) => e.is('message') && e.getChildText('body') === 'while you were away', 'the chat sent while the client was away');
  assert.equal(missed.attrs.to, jid, 'to the resumed session');
  await b2.post(groupchat('back over http-bind'));
  const back = await gal.next((f) => f.type === 'chat' && f.value === 'back over http-bind', WAIT_MS, 'the chat after the resumption');
  assert.equal(back.source, added.id, 'the same member all along');
  assert.deepEqual(
    gal.all('user', 'delete').filter((f) => f.id === added.id),
    [],
    'the Galène member never saw it leave',
  );
  await b2.post('', 'type="terminate"');
  await gal.next((f) => f.type === 'user' && f.kind === 'delete' && f.id === added.id, WAIT_MS, 'the leave after the terminate');
});
