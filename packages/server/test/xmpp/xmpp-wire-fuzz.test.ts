// Mutation fuzzing of the XMPP dialect over the wire: seeded mutations
// (three in four keep the XML well-formed and change attributes, text,
// children and names; the rest cut and splice the text) of the stanzas a
// client sends in a room (a join, chat, a private message, muc#admin,
// disco, a Jingle offer to the focus, stream management) go to a
// real server process over raw RFC 7395 WebSockets, one at a time, each
// followed by a ping. Every stanza must end in one of two ways: the stream
// answers the ping (the stanza was handled or refused with a stanza error),
// or it ends with a stream error that names an RFC 6120 condition and a
// reason. Never an internal-server-error, never a frame that is not XML,
// never a line the server logs at level error; and the Galène member and
// the XMPP occupant watching in the room stay connected and keep chatting.
// Bounded for `npm test` (200 stanzas); a longer run, past the runner's 120 s per file:
// `XMPP_WIRE_FUZZ_STANZAS=3000 node --import tsx --test --test-timeout=0 packages/server/test/xmpp/xmpp-wire-fuzz.test.ts`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { parse } from 'ltx';
import { type Element, GROUPS, RawXmpp, type XmppTestClient, connectXmpp, xml } from './support.ts';

const STANZAS = Number(process.env.XMPP_WIRE_FUZZ_STANZAS ?? 200);
const ROOM = 'chat@conference.localhost';

/** RFC 6120 §4.9.3 stream error conditions. */
const STREAM_CONDITIONS = new Set([
  'bad-format',
  'bad-namespace-prefix',
  'conflict',
  'connection-timeout',
  'host-gone',
  'host-unknown',
  'improper-addressing',
  'internal-server-error',
  'invalid-from',
  'invalid-namespace',
  'invalid-xml',
  'not-authorized',
  'not-well-formed',
  'policy-violation',
  'remote-connection-failed',
  'reset',
  'resource-constraint',
  'restricted-xml',
  'see-other-host',
  'system-shutdown',
  'undefined-condition',
  'unsupported-encoding',
  'unsupported-feature',
  'unsupported-stanza-type',
  'unsupported-version',
]);

const CORPUS = [
  `<presence xmlns="jabber:client" to="${ROOM}/fuzz"><x xmlns="http://jabber.org/protocol/muc"><history maxstanzas="2"/></x><nick xmlns="http://jabber.org/protocol/nick">Fuzz</nick><c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="n" ver="v"/></presence>`,
  `<message xmlns="jabber:client" to="${ROOM}" type="groupchat" id="m1"><body>hello &amp; &lt;world&gt; &#x1F600;</body></message>`,
  `<message xmlns="jabber:client" to="${ROOM}/watcher" type="chat" id="m2"><body>psst</body></message>`,
  `<message xmlns="jabber:client" to="${ROOM}" type="groupchat" id="m3"><subject>topic</subject></message>`,
  `<iq xmlns="jabber:client" type="set" id="a1" to="${ROOM}"><query xmlns="http://jabber.org/protocol/muc#admin"><item nick="watcher" role="none"><reason>r</reason></item></query></iq>`,
  `<iq xmlns="jabber:client" type="get" id="a2" to="${ROOM}"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="outcast"/></query></iq>`,
  `<iq xmlns="jabber:client" type="get" id="d1" to="conference.localhost"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
  `<iq xmlns="jabber:client" type="get" id="d2" to="${ROOM}"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
  `<iq xmlns="jabber:client" type="set" id="f1" to="focus.localhost"><conference xmlns="http://jitsi.org/protocol/focus" room="${ROOM}"/></iq>`,
  `<iq xmlns="jabber:client" type="set" id="j1" to="${ROOM}/focus"><jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s1"><group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="0"/></group><content creator="initiator" name="0" senders="both"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><payload-type id="96" name="VP8" clockrate="90000"><rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="nack" subtype="pli"/></payload-type><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1" name="f-v0"><parameter name="msid" value="s t"/></source><rtcp-mux/></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="abcd" pwd="abcdefghijklmnopqrstuvwx"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89</fingerprint></transport></content></jingle></iq>`,
  `<iq xmlns="jabber:client" type="set" id="j2" to="${ROOM}/focus"><jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s1"><content name="0"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1"><candidate component="1" foundation="1" generation="0" id="c" ip="127.0.0.1" port="5000" priority="1" protocol="udp" type="host"/></transport></content></jingle></iq>`,
  '<r xmlns="urn:xmpp:sm:3"/>',
  '<a xmlns="urn:xmpp:sm:3" h="0"/>',
];

