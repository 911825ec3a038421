// User and group actions over the Galène protocol against a real server
// process: each with and without the permission it needs, lock and kick,
// autolock/autokick, setdata, subgroups, and recording's clear refusal.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

let server: RunningServer;
const clients: GaleneTestClient[] = [];
const open = { password: { type: 'wildcard' }, permissions: 'present' };

before(async () => {
  server = await startServer({
    groups: {
      act: { users: { op: { password: 'oppw', permissions: 'op' } }, 'wildcard-user': open, 'allow-recording': true },
      lockme: { public: true, users: { op: { password: 'oppw', permissions: 'op' } }, 'wildcard-user': open },
      auto: { users: { op: { password: 'oppw', permissions: 'op' } }, 'wildcard-user': open, autolock: true },
      kickall: { users: { op: { password: 'oppw', permissions: 'op' } }, 'wildcard-user': open, autokick: true },
      parent: { users: { op: { password: 'oppw', permissions: 'op' } }, 'wildcard-user': open, 'auto-subgroups': true },
      'parent/room1': { 'wildcard-user': open },
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

const errorOf = (c: GaleneTestClient) => c.next((f) => f.type === 'usermessage' && f.kind === 'error', 5000, 'an error');

test('op/unop/present/unpresent need op; the target and everyone see the change', async () => {
  const op = await member('act', 'op', 'oppw');
  const u = await member('act', 'user1');
  const v = await member('act', 'user2');

  u.send({ type: 'useraction', kind: 'op', dest: v.id });
  assert.equal((await errorOf(u)).error, 'not-permitted');

  op.send({ type: 'useraction', kind: 'op', dest: u.id });
  const change = await u.next((f) => f.type === 'joined' && f.kind === 'change');
  assert.ok(change.permissions.includes('op'));
  const seen = await v.next((f) => f.type === 'user' && f.kind === 'change' && f.id === u.id);
  assert.ok(seen.permissions.includes('op'));

  op.send({ type: 'useraction', kind: 'unpresent', dest: v.id });
  const c2 = await v.next((f) => f.type === 'joined' && f.kind === 'change');
  assert.ok(!c2.permissions.includes('present'));
  op.send({ type: 'useraction', kind: 'present', dest: v.id });
  const c3 = await v.next((f) => f.type === 'joined' && f.kind === 'change');
  assert.ok(c3.permissions.includes('present'));
  op.send({ type: 'useraction', kind: 'unop', dest: u.id });
  const c4 = await u.next((f) => f.type === 'joined' && f.kind === 'change');
  assert.ok(!c4.permissions.includes('op'));

  op.send({ type: 'useraction', kind: 'op', dest: 'nobody' });
  assert.equal((await errorOf(op)).error, 'no-such-user');
});

test('kick needs op; the kicked user is told why and removed; others see it leave', async () => {
  const op = await member('act', 'op', 'oppw');
  const victim = await member('act', 'victim');
  const witness = await member('act', 'witness');

  witness.send({ type: 'useraction', kind: 'kick', dest: victim.id });
  assert.equal((await errorOf(witness)).error, 'not-permitted');

  op.send({ type: 'useraction', kind: 'kick', dest: victim.id, value: 'too noisy' });
  const kicked = await victim.next((f) => f.type === 'usermessage' && f.kind === 'kicked');
  assert.equal(kicked.value, 'too noisy');
  assert.equal(kicked.source, op.id);
  const closed = await victim.closed;
  assert.equal(closed.reason, 'too noisy');
  await witness.next((f) => f.type === 'user' && f.kind === 'delete' && f.id === victim.id);
});

test('setdata changes only your own user data and is seen by others', async () => {
  const a = await member('act', 'data-a');
  const b = await member('act', 'data-b');
  a.send({ type: 'useraction', kind: 'setdata', dest: a.id, value: { raisehand: true } });
  const seen = await b.next((f) => f.type === 'user' && f.kind === 'change' && f.id === a.id);
  assert.deepEqual(seen.data, { raisehand: true });
  a.send({ type: 'useraction', kind: 'setdata', dest: b.id, value: { hacked: true } });
  assert.equal((await errorOf(a)).error, 'not-permitted');
});

test('lock refuses new non-op joiners with the lock message; unlock admits them; both need op', async () => {
  const op = await member('lockme', 'op', 'oppw');
  const u = await member('lockme', 'member');
  u.send({ type: 'groupaction', kind: 'lock', value: 'mine now' });
  assert.equal((await errorOf(u)).error, 'not-permitted');

  op.send({ type: 'groupaction', kind: 'lock', value: 'meeting in progress' });
  const ch = await u.next((f) => f.type === 'joined' && f.kind === 'change');
  assert.equal(ch.status.locked, true);
  const late = await GaleneTestClient.connect(server.wsUrl);
  clients.push(late);
  const fail = await late.join('lockme', 'late', 'x');
  assert.equal(fail.kind, 'fail');
  assert.equal(fail.error, 'group-locked');
  assert.match(fail.value, /meeting in progress/);
  const status = (await (await fetch(`${server.url}/group/lockme/.status`)).json()) as { locked?: boolean };
  assert.equal(status.locked, true);

  const op2 = await member('lockme', 'op', 'oppw');
  op2.send({ type: 'groupaction', kind: 'unlock' });
  await u.next((f) => f.type === 'joined' && f.kind === 'change' && !f.status.locked);
  const ok = await late.join('lockme', 'late', 'x');
  assert.equal(ok.kind, 'join');
});

test('clearchat needs op and clears history for everyone', async () => {
  const op = await member('act', 'op', 'oppw');
  const u = await member('act', 'clear-u');
  u.chat('to be cleared');
  await op.next((f) => f.type === 'chat' && f.value === 'to be cleared');
  u.send({ type: 'groupaction', kind: 'clearchat' });
  assert.equal((await errorOf(u)).error, 'not-permitted');
  op.send({ type: 'groupaction', kind: 'clearchat' });
  await u.next((f) => f.type === 'usermessage' && f.kind === 'clearchat');
  const late = await member('act', 'clear-late');
  await late.roundTrip();
  assert.equal(late.all('chathistory').length, 0);
});

test('record is refused in plain words; setdata on the group needs op and reaches everyone', async () => {
  const op = await member('act', 'op', 'oppw');
  const u = await member('act', 'gd-u');
  op.send({ type: 'groupaction', kind: 'record' });
  const err = await errorOf(op);
  assert.equal(err.error, 'not-supported');
  assert.match(err.value, /recording is not available/);
  u.send({ type: 'groupaction', kind: 'record' });
  assert.equal((await errorOf(u)).error, 'not-permitted');

  u.send({ type: 'groupaction', kind: 'setdata', value: { topic: 'x' } });
  assert.equal((await errorOf(u)).error, 'not-permitted');
  op.send({ type: 'groupaction', kind: 'setdata', value: { topic: 'budget' } });
  const ch = await u.next((f) => f.type === 'joined' && f.kind === 'change' && f.data?.topic === 'budget');
  assert.deepEqual(ch.data, { topic: 'budget' });
});

test('subgroups lists the subgroups for an op; auto-subgroups are created on first join', async () => {
  const op = await member('parent', 'op', 'oppw');
  const sub = await member('parent/auto-created', 'visitor');
  assert.ok(sub);
  op.send({ type: 'groupaction', kind: 'subgroups' });
  const info = await op.next((f) => f.type === 'chat' && f.username === 'Server');
  assert.equal(info.dest, op.id);
  assert.match(info.value, /^parent\/room1 \(0 clients\)$/m);
  assert.match(info.value, /^parent\/auto-created \(1 client\)$/m);
  const nosub = await GaleneTestClient.connect(server.wsUrl);
  clients.push(nosub);
  const fail = await nosub.join('act/whatever', 'x', 'x');
  assert.equal(fail.kind, 'fail');
  assert.equal(fail.error, 'no-such-group');
});

test('autolock: the group starts locked for non-ops and locks again when the last op leaves', async () => {
  const first = await GaleneTestClient.connect(server.wsUrl);
  clients.push(first);
  const refused = await first.join('auto', 'early', 'x');
  assert.equal(refused.error, 'group-locked');
  const op = await member('auto', 'op', 'oppw');
  const u = await member('auto', 'after-op');
  op.send({ type: 'join', kind: 'leave', group: 'auto' });
  await op.next((f) => f.type === 'joined' && f.kind === 'leave');
  await u.next((f) => f.type === 'joined' && f.kind === 'change' && f.status.locked === true);
});

test('autokick: everyone is kicked when the last op leaves', async () => {
  const op = await member('kickall', 'op', 'oppw');
  const u = await member('kickall', 'guest');
  op.close();
  const k = await u.next((f) => f.type === 'usermessage' && f.kind === 'kicked');
  assert.match(k.value, /no operator/);
  await u.closed;
});

test('maketoken: an invitation link for members with the token permission, limited to their own permissions', async () => {
  const op = await member('act', 'op', 'oppw');
  const u = await member('act', 'no-token');
  const tokenReply = (c: GaleneTestClient) => c.next((f) => f.type === 'usermessage' && f.kind === 'token', 5000, 'a token reply');
  u.send({ type: 'groupaction', kind: 'maketoken', value: { group: 'act' } });
  const refused = await tokenReply(u);
  assert.equal(refused.error, 'not-permitted');
  assert.equal(refused.privileged, true);

  op.send({ type: 'groupaction', kind: 'maketoken', value: { group: 'act', username: 'guest', permissions: ['present'], expires: 3600e3 } });
  const reply = await tokenReply(op);
  const t = reply.value as { token: string; group: string; username: string; permissions: string[]; expires: string; issuedBy: string; issuedAt: string };
  assert.equal(t.group, 'act');
  assert.equal(t.username, 'guest');
  assert.deepEqual(t.permissions, ['present']);
  assert.equal(t.issuedBy, 'op');
  assert.ok(Date.parse(t.expires) > Date.now());
  assert.ok(Date.parse(t.issuedAt) <= Date.now());
  const guest = await GaleneTestClient.connect(server.wsUrl);
  clients.push(guest);
  const j = await guest.join('act', undefined, undefined, { token: t.token });
  assert.equal(j.kind, 'join', JSON.stringify(j));
  assert.equal(j.username, 'guest');

  // An op may not hand out what it does not have either (admin), nor invite elsewhere.
  op.send({ type: 'groupaction', kind: 'maketoken', value: { group: 'act', permissions: ['admin'], expires: 3600e3 } });
  assert.equal((await tokenReply(op)).error, 'not-permitted');
  op.send({ type: 'groupaction', kind: 'maketoken', value: { group: 'lockme', expires: 3600e3 } });
  assert.equal((await tokenReply(op)).error, 'not-permitted');
  op.send({ type: 'groupaction', kind: 'maketoken', value: { group: 'act', username: 'op', expires: 3600e3 } });
  assert.match((await tokenReply(op)).value, /registered user/);
});
