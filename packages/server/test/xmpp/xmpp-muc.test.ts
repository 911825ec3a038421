// MUC rooms are Atrium groups, tested with the npm @xmpp/client (unchanged)
// against a real server process, next to a Galène-protocol member: each
// sees the other, chat goes both ways with history on join, private
// messages, kicks and bans go through the core's permission checks, and
// wrong passwords and locked groups are refused with the core's reasons.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { type Element, GROUPS, MUC_USER, RawXmpp, type XmppTestClient, connectXmpp, xml } from './support.ts';

let server: RunningServer;
const closers: (() => unknown)[] = [];
const ROOM = 'chat@conference.localhost';

before(async () => {
  server = await startServer({ groups: GROUPS, ...(process.env.XMPP_DEBUG ? { args: ['--log-level', 'debug'] } : {}) });
});

after(async () => {
  for (const c of closers.reverse()) await c();
  if (process.env.XMPP_DEBUG) console.log(server.output());
  await server.stop();
});

async function xmpp(opts: Parameters<typeof connectXmpp>[1] = {}): Promise<XmppTestClient> {
  const c = await connectXmpp(server.url, opts);
  closers.push(() => c.stop());
  return c;
}

async function galene(group: string, username: string, password = 'x'): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(server.wsUrl);
  closers.push(() => c.close());
  const joined = await c.join(group, username, password);
  assert.equal(joined.kind, 'join', `join of ${username}: ${JSON.stringify(joined)}`);
  return c;
}

const statuses = (p: Element) => (p.getChild('x', MUC_USER)?.getChildren('status') ?? []).map((s) => String(s.attrs.code));

