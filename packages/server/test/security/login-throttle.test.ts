// Issue 10, row 5: wrong passwords were checked as fast as they came (101
// guesses/s on one connection, 1,975/s over 20, 4,127/s over the admin
// API's Basic auth), with no slowdown and no lock-out. Failed logins are
// now throttled per user and per address with growing delays on every way
// in (Galène, RTCPool, the admin API, XMPP, the recordings page), logged,
// and counted in /metrics.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { LoginThrottle, LoginThrottledError, addressKey } from '../../src/auth/throttle.ts';
import { GaleneTestClient } from '../support/galene-client.ts';
import { RawXmpp } from '../xmpp/support.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

const servers: RunningServer[] = [];
after(() => Promise.all(servers.map((s) => s.stop())));

async function serve(media = false): Promise<RunningServer> {
  const s = await startServer({
    args: media ? ['--media-address', '127.0.0.1'] : ['--no-media'],
    config: { users: { root: { password: 'rootpw', permissions: 'admin' } } },
    groups: { g: { users: { bob: { password: 'bobpw', permissions: 'present' }, carol: { password: 'carolpw', permissions: 'present' } } } },
  });
  servers.push(s);
  return s;
}

async function metric(s: RunningServer, name: string, via: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{via="${via}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** `n` wrong logins over HTTP one after the other: each answer's status, and the last Retry-After seen. */
async function httpGuesses(n: number, guess: (i: number) => Promise<Response>): Promise<{ statuses: number[]; retryAfter: string | null }> {
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < n; i++) {
    const r = await guess(i);
    statuses.push(r.status);
    if (r.status === 429) retryAfter = r.headers.get('retry-after');
    await r.arrayBuffer();
  }
  return { statuses, retryAfter };
}

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

test('the delays grow, a success clears the user, parallel guesses count, and addresses are keyed by /64', () => {
  let t = 0;
  const th = new LoginThrottle({ limits: { freeUserFailures: 2, freeAddressFailures: 100, baseDelayMs: 1000, maxDelayMs: 8000 } });
  const bob = { user: { key: 'g\nbob', label: 'bob' }, address: '192.0.2.1', via: 'test' };
  const fail = () => th.begin(bob, t).failed('wrong');
  fail();
  fail();
  fail(); // the third failure: the next attempt waits 1 s
  assert.throws(() => th.begin(bob, t + 999), LoginThrottledError);
  t += 1000;
  fail(); // then 2 s, 4 s, 8 s, 8 s
  const waits: number[] = [];
  for (let i = 0; i < 4; i++) {
    try {
      th.begin(bob, t);
      assert.fail('not throttled');
    } catch (e) {
      assert.ok(e instanceof LoginThrottledError);
      waits.push(Math.round(e.retryAfterMs));
      t += e.retryAfterMs;
      fail();
    }
  }
  assert.deepEqual(waits, [2000, 4000, 8000, 8000]);
  t += 8000;
  th.begin(bob, t).succeeded();
  th.begin(bob, t).failed('wrong'); // back to free failures
  th.begin(bob, t).failed('wrong');
  // Guesses in flight count before they are answered.
  const carol = { user: { key: 'g\ncarol', label: 'carol' }, via: 'test' };
  th.begin(carol, t);
  th.begin(carol, t);
  th.begin(carol, t);
  assert.throws(() => th.begin(carol, t), LoginThrottledError);
  // Successful logins leave nothing behind: memory goes only to those who fail.
  const fresh = new LoginThrottle();
  for (let i = 0; i < 100; i++) fresh.begin({ user: { key: `g\nu${i}`, label: `u${i}` }, address: `192.0.2.${i}`, via: 'test' }, t).succeeded();
  assert.equal(fresh.size, 0);
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), addressKey('2001:db8:1:2::9'));
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
});

