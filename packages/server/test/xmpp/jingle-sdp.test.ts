// SDP <-> Jingle conversion, both ways, on SDPs shaped like Chromium's and
// Jingle shaped like Jitsi's focus sends: SSRC groups (SIM, FID), source
// names and owners, rid simulcast, trickle candidates, data channels; and
// what the reader refuses. Pure functions: no server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sdpTransform from 'sdp-transform';
import type { JingleDescription } from '../../src/dialects/xmpp/jingle/model.ts';
import { candidateLine, jingleToSdp, parseCandidateLine, sdpToJingle } from '../../src/dialects/xmpp/jingle/sdp.ts';
import { JingleXmlError, appendDescription, readDescription } from '../../src/dialects/xmpp/jingle/xml.ts';
import { el, parseElement } from '../../src/dialects/xmpp/xml.ts';

const FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';

/** A Chromium-style offer: opus, VP8 with RTX, three simulcast SSRCs with their FID pairs, a data channel. */
const OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1 2',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS stream1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=candidate:1467250027 1 udp 2122260223 127.0.0.1 46243 typ host generation 0',
  'a=candidate:2 1 udp 1686052607 203.0.113.7 46243 typ srflx raddr 127.0.0.1 rport 46243 generation 0',
  'a=ice-ufrag:Ja3r',
  'a=ice-pwd:t1kZcBCPzGvSpAbLyEmvJ3zN',
  `a=fingerprint:sha-256 ${FP}`,
  'a=setup:actpass',
  'a=mid:0',
  'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  'a=sendonly',
  'a=msid:stream1 audio1',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:63 red/48000/2',
  'a=fmtp:63 111/111',
  'a=ssrc:1001 cname:abc',
  'a=ssrc:1001 msid:stream1 audio1',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:Ja3r',
  'a=ice-pwd:t1kZcBCPzGvSpAbLyEmvJ3zN',
  `a=fingerprint:sha-256 ${FP}`,
  'a=setup:actpass',
  'a=mid:1',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'a=sendonly',
  'a=msid:stream1 video1',
  'a=rtcp-mux',
  'a=rtcp-rsize',
  'a=rtpmap:96 VP8/90000',
  'a=rtcp-fb:96 goog-remb',
  'a=rtcp-fb:96 nack',
  'a=rtcp-fb:96 nack pli',
  'a=rtcp-fb:96 ccm fir',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=ssrc-group:SIM 2001 2002 2003',
  'a=ssrc-group:FID 2001 3001',
  'a=ssrc-group:FID 2002 3002',
  'a=ssrc-group:FID 2003 3003',
  ...[2001, 2002, 2003, 3001, 3002, 3003].flatMap((s) => [`a=ssrc:${s} cname:abc`, `a=ssrc:${s} msid:stream1 video1`]),
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:Ja3r',
  'a=ice-pwd:t1kZcBCPzGvSpAbLyEmvJ3zN',
  `a=fingerprint:sha-256 ${FP}`,
  'a=setup:actpass',
  'a=mid:2',
  'a=sctp-port:5000',
  'a=max-message-size:262144',
  '',
].join('\r\n');

