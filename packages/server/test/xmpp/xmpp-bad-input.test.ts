// What the XMPP dialect does with bad input, over real sockets: each row of
// the tables sends something malformed or hostile and checks the stream
// error (RFC 6120 §4.9) or stanza error (§8.3) that names the reason. A
// Galène member in the same group watches: nothing it sees changes, and the
// server keeps running.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { GROUPS, RawBosh, RawXmpp } from './support.ts';

let server: RunningServer;
let watcher: GaleneTestClient;
const closers: (() => unknown)[] = [];

before(async () => {
  server = await startServer({ groups: GROUPS });
  watcher = await GaleneTestClient.connect(server.wsUrl);
  const j = await watcher.join('chat', 'watcher');
  assert.equal(j.kind, 'join');
});

after(async () => {
  for (const c of closers) c();
  watcher.close();
  await server.stop();
});

async function raw(query = ''): Promise<RawXmpp> {
  const r = await RawXmpp.connect(server.url, query);
  closers.push(() => r.close());
  return r;
}

const nested = (depth: number) => `${'<a>'.repeat(depth)}${'</a>'.repeat(depth)}`;

interface StreamRow {
  name: string;
  /** 'open': after the stream is open; 'login': after SASL and binding. */
  when: 'connect' | 'open' | 'login';
  send: (string | Buffer)[];
  condition: string;
  text: RegExp;
}

const STREAM_ROWS: StreamRow[] = [
  { name: 'malformed XML', when: 'open', send: ['<iq xmlns="jabber:client" type="get"><ping'], condition: 'not-well-formed', text: /not well-formed/ },
  { name: 'two elements in one frame', when: 'open', send: ['<a/><b/>'], condition: 'not-well-formed', text: /only one root/ },
  { name: 'an undefined entity', when: 'open', send: ['<message xmlns="jabber:client"><body>&nbsp;</body></message>'], condition: 'not-well-formed', text: /undefined entity/ },
  {
    name: 'a DTD with an entity bomb',
    when: 'open',
    send: ['<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><x>&b;</x>'],
    condition: 'restricted-xml',
    text: /document type declarations/,
  },
  { name: 'a comment', when: 'open', send: ['<message xmlns="jabber:client"><!-- hi --></message>'], condition: 'restricted-xml', text: /comments/ },
  { name: 'a processing instruction', when: 'open', send: ['<?php echo 1 ?><message xmlns="jabber:client"/>'], condition: 'restricted-xml', text: /processing instructions/ },
  { name: 'an unknown top-level element', when: 'login', send: ['<frobnicate xmlns="urn:example:frob"/>'], condition: 'unsupported-stanza-type', text: /frobnicate/ },
  {
    name: 'a stanza before authentication',
    when: 'open',
    send: ['<message xmlns="jabber:client" to="chat@conference.localhost" type="groupchat"><body>x</body></message>'],
    condition: 'not-authorized',
    text: /authenticate/,
  },
  {
    name: 'a stanza in another namespace',
    when: 'login',
    send: ['<iq xmlns="jabber:server" type="get" id="1"><ping xmlns="urn:xmpp:ping"/></iq>'],
    condition: 'invalid-namespace',
    text: /jabber:client/,
  },
  {
    name: 'a TCP-style stream header',
    when: 'connect',
    send: ['<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" to="localhost" version="1.0"/>'],
    condition: 'invalid-namespace',
    text: /RFC 7395/,
  },
  {
    name: 'a wrong domain',
    when: 'connect',
    send: ['<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="example.org" version="1.0"/>'],
    condition: 'host-unknown',
    text: /"localhost", not "example.org"/,
  },
  { name: 'an unsupported version', when: 'connect', send: ['<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="2.0"/>'], condition: 'unsupported-version', text: /1\.0/ },
  { name: 'a binary frame', when: 'open', send: [Buffer.from([0x3c, 0x61, 0x2f, 0x3e])], condition: 'bad-format', text: /text frames/ },
  {
    name: 'an oversized stanza',
    when: 'login',
    send: [`<message xmlns="jabber:client" to="chat@conference.localhost"><body>${'x'.repeat(300 * 1024)}</body></message>`],
    condition: 'policy-violation',
    text: /a frame of \d+ bytes is over the 262144-byte limit/,
  },
  { name: 'elements nested too deep', when: 'login', send: [`<message xmlns="jabber:client">${nested(40)}</message>`], condition: 'policy-violation', text: /nested more than 32 deep/ },
  {
    name: 'too many attributes',
    when: 'login',
    send: [`<message xmlns="jabber:client" ${Array.from({ length: 80 }, (_, i) => `a${i}="1"`).join(' ')}/>`],
    condition: 'policy-violation',
    text: /81 attributes, over the limit of 64/,
  },
  {
    name: 'a stanza flood',
    when: 'login',
    send: Array.from({ length: 2000 }, (_, i) => `<iq xmlns="jabber:client" type="get" id="f${i}"><ping xmlns="urn:xmpp:ping"/></iq>`),
    condition: 'policy-violation',
    text: /flooding/,
  },
  {
    name: 'three failed SASL attempts',
    when: 'open',
    send: [
      '<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-1">x</auth>',
      '<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">!!!</auth>',
      `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">${Buffer.from('no-nuls').toString('base64')}</auth>`,
    ],
    condition: 'policy-violation',
    text: /3 failed authentication attempts/,
  },
  { name: 'an ack of more than was sent', when: 'login', send: ['<enable xmlns="urn:xmpp:sm:3"/>', '<a xmlns="urn:xmpp:sm:3" h="5"/>'], condition: 'policy-violation', text: /handled-count-too-high/ },
  { name: 'stream management before enabling it', when: 'login', send: ['<r xmlns="urn:xmpp:sm:3"/>'], condition: 'unsupported-stanza-type', text: /before <enable\/>/ },
];

