// Fuzz target: XMPP over WebSocket at /xmpp-websocket (RFC 7395). A case
// opens a connection in one of four states (fresh, stream open, logged in
// with SASL ANONYMOUS and bound, in the MUC room of the fuzz group), sends
// one to six frames built from the stanzas real clients send (MUC presence,
// group and private chat, disco, pings, MUC admin, Jingle to the focus,
// stream management, SASL) and mutated at the XML text level, then a ping.
// Every IQ get or set that arrives whole in a frame (the server's own parser
// reads it as one iq in jabber:client with an id) and the final ping are
// owed a result or an error with their id (RFC 6120 §8.2.3), or the server
// must end the stream with a stream error or <close/> first (§4.9); every
// frame it sends is XML. The bystander, a Galène member of the same group, keeps its
// connection, hears the witness and never sees a frame posing as itself.
import fc, { type Arbitrary } from 'fast-check';
import { type Element, parse } from 'ltx';
import WebSocket from 'ws';
import { parseElement } from '../../../src/dialects/xmpp/xml.ts';
import { GaleneTestClient } from '../../support/galene-client.ts';
import { type Host, REPLY_MS, type Target, loopbackAddress, until } from '../support/harness.ts';
import { hostileString } from '../support/zod-arbitrary.ts';

const GROUP = 'fuzz';
const ROOM = `${GROUP}@conference.localhost`;
const BYSTANDER_ID = 'bystander-x4e1a7c02';
const WITNESS_ID = 'witness-x9b3d5f1';
const CLOSE_CODES = new Set([1000, 1001, 1007, 1008, 1009]);

type Start = 'fresh' | 'open' | 'login' | 'room';
/** One frame: text as is, or bytes (base64) sent as a binary frame or as a text frame that may not be UTF-8. */
export type XFrame = { text: string } | { bytes: string; asText?: boolean };

export interface XmppCase {
  start: Start;
  frames: XFrame[];
}

export interface XmppEnv {
  url: string;
  bystander: GaleneTestClient;
  witness: GaleneTestClient;
  connections: number;
}

const OPEN = '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>';
const PING_ID = 'fuzz-end';
const PING = `<iq xmlns="jabber:client" type="get" id="${PING_ID}" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`;

/** Text as XML character data (the fuzzer also sends it unescaped, below). */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const word = fc.oneof(
  { arbitrary: fc.constantFrom('nick', 'fuzzer', 'bystander', 'witness', 'a b', ''), weight: 3 },
  { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
  { arbitrary: hostileString, weight: 1 },
);
const room = fc.oneof(
  { arbitrary: fc.constant(ROOM), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      'other@conference.localhost',
      'locked@conference.localhost',
      'team%2Fstandup@conference.localhost',
      'conference.localhost',
      'localhost',
      'focus.localhost',
      'x@example.org',
    ),
    weight: 2,
  },
  { arbitrary: word.map((w) => `${esc(w)}@conference.localhost`), weight: 1 },
);
const id = fc.oneof(fc.constant('i1'), word.map(esc));
const type = (...t: string[]) => fc.oneof({ arbitrary: fc.constantFrom(...t), weight: 4 }, { arbitrary: word.map(esc), weight: 1 });
const b64 = fc.oneof(
  fc.string({ maxLength: 40 }).map((s) => Buffer.from(s).toString('base64')),
  fc.constantFrom('', '=', '!!!', Buffer.from('\u0000bob\u0000bobpw').toString('base64'), Buffer.from('n,,\u0001auth=Bearer x\u0001\u0001').toString('base64')),
);