const PIECES = [
  '<',
  '>',
  '/>',
  '</x>',
  '&',
  '&amp;',
  '&#0;',
  '"',
  '=',
  ' ',
  '\u0000',
  '<!--',
  '<![CDATA[',
  '<!DOCTYPE',
  '<?x',
  'xmlns:p="u" ',
  'p:',
  '99999999999',
  '-1',
  '@',
  '/',
  '\\2f',
  'unavailable',
  'error',
  'result',
  '😀',
];

/** mulberry32, seeded so a failure replays. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(s: string, r: () => number): string {
  let out = s;
  const n = Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (out.length + 1));
    const op = Math.floor(r() * 4);
    if (op === 0) out = out.slice(0, at) + PIECES[Math.floor(r() * PIECES.length)] + out.slice(at);
    else if (op === 1) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(r() * 8));
    else if (op === 2) out = out.slice(0, at) + out.slice(at, at + 1 + Math.floor(r() * 32)).repeat(2) + out.slice(at);
    else out = out.replace(/\d+/, String(Math.floor(r() * 2 ** 33) - 2 ** 31));
  }
  return out;
}

const VALUES = [
  '',
  '-1',
  '0',
  '4294967296',
  '1e400',
  'NaN',
  'x'.repeat(2000),
  ROOM,
  `${ROOM}/watcher`,
  `${ROOM}/focus`,
  'focus.localhost',
  'a@b@c',
  '\u202e',
  'unavailable',
  'error',
  'result',
  'set',
  'get',
  'groupchat',
  'chat',
  'none',
  'outcast',
  'moderator',
  'owner',
];
const NAMES = ['x', 'iq', 'message', 'presence', 'jingle', 'content', 'source', 'item', 'query', 'body', 'history', 'password'];

/** A mutation that keeps the XML well-formed (ltx escapes what it writes), so it reaches the stanza handlers: attributes, text, children. */
function mutateTree(s: string, r: () => number): string {
  const root = parse(s) as Element;
  const all: Element[] = [];
  const walk = (e: Element) => {
    all.push(e);
    for (const c of e.children) if (typeof c !== 'string') walk(c);
  };
  walk(root);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const e = pick(all);
    const keys = Object.keys(e.attrs).filter((k) => k !== 'xmlns' || r() < 0.1);
    const op = Math.floor(r() * 6);
    if (op === 0 && keys.length > 0) e.attrs[pick(keys)] = pick(VALUES);
    else if (op === 1 && keys.length > 0) delete e.attrs[pick(keys)];
    else if (op === 2) e.attrs[pick(['type', 'id', 'to', 'from', 'role', 'affiliation', 'nick', 'sid', 'action', 'ssrc', 'semantics'])] = pick(VALUES);
    else if (op === 3 && e.children.length > 0) e.children.splice(Math.floor(r() * e.children.length), 1);
    else if (op === 4 && e.children.length > 0) {
      const c = pick(e.children);
      for (let k = Math.floor(r() * 40); k > 0; k--) e.children.push(typeof c === 'string' ? c : (parse(c.toString()) as Element));
    } else if (op === 5) e.name = pick(NAMES);
    else e.children.push(pick(VALUES));
  }
  return root.toString();
}

let server: RunningServer;
let watcher: GaleneTestClient;
let occupant: XmppTestClient;
const closers: (() => unknown)[] = [];

before(async () => {
  server = await startServer({ groups: GROUPS, args: ['--media-address', '127.0.0.1'] });
  watcher = await GaleneTestClient.connect(server.wsUrl);
  assert.equal((await watcher.join('chat', 'watcher')).kind, 'join');
  occupant = await connectXmpp(server.url);
  const self = await occupant.join(ROOM, 'bystander');
  assert.equal(self.attrs.type, undefined, self.toString());
});

after(async () => {
  for (const c of closers) c();
  await occupant?.stop();
  watcher?.close();
  await server?.stop();
});