test('SASL PLAIN with a wrong password is refused; the right one and ANONYMOUS log in', async () => {
  await assert.rejects(connectXmpp(server.url, { username: 'boss', password: 'nope' }), (e: Error & { condition?: string }) => {
    assert.equal(e.condition, 'not-authorized');
    assert.match(e.message, /wrong password for user "boss"/);
    return true;
  });
  const boss = await xmpp({ username: 'boss', password: 'bosspw' });
  assert.match(boss.jid, /^boss@localhost\//);
  const anon = await xmpp();
  assert.match(anon.jid, /^guest-[0-9a-f]+@localhost\//);
});

test('an XMPP occupant and a Galène member see each other, and chat goes both ways', async () => {
  const gal = await galene('chat', 'gal');
  const alice = await xmpp();
  const self = await alice.join(ROOM, 'alice');
  assert.deepEqual(statuses(self), ['110']);
  assert.equal(self.getChild('x', MUC_USER)?.getChild('item')?.attrs.role, 'participant');
  // The Galène member was there first: its presence came before the self-presence.
  const galPresence = alice.stanzas.all((s) => s.is('presence') && s.attrs.from === `${ROOM}/gal`);
  assert.equal(galPresence.length, 1);
  assert.equal(galPresence[0]!.getChildText('nick', 'http://jabber.org/protocol/nick'), 'gal');
  assert.ok(alice.stanzas.items.indexOf(galPresence[0]!) < alice.stanzas.items.indexOf(self));
  await alice.next((s) => s.is('message') && s.getChild('subject') !== undefined, 'the subject, ending the join');

  const added = await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'alice');
  assert.deepEqual(added.permissions, ['present', 'message']);

  gal.chat('hello from galene');
  const m = await alice.next((s) => s.is('message') && s.getChildText('body') === 'hello from galene', 'the Galène chat');
  assert.equal(m.attrs.type, 'groupchat');
  assert.equal(m.attrs.from, `${ROOM}/gal`);
  assert.equal(m.getChild('delay', 'urn:xmpp:delay'), undefined);

  await alice.x.send(xml('message', { to: ROOM, type: 'groupchat', id: 'msg-1' }, xml('body', {}, 'hello from xmpp')));
  const echo = await alice.next((s) => s.is('message') && s.getChildText('body') === 'hello from xmpp', 'the reflection');
  assert.equal(echo.attrs.from, `${ROOM}/alice`);
  assert.equal(echo.attrs.id, 'msg-1', 'the reflection keeps the id the client gave');
  const seen = await gal.next((f) => f.type === 'chat' && f.value === 'hello from xmpp');
  assert.equal(seen.username, 'alice');
  assert.equal(seen.source, added.id);

  await alice.x.send(xml('message', { to: ROOM, type: 'groupchat' }, xml('body', {}, '/me waves')));
  const me = await gal.next((f) => f.type === 'chat' && f.value === 'waves');
  assert.equal(me.kind, 'me');
  assert.deepEqual(gal.violations, []);
});

test('history is replayed on join with delay stamps, before the subject, limited by <history/>', async () => {
  const gal = await galene('chat', 'historian');
  for (const v of ['first', 'second', 'third']) gal.chat(v);
  await gal.next((f) => f.type === 'chat' && f.value === 'third');
  const late = await xmpp();
  await late.join(ROOM, 'late');
  const subject = await late.next((s) => s.is('message') && s.getChild('subject') !== undefined, 'the subject');
  const history = late.stanzas.all((s) => s.is('message') && s.getChild('delay', 'urn:xmpp:delay') !== undefined);
  const bodies = history.map((s) => s.getChildText('body'));
  for (const v of ['first', 'second', 'third']) assert.ok(bodies.includes(v), `history has "${v}": ${bodies.join(', ')}`);
  const third = history.find((s) => s.getChildText('body') === 'third')!;
  assert.equal(third.attrs.from, `${ROOM}/historian`);
  assert.match(third.getChild('delay', 'urn:xmpp:delay')!.attrs.stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.ok(late.stanzas.items.indexOf(third) < late.stanzas.items.indexOf(subject), 'history comes before the subject');

  const few = await xmpp();
  await few.join(ROOM, 'few', { history: { maxstanzas: '1' } });
  await few.next((s) => s.is('message') && s.getChild('subject') !== undefined, 'the subject');
  const got = few.stanzas.all((s) => s.is('message') && s.getChild('delay', 'urn:xmpp:delay') !== undefined).map((s) => s.getChildText('body'));
  assert.deepEqual(got, ['third']);
});

test('private messages go both ways between an occupant and a Galène member, and are not kept', async () => {
  const gal = await galene('chat', 'pm-gal');
  const carol = await xmpp();
  await carol.join(ROOM, 'carol');
  const carolUser = await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'carol');
  await carol.x.send(xml('message', { to: `${ROOM}/pm-gal`, type: 'chat' }, xml('body', {}, 'psst, galene')));
  const pm = await gal.next((f) => f.type === 'chat' && f.value === 'psst, galene');
  assert.equal(pm.dest, gal.id);
  assert.equal(pm.source, carolUser.id);
  gal.send({ type: 'chat', kind: '', source: gal.id, dest: carolUser.id, value: 'psst, xmpp' });
  const back = await carol.next((s) => s.is('message') && s.getChildText('body') === 'psst, xmpp', 'the private reply');
  assert.equal(back.attrs.type, 'chat');
  assert.equal(back.attrs.from, `${ROOM}/pm-gal`);
  await carol.x.send(xml('message', { to: `${ROOM}/nobody-here`, type: 'chat', id: 'pm2' }, xml('body', {}, 'hello?')));
  const err = await carol.next((s) => s.is('message') && s.attrs.type === 'error' && s.attrs.id === 'pm2', 'the error for an unknown nick');
  assert.ok(err.getChild('error')?.getChild('item-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  const late = await xmpp();
  await late.join(ROOM, 'late-pm');
  await late.next((s) => s.is('message') && s.getChild('subject') !== undefined, 'the subject');
  assert.equal(late.stanzas.all((s) => s.getChildText('body') === 'psst, galene' || s.getChildText('body') === 'psst, xmpp').length, 0);
});

test('a moderator kicks through muc#admin; a participant may not; a Galène op kicks an occupant', async () => {
  const victim = await galene('chat', 'victim');
  const boss = await xmpp({ username: 'boss', password: 'bosspw' });
  const bossSelf = await boss.join(ROOM, 'boss');
  assert.equal(bossSelf.getChild('x', MUC_USER)?.getChild('item')?.attrs.role, 'moderator');
  assert.equal(bossSelf.getChild('x', MUC_USER)?.getChild('item')?.attrs.affiliation, 'owner');
  const dave = await xmpp();
  await dave.join(ROOM, 'dave');

  const refused = await dave.x.iqCaller
    .request(xml('iq', { type: 'set', to: ROOM }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { nick: 'victim', role: 'none' }))))
    .then(
      () => undefined,
      (e: Error & { condition?: string }) => e,
    );
  assert.equal(refused?.condition, 'forbidden');
  assert.match(refused?.message ?? '', /"op" permission/);

  await boss.x.iqCaller.request(
    xml('iq', { type: 'set', to: ROOM }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { nick: 'victim', role: 'none' }, xml('reason', {}, 'be nice')))),
  );
  const kicked = await victim.next((f) => f.type === 'usermessage' && f.kind === 'kicked');
  assert.equal(kicked.value, 'be nice');
  await victim.closed;
  const gone = await dave.next((s) => s.is('presence') && s.attrs.from === `${ROOM}/victim` && s.attrs.type === 'unavailable', 'the kicked one leaving');
  assert.deepEqual(statuses(gone), ['307']);

  const galOp = await galene('chat', 'boss', 'bosspw');
  const daveUser = await galOp.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'dave');
  galOp.send({ type: 'useraction', kind: 'kick', source: galOp.id, dest: daveUser.id, value: 'out you go' });
  const self = await dave.next((s) => s.is('presence') && s.attrs.from === `${ROOM}/dave` && s.attrs.type === 'unavailable', 'dave kicked');
  assert.deepEqual(statuses(self), ['110', '307']);
  assert.equal(self.getChild('x', MUC_USER)?.getChild('item')?.getChildText('reason'), 'out you go');
  // The Galène op is "boss (2)" in the room: the XMPP boss had the nick first.
  assert.equal(self.getChild('x', MUC_USER)?.getChild('item')?.getChild('actor')?.attrs.nick, 'boss (2)');
  // The XMPP session stays up: only the room is left.
  await dave.x.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
});