/** Stanzas and stream elements as real clients (strophe.js, @xmpp/client, Jitsi Meet) send them. */
const stanza: Arbitrary<string> = fc.oneof(
  fc
    .tuple(room, word, fc.option(word), fc.option(fc.nat(50)))
    .map(
      ([r, n, pw, hist]) =>
        `<presence xmlns="jabber:client" to="${r}/${esc(n)}"><x xmlns="http://jabber.org/protocol/muc">${pw === null ? '' : `<password>${esc(pw)}</password>`}${hist === null ? '' : `<history maxstanzas="${hist}"/>`}</x></presence>`,
    ),
  fc.tuple(room, word, type('unavailable', 'probe', 'error')).map(([r, n, t]) => `<presence xmlns="jabber:client" to="${r}/${esc(n)}" type="${t}"/>`),
  fc
    .tuple(room, type('groupchat', 'chat', 'normal', 'headline', 'error'), word, id)
    .map(([r, t, body, i]) => `<message xmlns="jabber:client" to="${r}" type="${t}" id="${i}"><body>${esc(body)}</body></message>`),
  fc.tuple(room, word, word).map(([r, n, body]) => `<message xmlns="jabber:client" to="${r}/${esc(n)}" type="chat"><body>${esc(body)}</body></message>`),
  fc.tuple(room, word).map(([r, s]) => `<message xmlns="jabber:client" to="${r}" type="groupchat"><subject>${esc(s)}</subject></message>`),
  fc
    .tuple(room, id, fc.constantFrom('http://jabber.org/protocol/disco#info', 'http://jabber.org/protocol/disco#items', 'urn:xmpp:ping', 'jabber:iq:version', 'urn:xmpp:time', 'vcard-temp'))
    .map(([r, i, ns]) => `<iq xmlns="jabber:client" type="get" id="${i}" to="${r}"><query xmlns="${ns}"/></iq>`),
  fc
    .tuple(room, id, word, fc.constantFrom('none', 'visitor', 'participant', 'moderator', 'x'), fc.constantFrom('none', 'member', 'admin', 'owner', 'outcast'))
    .map(
      ([r, i, n, role, aff]) =>
        `<iq xmlns="jabber:client" type="set" id="${i}" to="${r}"><query xmlns="http://jabber.org/protocol/muc#admin"><item nick="${esc(n)}" role="${role}" affiliation="${aff}"><reason>r</reason></item></query></iq>`,
    ),
  fc
    .tuple(room, id)
    .map(([r, i]) => `<iq xmlns="jabber:client" type="set" id="${i}" to="${r}"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"/></query></iq>`),
  fc.tuple(id, room).map(([i, r]) => `<iq xmlns="jabber:client" type="set" id="${i}" to="focus.localhost"><conference xmlns="http://jitsi.org/protocol/focus" room="${r}" machine-uid="m"/></iq>`),
  fc
    .tuple(id, fc.constantFrom('session-accept', 'session-terminate', 'transport-info', 'source-add', 'source-remove', 'content-modify', 'x'), fc.nat(2 ** 32))
    .map(
      ([i, action, ssrc]) =>
        `<iq xmlns="jabber:client" type="set" id="${i}" to="focus.localhost"><jingle xmlns="urn:xmpp:jingle:1" action="${action}" sid="s1"><content creator="initiator" name="video"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><payload-type id="100" name="VP8" clockrate="90000"/><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="${ssrc}"/></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="pppppppppppppppppppppp"><candidate component="1" foundation="1" generation="0" id="c" ip="127.0.0.1" port="9" priority="1" protocol="udp" type="host"/></transport></content></jingle></iq>`,
    ),
  fc.constantFrom(
    '<enable xmlns="urn:xmpp:sm:3" resume="true"/>',
    '<r xmlns="urn:xmpp:sm:3"/>',
    '<a xmlns="urn:xmpp:sm:3" h="0"/>',
    '<resume xmlns="urn:xmpp:sm:3" h="0" previd="nope"/>',
    '<iq xmlns="jabber:client" type="set" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>r</resource></bind></iq>',
    '<iq xmlns="jabber:client" type="set" id="s1"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>',
    '<iq xmlns="jabber:client" type="result" id="x"/>',
    '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>',
    OPEN,
    PING,
  ),
  fc.tuple(fc.constantFrom('PLAIN', 'ANONYMOUS', 'OAUTHBEARER', 'SCRAM-SHA-1', ''), b64).map(([m, p]) => `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="${m}">${p}</auth>`),
);