test('wrong passwords over the Galène protocol: a few are checked, then the user must wait, whatever the password; others still log in', async () => {
  const s = await serve();
  const c = await GaleneTestClient.connect(s.wsUrl);
  const answers: string[] = [];
  for (let i = 0; i < 12; i++) {
    const j = await c.join('g', 'bob', `guess ${i}`);
    answers.push(j.error);
  }
  assert.deepEqual(answers.slice(0, 5), Array(5).fill('not-authorised'));
  assert.deepEqual(answers.slice(6), Array(6).fill('rate-limited'));
  const locked = await c.join('g', 'bob', 'bobpw');
  assert.equal(locked.kind, 'fail', 'even the right password waits');
  assert.match(locked.value, /too many failed logins for user "bob" of group "g": wait \d+ s/);
  // Another user from the same address is not locked out.
  assert.equal((await c.join('g', 'carol', 'carolpw')).kind, 'join');
  c.close();
  assert.ok((await metric(s, 'atrium_login_failures_total', 'galene')) >= 5);
  assert.ok((await metric(s, 'atrium_login_throttled_total', 'galene')) >= 6);
  assert.match(s.output(), /"msg":"login failed"/);
  assert.match(s.output(), /"msg":"login throttled after repeated failures"/);
});

test('one address guessing many users over twenty connections is throttled; so are bad tokens on the mesh dialects', async () => {
  const s = await serve();
  const clients = await Promise.all(Array.from({ length: 20 }, () => GaleneTestClient.connect(s.wsUrl)));
  const answers = await Promise.all(clients.map((c, i) => c.join('g', `user${i}`, 'guess').then((j) => j.error)));
  const more = await Promise.all(clients.map((c, i) => c.join('g', `other${i}`, 'guess').then((j) => j.error)));
  for (const c of clients) c.close();
  assert.equal(answers.filter((e) => e === 'not-authorised').length, 20, 'twenty free failures for one address');
  assert.ok(more.filter((e) => e === 'rate-limited').length >= 19, `then the address waits: ${more.join(' ')}`);

  // The same address on /pool/ws and socket.io: refused before any token is looked at.
  const pool = new WebSocket(`${s.url.replace('http', 'ws')}/pool/ws?token=bad-token`);
  const poolError = new Promise<string>((resolve) => pool.on('message', (d) => resolve(JSON.parse(d.toString()).data.reason)));
  await new Promise((r) => pool.once('open', r));
  pool.send(JSON.stringify({ type: 'rtc:join', data: { pool: 'g' } }));
  assert.equal(await poolError, 'rate-limited');
  pool.close();
  const sio = io(s.url, { transports: ['websocket'], auth: { token: 'bad-token' } });
  const sioError = new Promise<string>((resolve) => sio.on('rtc:error', (d: { reason: string }) => resolve(d.reason)));
  await new Promise<void>((r) => sio.once('connect', () => r()));
  sio.emit('rtc:join', { pool: 'g' });
  assert.equal(await sioError, 'rate-limited');
  sio.close();
  assert.ok((await metric(s, 'atrium_login_throttled_total', 'rtcpool')) >= 2);
});

test('wrong administrator passwords over Basic auth: 401 a few times, then 429 with Retry-After', async () => {
  const s = await serve();
  const { statuses, retryAfter } = await httpGuesses(10, (i) => fetch(`${s.url}/galene-api/v0/.groups/`, { headers: basic('root', `guess${i}`) }));
  assert.deepEqual(statuses.slice(0, 5), Array(5).fill(401));
  assert.deepEqual(statuses.slice(6), Array(4).fill(429));
  assert.ok(Number(retryAfter) >= 1);
  assert.ok((await metric(s, 'atrium_login_failures_total', 'admin')) >= 5);
  assert.ok((await metric(s, 'atrium_login_throttled_total', 'admin')) >= 4);
});

