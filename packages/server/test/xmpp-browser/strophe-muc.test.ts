// strophe.js (the XMPP library Jitsi Meet's client uses) and its MUC plugin,
// unchanged from npm, in headless Chromium — one page over WebSocket, one
// over BOSH — in a group with a Galène-protocol member: occupants across
// dialects, chat both ways with history on join, private messages, a kick
// by a moderator, and a wrong password refused.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, until } from '../support/browser.ts';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { GROUPS } from '../xmpp/support.ts';
import type { Seen } from './support/strophe-harness.ts';
import { type HarnessPage, openPage } from './support/pages.ts';

let server: RunningServer;
let browser: Browser;
const pages: HarnessPage[] = [];
const closers: (() => unknown)[] = [];
const ROOM = 'chat@conference.localhost';

before(async () => {
  server = await startServer({ groups: GROUPS });
  browser = await launchChromium();
});

after(async () => {
  for (const c of closers) c();
  await browser?.close();
  await server.stop();
});

type W = Window & { c: import('./support/strophe-harness.ts').StropheClient; StropheClient: typeof import('./support/strophe-harness.ts').StropheClient };

async function strophePage(transport: 'websocket' | 'bosh', jid = 'localhost', password: string | null = null): Promise<Page> {
  const p = await openPage(browser, server.url, 'strophe-harness.ts');
  pages.push(p);
  const service = transport === 'websocket' ? `${server.url.replace(/^http/, 'ws')}/xmpp-websocket` : `${server.url}/http-bind`;
  await p.page.evaluate(
    ([s, j, pw]) => {
      const w = window as unknown as W;
      w.c = new w.StropheClient();
      return w.c.connect(s!, j!, pw);
    },
    [service, jid, password] as const,
  );
  closers.push(() => p.page.evaluate(() => (window as unknown as W).c.disconnect()).catch(() => undefined));
  return p.page;
}

function join(page: Page, room: string, nick: string, password?: string) {
  return page.evaluate(([r, n, pw]) => (window as unknown as W).c.join(r!, n!, pw), [room, nick, password] as const);
}

function seenIn(page: Page): Promise<Seen[]> {
  return page.evaluate(() => (window as unknown as W).c.seen);
}

function waitSeen(page: Page, what: string, pred: (s: Seen) => boolean): Promise<Seen> {
  return until(what, async () => (await seenIn(page)).find(pred));
}

async function galene(username: string, password = 'x'): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(server.wsUrl);
  closers.push(() => c.close());
  const j = await c.join('chat', username, password);
  assert.equal(j.kind, 'join');
  return c;
}