for (const row of STREAM_ROWS) {
  test(`stream error for ${row.name}: ${row.condition}`, async () => {
    const r = await raw();
    if (row.when === 'open') await r.open();
    if (row.when === 'login') await r.login();
    for (const f of row.send) r.send(f);
    const err = await r.streamError();
    assert.equal(err.condition, row.condition, `condition for ${row.name}: ${err.text}`);
    assert.match(err.text, row.text);
    await r.next((e) => e.is('close', 'urn:ietf:params:xml:ns:xmpp-framing'), 'the framing <close/>');
    const { reason } = await r.closed;
    assert.match(reason, new RegExp(row.condition));
  });
}

interface StanzaRow {
  name: string;
  send: string;
  /** The id of the error reply. */
  id: string;
  condition: string;
  text?: RegExp;
  /** Join the chat room first (as nick "probe"). */
  inRoom?: boolean;
}

const STANZA_ROWS: StanzaRow[] = [
  {
    name: 'an iq with two payloads',
    id: 's1',
    send: '<iq xmlns="jabber:client" type="get" id="s1"><ping xmlns="urn:xmpp:ping"/><ping xmlns="urn:xmpp:ping"/></iq>',
    condition: 'bad-request',
    text: /exactly one child/,
  },
  {
    name: 'an iq with an unknown type',
    id: 's2',
    send: '<iq xmlns="jabber:client" type="fetch" id="s2"><ping xmlns="urn:xmpp:ping"/></iq>',
    condition: 'bad-request',
    text: /get, set, result or error/,
  },
  {
    name: 'an unknown payload to the server',
    id: 's3',
    send: '<iq xmlns="jabber:client" type="get" id="s3"><query xmlns="urn:example:unknown"/></iq>',
    condition: 'service-unavailable',
    text: /urn:example:unknown/,
  },
  { name: 'a malformed address', id: 's4', send: '<message xmlns="jabber:client" id="s4" to="a@b@c/"><body>x</body></message>', condition: 'jid-malformed' },
  {
    name: 'another server',
    id: 's5',
    send: '<message xmlns="jabber:client" id="s5" to="someone@example.org"><body>x</body></message>',
    condition: 'remote-server-not-found',
    text: /only rooms on conference.localhost/,
  },
  {
    name: 'a groupchat message outside the room',
    id: 's6',
    send: '<message xmlns="jabber:client" id="s6" to="secret@conference.localhost" type="groupchat"><body>x</body></message>',
    condition: 'not-acceptable',
    text: /join the room/,
  },
  { name: 'a normal message to a room', id: 's7', send: '<message xmlns="jabber:client" id="s7" to="chat@conference.localhost"><body>x</body></message>', condition: 'bad-request', text: /groupchat/ },
  {
    name: 'an admin item without role or affiliation',
    id: 's8',
    inRoom: true,
    send: '<iq xmlns="jabber:client" type="set" id="s8" to="chat@conference.localhost"><query xmlns="http://jabber.org/protocol/muc#admin"><item nick="watcher"/></query></iq>',
    condition: 'bad-request',
    text: /needs a role/,
  },
  {
    name: 'a kick by a participant',
    id: 's8b',
    inRoom: true,
    send: '<iq xmlns="jabber:client" type="set" id="s8b" to="chat@conference.localhost"><query xmlns="http://jabber.org/protocol/muc#admin"><item nick="watcher" role="none"/></query></iq>',
    condition: 'forbidden',
    text: /"op" permission to kick users/,
  },
  {
    name: 'a subject change by a participant',
    id: 's9',
    inRoom: true,
    send: '<message xmlns="jabber:client" id="s9" to="chat@conference.localhost" type="groupchat"><subject>mine now</subject></message>',
    condition: 'forbidden',
    text: /"op" permission to set group data/,
  },
  {
    name: 'a message over the chat limit',
    id: 's10',
    inRoom: true,
    send: `<message xmlns="jabber:client" id="s10" to="chat@conference.localhost" type="groupchat"><body>${'y'.repeat(33 * 1024)}</body></message>`,
    condition: 'not-acceptable',
    text: /at most 32768 characters/,
  },
  {
    name: 'a Jingle offer with a bad SSRC',
    id: 's11',
    inRoom: true,
    send: '<iq xmlns="jabber:client" type="set" id="s11" to="chat@conference.localhost/focus"><jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="j1"><content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><payload-type id="96" name="VP8" clockrate="90000"/><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="99999999999"/></description></content></jingle></iq>',
    condition: 'bad-request',
    text: /ssrc.*between 0 and 4294967295/,
  },
  {
    name: 'a Jingle answer for no session',
    id: 's12',
    inRoom: true,
    send: '<iq xmlns="jabber:client" type="set" id="s12" to="chat@conference.localhost/focus"><jingle xmlns="urn:xmpp:jingle:1" action="session-accept" sid="nope"/></iq>',
    condition: 'item-not-found',
    text: /no session "nope"/,
  },
  {
    name: 'a Jingle action that does not exist',
    id: 's13',
    inRoom: true,
    send: '<iq xmlns="jabber:client" type="set" id="s13" to="chat@conference.localhost/focus"><jingle xmlns="urn:xmpp:jingle:1" action="session-dance" sid="x"/></iq>',
    condition: 'feature-not-implemented',
    text: /session-dance/,
  },
  {
    name: 'a Jingle fingerprint that is not hex',
    id: 's14',
    inRoom: true,
    send: '<iq xmlns="jabber:client" type="set" id="s14" to="chat@conference.localhost/focus"><jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="j2"><content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="111" name="opus" clockrate="48000" channels="2"/></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="abcd" pwd="abcdefghijklmnopqrstuv"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">not:hex</fingerprint></transport></content></jingle></iq>',
    condition: 'bad-request',
    text: /fingerprint/,
  },
  {
    name: 'a focus request for an unknown thing',
    id: 's15',
    send: '<iq xmlns="jabber:client" type="set" id="s15" to="focus.localhost"><other xmlns="urn:example:x"/></iq>',
    condition: 'service-unavailable',
    text: /conference/,
  },
];

