// The TransferredFile state machine, without a browser: invitations,
// refusals and cancellations from either side, driven through a stand-in
// host that records what would go to the peer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FileTransferValue } from '@atrium/protocol/galene';
import { type TransferHost, type TransferState, TransferredFile, canTransition } from './file-transfer.ts';
import type { ServerConnection } from './server-connection.ts';

function host(): TransferHost & { sent: [string, FileTransferValue][]; forgotten: TransferredFile[] } {
  const sent: [string, FileTransferValue][] = [];
  const forgotten: TransferredFile[] = [];
  return {
    sent,
    forgotten,
    connection: {} as ServerConnection,
    canSend: () => true,
    send: (dest, value) => void sent.push([dest, value]),
    createPeerConnection: () => {
      throw new Error('no WebRTC in this test');
    },
    forget: (f) => void forgotten.push(f),
  };
}

function transfer(up: boolean, h = host()) {
  const f = new TransferredFile(h, { userid: 'peer', id: 'f1', up, username: 'bob', name: 'a.txt', mimetype: 'text/plain', size: 5 });
  const events: [TransferState, unknown][] = [];
  f.onevent = function (state, data) {
    events.push([state, data]);
  };
  return { f, h, events };
}

test('the transitions Galène documents, and no others', () => {
  const states: TransferState[] = ['', 'inviting', 'connecting', 'connected', 'done', 'cancelled', 'closed'];
  const allowed = states.flatMap((a) => states.filter((b) => canTransition(a, b)).map((b) => `${a || "''"}→${b}`));
  assert.deepEqual(allowed, [
    "''→inviting",
    "''→cancelled",
    'inviting→connecting',
    'inviting→cancelled',
    'connecting→connected',
    'connecting→cancelled',
    'connected→connected',
    'connected→done',
    'connected→cancelled',
    'done→closed',
    'cancelled→closed',
  ]);
});

test('upload: invite, then the receiver refuses', () => {
  const { f, h, events } = transfer(true);
  f.invite();
  assert.deepEqual(h.sent, [['peer', { type: 'invite', version: ['1'], id: 'f1', name: 'a.txt', size: 5, mimetype: 'text/plain' }]]);
  f.gotMessage({ type: 'cancel', id: 'f1', message: 'no thanks' });
  assert.deepEqual(events, [
    ['inviting', undefined],
    ['cancelled', 'no thanks'],
    ['closed', undefined],
  ]);
  assert.deepEqual(h.forgotten, [f]);
  assert.equal(f.state, 'closed');
});

test('upload cancelled before the invitation went out: the peer is not told', () => {
  const { f, h, events } = transfer(true);
  f.cancel();
  assert.deepEqual(h.sent, []);
  assert.deepEqual(
    events.map((e) => e[0]),
    ['cancelled', 'closed'],
  );
  f.cancel('again');
  assert.equal(events.length, 2, 'cancelling a closed transfer does nothing');
});

test('download refused by the receiver: the sender is told why', () => {
  const { f, h, events } = transfer(false);
  f.invited('1');
  f.cancel('not now');
  assert.deepEqual(h.sent, [['peer', { type: 'cancel', id: 'f1', message: 'not now' }]]);
  assert.deepEqual(events, [
    ['inviting', undefined],
    ['cancelled', 'not now'],
    ['closed', undefined],
  ]);
});

test('the peer leaves: fail() ends the transfer without a message', () => {
  const { f, h, events } = transfer(false);
  f.invited('1');
  f.fail('the user has left');
  assert.deepEqual(h.sent, []);
  assert.deepEqual(
    events.map((e) => e[0]),
    ['inviting', 'cancelled', 'closed'],
  );
});

test('out-of-order messages cancel the transfer; receive() is refused where it does not apply', async () => {
  const up = transfer(true);
  up.f.invite();
  up.f.gotMessage({ type: 'answer', id: 'f1', sdp: 'v=0' });
  assert.deepEqual(
    up.events.map((e) => e[0]),
    ['inviting', 'cancelled', 'closed'],
  );
  assert.equal(up.h.sent.at(-1)?.[1].type, 'cancel');
  await assert.rejects(() => up.f.receive(), /receive\(\) is for downloads/);

  const down = transfer(false);
  await assert.rejects(() => down.f.receive(), /state "inviting"/);
  down.f.invited('1');
  down.f.gotMessage({ type: 'offer', version: ['1'], id: 'f1', sdp: 'v=0' });
  assert.deepEqual(
    down.events.map((e) => e[0]),
    ['inviting', 'cancelled', 'closed'],
  );
});

test('moves the machine does not allow are refused', () => {
  const { f, events } = transfer(false);
  const warn = console.warn;
  const warnings: unknown[] = [];
  console.warn = (...a: unknown[]) => void warnings.push(a);
  try {
    f.invited('1');
    f.invited('1');
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(
    events.map((e) => e[0]),
    ['inviting'],
  );
  assert.equal(warnings.length, 1);
});
