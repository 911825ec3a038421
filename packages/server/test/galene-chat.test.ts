// Chat over the Galène protocol against a real server process: broadcast,
// history on join, private messages, noecho, kinds, and what the server
// refuses to take from the client (spoofed source, username, privileged).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

let server: RunningServer;
const clients: GaleneTestClient[] = [];

before(async () => {
  server = await startServer({
    groups: {
      chat: {
        users: {
          boss: { password: 'bosspw', permissions: 'op' },
          quiet: { password: 'q', permissions: 'observe' },
          captioner: { password: 'c', permissions: ['message', 'caption'] },
        },
        'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' },
      },
      short: { 'max-history-age': 1, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'present' } },
    },
  });
});

after(async () => {
  for (const c of clients) c.close();
  await server.stop();
});

async function member(group: string, username: string, password = 'x'): Promise<GaleneTestClient> {
  const c = await GaleneTestClient.connect(server.wsUrl);
  clients.push(c);
  const joined = await c.join(group, username, password);
  assert.equal(joined.kind, 'join', `join of ${username} failed: ${JSON.stringify(joined)}`);
  return c;
}

test('a chat message reaches every member with server-set source, username, privileged and ISO time', async () => {
  const alice = await member('chat', 'alice');
  const bob = await member('chat', 'bob');
  alice.send({ type: 'chat', kind: '', source: 'spoofed', username: 'mallory', privileged: true, time: 0, value: 'hello all' });
  for (const c of [alice, bob]) {
    const m = await c.next((f) => f.type === 'chat' && f.value === 'hello all');
    assert.equal(m.source, alice.id);
    assert.equal(m.username, 'alice');
    assert.equal(m.privileged, false);
    assert.match(m.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.equal(m.dest, undefined);
  }
  assert.deepEqual([...alice.violations, ...bob.violations], []);
});

test('an op is marked privileged, /me and captions keep their kind, captions need the permission', async () => {
  const boss = await member('chat', 'boss', 'bosspw');
  const cap = await member('chat', 'captioner', 'c');
  const carol = await member('chat', 'carol');
  boss.chat('waves', { kind: 'me' });
  const me = await carol.next((f) => f.type === 'chat' && f.value === 'waves');
  assert.equal(me.kind, 'me');
  assert.equal(me.privileged, true);

  cap.chat('subtitle line', { kind: 'caption' });
  const c1 = await carol.next((f) => f.type === 'chat' && f.value === 'subtitle line');
  assert.equal(c1.kind, 'caption');

  carol.chat('not allowed', { kind: 'caption' });
  const err = await carol.next((f) => f.type === 'usermessage' && f.kind === 'error');
  assert.equal(err.error, 'not-permitted');
  assert.match(err.value, /caption/);
});

test('an observer without the message permission cannot chat', async () => {
  const q = await member('chat', 'quiet', 'q');
  q.chat('psst');
  const err = await q.next((f) => f.type === 'usermessage' && f.kind === 'error');
  assert.equal(err.error, 'not-permitted');
});

test('history is replayed as chathistory on join, in order, without private messages', async () => {
  const a = await member('chat', 'hist-a');
  const b = await member('chat', 'hist-b');
  a.chat('first public');
  a.chat('secret', { dest: b.id });
  a.chat('second public');
  await b.next((f) => f.type === 'chat' && f.value === 'second public');
  const late = await member('chat', 'late');
  await late.roundTrip();
  const history = late.all('chathistory').map((f) => f.value);
  const i1 = history.indexOf('first public');
  const i2 = history.indexOf('second public');
  assert.ok(i1 >= 0 && i2 > i1, `history in order: ${JSON.stringify(history)}`);
  assert.ok(!history.includes('secret'));
  assert.equal(late.all('chat').filter((f) => f.value === 'first public').length, 0);
});

test('a private message reaches only its destination; an unknown destination is an error', async () => {
  const a = await member('chat', 'pm-a');
  const b = await member('chat', 'pm-b');
  const c = await member('chat', 'pm-c');
  a.chat('just for b', { dest: b.id });
  const got = await b.next((f) => f.type === 'chat' && f.value === 'just for b');
  assert.equal(got.dest, b.id);
  assert.equal(got.source, a.id);
  await Promise.all([a.roundTrip(), c.roundTrip()]);
  assert.equal(c.all('chat').filter((f) => f.value === 'just for b').length, 0);
  assert.equal(a.all('chat').filter((f) => f.value === 'just for b').length, 0);

  a.chat('to nobody', { dest: 'no-such-id' });
  const err = await a.next((f) => f.type === 'usermessage' && f.kind === 'error');
  assert.equal(err.error, 'no-such-user');
});

test('noecho keeps a broadcast from coming back to its sender', async () => {
  const a = await member('chat', 'echo-a');
  const b = await member('chat', 'echo-b');
  a.chat('no echo please', { noecho: true });
  a.chat('echo please');
  await b.next((f) => f.type === 'chat' && f.value === 'echo please');
  await a.next((f) => f.type === 'chat' && f.value === 'echo please');
  assert.equal(a.all('chat').filter((f) => f.value === 'no echo please').length, 0);
  assert.equal(b.all('chat').filter((f) => f.value === 'no echo please').length, 1);
});

test('history older than max-history-age is not replayed', async () => {
  const a = await member('short', 'old-a');
  a.chat('soon forgotten');
  await a.next((f) => f.type === 'chat' && f.value === 'soon forgotten');
  await new Promise((r) => setTimeout(r, 1500));
  const late = await member('short', 'old-b');
  await late.roundTrip();
  assert.equal(late.all('chathistory').length, 0);
});

test('usermessages are relayed, not kept in history, and server-only kinds are refused', async () => {
  const a = await member('chat', 'um-a');
  const b = await member('chat', 'um-b');
  a.send({ type: 'usermessage', kind: 'app-ping', dest: b.id, value: { n: 1 } });
  const m = await b.next((f) => f.type === 'usermessage' && f.kind === 'app-ping');
  assert.deepEqual(m.value, { n: 1 });
  assert.equal(m.source, a.id);
  a.send({ type: 'usermessage', kind: 'kicked', dest: b.id, value: 'fake kick' });
  const err = await a.next((f) => f.type === 'usermessage' && f.kind === 'error');
  assert.equal(err.error, 'not-permitted');
  const late = await member('chat', 'um-late');
  await late.roundTrip();
  assert.equal(late.all('chathistory').filter((f) => JSON.stringify(f).includes('app-ping')).length, 0);
  await b.roundTrip();
  assert.equal(b.all('usermessage', 'kicked').length, 0);
});

test('filetransfer messages are relayed to their destination unchanged', async () => {
  const a = await member('chat', 'ft-a');
  const b = await member('chat', 'ft-b');
  const invite = { type: 'invite', version: ['1'], id: 'ft1', name: 'a.txt', size: 5, mimetype: 'text/plain' };
  a.send({ type: 'usermessage', kind: 'filetransfer', dest: b.id, value: invite });
  const got = await b.next((f) => f.type === 'usermessage' && f.kind === 'filetransfer');
  assert.deepEqual(got.value, invite);
  assert.equal(got.source, a.id);
  assert.equal(got.username, 'ft-a');
});