test('a ban keeps the username out of the group; a moderator lifts it', async () => {
  const boss = await xmpp({ username: 'boss', password: 'bosspw' });
  await boss.join(ROOM, 'boss-ban');
  const bob = await xmpp({ username: 'bob', password: 'bobpw' });
  await bob.join(ROOM, 'bob');
  await boss.x.iqCaller.request(
    xml('iq', { type: 'set', to: ROOM }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { nick: 'bob', affiliation: 'outcast' }, xml('reason', {}, 'spam')))),
  );
  const out = await bob.next((s) => s.is('presence') && s.attrs.from === `${ROOM}/bob` && s.attrs.type === 'unavailable', 'bob banned');
  assert.deepEqual(statuses(out), ['110', '301']);
  const again = await bob.join(ROOM, 'bob');
  assert.equal(again.attrs.type, 'error');
  assert.ok(again.getChild('error')?.getChild('forbidden', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  assert.match(again.getChild('error')?.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas') ?? '', /banned/);
  const list = await boss.x.iqCaller.request(xml('iq', { type: 'get', to: ROOM }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { affiliation: 'outcast' }))));
  assert.deepEqual(
    list
      .getChild('query')!
      .getChildren('item')
      .map((i) => i.attrs.jid),
    ['bob@localhost'],
  );
  await boss.x.iqCaller.request(xml('iq', { type: 'set', to: ROOM }, xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { jid: 'bob@localhost', affiliation: 'none' }))));
  const back = await bob.join(ROOM, 'bob');
  assert.notEqual(back.attrs.type, 'error');
});