/** A logged-in raw stream, in the room as "fuzz", with stream management on (so <r/> and <a/> mean something). */
async function stream(): Promise<RawXmpp> {
  const r = await RawXmpp.connect(server.url);
  closers.push(() => r.close());
  await r.login();
  r.send('<enable xmlns="urn:xmpp:sm:3"/>');
  await r.next((e) => e.is('enabled'), 'sm enabled');
  r.send(CORPUS[0]!);
  await r.next((e) => e.is('presence') && e.attrs.from === `${ROOM}/fuzz`, 'the room join');
  return r;
}

test(`${STANZAS} mutated stanzas over the wire: each is answered or ends its stream with a named stream error`, async () => {
  const r0 = rng(1016);
  let r = await stream();
  const outcomes = { answered: 0, streamErrors: new Map<string, number>(), stanzaErrors: new Map<string, number>() };
  let streams = 1;
  for (let i = 0; i < STANZAS; i++) {
    const seed = CORPUS[i % CORPUS.length]!;
    const input = r0() < 0.75 ? mutateTree(seed, r0) : mutate(seed, r0);
    const seen = r.frames.items.length;
    const ping = `wire-ping-${i}`;
    r.send(input);
    r.send(`<iq xmlns="jabber:client" type="get" id="${ping}"><ping xmlns="urn:xmpp:ping"/></iq>`);
    const end = await r.next(
      (e) => (e.is('iq') && e.attrs.id === ping) || e.name === 'stream:error' || e.is('error', 'http://etherx.jabber.org/streams'),
      `the ping after ${JSON.stringify(input)}`,
      // A Jingle offer holds the stanzas behind it until the media engine answers or refuses it: seconds on a loaded machine.
      60_000,
    );
    for (const f of r.frames.items.slice(seen)) {
      assert.ok(f.el, `the server sent a frame that is not XML after ${JSON.stringify(input)}: ${f.text.slice(0, 300)}`);
      const err = f.el.getChild('error');
      const cond = err?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas' && c.name !== 'text')?.name;
      if (f.el.attrs.type === 'error' && cond) {
        assert.notEqual(cond, 'internal-server-error', `an internal error after ${JSON.stringify(input)}: ${f.text}`);
        outcomes.stanzaErrors.set(cond, (outcomes.stanzaErrors.get(cond) ?? 0) + 1);
      }
    }
    if (end.is('iq')) {
      outcomes.answered++;
      continue;
    }
    const cond = end.children.find((c): c is Element => typeof c !== 'string' && c.name !== 'text')?.name ?? '';
    assert.ok(STREAM_CONDITIONS.has(cond) && cond !== 'internal-server-error' && cond !== 'undefined-condition', `stream error "${cond}" after ${JSON.stringify(input)}`);
    assert.ok((end.getChildText('text') ?? '').length > 5, `the stream error names no reason after ${JSON.stringify(input)}`);
    outcomes.streamErrors.set(cond, (outcomes.streamErrors.get(cond) ?? 0) + 1);
    const closed = await r.closed;
    assert.match(closed.reason, new RegExp(cond));
    r = await stream();
    streams++;
  }
  console.log(
    `# ${STANZAS} stanzas on ${streams} streams: ${outcomes.answered} answered; stanza errors ${JSON.stringify(Object.fromEntries(outcomes.stanzaErrors))}; stream errors ${JSON.stringify(Object.fromEntries(outcomes.streamErrors))}`,
  );
  // Both ends were reached: many stanzas got through to the room and the focus, many ended a stream.
  assert.ok(outcomes.answered > STANZAS / 4, `only ${outcomes.answered} stanzas left their stream open`);
  assert.ok(outcomes.streamErrors.size > 0, 'no mutation ended a stream');

  // The bystanders noticed nothing but chat: both still in the room, chat still goes both ways.
  watcher.chat('after the fuzz');
  await occupant.next((s) => s.is('message') && s.getChildText('body') === 'after the fuzz', 'the Galène chat at the XMPP bystander', 10_000);
  await occupant.x.send(xml('message', { to: ROOM, type: 'groupchat' }, xml('body', {}, 'bystander still here')));
  await watcher.next((f) => f.type === 'chat' && f.value === 'bystander still here', 10_000, 'the XMPP bystander chat');
  assert.equal(watcher.isClosed, false);
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  assert.equal(server.process.exitCode, null);
  for (const line of server.output().split('\n')) {
    if (line.trim() === '' || !line.startsWith('{')) continue;
    assert.ok(!/"level":(50|60)/.test(line), `the server logged an error:\n${line.slice(0, 2000)}`);
  }
});