const PIECES = [
  '<',
  '>',
  '/>',
  '</a>',
  '&',
  '&amp;',
  '&#0;',
  '&#xD800;',
  '&nbsp;',
  '"',
  "'",
  '=',
  ' xmlns="x"',
  ' xmlns:p="y"',
  'p:',
  '\u0000',
  '\uFFFF',
  '\uD800',
  '<!--',
  '<![CDATA[',
  ']]>',
  '<!DOCTYPE x>',
  '<?x?>',
  '<a><a><a><a>',
];

/** A stanza broken at the text level: truncated, spliced, an attribute doubled, unescaped, deep, huge or several at once. */
const damaged: Arbitrary<string> = fc.oneof(
  fc.tuple(stanza, fc.nat()).map(([s, n]) => s.slice(0, n % (s.length + 1))),
  fc.tuple(stanza, fc.nat(), fc.constantFrom(...PIECES)).map(([s, n, p]) => {
    const at = n % (s.length + 1);
    return s.slice(0, at) + p + s.slice(at);
  }),
  fc.tuple(stanza, fc.nat(), fc.string({ unit: 'binary', maxLength: 8 })).map(([s, n, x]) => {
    const at = n % (s.length + 1);
    return s.slice(0, at) + x + s.slice(at);
  }),
  stanza.map((s) => s.replace(/^<(\w+) /, '<$1 id="dup" id="dup2" ')),
  fc.tuple(stanza, hostileString).map(([s, h]) => s.replace(/="[^"]*"/, `="${h}"`)),
  fc.tuple(stanza, fc.integer({ min: 20, max: 60 })).map(([s, d]) => s.replace(/<\/(\w+)>$/, `${'<d>'.repeat(d)}${'</d>'.repeat(d)}</$1>`)),
  fc.tuple(stanza, stanza).map(([a, b]) => a + b),
  stanza.map((s) => s.replace('xmlns="jabber:client"', 'xmlns="jabber:server"')),
  stanza.map((s) => s.replace(/ xmlns="[^"]*"/, '')),
  fc.constantFrom('', ' ', '\n', 'x', '<', '<a', '</iq>', '<?xml version="1.0"?>', '<stream:stream xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client" to="localhost"/>'),
);

const frame: Arbitrary<XFrame> = fc.oneof(
  { arbitrary: stanza.map((text) => ({ text })), weight: 5 },
  { arbitrary: damaged.map((text) => ({ text })), weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ bytes: Buffer.from(b).toString('base64'), asText: true })), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 16 }).map((b) => ({ bytes: Buffer.from(b).toString('base64') })), weight: 1 },
);

/** A text frame whose bytes are not UTF-8: ws closes with 1007 at once, before the server can say anything. */
function notUtf8(f: XFrame): boolean {
  if (!('bytes' in f) || !f.asText) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(f.bytes, 'base64'));
    return false;
  } catch {
    return true;
  }
}

/** The id of an IQ get or set that the frame holds whole, as the server reads it; undefined for any other frame. */
function owedIq(f: XFrame): string | undefined {
  if (!('text' in f)) return undefined;
  let e: Element;
  try {
    e = parseElement(f.text);
  } catch {
    return undefined; // not well-formed: the stream must end (checked below)
  }
  if (e.name !== 'iq' || e.attrs.xmlns !== 'jabber:client' || (e.attrs.type !== 'get' && e.attrs.type !== 'set')) return undefined;
  const id = e.attrs.id;
  // The id as it goes on the wire: UTF-8 turns a lone surrogate into U+FFFD, and the server answers that id.
  return typeof id === 'string' && id !== '' ? Buffer.from(id).toString() : undefined;
}

interface Received {
  text: string;
  el: Element | undefined;
}