test('a Chromium offer becomes Jingle contents with payloads, feedback, SSRC groups, sources and candidates', () => {
  const j = sdpToJingle(OFFER, { author: 'initiator' });
  assert.deepEqual(j.bundle, ['0', '1', '2']);
  assert.deepEqual(
    j.contents.map((c) => [c.name, c.senders, c.rtp?.media ?? 'data']),
    [
      ['0', 'initiator', 'audio'],
      ['1', 'initiator', 'video'],
      ['2', 'both', 'data'],
    ],
  );
  const audio = j.contents[0]!;
  assert.deepEqual(audio.rtp!.payloads[0], {
    id: 111,
    name: 'opus',
    clockrate: 48000,
    channels: 2,
    parameters: [
      { name: 'minptime', value: '10' },
      { name: 'useinbandfec', value: '1' },
    ],
    feedback: [{ type: 'transport-cc', subtype: undefined }],
  });
  assert.deepEqual(audio.rtp!.payloads[1]!.parameters, [{ name: '', value: '111/111' }]);
  assert.deepEqual(audio.rtp!.sources, [{ ssrc: 1001, cname: 'abc', msid: 'stream1 audio1' }]);
  assert.equal(audio.transport.candidates.length, 2);
  assert.deepEqual(audio.transport.candidates[1], {
    foundation: '2',
    component: 1,
    protocol: 'udp',
    priority: 1686052607,
    ip: '203.0.113.7',
    port: 46243,
    type: 'srflx',
    relAddr: '127.0.0.1',
    relPort: 46243,
    tcptype: undefined,
    generation: 0,
    id: '2-1-udp',
    network: undefined,
  });
  assert.deepEqual(audio.transport.fingerprints, [{ hash: 'sha-256', setup: 'actpass', value: FP }]);
  const video = j.contents[1]!.rtp!;
  assert.deepEqual(video.ssrcGroups, [
    { semantics: 'SIM', ssrcs: [2001, 2002, 2003] },
    { semantics: 'FID', ssrcs: [2001, 3001] },
    { semantics: 'FID', ssrcs: [2002, 3002] },
    { semantics: 'FID', ssrcs: [2003, 3003] },
  ]);
  assert.equal(video.sources.length, 6);
  assert.ok(video.rtcpMux && video.rtcpRsize && video.extmapAllowMixed);
  assert.deepEqual(
    video.payloads[0]!.feedback.map((f) => `${f.type}${f.subtype ? ` ${f.subtype}` : ''}`),
    ['goog-remb', 'nack', 'nack pli', 'ccm fir'],
  );
  assert.deepEqual(j.contents[2]!.transport.sctp, { port: 5000, maxMessageSize: 262144 });
});

