// The XMPP dialect on the dialect kit, over real sockets: a stream that
// joins no room within --join-timeout is ended with a stream error naming
// why, over WebSocket and over BOSH; an occupant stays however long it
// likes, and its session outlives its WebSocket (XEP-0198: resumed on a new
// one, still in the room, which the Galène member never saw it leave); a
// reader that stops reading is closed once its output is over the kit's
// byte bound, and the Galène member sees it go.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { GROUPS, RawXmpp } from './support.ts';

/** The server's join timeout here, in seconds. */
const TIMEOUT_S = 2;
/** How long a test waits for what the server must do (generous: the machine is shared). */
const WAIT_MS = 15_000;

let server: RunningServer;
let watcher: GaleneTestClient;
const closers: (() => unknown)[] = [];

before(async () => {
  server = await startServer({ groups: GROUPS, args: ['--no-media', '--join-timeout', String(TIMEOUT_S)] });
  watcher = await GaleneTestClient.connect(server.wsUrl);
  assert.equal((await watcher.join('chat', 'watcher')).kind, 'join');
});

after(async () => {
  for (const c of closers) c();
  watcher?.close();
  await server?.stop();
});

async function raw(): Promise<RawXmpp> {
  const r = await RawXmpp.connect(server.url);
  closers.push(() => r.close());
  return r;
}

const joinFrame = (nick: string) => `<presence xmlns="jabber:client" to="chat@conference.localhost/${nick}"><x xmlns="http://jabber.org/protocol/muc"/></presence>`;

/** Waits for the Galène watcher to see a user of this name arrive (add) or go (delete); returns the frame. */
function watcherSees(kind: 'add' | 'delete', username: string) {
  return watcher.next((f) => f.type === 'user' && f.kind === kind && (kind === 'delete' || f.username === username), WAIT_MS, `user ${kind} of ${username}`);
}

test('a WebSocket stream that joins no room within the timeout ends with a stream error naming why', async () => {
  const r = await raw();
  // On a loaded machine the timeout may come before the login is over; either way it comes.
  void r.login().catch(() => undefined);
  const err = await r.streamError();
  assert.equal(err.condition, 'policy-violation');
  assert.match(err.text, /no group joined within 2 seconds\b/);
  await r.next((e) => e.is('close', 'urn:ietf:params:xml:ns:xmpp-framing'), 'the framing <close/>');
  const { code, reason } = await r.closed;
  assert.equal(code, 1008);
  assert.match(reason, /^policy-violation: no group joined/);
});

test('a BOSH session that joins no room within the timeout is terminated with the stream error', async () => {
  let rid = 1000;
  const post = async (attrs: string, inner = '') => {
    const res = await fetch(`${server.url}/http-bind`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml; charset=utf-8' },
      body: `<body xmlns="http://jabber.org/protocol/httpbind" xmlns:xmpp="urn:xmpp:xbosh" rid="${rid++}" ${attrs}>${inner}</body>`,
    });
    return res.text();
  };
  const created = await post('to="localhost" wait="5" hold="1" ver="1.6" xmpp:version="1.0"');
  const sid = /sid="([^"]+)"/.exec(created)?.[1];
  assert.ok(sid, created);
  const ended = (reply: string) => /type="terminate"/.test(reply);
  // Log in and bind (unless the timeout comes first, on a loaded machine), then poll as a client does until the session ends.
  const steps: [string, string, RegExp][] = [
    [`sid="${sid}"`, '<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="ANONYMOUS"/>', /<success/],
    [`sid="${sid}" to="localhost" xmpp:restart="true"`, '', /<bind/],
    [`sid="${sid}"`, '<iq xmlns="jabber:client" type="set" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>', /<jid>guest-/],
  ];
  let last = '';
  for (const [attrs, inner, expected] of steps) {
    last = await post(attrs, inner);
    if (ended(last)) break;
    assert.match(last, expected);
  }
  for (const end = Date.now() + WAIT_MS; Date.now() < end && !ended(last); ) last = await post(`sid="${sid}"`);
  assert.match(last, /type="terminate"/);
  assert.match(last, /<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
  assert.match(last, /no group joined within 2 seconds\b/);
});