function isStreamEnd(f: Received): boolean {
  return f.el !== undefined && (f.el.name === 'stream:error' || f.el.is('error', 'http://etherx.jabber.org/streams') || f.el.is('close', 'urn:ietf:params:xml:ns:xmpp-framing'));
}

async function member(url: string, clientId: string, username: string): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(url, { id: clientId, answerPings: true, timeoutMs: REPLY_MS });
  const j = await c.join(GROUP, username, 'x', {}, REPLY_MS);
  if (j.kind !== 'join') throw new Error(`${username} could not join: ${JSON.stringify(j)}`);
  return c;
}

export const xmppTarget: Target<XmppCase, XmppEnv> = {
  name: 'xmpp',
  host: {
    groups: {
      [GROUP]: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' }, 'allow-anonymous': true },
      other: { users: { bob: { password: 'bobpw', permissions: 'message' } } },
      locked: { 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' }, autolock: true },
    },
    // Every case ends with a cut (terminate): a session with stream management waits this long for a resumption.
    xmppResumeSeconds: 2,
  },
  arbitrary: fc.record({
    start: fc.constantFrom<Start>('fresh', 'open', 'login', 'room', 'room'),
    frames: fc.array(frame, { minLength: 1, maxLength: 6 }),
  }),

  async setup(host: Host | undefined) {
    const wsBase = host!.url.replace(/^http/, 'ws');
    const galene = `${wsBase}/ws`;
    const bystander = await member(galene, BYSTANDER_ID, 'bystander');
    const witness = await member(galene, WITNESS_ID, 'witness');
    return { url: `${wsBase}/xmpp-websocket`, bystander, witness, connections: 0 };
  },

  async run(env, c) {
    const n = env.connections++;
    const ws = new WebSocket(env.url, 'xmpp', { localAddress: loopbackAddress(n) });
    const got: Received[] = [];
    let closed: { code: number; reason: string } | undefined;
    ws.on('message', (d) => {
      const text = d.toString();
      let el: Element | undefined;
      try {
        el = parse(text) as Element;
      } catch {
        el = undefined;
      }
      got.push({ text, el });
    });
    ws.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const waitFor = async (pred: (f: Received) => boolean, what: string) => {
      if (!(await until(() => got.some(pred) || closed !== undefined, REPLY_MS))) throw new Error(`no ${what} while setting up the case`);
      if (closed) throw new Error(`closed while setting up the case (${what}): ${closed.code} ${closed.reason}`);
    };
    try {
      if (c.start !== 'fresh') {
        ws.send(OPEN);
        await waitFor((f) => f.el?.name === 'stream:features', 'stream features');
      }
      if (c.start === 'login' || c.start === 'room') {
        ws.send('<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="ANONYMOUS"/>');
        await waitFor((f) => f.el?.is('success') === true, 'SASL success');
        got.length = 0;
        ws.send(OPEN);
        await waitFor((f) => f.el?.name === 'stream:features', 'features after SASL');
        ws.send('<iq xmlns="jabber:client" type="set" id="bind"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>');
        await waitFor((f) => f.el?.attrs.id === 'bind', 'bind result');
      }
      if (c.start === 'room') {
        ws.send(`<presence xmlns="jabber:client" to="${ROOM}/fuzzer-${n}-${Math.random().toString(36).slice(2, 8)}"><x xmlns="http://jabber.org/protocol/muc"/></presence>`);
        await waitFor(
          (f) => (f.el?.is('message') === true && f.el.getChild('subject') !== undefined) || (f.el?.is('presence') === true && f.el.attrs.type === 'error'),
          'the room subject after joining',
        );
        const refused = got.find((f) => f.el?.is('presence') === true && f.el.attrs.type === 'error');
        if (refused) throw new Error(`the case's own join was refused: ${refused.text.slice(0, 300)}`);
      }
      const mark = got.length;
      /** IQ ids owed an answer, with how many times each was sent. */
      const owed = new Map<string, number>([[PING_ID, 1]]);
      for (const f of c.frames) {
        if (closed) break;
        if ('text' in f) ws.send(f.text);
        else ws.send(Buffer.from(f.bytes, 'base64'), { binary: !f.asText });
        const iq = owedIq(f);
        if (iq !== undefined) owed.set(iq, (owed.get(iq) ?? 0) + 1);
      }
      if (!closed) ws.send(PING);
      const after = () => got.slice(mark);
      const answers = (id: string) => after().filter((f) => f.el?.is('iq') === true && f.el.attrs.id === id && (f.el.attrs.type === 'result' || f.el.attrs.type === 'error')).length;
      const unanswered = () => [...owed].filter(([id, n]) => answers(id) < n).map(([id]) => id);
      const answered = () => unanswered().length === 0;
      await until(() => answered() || closed !== undefined, REPLY_MS);
      const notXml = got.find((f) => f.el === undefined);
      if (notXml) throw new Error(`the server sent a frame that is not XML: ${notXml.text.slice(0, 300)}`);
      const internal = got.find((f) => f.text.includes('internal-server-error'));
      if (internal) throw new Error(`an internal error: ${internal.text.slice(0, 600)}`);
      if (answered()) return;
      const ended = after().some(isStreamEnd);
      if (closed !== undefined) {
        // ws ends the socket at once on bad UTF-8: the client may see 1007 or only the cut (1006).
        if ((closed.code === 1007 || closed.code === 1006) && c.frames.some(notUtf8)) return;
        if (!CLOSE_CODES.has(closed.code)) throw new Error(`closed with code ${closed.code} ("${closed.reason}")`);
        if (!ended)
          throw new Error(
            `closed (${closed.code} "${closed.reason}") without a stream error or <close/>: ${got
              .slice(-3)
              .map((f) => f.text.slice(0, 200))
              .join(' | ')}`,
          );
        return;
      }
      // A stream error or <close/> must be followed by the close of the connection.
      if (ended) {
        if (await until(() => closed !== undefined, REPLY_MS)) return;
        throw new Error('a stream error or <close/> was sent but the connection stayed open');
      }
      throw new Error(
        `${unanswered().includes(PING_ID) ? 'the ping was' : `IQ ${JSON.stringify(unanswered())} ${unanswered().length > 1 ? 'were' : 'was'}`} not answered and the stream was not ended: ${got
          .slice(-4)
          .map((f) => f.text.slice(0, 200))
          .join(' | ')}`,
      );
    } finally {
      ws.terminate();
    }
  },

  async check(env) {
    const galene = env.url.replace(/xmpp-websocket$/, 'ws');
    if (env.witness.isClosed) env.witness = await member(galene, `${WITNESS_ID}-${Date.now()}`, 'witness');
    // Both say something now and then, or the server drops them as silent after 75 s.
    env.bystander.send({ type: 'ping' });
    const mark = `witness ${Date.now()} ${Math.random()}`;
    env.witness.chat(mark);
    if (env.bystander.isClosed) throw new Error(`the bystander was disconnected: ${JSON.stringify(await env.bystander.closed)}`);
    await env.bystander.next((f) => f.type === 'chat' && f.value === mark, REPLY_MS, 'the witness chat');
    if (env.bystander.violations.length > 0) throw new Error(`the bystander got frames that break the protocol: ${env.bystander.violations.slice(0, 3).join('; ')}`);
    const posing = env.bystander.received.find((f) => (f.type === 'chat' || f.type === 'usermessage') && f.source === BYSTANDER_ID);
    if (posing) throw new Error(`a frame posed as the bystander: ${JSON.stringify(posing)}`);
    // Keep memory of what they saw bounded over long runs.
    for (const p of [env.bystander, env.witness]) {
      p.received.splice(0, p.received.length);
      (p as unknown as { cursor: number }).cursor = 0;
    }
  },

  async teardown(env) {
    env.bystander.close();
    env.witness.close();
    await Promise.all([env.bystander.closed, env.witness.closed]);
  },
};
