// Issue 10, row 1: a member with only `message` posted 270 chats of 32,768
// characters, and from then on nobody could join the group: the whole
// history was queued at once on join, over the per-connection send limit,
// and the joiner was closed with 4004. History is now bounded in bytes per
// group and replayed in pages that wait for the joiner's connection.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LIMITS } from '@atrium/protocol/galene';
import { ChatHistory, MAX_HISTORY_BYTES, historyBytes } from '../../src/core/chat-history.ts';
import type { ChatEvent } from '../../src/core/client.ts';
import { GaleneTestClient } from '../support/galene-client.ts';
import { type RunningServer, startServer } from '../support/server-process.ts';

// Each message is "<n>:" and filler, exactly the longest a chat may be.
const BIG = 'x'.repeat(LIMITS.chatChars - 4);
const POSTS = 270;

let server: RunningServer;

before(async () => {
  server = await startServer({
    args: ['--no-media'],
    groups: { g: { users: { op: { password: 'op', permissions: 'op' } }, 'wildcard-user': { password: { type: 'wildcard' }, permissions: 'message' } } },
  });
});
after(() => server?.stop());

function chat(value: string, at: number): ChatEvent {
  return { type: 'chat', history: false, kind: '', source: 's', username: 'u', dest: undefined, privileged: false, time: new Date(at), value };
}

test('the history of a group is bounded in bytes, newest kept, whatever the sizes', () => {
  const h = new ChatHistory(3600);
  const now = Date.now();
  for (let i = 0; i < POSTS; i++) h.add(chat(`${i}:${BIG}`, now), now);
  assert.ok(h.bytes <= MAX_HISTORY_BYTES, `history holds ${h.bytes} bytes`);
  const kept = h.replay(now);
  assert.ok(kept.length > 0 && kept.length < POSTS);
  assert.ok(kept.at(-1)!.value.startsWith(`${POSTS - 1}:`), 'the newest message is kept');
  assert.equal(
    kept.reduce((n, e) => n + historyBytes(e), 0),
    h.bytes,
  );
  // Escapes count as what they cost on the wire: control characters take six bytes each.
  const escaped = historyBytes(chat('\u0001'.repeat(1000), now));
  assert.ok(escaped > 6000);
});

test('270 chats of 32,768 characters do not lock anyone out of the group, and the joiner gets the newest history in order', async () => {
  // Nine members with only `message`, thirty messages each (their chat burst).
  const posters: GaleneTestClient[] = [];
  for (let i = 0; i < POSTS / 30; i++) {
    const c = await GaleneTestClient.connect(server.wsUrl);
    assert.equal((await c.join('g', `poster${i}`, 'x')).kind, 'join');
    posters.push(c);
  }
  let n = 0;
  for (const c of posters) {
    for (let j = 0; j < 30; j++) c.chat(`${String(n++).padStart(3, '0')}:${BIG}`);
    await c.roundTrip();
  }
  assert.equal(posters.flatMap((c) => c.all('usermessage', 'error')).length, 0, 'no poster was rate-limited');

  for (const who of ['op', 'late']) {
    const joiner = await GaleneTestClient.connect(server.wsUrl);
    const joined = await joiner.join('g', who, who === 'op' ? 'op' : 'x');
    assert.equal(joined.kind, 'join', JSON.stringify(joined).slice(0, 300));
    // A chat sent after joining arrives after the whole history.
    const mark = `after the history (${who})`;
    posters[0]!.chat(mark);
    await joiner.next((f) => f.type === 'chat' && f.value === mark, 20_000, 'the live chat after the history');
    const history = joiner.all('chathistory');
    assert.ok(history.length > 0, 'some history was replayed');
    // The marks of earlier joiners are history too.
    const numbers = history.filter((f) => /^\d{3}:/.test(String(f.value))).map((f) => Number(String(f.value).slice(0, 3)));
    assert.deepEqual(
      numbers,
      [...numbers].sort((a, b) => a - b),
      'history in order',
    );
    assert.equal(numbers.at(-1), POSTS - 1, 'the newest message is in the history');
    const bytes = history.reduce((s, f) => s + Buffer.byteLength(JSON.stringify(f)), 0);
    assert.ok(bytes <= MAX_HISTORY_BYTES, `replayed ${bytes} bytes`);
    assert.equal(joiner.isClosed, false, 'the joiner is still connected');
    await joiner.roundTrip();
    assert.deepEqual(joiner.violations, []);
    joiner.close();
  }
  for (const c of posters) c.close();
});
