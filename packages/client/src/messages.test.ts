import assert from 'node:assert/strict';
import { test } from 'node:test';
import { offersVersion1, parseFileTransfer, parseServerFrame, parseTime, validateServerMessage } from './messages.ts';

test('good frames parse into typed messages; unknown fields are dropped', () => {
  const r = parseServerFrame(JSON.stringify({ type: 'joined', kind: 'join', group: 'g', username: 'u', permissions: ['present'], extra: 1 }));
  assert.equal(r.ok, true);
  if (r.ok) {
    assert.equal(r.message.type, 'joined');
    assert.equal('extra' in r.message, false);
  }
  const chat = parseServerFrame(JSON.stringify({ type: 'chathistory', source: 'a', username: 'x', time: '2024-01-01T00:00:00Z', value: 'hi' }));
  assert.equal(chat.ok && chat.message.type, 'chathistory');
});

test('bad frames are described, never thrown', () => {
  const cases: [unknown, string][] = [
    ['{not json', 'bad-json'],
    [new ArrayBuffer(4), 'bad-message'],
    ['[1,2]', 'bad-message'],
    ['{"kind":"join"}', 'bad-message'],
    ['{"type":"teleport"}', 'unknown-type'],
    ['{"type":"joined","kind":"wander","group":"g"}', 'bad-message'],
    ['{"type":"offer","id":"s"}', 'bad-message'],
    ['{"type":"user","kind":"add","id":7}', 'bad-message'],
    ['{"type":"chat","value":42}', 'bad-message'],
    ['{"type":"__proto__"}', 'unknown-type'],
  ];
  for (const [frame, problem] of cases) {
    const r = parseServerFrame(frame);
    assert.equal(r.ok, false, String(frame));
    if (!r.ok) {
      assert.equal(r.problem, problem, String(frame));
      assert.ok(r.message.length > 10);
    }
  }
  let deep: unknown = 'x';
  for (let i = 0; i < 100; i++) deep = { d: deep };
  const r = validateServerMessage({ type: 'usermessage', kind: 'k', value: deep });
  assert.equal(r.ok, false);
});

test('file-transfer values follow their own schema', () => {
  assert.equal(parseFileTransfer({ type: 'invite', version: ['1'], id: 'f', name: 'a.txt', size: 3, mimetype: 'text/plain' }).ok, true);
  assert.equal(parseFileTransfer({ type: 'offer', version: [1], id: 'f', sdp: 'v=0' }).ok, true);
  assert.equal(parseFileTransfer({ type: 'ice', id: 'f', candidate: { candidate: 'c', sdpMid: '0' } }).ok, true);
  assert.equal(parseFileTransfer({ type: 'invite', id: 'f' }).ok, false);
  assert.equal(parseFileTransfer({ type: 'upice', id: 'f' }).ok, false);
  assert.equal(parseFileTransfer('invite').ok, false);
  assert.equal(offersVersion1(['1']), true);
  assert.equal(offersVersion1([1]), true);
  assert.equal(offersVersion1(['2']), false);
});

test('times: ISO strings (v2) and milliseconds (v1); nothing readable is null', () => {
  assert.equal(parseTime('2024-05-01T10:00:00.000Z')?.toISOString(), '2024-05-01T10:00:00.000Z');
  assert.equal(parseTime(0)?.getTime(), 0);
  assert.equal(parseTime(1714557600000)?.toISOString(), '2024-05-01T10:00:00.000Z');
  assert.equal(parseTime(undefined), null);
  assert.equal(parseTime('yesterday-ish'), null);
});