test('an occupant outlives the timeout, and its session outlives its WebSocket: resumed on another, still in the room', async () => {
  const r1 = await raw();
  const jid = await r1.login({ username: 'bob', password: 'bobpw' });
  r1.send('<enable xmlns="urn:xmpp:sm:3" resume="true"/>');
  const enabled = await r1.next((e) => e.is('enabled'), '<enabled/>');
  const previd = String(enabled.attrs.id);
  r1.send(joinFrame('stay'));
  await r1.next((e) => e.is('message') && e.getChild('subject') !== undefined, 'joined as stay');
  const added = await watcherSees('add', 'bob');
  await sleep(2 * TIMEOUT_S * 1000);
  r1.send('<iq xmlns="jabber:client" type="get" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>');
  assert.equal((await r1.next((e) => e.attrs.id === 'p1', 'the ping result')).attrs.type, 'result');
  assert.equal(r1.isClosed, false, 'a stream in a room is left alone');

  // The network goes away: the session waits, its room with it, and no stream is there to time out.
  r1.drop();
  await sleep(1.5 * TIMEOUT_S * 1000);
  watcher.chat('while you were away');
  await watcher.next((f) => f.type === 'chat' && f.value === 'while you were away');

  const r2 = await raw();
  await r2.open();
  r2.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">${Buffer.from('\u0000bob\u0000bobpw').toString('base64')}</auth>`);
  await r2.next((e) => e.is('success'), 'SASL success');
  await r2.open();
  // h=0: this client handled none of what the server sent, so it is all sent again, the chat too.
  r2.send(`<resume xmlns="urn:xmpp:sm:3" previd="${previd}" h="0"/>`);
  await r2.next((e) => e.is('resumed'), '<resumed/>');
  const missed = await r2.next((e) => e.is('message') && e.getChildText('body') === 'while you were away', 'the chat sent while the stream was down');
  assert.equal(missed.attrs.to, jid);
  await sleep(2 * TIMEOUT_S * 1000);
  assert.equal(r2.isClosed, false, 'the resumed stream is in a room: no join timeout');
  r2.send('<message xmlns="jabber:client" to="chat@conference.localhost" type="groupchat" id="m1"><body>back</body></message>');
  const back = await watcher.next((f) => f.type === 'chat' && f.value === 'back', WAIT_MS, 'the chat after the resumption');
  assert.equal(back.source, added.id, 'the same member all along');
  assert.deepEqual(
    watcher.all('user', 'delete').filter((f) => f.id === added.id),
    [],
    'the Galène member never saw it leave',
  );
  r2.send('<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>');
  await watcher.next((f) => f.type === 'user' && f.kind === 'delete' && f.id === added.id, WAIT_MS, 'the leave after a clean close');
});

async function tooSlowCount(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = /^atrium_errors_total\{dialect="xmpp",kind="too-slow"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

test('an occupant that stops reading is closed once its output is over the byte bound; the Galène member sees it go', async () => {
  const r = await raw();
  await r.login();
  r.send(joinFrame('slow'));
  await r.next((e) => e.is('message') && e.getChild('subject') !== undefined, 'joined as slow');
  const slow = await watcherSees('add', 'slow');
  r.pause();
  // Four Galène members chat 32 KB messages at their allowed rate; everyone else reads them.
  const senders: GaleneTestClient[] = [];
  for (let i = 0; i < 4; i++) {
    const c = await GaleneTestClient.connect(server.wsUrl);
    closers.push(() => c.close());
    assert.equal((await c.join('chat', `sender${i}`)).kind, 'join');
    senders.push(c);
  }
  const big = 'z'.repeat(32 * 1024 - 16);
  const gone = watcher.next((f) => f.type === 'user' && f.kind === 'delete' && f.id === slow.id, 120_000, 'the slow occupant leaving');
  let left = false;
  void gone.then(() => (left = true)).catch(() => undefined);
  let sent = 0;
  // At most 120 MB in all, far beyond the 8 MiB bound and any socket buffer.
  while (!left && sent < 3600) {
    for (const c of senders) c.chat(`${sent} ${big}`);
    sent += senders.length;
    await sleep(110);
  }
  await gone;
  assert.ok((await tooSlowCount()) >= 1, 'counted as too slow');
  // Those who read saw every message up to then.
  assert.deepEqual(
    watcher.all('usermessage').filter((f) => f.kind === 'error'),
    [],
  );
});
