// Fuzz target: WHIP ingest and WHEP playback over HTTP (/group/<g>/.whip and
// .whep, RFC 9725), against a server with its media engine. A case POSTs an
// offer — a browser-like SDP offer, the same broken line by line, or junk —
// with one of several kinds of credentials and content types, and when it
// gets a session (201), sends a few requests on it (trickle ICE, ICE restarts,
// OPTIONS, a second DELETE) and finally DELETEs it with its credentials.
// Properties: an answer to every request (within 30 s), never a 5xx but 501
// and 503 with a reason; a 201 has a Location in the group's endpoint, an
// ETag and an SDP answer; a session's own DELETE ends it (200), and after that
// it is gone (404) (a WHEP session also ends with the stream it plays); nobody
// without "present" gets a WHIP session; and a member
// of the group keeps hearing another.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import fc from 'fast-check';
import * as jose from 'jose';
import { GaleneTestClient } from '../../support/galene-client.ts';
import { type Host, REPLY_MS, type Target, loopbackAddress } from '../support/harness.ts';
import { hostileString } from '../support/zod-arbitrary.ts';

const GROUP = 'live';
const SECRET = randomBytes(32);
const BOB = { username: 'bob', password: 'bob-pw-5k2' };

/** A browser's offer for one audio and one video track, bundled (the shape Chromium sends). */
export function offerOf(ufrag: string): string {
  return [
    'v=0',
    'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0 1',
    'a=extmap-allow-mixed',
    'a=msid-semantic: WMS stream',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 0',
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    `a=ice-ufrag:${ufrag}`,
    'a=ice-pwd:asd88fgpdd777uzjYhagZg0ptJ',
    'a=ice-options:trickle',
    'a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08',
    'a=setup:actpass',
    'a=mid:0',
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
    'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
    'a=sendonly',
    'a=msid:stream audio0',
    'a=rtcp-mux',
    'a=rtpmap:111 opus/48000/2',
    'a=rtcp-fb:111 transport-cc',
    'a=fmtp:111 minptime=10;useinbandfec=1',
    'a=rtpmap:0 PCMU/8000',
    'a=ssrc:1001 cname:fuzzcname',
    'm=video 9 UDP/TLS/RTP/SAVPF 96 97',
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    `a=ice-ufrag:${ufrag}`,
    'a=ice-pwd:asd88fgpdd777uzjYhagZg0ptJ',
    'a=ice-options:trickle',
    'a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08',
    'a=setup:actpass',
    'a=mid:1',
    'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
    'a=sendonly',
    'a=msid:stream video0',
    'a=rtcp-mux',
    'a=rtcp-rsize',
    'a=rtpmap:96 VP8/90000',
    'a=rtcp-fb:96 goog-remb',
    'a=rtcp-fb:96 nack',
    'a=rtcp-fb:96 nack pli',
    'a=rtpmap:97 rtx/90000',
    'a=fmtp:97 apt=96',
    'a=ssrc-group:FID 2001 2002',
    'a=ssrc:2001 cname:fuzzcname',
    'a=ssrc:2002 cname:fuzzcname',
    '',
  ].join('\r\n');
}

/** One change to an offer's lines. */
type LineEdit = { op: 'drop' | 'dup' | 'replace' | 'truncate' | 'swap' | 'numbers'; at: number; text: string };

const lineEdit: fc.Arbitrary<LineEdit> = fc.record({
  op: fc.constantFrom<LineEdit['op']>('drop', 'dup', 'replace', 'truncate', 'swap', 'numbers'),
  at: fc.nat(),
  text: fc.oneof(
    hostileString,
    fc.constantFrom(
      'm=video 0 UDP/TLS/RTP/SAVPF 96',
      'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
      'm=video 9 RTP/AVP 0',
      'a=mid:',
      'a=mid:0',
      'a=group:BUNDLE 0 1 2 3',
      'a=rtpmap:96 H264/90000',
      'a=rtpmap:96 VP8',
      'a=rtpmap:x',
      'a=fmtp:97 apt=999',
      'a=ssrc:1 cname:',
      'a=ssrc-group:FID 1',
      'a=simulcast:send h;m;l',
      'a=rid:h send',
      'a=setup:passive',
      'a=fingerprint:sha-1 00',
      'a=ice-ufrag:',
      'a=ice-pwd:',
      'a=recvonly',
      'a=inactive',
      'a=extmap:99999 urn:x',
      'a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host',
      'c=IN IP6 ::',
      'b=AS:-1',
    ),
  ),
});