test('Jingle written as XML and read back is the same description', () => {
  const j = sdpToJingle(OFFER, { author: 'initiator' });
  const xml = appendDescription(el('jingle', { xmlns: 'urn:xmpp:jingle:1', action: 'session-initiate', sid: 's' }), j).toString();
  const back = readDescription(parseElement(xml));
  // maxMessageSize is not carried by Jingle's sctpmap.
  const expected = structuredClone(j) as JingleDescription;
  expected.contents[2]!.transport.sctp = { port: 5000 };
  assert.deepEqual(JSON.parse(JSON.stringify(back)), JSON.parse(JSON.stringify(expected)));
  assert.match(xml, /<ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="SIM"><source ssrc="2001"\/><source ssrc="2002"\/><source ssrc="2003"\/><\/ssrc-group>/);
  assert.match(xml, /<group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="0"\/><content name="1"\/><content name="2"\/><\/group>/);
  assert.match(xml, /<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">AB:CD/);
});

test('Jingle back to SDP keeps what the browser needs, m-line for m-line', () => {
  const sdp = jingleToSdp(sdpToJingle(OFFER, { author: 'initiator' }), { author: 'initiator' });
  const a = sdpTransform.parse(OFFER);
  const b = sdpTransform.parse(sdp);
  assert.deepEqual(b.groups, a.groups);
  assert.equal(b.media.length, 3);
  for (const [i, m] of a.media.entries()) {
    const n = b.media[i]!;
    for (const key of ['type', 'mid', 'direction', 'iceUfrag', 'icePwd', 'setup', 'payloads', 'rtcpMux', 'sctpPort'] as const) assert.deepEqual(n[key], m[key], `m-line ${i} ${key}`);
    assert.deepEqual(n.fingerprint, m.fingerprint);
    assert.deepEqual(n.rtp, m.rtp);
    assert.deepEqual(n.fmtp, m.fmtp);
    assert.deepEqual(n.rtcpFb ?? [], m.rtcpFb ?? []);
    assert.deepEqual(n.ssrcGroups, m.ssrcGroups);
    assert.deepEqual((n.ssrcs ?? []).map((s) => `${s.id} ${s.attribute}:${s.value}`).sort(), (m.ssrcs ?? []).map((s) => `${s.id} ${s.attribute}:${s.value}`).sort());
    assert.deepEqual(
      (n.candidates ?? []).map((c) => `${c.foundation} ${c.ip}:${c.port} ${c.type}`),
      (m.candidates ?? []).map((c) => `${c.foundation} ${c.ip}:${c.port} ${c.type}`),
    );
    assert.deepEqual(n.ext, m.ext);
  }
});

test('directions are relative to whose SDP it is', () => {
  const answer = OFFER.replace(/a=sendonly/g, 'a=recvonly').replace(/a=setup:actpass/g, 'a=setup:active');
  const j = sdpToJingle(answer, { author: 'responder' });
  // The responder receives: the initiator sends.
  assert.equal(j.contents[0]!.senders, 'initiator');
  assert.match(jingleToSdp(j, { author: 'responder' }), /a=recvonly/);
  assert.match(jingleToSdp(j, { author: 'initiator' }), /a=sendonly/);
  const both = sdpToJingle(OFFER.replace(/a=sendonly/g, 'a=sendrecv'), { author: 'initiator' });
  assert.equal(both.contents[1]!.senders, 'both');
  const off = sdpToJingle(OFFER.replace('m=video 9', 'm=video 0'), { author: 'responder' });
  assert.equal(off.contents[1]!.rejected, true);
  assert.match(jingleToSdp(off, { author: 'responder' }), /m=video 0 /);
  const xml = appendDescription(el('jingle', { xmlns: 'urn:xmpp:jingle:1' }), off).toString();
  assert.match(xml, /name="1" senders="rejected"/);
});

test('rid simulcast travels as Jitsi writes it: <source rid/> and a SIM rid-group', () => {
  const rids = OFFER.replace(/a=ssrc-group:.*\r\n/g, '')
    .replace(/a=ssrc:[23]00\d .*\r\n/g, '')
    .replace('a=rtpmap:97 rtx/90000', 'a=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\na=rtpmap:97 rtx/90000');
  const j = sdpToJingle(rids, { author: 'initiator' });
  const v = j.contents[1]!.rtp!;
  assert.deepEqual(v.rids, ['h', 'l']);
  assert.equal(v.ridsSentBy, 'initiator');
  assert.equal(v.simulcast, true);
  const xml = appendDescription(el('jingle', { xmlns: 'urn:xmpp:jingle:1' }), j).toString();
  assert.match(xml, /<rid-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="SIM"><source rid="h"\/><source rid="l"\/><\/rid-group>/);
  const back = jingleToSdp(readDescription(parseElement(xml)), { author: 'initiator' });
  assert.match(back, /a=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l/);
  // The server's answer to it receives those rids.
  assert.match(jingleToSdp(readDescription(parseElement(xml)), { author: 'responder' }), /a=rid:h recv\r\na=rid:l recv\r\na=simulcast:recv h;l/);
});

test("a Jicofo-style offer (contents named by media, sources with owners, FID, the bridge's web socket) becomes an SDP", () => {
  const jingle = parseElement(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="abc" initiator="room@conference.example/focus">
    <group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="audio"/><content name="video"/></group>
    <content creator="initiator" name="audio" senders="both">
      <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">
        <payload-type id="111" name="opus" clockrate="48000" channels="2"><parameter name="useinbandfec" value="1"/><rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="transport-cc"/></payload-type>
        <rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="1" uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"/>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="4001" name="ep1-a0"><parameter name="msid" value="ep1-audio-1 a1"/><ssrc-info xmlns="http://jitsi.org/jitmeet" owner="room@conference.example/ep1"/></source>
        <rtcp-mux/>
      </description>
      <transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="uf1" pwd="pwdpwdpwdpwdpwdpwdpwd1">
        <web-socket xmlns="http://jitsi.org/protocol/colibri" url="wss://example/colibri-ws/x/y"/>
        <fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">${FP}</fingerprint>
        <candidate component="1" foundation="1" generation="0" id="c1" ip="192.0.2.1" network="0" port="10000" priority="2130706431" protocol="udp" type="host"/>
      </transport>
    </content>
    <content creator="initiator" name="video" senders="both">
      <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video">
        <payload-type id="100" name="VP8" clockrate="90000"><rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="nack" subtype="pli"/></payload-type>
        <payload-type id="96" name="rtx" clockrate="90000"><parameter name="apt" value="100"/></payload-type>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="5001" name="ep1-v0" videoType="camera"><parameter name="msid" value="ep1-video-1 v1"/><ssrc-info xmlns="http://jitsi.org/jitmeet" owner="room@conference.example/ep1"/></source>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="5002" name="ep1-v0"><ssrc-info xmlns="http://jitsi.org/jitmeet" owner="room@conference.example/ep1"/></source>
        <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID"><source ssrc="5001"/><source ssrc="5002"/></ssrc-group>
        <rtcp-mux/>
      </description>
      <transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="uf1" pwd="pwdpwdpwdpwdpwdpwdpwd1"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">${FP}</fingerprint></transport>
    </content>
  </jingle>`);
  const desc = readDescription(jingle);
  assert.equal(desc.contents[0]!.transport.webSocket, 'wss://example/colibri-ws/x/y');
  assert.deepEqual(desc.contents[1]!.rtp!.sources[0], { ssrc: 5001, name: 'ep1-v0', videoType: 'camera', msid: 'ep1-video-1 v1', owner: 'room@conference.example/ep1' });
  const sdp = sdpTransform.parse(jingleToSdp(desc, { author: 'initiator' }));
  assert.deepEqual(
    sdp.media.map((m) => [m.type, m.mid, m.direction]),
    [
      ['audio', 'audio', 'sendrecv'],
      ['video', 'video', 'sendrecv'],
    ],
  );
  assert.deepEqual(sdp.media[1]!.ssrcGroups, [{ semantics: 'FID', ssrcs: '5001 5002' }]);
  assert.ok(sdp.media[1]!.ssrcs!.some((s) => s.id === 5001 && s.attribute === 'msid' && s.value === 'ep1-video-1 v1'));
  assert.deepEqual(
    sdp.media[0]!.candidates!.map((c) => `${c.ip}:${c.port}`),
    ['192.0.2.1:10000'],
  );
});

test('an m-line with a single payload type converts (sdp-transform reads it as a number)', () => {
  const one = OFFER.replace('m=audio 9 UDP/TLS/RTP/SAVPF 111 63', 'm=audio 9 UDP/TLS/RTP/SAVPF 111').replace('a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n', '');
  const j = sdpToJingle(one, { author: 'initiator' });
  assert.deepEqual(
    j.contents[0]!.rtp!.payloads.map((p) => p.id),
    [111],
  );
});

test('candidate lines and <candidate/> elements convert both ways', () => {
  const line = 'candidate:3098175849 1 udp 1686052607 198.51.100.4 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 ufrag EsAw network-id 1';
  const c = parseCandidateLine(line);
  assert.equal(c.relAddr, '10.0.0.2');
  assert.equal(c.network, 1);
  assert.equal(candidateLine(c), 'candidate:3098175849 1 udp 1686052607 198.51.100.4 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0');
  assert.throws(() => parseCandidateLine('candidate:garbage'), /not an ICE candidate line/);
});

// Every row is one value Jingle from the network may not carry.
const BAD_JINGLE: [string, string, RegExp][] = [
  ['an ssrc out of range', '<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="4294967296"/>', /between 0 and 4294967295/],
  ['a negative payload type', '<payload-type id="-1" name="x"/>', /whole number/],
  ['a payload type over 127', '<payload-type id="128" name="x"/>', /between 0 and 127/],
  ['a codec name with a space', '<payload-type id="96" name="VP8 x"/>', /printable ASCII/],
  ['an fmtp value with a line break', '<payload-type id="96" name="VP8"><parameter name="a" value="1&#10;a=inject"/></payload-type>', /line breaks/],
  ['an msid with a line break', '<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1"><parameter name="msid" value="a&#13;&#10;b"/></source>', /line breaks/],
  ['a header extension id of 0', '<rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="0" uri="urn:x"/>', /between 1 and 255/],
  ['a group of a non-number', '<ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID"><source ssrc="x"/></ssrc-group>', /whole number/],
  ['too many sources', Array.from({ length: 1025 }, (_, i) => `<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="${i}"/>`).join(''), /more than 1024 sources/],
];

for (const [name, inner, message] of BAD_JINGLE) {
  test(`Jingle with ${name} is refused`, () => {
    const xml = `<jingle xmlns="urn:xmpp:jingle:1"><content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video"><payload-type id="96" name="VP8" clockrate="90000"/>${inner}</description></content></jingle>`;
    assert.throws(
      () => readDescription(parseElement(xml)),
      (e: Error) => e instanceof JingleXmlError && message.test(e.message),
    );
  });
}

test('contents that cannot be SDP are refused by name', () => {
  const bad: [string, RegExp][] = [
    ['<content creator="initiator" name="0"/>', /neither an RTP <description\/> nor an SCTP data channel/],
    ['<content creator="someone" name="0"/>', /initiator or responder/],
    ['<content creator="initiator" name="a b"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></content>', /printable ASCII/],
    ['<content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="text"/></content>', /audio or video/],
    [
      '<content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="111" name="opus"/></description></content><content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="111" name="opus"/></description></content>',
      /two contents are named "0"/,
    ],
    [
      '<content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="111" name="opus"/></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="a b"/></content>',
      /ICE characters/,
    ],
  ];
  for (const [inner, message] of bad) assert.throws(() => readDescription(parseElement(`<jingle xmlns="urn:xmpp:jingle:1">${inner}</jingle>`)), message);
});
