// Mutation fuzzing of everything in the XMPP dialect that reads network
// input without a server: the XML parser, the Jingle reader and its SDP
// writer, the JID parser and the SASL decoders. Seeded, so a failure is
// reproducible; each must either succeed or throw its own error type,
// never anything else (a TypeError would be a crash in the server).
// `XMPP_FUZZ_ITERATIONS=200000 npm test -- xmpp-fuzz` runs a long soak.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JidError, parseJid } from '../../src/dialects/xmpp/jid.ts';
import { JingleSdpError, jingleToSdp } from '../../src/dialects/xmpp/jingle/sdp.ts';
import { JingleXmlError, readDescription } from '../../src/dialects/xmpp/jingle/xml.ts';
import { SaslError, decodeOAuthBearer, decodePlain, decodeSaslPayload } from '../../src/dialects/xmpp/sasl.ts';
import { XmlError, parseElement } from '../../src/dialects/xmpp/xml.ts';

const ITERATIONS = Number(process.env.XMPP_FUZZ_ITERATIONS ?? 3000);

/** mulberry32: small, seeded, good enough to pick mutations. */
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

const CORPUS = [
  '<presence xmlns="jabber:client" to="chat@conference.localhost/nick"><x xmlns="http://jabber.org/protocol/muc"><password>pw</password><history maxstanzas="5"/></x><nick xmlns="http://jabber.org/protocol/nick">Nick</nick></presence>',
  '<message xmlns="jabber:client" to="chat@conference.localhost" type="groupchat" id="1"><body>hello &amp; &lt;world&gt; &#x1F600;</body></message>',
  '<iq xmlns="jabber:client" type="set" id="a"><query xmlns="http://jabber.org/protocol/muc#admin"><item nick="x" role="none"><reason>r</reason></item></query></iq>',
  '<body xmlns="http://jabber.org/protocol/httpbind" rid="1" sid="s" xmlns:xmpp="urn:xmpp:xbosh" xmpp:restart="true"><iq xmlns="jabber:client" type="get"/></body>',
  '<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s"><group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="0"/></group><content creator="initiator" name="0" senders="both"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><payload-type id="96" name="VP8" clockrate="90000"><rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="nack" subtype="pli"/></payload-type><payload-type id="97" name="rtx" clockrate="90000"><parameter name="apt" value="96"/></payload-type><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1" name="a-v0"><parameter name="msid" value="s t"/></source><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="2"/><ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID"><source ssrc="1"/><source ssrc="2"/></ssrc-group><rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="3" uri="urn:ietf:params:rtp-hdrext:sdes:mid"/><rtcp-mux/></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="abcd" pwd="abcdefghijklmnopqrstuvwx"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89</fingerprint><candidate component="1" foundation="1" generation="0" id="c" ip="127.0.0.1" port="5000" priority="1" protocol="udp" type="host"/></transport></content></jingle>',
];

const PIECES = [
  '<',
  '>',
  '/>',
  '</a>',
  '&',
  '&amp;',
  '&#0;',
  '&#xD800;',
  '"',
  "'",
  '=',
  ' ',
  '\u0000',
  '\uFFFF',
  '<!--',
  '<![CDATA[',
  ']]>',
  '<!DOCTYPE',
  '<?x',
  'xmlns:',
  'p:',
  '99999999999',
  '-1',
  '4294967295',
  '\r\n',
  'a=inject',
  '\u202e',
  '😀',
];

function mutate(s: string, r: () => number): string {
  let out = s;
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (out.length + 1));
    const op = Math.floor(r() * 4);
    if (op === 0) out = out.slice(0, at) + PIECES[Math.floor(r() * PIECES.length)] + out.slice(at);
    else if (op === 1) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(r() * 8));
    else if (op === 2) out = out.slice(0, at) + out.slice(at, at + 1 + Math.floor(r() * 32)).repeat(2) + out.slice(at);
    else {
      // Swap a digit run for another number.
      out = out.replace(/\d+/, String(Math.floor(r() * 2 ** 33) - 2 ** 31));
    }
  }
  return out;
}

function expectOnly(errors: (new (...a: never[]) => Error)[], f: () => unknown, input: string): void {
  try {
    f();
  } catch (e) {
    if (!errors.some((E) => e instanceof E)) assert.fail(`unexpected ${(e as Error)?.name}: ${(e as Error)?.message}\ninput: ${JSON.stringify(input).slice(0, 2000)}`);
  }
}

test(`the XML parser and the Jingle reader survive ${ITERATIONS} mutated stanzas`, () => {
  const r = rng(16);
  let parsed = 0;
  let jingle = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const input = mutate(CORPUS[i % CORPUS.length]!, r);
    expectOnly(
      [XmlError, JingleXmlError, JingleSdpError],
      () => {
        const e = parseElement(input);
        parsed++;
        if (e.getName() === 'jingle') {
          const d = readDescription(e);
          jingleToSdp(d, { author: 'initiator' });
          jingle++;
        }
      },
      input,
    );
  }
  // The mutations are mild enough that many inputs still parse: the deeper code is reached.
  assert.ok(parsed > ITERATIONS / 10, `only ${parsed} of ${ITERATIONS} inputs parsed`);
  assert.ok(jingle > 0, 'no mutated Jingle got through to the SDP writer');
});

test('the JID parser and the SASL decoders take any bytes', () => {
  const r = rng(7);
  const jids = ['user@localhost/res', 'room\\2fsub@conference.localhost/nick', 'localhost', 'a@b'];
  for (let i = 0; i < ITERATIONS; i++) {
    const j = mutate(jids[i % jids.length]!, r);
    expectOnly([JidError], () => parseJid(j), j);
    const bytes = Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
    const b64 = r() < 0.5 ? bytes.toString('base64') : mutate(bytes.toString('base64'), r);
    expectOnly([SaslError], () => decodePlain(decodeSaslPayload(b64)), b64);
    expectOnly([SaslError], () => decodeOAuthBearer(decodeSaslPayload(b64)), b64);
    const bearer = mutate('n,a=user,\u0001auth=Bearer abc.def.ghi\u0001\u0001', r);
    expectOnly([SaslError], () => decodeOAuthBearer(Buffer.from(bearer)), bearer);
  }
});