test('stanza errors name the condition and the reason; the stream stays open', async () => {
  const r = await raw();
  await r.login();
  r.send('<presence xmlns="jabber:client" to="chat@conference.localhost/probe"><x xmlns="http://jabber.org/protocol/muc"/></presence>');
  await r.next((e) => e.is('message') && e.getChild('subject') !== undefined, 'joined as probe');
  for (const row of STANZA_ROWS) {
    r.send(row.send);
    const reply = await r.next((e) => e.attrs.id === row.id && e.attrs.type === 'error', `the error for ${row.name}`);
    const err = reply.getChild('error')!;
    assert.ok(err.getChild(row.condition, 'urn:ietf:params:xml:ns:xmpp-stanzas'), `${row.name}: expected ${row.condition}, got ${reply.toString()}`);
    if (row.text) assert.match(err.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas') ?? '', row.text, row.name);
  }
  // Still in the room and answering.
  r.send('<iq xmlns="jabber:client" type="get" id="alive" to="chat@conference.localhost/probe"><ping xmlns="urn:xmpp:ping"/></iq>');
  const alive = await r.next((e) => e.attrs.id === 'alive', 'the self-ping');
  assert.equal(alive.attrs.type, 'result');
});

test('SASL failures name the reason and let the client try again', async () => {
  const r = await raw();
  await r.open();
  const cases: [string, string, RegExp][] = [
    ['<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="DIGEST-MD5"/>', 'invalid-mechanism', /use PLAIN or ANONYMOUS \(or OAUTHBEARER with a token\)/],
    [`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">${Buffer.from('\u0000bob\u0000wrong').toString('base64')}</auth>`, 'not-authorized', /wrong password for user "bob"/],
  ];
  for (const [frame, condition, text] of cases) {
    r.send(frame);
    const f = await r.next((e) => e.is('failure'), `failure ${condition}`);
    assert.ok(f.getChild(condition), f.toString());
    assert.match(f.getChildText('text') ?? '', text);
  }
  r.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="OAUTHBEARER">${Buffer.from('n,,\u0001auth=Bearer nosuchtoken\u0001\u0001').toString('base64')}</auth>`);
  const f = await r.next((e) => e.is('failure'), 'token failure');
  assert.match(f.getChildText('text') ?? '', /not valid for any group/);
});

test('the WebSocket answers with the xmpp subprotocol, and the flood above left the others alone', async () => {
  const r = await raw();
  assert.equal(r.protocol, 'xmpp');
  watcher.chat('still here');
  const echo = await watcher.next((f) => f.type === 'chat' && f.value === 'still here');
  assert.equal(echo.username, 'watcher');
  assert.deepEqual(
    watcher.all('usermessage').filter((f) => f.kind === 'error'),
    [],
  );
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
});

test('BOSH refuses bad bodies, unknown sessions and requests outside the window', async () => {
  const post = async (body: string) => {
    const res = await fetch(`${server.url}/http-bind`, { method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' }, body });
    return { status: res.status, text: await res.text() };
  };
  const garbage = await post('<body xmlns="http://jabber.org/protocol/httpbind" rid="1"');
  assert.equal(garbage.status, 400);
  assert.match(garbage.text, /type="terminate" condition="bad-request"/);
  const notBody = await post('<iq xmlns="jabber:client"/>');
  assert.match(notBody.text, /condition="bad-request"/);
  const unknown = await post('<body xmlns="http://jabber.org/protocol/httpbind" rid="5" sid="nosuchsession"/>');
  assert.match(unknown.text, /condition="item-not-found"/);
  const created = await post('<body xmlns="http://jabber.org/protocol/httpbind" xmlns:xmpp="urn:xmpp:xbosh" rid="100" to="localhost" wait="5" hold="1" ver="1.6" xmpp:version="1.0"/>');
  assert.equal(created.status, 200);
  const sid = /sid="([^"]+)"/.exec(created.text)?.[1];
  assert.ok(sid, created.text);
  assert.match(created.text, /<mechanism>ANONYMOUS<\/mechanism>/);
  const far = await post(`<body xmlns="http://jabber.org/protocol/httpbind" rid="150" sid="${sid}"/>`);
  assert.match(far.text, /condition="item-not-found"/);
  assert.match(far.text, /rid 150 is not the next request/);
  const dtd = await post('<!DOCTYPE x><body xmlns="http://jabber.org/protocol/httpbind" rid="1"/>');
  assert.match(dtd.text, /document type declarations are not allowed/);
});

test('Jitsi-style session: an answer matching nothing offered, and sources out of order, get errors naming why; the session goes on', async () => {
  const r = await raw();
  await r.login();
  r.send('<iq xmlns="jabber:client" type="set" id="conf" to="focus.localhost"><conference xmlns="http://jitsi.org/protocol/focus" room="chat@conference.localhost"/></iq>');
  await r.next((e) => e.attrs.id === 'conf' && e.attrs.type === 'result', 'the conference result');
  r.send('<presence xmlns="jabber:client" to="chat@conference.localhost/jitsi"><x xmlns="http://jabber.org/protocol/muc"/></presence>');
  const initiate = await r.next((e) => e.is('iq') && e.getChild('jingle')?.attrs.action === 'session-initiate', "the focus's session-initiate", 20_000);
  const sid = initiate.getChild('jingle')!.attrs.sid as string;
  const names = initiate
    .getChild('jingle')!
    .getChildren('content')
    .map((c) => c.attrs.name);
  assert.deepEqual(names, ['audio', 'video']);
  const focus = 'chat@conference.localhost/focus';
  const rows: [string, string, string, RegExp][] = [
    [
      'b1',
      `<jingle xmlns="urn:xmpp:jingle:1" action="source-add" sid="${sid}"><content name="video"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1234"/></description></content></jingle>`,
      'bad-request',
      /source-add before the session-accept/,
    ],
    [
      'b2',
      `<jingle xmlns="urn:xmpp:jingle:1" action="session-accept" sid="${sid}"><content creator="initiator" name="data"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1"><sctpmap xmlns="urn:xmpp:jingle:transports:dtls-sctp:1" number="5000" protocol="webrtc-datachannel"/></transport></content></jingle>`,
      'bad-request',
      /answers neither the audio nor the video content offered/,
    ],
    ['b3', `<jingle xmlns="urn:xmpp:jingle:1" action="content-modify" sid="${sid}"/>`, 'feature-not-implemented', /"content-modify" is not supported in a Jitsi conference session/],
  ];
  for (const [id, jingle, condition, text] of rows) {
    r.send(`<iq xmlns="jabber:client" type="set" id="${id}" to="${focus}">${jingle}</iq>`);
    const reply = await r.next((e) => e.attrs.id === id && e.attrs.type === 'error', `the error for ${id}`);
    const err = reply.getChild('error')!;
    assert.ok(err.getChild(condition, 'urn:ietf:params:xml:ns:xmpp-stanzas'), `${id}: expected ${condition}, got ${reply.toString()}`);
    assert.match(err.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas') ?? '', text, id);
  }
  // The session is still there: a transport-info for it is taken.
  r.send(`<iq xmlns="jabber:client" type="set" id="b4" to="${focus}"><jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="${sid}"/></iq>`);
  const ok = await r.next((e) => e.attrs.id === 'b4', 'the session-info result');
  assert.equal(ok.attrs.type, 'result', ok.toString());
});

test('BOSH: <resume/> before authentication, for an unknown session, or with a bad count fails with the reason; the session can still bind', async () => {
  const b = await RawBosh.create(server.url);
  await b.post('<resume xmlns="urn:xmpp:sm:3" previd="nosuchsession" h="0"/>');
  const early = await b.next((e) => e.is('failed'), 'the failure before authentication');
  assert.ok(early.getChild('unexpected-request'), early.toString());
  assert.ok((await b.authenticate()).is('success'));
  await b.restart();
  for (const attrs of ['previd="nosuchsession" h="0"', 'previd="nosuchsession" h="-1"', 'h="x"']) {
    await b.post(`<resume xmlns="urn:xmpp:sm:3" ${attrs}/>`);
    const failed = await b.next((e) => e.is('failed'), `the failure for ${attrs}`);
    assert.ok(failed.getChild('item-not-found'), failed.toString());
    assert.match(failed.getChildText('text') ?? '', /no session to resume with this id/);
  }
  await b.post('<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>');
  const bound = await b.next((e) => e.is('iq') && e.attrs.id === 'bind1', 'bind result');
  assert.equal(bound.attrs.type, 'result', bound.toString());
});