test('strophe over WebSocket and over BOSH: occupants across dialects, chat both ways, history on join', async () => {
  const gal = await galene('gal');
  gal.chat('said before anyone came');
  await gal.next((f) => f.type === 'chat');

  const ws = await strophePage('websocket');
  const joined = await join(ws, ROOM, 'strophe-ws');
  assert.ok('nicks' in joined, JSON.stringify(joined));
  assert.deepEqual(joined.nicks, ['gal', 'strophe-ws']);
  const history = await waitSeen(ws, 'the history', (s) => s.body === 'said before anyone came');
  assert.equal(history.from, `${ROOM}/gal`);
  assert.match(history.delay ?? '', /^\d{4}-/);
  await gal.next((f) => f.type === 'user' && f.kind === 'add' && f.username === 'strophe-ws');

  gal.chat('hello strophe');
  const m = await waitSeen(ws, 'the Galène chat', (s) => s.body === 'hello strophe');
  assert.equal(m.type, 'groupchat');
  assert.equal(m.delay, undefined);
  await ws.evaluate((r) => (window as unknown as W).c.groupchat(r, 'hello galene, from strophe'), ROOM);
  const back = await gal.next((f) => f.type === 'chat' && f.value === 'hello galene, from strophe');
  assert.equal(back.username, 'strophe-ws');

  const bosh = await strophePage('bosh');
  const joinedBosh = await join(bosh, ROOM, 'strophe-bosh');
  assert.ok('nicks' in joinedBosh, JSON.stringify(joinedBosh));
  assert.deepEqual(joinedBosh.nicks, ['gal', 'strophe-bosh', 'strophe-ws']);
  // History: both messages, from both dialects, stamped.
  const h1 = await waitSeen(bosh, 'history from strophe', (s) => s.body === 'hello galene, from strophe');
  assert.ok(h1.delay);
  await bosh.evaluate((r) => (window as unknown as W).c.groupchat(r, 'over BOSH'), ROOM);
  await gal.next((f) => f.type === 'chat' && f.value === 'over BOSH' && f.username === 'strophe-bosh');
  const live = await waitSeen(ws, 'the BOSH message on the WebSocket page', (s) => s.body === 'over BOSH');
  assert.equal(live.from, `${ROOM}/strophe-bosh`);
  assert.equal(await ws.evaluate(() => (window as unknown as W).c.ping('localhost')), 'result');

  // Private messages: strophe -> Galène, Galène -> strophe.
  await ws.evaluate((r) => (window as unknown as W).c.privateMessage(r, 'gal', 'just for you'), ROOM);
  const pm = await gal.next((f) => f.type === 'chat' && f.value === 'just for you');
  assert.equal(pm.dest, gal.id);
  const boshUser = gal.all('user', 'add').find((f) => f.username === 'strophe-bosh')!;
  gal.send({ type: 'chat', kind: '', source: gal.id, dest: boshUser.id, value: 'psst, bosh' });
  const pmBack = await waitSeen(bosh, 'the private message', (s) => s.body === 'psst, bosh');
  assert.equal(pmBack.type, 'chat');
  assert.equal(pmBack.from, `${ROOM}/gal`);
  const wsSaw = (await seenIn(ws)).filter((s) => s.body === 'psst, bosh');
  assert.deepEqual(wsSaw, [], 'a private message reaches only its recipient');
  for (const p of pages) assert.deepEqual(p.problems, []);
});

test('a moderator on strophe kicks; a participant may not; a wrong password is refused', async () => {
  const boss = await strophePage('websocket', 'boss@localhost', 'bosspw');
  const j = await join(boss, ROOM, 'strophe-boss');
  assert.ok('nicks' in j);
  assert.equal((await boss.evaluate((r) => (window as unknown as W).c.roles(r), ROOM))['strophe-boss'], 'moderator');
  const target = await strophePage('bosh');
  await join(target, ROOM, 'kick-me');
  const victim = await galene('victim');

  assert.equal(await target.evaluate((r) => (window as unknown as W).c.kick(r, 'victim', 'no'), ROOM), 'forbidden');
  assert.equal(await boss.evaluate((r) => (window as unknown as W).c.kick(r, 'kick-me', 'be gone'), ROOM), 'ok');
  const self = await waitSeen(target, 'the kick', (s) => s.kind === 'presence' && s.from === `${ROOM}/kick-me` && s.type === 'unavailable');
  assert.deepEqual(self.codes, ['110', '307']);
  assert.equal(self.reason, 'be gone');
  assert.equal(self.actor, 'strophe-boss');
  const gone = await victim.next((f) => f.type === 'user' && f.kind === 'delete');
  assert.ok(gone.id);

  assert.equal(await boss.evaluate((r) => (window as unknown as W).c.kick(r, 'victim', 'you too'), ROOM), 'ok');
  const kicked = await victim.next((f) => f.type === 'usermessage' && f.kind === 'kicked');
  assert.equal(kicked.value, 'you too');

  const wrong = await strophePage('websocket');
  const refused = await join(wrong, 'secret@conference.localhost', 'alice', 'not-her-password');
  assert.deepEqual(refused, { error: 'not-authorized', text: 'wrong username or password for user "alice" in group "secret"' });
  const right = await join(wrong, 'secret@conference.localhost', 'alice', 'alicepw');
  assert.ok('nicks' in right, JSON.stringify(right));

  // A wrong SASL password fails the login itself.
  const p = await openPage(browser, server.url, 'strophe-harness.ts');
  pages.push(p);
  const failure = await p.page.evaluate(
    async (s) => {
      const w = window as unknown as W;
      w.c = new w.StropheClient();
      return w.c.connect(s, 'boss@localhost', 'wrong').then(
        () => 'connected',
        (e: Error) => e.message,
      );
    },
    `${server.url.replace(/^http/, 'ws')}/xmpp-websocket`,
  );
  assert.match(failure, /AUTHFAIL/);
});