test('a wrong room password is refused with the core reason; the right one is let in', async () => {
  const eve = await xmpp();
  const bad = await eve.join('secret@conference.localhost', 'alice', { password: 'wrong' });
  assert.equal(bad.attrs.type, 'error');
  assert.ok(bad.getChild('error')?.getChild('not-authorized', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  assert.match(bad.getChild('error')?.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas') ?? '', /wrong username or password for user "alice"/);
  const good = await eve.join('secret@conference.localhost', 'alice', { password: 'alicepw' });
  assert.deepEqual(statuses(good), ['110']);
});

test('a locked group refuses with its lock message; a room that is no group is item-not-found', async () => {
  const c = await xmpp();
  const locked = await c.join('locked@conference.localhost', 'someone');
  assert.equal(locked.attrs.type, 'error');
  assert.ok(locked.getChild('error')?.getChild('registration-required', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  assert.match(locked.getChild('error')?.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas') ?? '', /group "locked" is locked/);
  const none = await c.join('nowhere@conference.localhost', 'someone');
  assert.ok(none.getChild('error')?.getChild('item-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
});

test('subgroups are rooms with JID-escaped names; nicks are unique in a room', async () => {
  const gal = await galene('team/standup', 'standup-gal');
  const c = await xmpp();
  const self = await c.join('team\\2fstandup@conference.localhost', 'sub');
  assert.deepEqual(statuses(self), ['110']);
  await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'sub');
  const other = await xmpp();
  const clash = await other.join('team\\2fstandup@conference.localhost', 'standup-gal');
  assert.ok(clash.getChild('error')?.getChild('conflict', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
});

test('disco and ping describe the server, the MUC service and a room', async () => {
  const c = await xmpp();
  const info = await c.x.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const features = info
    .getChild('query')!
    .getChildren('feature')
    .map((f) => f.attrs.var);
  for (const f of ['urn:xmpp:ping', 'urn:xmpp:sm:3', 'http://jabber.org/protocol/disco#items']) assert.ok(features.includes(f), f);
  const items = await c.x.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' })));
  assert.ok(
    items
      .getChild('query')!
      .getChildren('item')
      .some((i) => i.attrs.jid === 'conference.localhost'),
  );
  const room = await c.x.iqCaller.request(xml('iq', { type: 'get', to: 'secret@conference.localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
  const roomFeatures = room
    .getChild('query')!
    .getChildren('feature')
    .map((f) => f.attrs.var);
  assert.ok(roomFeatures.includes('http://jabber.org/protocol/muc'));
  assert.ok(roomFeatures.includes('muc_passwordprotected'));
  await c.x.iqCaller.request(xml('iq', { type: 'get', to: 'conference.localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  const unknown = await c.x.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'urn:example:nothing' }))).then(
    () => undefined,
    (e: Error & { condition?: string }) => e.condition,
  );
  assert.equal(unknown, 'service-unavailable');
});

test('stream management: a dropped stream is resumed and the stanzas sent meanwhile arrive', async () => {
  const gal = await galene('chat', 'sm-gal');
  const raw = await RawXmpp.connect(server.url);
  closers.push(() => raw.close());
  await raw.login({ username: 'bob', password: 'bobpw' });
  raw.send('<enable xmlns="urn:xmpp:sm:3" resume="true"/>');
  const enabled = await raw.next((e) => e.is('enabled'), 'enabled');
  assert.equal(enabled.attrs.resume, 'true');
  raw.send(`<presence xmlns="jabber:client" to="${ROOM}/sm-bob"><x xmlns="http://jabber.org/protocol/muc"/></presence>`);
  await raw.next((e) => e.is('message') && e.getChild('subject') !== undefined, 'joined');
  const bobUser = await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'bob');
  raw.send('<r xmlns="urn:xmpp:sm:3"/>');
  const a = await raw.next((e) => e.is('a'), 'an ack');
  const handled = Number(a.attrs.h);
  assert.equal(handled, 1, 'the server counted the one stanza sent since <enable/> (the join presence)');
  // Acknowledge everything received so far, then lose the connection.
  const afterEnable = raw.frames.items.slice(raw.frames.items.findIndex((f) => f.el?.is('enabled')) + 1);
  const receivedStanzas = afterEnable.filter((f) => f.el && ['message', 'presence', 'iq'].includes(f.el.name)).length;
  raw.send(`<a xmlns="urn:xmpp:sm:3" h="${receivedStanzas}"/>`);
  await new Promise((r) => setTimeout(r, 100));
  raw.close();
  await raw.closed;
  gal.chat('while you were away');
  await gal.next((f) => f.type === 'chat' && f.value === 'while you were away');
  // The member stayed: nobody saw it leave.
  assert.equal(gal.all('user', 'delete').filter((f) => f.id === bobUser.id).length, 0);

  const again = await RawXmpp.connect(server.url);
  closers.push(() => again.close());
  await again.open();
  again.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">${Buffer.from('\u0000bob\u0000bobpw').toString('base64')}</auth>`);
  await again.next((e) => e.is('success'), 'SASL success');
  await again.open();
  again.send(`<resume xmlns="urn:xmpp:sm:3" previd="${enabled.attrs.id}" h="${receivedStanzas}"/>`);
  const resumed = await again.next((e) => e.is('resumed'), 'resumed');
  assert.equal(resumed.attrs.previd, enabled.attrs.id);
  assert.equal(resumed.attrs.h, '1', 'the server reports the stanzas it handled before the drop');
  const missed = await again.next((e) => e.is('message') && e.getChildText('body') === 'while you were away', 'the message sent meanwhile');
  assert.equal(missed.attrs.from, `${ROOM}/sm-gal`);
  // Someone else's SM id cannot be taken over.
  const t2 = await RawXmpp.connect(server.url);
  closers.push(() => t2.close());
  await t2.open();
  t2.send('<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="ANONYMOUS"/>');
  await t2.next((e) => e.is('success'), 'SASL success');
  await t2.open();
  t2.send(`<resume xmlns="urn:xmpp:sm:3" previd="${enabled.attrs.id}" h="0"/>`);
  const failed = await t2.next((e) => e.is('failed'), 'failed');
  assert.ok(failed.getChild('item-not-found'));
});
