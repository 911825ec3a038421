import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_RECONNECT, backoffDelay, reconnectPolicy, shouldReconnect } from './backoff.ts';

const noJitter = { ...DEFAULT_RECONNECT, jitter: 0 };

test('the wait doubles from 500 ms and stops growing at 30 s', () => {
  const waits = [1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 1000].map((n) => backoffDelay(n, noJitter));
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000]);
});

test('jitter spreads each wait by at most ±20 % and never past the cap', () => {
  assert.equal(
    backoffDelay(1, DEFAULT_RECONNECT, () => 0),
    400,
  );
  assert.equal(
    backoffDelay(1, DEFAULT_RECONNECT, () => 1),
    600,
  );
  assert.equal(
    backoffDelay(1, DEFAULT_RECONNECT, () => 0.5),
    500,
  );
  assert.equal(
    backoffDelay(12, DEFAULT_RECONNECT, () => 1),
    30000,
  );
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, DEFAULT_RECONNECT);
    assert.ok(d >= 1600 && d <= 2400, `${d}`);
  }
});

test('reconnection policy: defaults, off, tuned, refused when inconsistent', () => {
  assert.equal(reconnectPolicy(undefined).enabled, true);
  assert.equal(reconnectPolicy(true).maxAttempts, Number.POSITIVE_INFINITY);
  assert.equal(reconnectPolicy(false).enabled, false);
  const p = reconnectPolicy({ initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 3, jitter: undefined });
  assert.deepEqual([p.initialDelayMs, p.maxDelayMs, p.maxAttempts, p.jitter, p.factor], [100, 1000, 3, 0.2, 2]);
  assert.throws(() => reconnectPolicy({ initialDelayMs: 5000, maxDelayMs: 1000 }), RangeError);
  assert.throws(() => reconnectPolicy({ factor: 0.5 }), RangeError);
  assert.throws(() => reconnectPolicy({ jitter: 1 }), RangeError);
});

test('what is reconnected and what is not', () => {
  const up = { requested: false, kicked: false, wasConnected: true, attempts: 0 };
  const policy = reconnectPolicy(true);
  assert.equal(shouldReconnect(1006, up, policy), true, 'abnormal close');
  assert.equal(shouldReconnect(1001, up, policy), true, 'server going away');
  assert.equal(shouldReconnect(4000, up, policy), true, 'ping timeout');
  assert.equal(shouldReconnect(4002, up, policy), true, 'duplicate id: again with a new id');
  assert.equal(shouldReconnect(1000, { ...up, requested: true }, policy), false, 'the application closed');
  assert.equal(shouldReconnect(4001, { ...up, kicked: true }, policy), false, 'kicked');
  assert.equal(shouldReconnect(4001, up, policy), true, '4001 without a kicked message: a server shutting down');
  assert.equal(shouldReconnect(1000, { ...up, kicked: true }, policy), false, 'kicked (message)');
  assert.equal(shouldReconnect(4003, up, policy), false, 'bad protocol version');
  assert.equal(shouldReconnect(1006, { ...up, wasConnected: false }, policy), false, 'never connected');
  assert.equal(shouldReconnect(1006, up, reconnectPolicy(false)), false, 'disabled');
  assert.equal(shouldReconnect(1006, { ...up, attempts: 3 }, reconnectPolicy({ maxAttempts: 3 })), false, 'gave up');
  assert.equal(shouldReconnect(1006, { ...up, attempts: 2 }, reconnectPolicy({ maxAttempts: 3 })), true);
});