test('wrong passwords over XMPP SASL PLAIN and on the recordings page: refused a few times, then throttled, and counted', async () => {
  const s = await serve();
  // A stream ends after 3 failed attempts (as Prosody's does): each guess on a stream of its own.
  const guess = async (password: string): Promise<{ condition: string; text: string }> => {
    const x = await RawXmpp.connect(s.url);
    await x.open();
    x.send(`<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">${Buffer.from(`\u0000bob\u0000${password}`).toString('base64')}</auth>`);
    const f = await x.next((e) => e.is('failure') || e.is('success'), `the answer to password "${password}"`);
    x.close();
    return { condition: f.is('success') ? 'success' : (f.children.find((c) => typeof c !== 'string' && c.name !== 'text')?.toString() ?? f.toString()), text: f.getChildText('text') ?? '' };
  };
  const conditions: string[] = [];
  for (let i = 0; i < 10; i++) conditions.push((await guess(`guess ${i}`)).condition);
  assert.deepEqual(conditions.slice(0, 5), Array(5).fill('<not-authorized/>'));
  assert.deepEqual(conditions.slice(6), Array(4).fill('<temporary-auth-failure/>'));
  const locked = await guess('bobpw');
  assert.equal(locked.condition, '<temporary-auth-failure/>', 'even the right password waits');
  assert.match(locked.text, /too many failed logins for user "bob": wait \d+ s/);
  assert.ok((await metric(s, 'atrium_login_failures_total', 'xmpp')) >= 5);
  assert.ok((await metric(s, 'atrium_login_throttled_total', 'xmpp')) >= 5);

  const { statuses, retryAfter } = await httpGuesses(10, (i) => fetch(`${s.url}/recordings/g/`, { headers: basic('carol', `guess${i}`) }));
  assert.deepEqual(statuses.slice(0, 5), Array(5).fill(401));
  assert.deepEqual(statuses.slice(6), Array(4).fill(429));
  assert.ok(Number(retryAfter) >= 1);
  assert.ok((await metric(s, 'atrium_login_failures_total', 'recordings')) >= 5);
  assert.ok((await metric(s, 'atrium_login_throttled_total', 'recordings')) >= 4);
});

test('wrong passwords over WHEP and bad tokens over WHIP: 401 a few times, then 429 with Retry-After (not 403), and counted', async () => {
  // WHIP and WHEP exist with a media engine; the login is checked before it is used (no browser needed).
  const s = await serve(true);
  const offer = (p: 'whip' | 'whep', headers: Record<string, string>) =>
    fetch(`${s.url}/group/g/.${p}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/sdp' }, body: 'v=0\r\n' });
  const whep = await httpGuesses(10, (i) => offer('whep', basic('bob', `guess${i}`)));
  assert.deepEqual(whep.statuses.slice(0, 5), Array(5).fill(401));
  assert.deepEqual(whep.statuses.slice(6), Array(4).fill(429));
  assert.ok(Number(whep.retryAfter) >= 1, `Retry-After: ${whep.retryAfter}`);
  const locked = await offer('whep', basic('bob', 'bobpw'));
  assert.equal(locked.status, 429, 'even the right password waits');
  assert.match(await locked.text(), /too many failed logins for user "bob" of group "g": wait \d+ s/);
  assert.ok((await metric(s, 'atrium_login_failures_total', 'whep')) >= 5);
  assert.ok((await metric(s, 'atrium_login_throttled_total', 'whep')) >= 5);
  // Bad tokens are throttled by address (20 free failures, a few already spent above).
  const whip = await httpGuesses(25, (i) => offer('whip', { authorization: `Bearer not-a-token-${i}` }));
  assert.equal(whip.statuses[0], 401);
  const first = whip.statuses.indexOf(429);
  assert.ok(first > 0, `WHIP statuses: ${whip.statuses.join(' ')}`);
  assert.deepEqual(whip.statuses.slice(first), Array(whip.statuses.length - first).fill(429));
  assert.ok(Number(whip.retryAfter) >= 1, `Retry-After: ${whip.retryAfter}`);
  assert.ok((await metric(s, 'atrium_login_throttled_total', 'whip')) >= 1);
});