function edited(sdp: string, edits: LineEdit[], lf: boolean): string {
  const lines = sdp.split('\r\n');
  for (const e of edits) {
    const i = e.at % Math.max(1, lines.length);
    if (e.op === 'drop') lines.splice(i, 1);
    else if (e.op === 'dup') lines.splice(i, 0, lines[i] ?? '');
    else if (e.op === 'replace') lines[i] = e.text;
    else if (e.op === 'truncate') lines[i] = (lines[i] ?? '').slice(0, e.text.length % Math.max(1, (lines[i] ?? '').length));
    else if (e.op === 'swap') {
      const j = (e.at * 7 + 3) % Math.max(1, lines.length);
      [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
    } else lines[i] = (lines[i] ?? '').replace(/\d+/g, (d) => String((Number(d) * 31 + e.text.length) % 100_000));
  }
  return lines.join(lf ? '\n' : '\r\n');
}

/** A trickle-ICE fragment (RFC 8840): candidates, sometimes new ICE credentials, or something broken. */
const fragment: fc.Arbitrary<string> = fc.oneof(
  fc.constant('a=ice-options:trickle\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n'),
  fc.constant('a=ice-ufrag:new1\r\na=ice-pwd:newpasswordnewpasswordnew\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n'),
  fc.constant('a=ice-ufrag:new2\r\na=ice-pwd:x\r\n'),
  fc.constant('m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:7\r\na=candidate:x\r\na=end-of-candidates\r\n'),
  fc.tuple(fc.constantFrom('a=candidate:', 'a=mid:', 'a=ice-ufrag:', 'm=', 'a=ice-pwd:', ''), hostileString).map(([a, b]) => `${a}${b}\r\n`),
  hostileString,
);

type Auth = 'none' | 'jwt' | 'jwt-no-present' | 'jwt-other-key' | 'bad-token' | 'basic' | 'basic-wrong' | 'garbage';

export interface WhipCase {
  protocol: 'whip' | 'whep';
  group: string;
  auth: Auth;
  type: string | undefined;
  offer: { template: true; edits: LineEdit[]; lf: boolean } | { text: string };
  /** Requests on the session, once it exists. */
  after: { method: 'PATCH' | 'DELETE' | 'OPTIONS' | 'POST'; ifMatch: 'etag' | '*' | 'wrong' | undefined; type: string | undefined; body: string; auth: 'same' | 'none' | 'other' }[];
  /** A request on a resource that is no session's. */
  stray: { method: string; resource: string } | undefined;
}

export interface WhipEnv {
  host: Host;
  url: URL;
  tokens: Record<'jwt' | 'jwt-no-present' | 'jwt-other-key', string>;
  bystander: GaleneTestClient;
  witness: GaleneTestClient;
  requests: number;
}

function authHeader(env: WhipEnv, a: Auth): string | undefined {
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
  switch (a) {
    case 'none':
      return undefined;
    case 'basic':
      return basic(BOB.username, BOB.password);
    // Wrong passwords go to another user, so that throttling does not lock out bob.
    case 'basic-wrong':
      return basic('carol', 'guess');
    case 'bad-token':
      return 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln';
    case 'garbage':
      return 'Basic %%%';
    default:
      return `Bearer ${env.tokens[a]}`;
  }
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(env: WhipEnv, method: string, path: string, headers: Record<string, string | undefined>, body?: string): Promise<Answer> {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) h[k] = v;
  if (body !== undefined) h['content-length'] = String(Buffer.byteLength(body));
  return new Promise((resolve, reject) => {
    const req = request({ host: env.url.hostname, port: env.url.port, method, path, headers: h, localAddress: loopbackAddress(env.requests++), agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.setTimeout(REPLY_MS, () => req.destroy(new Error(`${method} ${path.slice(0, 200)} got no answer within ${REPLY_MS / 1000} s`)));
    req.end(body);
  });
}

/** Never a 5xx, except a refusal the server means (501 not supported, 503 full) with a reason. */
async function checkStatus(env: WhipEnv, what: string, r: Answer): Promise<void> {
  if (r.status >= 500 && !((r.status === 501 || r.status === 503) && r.body.trim() !== '' && !/internal/i.test(r.body))) {
    // What the server logged says where.
    const logged = (await env.host.errors())[0];
    throw new Error(`${what} answered ${r.status}: ${r.body.slice(0, 300)}${logged ? `\n  the server logged: ${logged.slice(0, 3000)}` : ''}`);
  }
}

const enc = (s: string) => encodeURIComponent(s.replace(/\p{Surrogate}/gu, '\uFFFD'));

async function member(wsUrl: string, username: string): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(wsUrl, { answerPings: true, timeoutMs: REPLY_MS });
  const j = await c.join(GROUP, username, 'x', {}, REPLY_MS);
  if (j.kind !== 'join') throw new Error(`${username} could not join group ${GROUP}: ${JSON.stringify(j)}`);
  return c;
}

export const whipTarget: Target<WhipCase, WhipEnv> = {
  name: 'whip',
  host: {
    media: true,
    groups: {
      [GROUP]: {
        authKeys: [{ kty: 'oct', alg: 'HS256', k: SECRET.toString('base64url') }],
        users: { [BOB.username]: { password: BOB.password, permissions: 'present' }, carol: { password: 'carol-pw', permissions: 'present' } },
        'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
      },
      locked: { users: {} },
    },
  },
  baselineMembers: 0,
  arbitrary: fc.record({
    protocol: fc.constantFrom<WhipCase['protocol']>('whip', 'whip', 'whip', 'whep'),
    group: fc.oneof({ arbitrary: fc.constant(GROUP), weight: 8 }, { arbitrary: fc.constantFrom('locked', 'nope', 'live/sub'), weight: 1 }, { arbitrary: hostileString, weight: 1 }),
    auth: fc.oneof(
      { arbitrary: fc.constant<Auth>('jwt'), weight: 6 },
      { arbitrary: fc.constantFrom<Auth>('none', 'jwt-no-present', 'jwt-other-key', 'bad-token', 'basic', 'basic-wrong', 'garbage'), weight: 4 },
    ),
    type: fc.oneof(
      { arbitrary: fc.constant('application/sdp'), weight: 8 },
      { arbitrary: fc.constantFrom(undefined, 'text/plain', 'APPLICATION/SDP; charset=utf-8', 'application/trickle-ice-sdpfrag', ''), weight: 1 },
    ),
    offer: fc.oneof(
      { arbitrary: fc.record({ template: fc.constant(true as const), edits: fc.constant<LineEdit[]>([]), lf: fc.constant(false) }), weight: 3 },
      { arbitrary: fc.record({ template: fc.constant(true as const), edits: fc.array(lineEdit, { minLength: 1, maxLength: 4 }), lf: fc.boolean() }), weight: 6 },
      { arbitrary: fc.oneof(hostileString, fc.constantFrom('v=0\r\n', 'v=0\n', 'v=0\r\nm=\r\n', 'v=1\r\n')).map((text) => ({ text })), weight: 1 },
    ),
    after: fc.array(
      fc.record({
        method: fc.constantFrom<'PATCH' | 'DELETE' | 'OPTIONS' | 'POST'>('PATCH', 'PATCH', 'PATCH', 'DELETE', 'OPTIONS', 'POST'),
        ifMatch: fc.constantFrom<'etag' | '*' | 'wrong' | undefined>(undefined, 'etag', '*', 'wrong'),
        type: fc.oneof({ arbitrary: fc.constant('application/trickle-ice-sdpfrag'), weight: 6 }, { arbitrary: fc.constantFrom(undefined, 'application/sdp', 'text/plain'), weight: 1 }),
        body: fragment,
        auth: fc.constantFrom<'same' | 'none' | 'other'>('same', 'same', 'same', 'none', 'other'),
      }),
      { maxLength: 3 },
    ),
    stray: fc.option(
      fc.record({
        method: fc.constantFrom('PATCH', 'DELETE', 'OPTIONS', 'POST', 'GET', 'PUT'),
        resource: fc.oneof(fc.string({ maxLength: 30 }), hostileString, fc.constantFrom('..', '%2e%2e', 'a/b', '')),
      }),
      { nil: undefined },
    ),
  }),

  async setup(host: Host | undefined) {
    const url = new URL(host!.url);
    const groupUrl = `${url.origin}/group/${GROUP}/`;
    const sign = (permissions: string[], key: Uint8Array) =>
      new jose.SignJWT({ permissions }).setProtectedHeader({ alg: 'HS256' }).setSubject('cam').setAudience(groupUrl).setExpirationTime('2h').sign(key);
    const tokens = { jwt: await sign(['present'], SECRET), 'jwt-no-present': await sign(['message'], SECRET), 'jwt-other-key': await sign(['present'], randomBytes(32)) };
    const wsUrl = `${host!.url.replace(/^http/, 'ws')}/ws`;
    const bystander = await member(wsUrl, 'bystander');
    const witness = await member(wsUrl, 'witness');
    return { host: host!, url, tokens, bystander, witness, requests: 0 };
  },

  async run(env, c) {
    const endpoint = `/group/${c.group.split('/').map(enc).join('/')}/.${c.protocol}`;
    const auth = authHeader(env, c.auth);
    const offer = 'text' in c.offer ? c.offer.text : edited(offerOf(`f${env.requests.toString(36)}`), c.offer.edits, c.offer.lf);
    const created = await send(env, 'POST', endpoint, { authorization: auth, 'content-type': c.type }, offer);
    await checkStatus(env, `POST ${endpoint}`, created);
    if (c.stray) {
      const r = await send(env, c.stray.method, `${endpoint}/${enc(c.stray.resource)}`, { authorization: auth, 'content-type': 'application/trickle-ice-sdpfrag' }, 'a=end-of-candidates\r\n');
      await checkStatus(env, `${c.stray.method} on a resource that is no session's`, r);
      if (r.status >= 200 && r.status < 300 && c.stray.method !== 'OPTIONS') throw new Error(`${c.stray.method} on resource "${c.stray.resource}" answered ${r.status}`);
    }
    if (created.status !== 201) return;
    if (c.protocol === 'whip' && (c.auth === 'jwt-no-present' || c.auth === 'jwt-other-key' || c.auth === 'bad-token' || c.auth === 'none' || c.auth === 'garbage' || c.auth === 'basic-wrong')) {
      throw new Error(`a WHIP session for credentials "${c.auth}", which do not give "present"`);
    }
    const location = String(created.headers.location ?? '');
    if (!location.startsWith(`${endpoint}/`)) throw new Error(`the 201's Location "${location}" is not in the endpoint ${endpoint}`);
    let etag = String(created.headers.etag ?? '');
    if (!/^".+"$/.test(etag)) throw new Error(`the 201 has no entity tag: ${etag}`);
    if (!created.body.startsWith('v=0')) throw new Error(`the 201's body is not an SDP answer: ${created.body.slice(0, 200)}`);
    let gone = false;
    for (const t of c.after) {
      const a = t.auth === 'same' ? auth : t.auth === 'other' ? 'Bearer someone-else' : undefined;
      const ifMatch = t.ifMatch === 'etag' ? etag : t.ifMatch === 'wrong' ? '"not-it"' : t.ifMatch;
      const r = await send(env, t.method, location, { authorization: a, 'content-type': t.type, 'if-match': ifMatch }, t.method === 'DELETE' || t.method === 'OPTIONS' ? undefined : t.body);
      await checkStatus(env, `${t.method} on the session`, r);
      const allowed = t.auth === 'same' || auth === undefined;
      if (!allowed && r.status >= 200 && r.status < 300 && t.method !== 'OPTIONS') throw new Error(`${t.method} with other credentials than the session's answered ${r.status}`);
      if (c.protocol === 'whep' && r.status === 404) gone = true;
      if (gone && t.method !== 'OPTIONS' && r.status !== 404 && r.status !== 405 && r.status !== 401 && r.status !== 403)
        throw new Error(`${t.method} on an ended session answered ${r.status}, not 404`);
      if (t.method === 'DELETE' && r.status === 200) gone = true;
      if (r.status === 200 && t.method === 'PATCH' && typeof r.headers.etag === 'string') etag = r.headers.etag;
    }
    // The session ends with its own DELETE, and is then gone. A WHEP session may have ended
    // already: the stream it played ends with its publisher's session (another case's).
    const end = await send(env, 'DELETE', location, { authorization: auth });
    await checkStatus(env, 'the final DELETE', end);
    if (c.protocol === 'whep' && end.status === 404) gone = true;
    if (end.status !== (gone ? 404 : 200)) throw new Error(`the session's own DELETE answered ${end.status}, not ${gone ? 404 : 200}: ${end.body.slice(0, 200)}`);
    const again = await send(env, 'DELETE', location, { authorization: auth });
    if (again.status !== 404) throw new Error(`a DELETE of an ended session answered ${again.status}, not 404`);
  },

  async check(env) {
    env.bystander.send({ type: 'ping' });
    const mark = `witness ${Date.now()} ${Math.random()}`;
    env.witness.chat(mark);
    if (env.bystander.isClosed) throw new Error(`the bystander in group ${GROUP} was disconnected: ${JSON.stringify(await env.bystander.closed)}`);
    await env.bystander.next((f) => f.type === 'chat' && f.value === mark, REPLY_MS, 'the witness chat');
    if (env.bystander.violations.length > 0) throw new Error(`the bystander got frames that break the protocol: ${env.bystander.violations.slice(0, 3).join('; ')}`);
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
