// @atrium/client in real Chromium against a real server: connecting and
// joining the ways seed 003 shows, the users dictionary, public and private
// chat, application messages, history, clearing, failed and token joins,
// and a kick (which ends the connection: no reconnection). Every callback
// is checked with all the arguments Galène's client passes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { insideLoopbackNetns } from '../media/support/netns.ts';

if (insideLoopbackNetns(import.meta.url, { timeoutMs: 90_000 })) {
  const { SignJWT } = await import('jose');
  const { startServer } = await import('../support/server-process.ts');
  const { call, launchChromium, openHarness, sc, until } = await import('./support/browser.ts');
  type Page = import('playwright-core').Page;
  type Entry = import('./support/harness.ts').Entry;

  const hsSecret = new TextEncoder().encode('a-32-byte-test-secret-for-tokens');
  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const problems: string[][] = [];

  before(async () => {
    server = await startServer({
      groups: {
        room: { users: { op: { password: 'op', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
        private: { users: { alice: { password: 'right', permissions: 'present' } } },
        tokens: { authKeys: [{ kty: 'oct', alg: 'HS256', kid: 'k1', k: Buffer.from(hsSecret).toString('base64url') }] },
      },
      args: ['--media-address', '127.0.0.1'],
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function page(group: string): Promise<Page> {
    const p = await openHarness(browser, server.url, group);
    problems.push(p.problems);
    return p.page;
  }

  /** The endpoint as an application finds it: from the group's .status. */
  const endpointOf = (p: Page) => p.evaluate(async () => ((await (await fetch('.status')).json()) as { endpoint: string }).endpoint);
  const log = (p: Page, name: string) => call(p, 'entries', name) as Promise<Entry[]>;
  const D = (iso: unknown) => ({ date: iso });
  const U = { undefined: true };

  test('join, users, chat, private chat, messages, history and clearchat, with the callbacks of seed 003', async () => {
    const a = await page('room');
    const b = await page('room');
    const endpoint = await endpointOf(a);
    assert.equal(endpoint, server.wsUrl);

    // README form: join(group, 'join', username, password) from onconnected.
    const joinedA = await call(a, 'connect', endpoint, 'room', 'alice', 'anything', 'readme');
    // Galène's form: join(group, username, credentials).
    await call(b, 'connect', endpoint, 'room', 'bob', 'anything', 'modern');
    const [aid, bid] = [await sc<string>(a, 'id'), await sc<string>(b, 'id')];

    assert.equal(joinedA.length, 7, 'onjoined gets 7 arguments');
    const [kind, group, perms, status, data, error, message] = joinedA as [string, string, string[], Record<string, unknown>, unknown, unknown, unknown];
    assert.deepEqual([kind, group, perms, data, error, message], ['join', 'room', ['present', 'message'], {}, null, '']);
    assert.equal(status.name, 'room');
    assert.equal(status.endpoint, server.wsUrl);
    assert.equal(await sc(a, 'group'), 'room');
    assert.equal(await sc(a, 'username'), 'alice');
    assert.deepEqual(await sc(a, 'permissions'), ['present', 'message']);
    assert.deepEqual(await sc(a, 'rtcConfiguration'), { iceServers: [] });
    assert.equal((await log(a, 'onconnected'))[0]?.length, 1, 'onconnected gets no arguments');

    // users: both see both; onuser(id, kind) has two arguments.
    await until('alice to see bob', async () => (await log(a, 'onuser')).find((e) => e[1] === bid && e[2] === 'add'));
    const users = await sc<Record<string, { username: string; permissions: string[]; data: unknown; streams: unknown }>>(a, 'users');
    assert.deepEqual(Object.keys(users).sort(), [aid, bid].sort());
    assert.deepEqual(users[bid], { username: 'bob', permissions: ['present', 'message'], data: {}, streams: {} });
    assert.ok(
      (await log(a, 'onuser')).every((e) => e[3] === 2),
      'onuser gets (id, kind)',
    );

    // Public chat: onchat(id, dest, username, time, privileged, history, kind, message).
    await sc(b, 'chat', '', '', 'hello all');
    const pub = await until('the public message at alice', async () => (await log(a, 'onchat')).find((e) => e[8] === 'hello all'));
    assert.equal(pub.length, 9, 'onchat gets 8 arguments');
    assert.deepEqual([pub[1], pub[2], pub[3], pub[5], pub[6], pub[7]], [bid, U, 'bob', false, false, '']);
    assert.ok(!Number.isNaN(Date.parse((pub[4] as { date: string }).date)), 'time is a Date');

    // Private chat, README form chat(username, kind, dest, value): only bob gets it.
    const c = await page('room');
    await call(c, 'connect', server.wsUrl, 'room', 'carol', 'x');
    await sc(a, 'chat', 'alice', '', bid, 'Hi!');
    const priv = await until('the private message at bob', async () => (await log(b, 'onchat')).find((e) => e[8] === 'Hi!'));
    assert.deepEqual(priv.slice(1, 4), [aid, bid, 'alice']);
    assert.equal(priv[6], false, 'not history');
    // carol joined after "hello all": it comes as history; the private one never does.
    const carolChat = await until('history at carol', async () => {
      const l = await log(c, 'onchat');
      return l.length > 0 ? l : undefined;
    });
    assert.deepEqual(
      carolChat.map((e) => [e[8], e[6]]),
      [['hello all', true]],
    );
    assert.deepEqual(D((carolChat[0]![4] as { date: string }).date), carolChat[0]![4]);

    // Application message: onusermessage(id, dest, username, time, privileged, kind, error, message).
    await sc(b, 'userMessage', 'nudge', aid, { n: 1 });
    const um = await until('the usermessage at alice', async () => (await log(a, 'onusermessage')).find((e) => e[6] === 'nudge'));
    assert.equal(um.length, 9, 'onusermessage gets 8 arguments');
    assert.deepEqual(um.slice(1), [bid, aid, 'bob', null, false, 'nudge', U, { n: 1 }]);

    // An error from the server arrives as usermessage of kind error.
    await sc(c, 'groupAction', 'clearchat');
    const err = await until('the refusal at carol', async () => (await log(c, 'onusermessage')).find((e) => e[6] === 'error'));
    assert.equal(err[7], 'not-permitted');
    assert.match(String(err[8]), /op/);

    // An operator clears the chat: onclearchat at everyone.
    const op = await page('room');
    await call(op, 'connect', server.wsUrl, 'room', 'op', 'op');
    assert.ok((await sc<string[]>(op, 'permissions')).includes('op'));
    await sc(op, 'groupaction', 'clearchat');
    await until('onclearchat at bob', async () => (await log(b, 'onclearchat')).length > 0);

    // carol leaves by closing: the others see the user go; carol's onclose has (code, reason).
    const cid = await sc<string>(c, 'id');
    await sc(c, 'close');
    const closed = await until('carol closed', async () => (await log(c, 'onclose'))[0]);
    assert.deepEqual(closed.slice(1), [1000, 'Close requested by client', 2]);
    assert.equal(await sc(c, 'state'), 'closed');
    assert.deepEqual(await log(c, 'onreconnecting'), []);
    await until('bob to see carol leave', async () => (await log(b, 'onuser')).find((e) => e[1] === cid && e[2] === 'delete'));
    assert.equal((await sc<Record<string, unknown>>(b, 'users'))[cid], undefined);

    for (const p of [a, b, c, op]) assert.deepEqual(await call(p, 'errors'), []);
    assert.deepEqual(problems.flat(), []);
  });

  test('a wrong password fails with a code and a sentence; a token joins', async () => {
    const p = await page('private');
    const fail = await call(p, 'connect', server.wsUrl, 'private', 'alice', 'wrong');
    assert.equal(fail.length, 7);
    assert.deepEqual(fail.slice(0, 3), ['fail', 'private', []]);
    assert.equal(fail[5], 'not-authorised');
    assert.equal(typeof fail[6], 'string');
    assert.ok((fail[6] as string).length > 10, 'a sentence for people');
    assert.equal(await sc(p, 'group'), null);
    // The socket stays open: the application may try again.
    await sc(p, 'join', 'private', 'alice', { type: 'password', password: 'right' });
    await until('the second join', async () => (await log(p, 'onjoined')).find((e) => e[1] === 'join'));

    const token = await new SignJWT({ permissions: ['present'] })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setSubject('tina')
      .setAudience(`${server.url}/group/tokens/`)
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(hsSecret);
    const t = await page('tokens');
    const ok = await call(t, 'connect', server.wsUrl, 'tokens', undefined, { type: 'token', token });
    assert.deepEqual(ok.slice(0, 3), ['join', 'tokens', ['present']], String(ok[6]));
    assert.equal(await sc(t, 'username'), 'tina');
  });

  test('kicked by an operator: kicked message, leave, onclose with 4001, and no reconnection', async () => {
    const op = await page('room');
    await call(op, 'connect', server.wsUrl, 'room', 'op', 'op');
    const v = await page('room');
    await call(v, 'connect', server.wsUrl, 'room', 'victim', 'x');
    const vid = await sc<string>(v, 'id');
    await until('op to see the victim', async () => (await sc<Record<string, unknown>>(op, 'users'))[vid]);
    await sc(op, 'userAction', 'kick', vid, 'out you go');
    const closed = await until('the victim closed', async () => (await log(v, 'onclose'))[0]);
    assert.equal(closed[1], 4001);
    const kicked = (await log(v, 'onusermessage')).find((e) => e[6] === 'kicked');
    assert.equal(kicked?.[8], 'out you go');
    assert.ok((await log(v, 'onjoined')).some((e) => e[1] === 'leave'));
    assert.equal(await sc(v, 'state'), 'closed');
    assert.deepEqual(await log(v, 'onreconnecting'), []);
  });
}
